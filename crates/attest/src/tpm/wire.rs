//! TPM 2.0 wire structures the verifier reads: TPMS_ATTEST, TPMT_SIGNATURE, TPMT_PUBLIC.
//!
//! Hand-written rather than taken from a TSS so that the verifier links no C code. Every read
//! is bounds-checked, every length is bounded by the TPM specification's own limits, and a
//! structure must use its input exactly (no trailing bytes), so arbitrary input yields an error,
//! never a panic. Integers are big-endian, as on the TPM's wire.

use std::fmt;

/// `TPM_GENERATED_VALUE`: the magic a TPM puts at the start of everything it signs.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`: the structure tag of a quote.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;

/// TPM algorithm identifiers the verifier knows (`TPM_ALG_ID`).
pub mod alg {
    /// RSA keys.
    pub const RSA: u16 = 0x0001;
    /// SHA-1.
    pub const SHA1: u16 = 0x0004;
    /// HMAC.
    pub const HMAC: u16 = 0x0005;
    /// AES.
    pub const AES: u16 = 0x0006;
    /// Keyed-hash objects.
    pub const KEYEDHASH: u16 = 0x0008;
    /// XOR obfuscation.
    pub const XOR: u16 = 0x000a;
    /// SHA-256.
    pub const SHA256: u16 = 0x000b;
    /// SHA-384.
    pub const SHA384: u16 = 0x000c;
    /// SHA-512.
    pub const SHA512: u16 = 0x000d;
    /// No algorithm.
    pub const NULL: u16 = 0x0010;
    /// RSASSA-PKCS1-v1_5 signatures.
    pub const RSASSA: u16 = 0x0014;
    /// RSAES-PKCS1-v1_5 encryption.
    pub const RSAES: u16 = 0x0015;
    /// RSASSA-PSS signatures.
    pub const RSAPSS: u16 = 0x0016;
    /// RSAES-OAEP encryption.
    pub const OAEP: u16 = 0x0017;
    /// ECDSA signatures.
    pub const ECDSA: u16 = 0x0018;
    /// ECDH key exchange.
    pub const ECDH: u16 = 0x0019;
    /// ECDAA signatures.
    pub const ECDAA: u16 = 0x001a;
    /// Elliptic-curve keys.
    pub const ECC: u16 = 0x0023;
    /// Symmetric-cipher objects.
    pub const SYMCIPHER: u16 = 0x0025;
    /// CFB mode.
    pub const CFB: u16 = 0x0043;
}

/// TPM elliptic curves (`TPM_ECC_CURVE`).
pub mod curve {
    /// NIST P-256.
    pub const NIST_P256: u16 = 0x0003;
    /// NIST P-384.
    pub const NIST_P384: u16 = 0x0004;
}

/// Object attributes (`TPMA_OBJECT`) the verifier looks at.
pub mod attr {
    /// The key cannot leave this TPM.
    pub const FIXED_TPM: u32 = 1 << 1;
    /// The key cannot be moved to another parent.
    pub const FIXED_PARENT: u32 = 1 << 4;
    /// The TPM generated the key's secret part.
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    /// The key's auth value can authorise the user role.
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    /// The admin role needs a policy.
    pub const ADMIN_WITH_POLICY: u32 = 1 << 7;
    /// Restricted: signs only TPM-generated structures, or decrypts only TPM formats.
    pub const RESTRICTED: u32 = 1 << 16;
    /// A decryption (or storage) key.
    pub const DECRYPT: u32 = 1 << 17;
    /// A signing key.
    pub const SIGN: u32 = 1 << 18;
}

/// The largest number of PCR banks in a selection (the TPM's `HASH_COUNT` bound).
const MAX_BANKS: u32 = 16;
/// The largest `sizeofSelect`: 4 bytes select PCRs 0 to 31.
const MAX_SELECT_BYTES: u8 = 4;
/// The largest RSA modulus read (bytes).
const MAX_RSA_BYTES: usize = 512;
/// The largest ECC coordinate read (bytes).
const MAX_ECC_BYTES: usize = 66;
/// The largest digest read (bytes).
const MAX_DIGEST: usize = 64;

