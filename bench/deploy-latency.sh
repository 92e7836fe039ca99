#!/usr/bin/env bash
# Deploy to first output over an edge link: a control plane (with its NATS server) in one network
# namespace, an enrolled node (the runtime-only build, no compiler) in another, the link between
# them at 40 ms delay and 1% loss in each direction (tc netem where the kernel has it, otherwise
# tests/netns/linkem.py). Each round times, from the operator's `lamina deploy` (run next to the
# control plane) to the instance's first line in the node's log:
#   cached:   the module was deployed before, so the node has its signed artifact;
#   compiled: a module the control plane has never seen (the same program with a unique custom
#             section), so it compiles it for the node's target and the node downloads it.
# Rounds of both kinds alternate in one run. Needs root (network namespaces).
# Results: bench/out/deploy-latency.txt and stdout, and with LAMINA_BENCH_RECORDS set the
# `deploy-latency` record (bench/record.sh). ROUNDS (default 15) rounds of each kind.
# LAMINA_BENCH_QUICK=1: a brief run, 2 rounds of each unless ROUNDS is set, its results in
# bench/out/quick.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/lib.sh
source bench/record.sh

OUT=bench/out
if bench_quick; then
    ROUNDS=${ROUNDS:-2}
    OUT=bench/out/quick
fi
ROUNDS=${ROUNDS:-15}
mkdir -p "$OUT"
build_profile
say "building lamina ($BUILD_DIR), the runtime-only node ($BUILD_DIR) and the guests"
cargo build "${BUILD_FLAGS[@]}" --quiet -p lamina-cli
node_binary
build_guests
LAMINA=$PWD/target/$BUILD_DIR/lamina
NODE=$NODE_BINARY
TICKER=$PWD/tests/programs/target/wasm32-wasip1/release/ticker.wasm

ID=lmb$$
CP=$ID-cp
EDGE=$ID-edge
HUB=$ID-hub
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in "$EDGE" "$CP" "$HUB"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/$ns"
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

say "network: $CP (10.78.0.1) and $EDGE (10.78.0.2), 40 ms and 1% loss each way"
ip netns add "$HUB"
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" link set br0 up
i=0
for ns in "$CP" "$EDGE"; do
    i=$((i + 1))
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$HUB" link add "p$i" type veth peer name eth0 netns "$ns"
    ip -n "$HUB" link set "p$i" master br0 up
    ip -n "$ns" addr add "10.78.0.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    mkdir -p "/etc/netns/$ns"
done
printf '127.0.0.1 localhost\n10.78.0.1 control.lamina.test\n' >"/etc/netns/$CP/hosts"
if ip netns exec "$EDGE" tc qdisc add dev eth0 root netem delay 40ms loss 1% 2>/dev/null &&
    ip netns exec "$HUB" tc qdisc add dev p2 root netem delay 40ms loss 1% 2>/dev/null; then
    LINK="tc netem"
    printf '127.0.0.1 localhost\n10.78.0.1 control.lamina.test\n' >"/etc/netns/$EDGE/hosts"
else
    LINK="tests/netns/linkem.py (this kernel has no tc netem)"
    printf '127.0.0.1 localhost\n127.0.0.1 control.lamina.test\n' >"/etc/netns/$EDGE/hosts"
    ip netns exec "$EDGE" python3 tests/netns/linkem.py --delay 40ms --loss 1% \
        127.0.0.1:7443=10.78.0.1:7443 127.0.0.1:4222=10.78.0.1:4222 >"$WORK/linkem.log" 2>&1 &
    PIDS+=($!)
fi

# NATS admits only enrolled nodes: the control plane keeps the users file the server includes.
printf 'listen: 10.78.0.1:4222\npid_file: "%s"\ninclude "nats-users.conf"\n' "$WORK/nats.pid" >"$WORK/nats.conf"
ip netns exec "$CP" "$LAMINA" control --danger-dev-allow-any-sim-node --listen 10.78.0.1:7443 --public-address https://control.lamina.test:7443 \
    --nats nats://control.lamina.test:4222 --nats-users "$WORK/nats-users.conf" --nats-pid-file "$WORK/nats.pid" \
    --platform sim --state "$WORK/cp" 2>"$WORK/control.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -f "$WORK/nats-users.conf" ] && break; sleep 0.1; done
