#!/usr/bin/env python3
"""The workspace's crate graph, from `cargo metadata`, as the table docs/ARCHITECTURE.md shows.

    scripts/crate-graph.py            print the table
    scripts/crate-graph.py --write    replace the table in docs/ARCHITECTURE.md
    scripts/crate-graph.py --check    exit 1 if docs/ARCHITECTURE.md's table is not the real one

The table sits between the markers `<!-- crate-graph -->` and `<!-- /crate-graph -->`, so the
page cannot go stale unnoticed: scripts/test.sh runs --check. Each crate's one-line purpose is
its manifest's `description`.
"""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ARCHITECTURE.md"
BEGIN, END = "<!-- crate-graph -->", "<!-- /crate-graph -->"
# What a reader wants to know a crate links, beyond the workspace: the Wasm engine, and the
# compiler and the etcd client that the node build must not carry.
NOTABLE = ["wasmtime", "wasmtime-wasi", "etcd-client", "async-nats", "tss-esapi", "rustls"]


def table() -> str:
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    packages = json.loads(out)["packages"]
    names = {p["name"] for p in packages}
    rows = ["| crate | path | what it is | uses (workspace) | links |", "|---|---|---|---|---|"]
    for p in sorted(packages, key=lambda p: p["manifest_path"]):
        normal = [d for d in p["dependencies"] if d["kind"] is None]
        uses = sorted({d["name"].removeprefix("lamina-") for d in normal if d["name"] in names})
        links = [n for n in NOTABLE if any(d["name"] == n for d in normal)]
        path = pathlib.Path(p["manifest_path"]).parent.relative_to(ROOT)
        description = (p.get("description") or "").replace("|", "\\|").strip()
        rows.append(
            f"| `{p['name']}` | `{path}` | {description} | {', '.join(uses) or '—'} | "
            f"{', '.join(links) or '—'} |"
        )
    return "\n".join(rows)


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    current = table()
    if mode == "":
        print(current)
        return 0
    text = DOC.read_text()
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        print(f"{DOC.relative_to(ROOT)} has no {BEGIN} … {END} block", file=sys.stderr)
        return 1
    wanted = f"{head}{BEGIN}\n{current}\n{END}{tail}"
    if mode == "--write":
        DOC.write_text(wanted)
        return 0
    if mode == "--check":
        if text != wanted:
            print(
                f"{DOC.relative_to(ROOT)}'s crate table is not the workspace's: "
                "run scripts/crate-graph.py --write and commit the page",
                file=sys.stderr,
            )
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
