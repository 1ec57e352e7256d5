# Shared by the network-namespace tests (multihost.sh, partition.sh); source it, do not run it.
#
# The calling script sets TEST (name in messages), HOSTS, NODES, SUBNET (three octets) and
# NAME (the discovery domain), then calls `netns_enter "$@"` (re-executes the script inside
# a private network and mount namespace of its own, so nothing can leave it) and
# `netns_setup` (one namespace per host on a bridge, hosts files that resolve NAME to every
# host). `netns_start HOST [VAR=value ...]` starts a launcher on a host; `check` and
# `wait_for` poll the mesh, `on HOST ...` runs a command inside a host. Everything started is killed on exit.

fail() { echo "$TEST: FAIL: $*" >&2; exit 1; }

# Outside the namespaces: check root and tools, find or build the binary (first argument),
# and re-execute the calling script inside fresh namespaces. Returns only inside them.
netns_enter() {
    [ -z "${NETNS_INNER:-}" ] || return 0
    # A missing capability is a failure, never a skip: a green run must mean the hosts ran.
    [ "$(id -u)" = 0 ] || fail "needs root to create network namespaces"
    for tool in ip unshare curl python3; do
        command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing (apt-get install iproute2 util-linux curl python3)"
    done
    local bin="${1:-}"
    if [ -z "$bin" ]; then
        cargo build --quiet --bin repram-flux
        bin="${CARGO_TARGET_DIR:-target}/debug/repram-flux"
    fi
    bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
    unshare --net --mount --propagation private true 2>/dev/null ||
        fail "cannot create namespaces here (unshare refused)"
    exec env NETNS_INNER=1 NETNS_BIN="$bin" \
        unshare --net --mount --propagation private -- bash "$0"
}

WORK=""
PIDS=()
netns_cleanup() {
    local rc=$?
    # A failed run keeps the hosts' logs (a rare failure must be readable afterwards).
    if [ "$rc" != 0 ] && [ -n "$WORK" ] && ls "$WORK"/host*.log >/dev/null 2>&1; then
        local keep
        keep="$(mktemp -d "/tmp/repram-$TEST-logs.XXXXXX")"
        cp "$WORK"/host*.log "$keep"/
        echo "$TEST: the hosts' logs are kept in $keep" >&2
    fi
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for ((i = 1; i <= HOSTS; i++)); do
        for pid in $(ip netns pids "h$i" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    done
    [ -z "$WORK" ] || rm -rf "$WORK"
}

# Inside: a bridge $SUBNET.254/24 and hosts h1..hHOSTS at $SUBNET.1.., each on its own veth
# (vethI on the bridge, eth0 in the host); NAME resolves to the addresses of the first
# LISTED hosts (all of them unless LISTED is set), `netns_list HOST` adds one later.
netns_setup() {
    WORK="$(mktemp -d)"
    trap netns_cleanup EXIT
    mkdir -p /run/netns /etc/netns
    mount -t tmpfs -o size=1m "$TEST-netns" /run/netns
    mount -t tmpfs -o size=1m "$TEST-etc" /etc/netns
    ip link set lo up
    ip link add br-hosts type bridge
    ip addr add "$SUBNET.254/24" dev br-hosts
    ip link set br-hosts up
    for ((i = 1; i <= HOSTS; i++)); do
        ip netns add "h$i"
        ip link add "veth$i" type veth peer name eth0 netns "h$i"
        ip link set "veth$i" master br-hosts up
        ip -n "h$i" addr add "$SUBNET.$i/24" dev eth0
        ip -n "h$i" link set eth0 up
        ip -n "h$i" link set lo up
        # `ip netns exec` bind-mounts /etc/netns/<name>/hosts over /etc/hosts.
        mkdir -p "/etc/netns/h$i"
        {
            echo "127.0.0.1 localhost"
            for ((j = 1; j <= ${LISTED:-$HOSTS}; j++)); do echo "$SUBNET.$j $NAME"; done
        } >"/etc/netns/h$i/hosts"
    done
    local resolved
    resolved="$(ip netns exec h1 getent ahostsv4 "$NAME" | awk '{print $1}' | sort -u | tr '\n' ' ')"
    echo "$TEST: $NAME resolves to: $resolved"
}

# netns_list HOST: NAME resolves to HOST's address too, on every host (as cluster DNS
# lists a new pod). Appended in place: `ip netns exec` bind-mounts the file's inode.
netns_list() {
    local i
    for ((i = 1; i <= HOSTS; i++)); do echo "$SUBNET.$1 $NAME" >>"/etc/netns/h$i/hosts"; done
}

# netns_start HOST [VAR=value ...]: the launcher on host HOST (NODES nodes on 8081..),
# logging to $WORK/hostHOST.log; its pid lands in HOST_PID_<HOST>.
netns_start() {
    local h="$1"
    shift
    ip netns exec "h$h" env -i PATH="$PATH" DISCOVERY_DOMAIN="$NAME" BASE_PORT=8081 \
        MAX_PORTS="$NODES" NODE_COUNT="$NODES" REPRAM_LOG=info "$@" \
        "$NETNS_BIN" >"$WORK/host$h.log" 2>&1 &
    PIDS+=("$!")
    eval "HOST_PID_$h=$!"
    disown "$!"
}

# on HOST COMMAND...: run COMMAND inside host HOST's namespace (so it reaches the host's
# nodes even while the host is cut off from the bridge).
on() {
    local h="$1"
    shift
    ip netns exec "h$h" "$@"
}

# check WANT HOST...: true when every node of the given hosts sees exactly WANT live peers
# (asked from inside each host).
check() {
    local want="$1"
    shift
    local h p n
    for h in "$@"; do
        for ((p = 8081; p < 8081 + NODES; p++)); do
            n="$(on "$h" curl -s -m 1 "http://$SUBNET.$h:$p/peers" |
                python3 -c 'import json,sys; print(len(json.load(sys.stdin)["peers"]))' 2>/dev/null || echo x)"
            [ "$n" = "$want" ] || return 1
        done
    done
}