/// Why bytes are not the TPM structure expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ended inside a field.
    #[error("{what} is truncated (needs {need} more bytes at offset {at})")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Where it starts.
        at: usize,
        /// How many bytes were missing.
        need: usize,
    },
    /// Bytes follow the structure.
    #[error("{0} bytes follow the structure")]
    Trailing(usize),
    /// A field's value is out of the specification's range.
    #[error("{what}: {reason}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A valid but unsupported algorithm or type.
    #[error("unsupported {what} 0x{id:04x}")]
    Unsupported {
        /// What kind of identifier.
        what: &'static str,
        /// The identifier.
        id: u16,
    },
}

fn invalid(what: &'static str, reason: impl Into<String>) -> WireError {
    WireError::Invalid { what, reason: reason.into() }
}

/// A bounds-checked big-endian reader.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let bytes = rest.get(..n).ok_or_else(|| WireError::Truncated {
            what,
            at: self.pos,
            need: n.saturating_sub(rest.len()),
        })?;
        self.pos += n;
        Ok(bytes)
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(u8::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A TPM2B: a 16-bit size, then at most `max` bytes.
    pub(crate) fn tpm2b(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], WireError> {
        let size = usize::from(self.u16(what)?);
        if size > max {
            return Err(invalid(what, format!("{size} bytes is more than the {max} allowed")));
        }
        self.take(size, what)
    }

    pub(crate) fn finish(self) -> Result<(), WireError> {
        match self.buf.len().saturating_sub(self.pos) {
            0 => Ok(()),
            n => Err(WireError::Trailing(n)),
        }
    }
}

/// The digest size of a TPM hash algorithm, if the verifier supports it.
pub fn digest_size(hash_alg: u16) -> Option<usize> {
    match hash_alg {
        alg::SHA1 => Some(20),
        alg::SHA256 => Some(32),
        alg::SHA384 => Some(48),
        alg::SHA512 => Some(64),
        _ => None,
    }
}

/// A hash algorithm's name, for details.
pub fn hash_name(hash_alg: u16) -> String {
    match hash_alg {
        alg::SHA1 => "SHA-1".into(),
        alg::SHA256 => "SHA-256".into(),
        alg::SHA384 => "SHA-384".into(),
        alg::SHA512 => "SHA-512".into(),
        other => format!("hash 0x{other:04x}"),
    }
}

/// A PCR selection (`TPML_PCR_SELECTION`): for each bank, its hash algorithm and the PCR
/// indices selected, ascending. The order is the order in which a quote digests PCR values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PcrSelection {
    /// `(hash algorithm, selected PCR indices)` per bank, in the structure's order.
    pub banks: Vec<(u16, Vec<u8>)>,
}

impl PcrSelection {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let count = r.u32("pcrSelect.count")?;
        if count > MAX_BANKS {
            return Err(invalid("pcrSelect.count", format!("{count} banks is more than {MAX_BANKS}")));
        }
        let mut banks = Vec::new();
        for _ in 0..count {
            let hash = r.u16("pcrSelections.hash")?;
            let size = r.u8("pcrSelections.sizeofSelect")?;
            if size > MAX_SELECT_BYTES {
                return Err(invalid("pcrSelections.sizeofSelect", format!("{size} is more than {MAX_SELECT_BYTES}")));
            }
            let bits = r.take(usize::from(size), "pcrSelections.pcrSelect")?;
            banks.push((hash, indices_of(bits)));
        }
        Ok(Self { banks })
    }

    /// The `(bank, PCR index)` pairs in digest order.
    pub fn pairs(&self) -> impl Iterator<Item = (u16, u8)> + '_ {
        self.banks.iter().flat_map(|(hash, pcrs)| pcrs.iter().map(move |pcr| (*hash, *pcr)))
    }
}

/// The PCR indices a selection bitmap selects, ascending.
pub(crate) fn indices_of(bits: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (byte_index, byte) in (0u8..).zip(bits) {
        for bit in 0..8u8 {
            if byte & (1 << bit) != 0 {
                out.push(byte_index * 8 + bit);
            }
        }
    }
    out
}

/// The clock fields of an attestation (`TPMS_CLOCK_INFO`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockInfo {
    /// Milliseconds the TPM has been powered since its last clear.
    pub clock: u64,
    /// TPM resets (reboots) since the last clear.
    pub reset_count: u32,
    /// TPM restarts (resumes) since the last reset.
    pub restart_count: u32,
    /// Whether the clock value has not gone backwards.
    pub safe: bool,
}

