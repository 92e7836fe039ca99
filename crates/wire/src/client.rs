//! A client of the control plane's API, for `lamina` commands and node agents: TLS pinned to
//! the control plane's certificate fingerprint (from a join token, or the control plane's state
//! directory), so no certificate authority is involved and a man in the middle gets nowhere.

use std::sync::Arc;
use std::time::Duration;

use lamina_types::error_chain as chain;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};

use crate::paths;

/// Why a call to the control plane failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// It could not be reached, or the TLS handshake failed (a wrong fingerprint fails here).
    #[error("cannot reach the control plane at {url}: {reason}")]
    Unreachable {
        /// The control plane's address.
        url: String,
        /// Why.
        reason: String,
    },
    /// It answered with an error.
    #[error("the control plane refused: {message} (HTTP {status})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
    /// Its answer was not what the API documents.
    #[error("the control plane's answer is malformed: {0}")]
    Malformed(String),
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo (DER): the control plane's fingerprint.
///
/// # Errors
/// When the certificate cannot be parsed.
pub fn spki_fingerprint(cert_der: &[u8]) -> Result<[u8; 32], String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(Sha256::digest(cert.public_key().raw).into())
}

/// Accepts the control plane whose key has this fingerprint; with a verifier, only when the
/// certificate's evidence (RA-TLS) also passes the verifier's policy.
struct Pinned {
    fingerprint: [u8; 32],
    verifier: Option<Arc<lamina_attest::Verifier>>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for Pinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinned").field("fingerprint", &hex::encode(self.fingerprint)).finish_non_exhaustive()
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found = spki_fingerprint(end_entity.as_ref()).map_err(rustls::Error::General)?;
        if found != self.fingerprint {
            return Err(rustls::Error::General(format!(
                "the control plane's key has fingerprint {}, not the expected {}",
                hex::encode(found),
                hex::encode(self.fingerprint)
            )));
        }
        if let Some(verifier) = &self.verifier {
            let at = std::time::UNIX_EPOCH + Duration::from_secs(now.as_secs());
            let appraisal = lamina_attest::ratls::appraise_certificate(verifier, end_entity.as_ref(), None, at);
            if !appraisal.verified() {
                return Err(rustls::Error::General(format!(
                    "the control plane's evidence does not pass this client's policy for it: {}",
                    appraisal.reasons().join("; ")
                )));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A client of one control plane.
#[derive(Debug, Clone)]
pub struct ControlClient {
    http: reqwest::blocking::Client,
    /// The control plane's addresses: one, or each replica's.
    bases: Arc<Vec<String>>,
    /// The one that answered last.
    current: Arc<std::sync::atomic::AtomicUsize>,
    auth: Option<String>,
}

impl ControlClient {
    /// A client of the control plane at `base` (`https://host:port`) whose key has this
    /// fingerprint, sending `auth` as its bearer credential (the operator's admin token).
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] when the TLS configuration cannot be built.
    pub fn new(base: &str, fingerprint: [u8; 32], auth: Option<String>) -> Result<Self, ClientError> {
        Self::build(base, fingerprint, None, None, auth)
    }

    /// A client for a node: it presents its attested certificate, and accepts the control plane
    /// only when its key has this fingerprint and, with a verifier, its evidence passes it
    /// (mutually attested TLS).
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] when the TLS configuration cannot be built.
    pub fn attested(
        base: &str,
        fingerprint: [u8; 32],
        verifier: Option<Arc<lamina_attest::Verifier>>,
        cert: &lamina_attest::ratls::AttestedCert,
    ) -> Result<Self, ClientError> {
        Self::build(base, fingerprint, verifier, Some(cert), None)
    }

    fn build(
        base: &str,
        fingerprint: [u8; 32],
        verifier: Option<Arc<lamina_attest::Verifier>>,
        cert: Option<&lamina_attest::ratls::AttestedCert>,
        auth: Option<String>,
    ) -> Result<Self, ClientError> {
        let tls = tls_config(base, fingerprint, verifier, cert)?;
        let http = reqwest::blocking::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| ClientError::Unreachable { url: base.to_owned(), reason: e.to_string() })?;
        let bases: Vec<String> =
            base.split(',').map(|b| b.trim().trim_end_matches('/').to_owned()).filter(|b| !b.is_empty()).collect();
        Ok(ControlClient { http, bases: Arc::new(bases), current: Arc::default(), auth })
    }

    /// The addresses it tries, the one that answered last first.
    pub fn bases(&self) -> &[String] {
        &self.bases
    }

