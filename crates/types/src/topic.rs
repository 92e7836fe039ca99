//! Topics and subscription patterns: dot-separated tokens, NATS-style wildcards, checked once.

/// The longest topic or pattern.
pub const MAX_TOPIC: usize = 256;

/// Checks a topic to publish on: 1 to 256 bytes of non-empty dot-separated tokens, without
/// whitespace or wildcards.
///
/// # Errors
/// Why it is not a topic.
pub fn check_topic(topic: &str) -> Result<(), String> {
    for token in tokens(topic)? {
        if token == "*" || token == ">" {
            return Err(format!("`{topic}`: wildcards are for subscriptions, not for publishing"));
        }
    }
    Ok(())
}

fn tokens(text: &str) -> Result<std::str::Split<'_, char>, String> {
    if text.is_empty() {
        return Err("the topic is empty".into());
    }
    if text.len() > MAX_TOPIC {
        return Err(format!("the topic is {} bytes long; the most is {MAX_TOPIC}", text.len()));
    }
    if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{text}`: {c:?} is not allowed in a topic"));
    }
    if text.split('.').any(str::is_empty) {
        return Err(format!("`{text}`: a topic is dot-separated tokens, none of them empty"));
    }
    Ok(text.split('.'))
}

/// A subscription pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    tokens: Vec<String>,
    /// Ends in `>`: matches one or more further tokens.
    tail: bool,
}

impl Pattern {
    /// Parses a pattern: tokens, `*` for any one token, and a final `>` for one or more.
    ///
    /// # Errors
    /// Why it is not a pattern.
    pub fn parse(text: &str) -> Result<Self, String> {
        let all: Vec<&str> = tokens(text)?.collect();
        let mut tokens = Vec::with_capacity(all.len());
        let mut tail = false;
        for (i, token) in all.iter().enumerate() {
            if *token == ">" {
                if i + 1 != all.len() {
                    return Err(format!("`{text}`: `>` may only be the last token"));
                }
                tail = true;
            } else if token.contains(['*', '>']) && token.len() > 1 {
                return Err(format!("`{text}`: a wildcard must be a whole token, as in `a.*.c` or `a.>`"));
            } else {
                tokens.push((*token).to_owned());
            }
        }
        Ok(Pattern { tokens, tail })
    }

    /// The pattern as text (`a.*.>`): the same syntax as a NATS subject.
    pub fn subject(&self) -> String {
        let mut out = self.tokens.join(".");
        if self.tail {
            if !out.is_empty() {
                out.push('.');
            }
            out.push('>');
        }
        out
    }

    /// Whether every topic `other` matches, this pattern matches too.
    pub fn covers(&self, other: &Pattern) -> bool {
        for (i, want) in self.tokens.iter().enumerate() {
            match other.tokens.get(i) {
                Some(got) if want == "*" || want == got => {}
                // `other` ends here with `>`: it matches more than one literal or `*` can.
                _ => return false,
            }
        }
        let rest = other.tokens.len() - self.tokens.len();
        if self.tail { rest >= 1 || other.tail } else { rest == 0 && !other.tail }
    }

    /// Whether a topic matches.
    pub fn matches(&self, topic: &str) -> bool {
        let mut parts = topic.split('.');
        for want in &self.tokens {
            match parts.next() {
                Some(got) if want == "*" || want == got => {}
                _ => return false,
            }
        }
        let rest = parts.count();
        if self.tail { rest >= 1 } else { rest == 0 }
    }
}

/// A topic pattern as a workload declares it (`sensors.>`, `a.*.c`): tokens of letters,
/// digits, `-` and `_`, a whole-token `*`, and a final `>`. Checked once, where a manifest or
/// an API body is read; the broker, the node and the NATS permissions take it as it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicPattern(String);

impl TopicPattern {
    /// Checks `text` without keeping it.
    ///
    /// # Errors
    /// Why it is not a topic pattern.
    pub fn check(text: &str) -> Result<(), String> {
        if let Some(c) = text.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*' | '>')))
        {
            return Err(format!("{c:?} is not allowed (use letters, digits, `-`, `_`, `.`, `*` and `>`)"));
        }
        Pattern::parse(text).map(|_| ())
    }

    /// The pattern as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parsed pattern, to match topics with.
    pub fn pattern(&self) -> Pattern {
        // Checked when made, so it parses.
        Pattern::parse(&self.0).unwrap_or(Pattern { tokens: Vec::new(), tail: false })
    }
}

impl TryFrom<String> for TopicPattern {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::check(&text)?;
        Ok(Self(text))
    }
}

impl std::str::FromStr for TopicPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::check(text)?;
        Ok(Self(text.to_owned()))
    }
}

impl From<TopicPattern> for String {
    fn from(pattern: TopicPattern) -> String {
        pattern.0
    }
}

impl std::ops::Deref for TopicPattern {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for TopicPattern {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_nats() {
        let p = |s| Pattern::parse(s).expect("valid pattern");
        assert!(p("a.b").matches("a.b"));
        for text in ["a.b", "a.*.c", "a.>", ">", "*"] {
            assert_eq!(p(text).subject(), text);
        }
        let covers = |a, b| p(a).covers(&p(b));
        assert!(covers("a.>", "a.b") && covers("a.>", "a.*.c") && covers("a.>", "a.>") && covers("a.>", "a.b.>"));
        assert!(covers("a.*", "a.b") && covers("a.*", "a.*") && covers(">", "x.>") && covers("a.b", "a.b"));
        assert!(!covers("a.*", "a.>") && !covers("a.b", "a.*") && !covers("a.>", "a") && !covers("a.>", ">"));
        assert!(!covers("a.*", "a.b.c") && !covers("a.b", "a.b.c") && !covers("a.*.c", "a.*.d"));
        assert!(!p("a.b").matches("a.b.c"));
        assert!(!p("a.b").matches("a"));
        assert!(p("a.*").matches("a.b"));
        assert!(!p("a.*").matches("a.b.c"));
        assert!(p("a.>").matches("a.b.c"));
        assert!(!p("a.>").matches("a"));
        assert!(p(">").matches("x"));
        assert!(p("*.b.>").matches("a.b.c.d"));
    }

    #[test]
    fn malformed_topics_and_patterns_say_why() {
        for bad in ["", "a..b", ".a", "a.", "a b", "a.>.b", "a.b*", &"x".repeat(300)] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
        for bad in ["a.*", "a.>", "", "a\n"] {
            assert!(check_topic(bad).is_err(), "{bad:?}");
        }
        assert!(check_topic("sensors.kitchen.temperature").is_ok());
    }

    #[test]
    fn topic_patterns_are_checked_once_with_one_rule() {
        for ok in ["sensors.>", "a.*.c", ">", "readings.edge-1", "a_b.c"] {
            let p: TopicPattern = ok.parse().expect(ok);
            assert_eq!(p.pattern().subject(), ok);
        }
        for bad in ["", "a..b", "a b", "a.b*", "a.>.b", "sensors.température", "a/b", &"a".repeat(257)] {
            assert!(bad.parse::<TopicPattern>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<TopicPattern>("\"a.>.b\"").is_err());
    }
}
