#!/usr/bin/env bash
# The Debian package, built and installed on this machine as an operator would: cargo-deb
# (installed when missing) packs the release binary, the unit, the example configuration, the
# sysctl.d drop-in and the manual page (generated from the clap definitions); `dpkg -i` installs
# it; `systemd-analyze verify` checks the installed unit; the installed binary runs as the
# package's user with the installed configuration until /healthz answers, and stops with exit
# code 0 on SIGTERM; `dpkg --purge` removes it again. Needs root (dpkg, the user).
#
#   tests/package.sh            (from anywhere; the .deb is left in target/debian/)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[package] %s\n' "$*"; }
die() { printf '[package] FAIL: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "dpkg -i and the package's user need root"

CARGO_DEB_VERSION=3.6.2
if [ "$(cargo deb --version 2>/dev/null | awk '{print $2}')" != "$CARGO_DEB_VERSION" ]; then
    say "installing cargo-deb $CARGO_DEB_VERSION"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi
missing=()
for tool in systemd-analyze:systemd dpkg-shlibdeps:dpkg-dev adduser:adduser curl:curl groff:groff-base; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update -q >/dev/null \
            && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi

say "release build, manual page, package"
# With the load tool, as benches/soak.sh builds them (the test command runs it next: one build).
cargo build --release --locked -p ringws -p ringws-load --bins
mkdir -p target/man
target/release/ringws --print-man-page >target/man/ringws.1
# The page renders without a warning (-ww: all of them), and names every long flag.
warnings=$(groff -man -Tutf8 -ww -z target/man/ringws.1 2>&1) || die "groff: $warnings"
[ -z "$warnings" ] || die "groff warns on the manual page: $warnings"
for flag in $(target/release/ringws --help | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u); do
    # roff writes a hyphen as \-
    grep -qF -- "${flag//-/\\-}" target/man/ringws.1 || die "the manual page lacks $flag"
done
gzip -9nf target/man/ringws.1
rm -rf target/debian
cargo deb --no-build --strip --output target/debian/ >/dev/null
deb=$(ls target/debian/ringws_*.deb)
say "built $deb ($(du -k "$deb" | cut -f1) KiB)"

# Whatever an earlier run left installed goes first.
dpkg --purge ringws >/dev/null 2>&1 || true
say "dpkg -i"
dpkg -i "$deb"
trap 'dpkg --purge ringws >/dev/null 2>&1 || true' EXIT
for f in /usr/bin/ringws /usr/lib/systemd/system/ringws.service /etc/ringws/ringws.toml \
    /usr/lib/sysctl.d/90-ringws.conf /usr/share/man/man1/ringws.1.gz \
    /usr/share/doc/ringws/README.md /usr/share/doc/ringws/grafana-dashboard.json; do
    dpkg -S "$f" >/dev/null 2>&1 || die "$f is not in the package"
    [ -e "$f" ] || die "$f was not installed"
done
dpkg-query -W -f='${Conffiles}\n' ringws | grep -q /etc/ringws/ringws.toml \
    || die "/etc/ringws/ringws.toml is not a conffile (an upgrade would overwrite the operator's edits)"
getent passwd ringws >/dev/null || die "no user ringws"
[ "$(stat -c '%U:%G %a' /etc/ringws/ringws.toml)" = "root:ringws 640" ] \
    || die "/etc/ringws/ringws.toml is $(stat -c '%U:%G %a' /etc/ringws/ringws.toml), not root:ringws 640"
cmp -s tuning/ringws.toml /etc/ringws/ringws.toml || die "the installed configuration differs"
/usr/bin/ringws --version | grep -q "ringws $(cargo metadata --no-deps --format-version 1 \
    | python3 -c 'import json,sys; print([p for p in json.load(sys.stdin)["packages"] if p["name"]=="ringws"][0]["version"])')" \
    || die "the installed binary's --version: $(/usr/bin/ringws --version)"

say "systemd-analyze verify"
# Run from an empty directory: verify also loads units named in the current one.
out=$(cd "$(mktemp -d)" && systemd-analyze verify /usr/lib/systemd/system/ringws.service 2>&1) \
    || die "systemd-analyze verify: $out"
[ -z "$out" ] || die "systemd-analyze verify warns: $out"
grep -q '^User=ringws$' /usr/lib/systemd/system/ringws.service || die "the unit does not run as ringws"
grep -q '^ExecStart=/usr/bin/ringws --config /etc/ringws/ringws.toml --handoff-socket /run/ringws/handoff.sock$' \
    /usr/lib/systemd/system/ringws.service || die "the unit does not start the installed binary"
MANWIDTH=80 man -l /usr/share/man/man1/ringws.1.gz 2>/dev/null | grep -q -- '--print-config' \
    || zcat /usr/share/man/man1/ringws.1.gz | grep -q -- 'print\\-config' \
    || die "the installed manual page lacks --print-config"

say "the installed binary, as ringws, with the installed configuration, until /healthz answers"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
# setpriv execs in place (runuser would stay as a parent and answer SIGTERM itself).
setpriv --reuid=ringws --regid=ringws --init-groups /usr/bin/ringws --config /etc/ringws/ringws.toml \
    --listen "127.0.0.1:$port" 2>"$log" &
pid=$!
answer=
for _ in $(seq 1 300); do
    answer=$(curl -s --max-time 2 "http://127.0.0.1:$port/healthz" || true)
    [ -n "$answer" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "the installed server exited"; }
    sleep 0.1
done
[ -n "$answer" ] || { cat "$log" >&2; die "/healthz did not answer within 30 s"; }
say "/healthz: $answer"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[ "$status" = 0 ] || { cat "$log" >&2; die "exit code $status after SIGTERM"; }
grep -q "listening on ws://127.0.0.1:$port/" "$log" || { cat "$log" >&2; die "no start line"; }

say "dpkg --purge"
trap - EXIT
dpkg --purge ringws >/dev/null
[ ! -e /usr/bin/ringws ] || die "/usr/bin/ringws is left after the purge"
[ ! -e /etc/ringws ] || die "/etc/ringws is left after the purge"
say "the package installs, serves and goes"
