#!/usr/bin/env bash
# Browser test of the Fade board (run by .ci/run).
#
#   tests/browser/fade.sh [--update-docs]
#
# Starts a 3-node process on a free port range of 127.0.0.1 with REPRAM_MIN_TTL=1 and
# REPRAM_HOME_PAGE=fade, then drives headless Chromium (tests/browser/fade_check.py): posts
# a message with a 10 s TTL (containing `<script>`) on the board of node 1, sees it as text
# on the board of node 2 with a countdown that fades it, opens it by key, takes a screenshot
# (target/screenshots/fade.png; `--update-docs` also copies it to docs/fade.png), and sees
# it disappear from the board after its TTL while a 1-hour message stays. Every process it
# starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
say() { echo "fade-browser-test: $*"; }

# shellcheck source=tests/browser/setup.sh
source "$ROOT/tests/browser/setup.sh"
SCREENSHOT=$SHOTS/fade.png

say "building repram-flux"
cargo build --quiet --bin repram-flux
BIN=$TARGET_DIR/debug/repram-flux

WORK=$(mktemp -d "${TMPDIR:-/tmp}/repram-fade-browser.XXXXXX")
PID=
cleanup() {
    local status=$?
    if [ -n "$PID" ]; then
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    if [ "$status" != 0 ] && [ -f "$WORK/server.log" ]; then
        echo "---- server log (tail)"; tail -n 30 "$WORK/server.log"
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BASE=$(python3 "$ROOT/tests/free_ports.py" 3)
env -i PATH="$PATH" DISCOVERY_DOMAIN=127.0.0.1 BIND_ADDR=127.0.0.1 BASE_PORT="$BASE" \
    MAX_PORTS=3 NODE_COUNT=3 REPRAM_MIN_TTL=1 REPRAM_HOME_PAGE=fade REPRAM_LOG=info \
    "$BIN" >"$WORK/server.log" 2>&1 </dev/null &
PID=$!
for port in "$BASE" $((BASE + 1)) $((BASE + 2)); do
    for _ in $(seq 100); do
        curl -sf --max-time 1 "http://127.0.0.1:$port/ready" >/dev/null && break
        sleep 0.1
    done
    curl -sf --max-time 1 "http://127.0.0.1:$port/ready" >/dev/null ||
        { say "node on port $port not ready within 10 s"; exit 1; }
done
say "3 nodes ready on 127.0.0.1:$BASE-$((BASE + 2))"

"$VENV/bin/python" "$ROOT/tests/browser/fade_check.py" --chromium "$CHROMIUM" \
    --post-url "http://127.0.0.1:$BASE/fade" --view-url "http://127.0.0.1:$((BASE + 1))/" \
    --screenshot "$SCREENSHOT"
publish "$SCREENSHOT" fade.png
