#!/usr/bin/env bash
# Regenerates link/credgate.order, the link order of the functions the data path runs (issue 13, item 3: memory).
#
#   scripts/order-file.sh [path/to/credgate]   # default: the Dockerfile's build (scripts/shipped-build.sh), unstripped
#
# Why: the static binary has ~30 MiB of code. After start-up, credgate unmaps its read-only pages
# (Sources/credgate/ResidentCode.swift) and only what runs comes back, but the kernel maps code back in 64 KiB runs
# around each page touched (fault-around). Left to the default order, the few MiB the data path runs are spread
# over the whole text, and under load 11 MiB came back for 2 MiB actually run. The Dockerfile compiles with one
# section per function (`-function-sections`, `-ffunction-sections`) and links with
# `--symbol-ordering-file=link/credgate.order`: lld puts the functions listed here first, in this order, so the
# data path's code is a few contiguous MiB.
#
# How: the binary runs under valgrind's callgrind with instrumentation off during start-up, against `credgate sandbox`
# (the Assured emulator, in its own process so that its code is not listed) with the shipped Config/credgate.yaml.
# Once it is ready, instrumentation is turned on, and the requests users send go through it: the API-key route
# (keep-alive GETs, the fast path, HEAD, a 404 from the platform), the session routes (JWT), the presign route (a
# miss, then hits from the cache), an upload, a chunked POST, credgate's own answers (404 no route, 405, 400, 413,
# healthz, readiness, metrics, status), concurrent connections, a few seconds of wrk on the API-key and presign
# routes (when wrk is installed); then a few idle seconds (timers). Every function
# that ran is listed, the most expensive (own instructions) first.
#
# When: after a change to the data path or a dependency update. A name that no longer exists is skipped by lld
# (--no-warn-symbol-ordering), so a stale file costs memory, never correctness; `bench/run.sh` reports how many of
# the listed names the binary still has. Takes 1-3 minutes. Needs valgrind (Debian's package).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
BIN=${1:-}
[[ -n $BIN ]] || BIN=$(shipped_binary "$ROOT") || exit 1
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
    { echo "order-file: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
nm "$BIN" 2>/dev/null | awk '/ T main$/ { f = 1 } END { exit !f }' || { echo "order-file: $BIN has no symbols (use the unstripped build)" >&2; exit 1; }
start_work
OUT=$ROOT/link/credgate.order
# Valgrind cannot read the DWARF 5 debug sections the toolchain writes: run a copy without them (symbols kept).
strip --strip-debug -o "$WORK/credgate" "$BIN"
BIN=$WORK/credgate

KEY="order-$RANDOM$RANDOM"
USER_EMAIL=order@example.com
PASS="order-pass-$RANDOM$RANDOM"
start_sandbox "$BIN" "$KEY" "$USER_EMAIL" "$PASS" || exit 1

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
env -i PATH="$PATH" HOME="$WORK" ASSURED_BASE_URL="http://127.0.0.1:$SANDBOX_PORT" ASSURED_API_KEY=$KEY \
    ASSURED_USER=$USER_EMAIL ASSURED_PASS=$PASS TMPDIR="$WORK" \
    valgrind --tool=callgrind --instr-atstart=no --compress-strings=no --compress-pos=no --demangle=no \
    --callgrind-out-file="$WORK/callgrind.out" \
    "$BIN" serve --config "$ROOT/Config/credgate.yaml" --port "$PORT" >"$WORK/credgate.log" 2>&1 &
GATEWAY_PID=$!
PIDS+=($GATEWAY_PID)
echo "order-file: $BIN under callgrind (pid $GATEWAY_PID) at $BASE, sandbox at :$SANDBOX_PORT"
wait_up "$BASE/credgate/healthz" "$GATEWAY_PID" 120 || { cat "$WORK/credgate.log"; exit 1; }
for ((i = 0; i < 600; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE/credgate/readiness") == 200 ]] && break
    sleep 0.2
done
((i < 600)) || { echo "order-file: credgate did not get ready"; cat "$WORK/credgate.log"; exit 1; }
# (vgdb, which callgrind_control talks through, keeps its FIFOs in TMPDIR: the same as credgate's.)
TMPDIR=$WORK callgrind_control -i on "$GATEWAY_PID" >/dev/null

c() { curl -s --max-time 60 "$@" >/dev/null || true; }
PDF=$WORK/doc.pdf
{ printf '%%PDF-1.7\n'; head -c 20000 /dev/urandom; } >"$PDF"
PRESIGN='{"s3_url": "s3://bucket/key.pdf", "presigned_url": ""}'
PROFILE=7d1c3c5e-0000-4000-8000-00000000beef
for round in 1 2 3; do
    # One keep-alive connection, several kinds of request in a row (the fast path and its hand-overs).
    c "$BASE/api/v1/users/providers-list/" "$BASE/api/v1/users/providers-list/?page=2" \
        "$BASE/api/v1/users/logged-in-user-details/" "$BASE/api/v1/no-such-thing/" \
        "$BASE/api/v1/users/retrieve-update-provider-ssn/$PROFILE/" "$BASE/nothing-here" "$BASE/credgate/healthz"
    c -I "$BASE/api/v1/users/providers-list/"
    c -X DELETE "$BASE/api/v1/files/handle/"
    c -X POST -H 'Content-Type: application/json' -d "$PRESIGN" "$BASE/api/v1/files/presign-s3-url/presign_s3_url/"
    c -X POST -H 'Content-Type: application/json' -d '{"s3_url": "http://not-s3"}' "$BASE/api/v1/files/presign-s3-url/presign_s3_url/"
    c -F "file=@$PDF;type=application/pdf" "$BASE/api/v1/files/handle/"
    c -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/json' -d '{"a": 1}' "$BASE/api/v1/users/providers-list/"
    c -X PUT -H 'Content-Type: application/json' -d '{"ssn": "123-45-6789"}' "$BASE/api/v1/users/retrieve-update-provider-ssn/$PROFILE/"
    c -H 'Authorization: Bearer from-the-client' -H 'Cookie: a=b' -H 'X-Forwarded-For: 10.0.0.1' "$BASE/api/v1/users/providers-list/"
    c "$BASE/api/../etc/passwd" --path-as-is
    c -X PATCH "$BASE/credgate/healthz"
    c "$BASE/credgate/readiness" "$BASE/credgate/metrics" "$BASE/credgate/status"
    # Concurrent keep-alive connections.
    CURLS=()
    for _ in 1 2 3 4; do
        c "$BASE/api/v1/users/providers-list/" "$BASE/api/v1/users/providers-list/" "$BASE/api/v1/users/providers-list/" &
        CURLS+=($!)
    done
    wait "${CURLS[@]}" # (a bare `wait` would wait for the sandbox and credgate too)
done
# Sustained load on many connections (what a benchmark or a busy client does: more connections upstream, full
# socket buffers, larger log batches), when wrk is there.
if command -v wrk >/dev/null; then
    wrk -t1 -c16 -d4s "$BASE/api/v1/users/providers-list/" >/dev/null 2>&1 || true
    printf 'wrk.method = "POST"\nwrk.body = [[%s]]\nwrk.headers["Content-Type"] = "application/json"\n' "$PRESIGN" >"$WORK/presign.lua"
    wrk -t1 -c16 -d3s -s "$WORK/presign.lua" "$BASE/api/v1/files/presign-s3-url/presign_s3_url/" >/dev/null 2>&1 || true
fi
sleep 3 # idle: the timers, the access-log writer
TMPDIR=$WORK callgrind_control -d "$GATEWAY_PID" >/dev/null
sleep 1
kill "$GATEWAY_PID" 2>/dev/null || true
wait "$GATEWAY_PID" 2>/dev/null || true

# Every function with a cost, the most expensive (own instructions) first. In callgrind's format a `calls=` line is
# followed by the inclusive cost of that call, which is not the caller's own.
shopt -s nullglob
DUMPS=("$WORK"/callgrind.out*)
((${#DUMPS[@]})) || { echo "order-file: callgrind wrote nothing"; exit 1; }
awk '
    /^fn=/ { fn = substr($0, 4); next }
    /^calls=/ { skip = 1; next }
    /^[0-9+-]/ { if (skip) { skip = 0; next } if (fn != "") cost[fn] += $2; next }
    END { for (f in cost) if (cost[f] > 0) print cost[f], f }
' "${DUMPS[@]}" | sort -k1,1nr -k2 | awk '{ print $2 }' | grep -v -e '^0x' -e '^(below main)$' >"$WORK/names"
TOTAL=$(wc -l <"$WORK/names")
# Only names the binary defines (libc's are in shared objects).
nm "$BIN" | awk '{ print $NF }' | sort -u >"$WORK/defined"
awk 'NR == FNR { d[$0] = 1; next } d[$0]' "$WORK/defined" "$WORK/names" >"$WORK/ordered"
KEPT=$(wc -l <"$WORK/ordered")
((KEPT > 500)) || { echo "order-file: only $KEPT functions found; not writing $OUT"; exit 1; }
{
    echo "# Generated by scripts/order-file.sh from $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') on $(date -u +%Y-%m-%d):"
    echo "# the $KEPT functions credgate's data path ran, most expensive first. lld links them first (Dockerfile)."
    cat "$WORK/ordered"
} >"$OUT"
echo "order-file: $KEPT of $TOTAL functions that ran are in the binary; wrote $OUT"
