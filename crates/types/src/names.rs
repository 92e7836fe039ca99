//! Names that are checked once, where they enter, and carried as their own type after.

use std::fmt;
use std::str::FromStr;

/// A secret's name: 1 to [`SecretName::MAX_LEN`] bytes of `A-Z a-z 0-9 _ - .`, not starting
/// with a dot. The one rule for secret names everywhere: `lamina run --secret`, manifests, the
/// control plane's secret store and a guest's lookups.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretName(String);

/// Why a text is not a [`SecretName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretNameError {
    /// Nothing was given.
    #[error("it is empty")]
    Empty,
    /// Longer than [`SecretName::MAX_LEN`] bytes.
    #[error("it is {0} bytes long; the most is {max}", max = SecretName::MAX_LEN)]
    TooLong(usize),
    /// It starts with `.` (a hidden file where secrets are kept as files).
    #[error("it starts with `.`")]
    LeadingDot,
    /// A character outside the allowed set.
    #[error("{0:?} is not allowed (use letters, digits, `_`, `-` and `.`)")]
    Character(char),
}

impl SecretName {
    /// The longest name, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Checks `name` without keeping it.
    ///
    /// # Errors
    /// [`SecretNameError`] saying what is wrong with it.
    pub fn check(name: &str) -> Result<(), SecretNameError> {
        if name.is_empty() {
            return Err(SecretNameError::Empty);
        }
        if name.len() > Self::MAX_LEN {
            return Err(SecretNameError::TooLong(name.len()));
        }
        if name.starts_with('.') {
            return Err(SecretNameError::LeadingDot);
        }
        match name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
            Some(c) => Err(SecretNameError::Character(c)),
            None => Ok(()),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SecretName {
    type Error = SecretNameError;

    fn try_from(name: String) -> Result<Self, SecretNameError> {
        Self::check(&name)?;
        Ok(Self(name))
    }
}

impl FromStr for SecretName {
    type Err = SecretNameError;

    fn from_str(name: &str) -> Result<Self, SecretNameError> {
        Self::check(name)?;
        Ok(Self(name.to_owned()))
    }
}

impl From<SecretName> for String {
    fn from(name: SecretName) -> String {
        name.0
    }
}

impl AsRef<str> for SecretName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_and_are_not_secret_names() {
        for ok in ["db-password", "API_TOKEN", "a", "v1.2", "x.", &"a".repeat(128)] {
            assert!(ok.parse::<SecretName>().is_ok(), "{ok}");
        }
        assert_eq!("".parse::<SecretName>(), Err(SecretNameError::Empty));
        assert_eq!("a".repeat(129).parse::<SecretName>(), Err(SecretNameError::TooLong(129)));
        assert_eq!(".env".parse::<SecretName>(), Err(SecretNameError::LeadingDot));
        assert_eq!("..".parse::<SecretName>(), Err(SecretNameError::LeadingDot));
        assert_eq!("a/b".parse::<SecretName>(), Err(SecretNameError::Character('/')));
        assert_eq!("a b".parse::<SecretName>(), Err(SecretNameError::Character(' ')));
        assert_eq!("é".parse::<SecretName>(), Err(SecretNameError::Character('é')));
    }

    #[test]
    fn a_name_read_from_json_is_checked() {
        let name: SecretName = serde_json::from_str("\"db-password\"").expect("valid");
        assert_eq!(serde_json::to_string(&name).expect("json"), "\"db-password\"");
        assert!(serde_json::from_str::<SecretName>("\".hidden\"").is_err());
        assert!(serde_json::from_str::<SecretName>("\"../x\"").is_err());
    }
}
