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
# The boundary check reads the dependency graph and the licence check the crates' licence
# files: their sources must be here first.
say "fetching the dependencies' sources"
cargo fetch --locked --quiet
say "checking the crate boundaries (verifier, node build, wire types, unsafe)"
python3 scripts/boundaries.py
say "checking the dependencies' licences, bans and sources (deny.toml; advisories need a network)"
cargo deny --offline check bans licenses sources

say "checking formatting"
cargo fmt --all --check
(cd tests/programs && cargo fmt --check)
(cd crates/sdk && cargo fmt --check)
(cd examples/services && cargo fmt --check)
(cd tests/components && cargo fmt --check)

build_guests
build_components
build_examples
say "clippy on the guest SDK, its examples and the test components (wasm32-wasip2)"
# The guest SDK and its examples, for their wasm target (sharing the examples' build).
(cd examples/services && cargo clippy --release --quiet --target wasm32-wasip2 \
    --target-dir "$ROOT/target/examples" -- -D warnings)
(cd crates/sdk && cargo clippy --release --quiet --target wasm32-wasip2 \
    --target-dir "$ROOT/target/examples" -- -D warnings)
(cd tests/components && cargo clippy --release --quiet --examples --target wasm32-wasip2 \
    --target-dir "$ROOT/target/components" -- -D warnings)

# From here on every build of the workspace's crates is also its clippy run (warnings are
# errors): scripts/lint-rustc compiles them with clippy-driver. The aarch64 build lints the
# runtime-only code paths (no compiler), the test build everything else, every target.
export RUSTC_WORKSPACE_WRAPPER="$ROOT/scripts/lint-rustc"
build_cross
say "building the workspace and its tests, with clippy's lints"
cargo test --workspace --all-targets --no-run --quiet

# The evaluation harness, briefly, on the debug builds above: every benchmark runs, the report
# is written to target/bench-quick, and no figure is judged (it would only measure CI's noise).
say "the evaluation harness, quick (bench/run.sh --quick)"
bash bench/run.sh --quick --out target/bench-quick

say "running the test suite"
cargo test --workspace --doc
# Last, so that the run ends on the summary of real tests.
cargo test --workspace --all-targets
say "all checks and tests passed"
