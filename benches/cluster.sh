#!/usr/bin/env bash
# Cross-node fan-out benchmark: one publisher on node A, S subscribers on node B, the two ringws
# nodes sharing the room through Redis (Debian's redis-server, started here), against the same
# load on a single node; interleaved (single, cluster, single, cluster, ...), ratios per pair.
#
#   benches/cluster.sh [--reps N] [--window S] [--warmup S] [--drain S] [--scenarios "1k 10k"]
#                      [--rate-1k N] [--rate-10k N] [--workers N] [--port BASE] [--no-build]
#
# Setups (ringws --mode chat --workers N on each node, 2 by default: every core):
#   single   one node; the publisher and the subscribers connect to it
#   cluster  node A (the publisher's) and node B (the subscribers'), both --broker
#            redis://127.0.0.1:PORT; A appends each message to the room's log in Redis (a
#            script: offset, stream, publish), Redis sends it to B (and back to A), B's home
#            worker for the room delivers it to B's subscribers in offset order
#   cluster-base  the same with the binary RINGWS_BASE_BIN names, when set (an A/B of a change,
#            interleaved with the others)
# Scenarios (`ringws-load broadcast --rooms 1 --publishers 1`, every delivery's sequence
# checked, latency from the publisher's write to the subscriber's read, one clock):
#   1k   1,000 subscribers, --rate-1k publications/s (default 100: 100,000 deliveries/s)
#   10k  10,000 subscribers, --rate-10k publications/s (default 5: 50,000 deliveries/s)
# The rates are benches/broadcast.sh's: they load this 2-vCPU VM without saturating it.
#
# CPU time is sampled over the window from /proc/PID/schedstat: the subscribers' node (B, or
# the single node), the publisher's node A and redis-server (`--also-pid`). Everything shares
# the machine's 2 cores with the load tool; nothing is pinned. Ports: BASE.. (65001-65400).
#
# Output: a Markdown table (median [min-max] over the reps) on stdout and in
# target/bench-results/cluster-STAMP.md, raw JSON lines in cluster-STAMP.jsonl, logs in
# cluster-STAMP-logs/; the table is also copied to benches/results/cluster-latest.md.
set -euo pipefail

REPS=3
WINDOW=10
WARMUP=3
DRAIN=2
SCENARIOS="1k 10k"
RATE_1K=100
RATE_10K=5
WORKERS=2
BASE_PORT=65300
BUILD=1
CMDLINE="${RINGWS_BASE_BIN:+RINGWS_BASE_BIN=$RINGWS_BASE_BIN }$0 $*"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS=$2; shift 2 ;;
        --window) WINDOW=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --drain) DRAIN=$2; shift 2 ;;
        --scenarios) SCENARIOS=$2; shift 2 ;;
        --rate-1k) RATE_1K=$2; shift 2 ;;
        --rate-10k) RATE_10K=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --port) BASE_PORT=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage ;;
        *) echo "unknown option: $1" >&2; usage ;;
    esac
done
if [ "$BASE_PORT" -le 65000 ] || [ "$BASE_PORT" -gt 65397 ]; then
    echo "--port must be in 65001..65397 (runs use BASE..BASE+2)" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh" # no_rate_limits (this script defines its own start and listening)
LOAD=$ROOT/target/release/ringws-load
RINGWS=$ROOT/target/release/ringws
OUT=$ROOT/target/bench-results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
JSONL=$OUT/cluster-$STAMP.jsonl
MD=$OUT/cluster-$STAMP.md
LOGS=$OUT/cluster-$STAMP-logs
mkdir -p "$OUT" "$LOGS"

if ! command -v redis-server >/dev/null; then
    echo "installing redis-server (apt)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server >&2
fi
if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release --bin ringws && cargo build --release -p ringws-load)
fi
[ -x "$LOAD" ] && [ -x "$RINGWS" ] || { echo "build ringws and ringws-load first" >&2; exit 1; }

listening() { ss -Hltn "sport = :$1" | grep -q .; }
PIDS=()
stop_all() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    PIDS=()
}
trap stop_all EXIT

