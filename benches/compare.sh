#!/usr/bin/env bash
# Compares ringws with peer echo servers on this machine, interleaved (A B C, C B A, A B C ...).
#
#   benches/compare.sh [--reps N] [--window S] [--warmup S] [--idle-conns N] [--idle-hold S]
#                      [--slope-first N] [--slope-conns N]
#                      [--servers "ringws floor uws-cpp fastwebsockets tungstenite ws uws bun"]
#                      [--scenarios "pp100 pp1k pp1000 pp10x64k pl20 pl1k flood idle slope
#                                    cpp cactive zpp zpl zactive zidle hs hsr"]
#                      [--port BASE] [--workers N] [--baseline SERVER] [--no-build]
#                      [--results NAME]
#
# Servers: ringws, ringws-epoll (its epoll backend), ringws-zc (ringws with
# --send-zc-min-bytes 16384), ringws-4k (1024 x 4 KiB receive buffers, as on kernels before 6.12), ringws-base (the binary
# named by RINGWS_BASE_BIN, e.g. a build of an earlier commit, for A/B runs; ringws-base-z the
# same with --compression shared), fastwebsockets, tungstenite (benches/peers, crates.io), ws (Node
# ws 8.x), uws (uWebSockets.js 20.30), bun (Bun 1.4.5) (benches/peers-js, npm registry: installed
# by this script when missing; a JS server whose install fails is skipped with a note),
# uws-cpp (uWebSockets C++, the leader, on no registry: its EchoServer example built from the
# snapshot ../shared/peers/uwebsockets.tar.gz, or from the unpacked snapshot UWS_CPP_DIR names,
# into target/peers/uws-cpp; skipped with a note when neither is there or the build fails),
# floor (benches/floor: a raw TCP echo on ringws's own io_uring loop, no WebSocket work after
# the upgrade, checked with ringws-load --raw-echo: the limit of the method, in the ping-pong
# and pipelined scenarios only; floor-epoll the same on the epoll backend).
# TLS (wss://, the test certificate of tests/data/tls, TLS 1.3 X25519 AES-128-GCM as the load
# tool offers them): ringws-tls, uws-tls (uWS.SSLApp), ws-tls (ws on Node's https server),
# bun-tls (Bun.serve's tls); the load tool connects with --tls --tls-ca to them, in every
# scenario. hs / hsr (handshakes): 2,000 connections opened 64 at a time, each a full TLS
# handshake (hs) or resuming a ticket of an earlier one (hsr, --tls-resume), then the upgrade;
# the table gives connections per second and the server's CPU per connection. The TLS table
# (benches/results/tls-latest.md) is made with
#   benches/compare.sh --reps 3 --window 5 --warmup 1 --servers "ringws ringws-tls uws-tls
#     ws-tls bun-tls" --scenarios "pp100 pp1k pl20 pl1k hs hsr slope" --slope-first 5000
#     --slope-conns 15000 --baseline ringws-tls --results tls-latest
# Scenarios: pp100, pp1000 (ping-pong, 20 B text), pp1k (100 conns, 1 KiB binary), pp10x64k
# (10 conns, 64 KiB binary), pl20 / pl1k (pipelined, 100 conns x 16 in flight, 20 B text /
# 1 KiB binary), flood (10 conns writing 1 KiB binary messages as fast as their sockets take
# them, reading and checking every echo: a server that drops echoes reports errors), idle (RSS
# per idle connection), cpp / cactive (chat JSON ping-pong, 100 and 1,000 connections; the
# second for RSS per connection that exchanged messages), zpp / zpl / zactive / zidle (the same
# with permessage-deflate offered, `ringws-load --compress`; run them against the -z servers:
# ringws-z (--compression shared), ringws-zd (dedicated), ws-z, uws-z, bun-z), slope (idle RSS growth per connection between
# 5,000 and 19,000 connections in one run: `idle -c 19000 --sample-at 5000`, each count held
# --idle-hold s before the server's RSS is sampled; free of the fixed cost and of most of the
# allocator's 2 MiB steps; --slope-first / --slope-conns change the counts. 19,000 sockets fit
# the load process and each server under this machine's RLIMIT_NOFILE of 20,000, and the
# ephemeral port range (32768-60999 here) from 127.0.0.1 to one port, so no --sources).
#
# Each run starts a fresh server pinned to CPU 0 and the load (target/release/ringws-load) pinned
# to CPU 1, each in its own session with autogroup priority -10 (see shared/PEERS.md: with
# kernel.sched_autogroup_enabled, plain nice does nothing). Listeners are on 127.0.0.1 above
# port 65000 (a fresh port per run, so TIME_WAIT sockets of one run never meet the next); servers
# are stopped by their own PID and the port is checked free before and after.
#
# Output: a Markdown table (median [min-max] over the reps) on stdout and in
# target/bench-results/compare-STAMP.md, the raw JSON lines in compare-STAMP.jsonl, server logs
# in compare-STAMP-logs/, an SVG chart (benches/chart.py) in compare-STAMP.svg; the latest table
# and chart are also copied to benches/results/latest.md and latest.svg (NAME.md and NAME.svg
# with --results NAME: the TLS comparison keeps its own, tls-latest). ringws is skipped, with a note, if its binary does not build or does
# not start with --mode echo.
set -euo pipefail