/// A quote's body (`TPMS_QUOTE_INFO`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteInfo {
    /// The PCRs quoted.
    pub selection: PcrSelection,
    /// The digest of their values, in selection order, with the signing scheme's hash.
    pub pcr_digest: Vec<u8>,
}

/// A TPM attestation structure (`TPMS_ATTEST`), as signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attest {
    /// Must be [`TPM_GENERATED_VALUE`].
    pub magic: u32,
    /// The structure tag ([`TPM_ST_ATTEST_QUOTE`] for a quote).
    pub kind: u16,
    /// The signing key's qualified name.
    pub qualified_signer: Vec<u8>,
    /// The caller's qualifying data (the nonce or report data).
    pub extra_data: Vec<u8>,
    /// Clock and reset counters.
    pub clock_info: ClockInfo,
    /// The TPM firmware version (vendor-specific).
    pub firmware_version: u64,
    /// The quote body, when `kind` is a quote.
    pub quote: Option<QuoteInfo>,
}

impl Attest {
    /// Parses a TPMS_ATTEST. The body is parsed only for quotes; other kinds are accepted with
    /// `quote: None` so that the caller can say what they are.
    ///
    /// # Errors
    /// [`WireError`] when the bytes are not a TPMS_ATTEST.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let magic = r.u32("magic")?;
        let kind = r.u16("type")?;
        let qualified_signer = r.tpm2b("qualifiedSigner", 2 + MAX_DIGEST)?.to_vec();
        let extra_data = r.tpm2b("extraData", 2 + MAX_DIGEST)?.to_vec();
        let clock_info = ClockInfo {
            clock: r.u64("clockInfo.clock")?,
            reset_count: r.u32("clockInfo.resetCount")?,
            restart_count: r.u32("clockInfo.restartCount")?,
            safe: match r.u8("clockInfo.safe")? {
                0 => false,
                1 => true,
                other => return Err(invalid("clockInfo.safe", format!("{other} is not a boolean"))),
            },
        };
        let firmware_version = r.u64("firmwareVersion")?;
        let quote = if kind == TPM_ST_ATTEST_QUOTE {
            let selection = PcrSelection::read(&mut r)?;
            let pcr_digest = r.tpm2b("pcrDigest", MAX_DIGEST)?.to_vec();
            r.finish()?;
            Some(QuoteInfo { selection, pcr_digest })
        } else {
            None
        };
        Ok(Self { magic, kind, qualified_signer, extra_data, clock_info, firmware_version, quote })
    }
}

/// A TPM signature (`TPMT_SIGNATURE`) of the kinds the verifier checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signature {
    /// ECDSA: the scalars, big-endian.
    Ecdsa {
        /// The hash algorithm signed with.
        hash: u16,
        /// r.
        r: Vec<u8>,
        /// s.
        s: Vec<u8>,
    },
    /// RSASSA-PKCS1-v1_5.
    RsaSsa {
        /// The hash algorithm signed with.
        hash: u16,
        /// The signature.
        sig: Vec<u8>,
    },
    /// RSASSA-PSS.
    RsaPss {
        /// The hash algorithm signed with.
        hash: u16,
        /// The signature.
        sig: Vec<u8>,
    },
}

impl Signature {
    /// Parses a TPMT_SIGNATURE.
    ///
    /// # Errors
    /// [`WireError`] when the bytes are not one, or use an algorithm the verifier does not check.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let sig_alg = r.u16("sigAlg")?;
        let sig = match sig_alg {
            alg::ECDSA => {
                let hash = r.u16("signature.hash")?;
                let s_r = r.tpm2b("signatureR", MAX_ECC_BYTES)?.to_vec();
                let s_s = r.tpm2b("signatureS", MAX_ECC_BYTES)?.to_vec();
                Self::Ecdsa { hash, r: s_r, s: s_s }
            }
            alg::RSASSA | alg::RSAPSS => {
                let hash = r.u16("signature.hash")?;
                let sig = r.tpm2b("signature.sig", MAX_RSA_BYTES)?.to_vec();
                if sig_alg == alg::RSASSA { Self::RsaSsa { hash, sig } } else { Self::RsaPss { hash, sig } }
            }
            other => return Err(WireError::Unsupported { what: "signature algorithm", id: other }),
        };
        r.finish()?;
        Ok(sig)
    }

    /// The hash algorithm the signature was made with.
    pub fn hash(&self) -> u16 {
        match self {
            Self::Ecdsa { hash, .. } | Self::RsaSsa { hash, .. } | Self::RsaPss { hash, .. } => *hash,
        }
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Self::Ecdsa { .. } => "ECDSA",
            Self::RsaSsa { .. } => "RSASSA-PKCS1-v1_5",
            Self::RsaPss { .. } => "RSASSA-PSS",
        };
        write!(f, "{kind} with {}", hash_name(self.hash()))
    }
}

