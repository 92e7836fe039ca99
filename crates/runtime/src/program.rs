//! Loading: telling modules, components and artifacts apart, compiling through the cache,
//! and linking against WASI once so that every instantiation is cheap.

use std::collections::BTreeSet;
use std::path::Path;

use lamina_types::ModuleHash;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi_http::handler::ProxyPre;

use lamina_artifact::{
    CacheStatus, Code, CompileCache, CompileError, Compiled, Engine, Origin, ProgramKind, TrustedCode,
};

use crate::host::{P1Host, P2Host};
use crate::{Error, LoadError};

/// A loaded, linked guest: a core module or a component, ready to instantiate many times.
pub struct Program {
    pub(crate) engine: Engine,
    identity: Option<ModuleHash>,
    declared: ModuleHash,
    origin: Origin,
    kind: ProgramKind,
    cache: CacheStatus,
    pub(crate) linked: Linked,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("identity", &self.identity)
            .field("origin", &self.origin)
            .field("kind", &self.kind)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

pub(crate) enum Linked {
    Module(wasmtime::InstancePre<P1Host>),
    /// A WASI 0.2 command, called synchronously.
    Command(Box<CommandPre<P2Host>>),
    /// A WASI 0.3 command, run on the component model's event loop.
    CommandP3(Box<wasmtime_wasi::p3::bindings::CommandPre<P2Host>>),
    /// An HTTP handler (`wasi:http/proxy` 0.2 or `wasi:http/service` 0.3), for serving.
    Http(Box<ProxyPre<P2Host>>),
}

/// What a program is, by what it exports: how it is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum World {
    /// A core module (WASI preview 1), entered at `_start`.
    Module,
    /// A component exporting `wasi:cli/run@0.2`.
    CommandP2,
    /// A component exporting `wasi:cli/run@0.3`.
    CommandP3,
    /// A component exporting `wasi:http/incoming-handler@0.2` (the `wasi:http/proxy` world).
    ProxyP2,
    /// A component exporting `wasi:http/handler@0.3` (the `wasi:http/service` world).
    ServiceP3,
}

impl World {
    /// Whether it answers HTTP requests (`lamina serve`) rather than runs as a command.
    pub fn is_http(self) -> bool {
        matches!(self, World::ProxyP2 | World::ServiceP3)
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            World::Module => "a core module (WASI preview 1)",
            World::CommandP2 => "a WASI 0.2 command component",
            World::CommandP3 => "a WASI 0.3 command component",
            World::ProxyP2 => "a WASI 0.2 HTTP component (wasi:http/proxy)",
            World::ServiceP3 => "a WASI 0.3 HTTP component (wasi:http/service)",
        })
    }
}

impl Program {
    /// The verified workload identity: SHA-256 of the original `.wasm`, for code compiled here,
    /// signed by a trusted key or from the authenticated cache. `None` for code run on the
    /// explicit dangerous opt-in: such a program must not get sealed storage, attestation or
    /// secrets bound to a module.
    pub fn identity(&self) -> Option<ModuleHash> {
        self.identity
    }

    /// The module hash to show a person: the verified identity, or what an unverified
    /// artifact's header claims (never to be used for access decisions).
    pub fn shown_hash(&self) -> ModuleHash {
        self.declared
    }

    /// What vouches for the code.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Module or component.
    pub fn kind(&self) -> ProgramKind {
        self.kind
    }

    /// How the program is run: a command (of which WASI version) or an HTTP handler.
    pub fn world(&self) -> World {
        match &self.linked {
            Linked::Module(_) => World::Module,
            Linked::Command(_) => World::CommandP2,
            Linked::CommandP3(_) => World::CommandP3,
            Linked::Http(pre) => match **pre {
                ProxyPre::P2(_) => World::ProxyP2,
                ProxyPre::P3(_) => World::ServiceP3,
            },
        }
    }

    /// Whether loading used the compile cache.
    pub fn cache_status(&self) -> CacheStatus {
        self.cache
    }

