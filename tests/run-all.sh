#!/usr/bin/env bash
# Runs every test of ringws: formatting, lints, unit/property/integration tests, doc tests, the
# Autobahn conformance suite, the browser test, compile checks of the benchmarks and fuzz
# targets, and the aarch64 build and tests under emulation. Installs what it needs on a fresh
# machine (as root).
# Usage: tests/run-all.sh        (from anywhere; long fuzzing runs are separate: see fuzz/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (rustup) first" >&2
  exit 1
fi
for component in clippy rustfmt; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done
cargo --version

step "redis-server for the cluster tests (Debian's, installed when missing)"
if ! command -v redis-server >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends redis-server \
    || { apt-get update -q && apt-get install -y -q --no-install-recommends redis-server; }
fi
redis-server --version
# tests/cluster.rs starts its own on free loopback ports; here its absence is a failure.
export RINGWS_REQUIRE_REDIS=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (the workspace, all targets; warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the library alone builds and lints without its default features (no broker, no CLI)"
cargo clippy --locked --lib --no-default-features -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "cargo test (the workspace: unit, property, integration, doc tests; the load tool)"
cargo test --workspace --locked

step "integration tests again on the epoll backend"
RINGWS_TEST_IO=epoll cargo test --workspace --locked --test '*'

step "Autobahn|Testsuite 1-7, 9, 10, 12, 13 against ringws --mode echo --compression shared (diffed with the expected results)"
RINGWS_IO=uring bash tests/autobahn/ci.sh "1.*" "2.*" "3.*" "4.*" "5.*" "6.*" "7.*" "9.*" "10.*" "12.*" "13.*"

step "Autobahn again on the epoll backend (1-10 and a fixed subset of the permessage-deflate cases)"
RINGWS_IO=epoll bash tests/autobahn/ci.sh "1.*" "2.*" "3.*" "4.*" "5.*" "6.*" "7.*" "9.*" "10.*" "12.1.*" "13.7.*"

step "the chat page in Debian's chromium, driven by Playwright (installs both when missing)"
bash tests/browser/run.sh

step "tuning/check against fake /proc trees"
bash tests/tuning/check_test.sh

step "benchmarks compile"
cargo bench --workspace --no-run --locked

step "fuzz targets compile (stable; running them needs cargo-fuzz, see fuzz/README.md)"
cargo check --manifest-path fuzz/Cargo.toml --bins

step "aarch64: cross-built with Debian trixie's Rust 1.85 (the MSRV), tests under qemu-aarch64 (installs what it needs)"
bash tests/aarch64.sh

step "all tests passed"
