#!/usr/bin/env bash
# Multi-host membership test (issue 4): three "hosts" in network namespaces, all inside a
# private network namespace of this test's own (nothing can leave it). DISCOVERY_DOMAIN
# resolves to the three host addresses through a hosts file that exists only inside the
# test's private mount namespace. Asserts a 9-node mesh across hosts, then kills one host's
# launcher and asserts that the other hosts evict its nodes.
#
# Usage: tests/netns/multihost.sh [path/to/repram-flux]   (root, iproute2, util-linux, curl, python3)
set -euo pipefail

HOSTS=3
NODES=3
SUBNET=10.78.0
NAME=repram-hosts

fail() { echo "multihost: FAIL: $*" >&2; exit 1; }

if [ -z "${MULTIHOST_INNER:-}" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "multihost: skipped: needs root to create network namespaces"
        exit 0
    fi
    for tool in ip unshare curl python3; do
        command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing (apt-get install iproute2 util-linux curl python3)"
    done
    bin="${1:-}"
    if [ -z "$bin" ]; then
        cargo build --quiet --bin repram-flux
        bin="${CARGO_TARGET_DIR:-target}/debug/repram-flux"
    fi
    bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
    if ! unshare --net --mount --propagation private true 2>/dev/null; then
        echo "multihost: skipped: cannot create namespaces here (unshare refused)"
        exit 0
    fi
    exec env MULTIHOST_INNER=1 MULTIHOST_BIN="$bin" \
        unshare --net --mount --propagation private -- bash "$0"
fi

# ---- inside the private network and mount namespaces
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for ((i = 1; i <= HOSTS; i++)); do
        for pid in $(ip netns pids "h$i" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p /run/netns /etc/netns
mount -t tmpfs -o size=1m multihost-netns /run/netns
mount -t tmpfs -o size=1m multihost-etc /etc/netns
ip link set lo up
ip link add br-mh type bridge
ip addr add "$SUBNET.254/24" dev br-mh
ip link set br-mh up
for ((i = 1; i <= HOSTS; i++)); do
    ip netns add "h$i"
    ip link add "veth$i" type veth peer name eth0 netns "h$i"
    ip link set "veth$i" master br-mh up
    ip -n "h$i" addr add "$SUBNET.$i/24" dev eth0
    ip -n "h$i" link set eth0 up
    ip -n "h$i" link set lo up
    # `ip netns exec` bind-mounts /etc/netns/<name>/hosts over /etc/hosts.
    mkdir -p "/etc/netns/h$i"
    {
        echo "127.0.0.1 localhost"
        for ((j = 1; j <= HOSTS; j++)); do echo "$SUBNET.$j $NAME"; done
    } >"/etc/netns/h$i/hosts"
done

resolved="$(ip netns exec h1 getent ahostsv4 "$NAME" | awk '{print $1}' | sort -u | tr '\n' ' ')"
echo "multihost: $NAME resolves to: $resolved"

for ((i = 1; i <= HOSTS; i++)); do
    ip netns exec "h$i" env -i PATH="$PATH" DISCOVERY_DOMAIN="$NAME" BASE_PORT=8081 \
        MAX_PORTS="$NODES" NODE_COUNT="$NODES" REPRAM_LOG=info \
        "$MULTIHOST_BIN" >"$WORK/host$i.log" 2>&1 &
    PIDS+=("$!")
    eval "HOST_PID_$i=$!"
    disown "$!"
done

# Number of live peers each node of the given hosts sees; prints "ok" when every node
# sees exactly `want` peers.
check() {
    local want="$1"
    shift
    local h p n
    for h in "$@"; do
        for ((p = 8081; p < 8081 + NODES; p++)); do
            n="$(curl -s -m 1 "http://$SUBNET.$h:$p/peers" |
                python3 -c 'import json,sys; print(len(json.load(sys.stdin)["peers"]))' 2>/dev/null || echo x)"
            [ "$n" = "$want" ] || return 1
        done
    done
}

wait_for() {
    local secs="$1"
    shift
    local deadline=$((SECONDS + secs))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

total=$((HOSTS * NODES))
start=$SECONDS
wait_for 20 check $((total - 1)) 1 2 3 ||
    { tail -n 20 "$WORK"/host*.log >&2; fail "no $total-node mesh across $HOSTS hosts"; }
echo "multihost: PASS $total-node mesh across $HOSTS hosts (within $((SECONDS - start)) s)"

# Replication across hosts.
curl -s -m 2 -X PUT -d across "http://$SUBNET.1:8081/data/mh?ttl=600" >/dev/null
wait_for 10 bash -c "[ \"\$(curl -s -m 1 http://$SUBNET.3:8083/data/mh)\" = across ]" ||
    fail "a write on host 1 never reached host 3"
echo "multihost: PASS write on host 1 readable on host 3"

# Kill host 2's launcher: the others evict its nodes.
kill -KILL "$HOST_PID_2"
t0=$SECONDS
wait_for 10 check $((total - 1 - NODES)) 1 3 ||
    { tail -n 20 "$WORK"/host1.log >&2; fail "host 2's nodes were not evicted"; }
echo "multihost: PASS host 2's nodes evicted by hosts 1 and 3 (within $((SECONDS - t0 + 1)) s)"
echo "multihost: 3 passed, 0 failed"
