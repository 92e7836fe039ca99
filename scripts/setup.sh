#!/usr/bin/env bash
# Installs what Lamina needs on a Debian machine that has only the Rust toolchain, then proves
# that each capability works by using it. Idempotent: it installs only what is missing. Run by
# scripts/demo.sh and scripts/test.sh.
#
#   scripts/setup.sh           install what is missing, then check
#   scripts/setup.sh --check   check only: use every capability the builds and tests need, and
#                              name the package that provides whatever fails (exit 1 if any does)
#
# The check never asks dpkg whether a package is installed: a machine can have a package and
# still lack what it provides (a Recommends left out, a program removed by hand), or have the
# capability from elsewhere. docs/clean-root.md shows how to repeat the proof in a fresh
# Debian root file system.
set -euo pipefail

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

RUST_TARGETS=(wasm32-wasip1 wasm32-wasip2 aarch64-unknown-linux-gnu)
RUST_COMPONENTS=(rustfmt clippy)
# Why each package is here (the check below proves each of these by using it):
# - gcc, libc6-dev: the linker and C library that rustc links native binaries with, and the C
#   compiler of build scripts; ca-certificates: cargo's HTTPS to crates.io.
# - gcc-aarch64-linux-gnu, libc6-dev-arm64-cross: the cross linker and libc for aarch64;
#   qemu-user runs aarch64 binaries (tests, demo); util-linux: prlimit, to emulate a small
#   address space.
# - swtpm, swtpm-tools (swtpm_setup, swtpm_localca; it depends on gnutls-bin for certtool): the
#   software TPM 2.0 that the TPM backend's tests run against; libtss2-dev and pkg-config to build
#   tss-esapi.
# - perl, make: the CCA token verifier's COSE crate builds OpenSSL 3 from source (it needs
#   functions that Debian's OpenSSL 3.0 lacks), with OpenSSL's perl Configure and make;
#   libssl-dev: OpenSSL's headers for the rest.
# - clang, lld (wasm-ld), wasi-libc, libclang-rt-dev-wasm32 (compiler-rt builtins) and llvm
#   (llvm-ar): C for WebAssembly guests (SQLite in examples/sqlite, examples/c-services, the
#   compute kernels of bench/).
# - nats-server: messaging across nodes; etcd-server and etcd-client (etcdctl): the replicated
#   control plane.
# - protobuf-compiler (protoc) and libprotobuf-dev (google/protobuf/*.proto, only a Recommends of
#   protobuf-compiler): the etcd client's gRPC bindings.
# - iproute2 (ip, tc): the continuum test's network namespaces and shaped links; python3: the
#   user-space link emulator (tests/netns/linkem.py) where the kernel has no `tc netem`, and
#   the demo's port picker; procps (kill): the continuum test ends what is left in its namespaces.
DEBIAN_PACKAGES=(gcc libc6-dev ca-certificates perl make gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user util-linux
    swtpm swtpm-tools libtss2-dev libssl-dev pkg-config clang
    wasi-libc llvm lld libclang-rt-dev-wasm32 nats-server iproute2
    etcd-server etcd-client protobuf-compiler libprotobuf-dev python3 procps)

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

# cargo-deny checks the dependencies' licences, bans and sources (deny.toml). Installed with
# cargo from crates.io, the exact version, once (a few minutes on two cores).
CARGO_DENY_VERSION=0.20.2

setup_cargo_tools() {
    if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
        say "installing cargo-deny $CARGO_DENY_VERSION (cargo install, once)"
        cargo install --quiet --locked cargo-deny --version "$CARGO_DENY_VERSION"
    fi
}

