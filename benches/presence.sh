#!/usr/bin/env bash
# What presence costs in Redis (a cluster sharing presence): one ringws server with a Redis of
# its own (started here, no persistence), MEMBERS chat members joined to one room (anonymous:
# each connection is a member, its key a connection id the size of a user id), held by
# `ringws-load idle --rooms 1`. Reports the bytes of the room's presence keys (`MEMORY USAGE`),
# per member, and the script calls (`EVALSHA`, from `INFO commandstats`) per join; then the
# same with presence = false for the room's namespace (expected: no keys, no calls).
#
#   benches/presence.sh [--members N] [--no-build]   (writes benches/results/presence-latest.md)
#
# Needs redis-server and redis-cli. Loopback only; the load is bounded.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MEMBERS=1000
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --members) MEMBERS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) echo "usage: $0 [--members N] [--no-build]" >&2; exit 2 ;;
    esac
done
[ "$BUILD" = 1 ] && (cd "$ROOT" && cargo build --release --locked --bin ringws -p ringws-load)
RINGWS=$ROOT/target/release/ringws
LOAD=$ROOT/target/release/ringws-load
OUT=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; [ -n "${RINGWS_KEEP:-}" ] || rm -rf "$OUT"' EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # WHAT COMMAND...: polls the command for up to 30 s
    local what=$1; shift
    for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "$what: not within 30 s" >&2; exit 1
}

RPORT=$(free_port)
redis-server --port "$RPORT" --save '' --appendonly no --daemonize no >"$OUT/redis.log" 2>&1 &
PIDS+=($!)
R() { redis-cli -p "$RPORT" "$@"; }
wait_for "redis" R ping
# The load tool's room is r0: in the quiet run, its namespace has presence off.
printf '# presence on everywhere\n' >"$OUT/presence.toml"
printf '[[namespace]]\nprefix = "r"\npresence = false\n' >"$OUT/no-presence.toml"
room=r

measure() { # NAME: one server, MEMBERS members in room r0, one result line
    local name=$1 port
    port=$(free_port)
    R flushall >/dev/null
    "$RINGWS" --mode chat --workers 1 --listen "127.0.0.1:$port" --broker "redis://127.0.0.1:$RPORT/" \
        --config "$OUT/$name.toml" --send-rate 0 --join-rate 0 >"$OUT/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_for "ringws listening" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
    wait_for "ringws connected to Redis" bash -c "curl -s http://127.0.0.1:$port/metrics | grep -q '^ringws_broker_connected{.*} 1'"
    R config resetstat >/dev/null
    rm -f "$OUT/ready"
    timeout 120 "$LOAD" idle --url "ws://127.0.0.1:$port/" -c "$MEMBERS" --rooms 1 \
        -d 4 --ready-file "$OUT/ready" --concurrency 128 -q >/dev/null &
    local load=$!
    wait_for "members joined" test -s "$OUT/ready"
    local keys=() bytes=0 entries=0
    if [ "$name" = presence ]; then
        # The bridge sets entries in batches: wait until all are there.
        wait_for "entries in Redis" bash -c "[ \$(redis-cli -p $RPORT --scan --pattern 'ringws:room:${room}0|presence|*' | xargs -r -n1 redis-cli -p $RPORT hlen | awk '{s+=\$1} END {print s+0}') -ge $MEMBERS ]"
    fi
    mapfile -t keys < <(R --scan --pattern "ringws:room:${room}0|presence*")
    for k in "${keys[@]}"; do
        bytes=$((bytes + $(R memory usage "$k" samples 0)))
        [ "$(R type "$k")" = hash ] && entries=$((entries + $(R hlen "$k")))
    done
    local calls
    calls=$(R info commandstats | awk -F'[:=,]' '/^cmdstat_evalsha:/ {print $3}')
    wait "$load" || true
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$name ${#keys[@]} $bytes $entries ${calls:-0}" >>"$OUT/results.txt"
}

measure presence
measure no-presence

python3 - "$OUT/results.txt" "$ROOT/benches/results/presence-latest.md" "$MEMBERS" <<'EOF'
import sys
rows = {l.split()[0]: [int(x) for x in l.split()[1:]] for l in open(sys.argv[1]) if l.strip()}
n = int(sys.argv[3])
out = [f"# Presence in Redis (`benches/presence.sh --members {n}`)", "",
       f"One ringws server sharing presence through its own Redis; {n:,} chat members (anonymous: a member per "
       "connection, keyed by its connection id) join one room and hold. Bytes are `MEMORY USAGE` of the room's "
       "presence keys (this server's hash and the set of servers); calls are `EVALSHA` from `INFO commandstats` "
       "over the joins (each a script that sets an entry and says whether another server has the member).", "",
       "| namespace | keys | bytes | entries | bytes per member | script calls | calls per join |", "|---|---|---|---|---|---|---|"]
for name, label in [("presence", "presence on (default)"), ("no-presence", "presence = false")]:
    keys, b, entries, calls = rows.get(name, [0, 0, 0, 0])
    out.append(f"| {label} | {keys} | {b:,} | {entries:,} | {b / n:.0f} | {calls:,} | {calls / n:.2f} |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
