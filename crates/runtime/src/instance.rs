//! Instantiating and running a guest under limits, and explaining how it ended.

use std::time::{Duration, Instant};

use lamina_types::{ByteSize, DirMount, NetworkRules};
use wasmtime::{Store, Trap as WasmTrap, WasmBacktrace};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::host::{GuestServices, Limiter, P1Host, P2Host};
use crate::output::GuestOutput;
use crate::program::{Linked, Program};
use crate::{Error, InstantiateError};
use lamina_artifact::{EPOCH_TICK, ProfileLimits};
use lamina_host_attest::{AttestCtx, Attester};
use lamina_host_fs::{SealedComponentFs, SealedFs, SealedMount};
use lamina_host_kv::{KvCtx, KvStore};
use lamina_host_messaging::{Broker, MessagingCtx};
use lamina_host_secrets::{Secrets, SecretsCtx};
use std::sync::Arc;

/// Where a guest's output goes.
#[derive(Clone, Default)]
pub enum Output {
    /// This process's stream.
    #[default]
    Inherit,
    /// Kept in memory (up to 16 MiB) and returned by [`Instance::stdout`] / [`Instance::stderr`].
    Capture,
    /// Discarded.
    Null,
    /// Handed to the embedder as it comes (a node agent's capped instance log; a file, which
    /// implements [`GuestOutput`] by appending).
    Sink(Arc<dyn GuestOutput>),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Inherit => f.write_str("Inherit"),
            Output::Capture => f.write_str("Capture"),
            Output::Null => f.write_str("Null"),
            Output::Sink(_) => f.write_str("Sink"),
        }
    }
}

impl PartialEq for Output {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Output::Sink(a), Output::Sink(b)) => std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b)),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl Eq for Output {}

/// The guest's view of the world: arguments, environment, directories and standard streams.
#[derive(Clone, Debug, Default)]
pub struct WasiConfig {
    /// `argv`, including the program name in `argv[0]`.
    pub args: Vec<String>,
    /// Environment variables; nothing of the host's is inherited.
    pub env: Vec<(String, String)>,
    /// Host directories to preopen.
    pub dirs: Vec<DirMount>,
    /// Standard input: the host's (`None`) or these bytes.
    pub stdin: Option<Vec<u8>>,
    /// Standard output.
    pub stdout: Output,
    /// Standard error.
    pub stderr: Output,
    /// What the guest may reach over the network (outgoing HTTP, sockets); nothing by default.
    pub network: NetworkRules,
}

/// Host services given to one instance beyond WASI. A service left out answers the guest with
/// its "unavailable" error (or, for secrets, "not found"), never a trap.
#[derive(Default)]
pub struct Services {
    /// Sealed directories: a guest sees each as an ordinary preopened directory, the host sees
    /// ciphertext.
    pub sealed: Vec<SealedMount>,
    /// Secrets the guest may read.
    pub secrets: Option<Arc<Secrets>>,
    /// The sealed key-value store.
    pub keyvalue: Option<Arc<KvStore>>,
    /// Self-attestation.
    pub attestation: Option<Arc<Attester>>,
    /// The message broker.
    pub messaging: Option<Arc<dyn Broker>>,
    /// Set to stop the guest from another thread (a node agent ending an instance): it traps
    /// with [`TrapReason::Stopped`] at the next epoch tick.
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("sealed", &self.sealed)
            .field("secrets", &self.secrets)
            .field("keyvalue", &self.keyvalue)
            .field("attestation", &self.attestation)
            .field("messaging", &self.messaging.is_some())
            .field("stop", &self.stop.is_some())
            .finish()
    }
}

impl Services {
    pub(crate) fn guest(
        secrets: Option<Arc<Secrets>>,
        keyvalue: Option<Arc<KvStore>>,
        attestation: Option<Arc<Attester>>,
        messaging: Option<Arc<dyn Broker>>,
        deadline: Option<Instant>,
    ) -> GuestServices {
        let mut messaging = MessagingCtx::new(messaging);
        messaging.set_deadline(deadline);
        GuestServices {
            secrets: SecretsCtx::new(secrets.unwrap_or_default()),
            kv: KvCtx::new(keyvalue),
            attest: AttestCtx::new(attestation),
            messaging,
        }
    }
}

