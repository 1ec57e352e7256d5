#!/usr/bin/env bash
# Benchmark repram-flux side by side with nginx on this machine, loopback only.
#
#   scripts/bench.sh           full run (a few minutes), writes bench/results.json
#   scripts/bench.sh --quick   smoke run (under a minute once built), writes
#                              bench/tmp/results-quick.json; uses the debug build unless
#                              --release is given, so CI needs no release build
#
# Other options: --release, --out FILE, --only get,put,mesh,visible,memory,catchup,listing,evict,big,
# --server PATH (measure that repram-flux binary, e.g. an older build for a before/after
# comparison, instead of the one built here)
#
# It builds repram-flux and repram-bench (honouring CARGO_TARGET_DIR), installs wrk and
# nginx-light with apt-get when they are missing (needs root), starts nginx on a free high
# port with its own prefix under bench/tmp/nginx, then runs `repram-bench all`, which
# starts the servers itself, measures, prints a table and writes the JSON report.
# Every process started here is killed on exit, on error and on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=0
PROFILE=""
OUT=""
ONLY=""
SERVER=""
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --release) PROFILE=release ;;
        --out) OUT=${2:?--out needs a file}; shift ;;
        --only) ONLY=${2:?--only needs a list}; shift ;;
        --server) SERVER=${2:?--server needs a path}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$PROFILE" ]; then
    if [ "$QUICK" = 1 ]; then PROFILE=debug; else PROFILE=release; fi
fi
if [ -z "$OUT" ]; then
    if [ "$QUICK" = 1 ]; then OUT=bench/tmp/results-quick.json; else OUT=bench/results.json; fi
fi
TMP=$ROOT/bench/tmp
mkdir -p "$TMP"

# Every long-running child runs in its own session (setsid) and is waited for in the
# background, so a signal reaches our trap at once; killing a child's process group also
# kills whatever it started (servers, wrk, rustc, nginx workers).
GROUPS_STARTED=()
kill_group() {
    local pg=$1 i
    kill -TERM -- "-$pg" 2>/dev/null || return 0
    for i in $(seq 1 40); do
        kill -0 -- "-$pg" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$pg" 2>/dev/null || true
}
cleanup() {
    trap - EXIT INT TERM
    local pg
    for pg in ${GROUPS_STARTED[@]+"${GROUPS_STARTED[@]}"}; do kill_group "$pg"; done
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM
# start_group CMD...: start CMD in its own session; its pid (= group id) is in $STARTED.
start_group() {
    setsid "$@" &
    STARTED=$!
    GROUPS_STARTED+=("$STARTED")
}

# --- tools ------------------------------------------------------------------------------
find_nginx() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true; }
if ! command -v wrk >/dev/null 2>&1 || [ -z "$(find_nginx)" ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "bench: wrk and nginx are needed; install them (Debian: apt-get install wrk nginx-light) or run as root" >&2
        exit 1
    fi
    echo "== installing wrk and nginx-light (apt-get)"
    # Keep the package's maintainer scripts from starting a system nginx on port 80.
    POLICY=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        POLICY=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$POLICY"
        chmod +x "$POLICY"
    fi
    status=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends wrk nginx-light; } >"$TMP/apt.log" 2>&1 || status=$?
    [ -n "$POLICY" ] && rm -f "$POLICY"
    if [ "$status" != 0 ]; then
        tail -20 "$TMP/apt.log" >&2
        echo "bench: apt-get failed (log: $TMP/apt.log)" >&2
        exit 1
    fi
fi
WRK=$(command -v wrk)
NGINX=$(find_nginx)

