#!/usr/bin/env bash
# Process start-to-exit of a hello program: `lamina run` against the `wasmtime` command-line tool
# of the same wasmtime version and a native binary, side by side in one hyperfine run.
#
# Set-up (idempotent): hyperfine from Debian, wasmtime-cli from crates.io pinned to the version
# Lamina embeds (installed into target/bench-tools, never system-wide), release builds.
# Results: bench/out/startup.json and a table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/lib.sh

WASMTIME_VERSION=$(sed -n 's/^wasmtime = { version = "=\([0-9.]*\)".*/\1/p' Cargo.toml)
TOOLS=target/bench-tools
OUT=bench/out
mkdir -p "$OUT"

if ! command -v hyperfine >/dev/null; then
    say "installing hyperfine"
    sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq hyperfine >/dev/null
fi
if ! "$TOOLS/bin/wasmtime" --version 2>/dev/null | grep -q " $WASMTIME_VERSION "; then
    say "installing wasmtime-cli $WASMTIME_VERSION (a release build of wasmtime: several minutes)"
    cargo install wasmtime-cli --version "$WASMTIME_VERSION" --locked --root "$TOOLS"
fi

say "building lamina (release), the guests and a native hello"
cargo build --release --quiet -p lamina-cli
build_guests
rustc -O --edition 2024 -o "$TOOLS/hello-native" tests/programs/src/bin/hello.rs

HELLO=tests/programs/target/wasm32-wasip1/release/hello.wasm
LAMINA=target/release/lamina
WASMTIME=$TOOLS/bin/wasmtime
export LAMINA_CACHE_DIR="$OUT/lamina-cache"
"$LAMINA" compile "$HELLO" -o "$OUT/hello.lamart"
"$WASMTIME" compile "$HELLO" -o "$OUT/hello.cwasm"
"$LAMINA" run "$HELLO" >/dev/null             # fill Lamina's compile cache
"$WASMTIME" run -C cache=y "$HELLO" >/dev/null # and wasmtime's

say "timing (hyperfine, interleaved by command, warm caches)"
hyperfine -N --warmup 20 --runs "${RUNS:-300}" --export-json "$OUT/startup.json" \
    -n "native" "$TOOLS/hello-native" \
    -n "lamina run hello.wasm (cache)" "$LAMINA run $HELLO" \
    -n "wasmtime run hello.wasm (cache)" "$WASMTIME run -C cache=y $HELLO" \
    -n "lamina run hello.lamart" "$LAMINA run $OUT/hello.lamart" \
    -n "wasmtime run hello.cwasm" "$WASMTIME run --allow-precompiled $OUT/hello.cwasm" \
    -n "lamina run --profile tiny hello.wasm (cache)" "$LAMINA run --profile tiny $HELLO"
