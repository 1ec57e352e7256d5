#!/usr/bin/env bash
# Multi-host membership test (issue 4): three "hosts" in network namespaces, all inside a
# private network namespace of this test's own (nothing can leave it). DISCOVERY_DOMAIN
# resolves to the three host addresses through a hosts file that exists only inside the
# test's private mount namespace. Asserts a 9-node mesh across hosts, then kills one host's
# launcher and asserts that the other hosts evict its nodes. Then a fourth host on an
# address the others do not know yet (a pod back on a new address) joins: the others
# refuse its first probes, and it must still not be ready before it holds their data.
#
# Usage: tests/netns/multihost.sh [path/to/repram-flux]   (root, iproute2, util-linux, curl, python3)
set -euo pipefail

TEST=multihost
HOSTS=4
LISTED=3
NODES=3
SUBNET=10.78.0
NAME=repram-hosts
# shellcheck source=tests/netns/lib.sh
. "$(dirname "$0")/lib.sh"

netns_enter "$@"
# ---- inside the private network and mount namespaces
netns_setup
for ((i = 1; i <= LISTED; i++)); do netns_start "$i"; done

total=$((LISTED * NODES))
start=$SECONDS
wait_for 20 check $((total - 1)) 1 2 3 ||
    { tail -n 20 "$WORK"/host*.log >&2; fail "no $total-node mesh across $LISTED hosts"; }
echo "multihost: PASS $total-node mesh across $LISTED hosts (within $((SECONDS - start)) s)"

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

# Host 4 comes up on an address the others do not trust yet.
on 1 python3 - "http://$SUBNET.1:8081" <<'PY' || fail "could not write the keys for host 4"
import sys, time, urllib.error, urllib.request
for i in range(200):
    for _ in range(50):  # under the per-client rate limit: wait out a 429
        req = urllib.request.Request(f"{sys.argv[1]}/data/before-4-{i}?ttl=600", data=b"x" * 100, method="PUT")
        try:
            assert urllib.request.urlopen(req, timeout=5).status == 201
            break
        except urllib.error.HTTPError as e:
            if e.code != 429:
                raise
            time.sleep(0.1)
    else:
        sys.exit(f"key {i}: still 429 after 5 s")
PY
keys_on() { on "$1" curl -s -m 2 "http://$SUBNET.$1:$2/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"])' 2>/dev/null || echo x; }
want="$(keys_on 1 8081)"
# A stranger knocking makes a host resolve NAME again at once, then not for 5 s: knock
# now, before NAME lists host 4, so that hosts 1 and 3 keep refusing host 4's first probes
# (as a restarted pod's are refused when its address is new to the others' last lookup).
for h in 1 3; do
    code="$(on 4 curl -s -o /dev/null -w '%{http_code}' -m 2 -X POST "http://$SUBNET.$h:8081/internal/v1/gossip")"
    [ "$code" = 403 ] || fail "host 4 knocking on host $h: $code, not 403"
done
netns_list 4
t0=$SECONDS
netns_start 4
ready_on() { [ "$(on 4 curl -s -o /dev/null -w '%{http_code}' -m 1 "http://$SUBNET.4:$1/ready")" = 200 ]; }
for ((p = 8081; p < 8081 + NODES; p++)); do
    wait_for 20 ready_on "$p" || { tail -n 20 "$WORK"/host4.log >&2; fail "host 4 port $p never ready"; }
    got="$(keys_on 4 "$p")"
    [ "$got" = "$want" ] || { grep -E "catch|refused|joined" "$WORK"/host4.log | tail -n 20 >&2; fail "host 4 port $p was ready holding $got of the cluster's $want keys"; }
done
grep -q "refused node messages" "$WORK"/host1.log "$WORK"/host3.log ||
    fail "hosts 1 and 3 never refused host 4: the test did not cover a stranger's first probes"
echo "multihost: PASS host 4 on a new address, refused at first, ready only holding all $want keys (within $((SECONDS - t0 + 1)) s)"
echo "multihost: 4 passed, 0 failed"
