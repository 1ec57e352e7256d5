#!/usr/bin/env bash
# Property-based API test (run by .ci/run): schemathesis fuzzes a live 3-node cluster with
# the OpenAPI description the cluster itself serves at /openapi.json (from openapi.yaml).
#
#   tests/schemathesis/run.sh [path/to/repram-flux]
#
# Without a path it builds the debug binary. It installs a pinned schemathesis into a venv
# in a temporary directory, starts one process of 3 nodes on a free high port range of
# 127.0.0.1 (small value, memory and TTL limits, so 201, 413 and 507 all happen), waits for
# /ready on every node, and runs schemathesis twice: against the root and against the /v1
# aliases. Checks: no 5xx, status codes, content types, headers and bodies as documented,
# invalid input refused, undocumented methods answered 405 with Allow. Exits non-zero on
# any failure; the cluster is always stopped.
#
# Environment: SCHEMATHESIS_EXAMPLES / SCHEMATHESIS_EXAMPLES_V1 (test cases per operation
# and phase, default 40 and 10), SCHEMATHESIS_SEED (replay a run; each run prints its
# seed), SCHEMATHESIS_SERVER_LOG (the cluster's REPRAM_LOG, default warn), KEEP_WORK=DIR
# (copy the server log and schemathesis outputs there before cleaning up).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SCHEMATHESIS_VERSION=4.32.5
# Test cases per operation and phase: ~20 operations, two runs (root and /v1).
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-40}
EXAMPLES_V1=${SCHEMATHESIS_EXAMPLES_V1:-10}
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,missing_required_header,unsupported_method,allow_header_conformance
say() { echo "schemathesis-test: [${SECONDS}s] $*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $*"; exit 1; fi; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/repram-schemathesis.XXXXXX")
SERVER_PID=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local status=$?
    if [ -n "$SERVER_PID" ]; then
        # SIGTERM, and SIGKILL if it is still running (not yet a zombie) 5 s later.
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            grep -qs '^State:[[:space:]]*[^Z]' "/proc/$SERVER_PID/status" || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$status" != 0 ] && [ -f "$WORK/server.log" ]; then
        echo "---- server log (tail)"; tail -n 30 "$WORK/server.log"
    fi
    [ -n "${KEEP_WORK:-}" ] && cp "$WORK"/*.log "$WORK"/*.txt "$KEEP_WORK"/ 2>/dev/null; rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -----------------------------------------------------------------------------
if ! command -v python3 >/dev/null; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3 python3-venv >/dev/null
fi
if ! python3 -m venv "$WORK/venv" >/dev/null 2>&1; then
    say "installing python3-venv"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$WORK/venv"
    python3 -m venv "$WORK/venv"
fi
say "installing schemathesis $SCHEMATHESIS_VERSION"
"$WORK/venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
ST=$WORK/venv/bin/schemathesis

BIN=${1:-}
if [ -z "$BIN" ]; then
    say "building repram-flux"
    cargo build --quiet --bin repram-flux
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/repram-flux
fi
[ -x "$BIN" ] || { say "no executable at $BIN"; exit 1; }

# --- cluster ---------------------------------------------------------------------------
# A base port whose 3 ports are free on 127.0.0.1 right now.
BASE=$(python3 "$ROOT/tests/free_ports.py" 3)
# Values over 256 bytes get 413; 300 bytes of memory per node (one value of the largest
# size, or a few small ones) fills up (507) and empties again as values expire (TTLs
# clamped to 1-3 s, swept every second); a write whose replicas are full answers 202
# after 300 ms.
env -i PATH="$PATH" DISCOVERY_DOMAIN=127.0.0.1 BIND_ADDR=127.0.0.1 BASE_PORT="$BASE" \
    MAX_PORTS=3 NODE_COUNT=3 REPRAM_MIN_TTL=1 REPRAM_MAX_TTL=3 REPRAM_DEFAULT_TTL=2 \
    REPRAM_CLEANUP_INTERVAL=1 REPRAM_MAX_VALUE_BYTES=256 REPRAM_MAX_STORAGE_BYTES=300 \
    REPRAM_WRITE_TIMEOUT_MS=300 REPRAM_LOG="${SCHEMATHESIS_SERVER_LOG:-warn}" \
    "$BIN" >"$WORK/server.log" 2>&1 </dev/null &
SERVER_PID=$!
ready() { # port
    python3 -c 'import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=1).status == 200 else 1)
except Exception:
    sys.exit(1)' "http://127.0.0.1:$1/ready"
}
for port in "$BASE" $((BASE + 1)) $((BASE + 2)); do
    for _ in $(seq 100); do ready "$port" && break; sleep 0.1; done
    ready "$port" || { say "node on port $port not ready within 10 s"; exit 1; }
done
say "3 nodes ready on 127.0.0.1:$BASE-$((BASE + 2))"

# --- fuzz ------------------------------------------------------------------------------
total_cases=0
total_failures=0
failed=0
fuzz() { # label base_url examples
    local label=$1 url=$2 n=$3 out="$WORK/$1.txt" status=0
    say "$label: $url with the description at http://127.0.0.1:$BASE/openapi.json, $n examples"
    (cd "$WORK" && timeout 600 "$ST" --config-file "$ROOT/tests/schemathesis/schemathesis.toml" \
        run "http://127.0.0.1:$BASE/openapi.json" --url "$url" --checks "$CHECKS" --max-examples "$n" --generation-database none --no-color \
        --request-timeout 10 --suppress-health-check too_slow \
        ${SCHEMATHESIS_SEED:+--seed "$SCHEMATHESIS_SEED"}) >"$out" 2>&1 || status=$?
    cat "$out"
    # "Test cases:" is followed by "  N generated, ...".
    local ops cases failures
    ops=$(grep -o 'Operations: *[0-9]\+ selected' "$out" | grep -o '[0-9]\+' || echo 0)
    cases=$(grep -A1 '^Test cases:' "$out" | grep -o '[0-9]\+ generated' | grep -o '[0-9]\+' || echo 0)
    failures=$(grep -o '[0-9]\+ unique failures\?' "$out" | grep -o '^[0-9]\+' | head -n1 || true)
    failures=${failures:-0}
    if [ "$status" != 0 ] && [ "$failures" = 0 ]; then failures=1; fi # errors count too
    say "$label: $ops operations, $cases test cases, $failures failures (exit $status)"
    total_cases=$((total_cases + cases))
    total_failures=$((total_failures + failures))
    [ "$status" = 0 ] || failed=1
}
start=$SECONDS
fuzz root "http://127.0.0.1:$BASE" "$EXAMPLES"
fuzz v1 "http://127.0.0.1:$((BASE + 1))/v1" "$EXAMPLES_V1"
kill -0 "$SERVER_PID" 2>/dev/null || { say "the server died during the run"; exit 1; }
# What the cluster answered, from its own request counters. The fuzzing must have reached
# every status below (writes stored, refused as too large or for want of memory, bad
# input, unknown keys, unsupported methods on every route); otherwise it tested less than
# it claims, and the run fails.
REQUIRED="Data:201 Data:400 Data:404 Data:405 Data:413 Data:507 Keys:200 Keys:400 \
Health:405 Ready:405 Status:405 Peers:405 Metrics:405 Keys:405"
python3 - "$BASE" "$REQUIRED" <<'PY' || failed=1
import re, sys, urllib.request
base, counts = int(sys.argv[1]), {}
for port in range(base, base + 3):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for route, status, n in re.findall(r'^repram_http_requests_total\{route="(\w+)",status="(\d+)"\} (\d+)', text, re.M):
        if route != "Internal":
            counts[(route, status)] = counts.get((route, status), 0) + int(n)
print("schemathesis-test: answers by route and status:",
      ", ".join(f"{r} {s}: {n}" for (r, s), n in sorted(counts.items())))
missing = [want for want in sys.argv[2].split() if counts.get(tuple(want.split(":")), 0) == 0]
if missing:
    print("schemathesis-test: FAIL: never answered:", ", ".join(missing))
    sys.exit(1)
print("schemathesis-test: every required status was reached:", sys.argv[2])
PY
say "total: $total_cases test cases, $total_failures failures in $((SECONDS - start)) s"
exit "$failed"
