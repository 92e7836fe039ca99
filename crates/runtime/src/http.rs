//! Serving HTTP with a component of the `wasi:http/proxy` (0.2) or `wasi:http/service` (0.3)
//! world: requests are handed to pre-instantiated instances made on demand, each instance kept
//! for as many requests as [`Reuse`] allows (one, for 0.2, where the world allows no more),
//! under per-request limits. The network side (listening, TLS, bounds on what clients send) is
//! the embedder's; this module turns an [`http::Request`] into the guest's response.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lamina_host_attest::Attester;
use lamina_host_fs::{SealedComponentFs, SharedMounts};
use lamina_host_kv::KvStore;
use lamina_host_messaging::Broker;
use lamina_host_secrets::Secrets;
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut, Trap as WasmTrap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, InstantiationError, ProxyHandler, ProxyPre, ShouldAccept,
    TrapOrPanicError, WorkerExpiration, WorkerState, WorkerStatus,
};

use crate::host::{Limiter, P2Host};
use crate::instance::{Limits, Services, WasiConfig};
use crate::program::{Linked, Program};
use crate::{Error, InstantiateError};

/// A request or response body as wasi:http carries it.
pub type HttpBody = wasmtime_wasi_http::WasiBody;

/// How many requests one instance takes before a fresh one is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reuse {
    /// Requests an instance handles in all; then it is dropped. `1` is a fresh instance per
    /// request (no state shared between requests).
    pub max_requests: usize,
    /// Requests an instance handles at once (0.3 services only; a 0.2 handler takes one at a
    /// time).
    pub max_concurrent: usize,
    /// How long an idle instance is kept for the next request.
    pub idle: Duration,
}

impl Reuse {
    /// A fresh instance for every request: nothing a request leaves in memory reaches another.
    pub const FRESH: Reuse = Reuse { max_requests: 1, max_concurrent: 1, idle: Duration::ZERO };
}

/// What every instance gets, and the limits of each request.
#[derive(Debug)]
pub struct HttpConfig {
    /// Environment, directories and network rules of every instance (arguments and stdin are
    /// not used; standard output and error go where they say).
    pub wasi: WasiConfig,
    /// Per request: `timeout` bounds each request's time in the guest, `fuel` is what each
    /// request adds to its instance's fuel (one request per instance: its own bound);
    /// `max_memory` bounds each instance.
    pub limits: Limits,
    /// Instance reuse.
    pub reuse: Reuse,
    /// Host services, shared by every instance.
    pub services: Services,
}

/// Why a request got no response from the guest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The request's time limit passed before the guest answered.
    #[error("the guest did not answer within its {0:?} limit")]
    Timeout(Duration),
    /// The guest ran out of fuel.
    #[error("the guest ran out of fuel")]
    OutOfFuel,
    /// The instance trapped (its other requests, if any, ended with it).
    #[error("the guest trapped: {0}")]
    Trap(String),
    /// No instance could be made (the pool is full, memory is short): try again later.
    #[error("no instance could be started: {0}")]
    Unavailable(String),
    /// The guest answered with an error code instead of a response.
    #[error("the guest failed the request: {0}")]
    Guest(String),
}

impl HandleError {
    /// The HTTP status to answer with: 504 for a timeout, 503 when no instance could start,
    /// 500 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            HandleError::Timeout(_) => 504,
            HandleError::Unavailable(_) => 503,
            HandleError::OutOfFuel | HandleError::Trap(_) | HandleError::Guest(_) => 500,
        }
    }
}

/// Hands requests to instances of one HTTP component. Cheap to clone.
#[derive(Clone)]
pub struct HttpHandler {
    inner: ProxyHandler<HandlerCtx>,
}

impl std::fmt::Debug for HttpHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpHandler").field("reuse", &self.inner.state().reuse).finish_non_exhaustive()
    }
}

struct HandlerCtx {
    pre: ProxyPre<P2Host>,
    engine: wasmtime::Engine,
    wasi: WasiConfig,
    network: Arc<lamina_types::NetworkRules>,
    limits: Limits,
    reuse: Reuse,
    /// Sealed directories: every instance opens files of its own in the same volumes.
    sealed: SharedMounts,
    secrets: Option<Arc<Secrets>>,
    keyvalue: Option<Arc<KvStore>>,
    attestation: Option<Arc<Attester>>,
    messaging: Option<Arc<dyn Broker>>,
    /// Instance numbers for the log, shared by every fork of one handler.
    next_instance: Arc<AtomicU64>,
}

