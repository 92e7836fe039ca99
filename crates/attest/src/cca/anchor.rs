//! CCA trust anchors: CPAK public keys in Veraison's JSON formats.
//!
//! An anchor file is one of
//! - a list of endorsements `[{"instance-id": hex, "implementation-id": hex, "pkey": JWK}, ...]`
//!   (Veraison's trust-anchor store), or one such object: the key is trusted only for that
//!   platform instance;
//! - a bare JWK `{"kty": "EC", "crv": ..., "x": ..., "y": ...}` (or a list of them): a key-only
//!   anchor, trusted for any instance whose platform token it verifies.

use serde::Deserialize;

use super::cose::Alg;

/// A trust anchor or reference value file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CcaConfigError {
    /// Not JSON of the expected shape.
    #[error("not a CCA {what} file: {reason}")]
    Syntax {
        /// `trust anchor` or `reference value`.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A key that cannot be used.
    #[error("CCA trust anchor {index}: {reason}")]
    Key {
        /// The entry's position in the file (0 for a single object).
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One trusted CPAK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Anchor {
    /// The platform instance the key belongs to; `None` for a key-only anchor.
    pub(super) instance_id: Option<[u8; 33]>,
    /// The platform implementation the instance is.
    pub(super) implementation_id: Option<[u8; 32]>,
    /// The curve, as JWK names it.
    pub(super) curve: &'static str,
    /// The public key, SEC1 uncompressed.
    pub(super) key: Vec<u8>,
}

impl Anchor {
    /// Whether the key can verify signatures of this algorithm.
    pub(super) fn fits(&self, alg: Alg) -> bool {
        self.curve == alg.curve()
    }
}

#[derive(Deserialize)]
struct Endorsement {
    #[serde(rename = "instance-id")]
    instance_id: String,
    #[serde(rename = "implementation-id")]
    implementation_id: String,
    pkey: Jwk,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: String,
    x: String,
    y: String,
    #[serde(default)]
    alg: Option<String>,
}

/// Parses one anchor file.
pub(super) fn parse(json: &[u8]) -> Result<Vec<Anchor>, CcaConfigError> {
    let syntax = |reason: String| CcaConfigError::Syntax { what: "trust anchor", reason };
    let items = match serde_json::from_slice(json).map_err(|e| syntax(e.to_string()))? {
        serde_json::Value::Array(items) => items,
        object @ serde_json::Value::Object(_) => vec![object],
        _ => {
            return Err(syntax(
                "expected a JWK or [{\"instance-id\": ..., \"implementation-id\": ..., \"pkey\": JWK}]".into(),
            ));
        }
    };
    if items.is_empty() {
        return Err(syntax("the list of anchors is empty".into()));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| anchor_of(item).map_err(|reason| CcaConfigError::Key { index, reason }))
        .collect()
}

/// One entry: an endorsement of an instance's key when it has a `pkey`, else a bare JWK.
fn anchor_of(item: serde_json::Value) -> Result<Anchor, String> {
    if item.get("pkey").is_none() {
        let jwk: Jwk = serde_json::from_value(item).map_err(|e| format!("not a JWK: {e}"))?;
        let (curve, key) = jwk.into_sec1()?;
        return Ok(Anchor { instance_id: None, implementation_id: None, curve, key });
    }
    let e: Endorsement = serde_json::from_value(item).map_err(|e| format!("not a CPAK endorsement: {e}"))?;
    let instance_id: [u8; 33] = hex_array(&e.instance_id, "instance-id")?;
    if instance_id[0] != 0x01 {
        return Err(format!("instance-id {} is not a random UEID (type 0x01)", e.instance_id));
    }
    let implementation_id = hex_array(&e.implementation_id, "implementation-id")?;
    let (curve, key) = e.pkey.into_sec1()?;
    Ok(Anchor { instance_id: Some(instance_id), implementation_id: Some(implementation_id), curve, key })
}

impl Jwk {
    fn into_sec1(self) -> Result<(&'static str, Vec<u8>), String> {
        if self.kty != "EC" {
            return Err(format!("key type `{}` is not supported (CPAKs are EC keys)", self.kty));
        }
        let (curve, len, alg) = match self.crv.as_str() {
            "P-256" => ("P-256", 32, "ES256"),
            "P-384" => ("P-384", 48, "ES384"),
            "P-521" => ("P-521", 66, "ES512"),
            other => return Err(format!("curve `{other}` is not supported")),
        };
        if let Some(a) = &self.alg
            && a != alg
        {
            return Err(format!("a {curve} key cannot be used with alg `{a}`"));
        }
        let x = base64url(&self.x).ok_or("the key's x is not base64url")?;
        let y = base64url(&self.y).ok_or("the key's y is not base64url")?;
        if x.len() != len || y.len() != len {
            return Err(format!("a {curve} key needs {len}-byte coordinates, found {} and {}", x.len(), y.len()));
        }
        Ok((curve, [&[0x04][..], &x, &y].concat()))
    }
}

fn hex_array<const N: usize>(text: &str, name: &str) -> Result<[u8; N], String> {
    let bytes = hex::decode(text).map_err(|e| format!("{name} is not hex: {e}"))?;
    <[u8; N]>::try_from(bytes).map_err(|b| format!("{name} is {} bytes, not {N}", b.len()))
}

/// Decodes base64url (or standard base64) with or without padding.
fn base64url(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero in a canonical encoding.
    (acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_known_values() {
        assert_eq!(base64url("").as_deref(), Some(&b""[..]));
        assert_eq!(base64url("Zg").as_deref(), Some(&b"f"[..]));
        assert_eq!(base64url("Zm8=").as_deref(), Some(&b"fo"[..]));
        assert_eq!(base64url("Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(base64url("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(base64url("Zh"), None, "non-zero leftover bits");
        assert_eq!(base64url("Z"), None);
        assert_eq!(base64url("Zm9v!"), None);
    }

    #[test]
    fn reads_lists_single_objects_and_bare_keys() {
        let list = parse(
            br#"[{"instance-id": "01AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "implementation-id": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "pkey": {"crv": "P-256", "kty": "EC", "x": "TKRFE_RwSXooI8DdatPOYg_uiKm2XrtT_uEMEvqQZrw",
            "y": "CRx3H8NHN1lcxqKi92P0OsZBxX3VFaktllpD3SjtN7s"}}]"#,
        )
        .expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].instance_id.map(|i| i[1]), Some(0xaa));
        assert_eq!((list[0].curve, list[0].key.len()), ("P-256", 65));
        let bare = parse(
            br#"{"crv": "P-384", "kty": "EC",
            "x": "IShnxS4rlQiwpCCpBWDzlNLfqiG911FP8akBr-fh94uxHU5m-Kijivp2r2oxxN6M",
            "y": "hM4tr8mWQli1P61xh3T0ViDREbF26DGOEYfbAjWjGNN7pZf-6A4OTHYqEryz6m7U"}"#,
        )
        .expect("bare key");
        assert_eq!((bare[0].instance_id, bare[0].curve, bare[0].key.len()), (None, "P-384", 97));
    }

    #[test]
    fn rejects_unusable_anchors_with_reasons() {
        let e = parse(b"[]").expect_err("empty");
        assert!(e.to_string().contains("empty"), "{e}");
        let e = parse(br#"{"kty": "RSA", "crv": "", "x": "", "y": ""}"#).expect_err("rsa");
        assert!(e.to_string().contains("`RSA` is not supported"), "{e}");
        let e = parse(br#"{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}"#).expect_err("short");
        assert!(e.to_string().contains("32-byte coordinates"), "{e}");
        let e = parse(b"not json").expect_err("syntax");
        assert!(matches!(e, CcaConfigError::Syntax { .. }), "{e}");
    }
}
