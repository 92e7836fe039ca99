#!/usr/bin/env bash
# Build steps shared by scripts/demo.sh, scripts/test.sh and bench/run.sh. Each build goes to a
# target directory of its own, the same ones the end-to-end tests use, so nothing is built twice.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# say MESSAGE: a step's heading, with the time since the script began (bash's SECONDS), so a
# log shows where a run's time went.
say() { printf '\033[1m==> [%dm%02ds] %s\033[0m\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2; }

# guest_cargo ARGS: cargo for the guests' own workspaces, without the lint wrapper of the
# host workspace's builds (scripts/lint-rustc), which would rebuild them for nothing.
guest_cargo() { env -u RUSTC_WORKSPACE_WRAPPER cargo "$@"; }

build_guests() {
    say "building guest programs for wasm32-wasip1 and wasm32-wasip2"
    for t in wasm32-wasip1 wasm32-wasip2; do
        guest_cargo build --release --quiet --target "$t" --manifest-path "$ROOT/tests/programs/Cargo.toml"
    done
}

# build_components: the test components (tests/components: WASI 0.3 commands and HTTP services,
# a WASI 0.2 HTTP proxy) for wasm32-wasip2, into target/components.
build_components() {
    say "building the test components (WASI 0.3 and HTTP, wasm32-wasip2)"
    (cd "$ROOT/tests/components" && guest_cargo build --release --quiet --examples --target wasm32-wasip2 \
        --target-dir "$ROOT/target/components")
}

# build_examples: the example guests (examples/*) into target/examples: the SQLite and kvlog ones
# for wasm32-wasip1 and wasm32-wasip2, the Rust SDK ones for wasm32-wasip2, the C one with clang and
# wasi-libc. Each
# Rust one is a workspace of its own, built from its directory so that cargo reads its
# .cargo/config.toml (how clang compiles the C in it).
build_examples() {
    say "building example guests (wasm32-wasip1, wasm32-wasip2, C)"
    for t in wasm32-wasip1 wasm32-wasip2; do
        for example in sqlite kvlog; do
            (cd "$ROOT/examples/$example" && guest_cargo build --release --quiet --target "$t" \
                --target-dir "$ROOT/target/examples")
        done
    done
    (cd "$ROOT/examples/services" && guest_cargo build --release --quiet --target wasm32-wasip2 \
        --target-dir "$ROOT/target/examples")
    sh "$ROOT/examples/http-js/build.sh" "$ROOT/target/examples/js/http-js.wasm"
    mkdir -p "$ROOT/target/examples/c"
    clang --target=wasm32-wasi -O2 -Wall -Wextra -Werror -I "$ROOT/include" \
        -o "$ROOT/target/examples/c/c-services.wasm" "$ROOT/examples/c-services/services.c"
}

# build_cross [--release]: lamina for aarch64 as an edge board runs it, into target/cross: the
# runtime-only build (the node agent and the runtime, no compiler: nodes run what the control
# plane compiled for them), without the `tpm` and `verify` features (they link libtss2 and
# OpenSSL, which Debian ships for the host only unless arm64 multiarch packages are installed).
build_cross() {
    say "cross-building the runtime-only lamina for aarch64-unknown-linux-gnu $*"
    (cd "$ROOT" && cargo build "$@" -p lamina-cli --no-default-features --features node \
        --target aarch64-unknown-linux-gnu --target-dir target/cross)
}

# build_runtime_only [--release] [--target T]: lamina without a compiler, into target/runtime-only:
# the node agent and the commands that talk to a control plane, but no compiler and no
# control-plane server (the build for devices).
build_runtime_only() {
    say "building the runtime-only lamina (no compiler) $*"
    (cd "$ROOT" && cargo build "$@" -p lamina-cli --no-default-features --features node \
        --target-dir target/runtime-only)
}

# node_binary: the lamina a benchmark runs as a device's node, in NODE_BINARY: the runtime-only
# build of the benchmark's profile; in a quick run (the test suite's debug builds, where no
# figure is judged), the full debug build, so that CI does not build the runtime-only one too.
node_binary() {
    build_profile
    if [ "${LAMINA_BENCH_CARGO_PROFILE:-}" = dev ]; then
        say "quick run: the full debug lamina stands in for the runtime-only node"
        NODE_BINARY=$ROOT/target/debug/lamina
    else
        build_runtime_only "${BUILD_FLAGS[@]}" --quiet
        NODE_BINARY=$ROOT/target/runtime-only/$BUILD_DIR/lamina
    fi
}

# build_kernels DIR: the compute suite's C kernels (bench/compute/*.c) with the same clang and
# the same flags (-O3) natively (DIR/native/NAME) and for wasm32-wasip1 (DIR/wasm/NAME.wasm),
# and for Wasm with SIMD as well (DIR/wasm-simd/NAME.wasm, -O3 -msimd128).
build_kernels() {
    local dir=$1 flags=(-O3 -Wall -Wextra -Werror)
    say "building the compute kernels (clang ${flags[0]}, native and wasm32-wasip1)"
    mkdir -p "$dir/native" "$dir/wasm" "$dir/wasm-simd"
    for src in "$ROOT"/bench/compute/*.c; do
        local name
        name=$(basename "$src" .c)
        clang "${flags[@]}" -o "$dir/native/$name" "$src" -lm
        clang --target=wasm32-wasi "${flags[@]}" -o "$dir/wasm/$name.wasm" "$src" -lm
        clang --target=wasm32-wasi -msimd128 "${flags[@]}" -o "$dir/wasm-simd/$name.wasm" "$src" -lm
    done
}

# install_wasmtime_cli DIR: the wasmtime command-line tool of the version Lamina embeds, from
# crates.io with cargo, into DIR/bin (never system-wide). Idempotent.
install_wasmtime_cli() {
    local dir=$1 version
    version=$(sed -n 's/^wasmtime = { version = "=\([0-9.]*\)".*/\1/p' "$ROOT/Cargo.toml")
    if ! "$dir/bin/wasmtime" --version 2>/dev/null | grep -q " $version"; then
        say "installing wasmtime-cli $version (a release build of wasmtime: several minutes)"
        cargo install wasmtime-cli --version "$version" --locked --root "$dir"
    fi
}

# build_profile: the cargo build flags and target subdirectory of a benchmark script's builds,
# in BUILD_FLAGS and BUILD_DIR: release, or the test suite's debug builds when the harness
# asks for them (LAMINA_BENCH_CARGO_PROFILE=dev, in `bench/run.sh --quick`).
build_profile() {
    if [ "${LAMINA_BENCH_CARGO_PROFILE:-}" = dev ]; then
        BUILD_FLAGS=(); BUILD_DIR=debug
    else
        BUILD_FLAGS=(--release); BUILD_DIR=release
    fi
}