    /// The engine the program was loaded into.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Program {
    /// Loads a `.wasm` file (module or component).
    ///
    /// # Errors
    /// See [`Program::load`]; also [`Error::Io`] when the file cannot be read.
    pub fn load_file(engine: &Engine, path: &Path, cache: Option<&CompileCache>) -> Result<Program, Error> {
        let bytes = read_file(path)?;
        Self::load(engine, &bytes, cache)
    }

    /// Loads `.wasm` bytes (or text, in a build with a compiler): compiled here, or taken from
    /// `cache` when it holds an authenticated entry for this module and engine
    /// ([`Engine::prepare`]); linked against WASI and Lamina's services.
    ///
    /// A Lamina artifact is refused here: it is native code, and its header is only what the
    /// file says. Load it with [`Program::load_code`] and a [`TrustedCode`] that says what
    /// vouches for it.
    ///
    /// # Errors
    /// [`LoadError`] for bytes that are not valid Wasm or import what no host service provides;
    /// [`ArtifactError::Unverified`](crate::ArtifactError::Unverified) for an artifact.
    pub fn load(engine: &Engine, bytes: &[u8], cache: Option<&CompileCache>) -> Result<Program, Error> {
        Self::link(engine, engine.prepare(bytes, cache)?)
    }

    /// Loads compiled code whose provenance the caller has established (a signed artifact, or
    /// the explicit dangerous opt-in), checks its header against the engine
    /// ([`Engine::deserialize`]) and links it.
    ///
    /// # Errors
    /// [`ArtifactError`](crate::ArtifactError) for an artifact built for another target,
    /// engine, profile or fuel setting, or refused by the engine; [`LoadError`] when it
    /// imports what no host service provides.
    pub fn load_code(engine: &Engine, code: &TrustedCode<'_>) -> Result<Program, Error> {
        Self::link(engine, engine.deserialize(code)?)
    }

    /// Links prepared code against WASI and Lamina's services, once, so that every
    /// instantiation is cheap.
    ///
    /// # Errors
    /// [`Error::Engine`] when `engine` is not the engine that prepared the code;
    /// [`LoadError`] when the code imports what no host service provides, or is a component
    /// that is neither a command nor an HTTP handler.
    pub fn link(engine: &Engine, code: Code) -> Result<Program, Error> {
        let wasmtime = engine.wasmtime();
        let prepared_by = match code.compiled() {
            Compiled::Module(module) => module.engine(),
            Compiled::Component(component) => component.engine(),
        };
        if !wasmtime::Engine::same(wasmtime, prepared_by) {
            return Err(Error::Engine("the code was prepared by another engine; link it with that one".into()));
        }
        let linked = match code.compiled() {
            Compiled::Module(module) => Linked::Module(link_module(wasmtime, module)?),
            Compiled::Component(component) => link_component(wasmtime, component)?,
        };
        Ok(Program {
            engine: engine.clone(),
            identity: code.identity(),
            declared: code.declared(),
            origin: code.origin().clone(),
            kind: code.compiled().kind(),
            cache: code.cache_status(),
            linked,
        })
    }
}

fn link_module(engine: &wasmtime::Engine, module: &wasmtime::Module) -> Result<wasmtime::InstancePre<P1Host>, Error> {
    let mut linker = wasmtime::Linker::<P1Host>::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h| &mut h.wasi)
        .map_err(|e| Error::Engine(crate::error::chain(&e)))?;
    lamina_host_fs::add_to_linker(&mut linker).map_err(|e| Error::Engine(crate::error::chain(&e)))?;
    add_services_to_module_linker(&mut linker).map_err(|e| Error::Engine(crate::error::chain(&e)))?;
    // List every unmet import at once rather than the first one the linker trips on.
    let mut store = wasmtime::Store::new(engine, P1Host::new(WasiCtxBuilder::new().build_p1(), None));
    let provided: BTreeSet<(String, String)> =
        linker.iter(&mut store).map(|(m, n, _)| (m.to_owned(), n.to_owned())).collect();
    let missing: Vec<String> = module
        .imports()
        .filter(|i| !provided.contains(&(i.module().to_owned(), i.name().to_owned())))
        .map(|i| format!("{}::{}", i.module(), i.name()))
        .collect();
    if !missing.is_empty() {
        return Err(LoadError::UnknownImports { kind: "module", missing }.into());
    }
    linker.instantiate_pre(module).map_err(|e| LoadError::from(CompileError::Failed(crate::error::chain(&e))).into())
}

