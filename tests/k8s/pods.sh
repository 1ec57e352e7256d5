#!/usr/bin/env bash
# The chart's pods run as the kubelet would run them, against the real binary, without a
# cluster (issue 24). Renders deploy/helm/repram-flux with values-production.yaml, then
# tests/k8s/kubelet.py runs its StatefulSet: three pods, each in a network namespace
# (k8s-<pod>) with the rendered env, ports, securityContext and probes, the headless Service
# name resolving to every pod; a write on one pod read on all; then a rolling update (the
# same chart with REPRAM_RATE_LIMIT changed) in the StatefulSet's order under a writer, and
# every acknowledged write read back on every pod.
#
# With --unsigned: values-staging.yaml with clusterSecret.enabled=false, so the pods trust
# each other only as the addresses the headless Service name resolves to (node routes
# without a secret), and every replaced pod comes back on a new address.
#
# Usage: tests/k8s/pods.sh [--unsigned] [path/to/repram-flux]  (root: ip, unshare, setpriv; npm, python3)
# Run it under the machine-wide lock: flock /tmp/repram-netns.lock tests/k8s/pods.sh BIN
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TEST=k8s-pods
CHART=deploy/helm/repram-flux
# shellcheck source=tests/k8s/tools.sh
. tests/k8s/tools.sh

if [ "$(id -u)" != 0 ]; then k8s_missing "needs root to create network namespaces"; fi
for tool in ip unshare setpriv; do
    command -v "$tool" >/dev/null 2>&1 || k8s_missing "$tool is missing (apt-get install iproute2 util-linux)"
done
unshare --net --mount --propagation private true 2>/dev/null || k8s_missing "cannot create namespaces here (unshare refused)"

MODE=signed
if [ "${1:-}" = --unsigned ]; then
    MODE=unsigned
    shift
fi
BIN="${1:-}"
if [ -z "$BIN" ]; then
    cargo build --quiet --bin repram-flux
    BIN="${CARGO_TARGET_DIR:-target}/debug/repram-flux"
fi
[ -x "$BIN" ] || k8s_fail "$BIN is not an executable"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/k8s-pods.XXXXXX")
K8S_TOOLS="$WORK/tools"
trap 'rm -rf "$WORK"' EXIT
k8s_tools

# The image: the binary, readable by the pods' uid 10001; its ENV comes from Dockerfile.flux-sim.
mkdir -p "$WORK/image"
chmod 755 "$WORK" "$WORK/image"
cp "$BIN" "$WORK/image/repram-flux"
chmod 755 "$WORK/image/repram-flux"

# Revision 1 is the chosen values; revision 2 changes one setting, as an upgrade would.
secret_args=()
if [ "$MODE" = signed ]; then
    values=(-f "$CHART/values-production.yaml")
    # The Secret the production values name, made outside the chart as docs/kubernetes.md says.
    secret_name=$(sed -n 's/^  existingSecret: *//p' "$CHART/values-production.yaml")
    secret_args=(--secret "$secret_name=cluster-secret=$(head -c 32 /dev/urandom | base64)")
else
    values=(-f "$CHART/values-staging.yaml" --set clusterSecret.enabled=false)
fi
"$HELM" template fade "$CHART" -n fade "${values[@]}" >"$WORK/v1.yaml"
"$HELM" template fade "$CHART" -n fade "${values[@]}" --set config.REPRAM_RATE_LIMIT=1000 >"$WORK/v2.yaml"
if [ "$MODE" = unsigned ] && grep -q REPRAM_CLUSTER_SECRET "$WORK/v1.yaml"; then
    k8s_fail "clusterSecret.enabled=false still renders REPRAM_CLUSTER_SECRET"
fi
mkdir -p "$WORK/pods"
chmod 755 "$WORK/pods"

echo "$TEST: rendered $CHART (${values[*]}) twice; running its pods ($MODE node-to-node traffic)"
status=0
unshare --net --mount --propagation private -- "$PY" tests/k8s/kubelet.py \
    --bin "$WORK/image/repram-flux" --v1 "$WORK/v1.yaml" --v2 "$WORK/v2.yaml" \
    "${secret_args[@]}" --expect REPRAM_RATE_LIMIT=1000 --dockerfile Dockerfile.flux-sim \
    --work "$WORK/pods" || status=$?
if [ "$status" != 0 ] && [ -n "${KEEP_WORK:-}" ]; then cp -r "$WORK/pods" "$KEEP_WORK"; fi
cd "$ROOT"
exit "$status"