/// Bounds on one instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Total linear memory the guest may use.
    pub max_memory: Option<ByteSize>,
    /// Wall-clock time for the guest's code, enforced by epoch interruption.
    pub timeout: Option<Duration>,
    /// Fuel (roughly, Wasm instructions); needs an engine built with `fuel: true`.
    pub fuel: Option<u64>,
}

/// What a guest used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceUsage {
    /// The largest total linear memory it had.
    pub peak_memory: ByteSize,
    /// Fuel consumed, when metered.
    pub fuel_consumed: Option<u64>,
    /// Time from instantiation until now or until it ended.
    pub wall_time: Duration,
}

/// How a guest ended.
#[derive(Debug)]
#[must_use]
pub enum Exit {
    /// It exited (or returned from its entry point: code 0).
    Code(i32),
    /// It trapped or was killed by a limit.
    Trap(Trap),
}

/// A guest's abnormal end.
#[derive(Debug)]
pub struct Trap {
    /// Why, in one line.
    pub reason: TrapReason,
    /// The Wasm backtrace, innermost frame first, as the engine prints it (function names where
    /// the module has a name section).
    pub backtrace: Option<String>,
}

/// Why a guest was stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrapReason {
    /// `--timeout` elapsed.
    Timeout(Duration),
    /// `--fuel` ran out.
    OutOfFuel(u64),
    /// Memory growth beyond `--max-memory` was refused and the guest then died.
    OutOfMemory {
        /// The total it asked for.
        requested: ByteSize,
        /// Its limit.
        limit: ByteSize,
    },
    /// The Wasm stack limit was hit.
    StackOverflow,
    /// Any other Wasm trap (unreachable, out-of-bounds access, division by zero…).
    Wasm(String),
    /// A host function failed.
    Host(String),
    /// Stopped from outside through [`Services::stop`].
    Stopped,
}

impl std::fmt::Display for TrapReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrapReason::Timeout(d) => write!(f, "killed: exceeded the {} timeout", humantime_like(*d)),
            TrapReason::OutOfFuel(n) => write!(f, "killed: ran out of fuel after {n} units"),
            TrapReason::OutOfMemory { requested, limit } => {
                write!(f, "out of memory: the guest asked for {requested} beyond its {limit} limit")
            }
            TrapReason::StackOverflow => f.write_str("stack overflow"),
            TrapReason::Wasm(m) => write!(f, "trap: {m}"),
            TrapReason::Host(m) => write!(f, "host error: {m}"),
            TrapReason::Stopped => f.write_str("stopped"),
        }
    }
}