# start NAME PORT CMD... -> the PID in STARTED; waits for the port
start() {
    local name=$1 port=$2
    shift 2
    if listening "$port"; then echo "port $port is in use" >&2; return 1; fi
    setsid "$@" >>"$LOGS/$name.log" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
    for _ in $(seq 50); do
        listening "$port" && return 0
        kill -0 "$STARTED" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

REDIS_PORT=$BASE_PORT
PORT_A=$((BASE_PORT + 1))
PORT_B=$((BASE_PORT + 2))
BIN=$RINGWS
node() { # NAME PORT [--broker URL]
    local name=$1 port=$2
    shift 2
    # shellcheck disable=SC2046
    start "$name" "$port" "$BIN" --mode chat --workers "$WORKERS" \
        --listen "127.0.0.1:$port" $(no_rate_limits "$BIN") "$@"
}
CLUSTERS="cluster"
if [ -n "${RINGWS_BASE_BIN:-}" ]; then
    [ -x "$RINGWS_BASE_BIN" ] || { echo "RINGWS_BASE_BIN=$RINGWS_BASE_BIN is not executable" >&2; exit 2; }
    CLUSTERS="cluster cluster-base"
fi

subs() { case "$1" in 1k) echo 1000 ;; 10k) echo 10000 ;; *) echo "unknown scenario $1" >&2; return 1 ;; esac; }
rate() { case "$1" in 1k) echo "$RATE_1K" ;; 10k) echo "$RATE_10K" ;; esac; }
for sc in $SCENARIOS; do subs "$sc" >/dev/null || exit 2; done

FAILED=0
run_load() { # LABEL SCENARIO ARGS...
    local label=$1 sc=$2 line
    shift 2
    line=$("$LOAD" broadcast -c "$(subs "$sc")" --rooms 1 --publishers 1 --rate "$(rate "$sc")" \
        -d "$WINDOW" -w "$WARMUP" --drain "$DRAIN" --json --quiet \
        --label "$label" --scenario "$sc" "$@") || {
        echo "rep $rep $sc $label: the load tool reported errors" >&2
        FAILED=1
    }
    [ -n "$line" ] && echo "$line" >>"$JSONL"
}

for rep in $(seq "$REPS"); do
    for sc in $SCENARIOS; do
        echo "rep $rep/$REPS, $sc: single node" >&2
        if node single "$PORT_B"; then
            run_load single "$sc" --addr "127.0.0.1:$PORT_B" --server-pid "$STARTED"
        else
            echo "the single node did not start" >&2; FAILED=1
        fi
        stop_all

        for setup in $CLUSTERS; do
            BIN=$RINGWS
            [ "$setup" = cluster-base ] && BIN=$RINGWS_BASE_BIN
            echo "rep $rep/$REPS, $sc: two nodes through Redis ($setup)" >&2
            if start redis "$REDIS_PORT" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
                --save "" --appendonly no; then
                redis_pid=$STARTED
                url="redis://127.0.0.1:$REDIS_PORT"
                if node nodeA "$PORT_A" --broker "$url" && a_pid=$STARTED \
                    && node nodeB "$PORT_B" --broker "$url"; then
                    run_load "$setup" "$sc" --addr "127.0.0.1:$PORT_B" --server-pid "$STARTED" \
                        --publish-addr "127.0.0.1:$PORT_A" \
                        --also-pid "nodeA=$a_pid" --also-pid "redis=$redis_pid"
                else
                    echo "a node did not start" >&2; FAILED=1
                fi
            else
                echo "redis-server did not start" >&2; FAILED=1
            fi
            stop_all
            BIN=$RINGWS
        done
    done
done
[ -s "$JSONL" ] || { echo "no results" >&2; exit 1; }

REDIS_VERSION=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
python3 - "$JSONL" "$CMDLINE" "$WORKERS" "$REDIS_VERSION" >"$MD" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cmd, workers, redis = sys.argv[2], sys.argv[3], sys.argv[4]