REPS=5
WINDOW=10
WARMUP=2
IDLE_CONNS=10000
BASELINE=ringws
IDLE_HOLD=3
SLOPE_FIRST=5000
SLOPE_CONNS=19000
SERVERS="ringws floor uws-cpp fastwebsockets tungstenite ws uws bun"
SCENARIOS="pp100 pp1k pp1000 pp10x64k pl20 pl1k flood idle slope"
DEPTH=16
BUN_VERSION=1.4.5
BASE_PORT=65400
WORKERS=1
BUILD=1
RESULTS=latest
CMDLINE="$0 $*"

usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS=$2; shift 2 ;;
        --window) WINDOW=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --idle-conns) IDLE_CONNS=$2; shift 2 ;;
        --baseline) BASELINE=$2; shift 2 ;;
        --idle-hold) IDLE_HOLD=$2; shift 2 ;;
        --slope-first) SLOPE_FIRST=$2; shift 2 ;;
        --slope-conns) SLOPE_CONNS=$2; shift 2 ;;
        --servers) SERVERS=$2; shift 2 ;;
        --scenarios) SCENARIOS=$2; shift 2 ;;
        --port) BASE_PORT=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --results) RESULTS=$2; shift 2 ;;
        -h|--help) usage ;;
        *) echo "unknown option: $1" >&2; usage ;;
    esac
done
if [ "$SLOPE_FIRST" -lt 1 ] || [ "$SLOPE_FIRST" -ge "$SLOPE_CONNS" ]; then
    echo "--slope-first must be at least 1 and below --slope-conns" >&2
    exit 2
fi
if [ "$BASE_PORT" -le 65000 ] || [ "$BASE_PORT" -gt 65400 ]; then
    echo "--port must be in 65001..65400 (runs use BASE..BASE+99 and the ephemeral range ends at 65000)" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=$ROOT/benches/peers/target/release
LOAD=$ROOT/target/release/ringws-load
OUT=$ROOT/target/bench-results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
JSONL=$OUT/compare-$STAMP.jsonl
MD=$OUT/compare-$STAMP.md
SVG=$OUT/compare-$STAMP.svg
JSDIR=$ROOT/benches/peers-js
CERT=$ROOT/tests/data/tls/cert.pem
KEY=$ROOT/tests/data/tls/key.pem
BUN=$JSDIR/node_modules/.bun/package/bin/bun
NODE=$(command -v node || true)
LOGS=$OUT/compare-$STAMP-logs
mkdir -p "$OUT" "$LOGS"
# note, the JS peers' installation, start_server/stop_server, commas.
. "$ROOT/benches/lib.sh"

# ------------------------------------------------------------------ build
if [ "$BUILD" = 1 ]; then
    build_bins
    cargo build --release --manifest-path "$ROOT/benches/peers/Cargo.toml"
fi
[ -x "$LOAD" ] || { echo "no load tool at $LOAD" >&2; exit 1; }

# ------------------------------------------------------------------ JS peers (npm registry)
install_js_peers ws uws ws-z uws-z ws-tls uws-tls
install_bun bun bun-z bun-tls
install_uws_cpp uws-cpp

