# Shared by the browser tests (sourced): finds or installs Chromium, python3 and curl,
# and prepares $VENV (a Python venv with websocket-client in the target dir). Expects
# ROOT, TARGET_DIR and say() to be set. Also parses --update-docs into UPDATE_DOCS.
UPDATE_DOCS=0
for arg in "$@"; do
    case "$arg" in
        --update-docs) UPDATE_DOCS=1 ;;
        *) say "unknown argument $arg (only --update-docs)"; exit 2 ;;
    esac
done
# Screenshots go to the target dir; --update-docs also copies them into docs/ (so CI
# never changes the checkout).
SHOTS=$TARGET_DIR/screenshots
mkdir -p "$SHOTS"
publish() { # screenshot docs-name
    if [ "$UPDATE_DOCS" = 1 ]; then
        cp "$1" "$ROOT/docs/$2"
        say "copied $1 to docs/$2"
    else
        say "screenshot in $1 (run with --update-docs to copy it to docs/$2)"
    fi
}

# --- tools -----------------------------------------------------------------------------
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $*"; exit 1; fi; }
CHROMIUM=$(command -v chromium || true)
if [ -z "$CHROMIUM" ]; then
    say "installing chromium from Debian"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
    CHROMIUM=$(command -v chromium)
fi
for tool in python3 curl; do
    if ! command -v "$tool" >/dev/null; then
        say "installing $tool"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$tool" python3-venv >/dev/null
    fi
done
VENV=$TARGET_DIR/browser-venv
if ! "$VENV/bin/python" -c 'import websocket' 2>/dev/null; then
    say "preparing a Python venv with websocket-client in $VENV"
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check websocket-client
fi

