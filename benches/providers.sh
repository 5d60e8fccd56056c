#!/usr/bin/env bash
# rustls' crypto providers side by side (ring, aws-lc-rs): server CPU per full and resumed
# TLS 1.3 handshake, AES-128-GCM sealing, the memory of an expanded key (benches/providers:
# a crate of its own, since aws-lc-rs builds AWS-LC from C). One process pinned to CPU 0,
# the providers interleaved over --reps runs; median [min–max] and the ratio.
#
#   benches/providers.sh [--reps N]   (writes benches/results/providers-latest.md)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=5
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS=$2; shift 2 ;;
        *) echo "usage: $0 [--reps N]" >&2; exit 2 ;;
    esac
done
cargo build --release --manifest-path "$ROOT/benches/providers/Cargo.toml"
table=$(taskset -c 0 "$ROOT/benches/providers/target/release/ringws-providers" --reps "$REPS")
{
    echo "# rustls' crypto providers (\`benches/providers.sh --reps $REPS\`)"
    echo
    echo "One process pinned to CPU 0, $(date -u '+%Y-%m-%d'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); $REPS interleaved reps, median [min–max]. TLS 1.3, X25519, AES-128-GCM, a P-256 certificate; handshakes in memory (the server's time in its calls); records sealed in place as \`src/tls/record.rs\` does."
    echo
    echo "$table"
} | tee "$ROOT/benches/results/providers-latest.md"