impl HttpHandler {
    /// A handler for an HTTP component. It must be called from within a tokio runtime (it
    /// spawns a task per instance).
    ///
    /// # Errors
    /// When the program is not an HTTP component, is given sealed directories it would not
    /// see (it imports WASI 0.3's filesystem), or a limit does not fit the engine.
    pub fn new(program: &Program, config: HttpConfig) -> Result<Self, Error> {
        let Linked::Http(pre) = &program.linked else {
            return Err(InstantiateError::Unsupported(format!(
                "this is {}, not an HTTP component: `lamina serve` serves components that export \
                 wasi:http/incoming-handler (0.2) or wasi:http/handler (0.3); run it with `lamina run`",
                program.world()
            ))
            .into());
        };
        if config.limits.fuel.is_some() && !program.engine.options().fuel {
            return Err(InstantiateError::Limits("fuel needs an engine built with fuel metering".into()).into());
        }
        let pre = clone_pre(pre);
        let reuse = match pre {
            // A 0.2 handler is called once per instance at a time.
            ProxyPre::P2(_) => Reuse { max_concurrent: 1, ..config.reuse },
            ProxyPre::P3(_) => config.reuse,
        };
        let Services { sealed, secrets, keyvalue, attestation, messaging, .. } = config.services;
        let ctx = HandlerCtx {
            pre,
            engine: program.engine.wasmtime().clone(),
            network: Arc::new(config.wasi.network.clone()),
            wasi: config.wasi,
            limits: config.limits,
            reuse,
            sealed: SharedMounts::new(sealed),
            secrets,
            keyvalue,
            attestation,
            messaging,
            next_instance: Arc::new(AtomicU64::new(0)),
        };
        Ok(Self { inner: ProxyHandler::new(ctx) })
    }

    /// A handler for the same component and configuration with instances of its own: requests
    /// given to it go to instances it starts, never to this one's. A server with a runtime per
    /// thread gives each thread a fork, so that a request, its instance and its connection stay
    /// on one thread. The forks share the sealed directories, services and instance numbers.
    #[must_use]
    pub fn fork(&self) -> Self {
        let ctx = self.inner.state();
        let fork = HandlerCtx {
            pre: clone_pre(&ctx.pre),
            engine: ctx.engine.clone(),
            wasi: ctx.wasi.clone(),
            network: Arc::clone(&ctx.network),
            limits: ctx.limits,
            reuse: ctx.reuse,
            sealed: ctx.sealed.clone(),
            secrets: ctx.secrets.clone(),
            keyvalue: ctx.keyvalue.clone(),
            attestation: ctx.attestation.clone(),
            messaging: ctx.messaging.clone(),
            next_instance: Arc::clone(&ctx.next_instance),
        };
        Self { inner: ProxyHandler::new(fork) }
    }

    /// Answers one request through an instance of the component.
    ///
    /// # Errors
    /// [`HandleError`] when the guest gives no response; its [`status`](HandleError::status)
    /// is the one to answer with.
    pub async fn handle(&self, request: http::Request<HttpBody>) -> Result<http::Response<HttpBody>, HandleError> {
        let limit = self.inner.state().limits.timeout;
        let started = Instant::now();
        self.inner.handle((), request).await.map_err(|e| match classify(&e, limit) {
            // The instance's trap is told to the worker, not to the request: a request whose
            // instance ended once it was past its time was ended by its time.
            HandleError::Trap(_) | HandleError::Guest(_) if limit.is_some_and(|l| started.elapsed() >= l) => {
                HandleError::Timeout(limit.unwrap_or_default())
            }
            other => other,
        })
    }
}

/// A copy of a pre-instantiated component (it is `Clone` in each world, not as the enum).
fn clone_pre(pre: &ProxyPre<P2Host>) -> ProxyPre<P2Host> {
    match pre {
        ProxyPre::P2(p) => ProxyPre::P2(p.clone()),
        ProxyPre::P3(p) => ProxyPre::P3(p.clone()),
    }
}