    /// Sends a request to the control plane; when it cannot be reached at one address (a
    /// replica that died), the next one is tried.
    fn send<T: DeserializeOwned>(
        &self,
        make: impl Fn(&str) -> reqwest::blocking::RequestBuilder,
    ) -> Result<T, ClientError> {
        use std::sync::atomic::Ordering;
        let first = self.current.load(Ordering::Relaxed);
        let mut last = ClientError::Unreachable { url: String::new(), reason: "no control-plane address".into() };
        for i in 0..self.bases.len() {
            let at = (first + i) % self.bases.len();
            let base = &self.bases[at];
            let req = make(base);
            let req = match &self.auth {
                Some(token) => req.bearer_auth(token),
                None => req,
            };
            match req.send() {
                Ok(resp) => {
                    self.current.store(at, Ordering::Relaxed);
                    return Self::answer(resp);
                }
                Err(e) => last = ClientError::Unreachable { url: base.clone(), reason: chain(&e) },
            }
        }
        Err(last)
    }

    fn answer<T: DeserializeOwned>(resp: reqwest::blocking::Response) -> Result<T, ClientError> {
        let status = resp.status();
        let body = resp.text().map_err(|e| ClientError::Malformed(e.to_string()))?;
        if !status.is_success() {
            let message = serde_json::from_str::<crate::ErrorBody>(&body).map_or(body, |b| b.error);
            return Err(ClientError::Refused { status: status.as_u16(), message });
        }
        let body = if body.is_empty() { "null".to_owned() } else { body };
        serde_json::from_str(&body).map_err(|e| ClientError::Malformed(e.to_string()))
    }

    /// `GET path`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(|base| self.http.get(format!("{base}{path}")))
    }

    /// `POST path` with a JSON body.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        self.send(|base| self.http.post(format!("{base}{path}")).json(body))
    }

    /// `POST path` with a binary body.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn post_bytes<T: DeserializeOwned>(&self, path: &str, body: Vec<u8>) -> Result<T, ClientError> {
        self.send(|base| self.http.post(format!("{base}{path}")).body(body.clone()))
    }

    /// `PUT path` with a JSON body.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        self.send(|base| self.http.put(format!("{base}{path}")).json(body))
    }

    /// `PUT path` with a binary body.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn put_bytes<T: DeserializeOwned>(&self, path: &str, body: Vec<u8>) -> Result<T, ClientError> {
        self.send(|base| self.http.put(format!("{base}{path}")).body(body.clone()))
    }

    /// `PUT path` with a text body.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn put_text<T: DeserializeOwned>(&self, path: &str, body: String) -> Result<T, ClientError> {
        self.send(|base| self.http.put(format!("{base}{path}")).body(body.clone()))
    }

    /// `DELETE path`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.send::<serde::de::IgnoredAny>(|base| self.http.delete(format!("{base}{path}"))).map(|_| ())
    }
}

