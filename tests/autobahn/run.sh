#!/usr/bin/env bash
# Run the Autobahn|Testsuite fuzzing client against a running WebSocket server and
# compare the outcome of every case with a committed expected-results file.
#
#   tests/autobahn/run.sh [--write-expected] URL_OR_PORT EXPECTED_JSON [CASES...]
#
#   URL_OR_PORT    a port (-> ws://127.0.0.1:PORT/) or a ws:// or wss:// URL (wss: the
#                  server's certificate is not verified: a test certificate)
#   EXPECTED_JSON  {"1.1.1": {"behavior": "OK", "behaviorClose": "OK"}, ...}
#   CASES          wstest case patterns; default: 1.* 2.* 3.* 4.* 5.* 6.* 7.* 9.* 10.*
#
# Exit status: 0 when every selected case has its expected outcome; non-zero on any
# difference, on an incomplete run (server died: wstest still exits 0 then), or on error.
#
# Environment:
#   AUTOBAHN_WRITE_EXPECTED=1  (or --write-expected) write/update EXPECTED_JSON from this
#                              run instead of comparing (only the selected cases change)
#   AUTOBAHN_HOME              install cache (see install.sh); installed on demand
#   AUTOBAHN_OUTDIR            report dir (default: a new mktemp -d dir); kept afterwards
#   AUTOBAHN_AGENT             agent name in the reports (default: ringws)
#   AUTOBAHN_EXCLUDE           space-separated case patterns to exclude (default: none)
#   AUTOBAHN_CONNECT_WAIT      seconds to wait for the server to answer a handshake (30)
#   AUTOBAHN_STALL_TIMEOUT     kill wstest when no new case starts for this long (300)
#   AUTOBAHN_VERBOSE=1         echo every wstest output line
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
say() { printf '[autobahn] %s\n' "$*"; }
die() { printf '[autobahn] ERROR: %s\n' "$*" >&2; exit 2; }
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

WRITE_EXPECTED="${AUTOBAHN_WRITE_EXPECTED:-0}"
while (($#)) && [[ "$1" == -* ]]; do
  case "$1" in
    --write-expected) WRITE_EXPECTED=1 ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) say "unknown option $1"; usage 2 ;;
  esac
  shift
