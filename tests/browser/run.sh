#!/usr/bin/env bash
# Browser test of the dashboard (run by .ci/run).
#
# Installs Chromium from Debian if missing, builds repram-flux, starts a 3-node mesh on a
# free high port range of 127.0.0.1 as TWO processes (NODE_COUNT=2 and NODE_COUNT=1, so one
# node can be SIGKILLed alone), writes a key through the API, then drives headless Chromium
# (tests/browser/dashboard_check.py, DevTools protocol) to check that the page shows 3 alive
# nodes and the key on every node, that its form writes and reads a key, saves a screenshot
# ($SCREENSHOT, default target/screenshots/dashboard.png; `--update-docs` also copies it to
# docs/dashboard.png), kills the 1-node process and checks that the open page marks that
# node dead. Every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
say() { echo "browser-test: $*"; }

# shellcheck source=tests/browser/setup.sh
source "$ROOT/tests/browser/setup.sh"
SCREENSHOT=${SCREENSHOT:-$SHOTS/dashboard.png}

say "building repram-flux"
cargo build --quiet --bin repram-flux
BIN=$TARGET_DIR/debug/repram-flux

# --- cluster ---------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/repram-browser.XXXXXX")
PIDS=()
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    if [ "$status" != 0 ]; then
        for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "---- $f (tail)"; tail -n 30 "$f"; }; done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A base port whose 3 ports are free on 127.0.0.1 right now.
BASE=$(python3 "$ROOT/tests/free_ports.py" 3)
start_process() { # name node_count
    env -i PATH="$PATH" DISCOVERY_DOMAIN=127.0.0.1 BIND_ADDR=127.0.0.1 BASE_PORT="$BASE" \
        MAX_PORTS=3 NODE_COUNT="$2" REPRAM_LOG=info "$BIN" >"$WORK/$1.log" 2>&1 </dev/null &
    PIDS+=($!)
    disown $! # no "Killed" notice when the test kills it; cleanup still stops it by pid
}
claimed() { grep -o 'claimed port.*port=[0-9]*' "$WORK/$1.log" 2>/dev/null | sed 's/.*port=//' || true; }
wait_claims() { # name count
    for _ in $(seq 100); do
        [ "$(claimed "$1" | wc -l)" -ge "$2" ] && return 0
        sleep 0.1
    done
    say "process $1 did not claim $2 ports"; exit 1
}
start_process a 2
wait_claims a 2
start_process b 1
wait_claims b 1
VICTIM_PID=${PIDS[1]}
VICTIM_PORT=$(claimed b | head -n1)
PORTS=$(claimed a; claimed b)
say "3-node mesh on 127.0.0.1 ports $(echo $PORTS) (pid ${PIDS[0]}: 2 nodes, pid $VICTIM_PID: 1 node)"

# Wait for the full mesh: every node sees 2 peers.
for _ in $(seq 100); do
    ok=1
    for p in $PORTS; do
        n=$(curl -sf --max-time 1 "http://127.0.0.1:$p/health" | grep -o '"peers":[0-9]*' || true)
        [ "$n" = '"peers":2' ] || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.1
done
[ "$ok" = 1 ] || { say "the mesh did not form"; exit 1; }

KEY=written-through-the-api
curl -sf --max-time 5 -X PUT --data 'hello from curl' "http://127.0.0.1:$BASE/data/$KEY?ttl=600" >/dev/null

# The page is served by a node of the process that stays up.
A_PORTS=$(claimed a | tr '\n' ' ')
VIEW_PORT=${A_PORTS%% *}
OTHER_A=$(echo "$A_PORTS" | awk '{print $2}')
"$VENV/bin/python" "$ROOT/tests/browser/dashboard_check.py" \
    --chromium "$CHROMIUM" --url "http://127.0.0.1:$VIEW_PORT/" --nodes 3 --key "$KEY" \
    --screenshot "$SCREENSHOT" --traffic-port "$OTHER_A" --traffic-port "$VICTIM_PORT" \
    --kill-pid "$VICTIM_PID" --kill-port "$VICTIM_PORT"
publish "$SCREENSHOT" dashboard.png
