#!/usr/bin/env bash
# Bounded soak (issue 7), loopback only: one repram-flux process (3 nodes) under a mixed
# PUT/GET load of keys with 1-5 s TTLs and 64 B-64 KiB values, in cycles of 7 s load
# followed by a wait until every node is empty. Samples the process RSS at start, at the
# peak of each cycle and after each cycle, and fails on a failed request, on data left on
# a node, or on RSS that does not come back to the baseline (the RSS after a warm-up
# cycle) within the slack. Stops by itself.
#
#   scripts/soak.sh                  full run: 120 s (warm-up + about 8 cycles)
#   scripts/soak.sh --seconds 60     what CI runs (warm-up + 3 cycles)
#
# Other options: --release (the release build; default: debug, which CI has built
# already), --out FILE (a JSON report). Needs /proc (Linux). Server logs land in
# bench/tmp/logs/soak.log.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_BUDGET=120
PROFILE=debug
OUT=()
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_BUDGET=${2:?--seconds needs a number}; shift ;;
        --release) PROFILE=release ;;
        --out) OUT=(--out "${2:?--out needs a file}"); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "soak: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

flags=(--quiet --bin repram-flux --bin repram-bench)
[ "$PROFILE" = release ] && flags+=(--release)
cargo build "${flags[@]}"
bin="${CARGO_TARGET_DIR:-target}/$PROFILE"
# repram-bench kills the server it started when it ends or gets SIGINT/SIGTERM.
exec "$bin/repram-bench" soak --server "$bin/repram-flux" --seconds "$SECONDS_BUDGET" "${OUT[@]}"
