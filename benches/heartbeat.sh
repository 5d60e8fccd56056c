#!/usr/bin/env bash
# The heartbeat scale scenario: one ringws worker holding many idle connections that it pings.
#
#   benches/heartbeat.sh [--hold S] [--conns N] [--clients K] [--ping-interval D]
#                        [--pong-timeout D] [--tick D] [--port P] [--no-build]
#
# Defaults: 19000 connections from 2 load processes (RLIMIT_NOFILE is 20,000 per process,
# hard), --ping-interval 5s, --pong-timeout 5s, the server's default tick (100 ms), a 60 s hold,
# port 65500.
#
# The server (`ringws --mode echo --workers 1`) runs pinned to CPU 0 and the load processes
# (`ringws-load idle`, which answer every ping with a pong and time it) pinned to CPU 1, each in
# its own session with autogroup priority -10 (shared/PEERS.md; the same way as
# benches/compare.sh). When every load process has finished its setup (their --ready-file), the
# script samples the server's CPU time (/proc/PID/task/*/schedstat) and RSS, waits --hold
# seconds, and samples again; the load processes hold a few seconds longer than that, so the
# window never sees a connection close. The server is then stopped by its PID (SIGTERM) and its
# exit status checked.
#
# Output: a Markdown summary on stdout and in target/bench-results/heartbeat-STAMP.md (copied to
# benches/results/heartbeat-latest.md), the load processes' JSON lines in heartbeat-STAMP.jsonl,
# the server log in heartbeat-STAMP-server.log.
# Exit status 1 if anything failed (errors, connections missing, a server that did not stop).
#
# The issue's goal: server CPU under 2 % of one core at 19k connections with a 5 s interval,
# p99 ping lateness at most one tick (100 ms).
set -euo pipefail

HOLD=60
CONNS=19000
CLIENTS=2
PING=5s
PONG=5s
TICK=
PORT=65500
BUILD=1
# The load processes hold this much longer than the measured window (both must be set up before
# it starts; the later one may finish its setup this much after the first).
MARGIN=10
CMDLINE="$0 $*"

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --hold) HOLD=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --ping-interval) PING=$2; shift 2 ;;
        --pong-timeout) PONG=$2; shift 2 ;;
        --tick) TICK=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage ;;
        *) echo "unknown option: $1" >&2; usage ;;
    esac
done
case "$HOLD" in ''|*[!0-9]*) echo "--hold must be whole seconds" >&2; exit 2 ;; esac
if [ "$PORT" -le 65000 ] || [ "$PORT" -gt 65535 ]; then
    echo "--port must be in 65001..65535 (the ephemeral range ends at 65000 or below)" >&2
    exit 2
fi
[ "$CLIENTS" -ge 1 ] || { echo "--clients must be at least 1" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER_BIN=${RINGWS_SERVER_BIN:-$ROOT/target/release/ringws}  # another build to compare with
LOAD=$ROOT/target/release/ringws-load
OUT=$ROOT/target/bench-results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
JSONL=$OUT/heartbeat-$STAMP.jsonl
MD=$OUT/heartbeat-$STAMP.md
LOG=$OUT/heartbeat-$STAMP-server.log
WORK=$(mktemp -d)
mkdir -p "$OUT"
NOTES=()
FAILED=0
note() { echo "note: $*" >&2; NOTES+=("$*"); }

# ------------------------------------------------------------------ build
if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -p ringws-load && cargo build --release --bin ringws)
fi
[ -x "$LOAD" ] && [ -x "$SERVER_BIN" ] || { echo "build ringws and ringws-load first" >&2; exit 1; }

# ------------------------------------------------------------------ file descriptors
# Every process inherits the hard limit as its soft limit (the server raises its own anyway).
HARD=$(ulimit -Hn)
[ "$HARD" = unlimited ] || ulimit -Sn "$HARD"
PER_CLIENT=$(( (CONNS + CLIENTS - 1) / CLIENTS ))
if [ "$HARD" != unlimited ]; then
    if [ $((CONNS + 64)) -gt "$HARD" ]; then
        echo "the server needs $CONNS + a few fds; RLIMIT_NOFILE hard is $HARD" >&2; exit 1
    fi
    if [ $((PER_CLIENT + 16)) -gt "$HARD" ]; then
        echo "$PER_CLIENT connections per load process exceed RLIMIT_NOFILE ($HARD): use more --clients" >&2
        exit 1
    fi