# ------------------------------------------------------------------ servers
server_cmd() { # NAME PORT -> the command, one word per line
    case "$1" in
        ringws) printf '%s\n' "$ROOT/target/release/ringws" --mode echo \
                    --listen "127.0.0.1:$2" --workers "$WORKERS" ;;
        # ringws on its epoll backend (what io_uring buys, side by side).
        ringws-epoll) printf '%s\n' "$ROOT/target/release/ringws" --mode echo \
                    --listen "127.0.0.1:$2" --workers "$WORKERS" --io epoll ;;
        # ringws with zero-copy sends for sends of 16 KiB and more (the SEND_ZC trial).
        ringws-zc) printf '%s\n' "$ROOT/target/release/ringws" --mode echo \
                    --listen "127.0.0.1:$2" --workers "$WORKERS" --send-zc-min-bytes 16384 ;;
        # ringws with the receive buffers of kernels before 6.12 (1024 x 4 KiB: the same 4 MiB).
        ringws-4k) printf '%s\n' "$ROOT/target/release/ringws" --mode echo \
                    --listen "127.0.0.1:$2" --workers "$WORKERS" \
                    --recv-buffer-size 4096 --recv-buffers 1024 ;;
        # A baseline build of ringws (e.g. of an earlier commit), for A/B runs of a change:
        # RINGWS_BASE_BIN=/path/to/ringws benches/compare.sh --servers "ringws ringws-base".
        ringws-base) printf '%s\n' "${RINGWS_BASE_BIN:-/nonexistent}" --mode echo \
                    --listen "127.0.0.1:$2" --workers "$WORKERS" ;;
        # The baseline build with compression (against ringws-z, in the z* scenarios).
        ringws-base-z) printf '%s\n' "${RINGWS_BASE_BIN:-/nonexistent}" --mode echo \
                    --listen "127.0.0.1:$2" --workers "$WORKERS" --compression shared ;;
        fastwebsockets) printf '%s\n' "$PEERS/fastwebsockets-echo" --listen "127.0.0.1:$2" ;;
        tungstenite) printf '%s\n' "$PEERS/tungstenite-echo" --listen "127.0.0.1:$2" ;;
        ws) printf '%s\n' "$NODE" "$JSDIR/ws-echo.js" "$2" ;;
        uws) printf '%s\n' "$NODE" "$JSDIR/uws-echo.js" "$2" ;;
        bun) printf '%s\n' "$BUN" "$JSDIR/bun-echo.js" "$2" ;;
        # uWebSockets C++ (epoll, no TLS; install_uws_cpp in benches/lib.sh builds it): its
        # EchoServer example, compression off, automatic pings at its 120 s idle timeout.
        # The floor: a raw echo on ringws's own io_uring loop, no WebSocket work after the
        # upgrade (benches/floor); the load checks its echoes with --raw-echo.
        floor) printf '%s\n' "$ROOT/target/release/ringws-floor" --listen "127.0.0.1:$2" --io io_uring ;;
        floor-epoll) printf '%s\n' "$ROOT/target/release/ringws-floor" --listen "127.0.0.1:$2" --io epoll ;;
        uws-cpp) printf '%s\n' /usr/bin/env UWS_COMPRESSION=0 UWS_IDLE_TIMEOUT=120 \
                    "$UWS_CPP_BIN/EchoServer" "$2" 127.0.0.1 ;;
        # permessage-deflate on (for the z* scenarios): ringws shared and dedicated modes, the
        # JS peers with theirs (uWS SHARED_COMPRESSOR, Bun perMessageDeflate, ws threshold 64).
        ringws-z) printf '%s\n' "$ROOT/target/release/ringws" --mode echo \
                    --listen "127.0.0.1:$2" --workers "$WORKERS" --compression shared ;;
        ringws-zd) printf '%s\n' "$ROOT/target/release/ringws" --mode echo \
                    --listen "127.0.0.1:$2" --workers "$WORKERS" --compression dedicated ;;
        ws-z) printf '%s\n' "$NODE" "$JSDIR/ws-echo.js" "$2" deflate ;;
        uws-z) printf '%s\n' "$NODE" "$JSDIR/uws-echo.js" "$2" deflate ;;
        bun-z) printf '%s\n' "$BUN" "$JSDIR/bun-echo.js" "$2" deflate ;;
        ringws-tls) printf '%s\n' "$ROOT/target/release/ringws" --mode echo \
                    --listen "127.0.0.1:$2" --workers "$WORKERS" --tls-cert "$CERT" --tls-key "$KEY" ;;
        ws-tls) printf '%s\n' "$NODE" "$JSDIR/ws-echo.js" "$2" --tls "$CERT" "$KEY" ;;
        uws-tls) printf '%s\n' "$NODE" "$JSDIR/uws-echo.js" "$2" --tls "$CERT" "$KEY" ;;
        bun-tls) printf '%s\n' "$BUN" "$JSDIR/bun-echo.js" "$2" --tls "$CERT" "$KEY" ;;
        *) echo "unknown server $1" >&2; return 1 ;;
    esac
}

