//! Engines per device profile and target, and the epoch ticker that enforces timeouts.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lamina_types::{ByteSize, Profile, Target};
use sha2::{Digest, Sha256};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::Error;

/// The wasmtime version this crate embeds; artifacts record it.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// How often the epoch advances: the resolution of `--timeout`.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// What an engine is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EngineOptions {
    /// The device profile: address-space reservations, guards and pool sizes.
    pub profile: Profile,
    /// The machine code target; `None` is this machine.
    pub target: Option<Target>,
    /// Compile fuel metering in, so that `--fuel` can bound a guest's instructions.
    pub fuel: bool,
    /// Compile epoch checks in, so that a timeout or a stop can interrupt the guest's code.
    /// They cost up to 2-3x in tight loops (docs/benchmarks.md); only an engine that nothing
    /// needs to interrupt (`lamina run` without `--timeout`) leaves them out. Artifacts and
    /// everything the node agent runs are interruptible.
    pub interruptible: bool,
}

impl EngineOptions {
    /// Options for a profile on this machine: interruptible, without fuel metering.
    pub fn for_profile(profile: Profile) -> Self {
        Self { profile, target: None, fuel: false, interruptible: true }
    }
}

/// The sizes a device profile sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileLimits {
    /// Virtual address space reserved per linear memory.
    pub memory_reservation: ByteSize,
    /// Guard region after each linear memory.
    pub memory_guard: ByteSize,
    /// The largest linear memory an instance may grow to.
    pub max_memory: ByteSize,
    /// Pooled instance slots, or `None` for on-demand allocation.
    pub pool_slots: Option<u32>,
    /// Wasm stack limit.
    pub max_wasm_stack: ByteSize,
}

impl ProfileLimits {
    /// The limits of a profile.
    pub const fn of(profile: Profile) -> Self {
        const KIB: u64 = 1024;
        const MIB: u64 = 1024 * KIB;
        const GIB: u64 = 1024 * MIB;
        match profile {
            // 4 GiB reservations + 32 MiB guards: bounds checks are elided. 500 slots reserve
            // about 2 TiB of address space, which a 47/48-bit server has to spare.
            Profile::Server => Self {
                memory_reservation: ByteSize(4 * GIB),
                memory_guard: ByteSize(32 * MIB),
                max_memory: ByteSize(4 * GIB),
                pool_slots: Some(500),
                max_wasm_stack: ByteSize(MIB),
            },
            // 64 slots of 1 GiB: 64 GiB of address space, fits a 39-bit (512 GiB) gateway.
            Profile::Edge => Self {
                memory_reservation: ByteSize(GIB),
                memory_guard: ByteSize(64 * KIB),
                max_memory: ByteSize(GIB),
                pool_slots: Some(64),
                max_wasm_stack: ByteSize(512 * KIB),
            },
            // No pool and no up-front reservation: memories are allocated at their size and
            // moved when they grow; explicit bounds checks. Starts in a few MiB of address space.
            Profile::Tiny => Self {
                memory_reservation: ByteSize(0),
                memory_guard: ByteSize(0),
                max_memory: ByteSize(256 * MIB),
                pool_slots: None,
                max_wasm_stack: ByteSize(256 * KIB),
            },
        }
    }
}

/// A configured wasmtime engine plus what Lamina needs to know about it.
///
/// Cheap to clone. Engines for this machine run a ticker thread that advances the epoch every
/// [`EPOCH_TICK`], which is how timeouts interrupt a guest; it stops when the last clone drops.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: wasmtime::Engine,
    options: EngineOptions,
    fingerprint: [u8; 32],
    _ticker: Option<Arc<Ticker>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("options", &self.options).finish_non_exhaustive()
    }
}

struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Core instances (and tables) the pool keeps per component instance slot.
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;