def spread(xs, fmt="{:.2f}"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return f"{fmt.format(statistics.median(xs))} [{fmt.format(min(xs))}–{fmt.format(max(xs))}]"

print(f"# Cross-node fan-out: one publisher on node A, subscribers on node B, through Redis\n")
print(f"`{cmd}` — ringws --mode chat --workers {workers} per node, Redis {redis} "
      "(Debian's redis-server), everything on this machine's 2 vCPUs, loopback. "
      "Median [min–max] over the reps; CPU from /proc/PID/schedstat over the window.\n")
print("| scenario | setup | deliveries/s | latency p50 / p99 ms | subscriber node CPU µs/delivery | node A CPU µs/publication (% core) | Redis CPU µs/publication (% core) | lost |")
print("|---|---|---|---|---|---|---|---|")
for sc in ["1k", "10k"]:
    for setup in ["single", "cluster", "cluster-base"]:
        rs = [r for r in rows if r.get("scenario") == sc and r.get("label") == setup]
        if not rs:
            continue
        also = lambda r, k: r.get("also_cpu_ns", {}).get(k)
        win = lambda r: r["window_secs"]
        a_us = [also(r, "nodeA") / 1e3 / r["publishes"] for r in rs if also(r, "nodeA") is not None and r.get("publishes")]
        a_pct = [also(r, "nodeA") / 1e7 / win(r) for r in rs if also(r, "nodeA") is not None]
        red_us = [also(r, "redis") / 1e3 / r["publishes"] for r in rs if also(r, "redis") is not None and r.get("publishes")]
        red_pct = [also(r, "redis") / 1e7 / win(r) for r in rs if also(r, "redis") is not None]
        lost = sum((r.get("lost") or 0) + (r.get("out_of_order") or 0) for r in rs)
        a = f"{spread(a_us, '{:.0f}')} ({spread(a_pct, '{:.1f}')})" if a_us else "–"
        red = f"{spread(red_us, '{:.1f}')} ({spread(red_pct, '{:.1f}')})" if red_us else "–"
        print(f"| {rs[0]['subscribers'] if 'subscribers' in rs[0] else sc} subs × {rs[0]['rate']:g}/s | {setup} | "
              f"{spread([r['deliveries_per_sec'] for r in rs], '{:,.0f}')} | "
              f"{spread([r['latency_us']['p50'] / 1e3 for r in rs], '{:.1f}')} / {spread([r['latency_us']['p99'] / 1e3 for r in rs], '{:.1f}')} | "
              f"{spread([r['server_cpu_us_per_delivery'] for r in rs])} | {a} | {red} | {lost} |")
print("\nRatios cluster / single (medians): ", end="")
out = []
for sc in ["1k", "10k"]:
    med = {}
    for setup in ["single", "cluster", "cluster-base"]:
        rs = [r for r in rows if r.get("scenario") == sc and r.get("label") == setup]
        if rs:
            med[setup] = (statistics.median(r["server_cpu_us_per_delivery"] for r in rs),
                          statistics.median(r["latency_us"]["p50"] for r in rs))
    if "single" in med and "cluster" in med:
        out.append(f"{sc}: subscriber-node CPU per delivery ×{med['cluster'][0] / med['single'][0]:.2f}, "
                   f"p50 latency ×{med['cluster'][1] / med['single'][1]:.2f}")
print("; ".join(out) + ".")
base = []
for sc in ["1k", "10k"]:
    med = {}
    for setup in ["cluster", "cluster-base"]:
        rs = [r for r in rows if r.get("scenario") == sc and r.get("label") == setup]
        if rs:
            med[setup] = [statistics.median(f(r) for r in rs) for f in (
                lambda r: r["server_cpu_us_per_delivery"],
                lambda r: r.get("also_cpu_ns", {}).get("nodeA", 0) / max(r.get("publishes") or 1, 1),
                lambda r: r.get("also_cpu_ns", {}).get("redis", 0) / max(r.get("publishes") or 1, 1),
                lambda r: r["latency_us"]["p50"])]
    if len(med) == 2:
        c, b = med["cluster"], med["cluster-base"]
        base.append(f"{sc}: subscriber node CPU/delivery ×{c[0] / b[0]:.2f}, node A CPU/publication "
                    f"×{c[1] / b[1]:.2f}, Redis CPU/publication ×{c[2] / b[2]:.2f}, p50 latency ×{c[3] / b[3]:.2f}")
if base:
    print("\nRatios cluster / cluster-base (medians): " + "; ".join(base) + ".")
EOF
cat "$MD"
cp "$MD" "$ROOT/benches/results/cluster-latest.md"
echo "raw results: $JSONL" >&2
exit "$FAILED"
