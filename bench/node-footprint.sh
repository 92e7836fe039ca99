#!/usr/bin/env bash
# The node agent's footprint on a device: the size of the runtime-only `lamina` (no compiler, no
# control-plane server) and its resident memory while idle, enrolled with a control plane and
# heartbeating, side by side with the full build doing the same.
#
# Results: bench/out/node-footprint.txt and stdout.
set -euo pipefail
# The agent talks to a local control plane over loopback; no namespaces are needed.
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/lib.sh

OUT=bench/out
mkdir -p "$OUT"
build_runtime_only --release --quiet
say "building the full lamina (release)"
cargo build --release --quiet -p lamina-cli
NODE_ONLY=target/runtime-only/release/lamina
FULL=target/release/lamina

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$FULL" control --listen 127.0.0.1:0 --platform sim --state "$WORK/control" >/dev/null 2>"$WORK/control.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -f "$WORK/control/address" ] && break; sleep 0.1; done
[ -f "$WORK/control/address" ] || { cat "$WORK/control.log"; exit 1; }

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
measure() { # name binary
    local token pid
    token=$("$FULL" token create --control-state "$WORK/control" 2>/dev/null)
    "$2" node --join "$token" --name "$1" --platform sim --heartbeat 2s --state "$WORK/$1" \
        >/dev/null 2>"$WORK/$1.log" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do grep -q "enrolled" "$WORK/$1.log" && break; sleep 0.1; done
    grep -q "enrolled" "$WORK/$1.log" || { cat "$WORK/$1.log"; exit 1; }
    sleep 10 # idle: heartbeats only
    objcopy --strip-all "$2" "$WORK/$1.stripped"
    awk -v b="$(stat -c %s "$2")" -v s="$(stat -c %s "$WORK/$1.stripped")" -v r="$(rss_kib "$pid")" -v n="$1" \
        'BEGIN { printf "%-14s binary %6.1f MiB (stripped %5.1f MiB)   idle RSS %5.1f MiB\n", n, b / 1048576, s / 1048576, r / 1024 }'
}
echo "# lamina node, enrolled and idle (heartbeat 2s), $(date -u +%Y-%m-%d)" >"$WORK/result"
measure runtime-only "$NODE_ONLY" >>"$WORK/result"
measure full "$FULL" >>"$WORK/result"
cp "$WORK/result" "$OUT/node-footprint.txt"
cat "$OUT/node-footprint.txt"
