//! Serving the API over TLS: the control plane's certificate (made at first start and kept in
//! the state directory; nodes pin its fingerprint from the join token), the admin token, the
//! listener and the clock.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use lamina_attest::ratls::{AttestedCert, CertificateRequest};
use lamina_tee::Platform;
use rand_core::RngCore as _;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::UnixTime;
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::api::{Control, Peer, router};
use crate::{Store, StoreError};

/// How the control plane serves.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The address nodes reach it at (`https://host:port`), written into join tokens; by default
    /// `https://<listen>`.
    pub public_address: Option<String>,
    /// Extra names for its certificate (host names, addresses).
    pub names: Vec<String>,
    /// The tick of the control loop.
    pub tick: Duration,
    /// Timings of the control loop (kept with the cluster).
    pub settings: crate::Settings,
    /// The NATS server nodes' instances exchange messages through, as nodes reach it.
    pub messaging: Option<String>,
    /// The NATS server's users, when the control plane keeps them (one per node, allowed the
    /// subjects of its instances); without, nodes connect to NATS unauthenticated.
    pub nats_authorization: Option<crate::nats::NatsAuthorization>,
    /// The policy other replicas' evidence must pass to be given the cluster key (replicated
    /// control planes); `None` gives it to none.
    pub replica_policy: Option<Arc<lamina_attest::Verifier>>,
    /// Where to serve Prometheus metrics (plain HTTP, `GET /metrics`), if anywhere.
    pub metrics: Option<SocketAddr>,
}