fn classify(e: &wasmtime::Error, limit: Option<Duration>) -> HandleError {
    if e.downcast_ref::<ExpirationError>().is_some() {
        return HandleError::Timeout(limit.unwrap_or_default());
    }
    if let Some(failed) = e.downcast_ref::<InstantiationError<()>>() {
        return HandleError::Unavailable(crate::error::chain(&failed.error));
    }
    match e.downcast_ref::<WasmTrap>() {
        Some(WasmTrap::Interrupt) => return HandleError::Timeout(limit.unwrap_or_default()),
        Some(WasmTrap::OutOfFuel) => return HandleError::OutOfFuel,
        Some(trap) => return HandleError::Trap(trap.to_string()),
        None => {}
    }
    if e.downcast_ref::<TrapOrPanicError>().is_some() {
        return HandleError::Trap("the instance ended before it answered (a trap, or a limit it hit)".into());
    }
    let text = crate::error::chain(e);
    if text.contains("wasm trap") || text.contains("wasm backtrace") {
        return HandleError::Trap(text);
    }
    // A 0.2 handler's instance that trapped never set its response.
    if text.contains("response-outparam") {
        return HandleError::Trap("the instance ended before it answered (a trap, or a limit it hit)".into());
    }
    HandleError::Guest(text)
}

impl HandlerState for HandlerCtx {
    type StoreData = P2Host;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<P2Host, Expiration, Worker>> {
        let id = self.next_instance.fetch_add(1, Ordering::Relaxed);
        let mut builder = WasiCtxBuilder::new();
        crate::network::apply_socket_rules(&mut builder, &self.network);
        for (k, v) in &self.wasi.env {
            builder.env(k, v);
        }
        for mount in &self.wasi.dirs {
            let perms =
                if mount.read_only { wasmtime_wasi::FsPerms::ReadOnly } else { wasmtime_wasi::FsPerms::ReadWrite };
            builder.preopened_dir(&mount.host, &mount.guest, perms)?;
        }
        builder.stdin(MemoryInputPipe::new(Vec::new()));
        crate::instance::set_output(&mut builder, self.wasi.stdout.clone(), self.wasi.stderr.clone());
        let mut host = crate::program::p2_host(
            &mut builder,
            Limiter::new(self.limits.max_memory.map(lamina_types::ByteSize::bytes)),
        );
        host.lamina = Services::guest(
            self.secrets.clone(),
            self.keyvalue.clone(),
            self.attestation.clone(),
            self.messaging.clone(),
            None,
        );
        host.hooks = crate::network::HttpHooks::new(Arc::clone(&self.network));
        host.sealed = SealedComponentFs::shared(&self.sealed);
        let mut store = Store::new(&self.engine, host);
        store.limiter(|h| &mut h.limiter as &mut dyn wasmtime::ResourceLimiter);
        let requests = Requests::default();
        let timeout = self.limits.timeout;
        {
            let requests = requests.clone();
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(move |_| {
                // A guest spinning on the CPU is never polled out of; end its instance when
                // its oldest request is past its time. Otherwise let the event loop run.
                if let Some(limit) = timeout
                    && requests.oldest().is_some_and(|t| t.elapsed() > limit)
                {
                    return Err(WasmTrap::Interrupt.into());
                }
                Ok(UpdateDeadline::Yield(1))
            });
        }
        if let Some(fuel) = self.limits.fuel {
            store.set_fuel(fuel)?;
        }
        let proxy = self.pre.instantiate_async(&mut store).await?;
        tracing::debug!(target: "lamina::serve", "instance {id} started");
        Ok(Instance {
            store,
            proxy,
            view: P2Host::http,
            expiration: Expiration {
                idle: self.reuse.idle,
                request: timeout.map_or(Duration::MAX, |t| t + EXPIRY_GRACE),
                sleep: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            },
            state: Worker { id, reuse: self.reuse, timeout, fuel: self.limits.fuel, requests, next: AtomicU64::new(0) },
        })
    }
}

/// How long past its limit a request's instance may take to be ended from outside the event
/// loop (the second line of defence, after the epoch check).
const EXPIRY_GRACE: Duration = Duration::from_millis(500);

/// The start times of an instance's requests in flight.
#[derive(Clone, Default)]
struct Requests(Arc<Mutex<BTreeMap<u64, Instant>>>);

