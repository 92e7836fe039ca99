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
}