/// The API, one method per route: what each takes and answers is typed in [`crate::bodies`],
/// and the paths come from [`crate::paths`]. (`get`, `post` and the rest above are the raw
/// calls these are made of, for tests of the API itself.)
impl ControlClient {
    /// `GET /v1/health`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn health(&self) -> Result<crate::Health, ClientError> {
        self.get(paths::HEALTH)
    }

    /// `POST /v1/challenge`: a fresh nonce for evidence to answer.
    ///
    /// # Errors
    /// [`ClientError`]; `Refused` with 429 when this client asked too often.
    pub fn challenge(&self) -> Result<crate::Challenge, ClientError> {
        self.send(|base| self.http.post(format!("{base}{}", paths::CHALLENGE)))
    }

    /// `POST /v1/tokens` (admin): a join token.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn create_token(&self, request: &crate::TokenRequest) -> Result<crate::TokenIssued, ClientError> {
        self.post(paths::TOKENS, request)
    }

    /// `POST /v1/modules` (admin): uploads a module; the control plane knows it by its hash.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn upload_module(&self, wasm: Vec<u8>) -> Result<crate::ModuleUploaded, ClientError> {
        self.post_bytes(paths::MODULES, wasm)
    }

    /// `PUT /v1/deployments` (admin): deploys workloads whose modules it knows.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn deploy(&self, deployment: &lamina_types::Deployment) -> Result<crate::Deployed, ClientError> {
        self.put(paths::DEPLOYMENTS, deployment)
    }

    /// `DELETE /v1/deployments/{name}` (admin).
    ///
    /// # Errors
    /// [`ClientError`]; `Refused` with 404 for a workload that is not deployed.
    pub fn undeploy(&self, workload: &str) -> Result<(), ClientError> {
        self.delete(&paths::deployment(workload))
    }

    /// `GET /v1/status` (admin).
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn status(&self) -> Result<crate::Status, ClientError> {
        self.get(paths::STATUS)
    }

    /// `GET /v1/endpoints`: where the HTTP workloads are served (operator).
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn endpoints(&self) -> Result<crate::Endpoints, ClientError> {
        self.get(paths::ENDPOINTS)
    }

    /// `POST /v1/nodes/enroll`: a node enrols with a join token and evidence, over TLS with
    /// its attested certificate.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn enrol(&self, request: &crate::EnrolRequest) -> Result<crate::EnrolResponse, ClientError> {
        self.post(paths::ENROL, request)
    }

    /// `DELETE /v1/nodes/{name}` (admin).
    ///
    /// # Errors
    /// [`ClientError`]; `Refused` with 404 for a node that is not enrolled.
    pub fn remove_node(&self, node: &str) -> Result<crate::NodeRemoved, ClientError> {
        let path = paths::node(node);
        self.send(|base| self.http.delete(format!("{base}{path}")))
    }

    /// `POST /v1/replicas/cluster-key`: a replica's evidence for the cluster key.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn cluster_key(&self, request: &crate::ClusterKeyRequest) -> Result<crate::ClusterKeyResponse, ClientError> {
        self.post(paths::CLUSTER_KEY, request)
    }

    /// `GET /v1/nodes/{name}/artifacts/{hash}`: a module compiled for the node, signed.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn artifact(
        &self,
        node: &str,
        module: &lamina_types::ModuleHash,
    ) -> Result<crate::SignedArtifact, ClientError> {
        self.get(&paths::artifact(node, module))
    }

    /// `POST /v1/nodes/{name}/attest`: fresh evidence of a node.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn attest(&self, node: &str, request: &crate::AttestRequest) -> Result<crate::AttestVerdict, ClientError> {
        self.post(&paths::attest(node), request)
    }

    /// `POST /v1/nodes/{name}/heartbeat`: answered with the node's signed desired state.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn heartbeat(
        &self,
        node: &str,
        request: &crate::HeartbeatRequest,
    ) -> Result<crate::SignedDesired, ClientError> {
        self.post(&paths::heartbeat(node), request)
    }

    /// `POST /v1/nodes/{name}/release`: an instance's secrets and sealing root, encrypted to the
    /// key its evidence binds.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn release(
        &self,
        node: &str,
        request: &crate::ReleaseRequest,
    ) -> Result<crate::release::Released, ClientError> {
        self.post(&paths::release(node), request)
    }

    /// `POST /v1/nodes/{name}/topic-keys`: topic keys, encrypted to an attested instance.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn topic_keys(
        &self,
        node: &str,
        request: &crate::TopicKeysRequest,
    ) -> Result<crate::release::Released, ClientError> {
        self.post(&paths::topic_keys(node), request)
    }

    /// `GET /v1/nodes/{name}/desired`: the node's signed desired state, once its generation
    /// is not `query.after` (a long poll).
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn desired(&self, node: &str, query: &crate::DesiredQuery) -> Result<crate::SignedDesired, ClientError> {
        self.get(&paths::desired(node, query))
    }

    /// `GET /v1/secrets` (admin): the names of the secrets.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn secrets(&self) -> Result<crate::SecretList, ClientError> {
        self.get(paths::SECRETS)
    }

    /// `PUT /v1/secrets/{name}` (admin): sets a secret.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn set_secret(&self, name: &lamina_types::SecretName, value: Vec<u8>) -> Result<(), ClientError> {
        self.send::<serde::de::IgnoredAny>(|base| {
            self.http.put(format!("{base}{}", paths::secret(name))).body(value.clone())
        })
        .map(|_| ())
    }

    /// `DELETE /v1/secrets/{name}` (admin).
    ///
    /// # Errors
    /// [`ClientError`]; `Refused` with 404 for a secret that is not set.
    pub fn delete_secret(&self, name: &lamina_types::SecretName) -> Result<(), ClientError> {
        self.delete(&paths::secret(name))
    }

    /// `GET /v1/workloads/{name}/logs` (admin): a workload's recent output.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn logs(&self, workload: &str) -> Result<crate::Logs, ClientError> {
        self.get(&paths::logs(workload))
    }
}

/// The TLS configuration of a client of the control plane at `base`: the control plane is
/// accepted only under the pinned key `fingerprint` and, with a verifier, evidence that passes
/// it; with `cert`, the client presents it (a node's attested certificate). Sessions are never
/// resumed, so each connection's handshake carries fresh evidence.
///
/// # Errors
/// [`ClientError::Unreachable`] when the configuration cannot be built.
pub fn tls_config(
    base: &str,
    fingerprint: [u8; 32],
    verifier: Option<Arc<lamina_attest::Verifier>>,
    cert: Option<&lamina_attest::ratls::AttestedCert>,
) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let unreachable = |reason: String| ClientError::Unreachable { url: base.to_owned(), reason };
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| unreachable(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { fingerprint, verifier, provider }));
    let mut tls = match cert {
        Some(cert) => tls
            .with_client_auth_cert(vec![cert.certificate()], cert.private_key())
            .map_err(|e| unreachable(e.to_string()))?,
        None => tls.with_no_client_auth(),
    };
    // Every new connection makes a full handshake, so the control plane's evidence is
    // appraised on each (a resumed session would skip the certificate).
    tls.resumption = rustls::client::Resumption::disabled();
    Ok(tls)
}
