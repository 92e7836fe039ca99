#!/usr/bin/env bash
# Runs one of the README's commands in a fresh Debian 12 root file system, where none of the
# project's packages are installed: the proof that set-up is complete (docs/clean-root.md).
#
#   scripts/clean-root.sh [--root DIR] [--fresh | --reuse] COMMAND...
#
#   scripts/clean-root.sh scripts/setup.sh --check   # expect every capability MISSING
#   scripts/clean-root.sh scripts/test.sh            # the whole suite, from set-up on
#   scripts/clean-root.sh scripts/demo.sh
#
# DIR (default /srv/lamina-root) is made once with `debootstrap --variant=minbase bookworm`
# (--fresh makes it again). The host's Rust toolchain (~/.rustup, ~/.cargo) is bound in, as the
# README assumes a machine that has it; nothing else of the host is. The commit checked out
# here (HEAD) is cloned into DIR/work/main, with ../shared beside it (--reuse keeps the clone of
# an earlier run and its builds, to look into a failure), and COMMAND runs there as root with a
# clean environment. Needs root, debootstrap, and Debian's package mirror.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=/srv/lamina-root
FRESH=no
REUSE=no
while [ $# -gt 0 ]; do
    case "$1" in
        --root) DIR=$2; shift 2 ;;
        --fresh) FRESH=yes; shift ;;
        --reuse) REUSE=yes; shift ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "error: run as root (debootstrap, mount and chroot need it)" >&2; exit 1; }
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Processes still running inside the root (a run interrupted earlier): ended, so that nothing
# writes into a tree that is being replaced.
stop_inside() {
    local p root
    for p in /proc/[0-9]*; do
        root=$(readlink "$p/root" 2>/dev/null) || continue
        # In the root, or in a root that was once bound here ("/" is every other process's).
        case "$root" in "$(realpath "$DIR")"* | /) [ "$root" != / ] && kill -9 "${p#/proc/}" 2>/dev/null ;; esac
    done
    return 0
}
# The mount points at or under the root, deepest first.
mounts_inside() {
    local dir
    dir=$(realpath "$DIR")
    awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r
}
# Detaches every mount at or under the root: this run's, and those an earlier run left when it
# was killed before its trap ran (its bind mounts of the host's toolchain among them, and what
# `ip netns` mounted inside). Fails if one stays: the root must never be removed while the
# host's ~/.cargo or ~/.rustup is bound into it (same device, so `rm --one-file-system` would
# go through them).
unmount_inside() {
    local m
    while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(mounts_inside)
    if [ -n "$(mounts_inside)" ]; then
        echo "error: still mounted under $DIR:" >&2
        mounts_inside >&2
        return 1
    fi
}
cleanup() {
    stop_inside
    unmount_inside || true
}
trap cleanup EXIT
bind() { # SOURCE TARGET
    mkdir -p "$2"
    mount --bind "$1" "$2"
}

stop_inside
unmount_inside
if [ "$FRESH" = yes ] && [ -d "$DIR" ]; then
    say "removing $DIR"
    rm -rf --one-file-system "$DIR"
fi
if [ ! -x "$DIR/usr/bin/apt-get" ]; then
    command -v debootstrap >/dev/null || { echo "error: apt-get install debootstrap" >&2; exit 1; }
    say "debootstrap --variant=minbase bookworm $DIR (a few minutes)"
    mkdir -p "$DIR"
    debootstrap --variant=minbase bookworm "$DIR" http://deb.debian.org/debian >&2
fi

# The root is a mount point of its own, so that `ip netns exec` can make its mounts private.
bind "$DIR" "$DIR"
for d in sys dev dev/pts; do bind "/$d" "$DIR/$d"; done
mkdir -p "$DIR/run/netns"
bind "${RUSTUP_HOME:-$HOME/.rustup}" "$DIR/root/.rustup"
bind "${CARGO_HOME:-$HOME/.cargo}" "$DIR/root/.cargo"
cp /etc/resolv.conf "$DIR/etc/resolv.conf"
# Every installed Debian has /etc/hosts (the installer or the image writes it; no package
# does), and `ip netns exec` binds a namespace's hosts file over it; debootstrap leaves none.
[ -e "$DIR/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$DIR/etc/hosts"
# A machine whose HTTPS goes through an inspecting proxy names that proxy's CA bundle in its
# environment (SSL_CERT_FILE); the root gets the same bundle and the same variables, as the
# machine's own environment would give them. Nothing else of the host's environment goes in.
CA_ENV=()
if [ -n "${SSL_CERT_FILE:-}" ] && [ -f "$SSL_CERT_FILE" ]; then
    cp "$SSL_CERT_FILE" "$DIR/etc/host-ca-bundle.crt"
    for v in SSL_CERT_FILE CURL_CA_BUNDLE CARGO_HTTP_CAINFO; do CA_ENV+=("$v=/etc/host-ca-bundle.crt"); done
fi

if [ "$REUSE" = yes ] && [ -d "$DIR/work/main" ]; then
    say "reusing the clone in $DIR/work/main and its builds"
else
    say "cloning $(git -C "$ROOT" rev-parse --short HEAD) into $DIR/work/main"
    rm -rf "$DIR/work"
    mkdir -p "$DIR/work"
    git clone -q "$ROOT" "$DIR/work/main"
    [ ! -d "$ROOT/../shared" ] || cp -r "$ROOT/../shared" "$DIR/work/shared"
fi

say "running in the clean root: $*"
# In a PID namespace of its own: when this script ends (or is killed), so does everything the
# command started, so no process of an interrupted run writes into the next one's tree. It
# gets a /proc of its own namespace (not the host's, where its PIDs name other processes).
unshare --pid --fork --kill-child --mount-proc="$DIR/proc" chroot "$DIR" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" CI="${CI:-}" "${CA_ENV[@]}" \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c 'cd /work/main && exec bash "$@"' bash "$@"
