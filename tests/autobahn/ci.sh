#!/usr/bin/env bash
# Runs the Autobahn fuzzing client (cases 1-7, 9, 10 by default; give case patterns such as
# "12.*" "13.*" to choose) against `ringws --mode echo --compression shared` and diffs the
# outcomes against the expected results of its limits. Builds the release binary, starts it on
# a free port above 65000 (from RINGWS_AUTOBAHN_PORT, default 65100: two runs at once take
# different bases), stops it by its own PID.
#
#   RINGWS_LIMITS       defaults (the server's default limits: 64 KiB messages, 128 fragments;
#                       diffed with expected-defaults.json) or raised (16 MiB and 70,000
#                       fragments, for the 9.x performance cases; expected-results.json)
#   RINGWS_COMPRESSION  the permessage-deflate mode: off, shared (default), dedicated
#   RINGWS_IO           the backend: auto, uring, epoll
#   RINGWS_TLS          1: the server speaks TLS (the test certificate in tests/data/tls) and
#                       the suite connects to wss:// (diffed against the same expected results:
#                       TLS changes the transport, never a case's outcome)
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --release --locked --bin ringws
port=${RINGWS_AUTOBAHN_PORT:-65100}
case "${RINGWS_LIMITS:-defaults}" in
  defaults) limits=(); expected=tests/autobahn/expected-defaults.json ;;
  raised) limits=(--max-message-bytes 16777216 --max-fragments 70000)
          expected=tests/autobahn/expected-results.json ;;
  *) echo "RINGWS_LIMITS must be defaults or raised" >&2; exit 2 ;;
esac
while (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
tls=() url=$port
if [ "${RINGWS_TLS:-0}" = 1 ]; then
  tls=(--tls-cert tests/data/tls/cert.pem --tls-key tests/data/tls/key.pem)
  url="wss://127.0.0.1:$port/"
fi
log=$(mktemp)
# RINGWS_IO selects the backend (auto, uring, epoll); the run is diffed against the same
# expected results whichever runs.
./target/release/ringws --mode echo --io "${RINGWS_IO:-auto}" --listen "127.0.0.1:$port" \
  "${limits[@]}" "${tls[@]}" --compression "${RINGWS_COMPRESSION:-shared}" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
status=0
bash tests/autobahn/run.sh "$url" "$expected" "$@" || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
  echo "ringws died during the Autobahn run; its log:" >&2
  cat "$log" >&2
  exit 1
fi
# A graceful stop must succeed too.
kill -TERM "$pid"
if ! wait "$pid"; then
  echo "ringws did not exit 0 on SIGTERM; its log:" >&2
  cat "$log" >&2
  exit 1
fi
trap 'rm -f "$log"' EXIT
exit "$status"