setup_debian() {
    local missing=()
    for p in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    # Node.js and npm build the JavaScript example (examples/http-js, componentize-js from the
    # npm registry); a machine that has them from elsewhere keeps its own.
    command -v npm >/dev/null || missing+=(nodejs npm)
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

# --- The check ------------------------------------------------------------------------------
# Each check_* function uses one capability in a scratch directory ($W) and returns non-zero
# with its reason on stderr when it does not work. run_check prints one line per capability.

FAILED=()
run_check() { # what package-hint function
    local what=$1 hint=$2 fn=$3 log
    log="$W/$fn.log"
    # In the background and waited for, so that `set -e` holds inside the check: bash ignores it
    # in a function called as an `if` condition, and a check would then pass on its last line.
    (set -e; "$fn") >"$log" 2>&1 &
    if wait "$!"; then
        printf '  ok       %s\n' "$what" >&2
    else
        printf '  \033[1;31mMISSING\033[0m  %s\n           provided by: %s\n' "$what" "$hint" >&2
        sed 's/^/           | /' "$log" | tail -n 6 >&2
        FAILED+=("$what")
    fi
}

# A free TCP port on loopback (bash only: python3 is itself checked).
free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 20000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    return 1
}

# wait_port PORT PID: until something listens on PORT, or the process PID exits (5 s at most).
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || { echo "the server exited"; return 1; }
        sleep 0.05
    done
    echo "nothing listens on 127.0.0.1:$1 after 5 s"
    return 1
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# serve START: runs `START PORT` (which starts a server in the background and sets SERVER_PID)
# until the server listens, and sets PORT. Up to three free ports: another process may take a
# port between the probe and the server's bind.
serve() {
    local _
    for _ in 1 2 3; do
        PORT=$(free_port) || return 1
        "$1" "$PORT"
        if wait_port "$PORT" "$SERVER_PID" && sleep 0.1 && kill -0 "$SERVER_PID" 2>/dev/null; then
            return 0
        fi
        stop "$SERVER_PID"
        echo "retrying on another port"
    done
    return 1
}

check_rust_targets() {
    printf 'fn main() { println!("native ok"); }\n' >"$W/main.rs"
    rustc --edition 2021 -o "$W/main" "$W/main.rs"
    [ "$("$W/main")" = "native ok" ]
    printf 'pub fn f() -> u32 { 7 }\n' >"$W/lib.rs"
    for t in "${RUST_TARGETS[@]}"; do
        rustc --edition 2021 --crate-type lib --target "$t" -o "$W/lib-$t.rlib" "$W/lib.rs"
    done
    cargo fmt --version && cargo clippy --version
}

check_cargo_deny() {
    [ "$(cargo deny --version)" = "cargo-deny $CARGO_DENY_VERSION" ]
}

check_protoc() {
    mkdir -p "$W/proto"
    cat >"$W/proto/check.proto" <<'EOF'
syntax = "proto3";
package check;
import "google/protobuf/descriptor.proto";
extend google.protobuf.FieldOptions { string check_option = 50000; }
message Check { string name = 1 [(check_option) = "x"]; }
EOF
    protoc --proto_path="$W/proto" --include_imports --descriptor_set_out="$W/proto/check.pb" "$W/proto/check.proto"
    test -s "$W/proto/check.pb"
}

check_wasm_c() {
    printf '#include <stdio.h>\n#include <math.h>\nint main(void) { printf("%%f\\n", sqrt(2.0)); return 0; }\n' >"$W/hello.c"
    clang --target=wasm32-wasi -O2 -o "$W/hello.wasm" "$W/hello.c" -lm
    # The Wasm magic number: a real module came out.
    [ "$(head -c 4 "$W/hello.wasm" | od -An -tx1 | tr -d ' ')" = 0061736d ]
    # cc-rs archives the guests' C objects with llvm-ar.
    clang --target=wasm32-wasi -O2 -c -o "$W/hello.o" "$W/hello.c"
    llvm-ar crs "$W/libhello.a" "$W/hello.o"
}

check_aarch64() {
    printf '#include <stdio.h>\nint main(void) { puts("aarch64 ok"); return 0; }\n' >"$W/arm.c"
    aarch64-linux-gnu-gcc -O2 -o "$W/arm" "$W/arm.c"
    [ "$(qemu-aarch64 -L /usr/aarch64-linux-gnu "$W/arm")" = "aarch64 ok" ]
}

check_openssl_build() {
    # What OpenSSL's Configure loads (FindBin and friends are in perl, not perl-base).
    perl -MFindBin -MFile::Spec -MIPC::Cmd -e 1
    printf 'all:\n\t@echo make ok\n' >"$W/Makefile"
    [ "$(make -s -C "$W")" = "make ok" ]
}

