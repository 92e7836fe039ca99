//! The evidence extension: encoding Lamina's, bounded decoding of anyone's, and the checks that
//! the evidence binds the certificate's key.

use lamina_types::cbor::{self, Value};
use lamina_types::ingress::ServedTable;
use lamina_types::{Claims, Envelope, PlatformKind};
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::RatlsError;
use crate::Appraisal;

/// The evidence extension's OID (TCG DICE `tcg-dice-conceptual-message-wrapper`).
pub const EVIDENCE_OID: &str = "2.23.133.5.4.9";

/// [`EVIDENCE_OID`]'s content octets in DER.
pub const EVIDENCE_OID_DER: &[u8] = &[0x67, 0x81, 0x05, 0x05, 0x04, 0x09];

/// [`EVIDENCE_OID`]'s arcs.
pub(crate) const EVIDENCE_OID_ARCS: &[u64] = &[2, 23, 133, 5, 4, 9];

/// The CBOR tag around `[evidence, claims]`.
pub const TAG_EVIDENCE: u64 = 60000;

/// The claim holding the hash of the certificate's SubjectPublicKeyInfo.
pub const PUBKEY_HASH_CLAIM: &str = "pubkey-hash";

/// The claim saying that the evidence is a Lamina envelope.
pub const LAMINA_EVIDENCE_CLAIM: &str = "lamina-evidence";

/// The claim holding what a node's ingress serves ([`ServedTable`]'s bytes): the envelope's
/// configuration digest is their SHA-256, and it names no module (each endpoint names its own).
pub const LAMINA_SERVED_CLAIM: &str = "lamina-served";

/// The value of [`LAMINA_EVIDENCE_CLAIM`] for envelopes of this version.
pub const LAMINA_EVIDENCE_FORMAT: &str = "envelope-v1";

/// The largest certificate read (a TLS handshake message holds at most 64 KiB).
pub const MAX_CERT_LEN: usize = 64 * 1024;

/// The largest extension value read.
pub const MAX_EXTENSION_LEN: usize = MAX_CERT_LEN;

/// The largest claims byte string read (a served table is most of it).
const MAX_CLAIMS_LEN: usize = ServedTable::MAX_LEN + 4096;

/// The largest `pubkey-hash` entry read.
const MAX_HASH_ENTRY_LEN: usize = 128;

/// A hash algorithm of the IANA Named Information Hash Algorithm Registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// `sha-256`, identifier 1.
    Sha256,
    /// `sha-384`, identifier 7.
    Sha384,
    /// `sha-512`, identifier 8.
    Sha512,
}

impl HashAlgorithm {
    /// The registry's identifier.
    pub const fn id(self) -> u64 {
        match self {
            Self::Sha256 => 1,
            Self::Sha384 => 7,
            Self::Sha512 => 8,
        }
    }

    /// The algorithm of a registry identifier, if this crate knows it.
    pub const fn from_id(id: u64) -> Option<Self> {
        match id {
            1 => Some(Self::Sha256),
            7 => Some(Self::Sha384),
            8 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The registry's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha-256",
            Self::Sha384 => "sha-384",
            Self::Sha512 => "sha-512",
        }
    }

    /// The digest length in bytes.
    pub const fn digest_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha384 => Sha384::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// The `pubkey-hash` claim: a hash of the certificate's SubjectPublicKeyInfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubkeyHash {
    /// The algorithm.
    pub algorithm: HashAlgorithm,
    /// The digest (of the algorithm's length).
    pub value: Vec<u8>,
}

impl PubkeyHash {
    /// The SHA-256 claim for a SubjectPublicKeyInfo (DER).
    pub fn of(spki: &[u8]) -> Self {
        Self { algorithm: HashAlgorithm::Sha256, value: HashAlgorithm::Sha256.digest(spki) }
    }

    /// Whether this is the hash of `spki`.
    pub fn matches(&self, spki: &[u8]) -> bool {
        self.algorithm.digest(spki) == self.value
    }

    /// The claim's encoding: `[hash-alg-id, hash]` in CBOR.
    fn to_cbor(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![Value::Integer(self.algorithm.id().into()), Value::Bytes(self.value.clone())]))
    }
}

/// What the extension's `evidence` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RatlsPayload {
    /// A Lamina envelope (the claims say `"lamina-evidence": "envelope-v1"`).
    Lamina(Envelope),
    /// Anything else: a TEE quote, as Gramine and the Intel SGX SDK write (SGX quote v3/v4/v5,
    /// or a TDX quote), whose report data begins with SHA-256 of the claims.
    Quote(Vec<u8>),
}

