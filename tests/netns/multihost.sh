#!/usr/bin/env bash
# Multi-host membership test (issue 4): three "hosts" in network namespaces, all inside a
# private network namespace of this test's own (nothing can leave it). DISCOVERY_DOMAIN
# resolves to the three host addresses through a hosts file that exists only inside the
# test's private mount namespace. Asserts a 9-node mesh across hosts, then kills one host's
# launcher and asserts that the other hosts evict its nodes.
#
# Usage: tests/netns/multihost.sh [path/to/repram-flux]   (root, iproute2, util-linux, curl, python3)
set -euo pipefail

TEST=multihost
HOSTS=3
NODES=3
SUBNET=10.78.0
NAME=repram-hosts
# shellcheck source=tests/netns/lib.sh
. "$(dirname "$0")/lib.sh"

netns_enter "$@"
# ---- inside the private network and mount namespaces
netns_setup
for ((i = 1; i <= HOSTS; i++)); do netns_start "$i"; done

total=$((HOSTS * NODES))
start=$SECONDS
wait_for 20 check $((total - 1)) 1 2 3 ||
    { tail -n 20 "$WORK"/host*.log >&2; fail "no $total-node mesh across $HOSTS hosts"; }
echo "multihost: PASS $total-node mesh across $HOSTS hosts (within $((SECONDS - start)) s)"

# Replication across hosts.
code="$(curl -s -o /dev/null -w '%{http_code}' -m 5 -X PUT -d across "http://$SUBNET.1:8081/data/mh?ttl=600")"
[ "$code" = 201 ] || fail "PUT mh on host 1 answered $code, not 201"
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
