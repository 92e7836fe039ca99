#!/usr/bin/env bash
# Lamina's main job, for now: build it, run example guests under limits, and run the same
# module compiled ahead of time for aarch64 on an emulated aarch64 machine by a lamina that
# has no compiler at all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/lib.sh

say "building lamina (release)"
cargo build --release --quiet -p lamina-cli
build_runtime_only --release --target aarch64-unknown-linux-gnu
build_guests

LAMINA=target/release/lamina
ARM_LAMINA=target/runtime-only/aarch64-unknown-linux-gnu/release/lamina
G=tests/programs/target
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
export LAMINA_CACHE_DIR="$OUT/cache"

show() { printf '\n\033[1;36m$ %s\033[0m\n' "$*"; "$@" || printf '\033[2m(exit code %s)\033[0m\n' "$?"; }

show $LAMINA run -v $G/wasm32-wasip1/release/hello.wasm
show $LAMINA run -v $G/wasm32-wasip1/release/hello.wasm
show $LAMINA run $G/wasm32-wasip2/release/echo.wasm --env GREETING=hello -- a component with arguments
show $LAMINA run --timeout 1s $G/wasm32-wasip1/release/spin.wasm
show $LAMINA run --max-memory 32MiB $G/wasm32-wasip2/release/hog.wasm
show $LAMINA run --profile tiny $G/wasm32-wasip1/release/hello.wasm
show $LAMINA compile --target aarch64-unknown-linux-gnu --profile edge $G/wasm32-wasip1/release/hello.wasm -o "$OUT/hello.aarch64.lamart"
show $LAMINA inspect "$OUT/hello.aarch64.lamart"
show qemu-aarch64 -L /usr/aarch64-linux-gnu $ARM_LAMINA run "$OUT/hello.aarch64.lamart"
show qemu-aarch64 -L /usr/aarch64-linux-gnu $ARM_LAMINA run $G/wasm32-wasip1/release/hello.wasm
V=../shared/testvectors
NONCE=00112233445566778899aabbccddeeff
show $LAMINA attest --detect
show $LAMINA attest --platform sim --state-dir "$OUT/state" --module $G/wasm32-wasip1/release/hello.wasm --nonce $NONCE -o "$OUT/envelope.cbor"
printf 'allow_sim = true\nmodule_hashes = ["%s"]\n' "$($LAMINA inspect --format json $G/wasm32-wasip1/release/hello.wasm | sed -n 's/.*"module_hash": "\(.*\)".*/\1/p')" > "$OUT/policy.toml"
show $LAMINA verify "$OUT/envelope.cbor" --nonce $NONCE --policy "$OUT/policy.toml"
if [ -d "$V" ]; then
    show $LAMINA verify $V/dcap-qvl/sgx_quote --collateral $V/dcap-qvl/sgx_quote_collateral.json --at 2025-06-25T00:00:00Z
    show $LAMINA verify $V/virtee-sev/report_milan.hex --cert $V/virtee-sev/vcek_milan.der
fi
printf '\n\033[1mDone.\033[0m The same module ran on x86_64 and, compiled ahead of time, on aarch64; evidence was made and appraised.\n'
