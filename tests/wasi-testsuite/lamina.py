"""Lamina's runtime adapter for the WASI test suite's runner (WebAssembly/wasi-testsuite).

The runner imports an adapter and asks it for a command line per test; older runners run the
adapter as a script with `--test-file`, `--arg`, `--env` and `--dir`. Both are served here.
Lamina is found through $LAMINA (default: `lamina` on the PATH); it may hold options
(`LAMINA="lamina --profile edge"`).

Lamina denies the network by default. A test that declares the `sockets` proposal is allowed
TCP and UDP on loopback and name lookup; the HTTP servers the runner starts for a test (the
`HTTP_SERVER_<NAME>` variables it passes, or the older `HTTP_ENDPOINT`, when on loopback) are
the hosts outgoing HTTP may reach. `wasi:http/service` tests are served with `lamina serve --addr 127.0.0.1:0`,
which prints the address it listens on to stderr, as the runner reads it.

See docs/conformance.md for how to run the suite and what it showed.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

LAMINA = shlex.split(os.getenv("LAMINA", "lamina"))

LOOPBACK = ("127.0.0.1", "[::1]", "0.0.0.0", "[::]", "localhost")


def get_name() -> str:
    return "lamina"


def get_version() -> str:
    out = subprocess.run(LAMINA[0:1] + ["--version"], encoding="UTF-8", capture_output=True, check=True)
    # `lamina 0.1.0` (and possibly more words after)
    return out.stdout.split()[1]


def get_wasi_versions() -> List[str]:
    return ["wasm32-wasip1", "wasm32-wasip3"]


def get_wasi_worlds() -> List[str]:
    return ["wasi:cli/command", "wasi:http/service"]


def _network(env: Dict[str, str], proposals: Sequence[str]) -> List[str]:
    flags: List[str] = []
    if "sockets" in proposals:
        for proto in ("tcp", "udp"):
            for host in LOOPBACK:
                flags += ["--allow-socket", f"{proto}://{host}:0-65535"]
        flags += ["--allow-name-lookup"]
    for name, value in sorted(env.items()):
        local = value.split(":")[0] in ("127.0.0.1", "localhost") or value.startswith("[::1]")
        if (name.startswith("HTTP_SERVER_") or name == "HTTP_ENDPOINT") and local:
            # The runner's own servers, on loopback. Other hosts a test names (one that does
            # not resolve, say) stay denied: the guest gets an error either way.
            flags += ["--allow-http", f"http://{value}"]
    return flags


def compute_argv(
    test_path: str,
    args_env_dirs: Tuple[List[str], Dict[str, str], Union[None, str, Path, List[Tuple[Path, str]]]],
    proposals: Optional[List[str]] = None,
    wasi_world: str = "wasi:cli/command",
    wasi_version: str = "wasm32-wasip1",
) -> List[str]:
    """The command line for one test.

    The third member of `args_env_dirs` is, by the runner's version, a list of (host, guest)
    directories or one directory to be the guest's `/` (or nothing).
    """
    del wasi_version  # Lamina tells modules and components apart by themselves.
    args, env, dirs = args_env_dirs
    proposals = list(proposals or [])
    if dirs is None:
        mounts: List[Tuple[str, str]] = []
    elif isinstance(dirs, (str, Path)):
        mounts = [(str(dirs), "/")]
    else:
        mounts = [(str(host), guest) for host, guest in dirs]
    options = ["--no-cache"] + _network(env, proposals)
    for name, value in env.items():
        options += ["--env", f"{name}={value}"]
    for host, guest in mounts:
        options += ["--dir", f"{host}::{guest}"]
    if wasi_world == "wasi:http/service":
        return LAMINA + ["serve", "--addr", "127.0.0.1:0"] + options + [test_path]
    return LAMINA + ["run"] + options + [test_path, "--"] + list(args)


def main(argv: Sequence[str]) -> int:
    """The older runners' way: the adapter is a script that runs the test itself."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--version", action="store_true")
    parser.add_argument("--test-file")
    parser.add_argument("--arg", action="append", default=[])
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--dir", action="append", default=[])
    opts = parser.parse_args(argv)
    if opts.version:
        print(f"lamina {get_version()}")
        return 0
    env = dict(e.split("=", 1) for e in opts.env)
    dirs = [(Path(d), d) for d in opts.dir]
    return subprocess.run(compute_argv(opts.test_file, (opts.arg, env, dirs))).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
