#!/usr/bin/env bash
# `lamina run hello.wasm` start-up of two builds, side by side: runs of the two interleaved
# (A, B, A, B, ...) after warm-up, each with a warm compile cache of its own, so a busy machine
# slows both alike. Prints each one's median and 90th percentile and the ratio B / A.
#
#   bench/before-after.sh BEFORE_LAMINA AFTER_LAMINA [RUNS]     (RUNS: 200 by default)
#
# Build the two with `cargo build --release -p lamina-cli` in two worktrees (for instance the
# commit before a change and main). The hello program is tests/programs' wasm32-wasip1 build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 BEFORE_LAMINA AFTER_LAMINA [RUNS]" >&2; exit 2; }
before=$(realpath "$1")
after=$(realpath "$2")
runs=${3:-200}
source scripts/lib.sh
build_guests
hello=tests/programs/target/wasm32-wasip1/release/hello.wasm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$before" "$after" "$hello" "$work" "$runs" <<'EOF'
import os, statistics, subprocess, sys, time
before, after, hello, work, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
builds = {"before": before, "after": after}
env = {name: dict(os.environ, LAMINA_CACHE_DIR=os.path.join(work, name), HOME=os.path.join(work, name + "-home"))
       for name in builds}
def once(name):
    started = time.perf_counter()
    out = subprocess.run([builds[name], "run", hello], env=env[name], capture_output=True, timeout=60)
    took = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"{builds[name]} run {hello} failed: {out.stderr.decode(errors='replace')}")
    return took
for name in builds:  # warm the caches
    for _ in range(5):
        once(name)
samples = {name: [] for name in builds}
for _ in range(runs):
    for name in builds:
        samples[name].append(once(name) * 1e3)
for name in builds:
    s = sorted(samples[name])
    print(f"{name:6} {builds[name]}: median {statistics.median(s):.2f} ms, p90 {s[int(0.9 * (len(s) - 1))]:.2f} ms ({runs} runs)")
ratio = statistics.median(samples["after"]) / statistics.median(samples["before"])
print(f"after / before (medians): {ratio:.3f}")
EOF