/// A decoded evidence extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RatlsExtension {
    /// The evidence.
    pub payload: RatlsPayload,
    /// The claims byte string, as it was in the certificate (a quote binds these bytes).
    pub claims: Vec<u8>,
    /// The `pubkey-hash` claim.
    pub pubkey_hash: PubkeyHash,
    /// The `lamina-served` claim's bytes: what a node's ingress serves.
    pub served: Option<Vec<u8>>,
}

/// The evidence of an attested certificate, with the key it is meant to bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RatlsEvidence {
    /// The certificate's SubjectPublicKeyInfo (DER).
    pub spki: Vec<u8>,
    /// Its evidence extension.
    pub extension: RatlsExtension,
}

/// The extension value of a Lamina certificate whose key is `spki` (see the [module
/// docs](super)).
pub fn lamina_extension(envelope: &Envelope, spki: &[u8]) -> Vec<u8> {
    lamina_extension_serving(envelope, spki, None)
}

/// [`lamina_extension`], with the table of what a node's ingress serves when given.
pub fn lamina_extension_serving(envelope: &Envelope, spki: &[u8], served: Option<&[u8]>) -> Vec<u8> {
    // Canonical order: the shorter text key first.
    let mut entries = vec![(Value::Text(PUBKEY_HASH_CLAIM.into()), Value::Bytes(PubkeyHash::of(spki).to_cbor()))];
    if let Some(served) = served {
        entries.push((Value::Text(LAMINA_SERVED_CLAIM.into()), Value::Bytes(served.to_vec())));
    }
    entries.push((Value::Text(LAMINA_EVIDENCE_CLAIM.into()), Value::Text(LAMINA_EVIDENCE_FORMAT.into())));
    let claims = cbor::encode(&Value::Map(entries));
    cbor::encode(&Value::Tag(
        TAG_EVIDENCE,
        Box::new(Value::Array(vec![Value::Bytes(envelope.to_cbor()), Value::Bytes(claims)])),
    ))
}

/// Reads the evidence extension of a certificate (DER), Lamina's or an interoperable one.
///
/// Only the structure is read: nothing is verified (see [`RatlsEvidence::check_binding`] and
/// [`appraise_certificate`](super::appraise_certificate)).
///
/// # Errors
/// A [`RatlsError`] saying what is malformed or missing.
pub fn parse_extension(cert_der: &[u8]) -> Result<RatlsEvidence, RatlsError> {
    let cert = parse_certificate(cert_der)?;
    evidence_of(&cert)
}

/// Decodes an extension value (the OCTET STRING's content).
///
/// # Errors
/// A [`RatlsError`] saying what is malformed.
pub fn decode_extension(value: &[u8]) -> Result<RatlsExtension, RatlsError> {
    if value.len() > MAX_EXTENSION_LEN {
        return Err(RatlsError::TooLarge { what: "the evidence extension", len: value.len(), max: MAX_EXTENSION_LEN });
    }
    let malformed = |m: String| RatlsError::Extension(m);
    let item = cbor::decode_one(value, MAX_EXTENSION_LEN).map_err(|e| malformed(e.to_string()))?;
    let Value::Tag(tag, inner) = item else { return Err(malformed("not a tagged CBOR item".into())) };
    if tag != TAG_EVIDENCE {
        return Err(malformed(format!("CBOR tag {tag}, not {TAG_EVIDENCE}")));
    }
    let Value::Array(items) = *inner else { return Err(malformed("the tagged item is not an array".into())) };
    let [evidence, claims]: [Value; 2] = items
        .try_into()
        .map_err(|items: Vec<Value>| malformed(format!("{} items, expected [evidence, claims]", items.len())))?;
    let Value::Bytes(evidence) = evidence else { return Err(malformed("the evidence is not a byte string".into())) };
    let Value::Bytes(claims) = claims else { return Err(malformed("the claims are not a byte string".into())) };
    let (pubkey_hash, lamina, served) = decode_claims(&claims)?;
    let payload = if lamina {
        RatlsPayload::Lamina(Envelope::from_cbor(&evidence).map_err(|e| RatlsError::Envelope(e.to_string()))?)
    } else {
        RatlsPayload::Quote(evidence)
    };
    Ok(RatlsExtension { payload, claims, pubkey_hash, served })
}