check_prlimit() {
    [ "$(prlimit --as=1073741824 sh -c 'ulimit -v')" = 1048576 ]
}

check_native_libs() {
    # tss-esapi and openssl-sys find their libraries with pkg-config, then link them.
    printf '#include <tss2/tss2_esys.h>\n#include <tss2/tss2_tctildr.h>\n#include <openssl/ssl.h>\nint main(void) { void *p[] = { (void *)Esys_Initialize, (void *)Tss2_TctiLdr_Initialize, (void *)OPENSSL_init_ssl }; return p[0] == 0; }\n' >"$W/native.c"
    # shellcheck disable=SC2046
    cc -o "$W/native" "$W/native.c" $(pkg-config --cflags --libs tss2-esys tss2-tctildr tss2-mu tss2-sys openssl)
    "$W/native"
}

check_swtpm() {
    local d="$W/tpm" port pid ca reply
    mkdir -p "$d/state" "$d/ca"
    ca="$d/ca"
    printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' \
        "$ca" "$ca" "$ca" "$ca" >"$d/localca.conf"
    printf -- '--platform-manufacturer Lamina\n--platform-version 2.1\n--platform-model swtpm\n' >"$d/localca.options"
    printf 'create_certs_tool = %s\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\nactive_pcr_banks = sha256\n' \
        "$(command -v swtpm_localca)" "$d/localca.conf" "$d/localca.options" >"$d/setup.conf"
    # What the tests' harness does: manufacture a TPM with an EK certificate from a local CA.
    swtpm_setup --tpm2 --tpmstate "$d/state" --create-ek-cert --config "$d/setup.conf" --logfile "$d/setup.log" \
        || { cat "$d/setup.log"; return 1; }
    start_swtpm() {
        swtpm socket --tpm2 --tpmstate "dir=$d/state" --server "type=tcp,port=$1,bindaddr=127.0.0.1" \
            --ctrl "type=tcp,port=$(($1 + 1)),bindaddr=127.0.0.1" --flags not-need-init,startup-clear &
        SERVER_PID=$!
    }
    serve start_swtpm || return 1
    port=$PORT pid=$SERVER_PID
    # TPM2_GetRandom(8): tag ST_NO_SESSIONS, size 12, code 0x17b; the answer is TPM_RC_SUCCESS.
    reply=$(exec 3<>"/dev/tcp/127.0.0.1/$port"
        printf '\x80\x01\x00\x00\x00\x0c\x00\x00\x01\x7b\x00\x08' >&3
        timeout 2 head -c 10 <&3 | od -An -tx1 | tr -d ' \n')
    stop "$pid"
    [ "${reply:12:8}" = 00000000 ] || { echo "swtpm answered '$reply' to TPM2_GetRandom"; return 1; }
}

check_nats() {
    local port pid info
    start_nats() {
        nats-server -a 127.0.0.1 -p "$1" &
        SERVER_PID=$!
    }
    serve start_nats || return 1
    port=$PORT pid=$SERVER_PID
    info=$(exec 3<>"/dev/tcp/127.0.0.1/$port"; timeout 2 head -c 4 <&3)
    stop "$pid"
    [ "$info" = INFO ] || { echo "nats-server answered '$info'"; return 1; }
}

check_etcd() {
    local client peer pid got
    start_etcd() {
        peer=$(free_port) || return 1
        rm -rf "$W/etcd"
        etcd --name check --data-dir "$W/etcd" --listen-client-urls "http://127.0.0.1:$1" \
            --advertise-client-urls "http://127.0.0.1:$1" --listen-peer-urls "http://127.0.0.1:$peer" \
            --initial-advertise-peer-urls "http://127.0.0.1:$peer" --initial-cluster "check=http://127.0.0.1:$peer" \
            --log-level error &
        SERVER_PID=$!
    }
    serve start_etcd || return 1
    client=$PORT pid=$SERVER_PID
    for _ in $(seq 100); do
        etcdctl --endpoints "127.0.0.1:$client" --dial-timeout 1s put lamina-check yes >/dev/null 2>&1 && break
        kill -0 "$pid" 2>/dev/null || { echo "etcd exited"; return 1; }
        sleep 0.1
    done
    got=$(etcdctl --endpoints "127.0.0.1:$client" get --print-value-only lamina-check)
    stop "$pid"
    [ "$got" = yes ] || { echo "etcd answered '$got'"; return 1; }
}

