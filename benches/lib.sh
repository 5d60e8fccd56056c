# Shared by benches/compare.sh and benches/broadcast.sh (sourced, not run): notes, the JS
# peers' installation, starting and stopping a server on a fresh port, number formatting.
#
# The caller sets ROOT, JSDIR, BUN, BUN_VERSION, NODE, LOGS, BASE_PORT, SERVERS and
# SERVER_CPUS (an array: a CPU pinning prefix such as `taskset -c 0`, or empty), and defines
# server_cmd NAME PORT (the command to run, one word per line).

NOTES=()
note() { echo "note: $*" >&2; NOTES+=("$*"); }

# Builds the load tool (which must build) and ringws (noted and skipped if it does not).
build_bins() {
    (cd "$ROOT" && cargo build --release -p ringws-load)
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