fi
read -r EPH_LO EPH_HI < /proc/sys/net/ipv4/ip_local_port_range
if [ $((EPH_HI - EPH_LO + 1)) -lt "$CONNS" ]; then
    echo "$CONNS connections need more ephemeral ports than $EPH_LO-$EPH_HI" >&2; exit 1
fi

# ------------------------------------------------------------------ helpers
# Runs "$@" in a new session with autogroup priority -10 (with taskset in front: pinned).
PRIO='echo -10 > /proc/self/autogroup 2>/dev/null; exec "$@"'
listening() { ss -Hltn "sport = :$1" | grep -q .; }
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'; }
rss_bytes() { awk '/^VmRSS:/ {printf "%.0f\n", $2 * 1024}' /proc/"$1"/status; }
now_ns() { date +%s%N; }

SERVER_PID=
CLIENT_PIDS=()
cleanup() {
    local p
    for p in "${CLIENT_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        sleep 1
        kill -9 "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# ------------------------------------------------------------------ server
if listening "$PORT"; then
    echo "port $PORT is already in use" >&2; exit 1
fi
SERVER_CMD=("$SERVER_BIN" --mode echo --workers 1 --listen "127.0.0.1:$PORT"
            --ping-interval "$PING" --pong-timeout "$PONG")
[ -z "$TICK" ] || SERVER_CMD+=(--tick "$TICK")
# Not a process-group leader here, so setsid execs in place and $! is the server's PID.
setsid taskset -c 0 sh -c "$PRIO" sh "${SERVER_CMD[@]}" >"$LOG" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server exited at start (see $LOG)" >&2; SERVER_PID=; exit 1; }
    listening "$PORT" && break
    sleep 0.1
done
listening "$PORT" || { echo "the server does not listen on $PORT (see $LOG)" >&2; exit 1; }
sleep 0.5
RSS_START=$(rss_bytes "$SERVER_PID")
SERVER_FDS_SOFT=$(awk '/Max open files/ {print $4}' /proc/"$SERVER_PID"/limits)

# ------------------------------------------------------------------ load
LOAD_HOLD=$((HOLD + MARGIN))
echo "heartbeat: $CONNS connections from $CLIENTS processes, ping every $PING, hold ${HOLD} s (server PID $SERVER_PID)" >&2
LEFT=$CONNS
for k in $(seq "$CLIENTS"); do
    n=$(( LEFT / (CLIENTS - k + 1) ))
    LEFT=$((LEFT - n))
    setsid taskset -c 1 sh -c "$PRIO" sh "$LOAD" idle -c "$n" --hold "$LOAD_HOLD" \
        --ping-interval "$PING" --addr "127.0.0.1:$PORT" --json --quiet \
        --connect-timeout 60 --ready-file "$WORK/ready-$k" \
        --label ringws --scenario "heartbeat $CONNS idle, ping $PING" \
        >"$WORK/out-$k.json" 2>"$WORK/err-$k.log" &
    CLIENT_PIDS+=($!)
done

# Wait until every load process is set up (or has exited).
T_START=$(now_ns)
while :; do
    ready=0
    for k in $(seq "$CLIENTS"); do
        if [ -e "$WORK/ready-$k" ] || ! kill -0 "${CLIENT_PIDS[$((k - 1))]}" 2>/dev/null; then
            ready=$((ready + 1))
        fi
    done
    [ "$ready" -lt "$CLIENTS" ] || break
    if [ $(( ($(now_ns) - T_START) / 1000000000 )) -gt $((60 + MARGIN)) ]; then
        note "the setup did not finish in time"; FAILED=1; break
    fi
    sleep 0.05
done
T_READY=$(now_ns)
SETUP_SPREAD_MS=$(( (T_READY - T_START) / 1000000 ))
ESTABLISHED_READY=0
for k in $(seq "$CLIENTS"); do
    if [ -e "$WORK/ready-$k" ]; then
        ESTABLISHED_READY=$((ESTABLISHED_READY + $(cat "$WORK/ready-$k")))
    fi
done

# ------------------------------------------------------------------ the window
CPU0=$(cpu_ns "$SERVER_PID"); W0=$(now_ns)
RSS_READY=$(rss_bytes "$SERVER_PID")
sleep "$HOLD"
CPU1=$(cpu_ns "$SERVER_PID"); W1=$(now_ns)
RSS_END=$(rss_bytes "$SERVER_PID")
for p in "${CLIENT_PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null || { note "a load process ended before the window did"; FAILED=1; break; }
done

# ------------------------------------------------------------------ collect
for k in $(seq "$CLIENTS"); do
    if ! wait "${CLIENT_PIDS[$((k - 1))]}"; then
        note "load process $k exited non-zero (errors, or nothing established; see its JSON line)"
        FAILED=1
    fi
    if [ -s "$WORK/out-$k.json" ]; then
        cat "$WORK/out-$k.json" >>"$JSONL"
    else
        note "load process $k wrote no result: $(tail -n 3 "$WORK/err-$k.log" | tr '\n' ' ')"
        FAILED=1
    fi
done
CLIENT_PIDS=()

# ------------------------------------------------------------------ stop the server
kill -TERM "$SERVER_PID"
SERVER_RC=
for _ in $(seq 150); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$SERVER_PID" 2>/dev/null; then
    note "the server did not stop within 15 s of SIGTERM: killed"
    kill -9 "$SERVER_PID" 2>/dev/null || true
    FAILED=1
fi
SERVER_RC=0
wait "$SERVER_PID" || SERVER_RC=$?
SERVER_PID=
[ "$SERVER_RC" = 0 ] || { note "the server exited with status $SERVER_RC"; FAILED=1; }
for _ in $(seq 20); do listening "$PORT" || break; sleep 0.1; done
if listening "$PORT"; then note "port $PORT still in use after the server stopped"; FAILED=1; fi

# ------------------------------------------------------------------ summary
[ -s "$JSONL" ] || { echo "no results" >&2; exit 1; }
# Everything the summary needs from the load processes' lines, combined.
AGG=$(jq -s '
    def rank(h; q): (h | map(.[1]) | add) as $n
        | (if $n == 0 then null else
            ((q * $n) | ceil | if . < 1 then 1 else . end) as $r
            | reduce h[] as $b ({acc: 0, v: null};
                if .v == null and .acc + $b[1] >= $r then .v = $b[0] else . end
                | .acc += $b[1]) | .v end);
    (map(.ping_lateness_hist_ms) | add // []
        | group_by(.[0]) | map([.[0][0], (map(.[1]) | add)])) as $h
    | {
        established: (map(.established) | add),
        open_at_end: (map(.open_at_end) | add),
        setup_secs: (map(.setup_secs) | max),
        hold_secs: (map(.window_secs) | min),
        pings: (map(.pings) | add),
        pings_per_sec: (map(.pings_per_sec) | add),
        errors: (map(.errors.total) | add),
        closed: (map(.errors.closed) | add),
        notes: (map(.notes[]) | .[:4]),
        p50_ms: rank($h; 0.5), p99_ms: rank($h; 0.99),
        max_ms: (map(.ping_lateness_ms.max) | max),
        min_ms: (map(.ping_lateness_ms.min) | min),
        per_client: map({established, setup: .setup_secs, p50: .ping_lateness_ms.p50,
                         p99: .ping_lateness_ms.p99, max: .ping_lateness_ms.max,
                         pings})
    }' "$JSONL")
get() { jq -r "$1" <<<"$AGG"; }
ESTABLISHED=$(get .established)
ERRORS=$(get .errors)
[ "$ESTABLISHED" = "$CONNS" ] || { note "$ESTABLISHED of $CONNS connections established"; FAILED=1; }
[ "$ERRORS" = 0 ] || FAILED=1

WINDOW_S=$(awk -v a="$W0" -v b="$W1" 'BEGIN {printf "%.2f", (b - a) / 1e9}')
CPU_PCT=$(awk -v c0="$CPU0" -v c1="$CPU1" -v a="$W0" -v b="$W1" \
    'BEGIN {printf "%.2f", (c1 - c0) / (b - a) * 100}')
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
PER_CONN=$(awk -v a="$RSS_START" -v b="$RSS_END" -v n="$ESTABLISHED" \
    'BEGIN {if (n > 0) printf "%.0f", (b - a) / n; else print "n/a"}')
RATE=$(awk -v n="$ESTABLISHED" -v s="$(get .setup_secs)" 'BEGIN {if (s > 0) printf "%.0f", n / s; else print "n/a"}')
T=${TICK:-100ms}
case "$T" in
    *ms) TICK_MS=${T%ms} ;;
    *s) TICK_MS=$(( ${T%s} * 1000 )) ;;
    *) TICK_MS=$T ;;
