#!/usr/bin/env bash
# Installs what Lamina needs on a Debian machine that has only the Rust toolchain. Idempotent:
# it checks first and installs only what is missing. Sourced by scripts/demo.sh and scripts/test.sh.
set -euo pipefail

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

RUST_TARGETS=(wasm32-wasip1 wasm32-wasip2 aarch64-unknown-linux-gnu)
RUST_COMPONENTS=(rustfmt clippy)
# Cross linker and libc for aarch64, qemu-user to run aarch64 binaries, prlimit (util-linux)
# to emulate a small address space; swtpm and libtss2 for the TPM 2.0 backend and its tests;
# libssl-dev and pkg-config for the CCA token verifier; clang for bindgen; wasi-libc (headers
# and libc for wasm32-wasi), llvm (llvm-ar), lld (wasm-ld) and libclang-rt-dev-wasm32 (compiler-rt)
# so that clang builds C for WebAssembly guests, such as SQLite in examples/sqlite; nats-server
# for messaging across nodes; iproute2 (ip, tc) for the continuum test's network namespaces;
# etcd-server and etcd-client (etcdctl) for the replicated control plane and its tests;
# protobuf-compiler (protoc) to build the etcd client's gRPC bindings; python3 for the user-space
# link emulator (tests/netns/linkem.py) where the kernel has no `tc netem`.
DEBIAN_PACKAGES=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user util-linux
    swtpm swtpm-tools libtss2-dev libssl-dev pkg-config clang libclang-dev
    wasi-libc llvm lld libclang-rt-dev-wasm32 nats-server iproute2
    etcd-server etcd-client protobuf-compiler python3)

setup_rust() {
    local installed missing=()
    installed=$(rustup target list --installed)
    for t in "${RUST_TARGETS[@]}"; do
        grep -qx "$t" <<<"$installed" || missing+=("$t")
    done
    if ((${#missing[@]})); then
        say "adding Rust targets: ${missing[*]}"
        rustup target add "${missing[@]}"
    fi
    installed=$(rustup component list --installed)
    missing=()
    for c in "${RUST_COMPONENTS[@]}"; do
        grep -q "^$c" <<<"$installed" || missing+=("$c")
    done
    if ((${#missing[@]})); then
        say "adding Rust components: ${missing[*]}"
        rustup component add "${missing[@]}"
    fi
}

setup_debian() {
    local missing=()
    for p in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "error: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
        sudo=(sudo)
    fi
    say "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_rust
setup_debian