# --- build ------------------------------------------------------------------------------
TARGET_DIR=${CARGO_TARGET_DIR:-target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
echo "== cargo build ($PROFILE): repram-flux, repram-bench"
BUILD_START=$(date +%s.%N)
if [ "$PROFILE" = release ]; then
    start_group cargo build --quiet --release --bin repram-flux --bin repram-bench
    BIN_DIR=$TARGET_DIR/release
else
    start_group cargo build --quiet --bin repram-flux --bin repram-bench
    BIN_DIR=$TARGET_DIR/debug
fi
wait "$STARTED" || { echo "bench: cargo build failed" >&2; exit 1; }
BUILD_S=$(awk -v a="$BUILD_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

# --- nginx, the reference server -------------------------------------------------------
NGX=$TMP/nginx
rm -rf "$NGX"
mkdir -p "$NGX/logs" "$NGX/temp"
NGINX_PORT=$("$BIN_DIR/repram-bench" free-port --from 19000)
BODY=$(printf 'v%.0s' $(seq 1 100)) # 100 bytes, like the benchmark values
# The 1 MiB file nginx serves for the big-value phase (repram-bench's big.rs names it).
mkdir -p "$NGX/www/big"
head -c 1048576 /dev/zero | tr '\0' b >"$NGX/www/big/value.bin"
cat >"$NGX/nginx.conf" <<EOF
worker_processes auto;
pid $NGX/nginx.pid;
error_log $NGX/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $NGX/temp/body;
    proxy_temp_path $NGX/temp/proxy;
    fastcgi_temp_path $NGX/temp/fastcgi;
    uwsgi_temp_path $NGX/temp/uwsgi;
    scgi_temp_path $NGX/temp/scgi;
    client_max_body_size 2m; # the big-value phase PUTs 1 MiB bodies
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            default_type application/octet-stream;
            return 200 "$BODY";
        }
        location /big/ {
            root $NGX/www;
            default_type application/octet-stream;
            sendfile on;
        }
    }
}
EOF
start_group "$NGINX" -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/logs/error.log" -g 'daemon off;' \
    >"$NGX/logs/stdout.log" 2>&1
NGINX_PID=$STARTED
for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$NGINX_PORT") 2>/dev/null; then break; fi
    if ! kill -0 "$NGINX_PID" 2>/dev/null; then
        cat "$NGX/logs/error.log" "$NGX/logs/stdout.log" >&2 || true
        echo "bench: nginx did not start" >&2
        exit 1
    fi
    sleep 0.1
done
echo "== nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') on 127.0.0.1:$NGINX_PORT"

# --- measure ----------------------------------------------------------------------------
if [ -n "$SERVER" ]; then
    [ -x "$SERVER" ] || { echo "bench: --server $SERVER is not an executable" >&2; exit 2; }
else
    SERVER=$BIN_DIR/repram-flux
fi
ARGS=(all --server "$SERVER" --wrk "$WRK" --nginx-bin "$NGINX"
    --nginx-port "$NGINX_PORT" --out "$OUT" --tmp "$TMP" --lua-dir "$ROOT/bench"
    --profile "$PROFILE" --build-seconds "$BUILD_S")
[ "$QUICK" = 1 ] && ARGS+=(--quick)
[ -n "$ONLY" ] && ARGS+=(--only "$ONLY")
rm -rf "$TMP/logs"
start_group "$BIN_DIR/repram-bench" "${ARGS[@]}"
status=0
wait "$STARTED" || status=$?

# --- goals kept here --------------------------------------------------------------------
# Restart: a process killed and started again on its ports serves again within 1 s (was a
# timed test). The figure is the catch-up phase's rolling restart: seconds until each
# replacement's nodes hold every key again; the slowest replacement counts. The goal is
# added to the report's goals and printed; like the other goals it informs, it does not
# fail the run.
if [ -s "$OUT" ] && command -v python3 >/dev/null 2>&1; then
    python3 - "$OUT" <<'PY' || { echo "bench: cannot add the restart goal to $OUT" >&2; status=1; }
import json, sys
path = sys.argv[1]
report = json.load(open(path))
rolling = report.get("figures", {}).get("catchup", {}).get("rolling_restart", {})
if "restarts" in rolling:
    seconds = [r.get("seconds") for r in rolling["restarts"]]
    value = None if None in seconds or not seconds else max(seconds)
    goal = {"figure": "restarted process serving all its keys again, slowest of 3 (s)",
            "goal": "<= 1", "value": value, "met": value is not None and value <= 1.0}
    report.setdefault("goals", []).append(goal)
    json.dump(report, open(path, "w"), indent=2)
    print(f"goal: {goal['figure']} {goal['goal']}: {value} -> {'met' if goal['met'] else 'MISSED'}")
PY
fi
exit "$status"
