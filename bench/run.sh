#!/usr/bin/env bash
# Lamina's evaluation harness in one command: builds what is measured, then runs every
# benchmark (the compute suite against native code and the wasmtime command-line tool,
# start-up, and each part's own benchmarks), writes the raw results with the machine's
# description to OUT/results.json (bench/out by default) and regenerates docs/benchmarks.md with
# its charts (docs/benchmarks/).
#
#   bench/run.sh                 the full run (about an hour on 2 cores; release builds)
#   bench/run.sh --quick         everything briefly, on the test suite's debug builds; the
#                                report goes to OUT/benchmarks.md (CI runs this)
#   bench/run.sh --only compute  one part (compute, startup, suites); the report takes the
#                                others from the last OUT/results.json
#   bench/run.sh --suite control-scale ...   one of the other benchmarks
#
# Every other option goes to `lamina-bench run` (see `lamina-bench run --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/lib.sh

quick=0
for arg in "$@"; do
    [ "$arg" = --quick ] && quick=1
done
TOOLS=target/bench-tools
KERNELS=target/bench-kernels
if [ "$quick" = 1 ]; then
    # The debug builds the test suite makes: a quick run checks the harness, not the figures.
    profile=(); dir=debug; cargo_profile=dev
    [ -x "$TOOLS/bin/wasmtime" ] || say "no wasmtime-cli in $TOOLS (a full run installs it); its runner is skipped"
else
    profile=(--release); dir=release; cargo_profile=bench
    install_wasmtime_cli "$TOOLS"
fi

say "building lamina and the harness ($dir)"
cargo build "${profile[@]}" --quiet -p lamina-cli -p lamina-bench
LAMINA_BENCH_CARGO_PROFILE=$cargo_profile node_binary
build_guests
build_kernels "$KERNELS"
mkdir -p "$TOOLS"
rustc -O --edition 2024 -o "$TOOLS/hello-native" tests/programs/src/bin/hello.rs

exec "target/$dir/lamina-bench" run \
    --kernels "$KERNELS" \
    --lamina "target/$dir/lamina" \
    --runtime-only "$NODE_BINARY" \
    --wasmtime "$TOOLS/bin/wasmtime" \
    --hello-wasm tests/programs/target/wasm32-wasip1/release/hello.wasm \
    --hello-native "$TOOLS/hello-native" \
    --cargo-profile "$cargo_profile" \
    "$@"