/// A symmetric algorithm definition (`TPMT_SYM_DEF_OBJECT`), when not NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymmetricDef {
    /// The algorithm (AES...).
    pub algorithm: u16,
    /// Key bits (for XOR: the hash algorithm).
    pub key_bits: u16,
    /// The mode (CFB...); NULL for XOR.
    pub mode: u16,
}

/// A scheme (`TPMT_*_SCHEME`) with its hash algorithm, when not NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scheme {
    /// The scheme (ECDSA, RSASSA, OAEP...).
    pub scheme: u16,
    /// Its hash algorithm (NULL for schemes without one).
    pub hash: u16,
}

/// The public key of a TPM object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// An ECC point.
    Ecc {
        /// The curve (`TPM_ECC_CURVE`).
        curve: u16,
        /// x, big-endian.
        x: Vec<u8>,
        /// y, big-endian.
        y: Vec<u8>,
    },
    /// An RSA key.
    Rsa {
        /// Key size in bits.
        bits: u16,
        /// Public exponent; 0 means 65537.
        exponent: u32,
        /// Modulus, big-endian.
        modulus: Vec<u8>,
    },
}

/// A TPM object's public area (`TPMT_PUBLIC`) for ECC and RSA keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Public {
    /// The name algorithm.
    pub name_alg: u16,
    /// `TPMA_OBJECT` bits (see [`attr`]).
    pub attributes: u32,
    /// The authorisation policy digest.
    pub auth_policy: Vec<u8>,
    /// The symmetric algorithm of a storage or EK key.
    pub symmetric: Option<SymmetricDef>,
    /// The signing or encryption scheme.
    pub scheme: Option<Scheme>,
    /// The key.
    pub key: PublicKey,
}

impl Public {
    /// Parses a TPMT_PUBLIC (no TPM2B size in front) of an ECC or RSA key.
    ///
    /// # Errors
    /// [`WireError`] when the bytes are not one.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let kind = r.u16("type")?;
        let name_alg = r.u16("nameAlg")?;
        let attributes = r.u32("objectAttributes")?;
        let auth_policy = r.tpm2b("authPolicy", MAX_DIGEST)?.to_vec();
        let public = match kind {
            alg::ECC => {
                let symmetric = read_symmetric(&mut r)?;
                let scheme = read_scheme(&mut r, "scheme")?;
                let curve = r.u16("curveID")?;
                let _kdf = read_scheme(&mut r, "kdf")?;
                let x = r.tpm2b("unique.x", MAX_ECC_BYTES)?.to_vec();
                let y = r.tpm2b("unique.y", MAX_ECC_BYTES)?.to_vec();
                Self { name_alg, attributes, auth_policy, symmetric, scheme, key: PublicKey::Ecc { curve, x, y } }
            }
            alg::RSA => {
                let symmetric = read_symmetric(&mut r)?;
                let scheme = read_scheme(&mut r, "scheme")?;
                let bits = r.u16("keyBits")?;
                let exponent = r.u32("exponent")?;
                let modulus = r.tpm2b("unique.rsa", MAX_RSA_BYTES)?.to_vec();
                Self {
                    name_alg,
                    attributes,
                    auth_policy,
                    symmetric,
                    scheme,
                    key: PublicKey::Rsa { bits, exponent, modulus },
                }
            }
            other => return Err(WireError::Unsupported { what: "object type", id: other }),
        };
        r.finish()?;
        Ok(public)
    }

    /// Whether every bit of `bits` is set.
    pub fn has(&self, bits: u32) -> bool {
        self.attributes & bits == bits
    }
}