# wait_for SECONDS COMMAND...: run COMMAND every 0.2 s until it succeeds; false on timeout.
wait_for() {
    local secs="$1"
    shift
    local deadline=$((SECONDS + secs))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# addresses_ok HOST...: true when every node of the given hosts (all of them in the mesh)
# tells others the address of its own host ($SUBNET.HOST:PORT in /status), and lists
# every peer at an address that reaches that very node: a node of another host at that
# host's address, a node of its own host there or at 127.0.0.1. A loopback address for a
# node of another host reaches a different node. Offending lines go to $WORK/misplaced.
addresses_ok() {
    local h p
    : >"$WORK/nodes"
    for h in "$@"; do
        for ((p = 8081; p < 8081 + NODES; p++)); do
            on "$h" curl -s -m 2 "http://$SUBNET.$h:$p/status" | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(s["node_id"], sys.argv[1], sys.argv[2], s["address"])' "$h" "$p" >>"$WORK/nodes" ||
                { echo "host $h port $p: no /status" >"$WORK/misplaced"; return 1; }
        done
    done
    : >"$WORK/misplaced"
    for h in "$@"; do
        on "$h" python3 - "$SUBNET" "$h" "$NODES" "$WORK/nodes" >>"$WORK/misplaced" <<'PY' || return 1
import json, sys, urllib.request
subnet, me, nodes, table = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
where = {}
for line in open(table):
    node_id, host, port, told = line.split()
    where[node_id] = (host, port)
    if host == me and told != f"{subnet}.{host}:{port}":
        print(f"host {host} port {port} tells others it is at {told}")
for port in range(8081, 8081 + nodes):
    peers = json.load(urllib.request.urlopen(f"http://{subnet}.{me}:{port}/peers", timeout=2))["peers"]
    for peer in peers:
        host, pport = where.get(peer["node_id"], ("?", "?"))
        good = {f"{subnet}.{host}:{pport}"}
        if host == me:
            good.add(f"127.0.0.1:{pport}")
        if peer["address"] not in good:
            print(f"host {me} port {port} has {peer['node_id']} (host {host} port {pport}) at {peer['address']}")
PY
    done
    [ ! -s "$WORK/misplaced" ]
}

# no_loopback_joins: true when no node logged a peer of another process (another host:
# one process per host) joining at a loopback address. Offending lines go to $WORK/leaked.
no_loopback_joins() {
    cat "$WORK"/host*.log | awk '/peer joined/ && / addr=127\./ {
        n = $0; sub(/.* node=flux-node-[0-9]+-/, "", n); sub(/[ -].*/, "", n)
        p = $0; sub(/.* peer=flux-node-[0-9]+-/, "", p); sub(/[ -].*/, "", p)
        if (n != p) print }' >"$WORK/leaked"
    [ ! -s "$WORK/leaked" ]
}
