//! Appraising a peer's attested certificate, and the rustls verifiers that do it in a handshake.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme};
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::X509Certificate;

use super::extension::{evidence_of, parse_certificate, quote_report_data};
use super::{AttestedCert, RatlsError, RatlsPayload, Refusal};
use crate::{Appraisal, Expect, Inputs, Verifier};

/// How long a verified certificate is remembered by default, so that a peer reconnecting with
/// the same certificate is not appraised again (never past its validity or the policy's
/// `max_age`).
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);

/// How many verified certificates a verifier remembers.
const CACHE_ENTRIES: usize = 256;

/// Appraises an attested certificate (DER) at `at`: the certificate itself, its key binding,
/// its evidence, and the verifier's policy (see the [module docs](super) for the checks).
///
/// `collateral` is DCAP collateral for SGX and TDX evidence. Nothing is cached; this is the
/// whole work of one peer verification, callable from a benchmark.
pub fn appraise_certificate(
    verifier: &Verifier,
    cert_der: &[u8],
    collateral: Option<&[u8]>,
    at: SystemTime,
) -> Appraisal {
    appraise(verifier, cert_der, collateral, at, None).0
}

/// Where a relying party's request goes on a server that serves several workloads (a node's
/// ingress): its certificate declares the module behind each route, and the policy's module
/// rule is applied to the one this request reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The host the request names (`Host`), if any.
    pub host: Option<String>,
    /// The request's path, without its query.
    pub path: String,
}

impl Destination {
    /// The destination of a URL (`https://host:port/path?query`).
    ///
    /// # Errors
    /// When the text is not a URL with a host.
    pub fn of_url(url: &str) -> Result<Self, String> {
        let rest = url.split_once("://").map(|(_, r)| r).ok_or_else(|| format!("`{url}` is not a URL"))?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err(format!("`{url}` carries a user name or password"));
        }
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split_once(']').map(|(h, _)| h).ok_or_else(|| format!("`{url}`: an unclosed ["))?,
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        if host.is_empty() {
            return Err(format!("`{url}` names no host"));
        }
        let path = tail.split(['?', '#']).next().unwrap_or("");
        let path = if path.is_empty() { "/" } else { path };
        Ok(Self { host: Some(host.to_owned()), path: path.to_owned() })
    }
}

/// The appraisal, and the end of the certificate's validity when it could be read.
fn appraise(
    verifier: &Verifier,
    cert_der: &[u8],
    collateral: Option<&[u8]>,
    at: SystemTime,
    destination: Option<&Destination>,
) -> (Appraisal, Option<SystemTime>) {
    let mut a = Appraisal::default();
    let cert = match parse_certificate(cert_der) {
        Ok(cert) => cert,
        Err(e) => {
            a.fail("ratls.certificate", e.to_string());
            return (a, None);
        }
    };
    a.pass("ratls.certificate", format!("an X.509 certificate of {} bytes", cert_der.len()));
    a.check(
        "ratls.signature",
        cert.verify_signature(None)
            .map(|()| "self-signed: its signature verifies under its own key".to_owned())
            .map_err(|e| format!("its self-signature does not verify under its own key: {e}")),
    );
    let not_after = check_validity(&mut a, &cert, at);
    let evidence = match evidence_of(&cert) {
        Ok(evidence) => evidence,
        Err(e) => {
            a.fail("ratls.extension", e.to_string());
            return (a, not_after);
        }
    };
    a.pass(
        "ratls.extension",
        match &evidence.extension.payload {
            RatlsPayload::Lamina(envelope) => format!("a Lamina envelope of {} evidence", envelope.platform),
            RatlsPayload::Quote(quote) => format!("a bare TEE quote of {} bytes (interoperable RA-TLS)", quote.len()),
        },
    );
    evidence.check_binding(&mut a);
    let mut appraised = match &evidence.extension.payload {
        RatlsPayload::Lamina(envelope) => verifier.appraise(
            envelope,
            &Expect { nonce: None, instance_key: Some(&evidence.spki), collateral, endorsements: &[], at },
        ),
        RatlsPayload::Quote(quote) => appraise_quote(verifier, quote, collateral, at),
    };
    // The certificate's checks first, then the evidence's and the policy's.
    a.checks.append(&mut appraised.checks);
    appraised.checks = a.checks;
    if let (Some(destination), Some(table)) = (destination, evidence.served_table()) {
        check_destination(verifier, &mut appraised, destination, table);
    }
    (appraised, not_after)
}

