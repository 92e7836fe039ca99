//! The TPM's cryptographic primitives, in pure Rust: hashes and HMACs by TPM algorithm
//! identifier, the key derivation functions KDFa and KDFe (TPM 2.0 Part 1, 11.4.10), and
//! signature verification with an object's public key.

use hmac::{Hmac, Mac as _};
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use sha2::{Sha256, Sha384, Sha512};

use super::wire::{PublicKey, Signature, alg, curve, hash_name};

/// The hash of the concatenated parts with a TPM hash algorithm (SHA-256, -384, -512; SHA-1
/// only where a name or legacy digest needs it), or `None` when unsupported.
pub(crate) fn hash(hash_alg: u16, parts: &[&[u8]]) -> Option<Vec<u8>> {
    fn run<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
        let mut h = D::new();
        for part in parts {
            h.update(part);
        }
        h.finalize().to_vec()
    }
    match hash_alg {
        alg::SHA1 => Some(run::<sha1::Sha1>(parts)),
        alg::SHA256 => Some(run::<Sha256>(parts)),
        alg::SHA384 => Some(run::<Sha384>(parts)),
        alg::SHA512 => Some(run::<Sha512>(parts)),
        _ => None,
    }
}

/// HMAC of the concatenated parts (SHA-256, -384, -512), or `None` when unsupported.
pub(crate) fn hmac(hash_alg: u16, key: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>> {
    macro_rules! run {
        ($d:ty) => {{
            // HMAC accepts keys of any length.
            let mut mac = Hmac::<$d>::new_from_slice(key).ok()?;
            for part in parts {
                mac.update(part);
            }
            Some(mac.finalize().into_bytes().to_vec())
        }};
    }
    match hash_alg {
        alg::SHA256 => run!(Sha256),
        alg::SHA384 => run!(Sha384),
        alg::SHA512 => run!(Sha512),
        _ => None,
    }
}

/// KDFa (SP 800-108 counter mode with HMAC): `bits` of key from `key`, a label (a terminating
/// zero byte is added), and two contexts.
pub(crate) fn kdfa(
    hash_alg: u16,
    key: &[u8],
    label: &str,
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Option<Vec<u8>> {
    let len = usize::try_from(bits.div_ceil(8)).ok()?;
    let mut out = Vec::with_capacity(len + 64);
    let mut counter = 1u32;
    while out.len() < len {
        let block = hmac(
            hash_alg,
            key,
            &[&counter.to_be_bytes(), label.as_bytes(), &[0], context_u, context_v, &bits.to_be_bytes()],
        )?;
        out.extend_from_slice(&block);
        counter = counter.checked_add(1)?;
    }
    out.truncate(len);
    Some(out)
}

/// KDFe (SP 800-56A concatenation KDF): `bits` of key from the shared secret `z`, a label
/// (a terminating zero byte is added), and the two parties' x coordinates.
pub(crate) fn kdfe(hash_alg: u16, z: &[u8], label: &str, party_u: &[u8], party_v: &[u8], bits: u32) -> Option<Vec<u8>> {
    let len = usize::try_from(bits.div_ceil(8)).ok()?;
    let mut out = Vec::with_capacity(len + 64);
    let mut counter = 1u32;
    while out.len() < len {
        let block = hash(hash_alg, &[&counter.to_be_bytes(), z, label.as_bytes(), &[0], party_u, party_v])?;
        out.extend_from_slice(&block);
        counter = counter.checked_add(1)?;
    }
    out.truncate(len);
    Some(out)
}

/// Compares secrets in time independent of where they differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Left-pads a big-endian integer to `size` bytes; `None` if it is longer (after leading zeros).
pub(crate) fn left_pad(bytes: &[u8], size: usize) -> Option<Vec<u8>> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let trimmed = bytes.get(start..)?;
    if trimmed.len() > size {
        return None;
    }
    let mut out = vec![0u8; size - trimmed.len()];
    out.extend_from_slice(trimmed);
    Some(out)
}

/// An uncompressed SEC1 point `04 || x || y` for a curve's field size.
pub(crate) fn sec1_point(x: &[u8], y: &[u8], size: usize) -> Option<Vec<u8>> {
    Some([&[4u8][..], &left_pad(x, size)?, &left_pad(y, size)?].concat())
}

/// The field size in bytes of a supported curve.
pub(crate) fn curve_size(curve_id: u16) -> Option<usize> {
    match curve_id {
        curve::NIST_P256 => Some(32),
        curve::NIST_P384 => Some(48),
        _ => None,
    }
}

/// Verifies a TPM signature over `message` with a public key; says what was checked.
pub(crate) fn verify(key: &PublicKey, sig: &Signature, message: &[u8]) -> Result<String, String> {
    let hash_alg = sig.hash();
    if hash_alg == alg::SHA1 {
        return Err("the signature uses SHA-1, which is not accepted".into());
    }
    let digest = hash(hash_alg, &[message]).ok_or_else(|| format!("unsupported hash {}", hash_name(hash_alg)))?;
    match (key, sig) {
        (PublicKey::Ecc { curve: curve_id, x, y }, Signature::Ecdsa { r, s, .. }) => {
            let size = curve_size(*curve_id).ok_or_else(|| format!("unsupported curve 0x{curve_id:04x}"))?;
            let point = sec1_point(x, y, size).ok_or("the key's coordinates are longer than its curve")?;
            let (r, s) = (
                left_pad(r, size).ok_or("r is longer than the curve")?,
                left_pad(s, size).ok_or("s is longer than the curve")?,
            );
            let scalars = [r, s].concat();
            match *curve_id {
                curve::NIST_P256 => {
                    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                        .map_err(|e| format!("bad P-256 key: {e}"))?;
                    let sig =
                        p256::ecdsa::Signature::from_slice(&scalars).map_err(|e| format!("bad signature: {e}"))?;
                    key.verify_prehash(&digest, &sig)
                        .map_err(|_| "the ECDSA P-256 signature does not verify".to_owned())?;
                }
                _ => {
                    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                        .map_err(|e| format!("bad P-384 key: {e}"))?;
                    let sig =
                        p384::ecdsa::Signature::from_slice(&scalars).map_err(|e| format!("bad signature: {e}"))?;
                    key.verify_prehash(&digest, &sig)
                        .map_err(|_| "the ECDSA P-384 signature does not verify".to_owned())?;
                }
            }
            Ok(format!("ECDSA {} signature with {} is valid", curve_label(*curve_id), hash_name(hash_alg)))
        }
        (
            PublicKey::Rsa { exponent, modulus, .. },
            Signature::RsaSsa { sig: s, .. } | Signature::RsaPss { sig: s, .. },
        ) => {
            let key = rsa_key(modulus, *exponent)?;
            let pss = matches!(sig, Signature::RsaPss { .. });
            if rsa_verify(&key, pss, hash_alg, &digest, s)? {
                Ok(format!("{sig} signature by a {}-bit RSA key is valid", modulus.len() * 8))
            } else {
                Err(format!("the {sig} signature does not verify"))
            }
        }
        _ => Err(format!("a {sig} signature cannot come from this key type")),
    }
}

fn curve_label(curve_id: u16) -> &'static str {
    if curve_id == curve::NIST_P256 { "P-256" } else { "P-384" }
}