/// `2s`, `500ms`, `1.5s`: short and exact enough for a message.
fn humantime_like(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// A live guest instance.
pub struct Instance {
    state: State,
    limits: Limits,
    started: Instant,
    ended: Option<Instant>,
    stdout: Option<MemoryOutputPipe>,
    stderr: Option<MemoryOutputPipe>,
}

enum State {
    Module {
        store: Store<P1Host>,
        instance: wasmtime::Instance,
    },
    Component {
        store: Store<P2Host>,
        command: Box<Command>,
    },
    /// A WASI 0.3 command and the event loop its host calls run on.
    ComponentP3 {
        store: Store<P2Host>,
        command: Box<wasmtime_wasi::p3::bindings::Command>,
        runtime: tokio::runtime::Runtime,
    },
}

impl State {
    fn limiter(&self) -> &Limiter {
        match self {
            State::Module { store, .. } => &store.data().limiter,
            State::Component { store, .. } | State::ComponentP3 { store, .. } => &store.data().limiter,
        }
    }

    fn fuel_left(&self) -> Option<u64> {
        match self {
            State::Module { store, .. } => store.get_fuel().ok(),
            State::Component { store, .. } | State::ComponentP3 { store, .. } => store.get_fuel().ok(),
        }
    }
}

const CAPTURE_LIMIT: usize = 16 << 20;

impl Program {
    /// Instantiates the program with a WASI context and limits.
    ///
    /// # Errors
    /// [`InstantiateError`] when a mount is missing, a limit does not fit the engine, or the
    /// guest's initial memory is already beyond its limit.
    pub fn instantiate(&self, wasi: &WasiConfig, limits: Limits) -> Result<Instance, Error> {
        self.instantiate_with(wasi, limits, Services::default())
    }

    /// Instantiates the program with a WASI context, limits and host services.
    ///
    /// # Errors
    /// As [`Program::instantiate`].
    pub fn instantiate_with(&self, wasi: &WasiConfig, limits: Limits, services: Services) -> Result<Instance, Error> {
        let profile = ProfileLimits::of(self.engine.options().profile);
        if let Some(max) = limits.max_memory
            && max > profile.max_memory
        {
            return Err(InstantiateError::Limits(format!(
                "--max-memory {max} is more than the {} profile allows ({}); use a larger profile",
                self.engine.options().profile,
                profile.max_memory
            ))
            .into());
        }
        if limits.fuel.is_some() && !self.engine.options().fuel {
            return Err(InstantiateError::Limits("fuel needs an engine built with fuel metering".into()).into());
        }
        if let Linked::Http(_) = &self.linked {
            return Err(InstantiateError::Unsupported(format!(
                "this is {}: it answers HTTP requests rather than runs; serve it with `lamina serve`",
                self.world()
            ))
            .into());
        }
        let network = Arc::new(wasi.network.clone());
        let mut builder = WasiCtxBuilder::new();
        crate::network::apply_socket_rules(&mut builder, &network);
        builder.args(&wasi.args);
        for (k, v) in &wasi.env {
            builder.env(k, v);
        }
        for mount in &wasi.dirs {
            check_mount(mount)?;
            let perms = if mount.read_only { FsPerms::ReadOnly } else { FsPerms::ReadWrite };
            builder
                .preopened_dir(&mount.host, &mount.guest, perms)
                .map_err(|e| InstantiateError::Mount { path: mount.host.clone(), reason: crate::error::chain(&e) })?;
        }
        let mut placeholder = None;
        if !services.sealed.is_empty() && matches!(self.linked, Linked::Module(_)) {
            // An empty, read-only directory reserves each sealed mount's descriptor number
            // (preview 1 only: a component's sealed preopens are resources of their own).
            let empty = tempfile::tempdir()
                .map_err(|e| InstantiateError::Mount { path: std::env::temp_dir(), reason: e.to_string() })?;
            for mount in &services.sealed {
                builder.preopened_dir(empty.path(), &mount.guest, FsPerms::ReadOnly).map_err(|e| {
                    InstantiateError::Mount { path: empty.path().into(), reason: crate::error::chain(&e) }
                })?;
            }
            placeholder = Some(empty);
        }
        let first_sealed_fd = 3 + wasi.dirs.len() as u32;
        match &wasi.stdin {
            None => {
                builder.inherit_stdin();
            }
            Some(bytes) => {
                builder.stdin(MemoryInputPipe::new(bytes.clone()));
            }
        }
        let stdout = output(&mut builder, wasi.stdout.clone(), Stream::Out);
        let stderr = output(&mut builder, wasi.stderr.clone(), Stream::Err);
        let max_memory = limits.max_memory.map(ByteSize::bytes);
        let engine = self.engine.wasmtime();
        let started = Instant::now();
        let Services { sealed, secrets, keyvalue, attestation, messaging, stop } = services;
        let lamina = Services::guest(
            secrets,
            keyvalue,
            attestation,
            messaging,
            limits.timeout.and_then(|t| started.checked_add(t)),
        );
        let state = match &self.linked {
            Linked::Module(pre) => {
                let mut host = P1Host::new(builder.build_p1(), max_memory);
                host.sealed = SealedFs::new(sealed, first_sealed_fd);
                host.lamina = lamina;
                host._placeholder = placeholder;
                let mut store = Store::new(engine, host);
                prepare(&mut store, limits, |h| &mut h.limiter)?;
                watch_stop(&mut store, limits, stop.clone());
                let instance = pre.instantiate(&mut store).map_err(|e| instantiate_error(&e, &store.data().limiter))?;
                State::Module { store, instance }
            }
            Linked::Command(pre) => {
                let mut host = crate::program::p2_host(&mut builder, Limiter::new(max_memory));
                host.lamina = lamina;
                host.sealed = SealedComponentFs::new(sealed);
                host.hooks = crate::network::HttpHooks::new(network);
                let mut store = Store::new(engine, host);
                prepare(&mut store, limits, |h| &mut h.limiter)?;
                watch_stop(&mut store, limits, stop);
                let command = pre.instantiate(&mut store).map_err(|e| instantiate_error(&e, &store.data().limiter))?;
                State::Component { store, command: Box::new(command) }
            }
            Linked::CommandP3(pre) => {
                let mut host = crate::program::p2_host(&mut builder, Limiter::new(max_memory));
                host.lamina = lamina;
                host.sealed = SealedComponentFs::new(sealed);
                host.hooks = crate::network::HttpHooks::new(network);
                let mut store = Store::new(engine, host);
                prepare(&mut store, limits, |h| &mut h.limiter)?;
                watch_stop(&mut store, limits, stop);
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| InstantiateError::Engine(format!("cannot start the event loop: {e}")))?;
                let command = runtime
                    .block_on(pre.instantiate_async(&mut store))
                    .map_err(|e| instantiate_error(&e, &store.data().limiter))?;
                State::ComponentP3 { store, command: Box::new(command), runtime }
            }
            Linked::Http(_) => unreachable!("refused above"),
        };
        Ok(Instance { state, limits, started, ended: None, stdout, stderr })
    }

    /// Instantiates and runs the program's entry point (`_start` or `wasi:cli/run`).
    ///
    /// # Errors
    /// As [`Program::instantiate`]; how the guest ended is in the returned [`Exit`].
    pub fn run(&self, wasi: &WasiConfig, limits: Limits) -> Result<(Exit, Instance), Error> {
        let mut instance = self.instantiate(wasi, limits)?;
        let exit = instance.run();
        Ok((exit, instance))
    }
}

