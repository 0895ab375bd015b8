#!/usr/bin/env bash
# The unmodified wriftai SDK (0.34.0, from PyPI) through credgate, against the WriftAI sandbox.
#   Tests/compat/run-wriftai.sh [path/to/credgate]
# Makes a Python 3.12 venv (pyenv's 3.12.1 when present) in .build/wriftai-venv, installs wriftai==0.34.0, starts
# `credgate serve --sandbox --config Config/wriftai.yaml` on a free port, and runs Tests/compat/wriftai_sdk_check.py
# with WRIFTAI_API_BASE_URL=<credgate>/v1 and a placeholder token (credgate strips it and adds the sandbox's):
# user and models (every cursor page), a 429 retried after x-ratelimit-reset, files.upload() whose part PUTs go
# straight to the sandbox's storage, predictions with an input file, their event streams (spacing, resume after
# an idle close), cancel. Then curl: a stream read with -N through credgate, its events arriving spaced, and the
# one-call upload (curl -T) when the profile routes it. Prints 'wriftai: N passed, M failed', 'curl stream: ok',
# 'curl one-call upload: ok' (or SKIPPED when the profile has no such route).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/lib.sh
BIN=${1:-.build/debug/credgate}
VENV=${VENV:-.build/wriftai-venv}
CONFIG=${CONFIG:-Config/wriftai.yaml}

if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import wriftai' 2>/dev/null; then
    PY=$(python312) || { echo "no Python 3.12 or newer found (pyenv's 3.12.1, python3.13, python3.12, python3)"; exit 1; }
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'wriftai==0.34.0'
fi
echo "python: $("$VENV/bin/python" --version), wriftai $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("wriftai"))')"

LOG=$(mktemp)
"$BIN" serve --sandbox --config "$CONFIG" --port 0 --log-level warning >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 100); do
    grep -q 'listening on' "$LOG" && break
    sleep 0.1
done
# "credgate X listening on http://127.0.0.1:P, forwarding 'wriftai' to the sandbox at http://127.0.0.1:Q/v1"
GATEWAY=$(grep -o 'listening on http://[0-9.:]*' "$LOG" | head -1 | sed 's/listening on //')
SANDBOX=$(grep -o "'wriftai' to the sandbox at http://[0-9.:]*" "$LOG" | head -1 | sed "s/.*sandbox at //")
if [[ -z $GATEWAY || -z $SANDBOX ]]; then
    echo "credgate did not start:"; cat "$LOG"; exit 1
fi
echo "credgate at $GATEWAY, WriftAI sandbox at $SANDBOX"

# A placeholder token only: the real one lives in credgate (here: the sandbox's, set by --sandbox).
TOKEN=placeholder-not-a-token
env -u WRIFTAI_ACCESS_TOKEN_FILE WRIFTAI_API_BASE_URL="$GATEWAY/v1" WRIFTAI_ACCESS_TOKEN="$TOKEN" \
    SANDBOX_URL="$SANDBOX" "$VENV/bin/python" Tests/compat/wriftai_sdk_check.py

# curl -N: a prediction's stream through credgate, six events 400 ms apart; each line is stamped as it arrives.
ID=$(curl -fsS -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" \
    -d '{"model": "sandbox/echo", "input": {"prompt": "curl"}}' "$GATEWAY/v1/predictions" |
    "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["id"])')
STAMPS=$(curl -fsSN "$GATEWAY/v1/predictions/$ID/stream?events=6&interval_ms=400" |
    while IFS= read -r line; do
        case $line in
            "event: output") date +%s.%N ;;
            "event: done") echo done ;;
        esac
    done)
if [[ $(grep -c '^[0-9]' <<<"$STAMPS") != 6 || $(tail -1 <<<"$STAMPS") != done ]]; then
    echo "curl stream: FAILED, got: $STAMPS"; exit 1
fi
SPAN=$(grep '^[0-9]' <<<"$STAMPS" | awk 'NR == 1 { first = $1 } { last = $1 } END { printf "%.2f", last - first }')
if awk -v s="$SPAN" 'BEGIN { exit !(s >= 1.6) }'; then
    echo "curl stream: ok (6 events over ${SPAN} s, as sent)"
else
    echo "curl stream: FAILED, 6 events over only ${SPAN} s (buffered?)"; exit 1
fi
# curl -T: credgate's one-call upload (the whole three-step flow), when the profile has its route; the file must
# come back byte for byte from the download URL it answers, its parts having gone to the sandbox's storage.
FILE=$(mktemp --suffix=.pdf)
OUT=$(mktemp)
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -f "$LOG" "$FILE" "$OUT"' EXIT
{ printf '%%PDF-1.7\n'; head -c 300000 /dev/urandom; } >"$FILE"
PARTS_BEFORE=$(curl -fsS "$SANDBOX/sandbox/counters" | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["part_puts"])')
# Without the route (a profile that leaves endpoints.wriftai_upload out), credgate answers 404 admin-not-found.
CODE=$(curl -sS -o "$OUT" -w '%{http_code}' -T "$FILE" "$GATEWAY/credgate/v1/wriftai/files/report.pdf")
if [[ $CODE == 404 ]]; then
    echo "curl one-call upload: SKIPPED ($CONFIG has no route for /credgate/v1/wriftai/files/)"
elif [[ $CODE == 201 ]]; then
    URL=$("$VENV/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["download_url"])' "$OUT")
    PARTS=$(($(curl -fsS "$SANDBOX/sandbox/counters" | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["part_puts"])') - PARTS_BEFORE))
    if curl -fsS "$URL" | cmp -s - "$FILE"; then
        echo "curl one-call upload: ok ($(wc -c <"$FILE") bytes in $PARTS parts, served back by its download URL)"
    else
        echo "curl one-call upload: FAILED, the download URL does not serve the file: $(cat "$OUT")"; exit 1
    fi
else
    echo "curl one-call upload: FAILED, HTTP $CODE: $(cat "$OUT")"; exit 1
fi

STATUS=$(curl -fsS "$GATEWAY/credgate/status")
if grep -q 'placeholder-not-a' <<<"$STATUS"; then echo "status shows a placeholder secret"; exit 1; fi
