#!/usr/bin/env bash
# Install the Autobahn|Testsuite (`wstest`) into a private cache directory.
#
#   tests/autobahn/install.sh            # idempotent; fast no-op when already installed
#   AUTOBAHN_FORCE=1 tests/autobahn/install.sh   # rebuild (re-uses downloaded files)
#
# The suite is Python 2.7 only and Debian 12 ships no python2.7, so this:
#   1. installs missing host packages (gcc, python3-venv, ...) with apt-get;
#   2. downloads (does NOT install) Debian 11 "bullseye" python2.7 packages with a
#      private apt configuration, using the Debian mirror named in this host's own
#      apt sources, and unpacks them with `dpkg-deb -x` into $AUTOBAHN_HOME/py27;
#   3. creates a Python 2.7 virtualenv with virtualenv<20.22 (run from a Python 3 venv);
#   4. pip-installs a pinned dependency set plus autobahntestsuite;
#   5. writes $AUTOBAHN_HOME/bin/wstest, a wrapper that sets LD_LIBRARY_PATH etc.
#
# Environment:
#   AUTOBAHN_HOME                 cache dir (default $HOME/.cache/ringws-autobahn)
#   AUTOBAHN_FORCE=1              ignore the stamp file and rebuild
#   AUTOBAHN_APT_MIRROR           override the Debian archive URI (default: from apt sources)
#   AUTOBAHN_APT_SECURITY_MIRROR  override the Debian security URI (default: from apt sources)
set -euo pipefail

AUTOBAHNTESTSUITE_VERSION=25.10.1
# Bump INSTALL_REVISION whenever the recipe below changes, so old caches are rebuilt.
INSTALL_REVISION=1
STAMP_CONTENT="ringws-autobahn rev=${INSTALL_REVISION} autobahntestsuite=${AUTOBAHNTESTSUITE_VERSION}"

AUTOBAHN_HOME="${AUTOBAHN_HOME:-$HOME/.cache/ringws-autobahn}"
DEB_PACKAGES=(python2.7 python2.7-minimal libpython2.7-minimal libpython2.7-stdlib libpython2.7
              libpython2.7-dev python2.7-dev libssl1.1 libffi7)
# Pinned set that resolves under Python 2.7 (the PyPI package declares no dependencies).
PY2_REQUIREMENTS=(
  setuptools==44.0.0 txaio==2.1.0 incremental==16.10.1 pyOpenSSL==19.1.0 cryptography==3.3.2
  Twisted==19.10.0 zope.interface==4.6.0 Jinja2==2.11.3 MarkupSafe==1.1.1 Werkzeug==1.0.1
  klein==17.10.0 service-identity==18.1.0 unittest2==1.1.0 six==1.16.0
  "autobahn[accelerate,twisted]==0.10.9" wsaccel==0.6.6 ujson==2.0.3 attrs==21.4.0
  Automat==22.10.0 constantly==15.1.0 hyperlink==21.0.0 idna==2.10 PyHamcrest==1.10.1
  cffi==1.15.1 pycparser==2.21 enum34==1.1.10 ipaddress==1.0.23 pyasn1==0.5.1
  pyasn1-modules==0.3.0 traceback2==1.4.0 linecache2==1.0.0 typing==3.10.0.0
)

say()  { printf '[autobahn-install] %s\n' "$*"; }
die()  { printf '\n[autobahn-install] ERROR: %s\n' "$*" >&2; exit 1; }

CURRENT_STEP="start"
CURRENT_LOG=""
on_error() {
  local rc=$? line=${1:-?}
  trap - ERR
  printf '\n[autobahn-install] ERROR: step "%s" failed (exit %s, install.sh line %s)\n' \
    "$CURRENT_STEP" "$rc" "$line" >&2
  if [[ -n "$CURRENT_LOG" && -s "$CURRENT_LOG" ]]; then
    printf '[autobahn-install] last lines of %s:\n' "$CURRENT_LOG" >&2
    tail -n 40 "$CURRENT_LOG" | sed 's/^/    /' >&2
  fi
  printf '[autobahn-install] nothing was marked installed; re-run to retry (downloads are kept).\n' >&2
  exit "$rc"
}
trap 'on_error $LINENO' ERR