/// The `pubkey-hash` claim, whether the claims say the evidence is a Lamina envelope, and the
/// `lamina-served` claim.
fn decode_claims(bytes: &[u8]) -> Result<(PubkeyHash, bool, Option<Vec<u8>>), RatlsError> {
    let err = |m: String| RatlsError::Claims(m);
    let value = cbor::decode_one(bytes, MAX_CLAIMS_LEN).map_err(|e| err(e.to_string()))?;
    let Value::Map(entries) = value else { return Err(err("not a CBOR map".into())) };
    let mut pubkey_hash = None;
    let mut lamina = false;
    let mut served = None;
    for (key, value) in entries {
        let Value::Text(key) = key else { return Err(err("a key is not a text string".into())) };
        match key.as_str() {
            PUBKEY_HASH_CLAIM if pubkey_hash.is_some() => return Err(err(format!("`{key}` appears twice"))),
            PUBKEY_HASH_CLAIM => pubkey_hash = Some(decode_pubkey_hash(value)?),
            LAMINA_EVIDENCE_CLAIM if lamina => return Err(err(format!("`{key}` appears twice"))),
            LAMINA_EVIDENCE_CLAIM => match value {
                Value::Text(format) if format == LAMINA_EVIDENCE_FORMAT => lamina = true,
                _ => {
                    return Err(err(format!(
                        "`{LAMINA_EVIDENCE_CLAIM}` is not `{LAMINA_EVIDENCE_FORMAT}`, the only format this Lamina reads"
                    )));
                }
            },
            LAMINA_SERVED_CLAIM if served.is_some() => return Err(err(format!("`{key}` appears twice"))),
            LAMINA_SERVED_CLAIM => match value {
                Value::Bytes(bytes) if bytes.len() <= ServedTable::MAX_LEN => served = Some(bytes),
                Value::Bytes(bytes) => {
                    return Err(err(format!("`{key}` is {} bytes; the most is {}", bytes.len(), ServedTable::MAX_LEN)));
                }
                _ => return Err(err(format!("`{key}` is not a byte string"))),
            },
            // Other claims are the attester's own; the evidence binds them, nothing here reads them.
            _ => {}
        }
    }
    let pubkey_hash = pubkey_hash.ok_or_else(|| err(format!("no `{PUBKEY_HASH_CLAIM}` claim")))?;
    Ok((pubkey_hash, lamina, served))
}

/// `bstr .cbor [hash-alg-id, hash]` (also accepted without the byte-string wrapping).
fn decode_pubkey_hash(value: Value) -> Result<PubkeyHash, RatlsError> {
    let err = |m: String| RatlsError::Claims(format!("`{PUBKEY_HASH_CLAIM}`: {m}"));
    let entry = match value {
        Value::Bytes(inner) => cbor::decode_one(&inner, MAX_HASH_ENTRY_LEN).map_err(|e| err(e.to_string()))?,
        other => other,
    };
    let Value::Array(items) = entry else { return Err(err("not [hash-alg-id, hash]".into())) };
    let [id, hash]: [Value; 2] = items.try_into().map_err(|_| err("not [hash-alg-id, hash]".into()))?;
    let id =
        id.as_integer().and_then(|i| u64::try_from(i).ok()).ok_or_else(|| err("the algorithm is not an id".into()))?;
    let algorithm = HashAlgorithm::from_id(id)
        .ok_or_else(|| err(format!("hash algorithm {id} is not sha-256 (1), sha-384 (7) or sha-512 (8)")))?;
    let Value::Bytes(value) = hash else { return Err(err("the hash is not a byte string".into())) };
    if value.len() != algorithm.digest_len() {
        return Err(err(format!("{} bytes of {}, expected {}", value.len(), algorithm.name(), algorithm.digest_len())));
    }
    Ok(PubkeyHash { algorithm, value })
}

/// One X.509 certificate in DER, bounded, with nothing after it.
pub(crate) fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, RatlsError> {
    if der.len() > MAX_CERT_LEN {
        return Err(RatlsError::TooLarge { what: "a certificate", len: der.len(), max: MAX_CERT_LEN });
    }
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| RatlsError::Certificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(RatlsError::Certificate(format!("{} bytes follow the certificate", rest.len())));
    }
    Ok(cert)
}

