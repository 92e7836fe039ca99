#!/usr/bin/env bash
# The SQLite workload of the sealed-filesystem issue: 10,000 inserts in transactions of 100,
# then 10,000 random point reads, by examples/sqlite under `lamina run`, in a sealed directory
# (--sealed-dir, sim platform) and in a plain preopened directory (--dir), alternating in one
# run. The guest times its own work (insert_ms, read_ms), so process start and compilation are
# left out. Results: bench/out/sealed-sqlite.txt and a summary on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/lib.sh

ROUNDS=${ROUNDS:-7}
OUT=bench/out
mkdir -p "$OUT"
say "building lamina (release) and the SQLite example"
cargo build --release --quiet -p lamina-cli
build_examples
LAMINA=target/release/lamina
WASM=target/examples/wasm32-wasip1/release/sqlite-notes.wasm
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export LAMINA_CACHE_DIR="$WORK/cache"
"$LAMINA" compile "$WASM" -o "$WORK/sqlite.lamart" >/dev/null

run_one() { # run_one plain|sealed round
    local dir="$WORK/$1-$2"
    mkdir -p "$dir"
    if [ "$1" = plain ]; then
        "$LAMINA" run --dir "$dir::/data" "$WORK/sqlite.lamart" -- bench /data/kv.db
    else
        "$LAMINA" run --platform sim --state "$WORK/state" --sealed-dir "$dir::/data" "$WORK/sqlite.lamart" -- bench /data/kv.db
    fi
}

say "timing $ROUNDS rounds of each, alternating"
: >"$OUT/sealed-sqlite.txt"
for round in $(seq 1 "$ROUNDS"); do
    for kind in plain sealed; do
        printf '%s %s\n' "$kind" "$(run_one "$kind" "$round")" | tee -a "$OUT/sealed-sqlite.txt"
    done
done
python3 - "$OUT/sealed-sqlite.txt" <<'PY'
import json, statistics, sys
rows = {"plain": [], "sealed": []}
for line in open(sys.argv[1]):
    kind, data = line.split(" ", 1)
    d = json.loads(data)
    rows[kind].append((d["insert_ms"], d["read_ms"]))
def med(kind, i): return statistics.median(r[i] for r in rows[kind])
for label, i in (("inserts", 0), ("reads", 1)):
    print(f"{label:8} plain {med('plain', i):8.1f} ms  sealed {med('sealed', i):8.1f} ms  ratio {med('sealed', i) / med('plain', i):.2f}x")
total = lambda k: statistics.median(a + b for a, b in rows[k])
print(f"{'total':8} plain {total('plain'):8.1f} ms  sealed {total('sealed'):8.1f} ms  ratio {total('sealed') / total('plain'):.2f}x")
PY