# Runs "$@" in a new session, pinned to CPU $1, with autogroup priority -10.

# The server on CPU 0, the load tool on CPU 1.
SERVER_CPUS=(taskset -c 0)
trap stop_server EXIT

# ------------------------------------------------------------------ which servers run
ACTIVE=()
for s in $SERVERS; do
    if start_server "$s"; then
        ACTIVE+=("$s")
        stop_server
    elif [ "$s" = ringws ]; then
        note "ringws skipped: target/release/ringws does not start with --mode echo (see $LOGS/ringws.log)"
    elif [[ " ws uws bun ws-z uws-z bun-z ws-tls uws-tls bun-tls uws-cpp " == *" $s "* ]]; then
        note "$s skipped: it does not start (see $LOGS/$s.log)"
    else
        echo "$s does not start (see $LOGS/$s.log)" >&2
        exit 1
    fi
done
[ ${#ACTIVE[@]} -gt 0 ] || { echo "no server to measure" >&2; exit 1; }

# ------------------------------------------------------------------ scenarios

scenario_name() {
    case "$1" in
        pp100) echo "100 × 20 B text" ;;
        pp1000) echo "1000 × 20 B text" ;;
        pp1k) echo "100 × 1 KiB binary" ;;
        pp10x64k) echo "10 × 64 KiB binary" ;;
        pl20) echo "pipelined 100 × $DEPTH × 20 B text" ;;
        pl1k) echo "pipelined 100 × $DEPTH × 1 KiB binary" ;;
        flood) echo "flood 10 × 1 KiB binary (open loop)" ;;
        idle) echo "idle RSS/conn at $IDLE_CONNS" ;;
        slope) echo "idle RSS slope $(commas "$SLOPE_FIRST")→$(commas "$SLOPE_CONNS")" ;;
        zpp) echo "compressed: 100 × chat JSON" ;;
        zpl) echo "compressed: pipelined 100 × $DEPTH × chat JSON" ;;
        zactive) echo "compressed: RSS/conn, 1000 active × chat JSON" ;;
        zidle) echo "compressed: idle RSS/conn at $IDLE_CONNS" ;;
        cpp) echo "plain: 100 × chat JSON" ;;
        cactive) echo "plain: RSS/conn, 1000 active × chat JSON" ;;
        hs) echo "handshakes: 2,000 full, 64 at a time" ;;
        hsr) echo "handshakes: 2,000 resumed, 64 at a time" ;;
    esac
}

scenario_args() { # SCENARIO -> load tool arguments, one per line
    case "$1" in
        pp100) printf '%s\n' pingpong -c 100 --size 20 -d "$WINDOW" -w "$WARMUP" ;;
        pp1000) printf '%s\n' pingpong -c 1000 --size 20 -d "$WINDOW" -w "$WARMUP" ;;
        pp1k) printf '%s\n' pingpong -c 100 --size 1024 --binary -d "$WINDOW" -w "$WARMUP" ;;
        pp10x64k) printf '%s\n' pingpong -c 10 --size 65536 --binary -d "$WINDOW" -w "$WARMUP" ;;
        pl20) printf '%s\n' pipelined --depth "$DEPTH" -c 100 --size 20 -d "$WINDOW" -w "$WARMUP" ;;
        pl1k) printf '%s\n' pipelined --depth "$DEPTH" -c 100 --size 1024 --binary \
                  -d "$WINDOW" -w "$WARMUP" ;;
        flood) printf '%s\n' flood -c 10 --size 1024 --binary -d "$WINDOW" -w "$WARMUP" ;;
        idle) printf '%s\n' idle -c "$IDLE_CONNS" -d "$IDLE_HOLD" ;;
        # Both steps of the setup share the connect timeout.
        slope) printf '%s\n' idle -c "$SLOPE_CONNS" --sample-at "$SLOPE_FIRST" -d "$IDLE_HOLD" \
                  --connect-timeout 60 ;;
        # permessage-deflate offered (--compress) with realistic chat JSON messages; cpp and
        # cactive are the same loads uncompressed, for the side-by-side.
        zpp) printf '%s\n' pingpong -c 100 --chat-json --compress -d "$WINDOW" -w "$WARMUP" ;;
        zpl) printf '%s\n' pipelined --depth "$DEPTH" -c 100 --chat-json --compress \
                  -d "$WINDOW" -w "$WARMUP" ;;
        zactive) printf '%s\n' pingpong -c 1000 --chat-json --compress -d "$WINDOW" -w "$WARMUP" ;;
        zidle) printf '%s\n' idle -c "$IDLE_CONNS" --compress -d "$IDLE_HOLD" ;;
        cpp) printf '%s\n' pingpong -c 100 --chat-json -d "$WINDOW" -w "$WARMUP" ;;
        cactive) printf '%s\n' pingpong -c 1000 --chat-json -d "$WINDOW" -w "$WARMUP" ;;
        hs) printf '%s\n' idle -c 2000 --concurrency 64 -d 1 ;;
        hsr) printf '%s\n' idle -c 2000 --concurrency 64 -d 1 --tls-resume ;;
        *) echo "unknown scenario $1" >&2; return 1 ;;
    esac
}

