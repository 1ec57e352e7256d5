#!/usr/bin/env bash
# The Helm chart and the Flux CD tree, without a cluster (issue 24): `helm lint --strict` and
# `helm template` for values.yaml and each values-*.yaml (and the GitOps values.yaml), every
# rendering validated strictly against the Kubernetes JSON schemas of the oldest and newest
# versions kubernetes-validate bundles, then tests/k8s/check_render.py's checks; the GitOps
# kustomization built and its HelmRelease and GitRepository checked; and proof that the
# checks bite: values the chart must refuse, and a broken manifest the schemas must refuse.
#
# Usage: tests/k8s/chart.sh        (npm, python3, unzip; no root, no network but registries)
set -euo pipefail
cd "$(dirname "$0")/../.."
TEST=k8s-chart
CHART=deploy/helm/repram-flux
GITOPS=deploy/gitops/clusters/production/fade
# Kubernetes versions to validate against: the oldest and the newest schemas bundled.
K8S_VERSIONS="1.33.0 1.37.0"
# shellcheck source=tests/k8s/tools.sh
. tests/k8s/tools.sh
WORK=$(mktemp -d "${TMPDIR:-/tmp}/k8s-chart.XXXXXX")
K8S_TOOLS="$WORK/tools"
trap 'rm -rf "$WORK"' EXIT
k8s_tools
passed=0

# render NAME REPLICAS HELM-ARGS...: lint, template, validate, check one set of values.
render() {
    local name="$1" replicas="$2" v
    shift 2
    "$HELM" lint --strict "$CHART" "$@" >"$WORK/lint.log" 2>&1 || { cat "$WORK/lint.log"; k8s_fail "helm lint ($name)"; }
    "$HELM" template fade "$CHART" -n fade "$@" >"$WORK/$name.yaml" || k8s_fail "helm template ($name)"
    for v in $K8S_VERSIONS; do
        "$K8S_TOOLS/venv/bin/kubernetes-validate" --strict --quiet -k "$v" "$WORK/$name.yaml" ||
            k8s_fail "$name: does not validate against Kubernetes $v"
    done
    "$PY" tests/k8s/check_render.py --replicas "$replicas" "$WORK/$name.yaml" || k8s_fail "$name: chart checks"
    echo "$TEST: PASS $name: helm lint --strict, helm template ($(grep -c '^kind:' "$WORK/$name.yaml") objects), valid for Kubernetes ${K8S_VERSIONS// /, }"
    passed=$((passed + 1))
}

render values.yaml 3
render values-dev.yaml 1 -f "$CHART/values-dev.yaml"
render values-staging.yaml 3 -f "$CHART/values-staging.yaml"
render values-production.yaml 3 -f "$CHART/values-production.yaml"
render gitops-values.yaml 3 -f "$GITOPS/values.yaml"
render unsigned-4-nodes-per-pod 3 --set clusterSecret.enabled=false --set nodesPerPod=4 --set maxPorts=5 \
    --set networkPolicy.clientFrom[0].podSelector.matchLabels.app=client

# The chart refuses what would break or leak.
refuse() {
    local why="$1"
    shift
    if "$HELM" template fade "$CHART" "$@" >"$WORK/refused.log" 2>&1; then
        k8s_fail "helm template accepted $*; expected: $why"
    fi
    grep -q "$why" "$WORK/refused.log" || { cat "$WORK/refused.log"; k8s_fail "refused $* without saying '$why'"; }
}
refuse "never put the secret in values" --set config.REPRAM_CLUSTER_SECRET=hunter2
refuse "exceeds maxPorts" --set nodesPerPod=3
refuse "set by the chart" --set config.DISCOVERY_DOMAIN=localhost
refuse "replaced by REPRAM_TRUSTED_PROXIES" --set config.REPRAM_TRUST_PROXY=true
refuse "within 1..65535" --set basePort=65535 --set maxPorts=2
echo "$TEST: PASS the chart refuses a secret in values, NODE_COUNT > MAX_PORTS, chart-owned variables, REPRAM_TRUST_PROXY, a port range past 65535"
passed=$((passed + 1))

# The validators bite: a misspelt field and a missing probe path must fail.
sed 's/readOnlyRootFilesystem/readOnlyRootFilesystm/' "$WORK/values.yaml.yaml" >"$WORK/typo.yaml"
if "$K8S_TOOLS/venv/bin/kubernetes-validate" --strict --quiet -k 1.37.0 "$WORK/typo.yaml" >/dev/null 2>&1; then
    k8s_fail "kubernetes-validate accepted a misspelt securityContext field"
fi
sed 's/publishNotReadyAddresses: true/publishNotReadyAddresses: false/' "$WORK/values.yaml.yaml" >"$WORK/notready.yaml"
if "$PY" tests/k8s/check_render.py "$WORK/notready.yaml" >/dev/null; then
    k8s_fail "check_render.py accepted a headless Service that hides joining pods"
fi
echo "$TEST: PASS the schema check refuses a misspelt field; the chart check refuses publishNotReadyAddresses: false"
passed=$((passed + 1))

# The GitOps tree: kustomize builds it; the HelmRelease points at the GitRepository and the chart.
"$KUBECTL" kustomize "$GITOPS" >"$WORK/gitops.yaml" || k8s_fail "kustomize build $GITOPS"
"$PY" - "$WORK/gitops.yaml" "$CHART" <<'PYEOF' || k8s_fail "GitOps tree"
import os, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by = {(d["apiVersion"], d["kind"]): d for d in docs}
hr = by[("helm.toolkit.fluxcd.io/v2", "HelmRelease")]
src = by[("source.toolkit.fluxcd.io/v1", "GitRepository")]
ns = by[("v1", "Namespace")]
cm = by[("v1", "ConfigMap")]
ref = hr["spec"]["chart"]["spec"]["sourceRef"]
assert ref == {"kind": "GitRepository", "name": src["metadata"]["name"], "namespace": src["metadata"]["namespace"]}, ref
assert os.path.isfile(os.path.join(hr["spec"]["chart"]["spec"]["chart"].lstrip("./"), "Chart.yaml")), "chart path"
assert hr["metadata"]["namespace"] == ns["metadata"]["name"] == cm["metadata"]["namespace"]
[vf] = hr["spec"]["valuesFrom"]
assert vf["kind"] == "ConfigMap" and vf["name"] == cm["metadata"]["name"] and vf["valuesKey"] in cm["data"], vf
values = yaml.safe_load(cm["data"][vf["valuesKey"]])
assert "REPRAM_CLUSTER_SECRET" not in str(values), "a secret in the GitOps values"
assert src["spec"]["ref"].get("branch") and src["spec"]["url"].startswith("https://"), src["spec"]
print(f"{len(docs)} objects; HelmRelease {hr['metadata']['namespace']}/{hr['metadata']['name']} -> "
      f"GitRepository {ref['namespace']}/{ref['name']} chart {hr['spec']['chart']['spec']['chart']}, values {vf['name']}")
PYEOF
echo "$TEST: PASS the GitOps tree builds with kustomize; HelmRelease, GitRepository, Namespace and values agree"
passed=$((passed + 1))
echo "$TEST: $passed passed, 0 failed"