/// On a certificate that declares what it serves: `ratls.route`, the endpoint the request
/// reaches, and the policy's module rule applied to that endpoint's module in place of the
/// evidence's (which names none).
fn check_destination(
    verifier: &Verifier,
    a: &mut Appraisal,
    destination: &Destination,
    table: Result<lamina_types::ingress::ServedTable, lamina_types::ingress::ServedTableError>,
) {
    let table = match table {
        Ok(table) => table,
        Err(e) => {
            a.fail("ratls.route", e.to_string());
            return;
        }
    };
    let Some(endpoint) = table.endpoint_for(destination.host.as_deref(), &destination.path) else {
        a.fail(
            "ratls.route",
            format!(
                "nothing this server declares serves {}{}: no module can be checked for it",
                destination.host.as_deref().unwrap_or(""),
                destination.path
            ),
        );
        return;
    };
    a.pass(
        "ratls.route",
        format!(
            "{}{} is workload {} (replica {}), module {}",
            destination.host.as_deref().unwrap_or(""),
            destination.path,
            endpoint.workload,
            endpoint.replica,
            endpoint.module
        ),
    );
    if let Some(policy) = &verifier.policy {
        a.checks.retain(|c| c.name != "policy.module_hash");
        a.check("policy.module_hash", policy.allows_module(&endpoint.module));
    }
}

fn check_validity(a: &mut Appraisal, cert: &X509Certificate<'_>, at: SystemTime) -> Option<SystemTime> {
    let validity = cert.validity();
    let (from, until) = (validity.not_before.timestamp(), validity.not_after.timestamp());
    let now = at.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if now < from {
        a.fail("ratls.validity", format!("not valid before {} ({} s from now)", validity.not_before, from - now));
    } else if now > until {
        a.fail("ratls.validity", format!("expired at {} ({} s ago)", validity.not_after, now - until));
    } else {
        a.pass("ratls.validity", format!("valid from {} to {}", validity.not_before, validity.not_after));
    }
    u64::try_from(until).ok().map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
}

/// A bare quote (a Gramine or Intel SGX SDK certificate): the platform's own appraisal, and the
/// policy, which cannot allow a named module since the quote names none.
fn appraise_quote(verifier: &Verifier, quote: &[u8], collateral: Option<&[u8]>, at: SystemTime) -> Appraisal {
    let kind = match quote_report_data(quote) {
        Ok((kind, _)) => kind,
        Err(e) => {
            let mut a = Appraisal::default();
            a.fail("ratls.evidence", format!("the evidence is neither a Lamina envelope nor an SGX or TDX quote: {e}"));
            return a;
        }
    };
    let inputs = Inputs { evidence: quote, endorsements: &[], collateral, anchors: &verifier.anchors, at };
    let mut a = verifier.appraise_native(kind, &inputs);
    if let Some(policy) = &verifier.policy
        && !policy.module_hashes.is_empty()
    {
        a.fail(
            "policy.module_hash",
            "the peer's evidence is a bare quote that names no Lamina module, and the policy lists modules",
        );
    }
    a
}

/// A function told of every appraisal.
type Observer = Arc<dyn Fn(&Appraisal) + Send + Sync>;

/// What the server and client verifiers share.
#[derive(Clone)]
struct Core {
    verifier: Arc<Verifier>,
    collateral: Option<Arc<[u8]>>,
    algorithms: WebPkiSupportedAlgorithms,
    observer: Option<Observer>,
    cache_ttl: Duration,
    state: Arc<State>,
    /// Where the requests over this verifier's connections go, for servers that declare what
    /// they serve.
    destination: Option<Arc<Destination>>,
}

#[derive(Default)]
struct State {
    last: Mutex<Option<Appraisal>>,
    cache: Mutex<HashMap<[u8; 32], Remembered>>,
}

struct Remembered {
    appraisal: Appraisal,
    verified_at: SystemTime,
    until: SystemTime,
}

impl Core {
    fn new(verifier: Verifier) -> Self {
        Self {
            verifier: Arc::new(verifier),
            collateral: None,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
            observer: None,
            cache_ttl: DEFAULT_CACHE_TTL,
            state: Arc::default(),
            destination: None,
        }
    }

