//! Per-instance host state: the WASI context and the memory limiter that records what a guest
//! asked for, so an out-of-memory death can be explained.

use lamina_host_attest::AttestCtx;
use lamina_host_fs::{SealedComponentFs, SealedComponentView, SealedFs, SealedView};
use lamina_host_kv::KvCtx;
use lamina_host_messaging::MessagingCtx;
use lamina_host_secrets::SecretsCtx;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::network::HttpHooks;

/// Store data for a core module (WASI preview 1).
pub(crate) struct P1Host {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: Limiter,
    /// Sealed directories, served beside wasmtime-wasi's descriptors.
    pub(crate) sealed: SealedFs,
    /// The empty directory the sealed mounts' placeholder preopens point at.
    pub(crate) _placeholder: Option<tempfile::TempDir>,
    /// Lamina's services beyond WASI.
    pub(crate) lamina: GuestServices,
}

impl P1Host {
    pub(crate) fn new(wasi: WasiP1Ctx, max_memory: Option<u64>) -> Self {
        Self {
            wasi,
            limiter: Limiter::new(max_memory),
            sealed: SealedFs::default(),
            _placeholder: None,
            lamina: GuestServices::default(),
        }
    }
}

/// One instance's state of each Lamina host service.
#[derive(Debug, Default)]
pub(crate) struct GuestServices {
    pub(crate) secrets: SecretsCtx,
    pub(crate) kv: KvCtx,
    pub(crate) attest: AttestCtx,
    pub(crate) messaging: MessagingCtx,
}

impl SealedView for P1Host {
    fn split(&mut self) -> (&mut WasiP1Ctx, &mut SealedFs) {
        (&mut self.wasi, &mut self.sealed)
    }
}

/// Store data for a component (WASI preview 2).
pub(crate) struct P2Host {
    pub(crate) ctx: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    /// Lamina's services beyond WASI.
    pub(crate) lamina: GuestServices,
    /// Sealed directories, served beside wasmtime-wasi's descriptors.
    pub(crate) sealed: SealedComponentFs,
    /// wasi:http's state.
    pub(crate) http: WasiHttpCtx,
    /// Where outgoing requests are checked against the network rules.
    pub(crate) hooks: HttpHooks,
}

impl WasiHttpView for P2Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

impl SealedComponentView for P2Host {
    fn split_sealed(&mut self) -> (&mut WasiCtx, &mut ResourceTable, &mut SealedComponentFs) {
        (&mut self.ctx, &mut self.table, &mut self.sealed)
    }
}

impl WasiView for P2Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

/// The largest table a guest may grow to: plenty for real programs, bounded for hostile ones.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Bounds the sum of an instance's linear memories and remembers the peak and any refusal.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    limit: Option<u64>,
    total: u64,
    pending: u64,
    pub(crate) peak: u64,
    /// The total the guest asked for when growth was refused.
    pub(crate) refused: Option<u64>,
}

impl Limiter {
    pub(crate) fn new(limit: Option<u64>) -> Self {
        Self { limit, ..Self::default() }
    }

    pub(crate) fn limit(&self) -> Option<u64> {
        self.limit
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let delta = desired.saturating_sub(current) as u64;
        let wanted = self.total.saturating_add(delta);
        if self.limit.is_some_and(|limit| wanted > limit) {
            self.refused = Some(wanted);
            return Ok(false);
        }
        self.total = wanted;
        self.pending = delta;
        self.peak = self.peak.max(self.total);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // The engine could not grow after we allowed it (for example the profile's pool slot
        // is smaller): undo the accounting and record the refusal.
        self.refused = Some(self.total);
        self.total = self.total.saturating_sub(self.pending);
        tracing::debug!("memory growth failed: {error}");
        Ok(())
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
