//! The replicated store: the control plane's state in an etcd cluster, and leader election
//! through an etcd lease, so that two or three control planes share one state and one serves.
//!
//! Keys live under a prefix (`/lamina` by default):
//! - `<prefix>/state/<name>`: the documents the embedded store keeps as files (registry,
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

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};

use crate::StoreError;

/// The largest value written as one key; larger ones are split.
const CHUNK: usize = 1 << 20;
/// How long the leader's lease lasts without a keep-alive: the longest a dead leader blocks a
/// successor.
pub const LEASE_TTL: i64 = 5;
/// How long one etcd request may take before the store gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to an etcd cluster, used from synchronous code: requests run on the store's
/// own runtime thread.
pub struct EtcdStore {
    client: etcd_client::Client,
    runtime: Arc<tokio::runtime::Runtime>,
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

/// An etcd call's error: [`StoreError::EtcdUnreachable`] when the member it went to could not
/// be reached (the call is worth trying again: another member may answer).
fn call(e: etcd_client::Error) -> StoreError {
    let unreachable = match &e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => {
            matches!(format!("{:?}", status.code()).as_str(), "Unavailable" | "DeadlineExceeded" | "Cancelled")
        }
        _ => false,
    };
    if unreachable { StoreError::EtcdUnreachable(e.to_string()) } else { StoreError::Etcd(e.to_string()) }
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

/// Parses `etcd://host:port,host:port` into endpoints.
///
/// # Errors
/// [`StoreError::Etcd`] when it is not such a URL.
pub fn endpoints(url: &str) -> Result<Vec<String>, StoreError> {
    let rest = url
        .strip_prefix("etcd://")
        .ok_or_else(|| StoreError::Etcd(format!("`{url}` is not an etcd URL; give etcd://HOST:PORT[,HOST:PORT...]")))?;
    let endpoints: Vec<String> =
        rest.split(',').map(str::trim).filter(|e| !e.is_empty()).map(|e| format!("http://{e}")).collect();
    if endpoints.is_empty() {
        return Err(StoreError::Etcd(format!("`{url}` names no etcd member")));
    }
    Ok(endpoints)
}

impl EtcdStore {
    /// Connects to the etcd members at `endpoints` (`http://host:port`), keys under `prefix`.
    ///
    /// # Errors
    /// [`StoreError::Etcd`] when no member answers.
    pub fn connect(endpoints: Vec<String>, prefix: &str) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lamina-etcd")
            .enable_all()
            .build()
            .map_err(etcd)?;
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(REQUEST_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        let list = endpoints.clone();
        let client = runtime
            .block_on(async move { etcd_client::Client::connect(list, Some(options)).await })
            .map_err(|e| StoreError::Etcd(format!("cannot reach etcd at {}: {e}", endpoints.join(", "))))?;
        let mut id = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        let store = EtcdStore {
            client,
            runtime: Arc::new(runtime),
            prefix: prefix.trim_end_matches('/').to_owned(),
            endpoints,
            id: hex::encode(id),
            lease: Mutex::new(None),
            generations: Mutex::new(std::collections::HashMap::new()),
        };
        // A first request, so that a wrong address fails here rather than later.
        store.get("registry.json")?;
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