/// Links a component for what it exports: `wasi:cli/run` (0.2 on the synchronous linker,
/// 0.3 on the asynchronous one) or else an HTTP handler (asynchronous).
fn link_component(engine: &wasmtime::Engine, component: &wasmtime::component::Component) -> Result<Linked, Error> {
    let exports: Vec<String> = component.component_type().exports(engine).map(|(name, _)| name.to_owned()).collect();
    let exports_any = |prefix: &str| exports.iter().any(|e| e.starts_with(prefix));
    // WASI 0.3's exports come first: a 0.3 component built from a Rust program with a
    // `main` (as the WASI test suite's are) also exports the standard library's
    // `wasi:cli/run@0.2`, a stub that is not its entry point.
    if exports_any("wasi:http/handler@0.3") || exports_any("wasi:cli/run@0.3") {
        let linker = async_linker(engine)?;
        let pre = pre_instantiate(&linker, component)?;
        if exports_any("wasi:http/handler@0.3") {
            let service = wasmtime_wasi_http::p3::bindings::ServicePre::new(pre)
                .map_err(|e| LoadError::NotACommand(crate::error::chain(&e)))?;
            return Ok(Linked::Http(Box::new(ProxyPre::P3(service))));
        }
        let command = wasmtime_wasi::p3::bindings::CommandPre::new(pre)
            .map_err(|e| LoadError::NotACommand(crate::error::chain(&e)))?;
        return Ok(Linked::CommandP3(Box::new(command)));
    }
    if exports_any("wasi:cli/run@0.2") {
        let mut linker = wasmtime::component::Linker::<P2Host>::new(engine);
        // WASI 0.2's `exit` carries only success or failure; guests built against 0.2.12 or
        // later can report an exact code through `exit-with-code`, which is linked too.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_error)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker).map_err(engine_error)?;
        lamina_host_fs::add_to_component_linker(&mut linker).map_err(engine_error)?;
        add_services_to_component_linker(&mut linker).map_err(engine_error)?;
        let pre = pre_instantiate(&linker, component)?;
        let command = CommandPre::new(pre).map_err(|e| LoadError::NotACommand(crate::error::chain(&e)))?;
        return Ok(Linked::Command(Box::new(command)));
    }
    let linker = async_linker(engine)?;
    if exports_any("wasi:http/incoming-handler@0.2") {
        let pre = pre_instantiate(&linker, component)?;
        let proxy = wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre)
            .map_err(|e| LoadError::NotACommand(crate::error::chain(&e)))?;
        return Ok(Linked::Http(Box::new(ProxyPre::P2(proxy))));
    }
    Err(LoadError::NotACommand(format!(
        "the component exports neither `wasi:cli/run` (a command) nor `wasi:http/incoming-handler` or \
         `wasi:http/handler` (an HTTP component); it exports: {}",
        if exports.is_empty() { "nothing".to_owned() } else { exports.join(", ") }
    ))
    .into())
}

/// WASI 0.2 and 0.3 with wasi:http and Lamina's services, for components that run on the
/// component model's event loop (0.3 commands, HTTP handlers).
fn async_linker(engine: &wasmtime::Engine) -> Result<wasmtime::component::Linker<P2Host>, Error> {
    let mut linker = wasmtime::component::Linker::<P2Host>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
    lamina_host_fs::add_to_async_component_linker(&mut linker).map_err(engine_error)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(engine_error)?;
    lamina_host_fs::add_to_p3_linker(&mut linker).map_err(engine_error)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(engine_error)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(engine_error)?;
    add_services_to_component_linker(&mut linker).map_err(engine_error)?;
    Ok(linker)
}

fn engine_error(e: wasmtime::Error) -> Error {
    Error::Engine(crate::error::chain(&e))
}