esac
verdict() { awk -v v="$1" -v lim="$2" 'BEGIN {print ((v + 0 <= lim + 0) ? "met" : "NOT met")}'; }
CPU_OK=$(verdict "$CPU_PCT" 2)
P99_OK=$(verdict "$(get .p99_ms)" "$TICK_MS")

{
    echo "## ringws heartbeat at scale, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- kernel $(uname -r), CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- command: \`$CMDLINE\`"
    echo "- server: \`ringws --mode echo --workers 1 --ping-interval $PING --pong-timeout $PONG${TICK:+ --tick $TICK}\` on CPU 0 (soft RLIMIT_NOFILE $SERVER_FDS_SOFT); $CLIENTS \`ringws-load idle\` processes on CPU 1; autogroup -10 each"
    echo "- window: ${WINDOW_S} s, from the end of the last setup ($(awk -v m="$SETUP_SPREAD_MS" 'BEGIN {printf "%.1f", m / 1000}') s after the start); the load processes hold ${LOAD_HOLD} s each after their own setup, and measure ping lateness over that"
    echo "- lateness = time from the connection's last send (handshake end or previous pong) to the ping's arrival, minus $PING; p50/p99 combined over the processes at 1 ms resolution (bucket floor), max exact"
    echo "- raw results: target/bench-results/$(basename "$JSONL")"
    for n in "${NOTES[@]}"; do echo "- $n"; done
    echo
    echo "| figure | value |"
    echo "|---|---|"
    echo "| connections established | $ESTABLISHED of $CONNS ($ESTABLISHED_READY when the window opened, $(get .open_at_end) open at the end) |"
    echo "| setup | $(get .setup_secs | xargs printf '%.2f') s, $RATE conn/s |"
    echo "| server RSS | $(mib "$RSS_START") at start, $(mib "$RSS_READY") after setup, $(mib "$RSS_END") at the end |"
    echo "| server RSS per connection | $PER_CONN B |"
    echo "| server CPU over the window | **$CPU_PCT % of one core** (goal < 2 %: $CPU_OK) |"
    echo "| ping lateness p50 / p99 / max | $(get .p50_ms) / **$(get .p99_ms)** / $(get .max_ms) ms (min $(get .min_ms) ms; goal p99 ≤ $TICK_MS ms: $P99_OK) |"
    echo "| pings | $(get .pings) received and answered, $(get .pings_per_sec | xargs printf '%.0f')/s |"
    echo "| errors | $ERRORS (closed by the server: $(get .closed)) |"
    echo "| server exit | status $SERVER_RC after SIGTERM |"
    echo
    echo "Per load process: $(jq -r '.per_client | map("\(.established) conns, setup \(.setup * 100 | round / 100) s, \(.pings) pings, lateness p50 \(.p50) / p99 \(.p99) / max \(.max) ms") | join("; ")' <<<"$AGG")"
    if [ "$(get '.notes | length')" != 0 ]; then
        echo
        echo "Errors reported: $(get '.notes | join("; ")')"
    fi
} | tee "$MD"
cp "$MD" "$ROOT/benches/results/heartbeat-latest.md"
exit "$FAILED"