# step NAME: announce a step; its noisy output goes to $AUTOBAHN_HOME/logs/NAME.log
step() {
  CURRENT_STEP="$1"
  CURRENT_LOG="$AUTOBAHN_HOME/logs/$1.log"
  : >"$CURRENT_LOG"
  say "$2"
}
# logged CMD...: run CMD with stdout+stderr appended to the current step's log
logged() { "$@" >>"$CURRENT_LOG" 2>&1; }

mkdir -p "$AUTOBAHN_HOME" || die "cannot create AUTOBAHN_HOME=$AUTOBAHN_HOME"
AUTOBAHN_HOME="$(cd "$AUTOBAHN_HOME" && pwd -P)"
mkdir -p "$AUTOBAHN_HOME/logs"
STAMP="$AUTOBAHN_HOME/.installed"
WRAPPER="$AUTOBAHN_HOME/bin/wstest"

# Serialise concurrent installs into the same cache.
exec 9>"$AUTOBAHN_HOME/.lock"
flock 9

if [[ "${AUTOBAHN_FORCE:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_CONTENT" \
      && -x "$WRAPPER" ]]; then
  say "already installed ($STAMP_CONTENT) in $AUTOBAHN_HOME"
  exit 0
fi
rm -f "$STAMP"
START_TIME=$SECONDS
say "installing autobahntestsuite $AUTOBAHNTESTSUITE_VERSION into $AUTOBAHN_HOME"

# ---------------------------------------------------------------------------
# 1. host packages
# ---------------------------------------------------------------------------
step host-packages "checking host packages"
command -v apt-get >/dev/null || die "apt-get not found: this installer needs a Debian(-like) host"
HOST_ARCH="$(dpkg --print-architecture)"
case "$HOST_ARCH" in
  amd64) TRIPLET=x86_64-linux-gnu ;;
  arm64) TRIPLET=aarch64-linux-gnu ;;
  *) die "unsupported architecture $HOST_ARCH (expected amd64 or arm64)" ;;
esac
# Libraries the bullseye python2.7 links against that bookworm still ships.
NEEDED_HOST_PKGS=(ca-certificates debian-archive-keyring gcc libc6-dev python3 python3-venv
                  libexpat1 zlib1g libbz2-1.0 liblzma5 libsqlite3-0 libdb5.3 libreadline8
                  libncursesw6 libtinfo6 libtirpc3 libnsl2 libcrypt1 media-types)
missing=()
for p in "${NEEDED_HOST_PKGS[@]}"; do
  if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != installed ]]; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  say "apt-get install ${missing[*]}"
  SUDO=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
    SUDO=(sudo)
  fi
  logged "${SUDO[@]}" apt-get update \
    || die "apt-get update failed (see $CURRENT_LOG)"
  logged "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed (see $CURRENT_LOG)"
fi
# Debian's own python3 (it has the venv module); pyenv or similar shims may shadow `python3`.
HOST_PY3=/usr/bin/python3
[[ -x "$HOST_PY3" ]] || HOST_PY3="$(command -v python3)" || die "python3 not found"

# ---------------------------------------------------------------------------
# 2. Debian 11 python2.7 packages via a private apt configuration
# ---------------------------------------------------------------------------
APT_DIR="$AUTOBAHN_HOME/apt"
DEB_DIR="$AUTOBAHN_HOME/debs"
mkdir -p "$DEB_DIR"
have_all_debs() {
  local p
  for p in "${DEB_PACKAGES[@]}"; do
    compgen -G "$DEB_DIR/${p}_*_*.deb" >/dev/null || return 1
  done
}
if have_all_debs; then
  step debs "bullseye python2.7 packages already downloaded"