enum Stream {
    Out,
    Err,
}

/// Directs a served instance's standard output and error (nothing is captured there).
pub(crate) fn set_output(builder: &mut WasiCtxBuilder, stdout: Output, stderr: Output) {
    let uncaptured = |o: Output| if o == Output::Capture { Output::Null } else { o };
    let _ = output(builder, uncaptured(stdout), Stream::Out);
    let _ = output(builder, uncaptured(stderr), Stream::Err);
}

fn output(builder: &mut WasiCtxBuilder, mode: Output, stream: Stream) -> Option<MemoryOutputPipe> {
    match (mode, stream) {
        (Output::Inherit, Stream::Out) => {
            builder.inherit_stdout();
            None
        }
        (Output::Inherit, Stream::Err) => {
            builder.inherit_stderr();
            None
        }
        (Output::Null, Stream::Out) => {
            builder.stdout(wasmtime_wasi::p2::pipe::SinkOutputStream);
            None
        }
        (Output::Null, Stream::Err) => {
            builder.stderr(wasmtime_wasi::p2::pipe::SinkOutputStream);
            None
        }
        (Output::Sink(sink), s) => {
            let out = crate::output::SinkStream(sink);
            match s {
                Stream::Out => builder.stdout(out),
                Stream::Err => builder.stderr(out),
            };
            None
        }
        (Output::Capture, s) => {
            let pipe = MemoryOutputPipe::new(CAPTURE_LIMIT);
            match s {
                Stream::Out => builder.stdout(pipe.clone()),
                Stream::Err => builder.stderr(pipe.clone()),
            };
            Some(pipe)
        }
    }
}

fn check_mount(mount: &DirMount) -> Result<(), InstantiateError> {
    let reason = match std::fs::metadata(&mount.host) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => "it is not a directory".to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "it does not exist".to_owned(),
        Err(e) => e.to_string(),
    };
    Err(InstantiateError::Mount { path: mount.host.clone(), reason })
}

fn prepare<T: 'static>(
    store: &mut Store<T>,
    limits: Limits,
    mut limiter: impl (FnMut(&mut T) -> &mut Limiter) + Send + Sync + 'static,
) -> Result<(), Error> {
    store.limiter(move |t| limiter(t) as &mut dyn wasmtime::ResourceLimiter);
    let ticks = match limits.timeout {
        // Round up, plus one tick: the current tick may be almost over.
        Some(t) => (t.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).saturating_add(1),
        None => u64::MAX / 2,
    };
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_trap();
    if let Some(fuel) = limits.fuel {
        store.set_fuel(fuel).map_err(|e| InstantiateError::Limits(crate::error::chain(&e)))?;
    }
    Ok(())
}

