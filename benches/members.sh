#!/usr/bin/env bash
# Memory per idle chat member against per bare connection, side by side in one run: one ringws
# worker, 10,000 connections held by `ringws-load idle`, the server's RSS sampled at 2,000 and
# at 10,000; the slope between the two is what each connection adds (the allocator's page
# steps at the start do not count). Interleaved over --reps runs:
#
#   echo        bare WebSocket connections (ringws's default mode)
#   member      chat connections, each in one of 10 rooms (anonymous)
#   token       the same with a JWT (HS256; the identity kept per connection)
#   no-presence the same rooms in a namespace with presence = false (nothing tracked per member)
#
#   benches/members.sh [--reps N] [--conns N] [--no-build]   (writes benches/results/members-latest.md)
#
# Loopback only; every load is bounded (connections and time).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=3
BUILD=1
CONNS=10000
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) echo "usage: $0 [--reps N] [--conns N] [--no-build]" >&2; exit 2 ;;
    esac
done
FIRST=$((CONNS / 5))
[ "$BUILD" = 1 ] && (cd "$ROOT" && cargo build --release --locked --bin ringws -p ringws-load)
RINGWS=$ROOT/target/release/ringws
LOAD=$ROOT/target/release/ringws-load
OUT=$(mktemp -d)
LOGS=$OUT
BASE_PORT=64700
SERVER_CPUS=()
trap 'stop_server || true; [ -n "${RINGWS_KEEP:-}" ] || rm -rf "$OUT"' EXIT
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

SECRET="the members benchmark's secret!!"
TOKEN=$(python3 - "$SECRET" <<'EOF'
import base64, hmac, hashlib, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "bench-user", "name": "Bench", "exp": int(time.time()) + 7200}).encode())
sig = hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
print(f"{head}.{body}.{b64(sig)}")
EOF
)
printf '[[namespace]]\nprefix = "r"\npresence = false\n' >"$OUT/quiet.toml"

server_cmd() { # NAME PORT
    local common=("$RINGWS" --workers 1 --listen "127.0.0.1:$2")
    case "$1" in
        echo) printf '%s\n' "${common[@]}" --mode echo ;;
        member) printf '%s\n' "${common[@]}" --mode chat ;;
        token) printf '%s\n' "${common[@]}" --mode chat --jwt-secret "$SECRET" ;;
        no-presence) printf '%s\n' "${common[@]}" --mode chat --config "$OUT/quiet.toml" ;;
    esac
}

for rep in $(seq "$REPS"); do
    for name in echo member token no-presence; do
        echo "rep $rep of $REPS: $name" >&2
        start_server "$name" || { echo "$name did not start" >&2; exit 1; }
        args=(idle -c "$CONNS" --sample-at "$FIRST" -d 3 --server-pid "$SERVER_PID"
              --concurrency 256 --json -q --label "$name")
        case "$name" in
            echo) args+=(--addr "127.0.0.1:$PORT") ;;
            token) args+=(--url "ws://127.0.0.1:$PORT/?token=$TOKEN" --rooms 10) ;;
            *) args+=(--url "ws://127.0.0.1:$PORT/" --rooms 10) ;;
        esac
        timeout 300 "$LOAD" "${args[@]}" >>"$OUT/results.jsonl"
        stop_server
    done
done

python3 - "$OUT/results.jsonl" "$ROOT/benches/results/members-latest.md" "$REPS" "$CONNS" "$FIRST" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def fig(label):
    xs = [r["rss_slope_per_conn"] for r in rows if r.get("label") == label and r.get("rss_slope_per_conn") is not None]
    return (min(xs), statistics.median(xs), max(xs)) if xs else (float("nan"),) * 3
out = [f"# Memory per idle chat member (`benches/members.sh --reps {sys.argv[3]}`)", "",
       f"One ringws worker; `ringws-load idle` holds {int(sys.argv[4]):,} connections (chat members: each "
       f"joined to one of 10 rooms, the last to all ten) and the server's RSS is sampled after {int(sys.argv[5]):,} "
       "and after all of them, each after a 3 s hold; the slope between the two is the user memory each "
       "connection adds (the kernel's socket memory is not in RSS). Median [min–max] of the runs, "
       "bytes per connection; the last column is what a chat member adds to a bare connection.", "",
       "| setup | RSS slope, B per connection | over a bare connection |", "|---|---|---|"]
base = fig("echo")[1]
for label, name in [("echo", "bare WebSocket connection (echo mode)"), ("member", "chat member, anonymous, one room"),
                    ("token", "chat member with a JWT (HS256), one room"),
                    ("no-presence", "chat member, one room with presence = false")]:
    lo, med, hi = fig(label)
    extra = "" if label == "echo" else f"+{med - base:.0f}"
    out.append(f"| {name} | {med:.0f} [{lo:.0f}–{hi:.0f}] | {extra} |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
