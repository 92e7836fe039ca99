#!/bin/sh
# Builds app.js into a wasi:http/proxy component (OUT, default target/examples/js/http-js.wasm
# from the repository root) with componentize-js, from the npm registry (npm ci, pinned by
# package-lock.json).
#
# The WASI WIT packages come from the jco package (its builtin 0.2.12 set), written into
# wit/deps with their version set to 0.2.10: the StarlingMonkey engine of componentize-js
# 0.23 exports wasi:http/incoming-handler@0.2.10, and the interfaces the proxy world uses are
# the same in both.
set -eu
cd "$(dirname "$0")"
out=${1:-../../target/examples/js/http-js.wasm}
[ -d node_modules/@bytecodealliance/componentize-js ] || npm ci --no-audit --no-fund --loglevel=error
rm -rf wit/deps
mkdir -p wit/deps "$(dirname "$out")"
cp -r node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12/* wit/deps/
find wit/deps -name '*.wit' -exec sed -i 's/@0\.2\.12/@0.2.10/g' {} +
npx --no-install componentize-js app.js --wit wit -n service -o "$out"