/// The evidence of a parsed certificate.
pub(crate) fn evidence_of(cert: &X509Certificate<'_>) -> Result<RatlsEvidence, RatlsError> {
    let found: Vec<_> = cert.extensions().iter().filter(|e| e.oid.as_bytes() == EVIDENCE_OID_DER).collect();
    let extension = match found.as_slice() {
        [] => return Err(RatlsError::NoExtension),
        [one] => decode_extension(one.value)?,
        many => return Err(RatlsError::DuplicateExtension(many.len())),
    };
    Ok(RatlsEvidence { spki: cert.public_key().raw.to_vec(), extension })
}

impl RatlsExtension {
    /// The platform the evidence comes from, when it can be told: the envelope's, or the
    /// quote's (SGX or TDX by its header).
    pub fn platform(&self) -> Option<PlatformKind> {
        match &self.payload {
            RatlsPayload::Lamina(envelope) => Some(envelope.platform),
            RatlsPayload::Quote(quote) => quote_report_data(quote).ok().map(|(kind, _)| kind),
        }
    }
}

impl RatlsEvidence {
    /// Records whether the evidence binds the certificate's key: `ratls.pubkey_hash`, and
    /// `ratls.instance_key` (a Lamina envelope) or `ratls.claims_binding` (a quote). Returns
    /// whether every one passed. The evidence itself is not appraised here.
    pub fn check_binding(&self, a: &mut Appraisal) -> bool {
        let hash = &self.extension.pubkey_hash;
        let mut ok = a.check(
            "ratls.pubkey_hash",
            if hash.matches(&self.spki) {
                Ok(format!("the {} claim is the hash of the certificate's key", hash.algorithm.name()))
            } else {
                Err(format!(
                    "the {} claim {}… is not the hash of the certificate's key {}…: the key was replaced or the \
                     claims were made for another key",
                    hash.algorithm.name(),
                    short_hex(&hash.value),
                    short_hex(&hash.algorithm.digest(&self.spki))
                ))
            },
        );
        ok &= match &self.extension.payload {
            RatlsPayload::Lamina(envelope) => a.check("ratls.instance_key", instance_key_binding(envelope, &self.spki)),
            RatlsPayload::Quote(quote) => {
                a.check("ratls.claims_binding", claims_binding(quote, &self.extension.claims))
            }
        };
        if let Some(served) = &self.extension.served {
            ok &= a.check("ratls.served", served_binding(&self.extension.payload, served));
        }
        ok
    }

    /// What a node's ingress serves, when the certificate says (read, not yet checked against
    /// the evidence: [`RatlsEvidence::check_binding`] does that).
    ///
    /// # Errors
    /// When the claim is there but is not a table.
    pub fn served_table(&self) -> Option<Result<ServedTable, lamina_types::ingress::ServedTableError>> {
        self.extension.served.as_deref().map(ServedTable::decode)
    }

    /// The binding checks alone, in a fresh appraisal (see [`RatlsEvidence::check_binding`]).
    pub fn binding(&self) -> Appraisal {
        let mut a = Appraisal::default();
        self.check_binding(&mut a);
        a
    }
}

/// Whether the evidence binds the served table: a Lamina envelope whose configuration digest is
/// the table's SHA-256 and that names no module (each endpoint names its own).
fn served_binding(payload: &RatlsPayload, served: &[u8]) -> Result<String, String> {
    let RatlsPayload::Lamina(envelope) = payload else {
        return Err("a table of served endpoints is read only with Lamina evidence".into());
    };
    let table = ServedTable::decode(served).map_err(|e| e.to_string())?;
    let claims = Claims::from_cbor(&envelope.claims).map_err(|e| format!("the envelope's claims: {e}"))?;
    if let Some(module) = claims.module_hash {
        return Err(format!("the evidence names module {module} and a table of served endpoints: it must name one"));
    }
    match claims.config_digest {
        Some(digest) if digest == ServedTable::digest_of(served) => Ok(format!(
            "the evidence's configuration digest is the hash of the table of {} served endpoints",
            table.endpoints.len()
        )),
        Some(_) => Err("the evidence's configuration digest is not the hash of the served endpoints: the table was \
                        replaced"
            .into()),
        None => Err("the evidence claims no configuration digest for the served endpoints".into()),
    }
}

fn instance_key_binding(envelope: &Envelope, spki: &[u8]) -> Result<String, String> {
    let claims = Claims::from_cbor(&envelope.claims).map_err(|e| format!("the envelope's claims: {e}"))?;
    match claims.instance_key {
        Some(key) if key == spki => Ok("the envelope's claims bind the certificate's key".into()),
        Some(key) => Err(format!(
            "the envelope's claims bind the key sha256:{}…, not the certificate's key sha256:{}…: the evidence was \
             made for another key",
            short_hex(&Sha256::digest(&key)),
            short_hex(&Sha256::digest(spki))
        )),
        None => Err("the envelope's claims bind no key".into()),
    }
}

