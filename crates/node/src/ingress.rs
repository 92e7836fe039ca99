//! A node's ingress (`lamina node --ingress ADDR`): one HTTPS listener that serves the routes of
//! the HTTP instances placed on the node, through `lamina serve`'s server with a live routing
//! table. Its certificate is attested by the node's platform and declares what it serves: the
//! table of endpoints (workload, replica, routes, host, module, configuration digest) travels in
//! the certificate and the evidence claims its hash, so a client checks the node and the module
//! behind the route it calls before it sends anything. An instance whose workload asks for an
//! attested endpoint of its own gets a certificate of its own, chosen by the host name a client
//! asks for.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lamina_attest::ratls::{AttestedCert, CertificateRequest};
use lamina_serve::{Bounds, Drained, Metrics, RenewableCert, Router, Server};
use lamina_tee::Platform;
use lamina_types::ingress::{EndpointAttestation, HttpService, ServedEndpoint, ServedTable};
use lamina_types::{ModuleHash, WorkloadName};

use crate::agent::AgentError;

/// How often the ingress certificates are reissued with fresh evidence (relying parties'
/// policies bound the age of the claims they accept).
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(240);

/// One served instance: its key in the router and what the certificates declare of it.
struct Served {
    endpoint: ServedEndpoint,
}

/// The node's ingress: its serving thread, routing table and certificates.
pub(crate) struct Ingress {
    addr: SocketAddr,
    url: String,
    router: Arc<Router>,
    certs: Arc<RenewableCert>,
    served: Mutex<BTreeMap<String, Served>>,
    runtime_measurement: Vec<u8>,
    renewed: Mutex<Instant>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Ingress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingress").field("addr", &self.addr).field("router", &self.router).finish_non_exhaustive()
    }
}

/// The router's key of an instance.
fn key(workload: &WorkloadName, replica: u32) -> String {
    format!("{workload}/{replica}")
}

