#!/usr/bin/env bash
# benches/soak.py's verdicts on made-up soak directories: a clean run passes and writes its CSV
# and SVG; a lost, a reordered or an undelivered message, a failed churn cycle, RSS growing
# after the warm-up, a dead server each fail it, with the reason named.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "soak_verdict: FAIL: $*" >&2; exit 1; }

# make DIR RSS_GROWTH_KIB_PER_SAMPLE LOST OUT_OF_ORDER UNDELIVERED CHURN_ERRORS ALIVE_AT_END
make() {
    local dir=$1 growth=$2 lost=$3 ooo=$4 undelivered=$5 churn_errors=$6 alive=$7
    mkdir -p "$dir"
    python3 - "$dir" "$growth" "$lost" "$ooo" "$undelivered" "$churn_errors" "$alive" <<'EOF'
import json, sys
d, growth, lost, ooo, und, cerr, alive = sys.argv[1], float(sys.argv[2]), *map(int, sys.argv[3:])
t0 = 1_800_000_000.0
with open(f"{d}/samples.csv", "w") as f:
    f.write("unix,rss_kib,fds,churn_cycles,alive\n")
    for i in range(13):  # 2 minutes, every 10 s
        rss = 50_000 + growth * i + (300 if i % 2 else 0)  # noise
        f.write(f"{t0 + 10 * i},{rss},{900 + i % 3},{i},{alive if i == 12 else 1}\n")
parts = [{"ended_unix_secs": t0 + 10 * (i + 1), "secs": 10, "messages": 2000,
          "p50_us": 800, "p99_us": 3000 + 10 * i, "max_us": 9000} for i in range(11)]
for name in ("plain", "deflate"):
    r = {"mode": "broadcast", "connections": 800, "established": 800, "errors": {"connect": 0},
         "notes": [], "lost_gaps": lost, "undelivered": und, "out_of_order": ooo,
         "joins_missing": 0, "windows": parts}
    with open(f"{d}/steady-{name}.json", "w") as f:
        f.write(json.dumps(r) + "\n")
with open(f"{d}/churn-close.jsonl", "w") as f:
    for i in range(5):
        errors = {"io": cerr if i == 3 else 0}
        f.write(json.dumps({"established": 200, "errors": errors, "notes": []}) + "\n")
EOF
}

verdict() { # DIR -> stdout+stderr, exit status in $?
    python3 benches/soak.py "$1" --warmup 30 --max-slope 1024 >"$1/out" 2>&1
}

make "$work/clean" 0 0 0 0 0 1
verdict "$work/clean" || { cat "$work/clean/out"; fail "a clean soak failed"; }
grep -q "RSS slope after the 30 s warm-up" "$work/clean/out" || fail "no slope line"
[ "$(wc -l <"$work/clean/soak.csv")" = 14 ] || fail "soak.csv: one row per sample and a header"
head -1 "$work/clean/soak.csv" | grep -q "deflate_p99_ms" || fail "soak.csv lacks the groups' p99"
grep -q "<polyline" "$work/clean/soak.svg" || fail "soak.svg has no line"

check_fails() { # NAME WHAT-THE-OUTPUT-SAYS make-ARGS...
    local name=$1 says=$2
    shift 2
    make "$work/$name" "$@"
    if verdict "$work/$name"; then
        cat "$work/$name/out"
        fail "$name passed"
    fi
    grep -q "$says" "$work/$name/out" || { cat "$work/$name/out"; fail "$name: no '$says'"; }
}
check_fails lost "lost_gaps 3" 0 3 0 0 0 1
check_fails reordered "out_of_order 1" 0 0 1 0 0 1
check_fails undelivered "undelivered 2" 0 0 0 2 0 1
check_fails churn "cycle 4: errors" 0 0 0 0 1 1
# 2,000 KiB more every 10 s: 12,000 KiB a minute.
check_fails growing "RSS grew" 2000 0 0 0 0 1
check_fails died "the server died" 0 0 0 0 0 0
echo "soak_verdict: all verdicts as expected"