/// The error a stopped guest traps with.
#[derive(Debug)]
struct StoppedMarker;

impl std::fmt::Display for StoppedMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped from outside")
    }
}

impl std::error::Error for StoppedMarker {}

/// With a stop flag, every epoch tick checks it; the timeout is then counted here too.
fn watch_stop<T: 'static>(store: &mut Store<T>, limits: Limits, stop: Option<Arc<std::sync::atomic::AtomicBool>>) {
    let Some(stop) = stop else { return };
    let mut left = match limits.timeout {
        Some(t) => (t.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).saturating_add(1),
        None => u64::MAX,
    };
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(wasmtime::Error::new(StoppedMarker));
        }
        left = left.saturating_sub(1);
        if left == 0 {
            return Err(WasmTrap::Interrupt.into());
        }
        Ok(wasmtime::UpdateDeadline::Continue(1))
    });
}

fn instantiate_error(e: &wasmtime::Error, limiter: &Limiter) -> Error {
    match (limiter.refused, limiter.limit()) {
        (Some(needed), Some(limit)) => {
            InstantiateError::InitialMemory { needed: ByteSize(needed), limit: ByteSize(limit) }.into()
        }
        _ => InstantiateError::Engine(crate::error::chain(e)).into(),
    }
}

impl Instance {
    /// Runs the entry point: `_start` of a module, `wasi:cli/run` of a component.
    pub fn run(&mut self) -> Exit {
        let result = match &mut self.state {
            State::Module { store, instance } => match instance.get_typed_func::<(), ()>(&mut *store, "_start") {
                Ok(start) => start.call(&mut *store, ()).map(|()| 0),
                Err(_) => Err(wasmtime::Error::msg(
                    "the module exports no `_start`: it is a library, not a command (call its exports instead)",
                )),
            },
            State::Component { store, command } => match command.wasi_cli_run().call_run(&mut *store) {
                Ok(Ok(())) => Ok(0),
                Ok(Err(())) => Ok(1),
                Err(e) => Err(e),
            },
            State::ComponentP3 { store, command, runtime } => {
                let run = runtime
                    .block_on(store.run_concurrent(async |accessor| command.wasi_cli_run().call_run(accessor).await));
                match run {
                    Ok(Ok(Ok(()))) => Ok(0),
                    Ok(Ok(Err(()))) => Ok(1),
                    Ok(Err(e)) | Err(e) => Err(e),
                }
            }
        };
        self.ended = Some(Instant::now());
        let committed = match &mut self.state {
            State::Module { store, .. } => store.data_mut().sealed.commit_all(),
            State::Component { store, .. } | State::ComponentP3 { store, .. } => store.data_mut().sealed.commit_all(),
        };
        if let Err(e) = committed {
            tracing::error!("the guest's last writes to a sealed directory could not be committed: {e}");
        }
        match result {
            Ok(code) => Exit::Code(code),
            Err(e) => self.explain(&e),
        }
    }

    /// Calls an exported function of a core module (running `_initialize` first, if the module
    /// has one and it has not run yet).
    ///
    /// # Errors
    /// The guest's [`Exit`] when it traps or exits; a host error when the export is missing or
    /// the program is a component.
    pub fn call(&mut self, name: &str, args: &[wasmtime::Val]) -> Result<Vec<wasmtime::Val>, Exit> {
        let State::Module { store, instance } = &mut self.state else {
            return Err(Exit::Trap(Trap {
                reason: TrapReason::Host("calling named exports of components is not supported; use run()".into()),
                backtrace: None,
            }));
        };
        let Some(func) = instance.get_func(&mut *store, name) else {
            return Err(Exit::Trap(Trap {
                reason: TrapReason::Host(format!("the module exports no function `{name}`")),
                backtrace: None,
            }));
        };
        let mut results = vec![wasmtime::Val::I32(0); func.ty(&*store).results().len()];
        match func.call(&mut *store, args, &mut results) {
            Ok(()) => Ok(results),
            Err(e) => Err(self.explain(&e)),
        }
    }

