//! The replicated store: the control plane's state in an etcd cluster, and leader election
//! through an etcd lease, so that two or three control planes share one state and one serves.
//!
//! Keys live under a prefix (`/lamina` by default):
//! - `<prefix>/state/<name>`: the documents the embedded store keeps as files (cluster,
//!   tokens, credentials, secrets, modules). etcd refuses requests over 1.5 MiB, so a value
//!   over 1 MiB is written as chunks under a fresh generation (`<name>/#<generation>/<i>`),
//!   each in a transaction of its own, and then the document's record, which names the
//!   generation, is switched with the other documents in one transaction: a reader sees the
//!   old value or the new one, never a mix;
//! - `<prefix>/leader`: the serving replica's identifier, under its lease;
//! - `<prefix>/members/<id>`: each replica's public address, under its lease, so that nodes
//!   learn where the replicas are.
//!
//! Every write is a transaction on the condition that this replica still holds the leader key,
//! so a replica that lost its lease (stalled, partitioned) cannot overwrite its successor's
//! state.
//!
//! Whoever can talk to etcd can read and change all of that, so the store reaches etcd over TLS
//! with a client certificate ([`EtcdTransport::Tls`]): the members must present certificates
//! of the CA given, and an etcd started with `--client-cert-auth` admits only clients whose
//! certificates its CA signed. Plain HTTP is [`EtcdTransport::DangerPlaintext`], asked for by
//! name.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::StoreError;

/// The largest value written as one key; larger ones are split.
const CHUNK: usize = 1 << 20;
/// How long the leader's lease lasts without a keep-alive: the longest a dead leader blocks a
/// successor.
pub const LEASE_TTL: i64 = 5;
/// How long one etcd request may take before the store gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How the store reaches etcd.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum EtcdTransport {
    /// TLS (`https://`): each member's certificate must chain to the CA given and name the host
    /// it is reached at, and this replica presents its client certificate, so that an etcd
    /// started with `--client-cert-auth` admits it and no one without such a certificate.
    Tls(EtcdTls),
    /// DANGER: plain HTTP (`http://`) and no credentials: whoever can reach etcd's client port
    /// reads the control plane's state and changes it. For development only.
    DangerPlaintext,
}

impl EtcdTransport {
    /// The URL of each member (`host:port`, as [`endpoints`] gives them) with this transport's
    /// scheme.
    pub fn urls(&self, endpoints: &[String]) -> Vec<String> {
        let scheme = match self {
            EtcdTransport::Tls(_) => "https",
            EtcdTransport::DangerPlaintext => "http",
        };
        endpoints.iter().map(|e| format!("{scheme}://{e}")).collect()
    }
}

/// The TLS settings of the connection to etcd: the CA that signed the members' certificates,
/// and this replica's client certificate and key. Only [`EtcdTls::load`] makes one, so the
/// files are known to hold what they should (and the key to be the certificate's) before any
/// connection is tried.
#[derive(Clone)]
pub struct EtcdTls {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: zeroize::Zeroizing<Vec<u8>>,
    paths: [PathBuf; 3],
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [ca, cert, key] = &self.paths;
        f.debug_struct("EtcdTls").field("ca", ca).field("cert", cert).field("key", key).finish()
    }
}

/// Which of the three TLS files an [`EtcdTlsError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EtcdFile {
    /// The CA certificate that signed the etcd members' certificates.
    Ca,
    /// This replica's client certificate.
    Certificate,
    /// This replica's private key.
    Key,
}

impl std::fmt::Display for EtcdFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EtcdFile::Ca => "etcd CA certificate",
            EtcdFile::Certificate => "etcd client certificate",
            EtcdFile::Key => "etcd client key",
        })
    }
}

impl EtcdFile {
    fn remedy(self) -> &'static str {
        match self {
            EtcdFile::Ca => {
                "give the certificate, in PEM (-----BEGIN CERTIFICATE-----), of the CA that signed the etcd \
                 members' certificates (their --cert-file)"
            }
            EtcdFile::Certificate => {
                "give this replica's client certificate in PEM (-----BEGIN CERTIFICATE-----), signed by the CA \
                 that etcd trusts (its --trusted-ca-file)"
            }
            EtcdFile::Key => {
                "give the client certificate's private key in PEM (-----BEGIN PRIVATE KEY-----, or an EC or \
                 RSA key)"
            }
        }
    }
}