impl Engine {
    /// Builds an engine for the given options.
    ///
    /// # Errors
    /// When the target is unsupported by this build (for instance a cross-compiling engine in the
    /// runtime-only build) or the profile's pool cannot be reserved on this machine.
    pub fn new(options: EngineOptions) -> Result<Self, Error> {
        let limits = ProfileLimits::of(options.profile);
        let mut config = Config::new();
        config
            .epoch_interruption(options.interruptible)
            .consume_fuel(options.fuel)
            .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(64))
            .max_wasm_stack(usize::try_from(limits.max_wasm_stack.bytes()).unwrap_or(usize::MAX))
            .memory_reservation(limits.memory_reservation.bytes())
            .memory_guard_size(limits.memory_guard.bytes())
            .memory_may_move(limits.memory_reservation.bytes() < limits.max_memory.bytes())
            .memory_init_cow(true)
            // WASI 0.3: the component model's async ABI (futures, streams, async exports).
            .wasm_component_model_async(true);
        if options.profile == Profile::Tiny {
            // Keep growth cheap on small boards: reserve a little headroom per grow.
            config.memory_reservation_for_growth(ByteSize::mib(1).bytes());
        }
        if let Some(target) = options.target {
            config
                .target(target.triple())
                .map_err(|e| Error::Engine(format!("target {target}: {}", crate::chain(&e))))?;
        }
        if let Some(slots) = limits.pool_slots {
            let mut pool = PoolingAllocationConfig::new();
            // A component instance is several core instances (its module, the shims and
            // adapters wit-bindgen and wasm-component-ld put in), each with its tables: a
            // burst of 1,000 requests to a WASI 0.3 service ran out of core instances at one
            // per slot. Address space only, until used.
            pool.total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
                .total_component_instances(slots)
                .total_memories(slots)
                .total_tables(slots.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
                // Fiber stacks for components on the async event loop (WASI 0.3 commands, HTTP
                // handlers): several per instance for concurrent requests; address space only.
                .total_stacks(slots.saturating_mul(4))
                .max_memory_size(usize::try_from(limits.max_memory.bytes()).unwrap_or(usize::MAX))
                .max_core_instances_per_component(16)
                .max_memories_per_component(4)
                .max_tables_per_component(16)
                .max_memories_per_module(1)
                .max_tables_per_module(1)
                .table_elements(20_000)
                .max_unused_warm_slots(slots.min(100));
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let inner = wasmtime::Engine::new(&config).map_err(|e| {
            Error::Engine(format!(
                "the {} profile: {} (on a device with a small address space use `--profile tiny`)",
                options.profile,
                crate::chain(&e)
            ))
        })?;
        let fingerprint = fingerprint(&inner, &options);
        let ticker = match options.target {
            Some(t) if !t.runs_here() => None,
            _ if !options.interruptible => None,
            _ => Some(start_ticker(&inner)),
        };
        Ok(Self { inner, options, fingerprint, _ticker: ticker })
    }

    /// The options this engine was built with.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// The target this engine produces code for.
    pub fn target(&self) -> Option<Target> {
        self.options.target.or_else(Target::host)
    }

    /// Whether this engine runs code on this machine, on the CPU or in the interpreter (rather
    /// than cross-compiling for another).
    pub fn is_native(&self) -> bool {
        self.options.target.is_none_or(Target::runs_here)
    }

    /// A digest of everything that makes compiled code reusable: engine version, flags, target,
    /// profile and fuel. The compile cache keys on it.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// `wasmtime <version>`: the engine that artifacts record.
    pub fn version() -> String {
        format!("wasmtime {WASMTIME_VERSION}")
    }

    /// The wasmtime engine, for embedders that need more than this crate offers.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner
    }

    /// Whether this build can compile `.wasm` (the `compiler` feature).
    pub const fn has_compiler() -> bool {
        cfg!(feature = "compiler")
    }
}

fn start_ticker(engine: &wasmtime::Engine) -> Arc<Ticker> {
    let stop = Arc::new(AtomicBool::new(false));
    let weak = engine.weak();
    let flag = Arc::clone(&stop);
    let spawned = std::thread::Builder::new().name("lamina-epoch".into()).spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        }
    });
    if let Err(e) = spawned {
        // Without the ticker timeouts cannot fire; say so rather than fail the whole engine.
        tracing::warn!("cannot start the epoch ticker, timeouts will not fire: {e}");
    }
    Arc::new(Ticker { stop })
}

/// Feeds `Hash` output into SHA-256, so wasmtime's compatibility hash becomes a stable digest.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        // Only `write` is used; `finish` is never called by `fingerprint`.
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn fingerprint(engine: &wasmtime::Engine, options: &EngineOptions) -> [u8; 32] {
    let mut h = ShaHasher(Sha256::new());
    h.write(b"lamina-engine-v1\0");
    h.write(WASMTIME_VERSION.as_bytes());
    #[cfg(feature = "compiler")]
    engine.precompile_compatibility_hash().hash(&mut h);
    // Without a compiler nothing is cached, so the fingerprint only needs to be stable.
    #[cfg(not(feature = "compiler"))]
    let _ = engine;
    h.write(options.profile.name().as_bytes());
    h.write(&[u8::from(options.fuel), u8::from(options.interruptible)]);
    h.write(options.target.map_or("host", |t| t.triple()).as_bytes());
    h.0.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_builds_on_this_machine() {
        for profile in Profile::ALL {
            let engine = Engine::new(EngineOptions::for_profile(profile)).expect("profile builds");
            assert!(engine.is_native());
        }
    }

    #[test]
    fn fingerprint_separates_profiles_and_fuel() {
        let a = Engine::new(EngineOptions::for_profile(Profile::Server)).expect("server");
        let b = Engine::new(EngineOptions::for_profile(Profile::Tiny)).expect("tiny");
        let c = Engine::new(EngineOptions { fuel: true, ..EngineOptions::for_profile(Profile::Server) })
            .expect("server with fuel");
        let a2 = Engine::new(EngineOptions::for_profile(Profile::Server)).expect("server again");
        let d = Engine::new(EngineOptions { interruptible: false, ..EngineOptions::for_profile(Profile::Server) })
            .expect("server without epoch checks");
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_ne!(a.fingerprint(), d.fingerprint());
        assert_eq!(a.fingerprint(), a2.fingerprint());
    }

    #[test]
    fn wasmtime_version_matches_the_workspace_pin() {
        let manifest = include_str!("../../../Cargo.toml");
        assert!(
            manifest.contains(&format!("wasmtime = {{ version = \"={WASMTIME_VERSION}\"")),
            "update WASMTIME_VERSION with the workspace's wasmtime pin"
        );
    }

    #[cfg(feature = "compiler")]
    #[test]
    fn cross_engines_build_for_every_target() {
        for target in Target::ALL {
            let options = EngineOptions { target: Some(target), ..EngineOptions::for_profile(Profile::Server) };
            let engine = Engine::new(options).expect("cross engine");
            assert_eq!(engine.target(), Some(target));
        }
    }
}
