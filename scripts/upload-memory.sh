#!/usr/bin/env bash
# Issue 4's memory bound, checked on the binary the image ships (the Dockerfile's build, scripts/shipped-build.sh): credgate's peak RSS stays under 64 MiB while
# a 100 MiB upload goes through it (the upload route's limit raised to 128 MiB), because the body is checked as it
# streams and held in an encrypted spool file, never whole in memory.
#   scripts/upload-memory.sh [path/to/credgate]
#   (default: the binary built as the Dockerfile builds it, scripts/shipped-build.sh; built first if missing)
# Starts `credgate sandbox` and `credgate serve` (the shipped profile, upload limit raised) on free ports,
# uploads a 100 MiB PDF with curl -F (the multipart route) and with curl -T (PUT /credgate/v1/files/{name}),
# checks that each arrived whole (sha256 from the platform's answer), and reads credgate's peak RSS (VmHWM in
# /proc/PID/status, the kernel's own high-water mark). Prints the figures and `upload-memory: N passed, M failed`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIMIT_KIB=$((64 * 1024))
SIZE_MIB=${SIZE_MIB:-100}
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
BIN=${1:-}
[[ -n $BIN ]] || BIN=$(shipped_binary "$ROOT") || exit 1
start_work
kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$2/status"; }

[[ -x $BIN ]] || { echo "no binary at $BIN (build it: scripts/shipped-build.sh)"; exit 1; }
LINKAGE=$(linkage "$BIN")
echo "upload-memory: $BIN ($(du -h "$BIN" | cut -f1), $LINKAGE), ${SIZE_MIB} MiB uploads, bound $((LIMIT_KIB / 1024)) MiB"

KEY="mem-$RANDOM$RANDOM"
USER_EMAIL=mem@example.com
PASS="mem-pass-$RANDOM$RANDOM"
start_sandbox "$BIN" "$KEY" "$USER_EMAIL" "$PASS" || exit 1

sed 's/max_body_bytes: 25MiB/max_body_bytes: 128MiB/' "$ROOT/Config/credgate.yaml" >"$WORK/credgate.yaml"
grep -q 'max_body_bytes: 128MiB' "$WORK/credgate.yaml" || { echo "could not raise the upload limit"; exit 1; }
PORT=$(free_port)
env -i PATH="$PATH" HOME="$WORK" ASSURED_BASE_URL="http://127.0.0.1:$SANDBOX_PORT" ASSURED_API_KEY=$KEY \
    ASSURED_USER=$USER_EMAIL ASSURED_PASS=$PASS TMPDIR="$WORK" \
    "$BIN" serve --config "$WORK/credgate.yaml" --port "$PORT" --log-level warning >"$WORK/credgate.log" 2>&1 &
GATEWAY_PID=$!
PIDS+=($GATEWAY_PID)
BASE="http://127.0.0.1:$PORT"
wait_up "$BASE/credgate/healthz" "$GATEWAY_PID" 30 || { cat "$WORK/credgate.log"; exit 1; }
echo "  credgate pid $GATEWAY_PID at $BASE; RSS at rest $(( $(kib VmRSS "$GATEWAY_PID") / 1024 )) MiB"

FILE="$WORK/big.pdf"
{ printf '%%PDF-1.7\n'; head -c $((SIZE_MIB * 1024 * 1024 - 9)) /dev/urandom; } >"$FILE"
WANT=$(sha256sum "$FILE" | cut -d' ' -f1)

upload() { # label, curl arguments...
    local label=$1
    shift
    local started answer got
    started=$(date +%s%N)
    answer=$(curl -sS --max-time 300 "$@") || { fail "$label: curl failed"; return; }
    got=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["storage_metadata"]["sha256"])' <<<"$answer" 2>/dev/null || true)
    if [[ $got == "$WANT" ]]; then
        pass "$label: the platform stored all ${SIZE_MIB} MiB (sha256 matches) in $(( ($(date +%s%N) - started) / 1000000 )) ms"
    else
        fail "$label: the platform's answer does not show the file: ${answer:0:300}"
    fi
}
upload "curl -F (multipart, POST /api/v1/files/handle/)" -F "file=@$FILE;type=application/pdf" "$BASE/api/v1/files/handle/"
upload "curl -T (raw, PUT /credgate/v1/files/big.pdf)" -T "$FILE" "$BASE/credgate/v1/files/big.pdf"

PEAK=$(kib VmHWM "$GATEWAY_PID")
ANON=$(kib RssAnon "$GATEWAY_PID")
echo "  credgate peak RSS (VmHWM) $((PEAK / 1024)) MiB ($PEAK KiB); RssAnon now $((ANON / 1024)) MiB"
if ((PEAK < LIMIT_KIB)); then
    pass "peak RSS $((PEAK / 1024)) MiB < $((LIMIT_KIB / 1024)) MiB during two ${SIZE_MIB} MiB uploads"
else
    fail "peak RSS $((PEAK / 1024)) MiB is over $((LIMIT_KIB / 1024)) MiB"
fi
LEFT=$(find "$WORK" -maxdepth 1 -type f ! -name '*.log' ! -name '*.yaml' ! -name 'big.pdf' | wc -l)
if ((LEFT == 0)); then pass "no spool file left in TMPDIR"; else fail "$LEFT files left in TMPDIR"; fi
if grep -q "$KEY\|$PASS" "$WORK/credgate.log"; then fail "a secret appears in credgate's log"; else pass "no secret in credgate's log"; fi
echo "upload-memory: $PASSED passed, $FAILED failed"
((FAILED == 0))
