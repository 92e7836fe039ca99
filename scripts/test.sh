#!/usr/bin/env bash
# Runs every check and test of Lamina from a fresh clone: set-up, formatting, lints, the
# builds the end-to-end tests need, the evaluation harness in its quick mode, and the whole test
# suite (unit, integration, end to end, doc tests, benchmarks in test mode).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/lib.sh

say "checking docs/ARCHITECTURE.md's crate table against the workspace"
python3 scripts/crate-graph.py --check

say "checking formatting"
cargo fmt --all --check
(cd tests/programs && cargo fmt --check)
(cd crates/sdk && cargo fmt --check)
(cd examples/services && cargo fmt --check)
(cd tests/components && cargo fmt --check)

build_guests
build_components
build_examples
say "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The guest SDK and its examples, for their wasm target (sharing the examples' build).
(cd examples/services && cargo clippy --release --quiet --target wasm32-wasip2 \
    --target-dir "$ROOT/target/examples" -- -D warnings)
(cd crates/sdk && cargo clippy --release --quiet --target wasm32-wasip2 \
    --target-dir "$ROOT/target/examples" -- -D warnings)
(cd tests/components && cargo clippy --release --quiet --examples --target wasm32-wasip2 \
    --target-dir "$ROOT/target/components" -- -D warnings)
# The runtime-only build's own code paths, in the workspace's target directory: most of its
# dependencies' checks are the ones just made (clippy writes no binary, so nothing is replaced).
cargo clippy -p lamina-runtime -p lamina-cli --no-default-features --features node --lib --bins --quiet \
    -- -D warnings
build_runtime_only
build_cross

# The evaluation harness, briefly, on the debug builds above: every benchmark runs, the report
# is written to target/bench-quick, and no figure is judged (it would only measure CI's noise).
say "the evaluation harness, quick (bench/run.sh --quick)"
bash bench/run.sh --quick --out target/bench-quick

say "running the test suite"
cargo test --workspace --doc
# Last, so that the run ends on the summary of real tests.
cargo test --workspace --all-targets
say "all checks and tests passed"
