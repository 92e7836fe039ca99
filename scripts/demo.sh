#!/usr/bin/env bash
# Lamina's main job: a continuum on this machine. A control plane (with a NATS server) and three
# nodes in different zones, one of them the aarch64 build without a compiler under qemu, all on
# the sim platform; the two-stage sensor application deployed on them, attestation verdicts and
# placements shown, readings flowing from the edge to the cloud's sealed storage. Then the
# single-machine tour: guests under limits, the same module compiled for aarch64, evidence made
# and appraised.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/lib.sh

say "building lamina (release), the aarch64 node without a compiler, the example guests"
cargo build --release --quiet -p lamina-cli
build_runtime_only --release --quiet --target aarch64-unknown-linux-gnu
build_guests
build_examples

LAMINA=target/release/lamina
ARM_LAMINA=target/runtime-only/aarch64-unknown-linux-gnu/release/lamina
G=tests/programs/target
OUT=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$OUT"
}
trap cleanup EXIT
export LAMINA_CACHE_DIR="$OUT/cache"

show() { printf '\n\033[1;36m$ %s\033[0m\n' "$*"; "$@" || printf '\033[2m(exit code %s)\033[0m\n' "$?"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- The continuum ---------------------------------------------------------------------------
NATS_PORT=$(free_port)
CP="$OUT/control"
# The NATS server admits only the nodes the control plane enrolled, each with the subjects of
# its instances: the control plane keeps the users file the server's configuration includes,
# and signals the server (its PID file) when they change.
printf 'listen: 127.0.0.1:%s\npid_file: "%s"\ninclude "nats-users.conf"\n' "$NATS_PORT" "$OUT/nats.pid" >"$OUT/nats.conf"
say "lamina control: the control plane (sim platform, NATS at 127.0.0.1:$NATS_PORT)"
# No policy: a development continuum, which the flag's name says is dangerous.
$LAMINA control --danger-dev-allow-any-sim-node --listen 127.0.0.1:0 --platform sim --nats "nats://127.0.0.1:$NATS_PORT" \
    --nats-users "$OUT/nats-users.conf" --nats-pid-file "$OUT/nats.pid" --state "$CP" \
    --lost-after 30s 2>"$OUT/control.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -f "$OUT/nats-users.conf" ] && break; sleep 0.1; done
nats-server -c "$OUT/nats.conf" >"$OUT/nats.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -f "$CP/address" ] && break; sleep 0.1; done
cat "$OUT/control.log"
node() { # name zone profile binary...
    local name=$1 zone=$2 profile=$3 token
    shift 3
    token=$($LAMINA token create --control-state "$CP" 2>/dev/null)
    "$@" node --join "$token" --name "$name" --zone "$zone" --profile "$profile" --platform sim \
        --heartbeat 1s --state "$OUT/$name" 2>"$OUT/$name.log" &
    PIDS+=($!)
}
say "three nodes join with one-time tokens: cloud-1, edge-1, and edge-2 (aarch64, no compiler, under qemu)"
node cloud-1 cloud server $LAMINA
node edge-1 edge server $LAMINA
# The edge profile: smaller reservations than a server's (which qemu-user emulates slowly).
node edge-2 edge edge qemu-aarch64 -L /usr/aarch64-linux-gnu $ARM_LAMINA
for _ in $(seq 120); do
    [ "$($LAMINA status --control-state "$CP" 2>/dev/null | grep -c ' ready ')" -ge 3 ] && break
    sleep 0.5
done
show $LAMINA status --control-state "$CP"
show $LAMINA deploy --control-state "$CP" examples/continuum/sensors.toml
say "waiting for readings to flow from the edge to the cloud"
# The emulated aarch64 node is slower to start its instance (qemu): hence --lost-after 30s.
seen=no
for _ in $(seq 240); do
    $LAMINA logs --control-state "$CP" aggregate 2>/dev/null | grep -q 'edge-2 n=' && seen=yes && break
    sleep 0.5
done
[ "$seen" = yes ] || say "no reading from edge-2 within 2 minutes; see $OUT/edge-2.log"

sleep 3
show $LAMINA status --control-state "$CP"
show $LAMINA logs --control-state "$CP" sensor-filter
$LAMINA logs --control-state "$CP" aggregate | tail -n 4
show $LAMINA undeploy --control-state "$CP" sensor-filter
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
PIDS=()

# --- One machine ------------------------------------------------------------------------------
show $LAMINA run -v $G/wasm32-wasip1/release/hello.wasm
show $LAMINA run -v $G/wasm32-wasip1/release/hello.wasm
show $LAMINA run $G/wasm32-wasip2/release/echo.wasm --env GREETING=hello -- a component with arguments
show $LAMINA run --timeout 1s $G/wasm32-wasip1/release/spin.wasm
show $LAMINA run --max-memory 32MiB $G/wasm32-wasip2/release/hog.wasm
show $LAMINA run --profile tiny $G/wasm32-wasip1/release/hello.wasm
show $LAMINA keygen "$OUT/signer.key"
show $LAMINA compile --sign "$OUT/signer.key" --target aarch64-unknown-linux-gnu --profile edge $G/wasm32-wasip1/release/hello.wasm -o "$OUT/hello.aarch64.lamart"
show $LAMINA inspect "$OUT/hello.aarch64.lamart"
say "an artifact is native code: it runs only when a trusted key signed it"
show qemu-aarch64 -L /usr/aarch64-linux-gnu $ARM_LAMINA run "$OUT/hello.aarch64.lamart"
show qemu-aarch64 -L /usr/aarch64-linux-gnu $ARM_LAMINA run --trust-signer "$OUT/signer.key.pub" "$OUT/hello.aarch64.lamart"
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
printf '\n\033[1mDone.\033[0m A continuum ran across zones and architectures; the same module ran on x86_64 and, compiled ahead of time, on aarch64; evidence was made and appraised.\n'