fn claims_binding(quote: &[u8], claims: &[u8]) -> Result<String, String> {
    let (kind, report_data) =
        quote_report_data(quote).map_err(|e| format!("the evidence is not an SGX or TDX quote: {e}"))?;
    let expected = Sha256::digest(claims);
    if report_data.get(..32) == Some(&expected[..]) {
        Ok(format!("the {kind} quote's report data begins with SHA-256 of the claims"))
    } else {
        Err(format!(
            "the {kind} quote's report data begins {}…, not SHA-256 of the claims {}…: the claims were changed or the \
             quote was made for other claims",
            short_hex(&report_data),
            short_hex(&expected)
        ))
    }
}

/// The platform and report data of an SGX or TDX quote, read from its header and body alone
/// (nothing is verified).
///
/// # Errors
/// When the header names no version and TEE this knows, or the quote is too short.
pub(crate) fn quote_report_data(quote: &[u8]) -> Result<(PlatformKind, [u8; 64]), String> {
    const HEADER: usize = 48;
    const SGX_REPORT_DATA: usize = 320;
    const TD_REPORT_DATA: usize = 520;
    const TEE_SGX: u32 = 0;
    const TEE_TDX: u32 = 0x81;
    let u16_at = |at: usize| quote.get(at..at + 2).and_then(|b| b.try_into().ok()).map(u16::from_le_bytes);
    let u32_at = |at: usize| quote.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let short = || format!("{} bytes is too short for a quote", quote.len());
    let version = u16_at(0).ok_or_else(short)?;
    let tee = u32_at(4).ok_or_else(short)?;
    let (kind, at) = match (version, tee) {
        (3 | 4, TEE_SGX) => (PlatformKind::Sgx, HEADER + SGX_REPORT_DATA),
        (4, TEE_TDX) => (PlatformKind::Tdx, HEADER + TD_REPORT_DATA),
        (5, _) => match u16_at(HEADER).ok_or_else(short)? {
            1 => (PlatformKind::Sgx, HEADER + 6 + SGX_REPORT_DATA),
            2..=4 => (PlatformKind::Tdx, HEADER + 6 + TD_REPORT_DATA),
            body => return Err(format!("quote v5 body type {body} is unknown")),
        },
        (3 | 4, tee) => return Err(format!("quote v{version} with TEE type {tee:#x}")),
        (version, _) => return Err(format!("quote version {version} is unknown")),
    };
    let report_data = quote.get(at..at + 64).and_then(|b| <[u8; 64]>::try_from(b).ok()).ok_or_else(short)?;
    Ok((kind, report_data))
}

