#!/usr/bin/env python3
"""The workspace's trust and size boundaries, checked against the real build graph.

    scripts/boundaries.py    exit 1, naming what crossed, when a boundary is broken

What holds (docs/ARCHITECTURE.md says why):
- the verifier (`lamina-attest`, every feature) links no platform code and no Wasm engine;
- the node build (`lamina-cli --no-default-features --features node`) and the node agent link
  no compiler, no etcd client and not the control plane's crate;
- the node agent and the CLI's node build reach the control plane through `lamina-wire` only;
- the control plane compiles artifacts through `lamina-artifact` and links no runtime, no WASI
  and no host service;
- no binary links native-tls: TLS is rustls;
- every workspace crate takes the workspace's lints (`unsafe_code = "deny"` among them), and
  `unsafe` appears only in the files listed in UNSAFE_ALLOWED, each with its safety argument.

scripts/test.sh runs it beside the crate-graph check.
"""

import pathlib
import re
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Files that may hold `unsafe`, and why.
UNSAFE_ALLOWED = {
    # Loading an artifact whose signature and header were checked first: wasmtime's
    # deserialisation is unsafe by its nature (the doc comment there gives the argument).
    "crates/artifact/src/code.rs",
}

PLATFORM = {"lamina-tee", "lamina-tee-tpm", "tss-esapi", "tss-esapi-sys"}
ENGINE = {"wasmtime", "wasmtime-wasi", "cranelift-codegen"}
COMPILER = {"cranelift-codegen", "cranelift-frontend", "wasmtime-cranelift", "wasmtime-internal-cranelift"}
CONTROL_SERVER = {"etcd-client", "lamina-control"}
HOST_SERVICES = {"lamina-runtime", "wasmtime-wasi", "wasmtime-wasi-http", "lamina-host-fs", "lamina-host-kv",
                 "lamina-host-secrets", "lamina-host-attest", "lamina-host-messaging", "lamina-host-abi"}

# (what is built, cargo tree's arguments, packages it must not link, why)
GRAPHS = [
    ("the verifier", ["-p", "lamina-attest", "--all-features"], PLATFORM | ENGINE,
     "relying parties and the control plane link it: it must judge evidence without platform code"),
    ("the node build", ["-p", "lamina-cli", "--no-default-features", "--features", "node"], COMPILER | CONTROL_SERVER,
     "edge boards run precompiled artifacts and talk to the control plane through lamina-wire"),
    ("the node agent", ["-p", "lamina-node"], COMPILER | CONTROL_SERVER,
     "it talks to the control plane through lamina-wire"),
    ("the control plane", ["-p", "lamina-control", "--features", "server"], HOST_SERVICES,
     "it compiles and signs artifacts (lamina-artifact) and runs no guest"),
    ("the artifact crate", ["-p", "lamina-artifact", "--all-features"], HOST_SERVICES | PLATFORM,
     "compiled code is shared by whoever compiles and whoever runs; it runs nothing"),
    ("the wire types", ["-p", "lamina-wire"], COMPILER | CONTROL_SERVER | {"wasmtime", "axum"},
     "both sides link it; it serves nothing and compiles nothing"),
    ("the lamina binary", ["-p", "lamina-cli", "--all-features"], {"native-tls"},
     "its TLS is rustls (a build script may use other TLS; the binary may not)"),
]


def linked(args: list[str]) -> set[str]:
    out = subprocess.run(
        ["cargo", "tree", "--offline", "-e", "normal", "--prefix", "none", "--format", "{p}", *args],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return {line.split(" ")[0] for line in out.splitlines() if line.strip()}


def unsafe_uses() -> list[str]:
    found = []
    for path in sorted(ROOT.glob("crates/*/src/**/*.rs")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("crates/sdk/") or rel in UNSAFE_ALLOWED:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("//", 1)[0]
            if re.search(r"\bunsafe\b", code) and not re.search(r'"[^"]*\bunsafe\b[^"]*"', code):
                found.append(f"{rel}:{n}: {line.strip()}")
    return found


def without_workspace_lints() -> list[str]:
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    missing = []
    for member in manifest["workspace"]["members"]:
        crate = tomllib.loads((ROOT / member / "Cargo.toml").read_text())
        if crate.get("lints", {}).get("workspace") is not True:
            missing.append(f"{member}/Cargo.toml has no `[lints] workspace = true`")
    return missing


def main() -> int:
    failures = []
    for what, args, banned, why in GRAPHS:
        crossed = sorted(linked(args) & banned)
        if crossed:
            failures.append(f"{what} ({' '.join(args)}) links {', '.join(crossed)}: {why}")
    failures += [f"`unsafe` outside the allowed files: {u}" for u in unsafe_uses()]
    failures += without_workspace_lints()
    for f in failures:
        print(f"boundary broken: {f}", file=sys.stderr)
    if not failures:
        print(f"boundaries hold: {len(GRAPHS)} build graphs, unsafe only in {', '.join(sorted(UNSAFE_ALLOWED))}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
