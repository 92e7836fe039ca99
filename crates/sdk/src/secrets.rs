//! Secrets given to this workload.

use crate::bindings::lamina::secrets::store;

/// Why a secret cannot be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// No secret of this name was given to this workload.
    NotFound(String),
    /// The name is not a secret name.
    InvalidName(String),
}

impl std::fmt::Display for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretError::NotFound(name) => {
                write!(f, "no secret `{name}` was given to this workload (lamina run --secret {name}=FILE)")
            }
            SecretError::InvalidName(why) => write!(f, "invalid secret name: {why}"),
        }
    }
}

impl std::error::Error for SecretError {}

/// The secret's bytes.
///
/// # Errors
/// [`SecretError::NotFound`] when it was not given.
pub fn get(name: &str) -> Result<Vec<u8>, SecretError> {
    store::get(name).map_err(|e| match e {
        store::Error::NotFound => SecretError::NotFound(name.to_owned()),
        store::Error::InvalidName(why) => SecretError::InvalidName(why),
    })
}

/// The secret as UTF-8 text, without a trailing newline.
///
/// # Errors
/// As [`get`], and [`SecretError::InvalidName`] naming it when it is not UTF-8.
pub fn get_string(name: &str) -> Result<String, SecretError> {
    let bytes = get(name)?;
    let text = String::from_utf8(bytes).map_err(|_| SecretError::InvalidName(format!("`{name}` is not UTF-8")))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// The names of the secrets given to this workload.
pub fn names() -> Vec<String> {
    store::names()
}