fn short_hex(bytes: &[u8]) -> String {
    hex::encode(bytes.get(..8).unwrap_or(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope { platform: PlatformKind::Sim, claims: vec![0xa0], evidence: vec![1, 2, 3], endorsements: vec![] }
    }

    #[test]
    fn lamina_extension_round_trips_with_the_interoperable_wrapper() {
        let spki = b"not really a key".to_vec();
        let value = lamina_extension(&envelope(), &spki);
        // 60000 as a two-byte tag, then a two-item array.
        assert_eq!(&value[..4], &[0xd9, 0xea, 0x60, 0x82]);
        let ext = decode_extension(&value).expect("decodes");
        assert_eq!(ext.payload, RatlsPayload::Lamina(envelope()));
        assert_eq!(ext.pubkey_hash, PubkeyHash::of(&spki));
        assert!(ext.pubkey_hash.matches(&spki));
        assert_eq!(ext.platform(), Some(PlatformKind::Sim));
        // The claims are canonical: decoding and re-encoding gives the same bytes.
        let again = cbor::encode(&cbor::decode_one(&ext.claims, 1024).expect("claims decode"));
        assert_eq!(again, ext.claims);
    }

    #[test]
    fn malformed_extensions_are_named() {
        let tagged = |tag: u64, v: Value| cbor::encode(&Value::Tag(tag, Box::new(v)));
        let claims = |entries: Vec<(Value, Value)>| Value::Bytes(cbor::encode(&Value::Map(entries)));
        let hash_entry = |id: u64, len: usize| {
            Value::Bytes(cbor::encode(&Value::Array(vec![Value::Integer(id.into()), Value::Bytes(vec![7; len])])))
        };
        let key = |k: &str| Value::Text(k.into());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0x01], "not a tagged"),
            (tagged(1, Value::Array(vec![])), "CBOR tag 1"),
            (tagged(TAG_EVIDENCE, Value::Array(vec![])), "0 items"),
            (tagged(TAG_EVIDENCE, Value::Array(vec![Value::Text("q".into()), Value::Bytes(vec![])])), "evidence"),
            (tagged(TAG_EVIDENCE, Value::Array(vec![Value::Bytes(vec![]), claims(vec![])])), "no `pubkey-hash`"),
            (
                tagged(
                    TAG_EVIDENCE,
                    Value::Array(vec![Value::Bytes(vec![]), claims(vec![(key(PUBKEY_HASH_CLAIM), hash_entry(2, 32))])]),
                ),
                "hash algorithm 2",
            ),
            (
                tagged(
                    TAG_EVIDENCE,
                    Value::Array(vec![Value::Bytes(vec![]), claims(vec![(key(PUBKEY_HASH_CLAIM), hash_entry(1, 31))])]),
                ),
                "31 bytes",
            ),
            (
                tagged(
                    TAG_EVIDENCE,
                    Value::Array(vec![
                        Value::Bytes(vec![1]),
                        claims(vec![
                            (key(PUBKEY_HASH_CLAIM), hash_entry(1, 32)),
                            (key(LAMINA_EVIDENCE_CLAIM), key(LAMINA_EVIDENCE_FORMAT)),
                        ]),
                    ]),
                ),
                "envelope is malformed",
            ),
            (
                tagged(
                    TAG_EVIDENCE,
                    Value::Array(vec![
                        Value::Bytes(vec![1]),
                        claims(vec![
                            (key(PUBKEY_HASH_CLAIM), hash_entry(1, 32)),
                            (key(PUBKEY_HASH_CLAIM), hash_entry(1, 32)),
                        ]),
                    ]),
                ),
                "appears twice",
            ),
        ];
        for (value, needle) in cases {
            let e = decode_extension(&value).expect_err(needle).to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        // A bare quote with the other hash algorithms decodes.
        for (id, len) in [(1, 32), (7, 48), (8, 64)] {
            let v = tagged(
                TAG_EVIDENCE,
                Value::Array(vec![Value::Bytes(vec![9]), claims(vec![(key(PUBKEY_HASH_CLAIM), hash_entry(id, len))])]),
            );
            let ext = decode_extension(&v).expect("decodes");
            assert_eq!(ext.payload, RatlsPayload::Quote(vec![9]));
            assert_eq!(ext.pubkey_hash.value.len(), len);
            assert_eq!(ext.platform(), None);
        }
    }

    /// A test vector from `shared/testvectors` beside the repository (`/work/shared` is three
    /// levels above `/work/main/crates/attest`, four above a worktree's).
    fn vector(name: &str) -> Vec<u8> {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = manifest
            .ancestors()
            .map(|dir| dir.join("shared/testvectors").join(name))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no shared/testvectors/{name} above {}", manifest.display()));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn quote_report_data_agrees_with_dcap_qvl() {
        for (name, kind) in [
            ("dcap-qvl/sgx_quote", PlatformKind::Sgx),
            ("dcap-qvl/tdx_quote", PlatformKind::Tdx),
            ("go-tdx-guest/quote_v5_sample.dat", PlatformKind::Tdx),
            ("trustee/test_data_occlum_quote.dat", PlatformKind::Sgx),
        ] {
            let quote = vector(name);
            let (found, report_data) = quote_report_data(&quote).expect(name);
            assert_eq!(found, kind, "{name}");
            let parsed = dcap_qvl::quote::Quote::parse(&quote).expect(name);
            let reference = match &parsed.report {
                dcap_qvl::quote::Report::SgxEnclave(r) => r.report_data,
                other => other.as_td10().expect("a TD report").report_data,
            };
            assert_eq!(report_data, reference, "{name}");
        }
        for short in [&[][..], &[3, 0, 2, 0, 0, 0, 0, 0][..], &[9, 0, 0, 0, 0, 0, 0, 0][..]] {
            assert!(quote_report_data(short).is_err());
        }
    }

    proptest::proptest! {
        #[test]
        fn quote_reading_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..700)) {
            let _ = quote_report_data(&bytes);
        }
    }
}