impl Ingress {
    /// Listens on `addr` and serves, on threads of its own, with a certificate attested by
    /// `platform` declaring that nothing is served yet.
    ///
    /// # Errors
    /// When the address cannot be listened on, the platform cannot attest, or the serving
    /// thread cannot start.
    pub(crate) fn start(
        addr: SocketAddr,
        url: Option<String>,
        platform: &dyn Platform,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AgentError> {
        let url = match url {
            Some(url) if url.starts_with("https://") => url.trim_end_matches('/').to_owned(),
            Some(url) => {
                return Err(AgentError::State(format!(
                    "--ingress-url {url}: clients reach the ingress over https://; give https://HOST:PORT"
                )));
            }
            None if addr.ip().is_unspecified() => {
                return Err(AgentError::State(format!(
                    "the ingress listens on {addr}, which names no host clients can reach: say how they reach it with \
                     --ingress-url https://HOST:PORT"
                )));
            }
            None => String::new(),
        };
        let runtime_measurement = lamina_tee::runtime_measurement().unwrap_or_else(|_| vec![0; 32]);
        let first = node_cert(platform, &runtime_measurement, &ServedTable::default())?;
        let certs = Arc::new(
            RenewableCert::new(first.certificate(), first.private_key())
                .map_err(|e| AgentError::State(format!("cannot use the ingress certificate: {e}")))?,
        );
        let tls = lamina_attest::ratls::open_server_config(&first)
            .map_err(|e| AgentError::State(format!("cannot configure the ingress's TLS: {e}")))?;
        let mut tls = tls;
        tls.cert_resolver = certs.clone();
        let std_listener = std::net::TcpListener::bind(addr)
            .map_err(|e| AgentError::State(format!("cannot listen on {addr} for the ingress: {e}")))?;
        std_listener.set_nonblocking(true).map_err(|e| AgentError::State(format!("the ingress listener: {e}")))?;
        let addr = std_listener.local_addr().map_err(|e| AgentError::State(format!("the ingress listener: {e}")))?;
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let router = Router::new(threads);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = Arc::clone(&router);
        let tls = Arc::new(tls);
        let thread = std::thread::Builder::new()
            .name("lamina-ingress".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("the ingress cannot start its runtime: {e}");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("the ingress cannot listen: {e}");
                            return;
                        }
                    };
                    let server = Server::routed(listener, Some(tls), serving, bounds(), metrics, None);
                    let shutdown = async move {
                        let _ = stopped.await;
                    };
                    if let Err(e) = server.run(shutdown).await {
                        tracing::error!("the ingress stopped: {e}");
                    }
                });
            })
            .map_err(|e| AgentError::State(format!("cannot start the ingress thread: {e}")))?;
        let url = if url.is_empty() { format!("https://{addr}") } else { url };
        tracing::info!("ingress on https://{addr}/ (clients reach it at {url})");
        Ok(Self {
            addr,
            url,
            router,
            certs,
            served: Mutex::new(BTreeMap::new()),
            runtime_measurement,
            renewed: Mutex::new(Instant::now()),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How clients reach it.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Serves an instance's routes with `handler`, and reissues the certificates to say so.
    ///
    /// # Errors
    /// When its routes are another workload's on this node, or the platform cannot attest the
    /// new table (then nothing changes).
    #[allow(clippy::too_many_arguments, reason = "an endpoint is all of these")]
    pub(crate) fn serve(
        &self,
        platform: &dyn Platform,
        workload: &WorkloadName,
        replica: u32,
        service: &HttpService,
        module: ModuleHash,
        config_digest: [u8; 32],
        handler: &lamina_runtime::HttpHandler,
    ) -> Result<(), AgentError> {
        let key = key(workload, replica);
        let endpoint =
            ServedEndpoint { workload: workload.clone(), replica, service: service.clone(), module, config_digest };
        let mut served = self.served.lock().unwrap_or_else(PoisonError::into_inner);
        let mut table: Vec<ServedEndpoint> = served.values().map(|s| s.endpoint.clone()).collect();
        table.push(endpoint.clone());
        let node = node_cert(platform, &self.runtime_measurement, &ServedTable::new(table))?;
        let own = match (&service.attestation, &service.host) {
            (EndpointAttestation::Instance, Some(host)) => {
                Some((host.to_string(), instance_cert(platform, &self.runtime_measurement, &endpoint)?))
            }
            _ => None,
        };
        // Declared before it is served: a client never reaches a route its certificate does not
        // declare (until then the route answers 404).
        self.install(&node, own.as_ref())?;
        if let Err(e) = self.router.insert(&key, workload.as_str(), service.clone(), handler) {
            if let Some((host, _)) = &own {
                self.certs.remove_name(host);
            }
            let table = ServedTable::new(served.values().map(|s| s.endpoint.clone()).collect());
            if let Err(e) = node_cert(platform, &self.runtime_measurement, &table).and_then(|c| self.install(&c, None))
            {
                tracing::warn!("the ingress certificate still declares {key}, which is not served: {e}");
            }
            return Err(AgentError::Protocol(format!("{key}: {e}")));
        }
        served.insert(key, Served { endpoint });
        Ok(())
    }

    /// Stops serving an instance: new requests no longer reach it (the certificates are
    /// reissued without it); the requests it has are waited for up to `wait`.
    pub(crate) fn stop_serving(&self, platform: &dyn Platform, workload: &WorkloadName, replica: u32, wait: Duration) {
        let key = key(workload, replica);
        let mut served = self.served.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(gone) = served.remove(&key)
            && let Some(host) = &gone.endpoint.service.host
        {
            self.certs.remove_name(host.as_str());
        }
        let table = ServedTable::new(served.values().map(|s| s.endpoint.clone()).collect());
        drop(served);
        match node_cert(platform, &self.runtime_measurement, &table) {
            Ok(cert) => {
                if let Err(e) = self.install(&cert, None) {
                    tracing::warn!("the ingress certificate could not be reissued without {key}: {e}");
                }
            }
            Err(e) => tracing::warn!("the ingress certificate could not be reissued without {key}: {e}"),
        }
        // No longer declared, then no longer served: a client never reaches a route its
        // certificate does not declare.
        let drained: Option<Drained> = self.router.remove(&key);
        if let Some(drained) = drained
            && !drained.wait(wait)
        {
            tracing::warn!(
                "{key}: {} request(s) still in flight after {wait:?}; they finish on their own",
                drained.in_flight()
            );
        }
    }

    /// Reissues every certificate with fresh evidence once [`RENEW_EVERY`] has passed.
    pub(crate) fn renew_if_due(&self, platform: &dyn Platform) {
        {
            let mut renewed = self.renewed.lock().unwrap_or_else(PoisonError::into_inner);
            if renewed.elapsed() < RENEW_EVERY {
                return;
            }
            *renewed = Instant::now();
        }
        let served = self.served.lock().unwrap_or_else(PoisonError::into_inner);
        let table = ServedTable::new(served.values().map(|s| s.endpoint.clone()).collect());
        let renewed = node_cert(platform, &self.runtime_measurement, &table).and_then(|cert| self.install(&cert, None));
        if let Err(e) = renewed {
            tracing::warn!("cannot reissue the ingress certificate (the old one stays): {e}");
        }
        for s in served.values() {
            if let (EndpointAttestation::Instance, Some(host)) =
                (&s.endpoint.service.attestation, &s.endpoint.service.host)
            {
                let renewed = instance_cert(platform, &self.runtime_measurement, &s.endpoint)
                    .and_then(|cert| self.install_name(host.as_str(), &cert));
                if let Err(e) = renewed {
                    tracing::warn!("cannot reissue {host}'s certificate (the old one stays): {e}");
                }
            }
        }
    }

    fn install(&self, node: &AttestedCert, own: Option<&(String, AttestedCert)>) -> Result<(), AgentError> {
        self.certs
            .replace(node.certificate(), node.private_key())
            .map_err(|e| AgentError::State(format!("cannot use the ingress certificate: {e}")))?;
        if let Some((host, cert)) = own {
            self.install_name(host, cert)?;
        }
        Ok(())
    }

    fn install_name(&self, host: &str, cert: &AttestedCert) -> Result<(), AgentError> {
        self.certs
            .insert_name(host, cert.certificate(), cert.private_key())
            .map_err(|e| AgentError::State(format!("cannot use {host}'s certificate: {e}")))
    }
}

impl Drop for Ingress {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the ingress thread panicked");
        }
    }
}