pub(crate) fn rsa_key(modulus: &[u8], exponent: u32) -> Result<rsa::RsaPublicKey, String> {
    let e = if exponent == 0 { 65537 } else { exponent };
    rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(modulus), rsa::BigUint::from(e))
        .map_err(|e| format!("bad RSA key: {e}"))
}

fn rsa_verify(key: &rsa::RsaPublicKey, pss: bool, hash_alg: u16, digest: &[u8], sig: &[u8]) -> Result<bool, String> {
    macro_rules! run {
        ($d:ty) => {{
            if !pss {
                return Ok(key.verify(rsa::Pkcs1v15Sign::new::<$d>(), digest, sig).is_ok());
            }
            // TPMs salt PSS with the digest's length, or (older ones) with the largest salt the
            // key allows.
            let h_len = <$d as sha2::Digest>::output_size();
            let em_len =
                usize::try_from(rsa::traits::PublicKeyParts::n(key).bits()).unwrap_or(0).saturating_sub(1).div_ceil(8);
            let max_salt = em_len.saturating_sub(h_len + 2);
            Ok([h_len, max_salt]
                .into_iter()
                .any(|salt| key.verify(rsa::Pss::new_with_salt::<$d>(salt), digest, sig).is_ok()))
        }};
    }
    match hash_alg {
        alg::SHA256 => run!(Sha256),
        alg::SHA384 => run!(Sha384),
        alg::SHA512 => run!(Sha512),
        other => Err(format!("unsupported hash {}", hash_name(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_matches_a_hand_computed_block() {
        // One block: HMAC(key, 00000001 || "STORAGE" 00 || u || v || 00000080), truncated to 16 bytes.
        let key = [7u8; 32];
        let expected =
            hmac(alg::SHA256, &key, &[&[0, 0, 0, 1], b"STORAGE\0", b"u", b"v", &[0, 0, 0, 0x80]]).expect("sha256");
        let out = kdfa(alg::SHA256, &key, "STORAGE", b"u", b"v", 128).expect("kdfa");
        assert_eq!(out, expected[..16]);
        // Two blocks for 384 bits with SHA-256.
        let long = kdfa(alg::SHA256, &key, "X", b"", b"", 384).expect("kdfa");
        assert_eq!(long.len(), 48);
    }

    #[test]
    fn padding_and_comparison() {
        assert_eq!(left_pad(&[0, 0, 1], 2), Some(vec![0, 1]));
        assert_eq!(left_pad(&[1, 2, 3], 2), None);
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
