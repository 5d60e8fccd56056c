#!/usr/bin/env bash
# Runs every test of ringws: formatting, lints, unit/property/integration tests, doc tests, the
# Autobahn conformance suite, the browser test, compile checks of the benchmarks and fuzz
# targets, the Debian package (built, installed, run, purged), and the aarch64 build and tests
# under emulation. Installs what it needs on a fresh
# machine (as root).
# Usage: tests/run-all.sh        (from anywhere; FUZZ_SECONDS=N sets each fuzz target's run,
#                                30 by default; longer runs: see fuzz/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step's header says how long the run has taken so far; the last one lists every step's
# duration (the whole run must stay under 45 minutes: this shows where the time goes).
STEP_NAME=""
STEP_START=$SECONDS
STEP_TIMES=()
step() {
  if [ -n "$STEP_NAME" ]; then
    STEP_TIMES+=("$(printf '%5ds  %s' $((SECONDS - STEP_START)) "${STEP_NAME:0:90}")")
  fi
  STEP_NAME="$*"
  STEP_START=$SECONDS
  printf '\n==> %s  [%dm%02ds]\n' "$*" $((SECONDS / 60)) $((SECONDS % 60))
}

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
# tests/cluster.rs and tests/cluster_history.rs start their own on free loopback ports; here
# its absence is a failure.
export RINGWS_REQUIRE_REDIS=1

step "promtool for the metrics test (Debian's prometheus package, installed when missing)"
if ! command -v promtool >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends prometheus \
    || { apt-get update -q && apt-get install -y -q --no-install-recommends prometheus; }
fi
promtool --version | head -1
promtool check rules tuning/prometheus-alerts.yml
# tests/chat.rs checks a live scrape with `promtool check metrics`; here its absence is a failure.
export RINGWS_REQUIRE_PROMTOOL=1

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

step "Autobahn|Testsuite at the default limits, every case but 9.x on both backends at once: io_uring with shared compression, epoll with dedicated compression (all 216 permessage-deflate cases each; diffed with expected-defaults.json)"
# autobahn_both NAME "URING ENV" "EPOLL ENV" CASES...: tests/autobahn/ci.sh on both backends at
# once (each with its environment, e.g. "RINGWS_IO=uring RINGWS_AUTOBAHN_PORT=65100"); their
# totals shown, their logs whole when one fails.
ab_logs=$(mktemp -d)
autobahn_both() {
  local name=$1 uring_env=$2 epoll_env=$3 status=0 uring epoll
  shift 3
  # The environments are words (NAME=VALUE, no spaces): split on purpose.
  # shellcheck disable=SC2086
  env $uring_env bash tests/autobahn/ci.sh "$@" >"$ab_logs/$name-uring.log" 2>&1 &
  uring=$!
  # shellcheck disable=SC2086
  env $epoll_env bash tests/autobahn/ci.sh "$@" >"$ab_logs/$name-epoll.log" 2>&1 &
  epoll=$!
  wait "$uring" || status=1
  wait "$epoll" || status=$((status + 2))
  grep -H -E "^Totals|^  behavior|selected cases match|differ from|wstest finished|^\[autobahn\] (PASS|FAIL)" \
    "$ab_logs/$name-uring.log" "$ab_logs/$name-epoll.log" || true
  if [ "$status" != 0 ]; then
    cat "$ab_logs/$name-uring.log" "$ab_logs/$name-epoll.log"
    exit 1
  fi
}
autobahn_both defaults \
  "RINGWS_IO=uring RINGWS_COMPRESSION=shared RINGWS_AUTOBAHN_PORT=65100" \
  "RINGWS_IO=epoll RINGWS_COMPRESSION=dedicated RINGWS_AUTOBAHN_PORT=65200" \
  "1.*" "2.*" "3.*" "4.*" "5.*" "6.*" "7.*" "10.*" "12.*" "13.*"

step "Autobahn 9.x (limits and performance) with raised limits (16 MiB messages, 70,000 fragments), both backends"
RINGWS_LIMITS=raised RINGWS_IO=uring bash tests/autobahn/ci.sh "9.*"
RINGWS_LIMITS=raised RINGWS_IO=epoll bash tests/autobahn/ci.sh "9.*"

step "Autobahn over wss:// (TLS in the workers, the test certificate of tests/data/tls): cases 1-7, 9 and 10 with raised limits, both backends at once (diffed with expected-results.json: TLS changes no outcome)"
autobahn_both tls \
  "RINGWS_TLS=1 RINGWS_LIMITS=raised RINGWS_IO=uring RINGWS_AUTOBAHN_PORT=65300" \
  "RINGWS_TLS=1 RINGWS_LIMITS=raised RINGWS_IO=epoll RINGWS_AUTOBAHN_PORT=65350" \
  "1.*" "2.*" "3.*" "4.*" "5.*" "6.*" "7.*" "9.*" "10.*"

step "ringws.js on its own: heartbeat from the welcome, reconnection, the send queue's bound (Node's test runner)"
if ! command -v node >/dev/null; then
  apt-get install -y -q nodejs || { apt-get update -q && apt-get install -y -q nodejs; }
fi
node --test tests/browser/ringws.test.mjs

step "the chat page in Debian's chromium, driven by Playwright (installs both when missing)"
bash tests/browser/run.sh

step "tuning/check against fake /proc trees"
bash tests/tuning/check_test.sh

step "benchmarks compile"
cargo bench --workspace --no-run --locked

step "the Debian package: cargo deb (installed when missing), dpkg -i here, systemd-analyze verify, the installed binary serves /healthz, dpkg --purge"
bash tests/package.sh

step "a 2-minute soak: 2,000 chat clients (steady, compressed, churning with close and RST, never reading); fails on a lost, duplicated or reordered message, a failed churn cycle or RSS growth after the warm-up"
bash tests/soak_verdict.sh
bash benches/soak.sh --minutes 2 --out "$(mktemp -d)"

step "fuzzing: each target for ${FUZZ_SECONDS:=30} s from the committed corpus (nightly and cargo-fuzz installed when missing; the corpora and past failures are replayed on stable by cargo test)"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
fuzz_work=$(mktemp -d)
for target in connection frame inflate handshake; do
  # A copy of the corpus: what the run adds stays out of the checkout.
  cp -r "fuzz/corpus/$target" "$fuzz_work/$target"
  dict=()
  [ "$target" = handshake ] && dict=(-dict=handshake.dict)
  (cd fuzz && cargo +nightly fuzz run "$target" -O "$fuzz_work/$target" -- \
    -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 "${dict[@]}" 2>"$fuzz_work/$target.log") \
    || { tail -n 40 "$fuzz_work/$target.log"; exit 1; }
  grep -h "stat::number_of_executed_units" "$fuzz_work/$target.log" | sed "s/^/$target: /"
done
rm -rf "$fuzz_work"

step "aarch64: cross-built with Debian trixie's Rust 1.85 (the MSRV), tests under qemu-aarch64 (installs what it needs)"
bash tests/aarch64.sh

step "all tests passed"
printf '%s\n' "${STEP_TIMES[@]}"