/// `lamina serve`'s bounds on clients, but requests still in flight when the node stops are
/// given only as long as the node gives its instances ([`crate::STOP_WAIT`]).
fn bounds() -> Bounds {
    Bounds { drain_timeout: crate::STOP_WAIT, ..Bounds::default() }
}

/// The node's ingress certificate: evidence naming no module, whose configuration digest is
/// the hash of the served table the certificate carries.
fn node_cert(platform: &dyn Platform, measurement: &[u8], table: &ServedTable) -> Result<AttestedCert, AgentError> {
    let request = CertificateRequest::new().map_err(|e| AgentError::State(e.to_string()))?.serving(table);
    let claims = request.claims(platform.info().kind, measurement.to_vec(), None, request.served_digest());
    let envelope = lamina_tee::attest(platform, &claims).map_err(|e| AgentError::Attest(Box::new(e)))?;
    request.finish(&envelope).map_err(|e| AgentError::State(format!("cannot issue the ingress certificate: {e}")))
}

/// An instance's own certificate: evidence naming its module and configuration, for its host.
fn instance_cert(
    platform: &dyn Platform,
    measurement: &[u8],
    endpoint: &ServedEndpoint,
) -> Result<AttestedCert, AgentError> {
    let names: Vec<String> = endpoint.service.host.iter().map(ToString::to_string).collect();
    let request = CertificateRequest::new().map_err(|e| AgentError::State(e.to_string()))?.with_names(names);
    let claims =
        request.claims(platform.info().kind, measurement.to_vec(), Some(endpoint.module), Some(endpoint.config_digest));
    let envelope = lamina_tee::attest(platform, &claims).map_err(|e| AgentError::Attest(Box::new(e)))?;
    request.finish(&envelope).map_err(|e| AgentError::State(format!("cannot issue the instance's certificate: {e}")))
}