done
(($# >= 2)) || usage 2
TARGET="$1" EXPECTED="$2"
shift 2
if (($#)); then CASES=("$@"); else CASES=("1.*" "2.*" "3.*" "4.*" "5.*" "6.*" "7.*" "9.*" "10.*"); fi
read -r -a EXCLUDE <<<"${AUTOBAHN_EXCLUDE:-}" || true
AGENT="${AUTOBAHN_AGENT:-ringws}"
STALL_TIMEOUT="${AUTOBAHN_STALL_TIMEOUT:-300}"

if [[ "$TARGET" =~ ^[0-9]+$ ]]; then
  URL="ws://127.0.0.1:$TARGET/"
elif [[ "$TARGET" == ws://* || "$TARGET" == wss://* ]]; then
  URL="$TARGET"
else
  die "URL_OR_PORT must be a port number or a ws:// or wss:// URL, got '$TARGET'"
fi
EXPECTED="$(cd "$(dirname "$EXPECTED")" 2>/dev/null && pwd -P)/$(basename "$EXPECTED")" \
  || die "directory of EXPECTED_JSON '$2' does not exist"
if [[ "$WRITE_EXPECTED" != 1 && ! -f "$EXPECTED" ]]; then
  die "expected-results file $EXPECTED not found (create it with AUTOBAHN_WRITE_EXPECTED=1)"
fi

# Install on demand (a quick no-op when already installed).
bash "$HERE/install.sh" || die "installing the Autobahn|Testsuite failed"
AUTOBAHN_HOME="$(cd "${AUTOBAHN_HOME:-$HOME/.cache/ringws-autobahn}" && pwd -P)"
WSTEST="$AUTOBAHN_HOME/bin/wstest"
[[ -x "$WSTEST" ]] || die "$WSTEST missing after install"

PY3="$(command -v python3 || echo /usr/bin/python3)"
OUTDIR="${AUTOBAHN_OUTDIR:-$(mktemp -d "${TMPDIR:-/tmp}/ringws-autobahn.XXXXXX")}"
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd -P)"
rm -f "$OUTDIR/index.json" "$OUTDIR/results.txt"
LOG="$OUTDIR/wstest.log"
"$PY3" - "$OUTDIR" "$AGENT" "$URL" "${#CASES[@]}" "${CASES[@]}" "${EXCLUDE[@]}" \
    >"$OUTDIR/spec.json" <<'EOF'
import json, sys
outdir, agent, url, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rest = sys.argv[5:]
json.dump({"outdir": outdir, "servers": [{"agent": agent, "url": url}],
           "cases": rest[:n], "exclude-cases": rest[n:]}, sys.stdout, indent=2)
EOF
say "server $URL, cases: ${CASES[*]}${EXCLUDE[*]:+, excluding: ${EXCLUDE[*]}}"
say "reports in $OUTDIR"

# Wait until the server completes a WebSocket opening handshake (then close cleanly).
"$PY3" - "$URL" "${AUTOBAHN_CONNECT_WAIT:-30}" <<'EOF' || die "no WebSocket server answering at $URL"
import base64, os, socket, ssl, sys, time, urllib.parse
url, wait = urllib.parse.urlsplit(sys.argv[1]), float(sys.argv[2])
host, port = url.hostname, url.port or (443 if url.scheme == "wss" else 80)
deadline, err = time.monotonic() + wait, None
tls = ssl._create_unverified_context() if url.scheme == "wss" else None
while True:
    try:
        raw = socket.create_connection((host, port), timeout=5)
        with (tls.wrap_socket(raw, server_hostname=host) if tls else raw) as s:
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n"
                       % (url.path or "/", url.netloc, key)).encode())
            resp = b""
            while b"\r\n\r\n" not in resp:
                chunk = s.recv(4096)
                if not chunk:
                    break
                resp += chunk
            status = resp.split(b"\r\n", 1)[0].decode("latin-1")
            if " 101 " in status + " ":
                s.sendall(b"\x88\x82\x00\x00\x00\x00\x03\xe8")  # masked close 1000
                s.settimeout(2)
                try:
                    while s.recv(4096):
                        pass
                except OSError:
                    pass
                sys.exit(0)
            err = "handshake answered %r" % status
    except OSError as e:
        err = str(e)
    if time.monotonic() >= deadline:
        sys.stderr.write("[autobahn] %s: %s\n" % (sys.argv[1], err))
        sys.exit(1)
    time.sleep(0.25)
EOF

# Run wstest in the background, show progress per case group, and kill it if it stalls.
say "running wstest -m fuzzingclient"
START=$SECONDS
: >"$LOG"
(cd "$OUTDIR" && PYTHONUNBUFFERED=1 exec "$WSTEST" -m fuzzingclient -s "$OUTDIR/spec.json") \
  >"$LOG" 2>&1 &
WPID=$!
trap 'kill "$WPID" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
seen=0 group="" last_progress=$SECONDS stalled=0 announced=""
while :; do
  alive=1
  kill -0 "$WPID" 2>/dev/null || alive=0
  while IFS= read -r line; do
    seen=$((seen + 1))
    [[ "${AUTOBAHN_VERBOSE:-0}" == 1 ]] && printf '  | %s\n' "$line"
    if [[ "$line" =~ ^Ok,\ will\ run\ ([0-9]+)\ test\ cases ]]; then
      announced="${BASH_REMATCH[1]}"
      say "wstest will run $announced cases"
    elif [[ "$line" =~ ^Running\ test\ case\ ID\ ([0-9]+)\.([^ ]*) ]]; then
      last_progress=$SECONDS
      if [[ "${BASH_REMATCH[1]}" != "$group" ]]; then
        group="${BASH_REMATCH[1]}"
        say "  [$((SECONDS - START))s] cases $group.* (from $group.${BASH_REMATCH[2]})"
      fi
    elif [[ "$line" == *Traceback* || "$line" == Connection\ to\ *\ failed* ]]; then
      [[ "${AUTOBAHN_VERBOSE:-0}" == 1 ]] || printf '  | %s\n' "$line"
    fi
  done < <(tail -n "+$((seen + 1))" "$LOG")
  ((alive)) || break
  if ((SECONDS - last_progress > STALL_TIMEOUT)); then
    stalled=1
    say "no new case started for ${STALL_TIMEOUT}s (server hung?): killing wstest"
    kill "$WPID" 2>/dev/null || true
  fi
  sleep 1
done
rc=0
wait "$WPID" || rc=$?
trap - EXIT
say "wstest finished in $((SECONDS - START))s (exit $rc)"
if ((stalled)); then
  tail -n 20 "$LOG" | sed 's/^/  | /' >&2
  die "wstest stalled; full log: $LOG"
fi
if ((rc != 0)); then
  tail -n 30 "$LOG" | sed 's/^/  | /' >&2
  die "wstest exited with status $rc; full log: $LOG"
fi
[[ -n "$announced" ]] || die "wstest did not announce how many cases it would run; see $LOG"
((announced > 0)) || die "the case patterns (${CASES[*]}) select no cases"
[[ -f "$OUTDIR/index.json" ]] || die "wstest wrote no $OUTDIR/index.json; see $LOG"

COMPARE=("$PY3" "$HERE/compare.py" --index "$OUTDIR/index.json" --expected "$EXPECTED"
         --agent "$AGENT" --announced "$announced" --results "$OUTDIR/results.txt"
         --cases "${CASES[@]}" --exclude "${EXCLUDE[@]}")
[[ "$WRITE_EXPECTED" == 1 ]] && COMPARE+=(--write-expected)
status=0
"${COMPARE[@]}" || status=$?
say "per-case results: $OUTDIR/results.txt; HTML report: $OUTDIR/index.html"
if ((status == 0)); then
  say "PASS"
else
  say "FAIL (compare.py exit $status)"
fi
exit "$status"
