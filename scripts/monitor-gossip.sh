#!/usr/bin/env bash
# Show who sees whom: GET /peers and /status on every port of a range, print the peer
# matrix, whether the mesh is complete, and the key count of every node.
#
#   scripts/monitor-gossip.sh [--once] [HOST] [PORTS] [INTERVAL]
#
#   HOST       host to poll (default: localhost; IPv6 as ::1 or [::1])
#   PORTS      FIRST-LAST or one port (default: 8081-8090, the default range)
#   INTERVAL   seconds between refreshes (default: 2)
#   --once     print once and exit: 0 when the mesh is complete (every node that answers
#              sees every other one and lists no peer that does not answer), 1 otherwise
#   --timeout S  per-request timeout in seconds (default: 1)
#
# The same settings can be given as --host, --ports, --interval. Ports where nothing
# answers are skipped. Peers that the nodes list but that are not on HOST:PORTS (other
# hosts, other ranges) are polled too, at the address the nodes give, and shown with it.
# Needs bash, curl and python3.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/monitor-args.sh"
monitor_args monitor-gossip 8081-8090 "$@"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/monitor-gossip.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# GET /peers and /status of one address (host:port) into $WORK/<name>.{peers,status}.json.
fetch() { # name address
    local route
    for route in peers status; do
        while [ "$(jobs -rp | wc -l)" -ge 32 ]; do wait -n || true; done
        curl -sf -o "$WORK/$1.$route.json" --max-time "$TIMEOUT" "http://$2/$route" 2>/dev/null &
    done
}

# Every port of the range, then the peers they list that the range did not answer for.
poll() {
    rm -f "$WORK"/*.json
    local port name addr
    for ((port = FIRST; port <= LAST; port++)); do fetch "$port" "$URL_HOST:$port"; done
    wait || true
    while read -r name addr; do
        [ -n "$name" ] && fetch "$name" "$addr"
    done < <(python3 -c "$RENDER" extras "$WORK" "$URL_HOST" "$FIRST" "$LAST")
    wait || true
}

read -r -d '' RENDER <<'PY' || true
import json, re, sys, time
mode, work, host = sys.argv[1], sys.argv[2], sys.argv[3]
first, last = int(sys.argv[4]), int(sys.argv[5])

def load(name, route):
    try:
        with open(f"{work}/{name}.{route}.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def extra_name(addr):
    return "x-" + re.sub(r"[^A-Za-z0-9]", "_", addr)

def read_node(name, label):
    peers, status = load(name, "peers"), load(name, "status")
    if not isinstance(peers, dict) or not isinstance(peers.get("peers"), list):
        return None
    status = status if isinstance(status, dict) else {}
    return {
        "id": str(peers.get("node_id", "?")), "label": label,
        "peers": {str(p.get("node_id")): str(p.get("address", "?"))
                  for p in peers["peers"] if isinstance(p, dict)},
        "keys": status.get("keys"), "bytes": status.get("bytes"),
    }

# Nodes that answered on the range.
nodes = [n for n in (read_node(str(p), f":{p}") for p in range(first, last + 1)) if n]
def unanswered(nodes):
    ids = {n["id"] for n in nodes}
    out = {}
    for n in nodes:
        for pid, addr in n["peers"].items():
            if pid not in ids:
                out.setdefault(pid, addr)
    return out

if mode == "extras":
    # Listed peers the range did not answer for: poll them at their own address.
    for addr in sorted(set(unanswered(nodes).values()))[:200]:
        if re.fullmatch(r"[A-Za-z0-9.\-]+:[0-9]+|\[[0-9A-Fa-f:.]+\]:[0-9]+", addr):
            print(extra_name(addr), addr)
    sys.exit(0)

seen_ids = {n["id"] for n in nodes}
for addr in sorted(set(unanswered(nodes).values())):
    n = read_node(extra_name(addr), addr)
    if n and n["id"] not in seen_ids:
        nodes.append(n)
        seen_ids.add(n["id"])
answering = seen_ids
others = unanswered(nodes)   # listed by someone, answering nowhere: id -> address
cols = [(n["id"], n["label"], "") for n in nodes] + \
       [(pid, addr, "does not answer") for pid, addr in sorted(others.items(),
                                                               key=lambda x: x[1])]
print(f"repram-flux gossip  {host}:{first}-{last}  {time.strftime('%H:%M:%S')}  "
      f"{len(nodes)} node(s) answering")
if not nodes:
    print("no node answers on this range")
    sys.exit(1)
print()
print("nodes (columns):")
for i, (cid, where, note) in enumerate(cols, 1):
    print(f"  {i:>3}  {where:<22} {cid}  {note}".rstrip())
print()
# Matrix: one row per answering node, one character per column.
n = len(cols)
label_w = max(len(x["label"]) for x in nodes)
if n >= 10:
    print(" " * (label_w + 2) + "".join(str(i // 10 % 10) if i >= 10 else " "
                                       for i in range(1, n + 1)))
print(" " * (label_w + 2) + "".join(str(i % 10) for i in range(1, n + 1)))
problems = []
for x in nodes:
    cells = []
    for cid, where, _ in cols:
        if cid == x["id"]:
            cells.append("\\")
        elif cid in x["peers"]:
            cells.append("#" if cid in answering else "?")
            if cid not in answering:
                problems.append(f"{x['label']} lists {cid} ({x['peers'][cid]}), which does not answer")
        else:
            cells.append(".")
            if cid in answering:
                problems.append(f"{x['label']} does not see {where} ({cid})")
    print(f"{x['label']:<{label_w}}  " + "".join(cells))
print("  # sees   . does not see   ? lists a node that does not answer   \\ itself")
print()
complete = not problems
links = sum(len([p for p in x["peers"] if p in answering]) for x in nodes)
if complete:
    print(f"mesh complete: {len(nodes)} node(s), every one sees the other {len(nodes) - 1}")
else:
    print(f"mesh INCOMPLETE ({links} of {len(nodes) * (len(nodes) - 1)} directed links):")
    for p in problems[:20]:
        print(f"  - {p}")
    if len(problems) > 20:
        print(f"  ... and {len(problems) - 20} more")
print()
keys = [x["keys"] for x in nodes if isinstance(x["keys"], int)]
print("keys per node:")
for x in nodes:
    k = "-" if x["keys"] is None else x["keys"]
    b = "-" if x["bytes"] is None else x["bytes"]
    print(f"  {x['label']:<{label_w}}  {x['id']:<24} keys {k:<8} bytes {b}")
if keys:
    if min(keys) == max(keys):
        print(f"key counts agree: {keys[0]} on every node")
    else:
        print(f"key counts differ: {min(keys)}..{max(keys)} (replication in flight or lagging)")
sys.exit(0 if complete else 1)
PY

while :; do
    poll
    if [ "$ONCE" = 1 ]; then
        python3 -c "$RENDER" render "$WORK" "$URL_HOST" "$FIRST" "$LAST"
        exit $?
    fi
    out=$(python3 -c "$RENDER" render "$WORK" "$URL_HOST" "$FIRST" "$LAST" || true)
    if [ -t 1 ]; then printf '\033[H\033[2J'; fi
    printf '%s\n' "$out"
    [ -t 1 ] || echo
    sleep "$INTERVAL"
done
