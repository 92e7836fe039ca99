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

/// A workload's name: 1 to [`WorkloadName::MAX_LEN`] of `a-z 0-9 -`, starting with a letter
/// and not ending with `-` (a DNS label, so that it can name hosts, files and metrics). Checked
/// once, where it enters (a manifest, an API body); the control plane, the scheduler and the
/// node carry it as this type after.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkloadName(String);

/// Why a text is not a [`WorkloadName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` is not a workload name: use 1 to 63 of a-z, 0-9 and -, starting with a letter", .0.escape_debug())]
pub struct WorkloadNameError(String);

impl WorkloadName {
    /// The longest name, in bytes.
    pub const MAX_LEN: usize = 63;

    /// Checks `name` without keeping it.
    ///
    /// # Errors
    /// [`WorkloadNameError`] saying what a name must be.
    pub fn check(name: &str) -> Result<(), WorkloadNameError> {
        let ok = !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && !name.ends_with('-')
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok { Ok(()) } else { Err(WorkloadNameError(name.chars().take(Self::MAX_LEN + 1).collect())) }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for WorkloadName {
    type Error = WorkloadNameError;

    fn try_from(name: String) -> Result<Self, WorkloadNameError> {
        Self::check(&name)?;
        Ok(Self(name))
    }
}

impl FromStr for WorkloadName {
    type Err = WorkloadNameError;

    fn from_str(name: &str) -> Result<Self, WorkloadNameError> {
        Self::check(name)?;
        Ok(Self(name.to_owned()))
    }
}

impl From<WorkloadName> for String {
    fn from(name: WorkloadName) -> String {
        name.0
    }
}

impl std::ops::Deref for WorkloadName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for WorkloadName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for WorkloadName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for WorkloadName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for WorkloadName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for WorkloadName {
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

    #[test]
    fn names_that_are_and_are_not_workload_names() {
        for ok in ["a", "sensor-1", "aggregate", &"a".repeat(63)] {
            assert!(ok.parse::<WorkloadName>().is_ok(), "{ok}");
        }
        for bad in ["", "1a", "-a", "a-", "A", "a_b", "a.b", "é", &"a".repeat(64)] {
            let e = bad.parse::<WorkloadName>().expect_err(bad);
            assert!(e.to_string().contains("is not a workload name"), "{e}");
        }
        assert!(serde_json::from_str::<WorkloadName>("\"../etc\"").is_err());
        let name: WorkloadName = serde_json::from_str("\"filter\"").expect("valid");
        assert_eq!(name, "filter");
    }
}
