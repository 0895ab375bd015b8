#!/usr/bin/env bash
# The unmodified assured-py SDK (1.3.0, from PyPI) through credgate, against the sandbox platform.
#   Tests/compat/run-assured-py.sh [path/to/credgate]
# Makes a Python 3.12 venv (pyenv's 3.12.1 when present), installs assured-py==1.3.0, starts
# `credgate serve --sandbox` on a free port, and runs Tests/compat/assured_sdk_check.py with placeholder
# credentials: list_all(), update_ssn() checked through the plaintext read-back, and a soak over several
# short token lifetimes. Prints 'assured-py: N passed, M failed'.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/lib.sh
BIN=${1:-.build/debug/credgate}
VENV=${VENV:-.build/compat-venv}
SOAK_SECONDS=${SOAK_SECONDS:-16}
TOKEN_LIFETIME=${TOKEN_LIFETIME:-4}

if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import importlib.metadata as m; m.version("assured-py")' 2>/dev/null; then
    PY=$(python312) || { echo "no Python 3.12 or newer found (pyenv's 3.12.1, python3.13, python3.12, python3)"; exit 1; }
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'assured-py==1.3.0'
fi
echo "python: $("$VENV/bin/python" --version), assured-py $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("assured-py"))')"

LOG=$(mktemp)
"$BIN" serve --sandbox --port 0 --log-level warning >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 100); do
    grep -q 'listening on' "$LOG" && break
    sleep 0.1
done
GATEWAY=$(grep -o 'listening on http://[0-9.:]*' "$LOG" | head -1 | sed 's/listening on //')
SANDBOX=$(grep -o 'sandbox at http://[0-9.:]*' "$LOG" | head -1 | sed 's/sandbox at //')
if [[ -z $GATEWAY || -z $SANDBOX ]]; then
    echo "credgate did not start:"; cat "$LOG"; exit 1
fi
echo "credgate at $GATEWAY, sandbox at $SANDBOX"

# Placeholder credentials only: the real ones live in credgate (here: the sandbox's, set by --sandbox).
env -u ASSURED_API_KEY_FILE ASSURED_BASE_URL="$GATEWAY" ASSURED_API_KEY=placeholder-not-a-key \
    ASSURED_USER=app@example.com ASSURED_PASS=placeholder-not-a-password \
    SANDBOX_URL="$SANDBOX" SOAK_SECONDS="$SOAK_SECONDS" TOKEN_LIFETIME="$TOKEN_LIFETIME" \
    "$VENV/bin/python" Tests/compat/assured_sdk_check.py || {
    status=$?
    echo "the SDK check failed (exit $status); credgate's log (level warning) ends with:"
    tail -n 30 "$LOG"
    exit "$status"
}
STATUS=$(curl -fsS "$GATEWAY/credgate/status")
if grep -q 'placeholder-not-a' <<<"$STATUS"; then echo "status shows a placeholder secret"; exit 1; fi
