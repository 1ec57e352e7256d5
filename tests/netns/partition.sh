#!/usr/bin/env bash
# Network partition test (issue 7): three "hosts" of three nodes in network namespaces
# (the setup of multihost.sh, from lib.sh), one 9-node mesh with data. Host 3's link to the
# bridge goes down: each side must evict the other side's nodes and keep taking writes,
# including one key written on both sides with different values. When the link comes
# back, the hosts must form one 9-node mesh again and every node must hold the same data:
# every key from both sides, and for the key written on both sides the later write (last
# writer wins). Before the cut and after the heal, every node must be known at an address
# that reaches it (never a loopback address outside its own host) and must tell others
# its own host's address. Prints how long eviction, rejoin and convergence took.
#
# Usage: tests/netns/partition.sh [path/to/repram-flux]   (root, iproute2, util-linux, curl, python3)
set -euo pipefail

TEST=partition
HOSTS=3
NODES=3
SUBNET=10.78.0
NAME=repram-hosts
KEYS=30 # keys written before the cut, and on each side during it
# shellcheck source=tests/netns/lib.sh
. "$(dirname "$0")/lib.sh"

netns_enter "$@"
# ---- inside the private network and mount namespaces
netns_setup
# The test's client is not on loopback (it asks at the host's address), so the
# per-client rate limit would apply to it.
for ((i = 1; i <= HOSTS; i++)); do netns_start "$i" REPRAM_RATE_LIMIT=0; done

passed=0
pass() { echo "partition: PASS $*"; passed=$((passed + 1)); }
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# put HOST PORT KEY VALUE: PUT with ttl=600 from inside the host; fails unless the answer is 201.
put() {
    local code
    code="$(on "$1" curl -s -o /dev/null -w '%{http_code}' -m 5 -X PUT --data-binary "$4" \
        "http://$SUBNET.$1:$2/data/$3?ttl=600")"
    [ "$code" = 201 ] || fail "PUT $3 on host $1 port $2 answered $code, not 201"
}

# dump HOST PORT: every key of the node with its value (asked from inside the host), one "key<TAB>value" line each,
# sorted (all pages of /keys, then a GET per key).
dump() {
    on "$1" python3 - "http://$SUBNET.$1:$2" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
keys, cursor = [], None
for _ in range(1000):
    url = base + "/keys?limit=1000" + ("&cursor=" + cursor if cursor else "")
    page = json.load(urllib.request.urlopen(url, timeout=2))
    keys += page["keys"]
    cursor = page["next_cursor"]
    if not cursor:
        break
for k in sorted(keys):
    print(k + "\t" + urllib.request.urlopen(base + "/data/" + k, timeout=2).read().decode())
PY
}

# converged: every node of every host holds exactly $WORK/expected.
converged() {
    local h p
    for ((h = 1; h <= HOSTS; h++)); do
        for ((p = 8081; p < 8081 + NODES; p++)); do
            dump "$h" "$p" >"$WORK/got" 2>/dev/null || return 1
            if ! cmp -s "$WORK/got" "$WORK/expected"; then
                echo "host $h port $p:" >"$WORK/diff"
                diff "$WORK/expected" "$WORK/got" | head -n 10 >>"$WORK/diff" || true
                return 1
            fi
        done
    done
}

total=$((HOSTS * NODES))
t0="$(now)"
wait_for 20 check $((total - 1)) 1 2 3 ||
    { tail -n 20 "$WORK"/host*.log >&2; fail "no $total-node mesh across $HOSTS hosts"; }
pass "$total-node mesh across $HOSTS hosts (within $(since "$t0") s)"
# No node may be known at a loopback address outside its own host: neither in the joins
# logged so far nor in the addresses every node uses and tells (checked again at the end).
no_loopback_joins ||
    { head -n 5 "$WORK/leaked" >&2; fail "$(wc -l <"$WORK/leaked") joins of a node of another host at a loopback address"; }
addresses_ok 1 2 3 || { cat "$WORK/misplaced" >&2; fail "nodes known at addresses that do not reach them"; }