/// Why the TLS files for etcd cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdTlsError {
    /// A file could not be read.
    #[error("cannot read the {file} {}: {source}", path.display())]
    Read {
        /// Which file.
        file: EtcdFile,
        /// Its path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("the {file} {} {problem}; {}", path.display(), file.remedy())]
    Malformed {
        /// Which file.
        file: EtcdFile,
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The key is not the certificate's.
    #[error(
        "the etcd client key {} is not the key of the client certificate {}; give the key the certificate was \
         issued for",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate.
        cert: PathBuf,
        /// The key.
        key: PathBuf,
    },
}

impl EtcdTls {
    /// Reads the CA certificate, the client certificate (with its chain, if any) and the client
    /// key, all PEM, and checks that each holds what it should and that the key is the
    /// certificate's.
    ///
    /// # Errors
    /// [`EtcdTlsError`], naming the file and what to give instead.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self, EtcdTlsError> {
        let read = |file: EtcdFile, path: &Path| {
            std::fs::read(path).map_err(|source| EtcdTlsError::Read { file, path: path.to_owned(), source })
        };
        let malformed = |file: EtcdFile, path: &Path, problem: String| EtcdTlsError::Malformed {
            file,
            path: path.to_owned(),
            problem,
        };
        let certificates = |file: EtcdFile, path: &Path, pem: &[u8]| {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| malformed(file, path, format!("is not PEM ({e})")))?;
            if certs.is_empty() {
                return Err(malformed(file, path, "holds no PEM certificate".into()));
            }
            Ok(certs)
        };

        let ca_pem = read(EtcdFile::Ca, ca)?;
        let mut roots = rustls::RootCertStore::empty();
        for der in certificates(EtcdFile::Ca, ca, &ca_pem)? {
            roots.add(der).map_err(|e| {
                malformed(EtcdFile::Ca, ca, format!("holds a certificate that cannot be a trust anchor ({e})"))
            })?;
        }
        let cert_pem = read(EtcdFile::Certificate, cert)?;
        let chain = certificates(EtcdFile::Certificate, cert, &cert_pem)?;
        let key_pem = zeroize::Zeroizing::new(read(EtcdFile::Key, key)?);
        let private = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| malformed(EtcdFile::Key, key, format!("holds no PEM private key ({e})")))?;
        let provider = rustls::crypto::ring::default_provider();
        match rustls::sign::CertifiedKey::from_der(chain, private, &provider) {
            Ok(_) => {}
            Err(rustls::Error::InconsistentKeys(_)) => {
                return Err(EtcdTlsError::KeyMismatch { cert: cert.to_owned(), key: key.to_owned() });
            }
            Err(e) => return Err(malformed(EtcdFile::Key, key, format!("holds a key that cannot sign ({e})"))),
        }
        Ok(EtcdTls {
            ca: ca_pem,
            cert: cert_pem,
            key: key_pem,
            paths: [ca.to_owned(), cert.to_owned(), key.to_owned()],
        })
    }

    fn options(&self) -> etcd_client::TlsOptions {
        etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(&self.ca))
            .identity(etcd_client::Identity::from_pem(&self.cert, self.key.as_slice()))
    }
}

/// The store's own runtime. When the store goes it is shut down without waiting: the last
/// reference to a store may go on an async runtime's thread (a control plane that stops on
/// SIGTERM), where dropping a runtime, which blocks, panics.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A connection to an etcd cluster, used from synchronous code: requests run on the store's
/// own runtime thread.
pub struct EtcdStore {
    client: etcd_client::Client,
    /// Where requests run: the handle of `_runtime`.
    runtime: tokio::runtime::Handle,
    _runtime: OwnRuntime,
    prefix: String,
    endpoints: Vec<String>,
    /// This replica's identifier (random per process).
    id: String,
    lease: Mutex<Option<i64>>,
    /// The chunk generation of each chunked document this replica read or wrote, so that a
    /// write removes the chunks it replaces.
    generations: Mutex<std::collections::HashMap<String, [u8; 8]>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").field("endpoints", &self.endpoints).field("id", &self.id).finish_non_exhaustive()
    }
}

