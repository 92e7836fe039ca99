//! Join tokens the control plane issued: each admits one node, once, before it expires. Only a
//! hash of each secret is kept, so a copy of the store admits nobody.

use lamina_types::JoinToken;
use serde::{Deserialize, Serialize};

/// One issued token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    /// SHA-256 of its secret, hex.
    pub secret_hash: String,
    /// When it was issued, seconds since the Unix epoch.
    pub issued_at: u64,
    /// When it stops admitting, seconds since the Unix epoch.
    pub expires_at: u64,
    /// The node it admitted, once used.
    pub used_by: Option<String>,
}

/// Why a token does not admit a node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedeemError {
    /// The control plane never issued it (or it was for another control plane).
    #[error("this join token was not issued by this control plane; create one with `lamina token create`")]
    Unknown,
    /// Already used by a node.
    #[error("this join token was already used by node `{0}`; each token admits one node: create another")]
    Used(String),
    /// Expired.
    #[error("this join token expired; create another with `lamina token create`")]
    Expired,
}

/// The tokens a control plane issued.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenBook {
    /// Every token, oldest first.
    pub issued: Vec<IssuedToken>,
}

impl TokenBook {
    /// Issues a token for the control plane at `control` with this certificate fingerprint,
    /// valid for `ttl_secs` from `now`. `secret` must be fresh random bytes.
    pub fn issue(
        &mut self,
        control: &str,
        fingerprint: [u8; 32],
        secret: [u8; 32],
        now: u64,
        ttl_secs: u64,
    ) -> JoinToken {
        let token = JoinToken { control: control.to_owned(), fingerprint, secret };
        self.issued.push(IssuedToken {
            secret_hash: hex::encode(token.secret_hash()),
            issued_at: now,
            expires_at: now.saturating_add(ttl_secs),
            used_by: None,
        });
        token
    }

    /// Admits `node` with the secret it presented, once.
    ///
    /// # Errors
    /// [`RedeemError`] for an unknown, used or expired token; nothing changes then.
    pub fn redeem(&mut self, secret: &[u8; 32], node: &str, now: u64) -> Result<(), RedeemError> {
        let hash =
            hex::encode(JoinToken { control: String::new(), fingerprint: [0; 32], secret: *secret }.secret_hash());
        let entry = self.issued.iter_mut().find(|t| t.secret_hash == hash).ok_or(RedeemError::Unknown)?;
        if let Some(by) = &entry.used_by {
            return Err(RedeemError::Used(by.clone()));
        }
        if now >= entry.expires_at {
            return Err(RedeemError::Expired);
        }
        entry.used_by = Some(node.to_owned());
        Ok(())
    }

    /// Forgets tokens that expired unused more than a day ago.
    pub fn prune(&mut self, now: u64) {
        self.issued.retain(|t| t.used_by.is_some() || now < t.expires_at.saturating_add(86_400));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_admits_one_node_once_before_it_expires() {
        let mut book = TokenBook::default();
        let token = book.issue("https://10.0.0.1:7443", [1; 32], [2; 32], 100, 60);
        assert_eq!(book.redeem(&[3; 32], "edge-1", 110), Err(RedeemError::Unknown));
        assert_eq!(book.redeem(&token.secret, "edge-1", 110), Ok(()));
        assert_eq!(book.redeem(&token.secret, "edge-2", 111), Err(RedeemError::Used("edge-1".into())));
        let late = book.issue("https://10.0.0.1:7443", [1; 32], [4; 32], 100, 60);
        assert_eq!(book.redeem(&late.secret, "edge-3", 160), Err(RedeemError::Expired));
        let stored = serde_json::to_string(&book).expect("serialises");
        assert!(!stored.contains(&hex::encode([2u8; 32])), "only hashes are kept");
        book.prune(160 + 86_401);
        assert_eq!(book.issued.len(), 1, "the used one stays as a record");
    }
}
