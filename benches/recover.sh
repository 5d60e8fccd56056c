#!/usr/bin/env bash
# Reconnect-storm benchmark: M members of one room, each B messages behind, reconnect at once
# and resume with `since`; on one server and on a two-server cluster sharing the room through
# Redis; interleaved (single, cluster, single, cluster, ...).
#
#   benches/recover.sh [--reps N] [--members M] [--behind B] [--workers N] [--port BASE]
#                      [--no-build]
#
# Setups (ringws --mode chat --workers N, 2 by default: every core):
#   single   one server; the members and the publisher connect to it
#   cluster  servers A and B, both --broker redis://127.0.0.1:PORT (Debian's redis-server,
#            started here); the members spread over both, the publisher on A
# `ringws-load recover` (see its --help): the members join, B messages go out live (the
# servers' CPU per live delivery), the members go, B more go out, then all reconnect at once
# with `since`: each must be told `recovered` and get the B missed messages in order, once.
# Reported: the time until every member has recovered (and per member, p50/p99), and the CPU
# (/proc/PID/schedstat) of each server and Redis per recovered message against a live
# delivery. Everything shares the machine's 2 cores with the load tool; nothing is pinned.
# Ports: BASE..BASE+2 (65001-65397; default 65350).
#
# Output: a Markdown table (median [min-max] over the reps) on stdout and in
# target/bench-results/recover-STAMP.md (raw JSON lines in recover-STAMP.jsonl, logs in
# recover-STAMP-logs/); the table is also copied to benches/results/recover-latest.md.
set -euo pipefail

REPS=3
MEMBERS=10000
BEHIND=100
WORKERS=2
BASE_PORT=65350
BUILD=1
CMDLINE="$0 $*"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS=$2; shift 2 ;;
        --members) MEMBERS=$2; shift 2 ;;
        --behind) BEHIND=$2; shift 2 ;;
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
if [ "$MEMBERS" -gt 18000 ]; then
    echo "--members at most 18000: the load tool holds them all (RLIMIT_NOFILE 20,000 here)" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh" # no_rate_limits (this script defines its own start and listening)
LOAD=$ROOT/target/release/ringws-load
RINGWS=$ROOT/target/release/ringws
OUT=$ROOT/target/bench-results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
JSONL=$OUT/recover-$STAMP.jsonl
MD=$OUT/recover-$STAMP.md
LOGS=$OUT/recover-$STAMP-logs
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
node() { # NAME PORT [--broker URL]
    local name=$1 port=$2
    shift 2
    # shellcheck disable=SC2046
    start "$name" "$port" "$RINGWS" --mode chat --workers "$WORKERS" \
        --listen "127.0.0.1:$port" $(no_rate_limits "$RINGWS") "$@"
}

FAILED=0
run_load() { # LABEL ARGS...
    local label=$1 line
    shift
    line=$("$LOAD" recover -c "$MEMBERS" --behind "$BEHIND" --json --label "$label" "$@") || {
        echo "rep $rep $label: the storm failed" >&2
        FAILED=1
    }
    [ -n "$line" ] && echo "$line" >>"$JSONL"
}

for rep in $(seq "$REPS"); do
    echo "rep $rep/$REPS: one server" >&2
    if node single "$PORT_A"; then
        run_load single --url "ws://127.0.0.1:$PORT_A/" --pid "server=$STARTED"
    else
        echo "the server did not start" >&2; FAILED=1
    fi
    stop_all

    echo "rep $rep/$REPS: two servers through Redis" >&2
    if start redis "$REDIS_PORT" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
        --save "" --appendonly no; then
        redis_pid=$STARTED
        url="redis://127.0.0.1:$REDIS_PORT"
        if node nodeA "$PORT_A" --broker "$url" && a_pid=$STARTED \
            && node nodeB "$PORT_B" --broker "$url"; then
            run_load cluster --url "ws://127.0.0.1:$PORT_A/" --url "ws://127.0.0.1:$PORT_B/" \
                --pid "server=$a_pid" --pid "serverB=$STARTED" --pid "redis=$redis_pid"
        else
            echo "a server did not start" >&2; FAILED=1
        fi
    else
        echo "redis-server did not start" >&2; FAILED=1
    fi
    stop_all
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

m = rows[0]
print(f"# Reconnect storm: {m['members']:,} members of one room, {m['behind']} messages behind each, reconnect at once\n")
print(f"`{cmd}` — ringws --mode chat --workers {workers} per server, Redis {redis} "
      "(Debian's redis-server, no persistence), everything on this machine's 2 vCPUs, loopback. "
      "Median [min–max] over the reps. CPU from /proc/PID/schedstat: per live delivery while the "
      "members are connected, per recovered message from the first reconnect to the last member "
      "recovered (the handshakes included); the servers' CPU summed.\n")
print("| setup | all recovered, ms | per member p50 / p99, ms | servers µs/live delivery | servers µs/recovered message | ratio | Redis µs/recovered message |")
print("|---|---|---|---|---|---|---|")
for setup in ["single", "cluster"]:
    rs = [r for r in rows if r.get("label") == setup]
    if not rs:
        continue
    servers = lambda r, k: sum(v[k] for n, v in r["cpu"].items() if n.startswith("server"))
    live = [servers(r, "live_us_per_delivery") for r in rs]
    rec = [servers(r, "recovered_us_per_message") for r in rs]
    ratio = [b / a for a, b in zip(live, rec) if a > 0]
    red = [r["cpu"]["redis"]["recovered_us_per_message"] for r in rs if "redis" in r["cpu"]]
    print(f"| {setup} | {spread([r['all_recovered_ms'] for r in rs], '{:.0f}')} | "
          f"{spread([r['member_p50_ms'] for r in rs], '{:.0f}')} / {spread([r['member_p99_ms'] for r in rs], '{:.0f}')} | "
          f"{spread(live)} | {spread(rec)} | ×{spread(ratio)} | {spread(red, '{:.3f}') if red else '–'} |")
EOF
cat "$MD"
mkdir -p "$ROOT/benches/results"
cp "$MD" "$ROOT/benches/results/recover-latest.md"
exit "$FAILED"