impl Requests {
    fn oldest(&self) -> Option<Instant> {
        self.0.lock().ok().and_then(|m| m.values().min().copied())
    }
}

/// Removes a request from its instance's list when its expiration future is dropped (it
/// answered, or it expired).
struct InFlight {
    requests: Requests,
    id: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut m) = self.requests.0.lock() {
            m.remove(&self.id);
        }
    }
}

struct Worker {
    id: u64,
    reuse: Reuse,
    timeout: Option<Duration>,
    fuel: Option<u64>,
    requests: Requests,
    next: AtomicU64,
}

impl WorkerState for Worker {
    type StoreData = P2Host;
    type RequestData = ();

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.reuse.max_requests {
            ShouldAccept::Never
        } else if concurrent >= self.reuse.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, P2Host>,
        (): (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        // Each request adds its allowance to the instance's tank (a refill would hand a request
        // already running a fresh tank each time another starts).
        if let Some(fuel) = self.fuel
            && let Err(e) = store.get_fuel().and_then(|left| store.set_fuel(left.saturating_add(fuel)))
        {
            tracing::warn!(target: "lamina::serve", "cannot refuel instance {}: {e}", self.id);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.requests.0.lock() {
            m.insert(id, Instant::now());
        }
        let guard = InFlight { requests: self.requests.clone(), id };
        let timeout = self.timeout;
        Box::pin(async move {
            let _guard = guard;
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending::<()>().await,
            }
        })
    }

    fn drop(&self, mut store: Store<P2Host>, result: wasmtime::Result<()>) {
        // What the instance wrote to sealed directories and did not sync yet becomes durable
        // now (a guest that answers only after its data is safe syncs before it answers), on a
        // blocking thread: the commit waits for the disk.
        let sealed = std::mem::take(&mut store.data_mut().sealed);
        if sealed.has_mounts() {
            let id = self.id;
            let commit = move || {
                let mut sealed = sealed;
                if let Err(e) = sealed.commit_all() {
                    tracing::error!(
                        target: "lamina::serve",
                        "instance {id}: its last writes to a sealed directory could not be committed: {e}"
                    );
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(commit)),
                Err(_) => commit(),
            }
        }
        self.report(&store, result);
        // Freeing the instance (its memory slot reset, its tables) waits until the tasks
        // already woken have run: on a thread that serves its connections alone, the response
        // the instance has just given is written first.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(async move { drop(store) })),
            Err(_) => drop(store),
        }
    }
}

impl Worker {
    /// Says in the log why an instance ended, when it did not end well.
    fn report(&self, store: &Store<P2Host>, result: wasmtime::Result<()>) {
        if let Err(e) = result {
            if !std::thread::panicking() && e.downcast_ref::<WasmTrap>().is_none() && e.to_string() == "worker panicked"
            {
                // wasmtime-wasi-http says so of any worker whose future was dropped unfinished,
                // as every idle one is when the server stops; a real panic unwinds through here.
                tracing::debug!(target: "lamina::serve", "instance {} dropped with the server", self.id);
                return;
            }
            let limiter = &store.data().limiter;
            match (limiter.refused, limiter.limit()) {
                (Some(asked), Some(limit)) => tracing::warn!(
                    target: "lamina::serve",
                    "instance {} ended: out of memory (asked for {} beyond its {} limit)",
                    self.id,
                    lamina_types::ByteSize(asked),
                    lamina_types::ByteSize(limit)
                ),
                _ => {
                    let cause = match e.downcast_ref::<WasmTrap>() {
                        Some(WasmTrap::Interrupt) => "its request ran past its time".to_owned(),
                        Some(trap) => format!("trap: {trap}"),
                        None => e.root_cause().to_string(),
                    };
                    tracing::warn!(target: "lamina::serve", "instance {} ended: {cause}", self.id);
                    tracing::debug!(target: "lamina::serve", "instance {} ended: {e:?}", self.id);
                }
            }
        }
    }
}

/// Ends an idle instance after its idle time, and a busy one whose requests are all past
/// their time (when the epoch check could not).
struct Expiration {
    idle: Duration,
    request: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiration {
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>, status: WorkerStatus, start: Instant) -> Poll<()> {
        let after = match status {
            WorkerStatus::Idle => self.idle,
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.request,
        };
        let Some(deadline) = start.checked_add(after) else { return Poll::Pending };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}
