//! The one path by which compiled code reaches the engine: [`TrustedCode`] (or code compiled
//! here, or an authenticated compile-cache entry), checked against the engine it is to run on,
//! then deserialised.

use lamina_types::ModuleHash;

use crate::{
    ArtifactError, ArtifactHeader, CacheStatus, CompileCache, Engine, Error, Origin, ProgramKind, TrustedCode,
};

/// Compiled code in the engine's hands.
pub enum Compiled {
    /// A core module (WASI preview 1).
    Module(wasmtime::Module),
    /// A component (WASI preview 2 or 0.3).
    Component(wasmtime::component::Component),
}

impl Compiled {
    /// Module or component.
    pub fn kind(&self) -> ProgramKind {
        match self {
            Self::Module(_) => ProgramKind::Module,
            Self::Component(_) => ProgramKind::Component,
        }
    }
}

/// Compiled code ready to link, with what is known of where it came from. Only this crate
/// makes one, from code whose origin it checked, so its [`identity`](Self::identity) is never
/// just what a file says about itself.
pub struct Code {
    compiled: Compiled,
    identity: Option<ModuleHash>,
    declared: ModuleHash,
    origin: Origin,
    cache: CacheStatus,
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Code")
            .field("kind", &self.compiled.kind())
            .field("identity", &self.identity)
            .field("origin", &self.origin)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Code {
    /// The verified workload identity (SHA-256 of the original `.wasm`): `None` for code that
    /// nothing vouches for.
    pub fn identity(&self) -> Option<ModuleHash> {
        self.identity
    }

    /// The module hash the artifact's header declares (the identity when one is verified).
    pub fn declared(&self) -> ModuleHash {
        self.declared
    }

    /// What vouches for the code.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Whether preparing it used the compile cache.
    pub fn cache_status(&self) -> CacheStatus {
        self.cache
    }

    /// The compiled code itself, to link.
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }
}

impl Engine {
    /// Makes `.wasm` bytes (or text, in a build with a compiler) ready to link: compiled here,
    /// or taken from `cache` when it holds an authenticated entry for this module and engine (a
    /// bad entry is reported, removed and compiled again).
    ///
    /// A Lamina artifact is refused here: it is native code, and its header is only what the
    /// file says. Prepare it with [`Engine::deserialize`] and a [`TrustedCode`] that says what
    /// vouches for it.
    ///
    /// # Errors
    /// [`Error::Engine`] for a cross-compiling engine; [`crate::CompileError`] for bytes that
    /// are not valid Wasm or a build without a compiler; [`ArtifactError::Unverified`] for an
    /// artifact.
    pub fn prepare(&self, bytes: &[u8], cache: Option<&CompileCache>) -> Result<Code, Error> {
        self.refuse_cross()?;
        if crate::format::is_artifact(bytes) {
            return Err(ArtifactError::Unverified.into());
        }
        let wasm = crate::compile::to_binary(bytes)?;
        let hash = ModuleHash::of(&wasm);
        if !Engine::has_compiler() {
            return Err(crate::compile::no_compiler().into());
        }
        let entry = cache.map(|c| (c, c.entry_path(&hash, self.fingerprint())));
        let mut status = if entry.is_some() { CacheStatus::Miss } else { CacheStatus::Unused };
        if let Some((cache, path)) = &entry
            && let Some(bytes) = cache.read(path)?
        {
            match cache
                .open_entry(&bytes, &hash, self.fingerprint())
                .and_then(|code| self.checked(&code, CacheStatus::Hit))
            {
                Ok(code) => return Ok(code),
                Err(e) => {
                    tracing::warn!("compile cache entry {} is unusable ({e}); compiling again", path.display());
                    cache.evict(path);
                    status = CacheStatus::Repaired;
                }
            }
        }
        let artifact = self.compile_binary(&wasm, hash)?;
        if let Some((cache, path)) = &entry {
            let stored = cache
                .seal_entry(&hash, self.fingerprint(), &artifact)
                .map_err(Error::from)
                .and_then(|e| cache.store(path, &e));
            if let Err(e) = stored {
                tracing::warn!("cannot store in the compile cache: {e}");
            }
        }
        Ok(self.checked(&TrustedCode::compiled_here(&artifact)?, status)?)
    }

    /// Makes compiled code whose provenance the caller established (a signed artifact, or the
    /// explicit dangerous opt-in) ready to link, after checking its header against this engine.
    ///
    /// # Errors
    /// [`Error::Engine`] for a cross-compiling engine; [`ArtifactError`] for an artifact built
    /// for another target, engine, profile or fuel setting, or refused by the engine.
    pub fn deserialize(&self, code: &TrustedCode<'_>) -> Result<Code, Error> {
        self.refuse_cross()?;
        Ok(self.checked(code, CacheStatus::Unused)?)
    }

    fn refuse_cross(&self) -> Result<(), Error> {
        if self.is_native() {
            Ok(())
        } else {
            Err(Error::Engine("a cross-compiling engine cannot load programs to run them".into()))
        }
    }

