#!/usr/bin/env bash
# The SQLite workload of the sealed-filesystem issue: 10,000 inserts in transactions of 100,
# then 10,000 random point reads, by examples/sqlite under `lamina run`, in a sealed directory
# (--sealed-dir, sim platform) and in a plain preopened directory (--dir), alternating in one
# run. The guest times its own work (insert_ms, read_ms), so process start and compilation are
# left out. Results: bench/out/sealed-sqlite.txt and a summary on stdout, and with
# LAMINA_BENCH_RECORDS set the `sealed-sqlite` record (bench/record.sh). LAMINA_BENCH_QUICK=1: a
# brief run, one round unless ROUNDS is set, its results in bench/out/quick. LAMINA_BEFORE=PATH:
# also the sealed run of another lamina build (an older commit's, built in a worktree), in the
# same alternation, and the ratio of this build's sealed figures to that one's.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/lib.sh
source bench/record.sh

OUT=bench/out
if bench_quick; then
    ROUNDS=${ROUNDS:-1}
    OUT=bench/out/quick
fi
ROUNDS=${ROUNDS:-7}
mkdir -p "$OUT"
build_profile
say "building lamina ($BUILD_DIR) and the SQLite example"
cargo build "${BUILD_FLAGS[@]}" --quiet -p lamina-cli
build_examples
LAMINA=target/$BUILD_DIR/lamina
WASM=target/examples/wasm32-wasip1/release/sqlite-notes.wasm
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export LAMINA_CACHE_DIR="$WORK/cache"
# A signed artifact, as a node runs it: artifacts run only when a trusted key signed them.
"$LAMINA" keygen "$WORK/signer.key" 2>/dev/null
"$LAMINA" compile --sign "$WORK/signer.key" "$WASM" -o "$WORK/sqlite.lamart" 2>/dev/null
TRUST=(--trust-signer "$WORK/signer.key.pub")
BEFORE=${LAMINA_BEFORE:-}
KINDS=(plain sealed)
if [ -n "$BEFORE" ]; then
    "$BEFORE" compile --sign "$WORK/signer.key" "$WASM" -o "$WORK/sqlite-before.lamart" 2>/dev/null
    KINDS+=(before)
fi

run_one() { # run_one plain|sealed round
    local dir="$WORK/$1-$2"
    mkdir -p "$dir"
    if [ "$1" = plain ]; then
        "$LAMINA" run "${TRUST[@]}" --dir "$dir::/data" "$WORK/sqlite.lamart" -- bench /data/kv.db
    elif [ "$1" = before ]; then
        "$BEFORE" run "${TRUST[@]}" --platform sim --state "$WORK/state-before" --sealed-dir "$dir::/data" \
            "$WORK/sqlite-before.lamart" -- bench /data/kv.db
    else
        "$LAMINA" run "${TRUST[@]}" --platform sim --state "$WORK/state" --sealed-dir "$dir::/data" "$WORK/sqlite.lamart" -- bench /data/kv.db
    fi
}

say "timing $ROUNDS rounds of each, alternating"
: >"$OUT/sealed-sqlite.txt"
for round in $(seq 1 "$ROUNDS"); do
    for kind in "${KINDS[@]}"; do
        printf '%s %s\n' "$kind" "$(run_one "$kind" "$round")" | tee -a "$OUT/sealed-sqlite.txt"
    done
done
# The medians of each kind (of an even count, the mean of the middle two), as Python's
# statistics.median; the figures for the record go to $WORK/figures.
awk -v figures="$WORK/figures" '
function field(line, key) {
    if (!match(line, "\"" key "\":-?[0-9.eE+]+")) return 0
    return substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3) + 0
}
function median(kind, part,   a, i, j, n, t) {
    n = count[kind]
    for (i = 1; i <= n; i++) {
        t = part == "inserts" ? ins[kind, i] : part == "reads" ? rd[kind, i] : ins[kind, i] + rd[kind, i]
        for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
        a[j + 1] = t
    }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function row(part,   p, s) {
    p = median("plain", part)
    s = median("sealed", part)
    printf "%-8s plain %8.1f ms  sealed %8.1f ms  ratio %.2fx\n", part, p, s, s / p
    ratio[part] = s / p
}
{
    n = ++count[$1]
    ins[$1, n] = field($0, "insert_ms")
    rd[$1, n] = field($0, "read_ms")
}
END {
    row("inserts")
    row("reads")
    row("total")
    if (count["before"] > 0) {
        for (i = 1; i <= 3; i++) {
            part = i == 1 ? "inserts" : i == 2 ? "reads" : "total"
            b = median("before", part)
            s = median("sealed", part)
            printf "%-8s sealed before %8.1f ms  now %8.1f ms  ratio %.2fx\n", part, b, s, s / b
        }
    }
    printf "%.3f %.3f %.4f %.4f %.4f\n", median("sealed", "total"), median("plain", "total"), ratio["total"],
        ratio["inserts"], ratio["reads"] >figures
}' "$OUT/sealed-sqlite.txt"

read -r sealed plain ratio inserts_ratio reads_ratio <"$WORK/figures"
record_metric sealed.ms "sealed directory, inserts + reads (median)" "$sealed" ms
record_metric plain.ms "plain directory, inserts + reads (median)" "$plain" ms
record_metric ratio "sealed / plain, inserts + reads" "$ratio" ratio
record_metric inserts_ratio "sealed / plain, 10,000 inserts" "$inserts_ratio" ratio
record_metric reads_ratio "sealed / plain, 10,000 point reads" "$reads_ratio" ratio
record_note "rounds of each, alternating plain and sealed: $ROUNDS; the guest times its own work"
write_record sealed-sqlite "SQLite on sealed storage" "ROUNDS=$ROUNDS bench/sealed-sqlite.sh"
