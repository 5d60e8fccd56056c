#!/usr/bin/env bash
# The chat page in a real browser: Debian's chromium driven by playwright-core (npm). Installs
# both when missing (apt needs root, as on CI), builds the server, runs chat.test.mjs with
# node's test runner. RINGWS_SCREENSHOTS=DIR keeps screenshots of the pages.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x /usr/bin/chromium ]; then
    echo "installing Debian's chromium (apt)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -f node_modules/playwright-core/package.json ]; then
    npm ci --no-audit --no-fund >&2
fi
(cd ../.. && cargo build --release --locked --bin ringws)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RINGWS_BIN=$(cd ../.. && pwd)/target/release/ringws RINGWS_PORT=$port node --test chat.test.mjs