/// Pre-instantiates, naming an import nothing provides.
fn pre_instantiate(
    linker: &wasmtime::component::Linker<P2Host>,
    component: &wasmtime::component::Component,
) -> Result<wasmtime::component::InstancePre<P2Host>, Error> {
    linker.instantiate_pre(component).map_err(|e| {
        let text = crate::error::chain(&e);
        match text.split('`').nth(1) {
            Some(name) if text.contains("not found") || text.contains("matching implementation") => {
                LoadError::UnknownImports { kind: "component", missing: vec![name.to_owned()] }.into()
            }
            _ => LoadError::from(CompileError::Failed(text)).into(),
        }
    })
}

/// Lamina's host services as core-module imports (`include/lamina.h`).
fn add_services_to_module_linker(linker: &mut wasmtime::Linker<P1Host>) -> wasmtime::Result<()> {
    lamina_host_secrets::add_to_module_linker(linker, |h| &mut h.lamina.secrets)?;
    lamina_host_kv::add_to_module_linker(linker, |h| &mut h.lamina.kv)?;
    lamina_host_attest::add_to_module_linker(linker, |h| &mut h.lamina.attest)?;
    lamina_host_messaging::add_to_module_linker(linker, |h| &mut h.lamina.messaging)
}

/// Lamina's host services as WIT interfaces (`wit/`).
fn add_services_to_component_linker(linker: &mut wasmtime::component::Linker<P2Host>) -> wasmtime::Result<()> {
    lamina_host_secrets::add_to_component_linker(linker, |h| &mut h.lamina.secrets)?;
    lamina_host_kv::add_to_component_linker(linker, |h| &mut h.lamina.kv)?;
    lamina_host_attest::add_to_component_linker(linker, |h| &mut h.lamina.attest)?;
    lamina_host_messaging::add_to_component_linker(linker, |h| &mut h.lamina.messaging)
}

/// Reads a file, saying clearly when it is missing or a directory.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io { action: "read", path: path.into(), source })
}

/// Makes a fresh WASI preview 2 host state; used by instantiation.
pub(crate) fn p2_host(builder: &mut WasiCtxBuilder, limiter: crate::host::Limiter) -> P2Host {
    P2Host {
        ctx: builder.build(),
        table: ResourceTable::new(),
        limiter,
        lamina: crate::host::GuestServices::default(),
        sealed: lamina_host_fs::SealedComponentFs::default(),
        http: wasmtime_wasi_http::WasiHttpCtx::new(),
        hooks: crate::network::HttpHooks::default(),
    }
}

#[cfg(test)]
#[cfg(feature = "compiler")]
mod tests {
    use super::*;
    use crate::EngineOptions;
    use lamina_types::Profile;
    use proptest::prelude::*;

    fn engine() -> Engine {
        Engine::new(EngineOptions::for_profile(Profile::Tiny)).expect("tiny engine")
    }

    #[test]
    fn empty_input_says_so() {
        let e = Program::load(&engine(), b"", None).expect_err("empty input");
        assert!(e.to_string().contains("it is empty"), "{e}");
    }

    #[test]
    fn code_prepared_by_one_engine_is_refused_by_another() {
        let code = engine().prepare(b"(module (func (export \"_start\")))", None).expect("prepares");
        let e = Program::link(&engine(), code).expect_err("another engine");
        assert!(matches!(e, Error::Engine(_)), "{e}");
    }

    #[test]
    fn a_module_importing_what_no_service_provides_names_every_import() {
        let wat = r#"(module (import "env" "a" (func)) (import "env" "b" (func)) (func (export "_start")))"#;
        let e = Program::load(&engine(), wat.as_bytes(), None).expect_err("unmet imports");
        assert!(matches!(&e, Error::Load(LoadError::UnknownImports { missing, .. }) if missing.len() == 2), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn loading_arbitrary_bytes_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut bytes = b"\0asm\x01\0\0\0".to_vec();
            bytes.extend_from_slice(&tail);
            let _ = Program::load(&engine(), &bytes, None);
            let _ = Program::load(&engine(), &tail, None);
        }
    }
}
