#!/usr/bin/env bash
# Broadcast (pub/sub) benchmark: ringws's chat mode against uWebSockets.js and Bun pub/sub, on
# this machine, interleaved (A B C, C B A, A B C ...), with ratios against ringws.
#
#   benches/broadcast.sh [--reps N] [--window S] [--warmup S] [--drain S]
#                        [--servers "ringws floor uws-cpp uws bun"] [--scenarios "1k 10k"]
#                        [--rate-1k N] [--rate-10k N] [--workers N] [--pin]
#                        [--port BASE] [--no-build] [--results NAME]
#
# A/B of a change: --servers "ringws ringws-base" with RINGWS_BASE_BIN naming another ringws
# build (e.g. one from before the change, built in a git worktree): both run the same scenarios,
# interleaved, and the table gives the change's ratios.
#
# Servers: ringws (target/release/ringws --mode chat --workers N, 2 by default: every core),
# uws (benches/peers-js/uws-chat.js: uWebSockets.js 20.30, ws.subscribe / app.publish), bun
# (benches/peers-js/bun-chat.js: Bun 1.4.5, ws.subscribe / server.publish), uws-cpp
# (benches/peers-cpp/uws-chat.cpp: the same protocol on uWebSockets C++ itself, built by
# install_uws_cpp in benches/lib.sh from ../shared/peers/uwebsockets.tar.gz or UWS_CPP_DIR;
# skipped with a note when there is neither; single-threaded, as the JS peers), floor (the
# fan-out floor: `ringws-floor --fanout`, ringws's own I/O loop writing each publication as one
# shared frame to every member, with no WebSocket work per subscriber: the limit of the method;
# single-threaded, so compare it with ringws under --pin --workers 1). The JS peers come
# from the npm registry and are installed by this script when missing, as benches/compare.sh
# does; a JS server whose install fails is skipped with a note. All four speak the ringws chat
# protocol's join/send/message subset; the peers' message frames are smaller than ringws's
# (op, room, text, ts against ringws's added from, name, seq, online).
# Scenarios, each one room and one publisher connection publishing at a fixed rate for the
# warm-up and the window (`ringws-load broadcast`, which checks every delivery's sequence and
# times it from the publisher's write to the subscriber's read):
#   1k   1,000 subscribers, --rate-1k publications/s (default 100: 100,000 deliveries/s)
#   10k  10,000 subscribers, --rate-10k publications/s (default 5: 50,000 deliveries/s)
# The default rates load every server without saturating this 2-vCPU VM (2026-12-04): at 1k x
# 100/s ringws used about 0.6 of a core, the single-threaded JS servers 0.75-0.85 of theirs and
# the load tool about 0.6 (each delivery is a read on its own socket); at 10k x 10/s the JS
# servers needed ~0.9 of their core and their median latency passed the 100 ms between
# publications (queueing), hence 5/s. A 10,000-subscriber publication takes tens of ms to fan
# out here (every server writes, and the load tool reads, 10,000 sockets on 2 shared cores):
# the latencies are mostly that fan-out time. Raise the rates on a bigger machine.
#
# CPUs: ringws runs with --workers 2 (all cores) and nothing is pinned, so the server and the
# load tool share both cores, with the kernel scheduling them: on a 2-core machine that is
# unavoidable when the server uses every core. The JS servers are single-threaded for the
# event loop (Bun and Node have helper threads: their CPU time counts too). The figure to
# compare is the server CPU time per delivery (schedstat over all the server's threads, over
# the window); deliveries/s only shows whether a server kept up with the rate. --pin pins the
# server to CPU 0 and the load tool to CPU 1 instead (as benches/compare.sh does; give
# --workers 1 with it for a fair ringws). Each process runs in its own session with autogroup
# priority -10 (see benches/compare.sh). Listeners are on 127.0.0.1 above port 65000, a fresh
# port per run; servers are stopped by their own PID and the port is checked free before and
# after. 10,000 connections fit this machine's RLIMIT_NOFILE of 20,000 in the load process and
# in each server.
#
# Output: a Markdown table (median [min-max] over the reps) on stdout and in
# target/bench-results/broadcast-STAMP.md, the raw JSON lines in broadcast-STAMP.jsonl, server
# logs in broadcast-STAMP-logs/; the table is also copied to benches/results/broadcast-latest.md
# (benches/results/NAME.md with --results NAME: an A/B run keeps the published table).
# Lost messages are counted and shown, not fatal (the load tool's --strict would make them so).
set -euo pipefail

