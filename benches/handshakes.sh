#!/usr/bin/env bash
# Handshakes with a connection token against without, side by side in one run: 10,000 chat
# connections opened at once (ringws-load broadcast's setup, 256 at a time, each then joining a
# room) against a server with
# no tokens, with an HS256 secret and with an ES256 public key; interleaved over --reps runs.
# Every connection carries the same token (a reconnect storm of one user, or the tokens the
# server has seen since it started): the first is verified, the others are remembered. What
# a token costs the first time is `cargo bench --bench jwt`.
#
#   benches/handshakes.sh [--reps N] [--no-build]   (writes benches/results/handshakes-latest.md)
#
# Loopback only; every load is bounded.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=3
BUILD=1
CONNS=${RINGWS_BENCH_CONNS:-10000}
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
KEYS=$ROOT/tests/data/jwt
SECRET="the handshake benchmark's secret!"
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${RINGWS_KEEP:-}" ] || rm -rf "$OUT"' EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# token ALG: a token for user "bench", valid an hour (HS256 with $SECRET, ES256 with the test key).
token() {
    python3 - "$1" "$SECRET" "$KEYS/es256-private.pem" <<'EOF'
import base64, hmac, hashlib, json, subprocess, sys, time
alg, secret, key = sys.argv[1:4]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "bench", "exp": int(time.time()) + 3600}).encode())
msg = f"{head}.{body}".encode()
if alg == "HS256":
    sig = hmac.new(secret.encode(), msg, hashlib.sha256).digest()
else:
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=msg,
                         capture_output=True, check=True).stdout
    # DER SEQUENCE { INTEGER r, INTEGER s } -> r || s, 32 bytes each.
    def ints(d):
        i, out = 2, []
        while i < len(d):
            n = d[i + 1]
            out.append(int.from_bytes(d[i + 2:i + 2 + n], "big"))
            i += 2 + n
        return out
    r, s = ints(der)
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
print(f"{head}.{body}.{b64(sig)}")
EOF
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # NAME: one server, one storm of handshakes, one result line
    local name=$1 port flags=() query=""
    port=$(free_port)
    case "$name" in
        hs256) flags=(--jwt-secret "$SECRET"); query="?token=$(token HS256)" ;;
        es256) flags=(--jwt-public-key "$KEYS/es256-public.pem"); query="?token=$(token ES256)" ;;
    esac
    "$RINGWS" --mode chat --workers 2 --listen "127.0.0.1:$port" "${flags[@]}" \
        >"$OUT/$name.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
    local before after
    before=$(cpu_ticks "$pid")
    # The broadcast scenario speaks the chat protocol (idle would take the welcome for a
    # mismatch): every connection joins one room; one publication a second, a 1 s window.
    timeout 120 "$LOAD" broadcast --url "ws://127.0.0.1:$port/$query" -c "$CONNS" --rooms 1 \
        --publishers 1 --rate 1 -d 1 -w 0 --drain 2 \
        --concurrency 256 --json -q --label "$name" >"$OUT/one.json" || true
    after=$(cpu_ticks "$pid")
    python3 - "$OUT/one.json" "$before" "$after" "$(getconf CLK_TCK)" >>"$OUT/results.jsonl" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
ticks = int(sys.argv[3]) - int(sys.argv[2])
r["server_cpu_us_per_conn"] = ticks / int(sys.argv[4]) * 1e6 / max(r.get("established") or 1, 1)
print(json.dumps(r))
EOF
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

for rep in $(seq "$REPS"); do
    echo "rep $rep of $REPS" >&2
    for name in none hs256 es256; do run "$name"; done
done

python3 - "$OUT/results.jsonl" "$ROOT/benches/results/handshakes-latest.md" "$REPS" "$CONNS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def fig(label, key):
    xs = [r[key] for r in rows if r.get("label") == label and r.get(key) is not None]
    return (min(xs), statistics.median(xs), max(xs)) if xs else (float("nan"),) * 3
out = [f"# Handshakes with a connection token against without (`benches/handshakes.sh --reps {sys.argv[3]}`)", "",
       f"{sys.argv[4]} chat connections opened at once (256 in setup at a time, each joining one room) against one ringws "
       "(2 workers, the load tool on the same 2 cores); every connection carries the same token, so "
       "all but the first are remembered. Median [min–max] of the runs; the server's CPU per "
       "connection is its user+system time over the run (the storm, the joins and a 1 s window "
       "with one publication; clock ticks of 10 ms) divided by the connections.", "",
       "| server | established | handshakes/s | × none | server CPU µs per connection | × none |",
       "|---|---|---|---|---|---|"]
base = {}
for label, name in [("none", "no tokens"), ("hs256", "HS256 secret"), ("es256", "ES256 public key")]:
    est = fig(label, "established"); rate = fig(label, "setup_conns_per_sec"); cpu = fig(label, "server_cpu_us_per_conn")
    base.setdefault("rate", rate[1]); base.setdefault("cpu", cpu[1])
    ratio = lambda a, b: a / b if b else float("nan")
    out.append(f"| {name} | {est[0]:.0f} | {rate[1]:.0f} [{rate[0]:.0f}–{rate[2]:.0f}] | ×{ratio(rate[1], base['rate']):.2f} "
               f"| {cpu[1]:.1f} [{cpu[0]:.1f}–{cpu[2]:.1f}] | ×{ratio(cpu[1], base['cpu']):.2f} |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