check_python() {
    [ "$(python3 -c 'import socket, selectors; print(1 + 1)')" = 2 ]
}

check_node() {
    [ "$(node -e 'console.log(1 + 1)')" = 2 ] && npm --version >/dev/null
}

check_kill() {
    # The program, not bash's builtin: tests run it as a command.
    sleep 30 &
    local pid=$!
    env kill -9 "$pid"
    ! wait "$pid" 2>/dev/null
}

# Network namespaces: what crates/cli/tests/continuum_netns.rs makes. It needs root; without
# `tc netem` in the kernel the test shapes its edge links with tests/netns/linkem.py instead.
check_netns() {
    local ns="lamina-check-$$"
    [ "$(id -u)" -eq 0 ] || { echo "not root: the continuum test needs root for ip netns (LAMINA_SKIP_NETNS=1 skips it)"; return 1; }
    ip netns add "$ns"
    # shellcheck disable=SC2064
    trap "ip netns del $ns 2>/dev/null || true" EXIT
    ip -n "$ns" link add chk0 type veth peer name chk1
    ip -n "$ns" link set chk0 up && ip -n "$ns" link set chk1 up && ip -n "$ns" link set lo up
    ip netns exec "$ns" true
    if ip netns exec "$ns" tc qdisc add dev chk0 root netem delay 1ms 2>"$W/netem.err"; then
        echo "tc netem: available" >"$W/netem"
    else
        echo "tc netem: not in this kernel ($(head -c 120 "$W/netem.err")); the continuum test uses tests/netns/linkem.py" >"$W/netem"
    fi
}

check() {
    W=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$W'" EXIT
    say "checking what the builds and tests need, by using it"
    run_check "rustc links a native hello; Rust targets ${RUST_TARGETS[*]}; rustfmt, clippy" "gcc libc6-dev; rustup target add / rustup component add" check_rust_targets
    run_check "cargo deny $CARGO_DENY_VERSION runs" "cargo install --locked cargo-deny --version $CARGO_DENY_VERSION" check_cargo_deny
    run_check "protoc compiles a file importing google/protobuf/descriptor.proto" "protobuf-compiler libprotobuf-dev" check_protoc
    run_check "clang links a C hello for wasm32-wasi; llvm-ar archives it" "clang lld wasi-libc libclang-rt-dev-wasm32 llvm" check_wasm_c
    run_check "the aarch64 cross linker links and qemu-aarch64 runs the result" "gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user" check_aarch64
    run_check "perl and make can configure and build OpenSSL from source" "perl make" check_openssl_build
    run_check "prlimit limits an address space" "util-linux" check_prlimit
    run_check "libtss2 and OpenSSL link through pkg-config" "libtss2-dev libssl-dev pkg-config" check_native_libs
    run_check "swtpm_setup manufactures a TPM and swtpm answers TPM2_GetRandom on loopback" "swtpm swtpm-tools" check_swtpm
    run_check "nats-server starts on loopback and greets" "nats-server" check_nats
    run_check "etcd starts on loopback and etcdctl stores and reads a key" "etcd-server etcd-client" check_etcd
    run_check "python3 runs" "python3" check_python
    run_check "node runs JavaScript and npm answers" "nodejs npm" check_node
    run_check "the kill program ends a process" "procps" check_kill
    run_check "ip netns makes a namespace with a veth pair" "iproute2 (and root)" check_netns
    [ ! -f "$W/netem" ] || printf '           %s\n' "$(cat "$W/netem")" >&2
    if ((${#FAILED[@]})); then
        say "set-up is incomplete: ${#FAILED[@]} capability(ies) missing (above). scripts/setup.sh installs them."
        return 1
    fi
    say "set-up is complete"
}

case "${1:-}" in
    --check) check ;;
    "") setup_rust; setup_debian; setup_cargo_tools; check ;;
    *) echo "usage: scripts/setup.sh [--check]" >&2; exit 2 ;;
esac