: >"$WORK/expected.unsorted"
for ((i = 0; i < KEYS; i++)); do
    put $((i % HOSTS + 1)) $((8081 + i % NODES)) "pre-$i" "p$i"
    printf 'pre-%s\tp%s\n' "$i" "$i" >>"$WORK/expected.unsorted"
done

# Cut host 3 off: its bridge port goes down (its eth0 loses carrier). Connections across
# the cut time out; nothing is refused, so the nodes must go through suspicion.
ip link set veth3 down
t0="$(now)"
wait_for 30 check $((2 * NODES - 1)) 1 2 ||
    { tail -n 20 "$WORK"/host1.log >&2; fail "hosts 1 and 2 did not evict host 3's nodes"; }
evict_a="$(since "$t0")"
# Host 3's own probes fail for 6 of its 8 peers, so its local health (Lifeguard) stretches
# its timeouts up to 9x: it evicts the other side much later (about 25 s) than the other
# side evicts it, by design (a node that cannot reach others doubts itself first).
wait_for 60 check $((NODES - 1)) 3 ||
    { tail -n 20 "$WORK"/host3.log >&2; fail "host 3 did not evict the nodes of hosts 1 and 2"; }
pass "host 3 cut off: hosts 1+2 evicted host 3's nodes within $evict_a s, host 3 evicted theirs within $(since "$t0") s"

# Both sides keep taking writes (201: each side has a quorum of its own).
for ((i = 0; i < KEYS; i++)); do
    put $((i % 2 + 1)) $((8081 + i % NODES)) "side-a-$i" "a$i"
    put 3 $((8081 + i % NODES)) "side-b-$i" "b$i"
    printf 'side-a-%s\ta%s\nside-b-%s\tb%s\n' "$i" "$i" "$i" "$i" >>"$WORK/expected.unsorted"
done
# One key on both sides; host 3 writes it later, so its value must win after the heal.
put 1 8082 conflict from-side-a
sleep 0.3
put 3 8083 conflict from-side-b
printf 'conflict\tfrom-side-b\n' >>"$WORK/expected.unsorted"
LC_ALL=C sort "$WORK/expected.unsorted" >"$WORK/expected"
# The partition is real: neither side sees the other's writes.
[ "$(on 1 curl -s -m 2 "http://$SUBNET.1:8081/data/side-b-0")" != b0 ] ||
    fail "a write on host 3 reached host 1 across the partition"
[ "$(on 3 curl -s -m 2 "http://$SUBNET.3:8081/data/conflict")" = from-side-b ] ||
    fail "host 3 does not serve its own value of the conflicting key"
[ "$(on 2 curl -s -m 2 "http://$SUBNET.2:8081/data/conflict")" = from-side-a ] ||
    fail "host 2 does not serve its side's value of the conflicting key"
pass "both sides took $KEYS writes each and a conflicting write, unseen by the other side"

# Heal: one mesh again, then the same data everywhere.
ip link set veth3 up
t0="$(now)"
wait_for 30 check $((total - 1)) 1 2 3 ||
    { tail -n 20 "$WORK"/host*.log >&2; fail "no $total-node mesh after the partition healed"; }
pass "$total-node mesh again $(since "$t0") s after the heal"
keys="$(wc -l <"$WORK/expected")"
wait_for 30 converged ||
    { cat "$WORK/diff" >&2; fail "the $total nodes do not hold the same $keys keys after the heal"; }
pass "all $total nodes hold the same $keys keys and values (conflict = from-side-b) $(since "$t0") s after the heal"
check $((total - 1)) 1 2 3 || fail "the $total-node mesh fell apart again after the heal"
pass "still one $total-node mesh after the data converged"
# The same after the partition and the heal: the joins of the whole run, the addresses now.
no_loopback_joins ||
    { head -n 5 "$WORK/leaked" >&2; fail "$(wc -l <"$WORK/leaked") joins of a node of another host at a loopback address"; }
addresses_ok 1 2 3 || { cat "$WORK/misplaced" >&2; fail "nodes known at addresses that do not reach them after the heal"; }
pass "every node known at an address that reaches it, and no join at a loopback address of another host's node"
echo "partition: $passed passed, 0 failed"