else
  step debs "downloading bullseye python2.7 packages"
  # The host's configured Debian mirrors, as apt itself parses them (.list and deb822 .sources).
  CODENAME="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  mapfile -t TARGETS < <(apt-get indextargets --no-release-info \
      --format '$(REPO_URI) $(RELEASE) $(COMPONENT) $(TARGET_OF)' 'Identifier: Packages' \
      2>/dev/null | sort -u)
  pick_uri() { # pick_uri SUITE...: first deb source URI whose suite is one of SUITE...
    local want t uri rel comp of
    for want in "$@"; do
      for t in "${TARGETS[@]}"; do
        read -r uri rel comp of <<<"$t"
        if [[ "$of" == deb && "$comp" == main && "$rel" == "$want" ]]; then
          echo "$uri"; return 0
        fi
      done
    done
    return 1
  }
  MIRROR="${AUTOBAHN_APT_MIRROR:-$(pick_uri "$CODENAME" "$CODENAME-updates" stable oldstable \
                                                 "$CODENAME-backports" || true)}"
  SECURITY_MIRROR="${AUTOBAHN_APT_SECURITY_MIRROR:-$(pick_uri "$CODENAME-security" \
                                                 "$CODENAME/updates" || true)}"
  [[ -n "$MIRROR" ]] || die "no Debian '$CODENAME main' source found in the host's apt sources
  (/etc/apt/sources.list, /etc/apt/sources.list.d/); set AUTOBAHN_APT_MIRROR=URI"
  say "  mirror: $MIRROR${SECURITY_MIRROR:+  security: $SECURITY_MIRROR}"

  KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
  [[ -r "$KEYRING" ]] || die "missing $KEYRING (package debian-archive-keyring)"
  rm -rf "$APT_DIR"
  mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/archives/partial" "$APT_DIR/sources.list.d" \
           "$APT_DIR/preferences.d"
  : >"$APT_DIR/status"
  {
    printf 'Types: deb\nURIs: %s\nSuites: bullseye\nComponents: main\n' "$MIRROR"
    printf 'Architectures: %s\nTargets: Packages\nSigned-By: %s\n' "$HOST_ARCH" "$KEYRING"
    if [[ -n "$SECURITY_MIRROR" ]]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: bullseye-security\nComponents: main\n' \
        "$SECURITY_MIRROR"
      printf 'Architectures: %s\nTargets: Packages\nSigned-By: %s\n' "$HOST_ARCH" "$KEYRING"
    fi
  } >"$APT_DIR/sources.list.d/bullseye.sources"
  # Read after the host's configuration (so proxies/auth still apply); drops the host's
  # update hooks and extra index targets, and points every state/cache dir at $APT_DIR.
  cat >"$APT_DIR/apt.conf" <<EOF
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
#clear DPkg::Post-Invoke;
#clear Acquire::IndexTargets::deb::DEP-11;
#clear Acquire::IndexTargets::deb::DEP-11-icons-small;
#clear Acquire::IndexTargets::deb::DEP-11-icons;
#clear Acquire::IndexTargets::deb::DEP-11-icons-hidpi;
#clear Acquire::IndexTargets::deb::CNF;
Dir::Etc::SourceList "$APT_DIR/sources.list";
Dir::Etc::SourceParts "$APT_DIR/sources.list.d";
Dir::Etc::Preferences "$APT_DIR/preferences";
Dir::Etc::PreferencesParts "$APT_DIR/preferences.d";
Dir::State "$APT_DIR";
Dir::State::Lists "$APT_DIR/lists";
Dir::State::status "$APT_DIR/status";
Dir::State::extended_states "$APT_DIR/extended_states";
Dir::Cache "$APT_DIR";
Dir::Cache::archives "$APT_DIR/archives";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Architecture "$HOST_ARCH";
APT::Architectures { "$HOST_ARCH"; };
APT::Sandbox::User "root";
Debug::NoLocking "true";
Acquire::Languages "none";
EOF
  PAPT=(apt-get -q -c "$APT_DIR/apt.conf")
  logged "${PAPT[@]}" update || die "private 'apt-get update' for bullseye failed (see $CURRENT_LOG)"
  rm -f "$DEB_DIR"/*.deb
  (cd "$DEB_DIR" && logged "${PAPT[@]}" download "${DEB_PACKAGES[@]}") \
    || die "downloading ${DEB_PACKAGES[*]} failed (see $CURRENT_LOG)"
  have_all_debs || die "apt-get download did not produce all of ${DEB_PACKAGES[*]}"
fi

# ---------------------------------------------------------------------------
# 3. unpack into a private prefix
# ---------------------------------------------------------------------------
PREFIX="$AUTOBAHN_HOME/py27"
PY27="$PREFIX/usr/bin/python2.7"
LIBDIR="$PREFIX/usr/lib/$TRIPLET"
step unpack "unpacking $(ls "$DEB_DIR"/*.deb | wc -l) packages into $PREFIX"
rm -rf "${PREFIX:?}" "${AUTOBAHN_HOME:?}/venv" "${AUTOBAHN_HOME:?}/tools" "${AUTOBAHN_HOME:?}/bin"
mkdir -p "$PREFIX"
for deb in "$DEB_DIR"/*.deb; do
  logged dpkg-deb -x "$deb" "$PREFIX" || { rm -f "$deb"; die "dpkg-deb -x $deb failed (removed it; re-run to download it again)"; }
done
export LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unset PYTHONHOME PYTHONPATH
export PYTHONNOUSERSITE=1
logged "$PY27" -c 'import ssl, ctypes, zlib, hashlib, sqlite3; print(ssl.OPENSSL_VERSION)' \
  || die "the unpacked python2.7 does not run (see $CURRENT_LOG)"

# ---------------------------------------------------------------------------
# 4. virtualenv<20.22 in a Python 3 venv, then the Python 2.7 venv
# ---------------------------------------------------------------------------
export PIP_CACHE_DIR="$AUTOBAHN_HOME/pip-cache"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export VIRTUALENV_OVERRIDE_APP_DATA="$AUTOBAHN_HOME/virtualenv-app-data"
step venv "creating the Python 2.7 virtualenv (virtualenv<20.22)"
logged "$HOST_PY3" -m venv "$AUTOBAHN_HOME/tools" || die "python3 -m venv failed (python3-venv?)"
logged "$AUTOBAHN_HOME/tools/bin/pip" install -q 'virtualenv<20.22' \
  || die "pip install 'virtualenv<20.22' failed (see $CURRENT_LOG)"
logged "$AUTOBAHN_HOME/tools/bin/virtualenv" --no-download --no-periodic-update -p "$PY27" \
    "$AUTOBAHN_HOME/venv" || die "virtualenv -p python2.7 failed (see $CURRENT_LOG)"

# ---------------------------------------------------------------------------
# 5. pinned dependencies + autobahntestsuite
# ---------------------------------------------------------------------------
step pip "pip-installing ${#PY2_REQUIREMENTS[@]} pinned packages + autobahntestsuite (builds wsaccel)"
VPY="$AUTOBAHN_HOME/venv/bin/python"
printf '%s\n' "${PY2_REQUIREMENTS[@]}" >"$AUTOBAHN_HOME/requirements-py27.txt"
# C extensions without a cp27 wheel (wsaccel, ...) build against the unpacked headers; the
# interpreter's sysconfig still names /usr/include/python2.7, which does not exist here.
export CFLAGS="-I$PREFIX/usr/include/python2.7 -I$PREFIX/usr/include/$TRIPLET/python2.7 -I$PREFIX/usr/include"
export CPPFLAGS="$CFLAGS"
export LDFLAGS="-L$LIBDIR"
logged nice -n 10 "$VPY" -m pip install --no-deps --prefer-binary \
    -r "$AUTOBAHN_HOME/requirements-py27.txt" \
  || die "pip install of the pinned Python 2.7 requirements failed (see $CURRENT_LOG)"
logged "$VPY" -m pip install --no-deps "autobahntestsuite==$AUTOBAHNTESTSUITE_VERSION" \
  || die "pip install autobahntestsuite==$AUTOBAHNTESTSUITE_VERSION failed (see $CURRENT_LOG)"
logged "$VPY" -m pip check || die "'pip check' reports broken requirements (see $CURRENT_LOG)"
unset CFLAGS CPPFLAGS LDFLAGS

# ---------------------------------------------------------------------------
# 6. wrapper + smoke test
# ---------------------------------------------------------------------------
step wrapper "writing $WRAPPER"
mkdir -p "$AUTOBAHN_HOME/bin"
cat >"$WRAPPER" <<EOF
#!/bin/sh
# Generated by ringws tests/autobahn/install.sh: runs wstest from the private Python 2.7 venv.
export LD_LIBRARY_PATH="$LIBDIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
unset PYTHONHOME PYTHONPATH
export PYTHONNOUSERSITE=1
# Python 2.7 deprecation warnings from cryptography etc. are noise here.
export PYTHONWARNINGS="\${PYTHONWARNINGS:-ignore}"
exec "$AUTOBAHN_HOME/venv/bin/python" "$AUTOBAHN_HOME/venv/bin/wstest" "\$@"
EOF
chmod +x "$WRAPPER"
logged "$VPY" -c 'import wsaccel, ujson, twisted, autobahn, autobahntestsuite; from autobahntestsuite import wstest; print(autobahntestsuite.__version__)' \
  || die "importing autobahntestsuite failed (see $CURRENT_LOG)"
logged "$WRAPPER" --help || die "'$WRAPPER --help' failed (see $CURRENT_LOG)"

echo "$STAMP_CONTENT" >"$STAMP"
say "done in $((SECONDS - START_TIME)) s: $WRAPPER"
