#!/usr/bin/env bash
# The backend API's publications against a member's, side by side in one run: 10,000 members
# of one room (ringws-load broadcast), each publication from a publisher's WebSocket or from
# `POST /api/publish`, interleaved over --reps runs; then the API alone at a high rate into a
# room of 1,000 (what one caller posting one request at a time sustains).
#
#   benches/api.sh [--reps N] [--no-build]      (writes benches/results/api-latest.md)
#
# Every load is bounded (connections, seconds) and on loopback only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=3
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) echo "usage: $0 [--reps N] [--no-build]" >&2; exit 2 ;;
    esac
done
[ "$BUILD" = 1 ] && (cd "$ROOT" && cargo build --release --locked --bin ringws -p ringws-load)
RINGWS=$ROOT/target/release/ringws
LOAD=$ROOT/target/release/ringws-load
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# run NAME SUBSCRIBERS RATE SECONDS [load options...]: one server, one load, one JSON line.
run() {
    local name=$1 subs=$2 rate=$3 secs=$4
    shift 4
    local port api
    port=$(free_port)
    api=$(free_port)
    "$RINGWS" --mode chat --workers 2 --listen "127.0.0.1:$port" --api-listen "127.0.0.1:$api" \
        --api-key bench --send-rate 0 --join-rate 0 >"$OUT/$name.server.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
    local extra=()
    [ "$name" != "${name#api}" ] && extra=(--publish-api "127.0.0.1:$api" --api-key bench)
    timeout 300 "$LOAD" broadcast --addr "127.0.0.1:$port" -c "$subs" --rooms 1 --publishers 1 \
        --rate "$rate" -d "$secs" -w 2 --drain 5 --server-pid "$pid" --json -q \
        --label "$name" "${extra[@]}" "$@" >>"$OUT/results.jsonl" || true
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

for rep in $(seq "$REPS"); do
    echo "rep $rep of $REPS" >&2
    run ws 10000 10 10
    run api 10000 10 10
done
run api-fast 1000 1000 5

python3 - "$OUT/results.jsonl" "$ROOT/benches/results/api-latest.md" "$REPS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
reps = sys.argv[3]
def med(xs):
    return statistics.median(xs) if xs else float("nan")
def fig(label, f):
    xs = [f(r) for r in rows if r.get("label") == label]
    xs = [x for x in xs if x is not None]
    return (min(xs), med(xs), max(xs)) if xs else (float("nan"),) * 3
def cpu_per_delivery(r):
    return r.get("server_cpu_us_per_delivery")
def lat(q):
    return lambda r: (r.get("latency_us") or {}).get(q)
out = ["# Backend API publications against a member's (`benches/api.sh --reps %s`)" % reps, "",
       "10,000 members of one room on one ringws (2 workers), 10 publications/s, 10 s windows, "
       "interleaved; median [min–max] of the runs. Latency: from the publication's write (the "
       "WebSocket frame, or the start of the POST) to each member's read.", "",
       "| publisher | latency p50 ms | p99 ms | server CPU µs per delivery | lost |", "|---|---|---|---|---|"]
base = {}
for label, name in [("ws", "a member's WebSocket"), ("api", "POST /api/publish")]:
    p50 = fig(label, lat("p50")); p99 = fig(label, lat("p99")); cpu = fig(label, cpu_per_delivery)
    lost = fig(label, lambda r: r.get("lost", 0))
    base.setdefault("p50", p50[1]); base.setdefault("cpu", cpu[1])
    ratio = "" if label == "ws" else " (×%.2f, ×%.2f CPU)" % (p50[1] / base["p50"], cpu[1] / base["cpu"])
    out.append("| %s%s | %.2f [%.2f–%.2f] | %.2f [%.2f–%.2f] | %.3f [%.3f–%.3f] | %d |" % (
        name, ratio, p50[1] / 1000, p50[0] / 1000, p50[2] / 1000, p99[1] / 1000, p99[0] / 1000, p99[2] / 1000,
        cpu[1], cpu[0], cpu[2], lost[2]))
fast = [r for r in rows if r.get("label") == "api-fast"]
if fast:
    r = fast[0]
    out += ["", "The API alone, one caller posting one request at a time (a new TCP connection each, "
            "as the API answers), asked for 1,000 publications/s into a room of 1,000 members for 5 s:", "",
            "- publications queued to the caller: %.0f/s (each POST waits for the one before; latency below includes that wait)" % (r.get("publishes_per_sec") or 0),
            "- POSTs: %s" % r.get("api_publish"),
            "- delivery latency p50 %.2f ms, p99 %.2f ms" % ((r.get("latency_us") or {}).get("p50", 0) / 1000,
                                                          (r.get("latency_us") or {}).get("p99", 0) / 1000)]
out += ["", "API runs' POST answers (one per publication, the offset included): " +
        "; ".join(r["api_publish"] for r in rows if r.get("label") == "api" and r.get("api_publish"))]
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
