//! Join tokens: what `lamina token create` prints and `lamina node --join` takes. One line
//! carries everything a new node needs: the control plane's address, the fingerprint of its
//! certificate (so the first connection is authenticated without any other configuration) and
//! a one-time secret that admits the node (together with its attestation).
//!
//! Text form: `lamina-join-1.` then base64url (no padding) of
//! `fingerprint (32) | secret (32) | address (UTF-8) | check (4)`, where the check is the first
//! four bytes of SHA-256 over what precedes it, so a mistyped or truncated token is caught
//! before any connection is made.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

const PREFIX: &str = "lamina-join-1.";
/// The longest control-plane address a token carries.
pub const MAX_ADDRESS: usize = 512;

/// A join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The control plane's base URL, `https://host:port`.
    pub control: String,
    /// SHA-256 of the control plane's TLS certificate (DER).
    pub fingerprint: [u8; 32],
    /// The one-time secret.
    pub secret: [u8; 32],
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret is a credential: never formatted.
        f.debug_struct("JoinToken")
            .field("control", &self.control)
            .field("fingerprint", &hex::encode(self.fingerprint))
            .finish_non_exhaustive()
    }
}

/// A token that cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a join token at all.
    #[error("not a Lamina join token (it should start with `{PREFIX}`; make one with `lamina token create`)")]
    Prefix,
    /// Damaged: bad characters, cut short, or a check that does not match.
    #[error("the join token is damaged ({0}); copy it again from `lamina token create`")]
    Damaged(&'static str),
    /// The address in it is not an https URL.
    #[error("the join token's control-plane address `{0}` is not an https:// URL")]
    Address(String),
}

impl JoinToken {
    /// The token's text form.
    pub fn encode(&self) -> String {
        let mut body = Vec::with_capacity(68 + self.control.len());
        body.extend_from_slice(&self.fingerprint);
        body.extend_from_slice(&self.secret);
        body.extend_from_slice(self.control.as_bytes());
        let check = Sha256::digest(&body);
        body.extend_from_slice(&check[..4]);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(body))
    }

    /// What the control plane stores for a token it issued: the SHA-256 of its secret, so
    /// that a copy of the store admits nobody.
    pub fn secret_hash(&self) -> [u8; 32] {
        Sha256::digest(self.secret).into()
    }
}

impl FromStr for JoinToken {
    type Err = TokenError;

    fn from_str(text: &str) -> Result<Self, TokenError> {
        let body = text.trim().strip_prefix(PREFIX).ok_or(TokenError::Prefix)?;
        if body.len() > (68 + MAX_ADDRESS) * 4 / 3 + 4 {
            return Err(TokenError::Damaged("it is too long"));
        }
        let bytes =
            URL_SAFE_NO_PAD.decode(body).map_err(|_| TokenError::Damaged("it has characters a token has not"))?;
        if bytes.len() < 68 + 4 + "https://x".len() {
            return Err(TokenError::Damaged("it is cut short"));
        }
        let (payload, check) = bytes.split_at(bytes.len() - 4);
        if Sha256::digest(payload)[..4] != *check {
            return Err(TokenError::Damaged("its check does not match"));
        }
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(&payload[..32]);
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&payload[32..64]);
        let control =
            std::str::from_utf8(&payload[64..]).map_err(|_| TokenError::Damaged("its address is not text"))?;
        let host = control.strip_prefix("https://").ok_or_else(|| TokenError::Address(control.to_owned()))?;
        if host.is_empty() || host.contains(char::is_whitespace) || control.len() > MAX_ADDRESS {
            return Err(TokenError::Address(control.to_owned()));
        }
        Ok(JoinToken { control: control.to_owned(), fingerprint, secret })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn token() -> JoinToken {
        JoinToken { control: "https://10.0.0.1:7443".into(), fingerprint: [7; 32], secret: [9; 32] }
    }

    #[test]
    fn round_trips_on_one_line() {
        let text = token().encode();
        assert!(text.starts_with(PREFIX) && !text.contains(char::is_whitespace), "{text}");
        assert_eq!(text.parse::<JoinToken>(), Ok(token()));
        assert_eq!(format!("  {text}\n").parse::<JoinToken>(), Ok(token()), "pasted with blanks");
    }

    #[test]
    fn damage_is_caught_before_use() {
        let text = token().encode();
        assert_eq!("hello".parse::<JoinToken>(), Err(TokenError::Prefix));
        assert!(matches!(text[..text.len() - 10].parse::<JoinToken>(), Err(TokenError::Damaged(_))));
        let mut typo = text.clone().into_bytes();
        let i = PREFIX.len() + 20;
        typo[i] = if typo[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            String::from_utf8(typo).expect("ascii").parse::<JoinToken>(),
            Err(TokenError::Damaged("its check does not match"))
        );
        assert!(matches!(format!("{text}!").parse::<JoinToken>(), Err(TokenError::Damaged(_))));
        let plain = JoinToken { control: "http://10.0.0.1".into(), ..token() }.encode();
        assert!(matches!(plain.parse::<JoinToken>(), Err(TokenError::Address(_))));
    }

    #[test]
    fn the_secret_is_never_formatted() {
        let shown = format!("{:?}", token());
        assert!(!shown.contains("9, 9") && !shown.contains("0909"), "{shown}");
        assert_ne!(token().secret_hash(), token().secret);
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in "\\PC{0,200}", tail in "[A-Za-z0-9_-]{0,200}") {
            let _ = text.parse::<JoinToken>();
            let _ = format!("{PREFIX}{tail}").parse::<JoinToken>();
        }

        #[test]
        fn any_valid_token_round_trips(fp in any::<[u8; 32]>(), secret in any::<[u8; 32]>(), host in "[a-z0-9.-]{1,40}", port in 1u16..) {
            let t = JoinToken { control: format!("https://{host}:{port}"), fingerprint: fp, secret };
            prop_assert_eq!(t.encode().parse::<JoinToken>(), Ok(t));
        }
    }
}