REPS=5
WINDOW=10
WARMUP=2
DRAIN=2
SERVERS="ringws floor uws-cpp uws bun"
SCENARIOS="1k 10k"
RATE_1K=100
RATE_10K=5
WORKERS=2
PIN=0
BUN_VERSION=1.4.5
BASE_PORT=65200
BUILD=1
RESULTS=broadcast-latest
CMDLINE="$0 $*"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS=$2; shift 2 ;;
        --window) WINDOW=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --drain) DRAIN=$2; shift 2 ;;
        --servers) SERVERS=$2; shift 2 ;;
        --scenarios) SCENARIOS=$2; shift 2 ;;
        --rate-1k) RATE_1K=$2; shift 2 ;;
        --rate-10k) RATE_10K=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --pin) PIN=1; shift ;;
        --port) BASE_PORT=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --results) RESULTS=$2; shift 2 ;;
        -h|--help) usage ;;
        *) echo "unknown option: $1" >&2; usage ;;
    esac
done
if [ "$BASE_PORT" -le 65000 ] || [ "$BASE_PORT" -gt 65400 ]; then
    echo "--port must be in 65001..65400 (runs use BASE..BASE+99 and the ephemeral range ends at 65000)" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOAD=$ROOT/target/release/ringws-load
OUT=$ROOT/target/bench-results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
JSONL=$OUT/broadcast-$STAMP.jsonl
MD=$OUT/broadcast-$STAMP.md
JSDIR=$ROOT/benches/peers-js
BUN=$JSDIR/node_modules/.bun/package/bin/bun
NODE=$(command -v node || true)
LOGS=$OUT/broadcast-$STAMP-logs
mkdir -p "$OUT" "$LOGS"
# note, the JS peers' installation, start_server/stop_server, commas.
. "$ROOT/benches/lib.sh"

# ------------------------------------------------------------------ build
if [ "$BUILD" = 1 ]; then
    build_bins
fi
[ -x "$LOAD" ] || { echo "no load tool at $LOAD" >&2; exit 1; }

# ------------------------------------------------------------------ JS peers (npm registry)
install_js_peers uws
install_bun bun
install_uws_cpp uws-cpp

# ------------------------------------------------------------------ servers
server_cmd() { # NAME PORT -> the command, one word per line
    case "$1" in
        ringws) printf '%s\n' "$ROOT/target/release/ringws" --mode chat \
                    --listen "127.0.0.1:$2" --workers "$WORKERS" \
                    $(no_rate_limits "$ROOT/target/release/ringws") ;;
        ringws-base) printf '%s\n' "${RINGWS_BASE_BIN:?RINGWS_BASE_BIN names the build to compare with}" \
                    --mode chat --listen "127.0.0.1:$2" --workers "$WORKERS" \
                    $(no_rate_limits "$RINGWS_BASE_BIN") ;;
        uws) printf '%s\n' "$NODE" "$JSDIR/uws-chat.js" "$2" ;;
        uws-cpp) printf '%s\n' "$UWS_CPP_BIN/uws-chat" "$2" ;;
        # The fan-out floor (benches/floor --fanout): each publication one shared frame written
        # to every member, no WebSocket work per subscriber; single-threaded.
        floor) printf '%s\n' "$ROOT/target/release/ringws-floor" --listen "127.0.0.1:$2" \
                    --io io_uring --fanout ;;
        bun) printf '%s\n' "$BUN" "$JSDIR/bun-chat.js" "$2" ;;
        *) echo "unknown server $1" >&2; return 1 ;;
    esac
}

if [ "$PIN" = 1 ]; then
    SERVER_CPUS=(taskset -c 0)
    LOAD_CPUS=(taskset -c 1)
else
    SERVER_CPUS=()
    LOAD_CPUS=()
fi

trap stop_server EXIT

# ------------------------------------------------------------------ which servers run
ACTIVE=()
for s in $SERVERS; do
    if start_server "$s"; then
        ACTIVE+=("$s")
        stop_server
    else
        note "$s skipped: it does not start (see $LOGS/$s.log)"
    fi