/// Why the control plane cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The state directory.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The NATS server's users file.
    #[error(transparent)]
    Nats(#[from] crate::nats::NatsError),
    /// The certificate or TLS configuration.
    #[error("TLS: {0}")]
    Tls(String),
    /// The platform could not attest the control plane's certificate.
    #[error("the platform could not attest the control plane: {0}")]
    Attest(String),
    /// The listener.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A running control plane.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub address: SocketAddr,
    /// What join tokens name.
    pub public_address: String,
    /// SHA-256 of its TLS key's SubjectPublicKeyInfo: what join tokens and clients pin.
    pub fingerprint: [u8; 32],
    /// The shared state.
    pub control: Arc<Mutex<Control>>,
    /// The metrics endpoint, when one was asked for.
    pub metrics: Option<lamina_metrics::Endpoint>,
    /// For a replica: becomes `true` if it loses the lead (its etcd lease lapsed), after which
    /// it must stop serving (another replica takes over).
    pub lost: Option<tokio::sync::watch::Receiver<bool>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Running {
    /// Stops serving: the listener, the control loop and every open connection; returns when
    /// the state directory is released (so another control plane may open it).
    pub async fn stop(mut self) {
        // The endpoint holds the state too.
        drop(self.metrics.take());
        // A replica hands over the lead at once.
        let etcd = self.control.lock().unwrap_or_else(PoisonError::into_inner).store().etcd();
        if let Some(etcd) = etcd {
            match tokio::task::spawn_blocking(move || etcd.resign()).await {
                Ok(Ok(())) => tracing::info!("gave up the lead"),
                Ok(Err(e)) => {
                    tracing::warn!("cannot give up the lead ({e}); a standby takes over when the lease lapses")
                }
                Err(_) => {}
            }
        }
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
        for task in &self.tasks {
            while !task.is_finished() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        for _ in 0..1000 {
            if Arc::strong_count(&self.control) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The control plane's TLS key (ECDSA P-256, PKCS#8 DER), made at first start and kept in the
/// store (`control.key.der`; replicas share it). Join tokens pin SHA-256 of its
/// SubjectPublicKeyInfo, so certificates can be reissued with fresh evidence, and any replica
/// can serve, without breaking the pin.
fn tls_key(store: &Store) -> Result<Vec<u8>, ServeError> {
    let der = store.material("control.key.der", || {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| StoreError::Damaged { path: "control.key.der".into(), reason: e.to_string() })?;
        Ok(key.serialize_der())
    })?;
    Ok(der.to_vec())
}

/// An attested certificate for the control plane's key: evidence from its platform over claims
/// that bind the key (RA-TLS, see `lamina_attest::ratls`).
fn issue(platform: &dyn Platform, key: &[u8], names: &[String]) -> Result<AttestedCert, ServeError> {
    let tls = |e: lamina_attest::ratls::RatlsError| ServeError::Tls(e.to_string());
    let mut all = vec!["localhost".to_owned()];
    all.extend(names.iter().filter(|n| n.parse::<std::net::IpAddr>().is_err()).cloned());
    let request = CertificateRequest::with_key(key).map_err(tls)?.with_names(all).with_validity(CERT_VALIDITY);
    let measurement = lamina_tee::runtime_measurement()
        .map_err(|e| ServeError::Tls(format!("cannot measure the running binary: {e}")))?;
    let claims = request.claims(platform.info().kind, measurement, None, None);
    let envelope = lamina_tee::attest(platform, &claims).map_err(|e| ServeError::Attest(e.to_string()))?;
    request.finish(&envelope).map_err(tls)
}

/// How long a control-plane certificate is valid; it is reissued every [`CERT_REISSUE`], well
/// within the default 5-minute `max_age` of a node's policy for the control plane.
const CERT_VALIDITY: Duration = Duration::from_secs(3600);
const CERT_REISSUE: Duration = Duration::from_secs(120);

/// The current attested certificate, swapped when it is reissued.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl Current {
    fn set(&self, cert: &AttestedCert) -> Result<(), ServeError> {
        let key = tokio_rustls::rustls::crypto::ring::sign::any_supported_type(&cert.private_key())
            .map_err(|e| ServeError::Tls(e.to_string()))?;
        *self.0.write().unwrap_or_else(PoisonError::into_inner) =
            Arc::new(CertifiedKey::new(vec![cert.certificate()], key));
        Ok(())
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// Asks every client for a certificate but does not require one (operators' commands have none);
/// checks only that the client holds the certificate's key. Whose key it is, and what its
/// evidence says, the API decides per request (see [`Peer`]).
#[derive(Debug)]
struct OptionalClientCert(Arc<CryptoProvider>);

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, tokio_rustls::rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The root of the control plane's secret keys: from its platform's sealing root, so secrets at
/// rest open only on this platform; on a platform without sealing, a key file (0600) in the
/// state directory, with a warning.
fn master_key(platform: &dyn Platform, store: &Store) -> Result<zeroize::Zeroizing<[u8; 32]>, ServeError> {
    if store.etcd().is_some() {
        // Replicas share one master key, kept in etcd under the cluster key.
        let bytes = store.material("master.key", || {
            let mut key = vec![0u8; 32];
            rand_core::OsRng.fill_bytes(&mut key);
            Ok(key)
        })?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Damaged { path: "master.key".into(), reason: "not 32 bytes".into() })?;
        return Ok(zeroize::Zeroizing::new(key));
    }
    let dir = store.dir();
    match platform.sealing_root() {
        Ok(root) => lamina_keys::derive(root.0.as_ref(), &lamina_keys::Purpose::ControlMaster).map_err(|e| {
            StoreError::Damaged { path: "the platform's sealing root".into(), reason: e.to_string() }.into()
        }),
        Err(e) => {
            tracing::warn!("the platform has no sealing ({e}); secrets at rest are protected by master.key only");
            let path = dir.join("master.key");
            if let Ok(bytes) = std::fs::read(&path)
                && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
            {
                return Ok(zeroize::Zeroizing::new(key));
            }
            let mut key = zeroize::Zeroizing::new([0u8; 32]);
            rand_core::OsRng.fill_bytes(key.as_mut());
            crate::store::write_private(&path, key.as_ref())?;
            Ok(key)
        }
    }
}

/// The admin token: made at first start, kept (mode 0600) in the state directory as
/// `admin.token`, where `lamina` commands on the same machine find it.
pub fn admin_token(dir: &Path) -> Result<String, ServeError> {
    let path = dir.join("admin.token");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(text.trim().to_owned());
    }
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    crate::store::write_private(&path, token.as_bytes())?;
    Ok(token)
}

/// Starts the control plane on the current tokio runtime.
///
/// # Errors
/// [`ServeError`] for the state directory, the certificate or the listener.
pub async fn serve(
    store: Store,
    verifier: lamina_attest::Verifier,
    platform: Box<dyn Platform + Send>,
    options: ServeOptions,
) -> Result<Running, ServeError> {
    // A replica serves only while it leads: it waits here until it does.
    let lost = match store.etcd() {
        Some(etcd) => {
            if options.listen.port() == 0 {
                return Err(ServeError::Tls(
                    "a replicated control plane needs a fixed --listen port, which it announces to the others".into(),
                ));
            }
            let announced = options.public_address.clone().unwrap_or_else(|| format!("https://{}", options.listen));
            let (lost, lost_rx) = tokio::sync::watch::channel(false);
            tokio::task::spawn_blocking(move || etcd.campaign(&announced, lost))
                .await
                .map_err(|e| ServeError::Tls(format!("the election stopped: {e}")))??;
            Some(lost_rx)
        }
        None => None,
    };
    let key = tls_key(&store)?;
    let first = issue(platform.as_ref(), &key, &options.names)?;
    let fingerprint = lamina_wire::spki_fingerprint(&first.cert_der).map_err(ServeError::Tls)?;
    std::fs::write(store.dir().join("fingerprint"), hex::encode(fingerprint))
        .map_err(|e| ServeError::Tls(format!("cannot write the fingerprint file: {e}")))?;
    if let Some(etcd) = store.etcd() {
        // Published (it is not secret) for replicas that join: they accept this replica only
        // under this key, and with evidence that passes their replica policy.
        let published = etcd.put_if_absent(crate::replicas::FINGERPRINT, hex::encode(fingerprint).as_bytes())?;
        if published != hex::encode(fingerprint).as_bytes() {
            return Err(ServeError::Tls("etcd holds another TLS key fingerprint than the replicas' shared key".into()));
        }
    }
    let current = Arc::new(Current(RwLock::new(Arc::new(CertifiedKey::new(
        vec![first.certificate()],
        tokio_rustls::rustls::crypto::ring::sign::any_supported_type(&first.private_key())
            .map_err(|e| ServeError::Tls(e.to_string()))?,
    )))));
    let admin = match store.etcd() {
        // Every replica has the cluster's token; a copy beside it serves local commands.
        Some(_) => {
            let token = store.material("admin.token", || {
                let mut bytes = [0u8; 32];
                rand_core::OsRng.fill_bytes(&mut bytes);
                Ok(hex::encode(bytes).into_bytes())
            })?;
            let token = String::from_utf8_lossy(&token).trim().to_owned();
            crate::store::write_private(&store.dir().join("admin.token"), token.as_bytes())?;
            token
        }
        None => admin_token(store.dir())?,
    };
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Listen { addr: options.listen, source })?;
    let address = listener.local_addr().map_err(|source| ServeError::Listen { addr: options.listen, source })?;
    let public_address = options.public_address.clone().unwrap_or_else(|| format!("https://{address}"));
    let master = master_key(platform.as_ref(), &store)?;
    let etcd = store.etcd();
    let mut control = Control::open(store, verifier, &admin, public_address.clone(), fingerprint, master)?;
    control.set_settings(options.settings);
    control.set_messaging(options.messaging.clone());
    if let Some(policy) = options.replica_policy.clone() {
        control.set_replica_verifier(policy);
    }
    if let Some(authorization) = options.nats_authorization.clone() {
        control.set_nats_authorization(authorization)?;
    }
    let address_file = control.store_dir().join("address");
    std::fs::write(&address_file, &public_address)
        .map_err(|e| ServeError::Tls(format!("cannot write {}: {e}", address_file.display())))?;
    let control = Arc::new(Mutex::new(control));
    let metrics = match options.metrics {
        Some(addr) => {
            let counts = control.lock().unwrap_or_else(PoisonError::into_inner).metrics();
            let registry = Arc::new(crate::metrics::registry(control.clone(), &counts));
            let endpoint = lamina_metrics::Endpoint::start(addr, Arc::new(move || lamina_metrics::render(&registry)))
                .map_err(|source| ServeError::Listen { addr, source })?;
            Some(endpoint)
        }
        None => None,
    };
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&tokio_rustls::rustls::version::TLS13])
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_client_cert_verifier(Arc::new(OptionalClientCert(provider)))
        .with_cert_resolver(current.clone());
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let app = router(control.clone());
    let ticker = control.clone();
    let tick = options.tick;
    let clock = tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        loop {
            interval.tick().await;
            if let Some(etcd) = etcd.clone() {
                // Nodes are told where every replica is.
                match tokio::task::spawn_blocking(move || etcd.members()).await {
                    Ok(Ok(members)) => ticker.lock().unwrap_or_else(PoisonError::into_inner).set_replicas(members),
                    Ok(Err(e)) => tracing::warn!("cannot list the control plane's replicas: {e}"),
                    Err(_) => {}
                }
            }
            let result = ticker.lock().unwrap_or_else(PoisonError::into_inner).tick();
            if let Err(e) = result {
                tracing::error!("control loop: {e}");
            }
        }
    });
    // The certificate's evidence is reissued while nodes' policies still accept the last one.
    let names = options.names.clone();
    let platform = Arc::new(Mutex::new(platform));
    let reissue = tokio::spawn(async move {
        loop {
            tokio::time::sleep(CERT_REISSUE).await;
            let (platform, key, names, current) = (platform.clone(), key.clone(), names.clone(), current.clone());
            let done = tokio::task::spawn_blocking(move || {
                let platform = platform.lock().unwrap_or_else(PoisonError::into_inner);
                issue(platform.as_ref(), &key, &names).and_then(|cert| current.set(&cert))
            })
            .await;
            match done {
                Ok(Ok(())) => tracing::debug!("reissued the control plane's attested certificate"),
                Ok(Err(e)) => tracing::error!("cannot reissue the control plane's certificate: {e}"),
                Err(e) => tracing::error!("cannot reissue the control plane's certificate: {e}"),
            }
        }
    });
    let (shutdown, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            let app = app.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => return,
                };
                let peer_cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
                let service = TowerToHyperService::new(app.layer(axum::Extension(Peer::new(peer_cert, peer.ip()))));
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                tokio::select! {
                    result = builder.serve_connection(TokioIo::new(tls), service) => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, "connection ended: {e}");
                        }
                    }
                    _ = stopped.changed() => {}
                }
            });
        }
    });
    Ok(Running {
        address,
        public_address,
        fingerprint,
        control,
        metrics,
        lost,
        tasks: vec![server, clock, reissue],
        shutdown,
    })
}
