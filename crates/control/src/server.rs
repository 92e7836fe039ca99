//! Serving the API over TLS: the control plane's certificate (made at first start and kept in
//! the state directory; nodes pin its fingerprint from the join token), the admin token, the
//! listener and the clock.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rand_core::RngCore as _;
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::api::{Control, router};
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
    /// Timings of the control loop (kept with the registry).
    pub settings: crate::Settings,
}

/// Why the control plane cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The state directory.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The certificate or TLS configuration.
    #[error("TLS: {0}")]
    Tls(String),
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
    /// SHA-256 of its certificate (DER).
    pub fingerprint: [u8; 32],
    /// Its certificate (DER), for clients to trust.
    pub certificate: Vec<u8>,
    /// The shared state.
    pub control: Arc<Mutex<Control>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Running {
    /// Stops serving: the listener, the control loop and every open connection; returns when
    /// the state directory is released (so another control plane may open it).
    pub async fn stop(self) {
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

/// The control plane's certificate and key, made at first start.
fn identity(dir: &Path, names: &[String]) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), ServeError> {
    let cert_path = dir.join("control.crt.der");
    let key_path = dir.join("control.key.der");
    if let (Ok(cert), Ok(key)) = (std::fs::read(&cert_path), std::fs::read(&key_path)) {
        return Ok((CertificateDer::from(cert), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key))));
    }
    let mut all = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    all.extend(names.iter().cloned());
    let made = rcgen::generate_simple_self_signed(all).map_err(|e| ServeError::Tls(e.to_string()))?;
    let cert = made.cert.der().to_vec();
    let key = made.signing_key.serialize_der();
    crate::store::write_private(&key_path, &key)?;
    std::fs::write(&cert_path, &cert)
        .map_err(|e| ServeError::Tls(format!("cannot write {}: {e}", cert_path.display())))?;
    Ok((CertificateDer::from(cert), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key))))
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
    options: ServeOptions,
) -> Result<Running, ServeError> {
    let (cert, key) = identity(store.dir(), &options.names)?;
    let fingerprint: [u8; 32] = Sha256::digest(cert.as_ref()).into();
    let admin = admin_token(store.dir())?;
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Listen { addr: options.listen, source })?;
    let address = listener.local_addr().map_err(|source| ServeError::Listen { addr: options.listen, source })?;
    let public_address = options.public_address.clone().unwrap_or_else(|| format!("https://{address}"));
    let mut control = Control::open(store, verifier, &admin, public_address.clone(), fingerprint)?;
    control.set_settings(options.settings);
    let address_file = control.store_dir().join("address");
    std::fs::write(&address_file, &public_address)
        .map_err(|e| ServeError::Tls(format!("cannot write {}: {e}", address_file.display())))?;
    let control = Arc::new(Mutex::new(control));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let app = router(control.clone());
    let ticker = control.clone();
    let tick = options.tick;
    let clock = tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        loop {
            interval.tick().await;
            let result = ticker.lock().unwrap_or_else(PoisonError::into_inner).tick();
            if let Err(e) = result {
                tracing::error!("control loop: {e}");
            }
        }
    });
    let (shutdown, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(app.clone());
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
        certificate: cert.to_vec(),
        control,
        tasks: vec![server, clock],
        shutdown,
    })
}