    fn verify(&self, end_entity: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
        let at = UNIX_EPOCH + Duration::from_secs(now.as_secs());
        let key: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if let Some(appraisal) = self.recall(&key, at) {
            self.record(appraisal);
            return Ok(());
        }
        let (appraisal, not_after) =
            appraise(&self.verifier, end_entity, self.collateral.as_deref(), at, self.destination.as_deref());
        let verified = appraisal.verified();
        let refusal = (!verified).then(|| Refusal::of(&appraisal));
        if verified {
            self.remember(key, &appraisal, at, not_after);
        }
        self.record(appraisal);
        match refusal {
            None => Ok(()),
            Some(refusal) => {
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(refusal)))))
            }
        }
    }

    fn record(&self, appraisal: Appraisal) {
        if let Some(observer) = &self.observer {
            observer(&appraisal);
        }
        *self.state.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(appraisal);
    }

    fn recall(&self, key: &[u8; 32], at: SystemTime) -> Option<Appraisal> {
        let cache = self.state.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = cache.get(key)?;
        (hit.verified_at <= at && at < hit.until).then(|| hit.appraisal.clone())
    }

    fn remember(&self, key: [u8; 32], appraisal: &Appraisal, at: SystemTime, not_after: Option<SystemTime>) {
        if self.cache_ttl.is_zero() {
            return;
        }
        let mut until = at + self.cache_ttl;
        if let Some(not_after) = not_after {
            until = until.min(not_after);
        }
        if let (Some(policy), Some(claims)) = (&self.verifier.policy, &appraisal.claims) {
            until = until.min(UNIX_EPOCH + Duration::from_secs(claims.issued_at) + policy.max_age);
        }
        let mut cache = self.state.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, r| at < r.until);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, Remembered { appraisal: appraisal.clone(), verified_at: at, until });
    }

    fn last(&self) -> Option<Appraisal> {
        self.state.last.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn tls12(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> SignatureResult {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn tls13(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> SignatureResult {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
}

type SignatureResult = Result<HandshakeSignatureValid, rustls::Error>;

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("policy", &self.verifier.policy.is_some())
            .field("collateral", &self.collateral.as_ref().map(|c| c.len()))
            .field("observer", &self.observer.is_some())
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

macro_rules! builder_methods {
    () => {
        /// A verifier that appraises the peer with `verifier` (its policy and trust anchors).
        pub fn new(verifier: Verifier) -> Self {
            Self { core: Core::new(verifier) }
        }

        /// DCAP collateral (PCCS JSON) for peers with SGX or TDX evidence.
        #[must_use]
        pub fn with_collateral(mut self, collateral: Vec<u8>) -> Self {
            self.core.collateral = Some(collateral.into());
            self
        }

        /// Calls `observer` with every appraisal, accepted or refused (to log it, or to issue an
        /// EAR for the peer).
        #[must_use]
        pub fn on_appraisal(mut self, observer: impl Fn(&Appraisal) + Send + Sync + 'static) -> Self {
            self.core.observer = Some(Arc::new(observer));
            self
        }

        /// How long a verified certificate is remembered ([`DEFAULT_CACHE_TTL`] unless set;
        /// zero remembers nothing, so every handshake appraises the peer afresh).
        #[must_use]
        pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
            self.core.cache_ttl = ttl;
            self
        }

        /// The latest appraisal this verifier (or a clone of it) made, of any connection.
        pub fn last_appraisal(&self) -> Option<Appraisal> {
            self.core.last()
        }
    };
}

/// A rustls client's verifier of an attested server (see the [module docs](super)).
///
/// Clones share the latest appraisal and the cache of verified certificates.
#[derive(Clone, Debug)]
pub struct AttestedServerVerifier {
    core: Core,
}

impl AttestedServerVerifier {
    builder_methods!();

    /// Requests over this verifier's connections go to `destination`: on a server whose
    /// certificate declares the modules behind its routes (a node's ingress), the route must be
    /// declared and its module pass the policy. Without a destination such a server passes
    /// only a policy that allows any module.
    #[must_use]
    pub fn for_destination(mut self, destination: Destination) -> Self {
        self.core.destination = Some(Arc::new(destination));
        // A remembered appraisal was of another destination's route.
        self.core.state = Arc::default();
        self
    }
}

impl ServerCertVerifier for AttestedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.core.verify(end_entity, now).map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> SignatureResult {
        self.core.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> SignatureResult {
        self.core.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.core.algorithms.supported_schemes()
    }
}

/// A rustls server's verifier of attested clients (see the [module docs](super)); a client
/// certificate is mandatory.
///
/// Clones share the latest appraisal and the cache of verified certificates.
#[derive(Clone, Debug)]
pub struct AttestedClientVerifier {
    core: Core,
}

impl AttestedClientVerifier {
    builder_methods!();
}

impl ClientCertVerifier for AttestedClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.core.verify(end_entity, now).map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> SignatureResult {
        self.core.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> SignatureResult {
        self.core.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.core.algorithms.supported_schemes()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls(e: rustls::Error) -> RatlsError {
    RatlsError::Tls(e.to_string())
}

/// A TLS 1.3 server configuration presenting `cert` and requiring attested clients.
///
/// Sessions are not resumed, so every connection appraises its client.
///
/// # Errors
/// [`RatlsError::Tls`] when rustls refuses the key or certificate.
pub fn server_config(
    cert: &AttestedCert,
    verifier: AttestedClientVerifier,
) -> Result<rustls::ServerConfig, RatlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(vec![cert.certificate()], cert.private_key())
        .map_err(tls)?;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// A TLS 1.3 server configuration presenting `cert` to any client (no client certificate):
/// what a workload serving the public (`lamina serve --attested-tls`) offers, so that each
/// client can appraise it before sending anything. ALPN offers HTTP/2 and HTTP/1.1.
///
/// # Errors
/// [`RatlsError::Tls`] when rustls refuses the key or certificate.
pub fn open_server_config(cert: &AttestedCert) -> Result<rustls::ServerConfig, RatlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_no_client_auth()
        .with_single_cert(vec![cert.certificate()], cert.private_key())
        .map_err(tls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A TLS 1.3 client configuration for a relying party (a data owner, a device) that presents
/// no certificate of its own and accepts a server only when `verifier` accepts its attested
/// certificate: the handshake fails otherwise, before any request is sent.
///
/// ```no_run
/// use lamina_attest::ratls::{AttestedServerVerifier, relying_party_config};
/// use lamina_attest::{Policy, TrustAnchors, Verifier};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut anchors = TrustAnchors::default();
/// let policy = Policy::load(std::path::Path::new("policy.toml"), &mut anchors)?;
/// let verifier = AttestedServerVerifier::new(Verifier::new(Some(policy), anchors));
/// let config = relying_party_config(verifier.clone())?;
/// // Use `config` with any rustls client (tokio-rustls, hyper-rustls, reqwest's
/// // `use_preconfigured_tls`); after the handshake, `verifier.last_appraisal()` says why the
/// // server was accepted.
/// # let _ = config;
/// # Ok(())
/// # }
/// ```
///
/// Sessions are not resumed, so every connection appraises its server.
///
/// # Errors
/// [`RatlsError::Tls`] when rustls refuses the configuration.
pub fn relying_party_config(verifier: AttestedServerVerifier) -> Result<rustls::ClientConfig, RatlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A TLS 1.3 client configuration presenting `cert` and requiring an attested server.
///
/// Sessions are not resumed, so every connection appraises its server.
///
/// # Errors
/// [`RatlsError::Tls`] when rustls refuses the key or certificate.
pub fn client_config(
    cert: &AttestedCert,
    verifier: AttestedServerVerifier,
) -> Result<rustls::ClientConfig, RatlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(vec![cert.certificate()], cert.private_key())
        .map_err(tls)?;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use lamina_types::{Claims, PlatformKind};

    use super::*;
    use crate::{Policy, TrustAnchors};

    fn verified(issued_at: Option<SystemTime>) -> Appraisal {
        let mut a = Appraisal::new(PlatformKind::Sim);
        a.pass("sim.signature", "fine");
        a.claims = issued_at.map(|t| Claims {
            platform: PlatformKind::Sim,
            runtime_measurement: vec![],
            module_hash: None,
            config_digest: None,
            instance_key: None,
            nonce: vec![0; 8],
            issued_at: t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs(),
        });
        a
    }

    #[test]
    fn remembered_verdicts_end_with_the_ttl_the_certificate_and_max_age() {
        let policy = Policy { max_age: Duration::from_secs(300), ..Policy::default() };
        let core = Core::new(Verifier::new(Some(policy), TrustAnchors::default()));
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let secs = Duration::from_secs;

        // Claims issued 250 s ago are good for 50 s more under max_age = 5 min.
        core.remember([1; 32], &verified(Some(t0 - secs(250))), t0, Some(t0 + secs(3600)));
        assert!(core.recall(&[1; 32], t0 + secs(49)).is_some());
        assert!(core.recall(&[1; 32], t0 + secs(50)).is_none());
        assert!(core.recall(&[1; 32], t0 - secs(1)).is_none(), "never before the appraisal");
        assert!(core.recall(&[2; 32], t0).is_none());

        // Without claims, the cache's own lifetime; and never past the certificate's validity.
        core.remember([3; 32], &verified(None), t0, None);
        assert!(core.recall(&[3; 32], t0 + DEFAULT_CACHE_TTL - secs(1)).is_some());
        assert!(core.recall(&[3; 32], t0 + DEFAULT_CACHE_TTL).is_none());
        core.remember([4; 32], &verified(None), t0, Some(t0 + secs(5)));
        assert!(core.recall(&[4; 32], t0 + secs(5)).is_none());

        let uncached = Core { cache_ttl: Duration::ZERO, ..core.clone() };
        uncached.remember([5; 32], &verified(None), t0, None);
        assert!(uncached.recall(&[5; 32], t0).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let core = Core::new(Verifier::default());
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for i in 0..CACHE_ENTRIES * 2 {
            let mut key = [0; 32];
            key[..8].copy_from_slice(&i.to_le_bytes());
            core.remember(key, &verified(None), t0, None);
        }
        assert!(core.state.cache.lock().expect("not poisoned").len() <= CACHE_ENTRIES);
    }
}