done
[ ${#ACTIVE[@]} -gt 0 ] || { echo "no server to measure" >&2; exit 1; }

# ------------------------------------------------------------------ scenarios

scenario_subs() {
    case "$1" in
        1k) echo 1000 ;;
        10k) echo 10000 ;;
        *) echo "unknown scenario $1" >&2; return 1 ;;
    esac
}
scenario_rate() {
    case "$1" in
        1k) echo "$RATE_1K" ;;
        10k) echo "$RATE_10K" ;;
    esac
}
scenario_name() {
    echo "1 room × $(commas "$(scenario_subs "$1")") subscribers, $(scenario_rate "$1") msg/s"
}
for sc in $SCENARIOS; do scenario_subs "$sc" >/dev/null || exit 2; done

FAILED=0
for rep in $(seq "$REPS"); do
    # Even reps run the servers in reverse order (A B C, then C B A, ...): the first of two
    # servers measured one after the other came out dearer in both orders of an A/B here.
    order=("${ACTIVE[@]}")
    if (( rep % 2 == 0 )); then
        order=()
        for (( k = ${#ACTIVE[@]} - 1; k >= 0; k-- )); do order+=("${ACTIVE[k]}"); done
    fi
    for sc in $SCENARIOS; do
        for s in "${order[@]}"; do
            name=$(scenario_name "$sc")
            echo "rep $rep/$REPS: $name: $s" >&2
            if ! start_server "$s"; then
                note "rep $rep $name: $s did not start"
                FAILED=1
                continue
            fi
            line=$(setsid -w "${LOAD_CPUS[@]}" sh -c "$PRIO" sh "$LOAD" broadcast \
                -c "$(scenario_subs "$sc")" --rooms 1 --publishers 1 --rate "$(scenario_rate "$sc")" \
                -d "$WINDOW" -w "$WARMUP" --drain "$DRAIN" \
                --addr "127.0.0.1:$PORT" --server-pid "$SERVER_PID" --json --quiet \
                --label "$s" --scenario "$name") || {
                note "rep $rep $name $s: the load tool reported errors (see the JSON line)"
                FAILED=1
            }
            stop_server || FAILED=1
            if [ -n "$line" ]; then
                echo "$line" >>"$JSONL"
            else
                note "rep $rep $name $s: no result"
            fi
        done
    done
done
[ -s "$JSONL" ] || { echo "no results" >&2; exit 1; }

# ------------------------------------------------------------------ report
versions=""
for s in "${ACTIVE[@]}"; do
    case "$s" in
        uws) versions="$versions, uWebSockets.js $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' \
                "$JSDIR/node_modules/@trufflesuite/uws-js-unofficial/package.json" | head -1) on Node $("$NODE" --version)" ;;
        bun) versions="$versions, Bun $("$BUN" --version)" ;;
        uws-cpp) versions="$versions, uWebSockets C++ (snapshot in ${UWS_CPP_DIR:-../shared/peers/uwebsockets.tar.gz})" ;;
    esac
done
if [ "$PIN" = 1 ]; then
    cpus="server pinned to CPU 0, load tool to CPU 1"
else
    cpus="nothing pinned: the server and the load tool share all $(nproc) CPUs"
fi
{
    echo "## Broadcast: ringws chat vs uWebSockets C++, uWebSockets.js and Bun pub/sub, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- kernel $(uname -r), CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs"
    echo "- command: \`$CMDLINE\`"
    echo "- $REPS interleaved reps (the servers' order reversed every other rep); ${WARMUP} s warm-up + ${WINDOW} s window of publishing, then up to ${DRAIN} s for the last deliveries; 1 room, 1 publisher connection"
    echo "- ringws --mode chat --workers $WORKERS$versions"
    echo "- $cpus; each in its own session with autogroup -10"
    echo "- raw results: target/bench-results/$(basename "$JSONL")"
    for n in "${NOTES[@]}"; do echo "- $n"; done
    echo
    # Paired ratios per delivery against the floor, uWS C++ and, in an A/B run, the build
    # before the change.
    "$LOAD" summarize "$JSONL" --baseline ringws --versus floor --versus uws-cpp --versus ringws-base
} | tee "$MD"
mkdir -p "$ROOT/benches/results"
cp "$MD" "$ROOT/benches/results/$RESULTS.md"
exit "$FAILED"
