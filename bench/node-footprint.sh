#!/usr/bin/env bash
# The node agent's footprint on a device: the size of the runtime-only `lamina` (no compiler, no
# control-plane server) and its resident memory while idle, enrolled with a control plane and
# heartbeating, side by side with the full build doing the same.
#
# Results: bench/out/node-footprint.txt and stdout, and with LAMINA_BENCH_RECORDS set the
# `node-footprint` record (bench/record.sh). LAMINA_BENCH_QUICK=1: a brief run, 2 s idle
# instead of 10, its results in bench/out/quick.
set -euo pipefail
# The agent talks to a local control plane over loopback; no namespaces are needed.
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/lib.sh
source bench/record.sh

OUT=bench/out
IDLE=10
if bench_quick; then
    OUT=bench/out/quick
    IDLE=2
fi
mkdir -p "$OUT"
build_profile
say "building the full lamina ($BUILD_DIR)"
cargo build "${BUILD_FLAGS[@]}" --quiet -p lamina-cli
node_binary
NODE_ONLY=$NODE_BINARY
FULL=target/$BUILD_DIR/lamina

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$FULL" control --danger-dev-allow-any-sim-node --listen 127.0.0.1:0 --platform sim --state "$WORK/control" >/dev/null 2>"$WORK/control.log" &
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
    sleep "$IDLE" # idle: heartbeats only
    objcopy --strip-all "$2" "$WORK/$1.stripped"
    local binary stripped rss
    binary=$(stat -c %s "$2")
    stripped=$(stat -c %s "$WORK/$1.stripped")
    rss=$(rss_kib "$pid")
    echo "$1 $binary $stripped $rss" >>"$WORK/figures"
    awk -v b="$binary" -v s="$stripped" -v r="$rss" -v n="$1" \
        'BEGIN { printf "%-14s binary %6.1f MiB (stripped %5.1f MiB)   idle RSS %5.1f MiB\n", n, b / 1048576, s / 1048576, r / 1024 }'
}
echo "# lamina node, enrolled and idle (heartbeat 2s), $(date -u +%Y-%m-%d)" >"$WORK/result"
measure runtime-only "$NODE_ONLY" >>"$WORK/result"
measure full "$FULL" >>"$WORK/result"
cp "$WORK/result" "$OUT/node-footprint.txt"
cat "$OUT/node-footprint.txt"

# The record, in MiB: idle RSS, then the binaries as built and stripped.
declare -A FIGURE
while read -r name binary stripped rss; do
    FIGURE[$name.rss]=$(awk -v v="$rss" 'BEGIN { printf "%.3f", v / 1024 }')
    FIGURE[$name.binary]=$(awk -v v="$binary" 'BEGIN { printf "%.3f", v / 1048576 }')
    FIGURE[$name.stripped]=$(awk -v v="$stripped" 'BEGIN { printf "%.3f", v / 1048576 }')
done <"$WORK/figures"
record_metric runtime_only.rss_mib "runtime-only node, idle RSS" "${FIGURE[runtime-only.rss]}" MiB
record_metric full.rss_mib "full build as a node, idle RSS" "${FIGURE[full.rss]}" MiB
record_metric runtime_only.binary_mib "runtime-only binary" "${FIGURE[runtime-only.binary]}" MiB
record_metric full.binary_mib "full binary" "${FIGURE[full.binary]}" MiB
record_metric runtime_only.stripped_mib "runtime-only binary, stripped" "${FIGURE[runtime-only.stripped]}" MiB
record_metric full.stripped_mib "full binary, stripped" "${FIGURE[full.stripped]}" MiB
record_note "a node enrolled with a local control plane, idle for ${IDLE}s (heartbeat 2s); $BUILD_DIR builds"
write_record node-footprint "Node agent footprint" "bench/node-footprint.sh"
