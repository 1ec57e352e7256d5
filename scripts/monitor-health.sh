#!/usr/bin/env bash
# Poll GET /health on every port of a range and print a refreshing table.
#
#   scripts/monitor-health.sh [--once] [HOST] [PORTS] [INTERVAL]
#
#   HOST       host to poll (default: localhost; IPv6 as ::1 or [::1])
#   PORTS      FIRST-LAST or one port (default: 8081-8083, the default 3-node cluster)
#   INTERVAL   seconds between refreshes (default: 2)
#   --once     print the table once and exit: 0 when every port of the range has a
#              healthy node, 1 when any is down or stopping
#   --timeout S  per-request timeout in seconds (default: 1)
#
# The same settings can be given as --host, --ports, --interval. Every port of the range
# is expected to hold a node, so give the range your nodes use (NODE_COUNT ports from
# BASE_PORT). Needs bash, curl and python3.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/monitor-args.sh"
monitor_args monitor-health 8081-8083 "$@"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/monitor-health.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# Fetch /health of every port, at most 32 at a time, into $WORK/<port>.{body,meta}.
poll() {
    rm -f "$WORK"/*.body "$WORK"/*.meta
    local port
    for ((port = FIRST; port <= LAST; port++)); do
        while [ "$(jobs -rp | wc -l)" -ge 32 ]; do wait -n || true; done
        curl -s -o "$WORK/$port.body" -w '%{http_code} %{time_total}' --max-time "$TIMEOUT" \
            "http://$URL_HOST:$port/health" >"$WORK/$port.meta" 2>/dev/null &
    done
    wait || true
}

read -r -d '' RENDER <<'PY' || true
import json, os, sys, time
work, host, first, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rows, healthy = [], 0
for port in range(first, last + 1):
    try:
        code, secs = open(f"{work}/{port}.meta").read().split()
        code = int(code)
    except (OSError, ValueError):
        code, secs = 0, "0"
    body = {}
    try:
        body = json.load(open(f"{work}/{port}.body"))
    except (OSError, ValueError):
        pass
    if code == 0:
        state = "DOWN"
    elif code == 200 and body.get("status") == "healthy":
        state = "healthy"
        healthy += 1
    else:
        state = str(body.get("status") or f"HTTP {code}")
    def show(k):
        v = body.get(k)
        return "-" if v is None else str(v)
    ms = f"{float(secs) * 1000:.0f}" if code else "-"
    rows.append((str(port), state, show("node_id"), show("peers"), show("uptime_s"), ms))
head = ("PORT", "STATE", "NODE", "PEERS", "UPTIME_S", "MS")
width = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
total = last - first + 1
print(f"repram-flux health  {host}:{first}-{last}  {time.strftime('%H:%M:%S')}  "
      f"{healthy}/{total} healthy")
for r in [head] + rows:
    print("  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip())
sys.exit(0 if healthy == total else 1)
PY

while :; do
    poll
    if [ "$ONCE" = 1 ]; then
        python3 -c "$RENDER" "$WORK" "$URL_HOST" "$FIRST" "$LAST"
        exit $?
    fi
    out=$(python3 -c "$RENDER" "$WORK" "$URL_HOST" "$FIRST" "$LAST" || true)
    if [ -t 1 ]; then printf '\033[H\033[2J'; fi
    printf '%s\n' "$out"
    [ -t 1 ] || echo
    sleep "$INTERVAL"
done
