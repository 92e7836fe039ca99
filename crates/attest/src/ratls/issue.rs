//! Issuing attested certificates: a fresh key, claims that bind it, and a self-signed
//! certificate around the envelope the caller's platform made.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lamina_types::{Claims, Envelope, ModuleHash, PlatformKind};
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData as _,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::RatlsError;
use super::extension::{EVIDENCE_OID_ARCS, lamina_extension_serving};

/// How long before its issue a certificate is already valid (clock skew between peers).
const BACKDATE: Duration = Duration::from_secs(60);

/// The default validity of a certificate (the verifier's `max_age` usually ends it sooner).
const DEFAULT_VALIDITY: Duration = Duration::from_secs(60 * 60);

/// The longest validity a certificate may be given (the X.509 time encodings end in 9999).
const MAX_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// A certificate being made: its key exists; the envelope that binds it does not yet.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use lamina_attest::ratls::CertificateRequest;
/// use lamina_tee::Platform as _;
/// use lamina_types::ModuleHash;
///
/// // Any platform attests; sim here (state in a scratch directory).
/// let state = tempfile::tempdir()?;
/// let platform = lamina_tee::sim::SimPlatform::open(state.path())?;
///
/// let request = CertificateRequest::new()?;
/// let claims = request.claims(platform.info().kind, vec![], Some(ModuleHash::of(b"app.wasm")), None);
/// let envelope = lamina_tee::attest(&platform, &claims)?;
/// let cert = request.finish(&envelope)?; // cert.cert_der, cert.key_der
/// # Ok(()) }
/// ```
pub struct CertificateRequest {
    key: KeyPair,
    spki: Vec<u8>,
    nonce: [u8; 32],
    names: Vec<String>,
    validity: Duration,
    /// The table of what a node's ingress serves, when the certificate is its.
    served: Option<Vec<u8>>,
}

impl std::fmt::Debug for CertificateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateRequest")
            .field("spki", &hex::encode(&self.spki))
            .field("names", &self.names)
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