fn etcd(e: impl std::fmt::Display) -> StoreError {
    StoreError::Etcd(e.to_string())
}

/// The whole of an etcd call's error: the client's message, then its causes, where TLS says
/// what went wrong (`transport error: connection error: received fatal alert: BadCertificate`).
fn detail(e: &etcd_client::Error) -> String {
    let (mut parts, mut source): (Vec<String>, Option<&(dyn std::error::Error + 'static)>) = match e {
        etcd_client::Error::TransportError(e) => (vec![e.to_string()], std::error::Error::source(e)),
        etcd_client::Error::GRpcStatus(status) => {
            (vec![status.message().to_owned()], std::error::Error::source(status))
        }
        etcd_client::Error::IoError(e) => (vec![e.to_string()], std::error::Error::source(e)),
        other => (vec![other.to_string()], None),
    };
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.retain(|p| !p.is_empty());
    parts.join(": ")
}

/// A TLS failure that trying again will not mend, said with what to do: a member refused this
/// replica's certificate, or a member's certificate did not verify.
fn tls_failure(detail: &str) -> Option<String> {
    const REFUSED: [&str; 8] = [
        "BadCertificate",
        "UnknownCA",
        "CertificateRequired",
        "CertificateUnknown",
        "CertificateExpired",
        "CertificateRevoked",
        "UnsupportedCertificate",
        "AccessDenied",
    ];
    if detail.contains("received fatal alert") && REFUSED.iter().any(|a| detail.contains(a)) {
        return Some(format!(
            "an etcd member refused this replica's client certificate ({detail}); give --etcd-cert and \
             --etcd-key of a certificate, not expired, signed by the CA that etcd trusts (its --trusted-ca-file)"
        ));
    }
    if detail.contains("invalid peer certificate") {
        return Some(format!(
            "an etcd member's certificate does not verify ({detail}); give --etcd-ca the CA that signed the \
             members' certificates, and name each member in --store by an address or host name its certificate \
             holds"
        ));
    }
    if detail.contains("HTTP/2 was not negotiated") {
        return Some(format!(
            "an etcd member does not speak gRPC over TLS ({detail}); give --store the members' client ports"
        ));
    }
    None
}

/// Whether a connection was closed under the client right after its TLS handshake: in TLS 1.3
/// a member checks the client's certificate after the client has finished its handshake, and
/// when it refuses, the client may see the connection closed under its first write before it
/// reads the alert.
fn closed_after_handshake(why: &str) -> bool {
    why.contains("broken pipe") || why.contains("connection reset")
}

/// The error of a connection closed right after the handshake, at start.
fn refused_after_handshake(why: &str) -> StoreError {
    StoreError::EtcdTls(format!(
        "an etcd member closed the connection right after the TLS handshake ({why}): it most likely refused \
         this replica's client certificate; give --etcd-cert and --etcd-key of a certificate, not expired, \
         signed by the CA that etcd trusts (its --trusted-ca-file)"
    ))
}

/// An etcd call's error: [`StoreError::EtcdTls`] when TLS failed in a way that trying again
/// will not mend; [`StoreError::EtcdUnreachable`] when the member it went to could not be
/// reached (the call is worth trying again: another member may answer).
fn call(e: etcd_client::Error) -> StoreError {
    let detail = detail(&e);
    if let Some(why) = tls_failure(&detail) {
        return StoreError::EtcdTls(why);
    }
    let unreachable = match &e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => {
            matches!(format!("{:?}", status.code()).as_str(), "Unavailable" | "DeadlineExceeded" | "Cancelled")
        }
        _ => false,
    };
    match (unreachable, detail.contains("tls handshake eof")) {
        (true, true) => StoreError::EtcdUnreachable(format!(
            "{detail} (a member that closes the TLS handshake may not serve TLS on that port: etcd needs https:// \
             in its --listen-client-urls, with --cert-file and --key-file)"
        )),
        (true, false) => StoreError::EtcdUnreachable(detail),
        (false, _) => StoreError::Etcd(detail),
    }
}

