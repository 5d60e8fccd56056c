# Shared by benches/compare.sh and benches/broadcast.sh (sourced, not run): notes, the JS
# peers' installation, uWebSockets C++'s build, starting and stopping a server on a fresh port, number formatting.
#
# The caller sets ROOT, JSDIR, BUN, BUN_VERSION, NODE, LOGS, BASE_PORT, SERVERS and
# SERVER_CPUS (an array: a CPU pinning prefix such as `taskset -c 0`, or empty), and defines
# server_cmd NAME PORT (the command to run, one word per line).

NOTES=()
note() { echo "note: $*" >&2; NOTES+=("$*"); }

# Builds the load tool (which must build) and ringws (noted and skipped if it does not).
build_bins() {
    (cd "$ROOT" && cargo build --release -p ringws-load -p ringws-floor)
    if ! (cd "$ROOT" && cargo build --release --bin ringws); then
        note "ringws did not build"
    fi
}

wants() { case " $SERVERS " in *" $1 "*) return 0 ;; esac; return 1; }
drop_server() { # NAME WHY
    note "$1 skipped: $2"
    local kept=""
    for s in $SERVERS; do [ "$s" = "$1" ] || kept="$kept $s"; done
    SERVERS=$kept
}

# Installs the npm peers (ws, uWebSockets.js) when NAMES (those of them wanted) are missing.
install_js_peers() { # NAMES...
    local want=() s
    for s in "$@"; do wants "$s" && want+=("$s"); done
    [ ${#want[@]} -gt 0 ] || return 0
    if [ -z "$NODE" ]; then
        for s in "${want[@]}"; do drop_server "$s" "no node on PATH"; done
    elif [ ! -f "$JSDIR/node_modules/ws/package.json" ] \
        || [ ! -f "$JSDIR/node_modules/@trufflesuite/uws-js-unofficial/package.json" ]; then
        echo "installing the JS peers (npm ci in benches/peers-js)" >&2
        if ! (cd "$JSDIR" && npm ci --no-audit --no-fund >&2); then
            for s in "${want[@]}"; do drop_server "$s" "npm ci in benches/peers-js failed"; done
        fi
    fi
}

# Fetches Bun from the npm registry when one of NAMES (Bun servers) is wanted and missing.
install_bun() { # NAMES...
    local want=() s
    for s in "$@"; do wants "$s" && want+=("$s"); done
    [ ${#want[@]} -gt 0 ] || return 0
    if [ ! -x "$BUN" ]; then
        echo "fetching Bun $BUN_VERSION (npm pack @oven/bun-linux-x64@$BUN_VERSION)" >&2
        local tmp
        tmp=$(mktemp -d)
        if (cd "$tmp" && npm pack "@oven/bun-linux-x64@$BUN_VERSION" >&2 && tar xzf ./*.tgz) \
            && [ -x "$tmp/package/bin/bun" ]; then
            mkdir -p "$JSDIR/node_modules/.bun"
            rm -rf "$JSDIR/node_modules/.bun/package"
            mv "$tmp/package" "$JSDIR/node_modules/.bun/package"
        else
            for s in "${want[@]}"; do
                drop_server "$s" "npm pack @oven/bun-linux-x64@$BUN_VERSION failed"
            done
        fi
        rm -rf "$tmp"
    fi
    if [ -x "$BUN" ] && ! "$BUN" --version >/dev/null 2>&1; then
        for s in "${want[@]}"; do drop_server "$s" "$BUN does not run here"; done
    fi
}

# uWebSockets C++ (the peer to beat; on no registry): built from the snapshot tarball
# ($UWS_CPP_TARBALL, by default ../shared/peers/uwebsockets.tar.gz beside the repository) or
# from an unpacked snapshot directory ($UWS_CPP_DIR, holding build.sh and uWebSockets/), into
# target/peers/uws-cpp (rebuilt when the source changes; gcc, g++ and zlib1g-dev needed, about
# 15 s). Sets UWS_CPP_BIN (the directory of EchoServer, BroadcastingEchoServer, load_test) and,
# with benches/peers-cpp/uws-chat.cpp, builds uws-chat there too. NAMES: the uWS C++ servers
# wanted; each is dropped with a note when there is no source or the build fails.
UWS_CPP_BIN=
install_uws_cpp() { # NAMES...
    local want=() s src stamp out="$ROOT/target/peers/uws-cpp"
    for s in "$@"; do wants "$s" && want+=("$s"); done
    [ ${#want[@]} -gt 0 ] || return 0
    local tarball=${UWS_CPP_TARBALL:-$ROOT/../shared/peers/uwebsockets.tar.gz}
    if [ -n "${UWS_CPP_DIR:-}" ]; then
        src=$(cd "$UWS_CPP_DIR" && pwd) || src=
        stamp="dir $src $(find "$src" -type f -newer "$src/build.sh" 2>/dev/null | wc -l)"
    elif [ -f "$tarball" ]; then
        src="$out/src"
        stamp="tar $(sha256sum "$tarball" | cut -d' ' -f1)"
    else
        for s in "${want[@]}"; do
            drop_server "$s" "no uWebSockets C++ source (set UWS_CPP_DIR, or put the snapshot at $tarball)"
        done
        return 0
    fi
    stamp="$stamp $(sha256sum "$ROOT/benches/peers-cpp/uws-chat.cpp" | cut -d' ' -f1)"
    if [ "$(cat "$out/stamp" 2>/dev/null)" != "$stamp" ] || [ ! -x "$out/bin/uws-chat" ]; then
        echo "building uWebSockets C++ ($stamp) in $out" >&2
        rm -rf "$out" && mkdir -p "$out"
        if [ -z "${UWS_CPP_DIR:-}" ]; then
            mkdir -p "$src" && tar -xzf "$tarball" -C "$src" || src=
        fi
        local uws="$src/uWebSockets"
        if [ -n "$src" ] && bash "$src/build.sh" "$out" >&2 \
            && g++ -march=native -O3 -std=c++2b -flto=auto -I"$uws/src" -I"$uws/uSockets/src" \
                "$ROOT/benches/peers-cpp/uws-chat.cpp" $(ls "$out"/obj/*.o | grep -v load_test) \
                -lz -o "$out/bin/uws-chat" >&2
        then
            echo "$stamp" >"$out/stamp"
        else
            for s in "${want[@]}"; do
                drop_server "$s" "uWebSockets C++ did not build (gcc, g++ and zlib1g-dev needed; see above)"
            done
            return 0
        fi
    fi
    UWS_CPP_BIN="$out/bin"
}

# Runs "$@" in a new session with autogroup priority -10.
PRIO='echo -10 > /proc/self/autogroup 2>/dev/null; exec "$@"'

listening() { ss -Hltn "sport = :$1" | grep -q .; }

RUN=0
SERVER_PID=
PORT=
start_server() { # NAME -> SERVER_PID, PORT; returns 1 if it does not come up
    PORT=$((BASE_PORT + RUN % 100))
    RUN=$((RUN + 1))
    if listening "$PORT"; then
        echo "port $PORT is already in use: not starting $1 there" >&2
        return 1
    fi
    local cmd
    mapfile -t cmd < <(server_cmd "$1" "$PORT")
    [ -x "${cmd[0]}" ] || { echo "no binary ${cmd[0]}" >&2; return 1; }
    # Not a process-group leader here, so setsid execs in place and $! is the server's PID
    # (taskset and sh exec too).
    setsid "${SERVER_CPUS[@]}" sh -c "$PRIO" sh "${cmd[@]}" >>"$LOGS/$1.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 50); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID" 2>/dev/null || true
            return 1
        fi
        if listening "$PORT"; then return 0; fi
        sleep 0.1
    done
    stop_server
    return 1
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    for _ in $(seq 20); do
        listening "$PORT" || return 0
        sleep 0.1
    done
    echo "port $PORT still in use after stopping the server" >&2
    return 1
}

commas() { echo "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta'; }

# Load generators send faster than a person: the per-connection rate limits (the server's
# defaults) are lifted where the binary has them (a base build to compare with may not).
# Usage: $(no_rate_limits BINARY) among the server's flags.
no_rate_limits() { "$1" --help 2>/dev/null | grep -q -- '--send-rate' && echo --send-rate 0 --join-rate 0; }