impl CertificateRequest {
    /// A new ECDSA P-256 key and a fresh 32-byte nonce, from the operating system's generator.
    ///
    /// # Errors
    /// [`RatlsError::Issue`] when no randomness is available.
    pub fn new() -> Result<Self, RatlsError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| RatlsError::Issue(e.to_string()))?;
        let mut nonce = [0; 32];
        rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut nonce)
            .map_err(|_| RatlsError::Issue("the operating system gave no randomness for the nonce".into()))?;
        let spki = key.subject_public_key_info();
        Ok(Self { key, spki, nonce, names: Vec::new(), validity: DEFAULT_VALIDITY, served: None })
    }

    /// A request around an existing ECDSA P-256 key (PKCS#8 DER), for an attester whose key
    /// outlives its certificates: peers pin the key, and each new certificate carries fresh
    /// evidence for it.
    ///
    /// # Errors
    /// [`RatlsError::Issue`] when the key is not a P-256 PKCS#8 key, or no randomness is
    /// available.
    pub fn with_key(pkcs8_der: &[u8]) -> Result<Self, RatlsError> {
        let der = PrivatePkcs8KeyDer::from(pkcs8_der.to_vec());
        let key = KeyPair::from_pkcs8_der_and_sign_algo(&der, &PKCS_ECDSA_P256_SHA256)
            .map_err(|e| RatlsError::Issue(format!("the key is not an ECDSA P-256 PKCS#8 key: {e}")))?;
        let mut request = Self::new()?;
        request.spki = key.subject_public_key_info();
        request.key = key;
        Ok(request)
    }

    /// DNS names for the certificate's subjectAltName (none by default: Lamina's verifiers
    /// identify a peer by its evidence, not a name).
    #[must_use]
    pub fn with_names(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.names = names.into_iter().map(Into::into).collect();
        self
    }

    /// How long the certificate is valid after it is made (default one hour, at most ten years).
    #[must_use]
    pub fn with_validity(mut self, validity: Duration) -> Self {
        self.validity = validity.min(MAX_VALIDITY);
        self
    }

    /// A certificate for a node's ingress, declaring what it serves: the claims must name no
    /// module and carry [`CertificateRequest::served_digest`] as their configuration digest.
    #[must_use]
    pub fn serving(mut self, table: &lamina_types::ingress::ServedTable) -> Self {
        self.served = Some(table.encode());
        self
    }

    /// The configuration digest the claims of a [serving](CertificateRequest::serving)
    /// certificate carry.
    pub fn served_digest(&self) -> Option<[u8; 32]> {
        self.served.as_deref().map(lamina_types::ingress::ServedTable::digest_of)
    }

    /// The key's SubjectPublicKeyInfo (DER): the `instance_key` the claims must carry.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// A fresh random nonce for the claims (a certificate has no verifier's challenge to carry).
    pub fn nonce(&self) -> &[u8] {
        &self.nonce
    }

    /// Claims for this certificate: its key as `instance_key`, its nonce, issued now.
    pub fn claims(
        &self,
        platform: PlatformKind,
        runtime_measurement: Vec<u8>,
        module_hash: Option<ModuleHash>,
        config_digest: Option<[u8; 32]>,
    ) -> Claims {
        Claims {
            platform,
            runtime_measurement,
            module_hash,
            config_digest,
            instance_key: Some(self.spki.clone()),
            nonce: self.nonce.to_vec(),
            issued_at: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        }
    }

    /// Signs the certificate around `envelope`, valid from a minute ago.
    ///
    /// # Errors
    /// [`RatlsError::KeyNotBound`] when the envelope's claims do not carry this request's key
    /// as `instance_key` (every verifier would refuse the certificate), [`RatlsError::Issue`]
    /// when the certificate cannot be made.
    pub fn finish(self, envelope: &Envelope) -> Result<AttestedCert, RatlsError> {
        self.finish_at(envelope, SystemTime::now())
    }

    /// [`CertificateRequest::finish`] at a given time (the certificate is valid from `now`
    /// less a minute).
    ///
    /// # Errors
    /// As [`CertificateRequest::finish`].
    pub fn finish_at(self, envelope: &Envelope, now: SystemTime) -> Result<AttestedCert, RatlsError> {
        let claims = envelope.decode_claims().map_err(|e| RatlsError::KeyNotBound(e.to_string()))?;
        match &claims.instance_key {
            Some(key) if *key == self.spki => {}
            Some(_) => return Err(RatlsError::KeyNotBound("the claims carry another instance_key".into())),
            None => return Err(RatlsError::KeyNotBound("the claims carry no instance_key".into())),
        }
        if let Some(digest) = self.served_digest()
            && (claims.config_digest != Some(digest) || claims.module_hash.is_some())
        {
            return Err(RatlsError::Issue(
                "the claims of a serving certificate name no module and carry the served table's digest".into(),
            ));
        }
        let issue = |e: rcgen::Error| RatlsError::Issue(e.to_string());
        let mut params = CertificateParams::new(self.names.clone()).map_err(issue)?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "Lamina attested instance");
        name.push(DnType::OrganizationName, "Lamina");
        params.distinguished_name = name;
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + since_epoch.saturating_sub(BACKDATE);
        params.not_after = epoch + since_epoch + self.validity;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.custom_extensions.push(CustomExtension::from_oid_content(
            EVIDENCE_OID_ARCS,
            lamina_extension_serving(envelope, &self.spki, self.served.as_deref()),
        ));
        let cert = params.self_signed(&self.key).map_err(issue)?;
        Ok(AttestedCert { cert_der: cert.der().to_vec(), key_der: self.key.serialize_der() })
    }
}

/// An attested certificate and its private key.
#[derive(Clone)]
pub struct AttestedCert {
    /// The certificate (DER).
    pub cert_der: Vec<u8>,
    /// The private key (PKCS#8 DER).
    pub key_der: Vec<u8>,
}

impl AttestedCert {
    /// The certificate, for rustls.
    pub fn certificate(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.cert_der.clone())
    }

    /// The private key, for rustls.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

impl std::fmt::Debug for AttestedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestedCert").field("cert_der", &hex::encode(&self.cert_der)).finish_non_exhaustive()
    }
}