ip netns exec "$CP" nats-server -c "$WORK/nats.conf" >"$WORK/nats.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -f "$WORK/cp/address" ] && break; sleep 0.1; done
cli() { ip netns exec "$CP" "$LAMINA" "$@" --control-state "$WORK/cp"; }
TOKEN=$(cli token create 2>/dev/null)
ip netns exec "$EDGE" "$NODE" node --join "$TOKEN" --name edge-1 --zone edge --platform sim --heartbeat 2s \
    --state "$WORK/edge" 2>"$WORK/edge.log" &
PIDS+=($!)
for _ in $(seq 300); do cli status 2>/dev/null | grep -q ' ready ' && break; sleep 0.1; done
sleep 3

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# A copy of the ticker with a custom section named after the round: another module hash.
unique() { python3 - "$TICKER" "$1" <<'PY'
import sys
wasm, name = open(sys.argv[1], "rb").read(), sys.argv[2].encode()
def leb(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out
body = leb(len(name)) + name
sys.stdout.buffer.write(wasm + b"\x00" + leb(len(body)) + body)
PY
}
round() { # kind module
    local log="$WORK/edge/node/logs/bench-0.log" start end
    printf '[[workload]]\nname = "bench"\nmodule = "%s"\n' "$2" >"$WORK/app.toml"
    rm -f "$log"
    start=$(now_ms)
    cli deploy "$WORK/app.toml" >/dev/null 2>&1
    until grep -q 'tick 0' "$log" 2>/dev/null; do
        if (($(now_ms) - start > 60000)); then echo "round timed out" >&2; exit 1; fi
        sleep 0.005
    done
    end=$(now_ms)
    echo "$1 $((end - start))" >>"$WORK/times"
    cli undeploy bench >/dev/null 2>&1
    # Until the node has stopped the instance.
    for _ in $(seq 200); do
        cli status --format json 2>/dev/null | grep -q '"workload": "bench"' || break
        sleep 0.05
    done
    sleep 2.5
}

say "warming up: the first deployment of the ticker (its artifact is then cached on the node)"
round warmup "$TICKER"
for r in $(seq "$ROUNDS"); do
    round cached "$TICKER"
    unique "lamina-bench-$r-$$" >"$WORK/u$r.wasm"
    round compiled "$WORK/u$r.wasm"
done

stats() {
    grep "^$1 " "$WORK/times" | awk '{print $2}' | sort -n | awk '
        { v[NR] = $1 } END {
            printf "%-9s median %5d ms   p90 %5d ms   min %5d ms   max %5d ms   (%d rounds)\n",
                k, v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)], v[1], v[NR], NR }' k="$1"
}
# The median and p90 of a kind of round, as `stats` prints them: "p50 p90".
percentiles() {
    grep "^$1 " "$WORK/times" | awk '{print $2}' | sort -n | awk '
        { v[NR] = $1 } END { print v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)] }'
}
{
    echo "# deploy to first output over an edge link ($LINK: 40 ms, 1% loss each way), $(date -u +%Y-%m-%d)"
    echo "# node: runtime-only build, heartbeat 2s (new desired states arrive by long poll)"
    stats cached
    stats compiled
} >"$OUT/deploy-latency.txt"
cat "$OUT/deploy-latency.txt"

for kind in cached compiled; do
    read -r p50 p90 < <(percentiles "$kind")
    label="module cached on the node"
    [ "$kind" = compiled ] && label="new module, compiled for the node"
    record_metric "$kind.p50_ms" "$label, median" "$p50" ms
    record_metric "$kind.p90_ms" "$label, p90" "$p90" ms
done
record_note "from \`lamina deploy\` to the instance's first output, over $LINK: 40 ms, 1% loss each way"
record_note "cached: the node has the module's artifact; compiled: a new module, compiled by the control plane"
record_note "rounds of each kind, alternating: $ROUNDS; the node is the runtime-only build"
write_record deploy-latency "Deploy over a shaped edge link" "ROUNDS=$ROUNDS bench/deploy-latency.sh"