    /// What the guest used so far.
    pub fn usage(&self) -> ResourceUsage {
        let (peak, fuel_left) = (self.state.limiter().peak, self.state.fuel_left());
        ResourceUsage {
            peak_memory: ByteSize(peak),
            fuel_consumed: self.limits.fuel.zip(fuel_left).map(|(total, left)| total.saturating_sub(left)),
            wall_time: self.ended.unwrap_or_else(Instant::now) - self.started,
        }
    }

    /// Captured standard output ([`Output::Capture`]).
    pub fn stdout(&self) -> Option<Vec<u8>> {
        self.stdout.as_ref().map(|p| p.contents().to_vec())
    }

    /// Captured standard error ([`Output::Capture`]).
    pub fn stderr(&self) -> Option<Vec<u8>> {
        self.stderr.as_ref().map(|p| p.contents().to_vec())
    }

    fn explain(&self, e: &wasmtime::Error) -> Exit {
        if let Some(exit) = e.downcast_ref::<I32Exit>() {
            return Exit::Code(exit.0);
        }
        let limiter = self.state.limiter();
        let refused = limiter.refused.zip(limiter.limit());
        let backtrace = e.downcast_ref::<WasmBacktrace>().map(|bt| {
            // wasmtime's rendering starts with a sentence of its own; keep only the frames.
            let text = bt.to_string();
            let frames = text.split_once('\n').map_or(text.as_str(), |(_, rest)| rest);
            format!("wasm backtrace:\n{frames}")
        });
        if e.downcast_ref::<StoppedMarker>().is_some() {
            return Exit::Trap(Trap { reason: TrapReason::Stopped, backtrace: None });
        }
        let reason = match e.downcast_ref::<WasmTrap>() {
            Some(WasmTrap::Interrupt) => TrapReason::Timeout(self.limits.timeout.unwrap_or_default()),
            Some(WasmTrap::OutOfFuel) => TrapReason::OutOfFuel(self.limits.fuel.unwrap_or_default()),
            Some(WasmTrap::StackOverflow) => TrapReason::StackOverflow,
            // A refused memory.grow usually ends in the guest's allocator aborting.
            Some(_) if refused.is_some() => {
                let (requested, limit) = refused.unwrap_or_default();
                TrapReason::OutOfMemory { requested: ByteSize(requested), limit: ByteSize(limit) }
            }
            Some(trap) => TrapReason::Wasm(trap.to_string().trim_start_matches("wasm trap: ").to_owned()),
            None => TrapReason::Host(crate::error::chain(e)),
        };
        Exit::Trap(Trap { reason, backtrace })
    }
}

#[cfg(all(test, feature = "compiler"))]
mod tests {
    use super::*;
    use crate::{Engine, EngineOptions};
    use lamina_types::Profile;
    use std::sync::atomic::AtomicBool;

    const SPIN: &str = r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#;

    #[test]
    fn a_stop_flag_ends_a_spinning_guest_and_timeouts_still_apply() {
        let engine = Engine::new(EngineOptions::for_profile(Profile::Tiny)).expect("engine");
        let program = crate::Program::load(&engine, SPIN.as_bytes(), None).expect("loads");
        let stop = Arc::new(AtomicBool::new(false));
        let services = Services { stop: Some(stop.clone()), ..Services::default() };
        let mut instance =
            program.instantiate_with(&WasiConfig::default(), Limits::default(), services).expect("starts");
        let flag = stop.clone();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let exit = instance.run();
        stopper.join().expect("stopper");
        assert!(matches!(exit, Exit::Trap(Trap { reason: TrapReason::Stopped, .. })), "{exit:?}");

        let services = Services { stop: Some(Arc::new(AtomicBool::new(false))), ..Services::default() };
        let limits = Limits { timeout: Some(Duration::from_millis(100)), ..Limits::default() };
        let mut instance = program.instantiate_with(&WasiConfig::default(), limits, services).expect("starts");
        let exit = instance.run();
        assert!(matches!(exit, Exit::Trap(Trap { reason: TrapReason::Timeout(_), .. })), "{exit:?}");
    }
}
