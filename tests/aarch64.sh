#!/usr/bin/env bash
# aarch64 under emulation: cross-builds ringws for aarch64-unknown-linux-gnu with Debian trixie's
# Rust 1.85 (the MSRV: Cargo.toml's rust-version may not pass it) and runs, under qemu-aarch64,
# every test target of the workspace as on x86_64, in the dev profile (debug assertions on):
# unit and property tests (the NEON unmasking against the scalar reference at every length and
# phase, and asserted to be the one chosen; simdutf8's NEON validator called by name and agreed
# with), the binaries' tests, and the integration suite on the epoll backend (the cluster tests
# included: the root's redis-server is amd64 and runs natively, the ringws nodes under qemu).
# Doc tests are not cross-run.
#
#   tests/aarch64.sh            (as root; from anywhere)
#
# This host's toolchain is x86_64 only and trixie's binaries need a newer glibc than Debian 12,
# so everything runs in a trixie root made with debootstrap under target/aarch64/trixie (or
# $RINGWS_AARCH64_ROOT): made once, reused while its package list is unchanged. Crates come from
# the host's cargo registry (fetched there first), copied into the root: the build inside is
# offline. io_uring is not emulated by qemu-user: its tests are compiled with
# `--cfg ringws_no_uring`, which marks them ignored (they run on x86_64 in the rest of the
# test command), and the server's --io auto falls back to epoll as it would on such a host.
# Tests wait up to RINGWS_TEST_PATIENCE_SECS (60 here) where they wait 5 s natively, and run
# the crate's binaries through RINGWS_TEST_RUNNER (qemu-aarch64).
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
ROOTFS=${RINGWS_AARCH64_ROOT:-$HERE/target/aarch64/trixie}
MIRROR=${RINGWS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PKGS="rustc cargo libstd-rust-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user procps redis-server"
TARGET=aarch64-unknown-linux-gnu
say() { printf '[aarch64] %s\n' "$*"; }
die() { printf '[aarch64] ERROR: %s\n' "$*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "debootstrap and chroot need root"
[ "$(uname -m)" = x86_64 ] || die "this script cross-builds from an x86_64 host"

# ------------------------------------------------------------------ the trixie root (cached)
if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q debootstrap >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; }
fi
if [ ! -f "$ROOTFS/.ringws-root" ]; then
    # Never delete through a mount left by an interrupted run.
    if grep -q " $ROOTFS/" /proc/mounts; then
        die "$ROOTFS has something mounted in it; unmount it first"
    fi
    rm -rf "$ROOTFS"
    mkdir -p "$(dirname "$ROOTFS")"
    say "debootstrap trixie (minbase, amd64) into $ROOTFS"
    debootstrap --variant=minbase --arch=amd64 trixie "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 \
        || { tail -20 "$ROOTFS.log" >&2; die "debootstrap failed (log: $ROOTFS.log)"; }
    cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
    chroot "$ROOTFS" dpkg --add-architecture arm64
    touch "$ROOTFS/.ringws-root"
fi
if [ "$(cat "$ROOTFS/.ringws-ready" 2>/dev/null)" != "$PKGS" ]; then
    say "installing $PKGS in the root"
    chroot "$ROOTFS" /bin/sh -c "apt-get update -q \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PKGS" \
        >>"$ROOTFS.log" 2>&1 \
        || { tail -20 "$ROOTFS.log" >&2; die "apt-get in the root failed (log: $ROOTFS.log)"; }
    echo "$PKGS" >"$ROOTFS/.ringws-ready"
fi
say "$(chroot "$ROOTFS" rustc --version), $(chroot "$ROOTFS" qemu-aarch64 --version | head -1)"

# ------------------------------------------------------------------ sources and crates
say "fetching the locked crates on the host, copying them and the sources into the root"
(cd "$HERE" && cargo fetch --locked >/dev/null)
CARGO_REG=${CARGO_HOME:-$HOME/.cargo}/registry
mkdir -p "$ROOTFS/root/.cargo/registry"
for d in index cache; do
    rm -rf "${ROOTFS:?}/root/.cargo/registry/$d"
    cp -a "$CARGO_REG/$d" "$ROOTFS/root/.cargo/registry/$d"
done
SRC=$ROOTFS/work/ringws
mkdir -p "$SRC"
# The project's files (tracked ones in a git checkout), never target/.
(cd "$HERE" && if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # One tar reading the list (xargs would split a long list into several archives, and the
    # extracting tar stops at the end of the first).
    git ls-files -z --cached --others --exclude-standard | tar cf - --null -T -
else
    tar cf - --exclude=./target --exclude=./fuzz/target .
fi) | (cd "$SRC" && tar xf -)

mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
trap 'umount "$ROOTFS/proc" 2>/dev/null || true' EXIT

# ------------------------------------------------------------------ build and test inside
RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
run_in_root() {
    chroot "$ROOTFS" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$RUNNER" \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="--cfg ringws_no_uring" \
        RINGWS_TEST_RUNNER="$RUNNER" RINGWS_TEST_PATIENCE_SECS=60 RINGWS_TEST_IO=epoll \
        RINGWS_REQUIRE_REDIS=1 CARGO_PROFILE_DEV_OPT_LEVEL=2 \
        /bin/sh -c "cd /work/ringws && $*"
}
# The dev profile: debug assertions on, as on x86_64 (optimised, CARGO_PROFILE_DEV_OPT_LEVEL=2
# above, or emulation would take too long).
COMMON="--offline --locked --target $TARGET"
say "cross-building with the root's Rust: the MSRV check"
run_in_root cargo build $COMMON --workspace --lib --bins --tests
say "every test target (unit, property, binaries, integration; not doc tests) under qemu-aarch64, epoll backend"
run_in_root cargo test $COMMON --workspace --lib --bins --tests
say "aarch64: all tests passed"