/// How many times a call is made when etcd members cannot be reached, and the pause between.
const ATTEMPTS: u32 = 8;
const PAUSE: Duration = Duration::from_millis(250);

/// Makes a call again while the members it reaches are out of reach (a member that died, an
/// election under way), up to [`ATTEMPTS`] times.
fn retry<T>(mut f: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
    let mut attempt = 1;
    loop {
        match f() {
            Err(StoreError::EtcdUnreachable(why)) if attempt < ATTEMPTS => {
                tracing::debug!("etcd: {why}; trying again");
                attempt += 1;
                std::thread::sleep(PAUSE);
            }
            other => return other,
        }
    }
}

/// Parses `etcd://host:port,host:port` into the members' `host:port` (the scheme comes from
/// the [`EtcdTransport`]).
///
/// # Errors
/// [`StoreError::Etcd`] when it is not such a URL.
pub fn endpoints(url: &str) -> Result<Vec<String>, StoreError> {
    let rest = url
        .strip_prefix("etcd://")
        .ok_or_else(|| StoreError::Etcd(format!("`{url}` is not an etcd URL; give etcd://HOST:PORT[,HOST:PORT...]")))?;
    let endpoints: Vec<String> = rest.split(',').map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned).collect();
    if endpoints.is_empty() {
        return Err(StoreError::Etcd(format!("`{url}` names no etcd member")));
    }
    if let Some(bad) = endpoints.iter().find(|e| e.contains("://") || e.contains('/')) {
        return Err(StoreError::Etcd(format!(
            "`{bad}` in `{url}` is not HOST:PORT; give etcd://HOST:PORT[,HOST:PORT...] (TLS or plain HTTP comes \
             from the TLS settings, not the URL)"
        )));
    }
    Ok(endpoints)
}

impl EtcdStore {
    /// Connects to the etcd members at `endpoints` (`host:port`) over `transport`, keys under
    /// `prefix`, and reads once, so that a wrong address or a refused certificate fails here.
    ///
    /// # Errors
    /// [`StoreError::EtcdTls`] when TLS fails (a certificate refused on either side);
    /// [`StoreError::EtcdUnreachable`] when no member answers; [`StoreError::Etcd`].
    pub fn connect(endpoints: &[String], prefix: &str, transport: &EtcdTransport) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lamina-etcd")
            .enable_all()
            .build()
            .map_err(etcd)?;
        let mut options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(REQUEST_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        if let EtcdTransport::Tls(tls) = transport {
            options = options.with_tls(tls.options());
        }
        let endpoints = transport.urls(endpoints);
        let list = endpoints.clone();
        let client =
            runtime.block_on(async move { etcd_client::Client::connect(list, Some(options)).await }).map_err(|e| {
                match call(e) {
                    tls @ StoreError::EtcdTls(_) => tls,
                    // In TLS 1.3 a member checks the client's certificate after the client has
                    // finished its handshake; when it refuses, the client may see the
                    // connection closed under its first write before it reads the alert.
                    StoreError::EtcdUnreachable(why) | StoreError::Etcd(why)
                        if matches!(transport, EtcdTransport::Tls(_)) && closed_after_handshake(&why) =>
                    {
                        refused_after_handshake(&why)
                    }
                    other => StoreError::Etcd(format!("cannot connect to etcd at {}: {other}", endpoints.join(", "))),
                }
            })?;
        let mut id = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        let store = EtcdStore {
            client,
            runtime: runtime.handle().clone(),
            _runtime: OwnRuntime(Some(runtime)),
            prefix: prefix.trim_end_matches('/').to_owned(),
            endpoints,
            id: hex::encode(id),
            lease: Mutex::new(None),
            generations: Mutex::new(std::collections::HashMap::new()),
        };
        // A first request, so that a wrong address or a refused certificate fails here rather
        // than later.
        store.get("registry.json").map_err(|e| match (e, transport) {
            (StoreError::Etcd(why), EtcdTransport::DangerPlaintext) => StoreError::Etcd(format!(
                "{why} (if etcd serves its clients over TLS, give --etcd-ca, --etcd-cert and --etcd-key in place \
                 of --danger-etcd-plaintext)"
            )),
            (StoreError::EtcdUnreachable(why) | StoreError::Etcd(why), EtcdTransport::Tls(_))
                if closed_after_handshake(&why) =>
            {
                refused_after_handshake(&why)
            }
            (e, _) => e,
        })?;
        Ok(store)
    }