FAILED=0
for rep in $(seq "$REPS"); do
    # Even reps run the servers in reverse order (A B C, then C B A, ...): on this kind of
    # machine the first of two servers measured one after the other came out dearer in both
    # orders of an A/B, so each server's place in the rep alternates.
    order=("${ACTIVE[@]}")
    if (( rep % 2 == 0 )); then
        order=()
        for (( k = ${#ACTIVE[@]} - 1; k >= 0; k-- )); do order+=("${ACTIVE[k]}"); done
    fi
    for sc in $SCENARIOS; do
        for s in "${order[@]}"; do
            name=$(scenario_name "$sc")
            # Resumption needs TLS.
            [ "$sc" != hsr ] || [[ "$s" == *-tls ]] || continue
            # The floor echoes raw bytes: only the plain echo scenarios with a bound in flight
            # (it has no flow control, and --raw-echo keeps what is in flight).
            if [[ "$s" == floor* ]] && [[ " pp100 pp1000 pp1k pp10x64k pl20 pl1k " != *" $sc "* ]]; then
                continue
            fi
            echo "rep $rep/$REPS: $name: $s" >&2
            if ! start_server "$s"; then
                note "rep $rep $name: $s did not start"
                FAILED=1
                continue
            fi
            mapfile -t args < <(scenario_args "$sc")
            [[ "$s" != *-tls ]] || args+=(--tls --tls-ca "$CERT")
            [[ "$s" != floor* ]] || args+=(--raw-echo)
            line=$(setsid -w taskset -c 1 sh -c "$PRIO" sh "$LOAD" "${args[@]}" \
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

# ------------------------------------------------------------------ report
{
    echo "## ringws vs peers, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- kernel $(uname -r), CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs"
    echo "- command: \`$CMDLINE\`"
    echo "- $REPS interleaved reps (the servers' order reversed every other rep); ${WARMUP} s warm-up + ${WINDOW} s window; pipelined: $DEPTH in flight per connection; idle hold ${IDLE_HOLD} s"
    case " $SCENARIOS " in *" slope "*)
        echo "- slope: RSS sampled after holding $SLOPE_FIRST connections ${IDLE_HOLD} s and again after holding all $SLOPE_CONNS ${IDLE_HOLD} s; slope = difference / $((SLOPE_CONNS - SLOPE_FIRST))" ;;
    esac
    echo "- chart: target/bench-results/$(basename "$SVG")"
    echo "- server on CPU 0, load on CPU 1, each in its own session with autogroup -10"
    echo "- raw results: target/bench-results/$(basename "$JSONL")"
    for n in "${NOTES[@]}"; do echo "- $n"; done
    echo
    # Paired ratios against the floor, uWS C++ and, in an A/B run, the build before the change.
    versus=(--versus floor --versus uws-cpp)
    [ "$BASELINE" = ringws-base ] || versus+=(--versus ringws-base)
    "$LOAD" summarize "$JSONL" --baseline "$BASELINE" "${versus[@]}"
} | tee "$MD"
mkdir -p "$ROOT/benches/results"
cp "$MD" "$ROOT/benches/results/$RESULTS.md"
if python3 "$ROOT/benches/chart.py" "$JSONL" -o "$SVG" \
    --title "ringws vs peers, $(date -u '+%Y-%m-%d'), $REPS reps × ${WINDOW} s"; then
    cp "$SVG" "$ROOT/benches/results/$RESULTS.svg"
    echo "chart: $SVG (and benches/results/$RESULTS.svg)" >&2
else
    echo "the chart failed" >&2
    FAILED=1
fi
exit "$FAILED"