fn read_symmetric(r: &mut Reader<'_>) -> Result<Option<SymmetricDef>, WireError> {
    let algorithm = r.u16("symmetric.algorithm")?;
    Ok(match algorithm {
        alg::NULL => None,
        alg::XOR => Some(SymmetricDef { algorithm, key_bits: r.u16("symmetric.keyBits")?, mode: alg::NULL }),
        _ => Some(SymmetricDef { algorithm, key_bits: r.u16("symmetric.keyBits")?, mode: r.u16("symmetric.mode")? }),
    })
}

fn read_scheme(r: &mut Reader<'_>, what: &'static str) -> Result<Option<Scheme>, WireError> {
    let scheme = r.u16(what)?;
    Ok(match scheme {
        alg::NULL => None,
        // RSAES has no details.
        alg::RSAES => Some(Scheme { scheme, hash: alg::NULL }),
        alg::ECDAA => {
            let hash = r.u16(what)?;
            let _count = r.u16(what)?;
            Some(Scheme { scheme, hash })
        }
        _ => Some(Scheme { scheme, hash: r.u16(what)? }),
    })
}

/// A TPM object's name: its name algorithm, then that hash of its public area.
///
/// # Errors
/// [`WireError`] when the public area is too short or uses an unsupported name algorithm.
pub fn name_of(public_area: &[u8]) -> Result<Vec<u8>, WireError> {
    let mut r = Reader::new(public_area);
    let _kind = r.u16("type")?;
    let name_alg = r.u16("nameAlg")?;
    let digest = super::crypto::hash(name_alg, &[public_area])
        .ok_or(WireError::Unsupported { what: "name algorithm", id: name_alg })?;
    Ok([&name_alg.to_be_bytes()[..], &digest].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testvectors/swtpm-local/");

    fn vector(name: &str) -> Vec<u8> {
        std::fs::read(format!("{VECTORS}{name}")).expect("test vector")
    }

    #[test]
    fn parses_the_swtpm_quote() {
        let attest = Attest::parse(&vector("quote.msg")).expect("quote parses");
        assert_eq!(attest.magic, TPM_GENERATED_VALUE);
        assert_eq!(attest.kind, TPM_ST_ATTEST_QUOTE);
        let nonce = hex::decode(String::from_utf8(vector("nonce.hex")).expect("text").trim()).expect("hex");
        assert_eq!(attest.extra_data, nonce);
        let quote = attest.quote.expect("a quote body");
        assert_eq!(quote.selection.banks, vec![(alg::SHA256, vec![0, 1, 2, 3, 7, 16])]);
        assert_eq!(quote.pcr_digest.len(), 32);
        assert!(attest.clock_info.safe);
    }

    #[test]
    fn parses_the_swtpm_signature() {
        let sig = Signature::parse(&vector("quote.sig")).expect("signature parses");
        let Signature::Ecdsa { hash, r, s } = sig else { panic!("not ECDSA") };
        assert_eq!(hash, alg::SHA256);
        assert_eq!((r.len(), s.len()), (32, 32));
    }

    #[test]
    fn truncation_and_trailing_bytes_are_errors() {
        let msg = vector("quote.msg");
        for len in 0..msg.len() {
            assert!(Attest::parse(&msg[..len]).is_err(), "prefix of {len} bytes");
        }
        let mut longer = msg.clone();
        longer.push(0);
        assert_eq!(Attest::parse(&longer), Err(WireError::Trailing(1)));
        let sig = vector("quote.sig");
        for len in 0..sig.len() {
            assert!(Signature::parse(&sig[..len]).is_err(), "prefix of {len} bytes");
        }
    }

    #[test]
    fn selection_bits_read_lowest_first() {
        assert_eq!(indices_of(&[0x8f, 0x00, 0x01]), vec![0, 1, 2, 3, 7, 16]);
        assert_eq!(indices_of(&[0, 0, 0x80]), vec![23]);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = Attest::parse(&bytes);
            let _ = Signature::parse(&bytes);
            let _ = Public::parse(&bytes);
            let _ = name_of(&bytes);
        }

        #[test]
        fn mutated_quotes_never_panic(flips in proptest::collection::vec((0usize..145, proptest::prelude::any::<u8>()), 1..8)) {
            let mut msg = vector("quote.msg");
            for (at, value) in flips {
                if let Some(b) = msg.get_mut(at) {
                    *b = value;
                }
            }
            let _ = Attest::parse(&msg);
        }
    }
}
