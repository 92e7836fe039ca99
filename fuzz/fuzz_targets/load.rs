//! Loading (validation, compilation, linking) of arbitrary bytes must fail cleanly.
#![no_main]

use std::sync::OnceLock;

use lamina_runtime::{Engine, EngineOptions, Program};
use lamina_types::Profile;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(EngineOptions::for_profile(Profile::Tiny)).expect("tiny engine"))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    wasm.extend_from_slice(data);
    let _ = Program::load(engine(), &wasm, None);
});