    /// This replica's identifier.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs a request on the store's runtime and waits for it (from any thread, also a
    /// runtime's: the wait is a plain blocking receive).
    fn run<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let out = match tokio::time::timeout(REQUEST_TIMEOUT * 2, f).await {
                Ok(out) => out,
                Err(_) => Err(StoreError::Etcd("etcd did not answer in time".into())),
            };
            let _ = tx.send(out);
        });
        rx.recv().map_err(|_| StoreError::Etcd("the etcd client stopped".into()))?
    }

    fn key(&self, name: &str) -> String {
        format!("{}/state/{name}", self.prefix)
    }

    fn leader_key(&self) -> String {
        format!("{}/leader", self.prefix)
    }

    /// A document, or `None` when there is none.
    ///
    /// # Errors
    /// [`StoreError::Etcd`] when etcd cannot be read; [`StoreError::Damaged`] for a chunked
    /// value with a chunk missing.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        retry(|| self.get_once(name))
    }

    fn get_once(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut client = self.client.clone();
        let key = self.key(name);
        let path = std::path::PathBuf::from(&key);
        let read = self.run(async move {
            let resp = client.get(key.as_bytes(), None).await.map_err(call)?;
            let Some(kv) = resp.kvs().first() else { return Ok(None) };
            let value = kv.value();
            match value.split_first() {
                Some((0, inline)) => Ok(Some((inline.to_vec(), None))),
                Some((1, record)) => {
                    let malformed =
                        || StoreError::Damaged { path: path.clone(), reason: "a malformed chunk record".into() };
                    let generation: [u8; 8] = record.get(..8).and_then(|g| g.try_into().ok()).ok_or_else(malformed)?;
                    let count: [u8; 4] = record.get(8..12).and_then(|c| c.try_into().ok()).ok_or_else(malformed)?;
                    let count = u32::from_be_bytes(count);
                    let mut out = Vec::new();
                    for i in 0..count {
                        let chunk = format!("{key}/#{}/{i}", hex::encode(generation));
                        let resp = client.get(chunk.as_bytes(), None).await.map_err(call)?;
                        let kv = resp.kvs().first().ok_or_else(|| StoreError::Damaged {
                            path: path.clone(),
                            reason: format!("chunk {i} of {count} is missing"),
                        })?;
                        out.extend_from_slice(kv.value());
                    }
                    Ok(Some((out, Some(generation))))
                }
                _ => Err(StoreError::Damaged { path, reason: "not a value this control plane wrote".into() }),
            }
        })?;
        Ok(read.map(|(bytes, generation)| {
            let mut generations = self.generations.lock().unwrap_or_else(PoisonError::into_inner);
            match generation {
                Some(g) => generations.insert(name.to_owned(), g),
                None => generations.remove(name),
            };
            bytes
        }))
    }

    /// Writes documents and deletes others, all or none, if this replica is the leader (a
    /// document over 1 MiB has its chunks written first; its record switches with the rest).
    ///
    /// # Errors
    /// [`StoreError::NotLeader`] when it no longer is; [`StoreError::Etcd`].
    pub fn write(&self, puts: &[(&str, &[u8])], deletes: &[&str]) -> Result<(), StoreError> {
        let mut ops = Vec::new();
        let mut generations = Vec::new();
        for (name, bytes) in puts {
            let key = self.key(name);
            let old = self.generations.lock().unwrap_or_else(PoisonError::into_inner).get(*name).copied();
            if let Some(old) = old {
                let chunks = format!("{key}/#{}/", hex::encode(old));
                ops.push(TxnOp::delete(chunks, Some(etcd_client::DeleteOptions::new().with_prefix())));
            }
            if bytes.len() <= CHUNK {
                ops.push(TxnOp::put(key, [&[0u8][..], bytes].concat(), None));
                generations.push((name.to_string(), None));
                continue;
            }
            let mut generation = [0u8; 8];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut generation);
            let chunks: Vec<&[u8]> = bytes.chunks(CHUNK).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                let chunk_key = format!("{key}/#{}/{i}", hex::encode(generation));
                self.guarded(vec![TxnOp::put(chunk_key, chunk.to_vec(), None)])?;
            }
            let count = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
            ops.push(TxnOp::put(key, [&[1u8][..], &generation, &count.to_be_bytes()].concat(), None));
            generations.push((name.to_string(), Some(generation)));
        }
        for name in deletes {
            let key = self.key(name);
            ops.push(TxnOp::delete(format!("{key}/#"), Some(etcd_client::DeleteOptions::new().with_prefix())));
            ops.push(TxnOp::delete(key, None));
            generations.push((name.to_string(), None));
        }
        if !ops.is_empty() {
            self.guarded(ops)?;
        }
        let mut known = self.generations.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, generation) in generations {
            match generation {
                Some(g) => known.insert(name, g),
                None => known.remove(&name),
            };
        }
        Ok(())
    }

    fn guarded(&self, ops: Vec<TxnOp>) -> Result<(), StoreError> {
        retry(|| self.guarded_once(ops.clone()))
    }

    fn guarded_once(&self, ops: Vec<TxnOp>) -> Result<(), StoreError> {
        let mut client = self.client.clone();
        let (leader, id) = (self.leader_key(), self.id.clone());
        self.run(async move {
            let txn = Txn::new().when([Compare::value(leader, CompareOp::Equal, id)]).and_then(ops);
            let resp = client.txn(txn).await.map_err(call)?;
            if resp.succeeded() { Ok(()) } else { Err(StoreError::NotLeader) }
        })
    }

    /// Writes `name` unless it exists; returns what is stored afterwards (ours or the first
    /// writer's). For material made once and shared by every replica.
    ///
    /// # Errors
    /// [`StoreError::Etcd`].
    pub fn put_if_absent(&self, name: &str, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
        retry(|| self.put_if_absent_once(name, bytes))
    }

    fn put_if_absent_once(&self, name: &str, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut client = self.client.clone();
        let key = self.key(name);
        let value = [&[0u8][..], bytes].concat();
        self.run(async move {
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.clone(), value, None)]);
            client.txn(txn).await.map_err(call)?;
            Ok(())
        })?;
        self.get(name)?.ok_or_else(|| StoreError::Etcd(format!("{name} vanished after it was written")))
    }

    /// Whether a document exists (without reading it: modules are large).
    ///
    /// # Errors
    /// [`StoreError::Etcd`].
    pub fn exists(&self, name: &str) -> Result<bool, StoreError> {
        retry(|| {
            let mut client = self.client.clone();
            let key = self.key(name);
            self.run(async move {
                let resp = client.get(key.as_bytes(), Some(GetOptions::new().with_count_only())).await.map_err(call)?;
                Ok(resp.count() > 0)
            })
        })
    }

    /// The names of documents under `dir/` (one level).
    ///
    /// # Errors
    /// [`StoreError::Etcd`].
    pub fn list(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        retry(|| self.list_once(dir))
    }

    fn list_once(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        let mut client = self.client.clone();
        let prefix = self.key(&format!("{dir}/"));
        self.run(async move {
            let resp = client
                .get(prefix.as_bytes(), Some(GetOptions::new().with_prefix().with_keys_only()))
                .await
                .map_err(call)?;
            let mut names: Vec<String> = resp
                .kvs()
                .iter()
                .filter_map(|kv| kv.key_str().ok())
                .filter_map(|k| k.strip_prefix(prefix.as_str()))
                .filter(|n| !n.contains('/'))
                .map(str::to_owned)
                .collect();
            names.sort();
            names.dedup();
            Ok(names)
        })
    }

    /// Waits until this replica holds the leader key: grants a lease, announces `address`
    /// among the members, and takes the key when it is free. The lease is kept alive from
    /// then on; `lost` is told if it ever lapses (etcd out of reach for longer than
    /// [`LEASE_TTL`]), after which this replica must stop serving.
    ///
    /// # Errors
    /// [`StoreError::Etcd`] when etcd cannot be used.
    pub fn campaign(&self, address: &str, lost: tokio::sync::watch::Sender<bool>) -> Result<(), StoreError> {
        let lease = retry(|| {
            let mut client = self.client.clone();
            self.run(async move { Ok(client.lease_grant(LEASE_TTL, None).await.map_err(call)?.id()) })
        })?;
        *self.lease.lock().unwrap_or_else(PoisonError::into_inner) = Some(lease);
        // Keep the lease alive for as long as the process lives.
        let mut client = self.client.clone();
        self.runtime.spawn(async move {
            let (mut keeper, mut stream) = match client.lease_keep_alive(lease).await {
                Ok(k) => k,
                Err(e) => {
                    tracing::error!("cannot keep the etcd lease alive: {e}");
                    let _ = lost.send(true);
                    return;
                }
            };
            let mut last = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(1000)).await;
                let alive = async {
                    keeper.keep_alive().await.ok()?;
                    let answer = tokio::time::timeout(Duration::from_secs(2), stream.message()).await.ok()?;
                    answer.ok().flatten().map(|r| r.ttl() > 0)
                }
                .await;
                match alive {
                    Some(true) => last = tokio::time::Instant::now(),
                    Some(false) => {
                        tracing::error!("the etcd lease expired");
                        let _ = lost.send(true);
                        return;
                    }
                    None if last.elapsed() > Duration::from_secs(LEASE_TTL as u64) => {
                        tracing::error!("etcd was out of reach for longer than the lease");
                        let _ = lost.send(true);
                        return;
                    }
                    None => {
                        // Reconnect the keep-alive stream and try again.
                        if let Ok(k) = client.lease_keep_alive(lease).await {
                            (keeper, stream) = k;
                        }
                    }
                }
            }
        });
        let member = format!("{}/members/{}", self.prefix, self.id);
        retry(|| {
            let mut client = self.client.clone();
            let (member, address) = (member.clone(), address.to_owned());
            self.run(async move {
                client.put(member, address, Some(PutOptions::new().with_lease(lease))).await.map_err(call)?;
                Ok(())
            })
        })?;
        let mut announced = false;
        loop {
            let mut client = self.client.clone();
            let (leader, id) = (self.leader_key(), self.id.clone());
            let won = match self.run(async move {
                let txn = Txn::new()
                    .when([Compare::create_revision(leader.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(leader, id, Some(PutOptions::new().with_lease(lease)))]);
                Ok(client.txn(txn).await.map_err(call)?.succeeded())
            }) {
                Ok(won) => won,
                Err(StoreError::EtcdUnreachable(why)) => {
                    tracing::debug!("etcd: {why}; campaigning again");
                    std::thread::sleep(PAUSE);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if won {
                tracing::info!("this replica ({}) leads the control plane", self.id);
                return Ok(());
            }
            if !announced {
                tracing::info!("another replica leads the control plane; standing by");
                announced = true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Gives up the lead at once (revokes the lease, with the leader and member keys under it),
    /// so that a standby takes over without waiting for the lease to lapse.
    ///
    /// # Errors
    /// [`StoreError::Etcd`].
    pub fn resign(&self) -> Result<(), StoreError> {
        let Some(lease) = self.lease.lock().unwrap_or_else(PoisonError::into_inner).take() else { return Ok(()) };
        let mut client = self.client.clone();
        self.run(async move {
            client.lease_revoke(lease).await.map_err(call)?;
            Ok(())
        })
    }

    /// The public addresses of the live replicas.
    ///
    /// # Errors
    /// [`StoreError::Etcd`].
    pub fn members(&self) -> Result<Vec<String>, StoreError> {
        retry(|| self.members_once())
    }

    fn members_once(&self) -> Result<Vec<String>, StoreError> {
        let mut client = self.client.clone();
        let prefix = format!("{}/members/", self.prefix);
        self.run(async move {
            let resp = client.get(prefix.as_bytes(), Some(GetOptions::new().with_prefix())).await.map_err(call)?;
            let mut addresses: Vec<String> =
                resp.kvs().iter().filter_map(|kv| kv.value_str().ok()).map(str::to_owned).collect();
            addresses.sort();
            addresses.dedup();
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA, and a certificate of it with its key, as PEM files in `dir`.
    fn files(dir: &Path) -> [PathBuf; 3] {
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["replica".to_owned()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("certificate");
        let paths = [dir.join("ca.pem"), dir.join("client.pem"), dir.join("client.key")];
        std::fs::write(&paths[0], ca.pem()).expect("write");
        std::fs::write(&paths[1], cert.pem()).expect("write");
        std::fs::write(&paths[2], key.serialize_pem()).expect("write");
        paths
    }

    #[test]
    fn matching_pem_files_load() {
        let dir = tempfile::tempdir().expect("dir");
        let [ca, cert, key] = files(dir.path());
        let tls = EtcdTls::load(&ca, &cert, &key).expect("loads");
        assert!(!format!("{tls:?}").contains("PRIVATE KEY"), "Debug shows paths, never the key");
    }

    #[test]
    fn a_client_key_that_is_not_the_certificates_is_refused_before_connecting() {
        let dir = tempfile::tempdir().expect("dir");
        let [ca, cert, _] = files(dir.path());
        let other = tempfile::tempdir().expect("dir");
        let [_, _, other_key] = files(other.path());
        let err = EtcdTls::load(&ca, &cert, &other_key).expect_err("another key");
        assert!(matches!(err, EtcdTlsError::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("give the key the certificate was issued for"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_pem_is_refused_naming_it_and_what_to_give() {
        let dir = tempfile::tempdir().expect("dir");
        let [ca, cert, key] = files(dir.path());
        // A certificate in DER, or a key where the CA should be.
        let der = dir.path().join("ca.der");
        std::fs::write(&der, [0x30, 0x82, 0x01, 0x00]).expect("write");
        let err = EtcdTls::load(&der, &cert, &key).expect_err("not PEM");
        assert!(matches!(err, EtcdTlsError::Malformed { file: EtcdFile::Ca, .. }), "{err}");
        assert!(err.to_string().contains("ca.der holds no PEM certificate"), "{err}");
        assert!(err.to_string().contains("-----BEGIN CERTIFICATE-----"), "{err}");
        let err = EtcdTls::load(&ca, &cert, &cert).expect_err("a certificate for a key");
        assert!(matches!(err, EtcdTlsError::Malformed { file: EtcdFile::Key, .. }), "{err}");
        let err = EtcdTls::load(&ca, &key, &key).expect_err("a key for a certificate");
        assert!(matches!(err, EtcdTlsError::Malformed { file: EtcdFile::Certificate, .. }), "{err}");
    }

    #[test]
    fn a_missing_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("dir");
        let [ca, cert, _] = files(dir.path());
        let missing = dir.path().join("nowhere.key");
        let err = EtcdTls::load(&ca, &cert, &missing).expect_err("missing");
        assert!(matches!(err, EtcdTlsError::Read { file: EtcdFile::Key, .. }), "{err}");
        assert!(err.to_string().contains("nowhere.key"), "{err}");
    }

    #[test]
    fn the_store_url_names_members_and_the_scheme_comes_from_the_transport() {
        let members = endpoints("etcd://10.0.0.5:2379, 10.0.0.6:2379").expect("parses");
        assert_eq!(members, ["10.0.0.5:2379", "10.0.0.6:2379"]);
        assert_eq!(EtcdTransport::DangerPlaintext.urls(&members)[0], "http://10.0.0.5:2379");
        let err = endpoints("etcd://https://10.0.0.5:2379").expect_err("a scheme inside");
        assert!(err.to_string().contains("is not HOST:PORT"), "{err}");
    }
}
