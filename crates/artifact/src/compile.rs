//! Compiling `.wasm` into Lamina artifacts, and saying precisely why bytes are not a program.

use std::borrow::Cow;

use lamina_types::{ModuleHash, Target};

use crate::{CompileError, Engine, Error, format};

impl Engine {
    /// Compiles `.wasm` bytes (or text, in a build with a compiler) into a Lamina artifact for
    /// this engine's target, profile and fuel setting.
    ///
    /// # Errors
    /// [`CompileError`] for invalid input, an input that is already an artifact, or a build
    /// without a compiler.
    pub fn compile(&self, bytes: &[u8]) -> Result<Vec<u8>, Error> {
        if format::is_artifact(bytes) {
            return Err(CompileError::Failed("the input is already a Lamina artifact; compile the .wasm".into()).into());
        }
        let wasm = to_binary(bytes)?;
        let hash = ModuleHash::of(&wasm);
        self.compile_binary(&wasm, hash)
    }

    /// Compiles a binary `.wasm` whose hash is `hash`.
    #[cfg(feature = "compiler")]
    pub(crate) fn compile_binary(&self, wasm: &[u8], hash: ModuleHash) -> Result<Vec<u8>, Error> {
        use crate::{ArtifactHeader, ProgramKind};
        let (kind, code) = if wasmparser::Parser::is_component(wasm) {
            (ProgramKind::Component, self.inner.precompile_component(wasm))
        } else {
            (ProgramKind::Module, self.inner.precompile_module(wasm))
        };
        let code = code.map_err(|e| compile_error(wasm, &e))?;
        let header = ArtifactHeader {
            module_hash: hash,
            kind,
            target: self
                .target()
                .ok_or_else(|| Error::Engine("this machine's architecture is not supported".into()))?,
            engine: Engine::version(),
            profile: self.options().profile,
            fuel: self.options().fuel,
            code_sha256: String::new(),
            code_len: 0,
        };
        Ok(format::encode(header, &code))
    }

    /// Without a compiler nothing compiles.
    #[cfg(not(feature = "compiler"))]
    pub(crate) fn compile_binary(&self, _wasm: &[u8], _hash: ModuleHash) -> Result<Vec<u8>, Error> {
        Err(no_compiler().into())
    }
}

/// The error of a build without a compiler.
pub(crate) fn no_compiler() -> CompileError {
    CompileError::NoCompiler { host: Target::host().map_or("this machine's target", Target::triple) }
}

/// Checks that the bytes at least start like WebAssembly, naming what they are otherwise.
///
/// # Errors
/// [`CompileError::BareWasmtimeArtifact`] for wasmtime's own compiled form;
/// [`CompileError::NotWasm`] (with the first bytes) for anything else.
pub fn check_magic(bytes: &[u8]) -> Result<(), CompileError> {
    if bytes.starts_with(b"\0asm") {
        return Ok(());
    }
    if wasmtime::Engine::detect_precompiled(bytes).is_some() {
        return Err(CompileError::BareWasmtimeArtifact);
    }
    let shown = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
    Err(CompileError::NotWasm { found: if shown.is_empty() { "nothing: it is empty".into() } else { shown } })
}

/// Accepts the binary format, and the text format when this build has a compiler.
pub(crate) fn to_binary(bytes: &[u8]) -> Result<Cow<'_, [u8]>, CompileError> {
    if bytes.starts_with(b"\0asm") {
        return Ok(bytes.into());
    }
    #[cfg(feature = "compiler")]
    if let Ok(text) = std::str::from_utf8(bytes)
        && text.trim_start().starts_with('(')
    {
        return wat::parse_str(text)
            .map(Into::into)
            .map_err(|e| CompileError::Invalid { offset: 0, message: format!("WebAssembly text: {e}") });
    }
    check_magic(bytes)?;
    Ok(bytes.into())
}

/// Turns a parser error into a [`CompileError`] that names the offset (and says "truncated"
/// when the input ends early).
pub fn parse_error(bytes: &[u8], e: &wasmparser::BinaryReaderError) -> CompileError {
    let message = e.message().to_owned();
    let offset = e.offset();
    if message.contains("unexpected end") || offset >= bytes.len() {
        CompileError::Truncated { offset, message, len: bytes.len() }
    } else {
        CompileError::Invalid { offset, message }
    }
}

/// Explains a compile failure: re-parse to find the offset, since wasmtime's error is text.
#[cfg(feature = "compiler")]
fn compile_error(wasm: &[u8], e: &wasmtime::Error) -> Error {
    let mut validator = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    match validator.validate_all(wasm) {
        Err(parse) => parse_error(wasm, &parse).into(),
        Ok(_) => CompileError::Failed(crate::chain(e)).into(),
    }
}

#[cfg(test)]
#[cfg(feature = "compiler")]
mod tests {
    use super::*;
    use crate::EngineOptions;
    use lamina_types::Profile;

    fn engine() -> Engine {
        Engine::new(EngineOptions::for_profile(Profile::Tiny)).expect("tiny engine")
    }

    #[test]
    fn an_artifact_cannot_be_compiled_again() {
        let engine = engine();
        let artifact = engine.compile(b"(module)").expect("compiles");
        let e = engine.compile(&artifact).expect_err("an artifact is not a .wasm");
        assert!(e.to_string().contains("already a Lamina artifact"), "{e}");
    }

    #[test]
    fn an_artifact_says_what_it_was_compiled_from_and_for() {
        let engine = engine();
        let wasm = wat::parse_str("(module)").expect("wat");
        let artifact = engine.compile(&wasm).expect("compiles");
        let header = format::decode(&artifact).expect("well formed").header;
        assert_eq!(header.module_hash, ModuleHash::of(&wasm));
        assert_eq!(header.profile, Profile::Tiny);
        assert_eq!(Some(header.target), Target::host());
        assert_eq!(header.engine, Engine::version());
    }

    #[test]
    fn empty_and_foreign_input_say_what_they_are() {
        let e = engine().compile(b"").expect_err("empty");
        assert!(e.to_string().contains("it is empty"), "{e}");
        let e = engine().compile(b"\x7fELF\x02\x01").expect_err("an ELF file");
        assert!(e.to_string().contains("7f 45 4c 46"), "{e}");
        let e = engine().compile(b"\0asm\x01\0\0\0\x01").expect_err("truncated");
        assert!(matches!(e, Error::Compile(CompileError::Truncated { .. })), "{e}");
    }
}