    /// Checks trusted code's header against this engine and deserialises it.
    fn checked(&self, code: &TrustedCode<'_>, cache: CacheStatus) -> Result<Code, ArtifactError> {
        self.check_header(code.header())?;
        Ok(Code {
            compiled: deserialize(&self.inner, code)?,
            identity: code.identity(),
            declared: code.header().module_hash,
            origin: code.origin().clone(),
            cache,
        })
    }

    fn check_header(&self, header: &ArtifactHeader) -> Result<(), ArtifactError> {
        let host = self.target();
        if Some(header.target) != host {
            return Err(ArtifactError::WrongTarget {
                built: header.target,
                host: host.map_or_else(|| std::env::consts::ARCH.to_owned(), |t| t.triple().to_owned()),
            });
        }
        if header.engine != Engine::version() {
            return Err(ArtifactError::WrongEngine { built: header.engine.clone(), this: Engine::version() });
        }
        if header.profile != self.options().profile {
            return Err(ArtifactError::WrongProfile { built: header.profile, wanted: self.options().profile });
        }
        if self.options().fuel && !header.fuel {
            return Err(ArtifactError::NoFuel);
        }
        if !self.options().fuel && header.fuel {
            return Err(ArtifactError::Refused("it was compiled with fuel metering; run it with `--fuel N`".into()));
        }
        Ok(())
    }
}

/// Hands trusted code to wasmtime.
///
/// This is the one place outside the TEE backends that uses `unsafe`: wasmtime executes
/// deserialised code as is, as native code outside the sandbox, so it must be code that
/// wasmtime itself produced and that the caller has reason to trust. It takes a
/// [`TrustedCode`], which only the paths in [`crate::provenance`] make: compiled in this
/// process, signed by a trusted key, an authenticated compile-cache entry, or the caller's
/// explicit dangerous opt-in (which then carries no module identity). Each of them decoded the
/// artifact, so the code matches the checksum in its header; wasmtime then checks its own
/// version, flags and target before use.
#[allow(unsafe_code, reason = "deserialising compiled code is unsafe by nature; see the doc comment")]
fn deserialize(engine: &wasmtime::Engine, code: &TrustedCode<'_>) -> Result<Compiled, ArtifactError> {
    let refused = |e: wasmtime::Error| ArtifactError::Refused(crate::chain(&e));
    let artifact = code.artifact();
    match artifact.header.kind {
        // SAFETY: `TrustedCode` is made only from code compiled by `Engine::precompile_*` in this
        // process, or vouched for by a trusted signature or the runtime's own cache key (or, on
        // the caller's explicit dangerous opt-in, by nobody: documented there). The checksum
        // binds these bytes to the vouched-for header; wasmtime validates its own header.
        ProgramKind::Module => {
            unsafe { wasmtime::Module::deserialize(engine, artifact.code) }.map(Compiled::Module).map_err(refused)
        }
        // SAFETY: as above.
        ProgramKind::Component => unsafe { wasmtime::component::Component::deserialize(engine, artifact.code) }
            .map(Compiled::Component)
            .map_err(refused),
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
    fn a_cross_engine_refuses_to_prepare() {
        let other = lamina_types::Target::ALL.into_iter().find(|t| Some(*t) != lamina_types::Target::host());
        let options = EngineOptions { target: other, ..EngineOptions::for_profile(Profile::Tiny) };
        let engine = Engine::new(options).expect("cross engine");
        assert!(matches!(engine.prepare(b"(module)", None), Err(Error::Engine(_))));
    }

    #[test]
    fn an_artifact_is_refused_without_what_vouches_for_it() {
        let engine = engine();
        let artifact = engine.compile(b"(module)").expect("compiles");
        assert!(matches!(engine.prepare(&artifact, None), Err(Error::Artifact(ArtifactError::Unverified))));
    }

    #[test]
    fn code_compiled_here_carries_the_hash_of_its_wasm() {
        let engine = engine();
        let wasm = wat::parse_str("(module)").expect("wat");
        let code = engine.prepare(&wasm, None).expect("prepares");
        assert_eq!(code.identity(), Some(ModuleHash::of(&wasm)));
        assert_eq!(code.origin(), &Origin::CompiledHere);
        assert_eq!(code.cache_status(), CacheStatus::Unused);
        assert_eq!(code.compiled().kind(), ProgramKind::Module);
    }

    #[test]
    fn an_artifact_for_another_profile_is_refused() {
        let server = Engine::new(EngineOptions::for_profile(Profile::Server)).expect("server engine");
        let artifact = server.compile(b"(module)").expect("compiles");
        let code = TrustedCode::danger_unverified_native_code(&artifact).expect("well formed");
        let e = engine().deserialize(&code).expect_err("compiled for the server profile");
        assert!(matches!(e, Error::Artifact(ArtifactError::WrongProfile { .. })), "{e}");
        let code = server.deserialize(&code).expect("the server engine takes it");
        assert_eq!(code.identity(), None, "nothing vouches for it, so it has no identity");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn preparing_arbitrary_bytes_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut bytes = b"\0asm\x01\0\0\0".to_vec();
            bytes.extend_from_slice(&tail);
            let _ = engine().prepare(&bytes, None);
            let _ = engine().prepare(&tail, None);
        }
    }
}
