#!/usr/bin/env bash
# The soak: one ringws chat server under steady traffic and churn for a given time, its memory
# and descriptors sampled every 10 s, every steady delivery checked. Loopback only; bounded in
# connections and time.
#
#   benches/soak.sh [--minutes M] [--clients N] [--rate R] [--out DIR] [--max-slope KIB] [--no-build]
#
# With N clients (2,000 by default):
#   - steady: two fifths in rooms a0..a9 (plain) and two fifths in b0..b9 (permessage-deflate),
#     each group with 10 publishers sending R messages a second in all (200 by default); each
#     `ringws-load broadcast --strict --every 10`: every delivery checked (none lost,
#     duplicated or reordered among these connections, which stay connected), latency per 10 s;
#   - churn: a fifth reconnecting: two loops, each holding a tenth of N in rooms c0..c9 for 2 to
#     6 s, then ending them, one loop with the close handshake, the other by RST;
#   - silent: 8 members of a0 that never read (what is sent to them waits in the kernel and
#     their queues until the heartbeat closes them; a member is opened again once its socket
#     says so, which an orphaned socket with unread data can put off for minutes).
# The server: `ringws --mode chat` (both workers, rate limits off, heartbeat every 5 s).
# Samples: the server's RSS and open descriptors every 10 s. At the end benches/soak.py writes
# DIR/soak.csv and DIR/soak.svg (RSS and p99 over time), prints the summary, and fails on any
# lost, duplicated or reordered steady message, a failed churn cycle, or an RSS slope after the
# warm-up (a fifth of the run, at least 60 s: the allocator's pools grow for the first minute)
# above --max-slope KiB/min (1024 by default: a short run's slope is mostly noise; the
# 60-minute run's figure is what to judge).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MINUTES=2
CLIENTS=2000
RATE=200
OUT=
MAX_SLOPE=1024
BUILD=1
usage() { echo "usage: $0 [--minutes M] [--clients N] [--rate R] [--out DIR] [--max-slope KIB] [--no-build]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --max-slope) MAX_SLOPE=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) usage ;;
    esac
done
[[ "$MINUTES" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "--minutes $MINUTES: a number of minutes" >&2; exit 2; }
[[ "$CLIENTS" =~ ^[0-9]+$ ]] && [ "$CLIENTS" -ge 100 ] && [ "$CLIENTS" -le 15000 ] \
    || { echo "--clients $CLIENTS: 100 to 15,000 (this host's open-files limit)" >&2; exit 2; }
[[ "$RATE" =~ ^[0-9]+$ ]] && [ "$RATE" -ge 1 ] || { echo "--rate $RATE: a whole number of messages a second" >&2; exit 2; }
OUT=${OUT:-$ROOT/target/soak/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
[ "$BUILD" = 1 ] && (cd "$ROOT" && cargo build --release --locked -p ringws -p ringws-load --bins)
RINGWS=$ROOT/target/release/ringws
LOAD=$ROOT/target/release/ringws-load
say() { printf '[soak] %s\n' "$*"; }

SECS=$(python3 -c "print(int(float('$MINUTES') * 60))")
WARMUP=$(( SECS / 5 > 60 ? SECS / 5 : 60 ))
STEADY=$(( CLIENTS * 2 / 5 ))          # per steady group, publishers included
PUBLISHERS=10
CHURN=$(( CLIENTS / 10 ))              # per churn loop
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="ws://127.0.0.1:$PORT/"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT

say "$CLIENTS clients for $MINUTES min against ringws on $URL; results in $OUT"
"$RINGWS" --mode chat --listen "127.0.0.1:$PORT" --send-rate 0 --join-rate 0 \
    --ping-interval 5s --log-format json 2>"$OUT/server.log" &
SERVER=$!
for _ in $(seq 100); do
    curl -s --max-time 1 "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$OUT/server.log" >&2; exit 1; }
    sleep 0.1
done

# Samples every 10 s: unix time, RSS (KiB), open descriptors, churn cycles done, alive.
# Each count is made so that it cannot fail: under `set -e -o pipefail` a `cat` of churn files
# not made yet (the first sample comes before the churn loops start) ended the sampler at its
# first sample, and a 2-minute run had one sample, its last.
fds_of() { ls "/proc/$1/fd" 2>/dev/null | wc -l || true; }
churn_cycles() { cat "$OUT"/churn-*.jsonl 2>/dev/null | wc -l || true; }
sample() { # prints one CSV line; exit status 1 once the server is gone
    local alive=1 rss
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER/status" 2>/dev/null) || alive=0
    echo "$(date +%s.%N),${rss:-0},$(fds_of "$SERVER"),$(churn_cycles),$alive"
    [ "$alive" = 1 ]
}
echo "unix,rss_kib,fds,churn_cycles,alive" >"$OUT/samples.csv"
(
    while sample >>"$OUT/samples.csv"; do
        sleep 10
    done
) &
pids+=($!)

steady() { # NAME PREFIX EXTRA...
    local name=$1 prefix=$2
    shift 2
    "$LOAD" broadcast --url "$URL" -c $((STEADY - PUBLISHERS)) --publishers "$PUBLISHERS" \
        --rooms 10 --room-prefix "$prefix" --rate "$RATE" -w 5 -d $((SECS - 5)) --drain 10 \
        --every 10 --strict --json --quiet --server-pid "$SERVER" --connect-timeout 60 "$@" \
        >"$OUT/steady-$name.json" 2>"$OUT/steady-$name.log" || true
}
steady plain a &
A=$!
steady deflate b --compress &
B=$!

churn() { # NAME EXTRA...
    local name=$1
    shift
    local end=$(( $(date +%s) + SECS ))
    while [ "$(date +%s)" -lt "$end" ]; do
        "$LOAD" idle --url "$URL" -c "$CHURN" --rooms 10 --room-prefix c \
            -d "$(( 2 + RANDOM % 5 ))" --json --quiet --connect-timeout 30 "$@" \
            >>"$OUT/churn-$name.jsonl" 2>>"$OUT/churn-$name.log" || true
    done
}
churn close &
pids+=($!)
churn reset --abort &
pids+=($!)
python3 "$ROOT/benches/silent.py" 127.0.0.1 "$PORT" a0 8 >"$OUT/silent.out" 2>"$OUT/silent.log" &
SILENT=$!

wait "$A" || true
wait "$B" || true
kill "$SILENT" 2>/dev/null || true
wait "$SILENT" 2>/dev/null || true
for p in "${pids[@]:1}"; do wait "$p" 2>/dev/null || true; done
# The sampler must still be running (it stops early only when the server is gone); then one
# last sample, and stop it.
if ! kill -0 "${pids[0]}" 2>/dev/null; then
    say "the sampler stopped before the end (the server gone?)"
    sampler_died=1
fi
kill "${pids[0]}" 2>/dev/null || true
wait "${pids[0]}" 2>/dev/null || true
sample >>"$OUT/samples.csv" || true
pids=()
say "silent members opened: $(cat "$OUT/silent.out" 2>/dev/null || echo '?')"
curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics-end.txt" || true
status=${sampler_died:-0}
python3 "$ROOT/benches/soak.py" "$OUT" --warmup "$WARMUP" --max-slope "$MAX_SLOPE" \
    --title "ringws soak: $CLIENTS clients, $MINUTES min ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))" \
    || status=1
kill -TERM "$SERVER" 2>/dev/null || true
wait "$SERVER" || { say "the server's exit code: $?"; status=1; }
SERVER=
grep -q '"level":"ERROR"' "$OUT/server.log" && { say "errors in the server's log:"; grep '"level":"ERROR"' "$OUT/server.log" | head >&2; status=1; }
exit $status
