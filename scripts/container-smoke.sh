#!/usr/bin/env bash
# Runs the release binary exactly as the Docker image's entrypoint would, and checks that it answers.
# No Docker engine runs here, so this is the stand-in for `docker run`:
#   - ENTRYPOINT, CMD, ENV, USER, EXPOSE and the config COPY are read from the Dockerfile and asserted;
#   - the binary and Config/credgate.yaml are laid out in a temporary root as in the image
#     (ROOT/usr/local/bin/credgate, ROOT/etc/credgate/credgate.yaml);
#   - the process starts with a clean environment holding only the image's ENV (CREDGATE_CONFIG pointing at the
#     copy in the temporary root), with the CMD arguments, as a non-root user (setpriv to nobody when run as
#     root), with its working directory at the temporary root;
#   - what `docker run -e ...` would add: ASSURED_BASE_URL pointing at a `credgate sandbox` started here with a
#     known SANDBOX_API_KEY (and SANDBOX_USER/SANDBOX_PASS), ASSURED_API_KEY (and ASSURED_USER/ASSURED_PASS) equal
#     to them, and CREDGATE_PORT on a free port instead of 8080.
# The binary is the one the image ships: built with the Dockerfile's own `swift build` arguments (static Swift
# stdlib, its linker flags; scripts/shipped-build.sh) and stripped as the Dockerfile strips it.
# Then: /credgate/healthz answers 200, /credgate/status shows no secret, /api/v1/users/providers-list/ answers
# 200 JSON through the sandbox, a path with no route answers 404 problem+json, the access log on stdout is one
# JSON object per request, GET /credgate/metrics answers the Prometheus text format with the requests just made
# counted, the start-up pages let go once ready as the image's user (mapped file pages compared with a second
# process run with CREDGATE_KEEP_STARTUP_PAGES=1), and a clean drain: SIGTERM while a slow request is in flight lets it finish (200), and the process
# exits 0 within 5 s. Prints `container-smoke: N passed, M failed`; exits 1 if anything failed.
# SMOKE_USER=root keeps root instead of dropping to nobody (diagnosis only).
#
#   scripts/container-smoke.sh            # builds incrementally with scripts/shipped-build.sh and uses that binary
#   CREDGATE_BIN=/path/to/credgate scripts/container-smoke.sh   # that binary (CI: the one its build step made)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKERFILE=$ROOT/Dockerfile
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
check() { # description, then a command that must succeed
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
finish() {
    echo "container-smoke: $PASSED passed, $FAILED failed"
    ((FAILED == 0))
}

# ---------------------------------------------------------------------------------------------- Dockerfile
echo "container-smoke: reading $DOCKERFILE"
[[ -f $DOCKERFILE ]] || { fail "Dockerfile exists"; finish; exit 1; }
# Instructions of the final stage, continuation lines joined.
FINAL_STAGE=$(awk '
    /\\$/ { sub(/\\$/, ""); line = line $0 " "; next }
    { line = line $0; print line; line = "" }' "$DOCKERFILE" |
    sed -e 's/^[[:space:]]*//' | grep -v '^#' | awk 'toupper($1) == "FROM" { stage = "" } { stage = stage $0 "\n" } END { printf "%s", stage }')
instruction() { printf '%s' "$FINAL_STAGE" | awk -v k="$1" 'toupper($1) == k { $1 = ""; sub(/^ /, ""); print }'; }
# A JSON-array instruction as one word per line.
json_words() { printf '%s' "$1" | grep -o '"[^"]*"' | tr -d '"'; }

ENTRYPOINT=$(instruction ENTRYPOINT | tail -1)
CMD=$(instruction CMD | tail -1)
mapfile -t ENTRY_WORDS < <(json_words "$ENTRYPOINT")
mapfile -t CMD_WORDS < <(json_words "$CMD")
check "ENTRYPOINT is [\"/usr/local/bin/credgate\"] (exec form)" \
    test "${#ENTRY_WORDS[@]}" = 1 -a "${ENTRY_WORDS[0]:-}" = /usr/local/bin/credgate
check "CMD is [\"serve\"] (exec form)" test "${#CMD_WORDS[@]}" = 1 -a "${CMD_WORDS[0]:-}" = serve

declare -A IMAGE_ENV=()
while read -r word; do
    [[ $word == *=* ]] && IMAGE_ENV[${word%%=*}]=${word#*=}
done < <(instruction ENV | tr ' ' '\n' | sed '/^$/d')
check "ENV CREDGATE_CONFIG=/etc/credgate/credgate.yaml" test "${IMAGE_ENV[CREDGATE_CONFIG]:-}" = /etc/credgate/credgate.yaml
check "ENV CREDGATE_HOST=0.0.0.0" test "${IMAGE_ENV[CREDGATE_HOST]:-}" = 0.0.0.0
check "the config is copied from Config/credgate.yaml to \$CREDGATE_CONFIG" \
    grep -Eq "^COPY .*Config/credgate.yaml +${IMAGE_ENV[CREDGATE_CONFIG]:-/nonexistent}\$" <<<"$FINAL_STAGE"
check "the binary is copied to the ENTRYPOINT path" grep -Eq "^COPY .*credgate +${ENTRY_WORDS[0]:-/nonexistent}\$" <<<"$FINAL_STAGE"
IMAGE_USER=$(instruction USER | tail -1)
check "USER is not root ($IMAGE_USER)" test -n "$IMAGE_USER" -a "${IMAGE_USER%%:*}" != root -a "${IMAGE_USER%%:*}" != 0
# Every profile the image ships is exposed on its listen.port (the Assured profile's, and WriftAI's).
profile_port() { awk '/^listen:/ { l = 1; next } /^[^ #]/ { l = 0 } l && $1 == "port:" { print $2; exit }' "$1"; }
EXPOSED=" $(instruction EXPOSE | tail -1) "
for profile in credgate wriftai; do
    PORT=$(profile_port "$ROOT/Config/$profile.yaml")
    check "EXPOSE${EXPOSED% } includes Config/$profile.yaml's listen.port ${PORT:-8080}" \
        grep -q " ${PORT:-8080} " <<<"$EXPOSED"
done
check "the WriftAI profile is copied to /etc/credgate/wriftai.yaml" \
    grep -Eq "^COPY .*Config/wriftai.yaml +/etc/credgate/wriftai.yaml\$" <<<"$FINAL_STAGE"

# ---------------------------------------------------------------------------------------------- binary
# The image's build (scripts/shipped-build.sh: the Dockerfile's `swift build` arguments, in .build-bench) is
# incremental: right after CI's build step it only checks that nothing changed, and it never tests a stale binary.
# CREDGATE_BIN=path skips it (CI passes the binary its build step made).
BIN=${CREDGATE_BIN:-}
if [[ -z $BIN ]]; then
    BIN=$("$ROOT/scripts/shipped-build.sh" | tail -1) || { fail "the Dockerfile's build (scripts/shipped-build.sh)"; finish; exit 1; }
fi
[[ -x $BIN ]] || { fail "release binary at $BIN"; finish; exit 1; }
echo "container-smoke: binary $BIN"
check "the binary links the Swift stdlib statically, as the Dockerfile's --static-swift-stdlib build does" static_swift "$BIN"

# ---------------------------------------------------------------------------------------------- layout
IMAGE_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/credgate-image.XXXXXX")
PIDS=()
cleanup() {
    local pid i
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$IMAGE_ROOT"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

chmod 755 "$IMAGE_ROOT"
ENTRY=$IMAGE_ROOT${ENTRY_WORDS[0]:-/usr/local/bin/credgate}
CONFIG=$IMAGE_ROOT${IMAGE_ENV[CREDGATE_CONFIG]:-/etc/credgate/credgate.yaml}
mkdir -p "$(dirname "$ENTRY")" "$(dirname "$CONFIG")"
# The image ships the binary stripped (`strip /staging/credgate`): so does this copy.
if command -v strip >/dev/null; then strip -o "$ENTRY" "$BIN"; else cp "$BIN" "$ENTRY"; fi
cp "$ROOT/Config/credgate.yaml" "$CONFIG"
chmod -R a+rX "$IMAGE_ROOT"

# Whether a listening TCP socket is bound to 0.0.0.0:PORT (/proc/net/tcp: local address 00000000:PORT in hex, state 0A).
bound_any() { awk -v p="$(printf '%04X' "$1")" '$2 == "00000000:" p && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp; }

# ---------------------------------------------------------------------------------------------- sandbox
SANDBOX_PORT=$(free_port)
SANDBOX_KEY="smoke-$RANDOM$RANDOM$RANDOM"
SANDBOX_LOGIN=smoke-user@example.com
SANDBOX_PASSWORD="smoke-pass-$RANDOM$RANDOM$RANDOM"
SANDBOX_API_KEY=$SANDBOX_KEY SANDBOX_USER=$SANDBOX_LOGIN SANDBOX_PASS=$SANDBOX_PASSWORD "$BIN" sandbox --host 127.0.0.1 --port "$SANDBOX_PORT" \
    >"$IMAGE_ROOT/sandbox.log" 2>&1 &
PIDS+=($!)
if ! wait_up "http://127.0.0.1:$SANDBOX_PORT/" "${PIDS[0]}" 30; then
    fail "sandbox starts on 127.0.0.1:$SANDBOX_PORT"
    cat "$IMAGE_ROOT/sandbox.log"
    finish
    exit 1
fi
pass "sandbox (credgate sandbox) answers on 127.0.0.1:$SANDBOX_PORT"

# ---------------------------------------------------------------------------------------------- the container
PORT=$(free_port)
RUN_ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent)
for k in "${!IMAGE_ENV[@]}"; do [[ $k == CREDGATE_CONFIG ]] || RUN_ENV+=("$k=${IMAGE_ENV[$k]}"); done
RUN_ENV+=("CREDGATE_CONFIG=$CONFIG" "CREDGATE_PORT=$PORT"
    "ASSURED_BASE_URL=http://127.0.0.1:$SANDBOX_PORT" "ASSURED_API_KEY=$SANDBOX_KEY"
    "ASSURED_USER=$SANDBOX_LOGIN" "ASSURED_PASS=$SANDBOX_PASSWORD")
# The image runs as an unprivileged user; so does this, when it can switch (root with setpriv). SMOKE_USER picks
# another user, or root to keep root (only for diagnosing a failure that happens only without privileges).
SMOKE_USER=${SMOKE_USER:-nobody}
AS_USER=()
RUN_AS="$(id -un) (uid $(id -u))"
if ((EUID == 0)) && [[ $SMOKE_USER != root ]]; then
    if command -v setpriv >/dev/null && id "$SMOKE_USER" >/dev/null 2>&1; then
        AS_USER=(setpriv --reuid="$(id -u "$SMOKE_USER")" --regid="$(id -g "$SMOKE_USER")" --clear-groups --)
        RUN_AS="$SMOKE_USER (uid $(id -u "$SMOKE_USER")), through setpriv"
    else
        RUN_AS="root, because setpriv or the user $SMOKE_USER is missing"
    fi
elif ((EUID == 0)); then
    RUN_AS="root (SMOKE_USER=root)"
fi
echo "container-smoke: running ${ENTRY_WORDS[*]} ${CMD_WORDS[*]} as $RUN_AS, CREDGATE_PORT=$PORT"
echo "container-smoke: environment: $(printf '%s ' "${RUN_ENV[@]}" | sed -e "s/ASSURED_API_KEY=[^ ]*/ASSURED_API_KEY=<redacted>/" -e "s/ASSURED_PASS=[^ ]*/ASSURED_PASS=<redacted>/")"
(cd "$IMAGE_ROOT" && exec "${AS_USER[@]}" env -i "${RUN_ENV[@]}" "$ENTRY" "${CMD_WORDS[@]}") \
    >"$IMAGE_ROOT/credgate.out" 2>"$IMAGE_ROOT/credgate.err" &
PID=$!
PIDS+=("$PID")
BASE=http://127.0.0.1:$PORT
if ! wait_up "$BASE/credgate/healthz" "$PID" 15; then
    fail "credgate starts and answers on port $PORT (an HTTP status within 15 s)"
    kill -0 "$PID" 2>/dev/null && echo "--- the process runs; curl says: $(curl -sS -o /dev/null --max-time 2 "$BASE/credgate/healthz" 2>&1)"
    echo "--- stdout"; cat "$IMAGE_ROOT/credgate.out"; echo "--- stderr"; cat "$IMAGE_ROOT/credgate.err"
    finish
    exit 1
fi
check "it says it listens on http://0.0.0.0:$PORT" grep -q "listening on http://0.0.0.0:$PORT" "$IMAGE_ROOT/credgate.out"
check "  ... and the socket is bound to 0.0.0.0:$PORT" bound_any "$PORT"
if ((EUID == 0)) && ((${#AS_USER[@]})); then
    check "it runs as a non-root user" test "$(awk '/^Uid:/ { print $2 }' "/proc/$PID/status")" != 0
fi

body=$IMAGE_ROOT/body
headers=$IMAGE_ROOT/headers
request() { # expected status, then curl arguments; fills $body and $headers
    local code
    code=$(curl -sS --max-time 10 -D "$headers" -o "$body" -w '%{http_code}' "$@" 2>&1) || true
    [[ $code == "$EXPECT" ]]
}
header() { awk -v k="$1" '{ n = index($0, ":"); if (tolower(substr($0, 1, n - 1)) == tolower(k)) { v = substr($0, n + 1); gsub(/^[ \t]+|[ \t\r]+$/, "", v); print v } }' "$headers"; }
is_json() {
    if command -v python3 >/dev/null; then python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$1" 2>/dev/null
    else head -c 1 "$1" | grep -q '[{[]'; fi
}

EXPECT=200 check "GET /credgate/healthz answers 200" request "$BASE/credgate/healthz"

EXPECT=200 check "GET /credgate/status answers 200" request "$BASE/credgate/status"
no_secret() { ! grep -qF -e "$SANDBOX_KEY" -e "$SANDBOX_PASSWORD" "$body"; }
check "  ... and shows neither the API key nor the password" no_secret

EXPECT=200 check "GET /api/v1/users/providers-list/ answers 200 through the sandbox" request "$BASE/api/v1/users/providers-list/"
check "  ... with Content-Type application/json ($(header content-type))" grep -qi '^application/json' <<<"$(header content-type)"
json_page() { is_json "$body" && grep -q '"results"' "$body"; }
check "  ... and a JSON page with results" json_page
EXPECT=200 check "a client-sent x-api-key and Authorization are replaced, not forwarded (still 200)" \
    request -H 'x-api-key: not-the-key' -H 'Authorization: Bearer not-a-token' "$BASE/api/v1/users/providers-list/?limit=1"

EXPECT=404 check "GET /no/route answers 404" request "$BASE/no/route"
check "  ... as application/problem+json ($(header content-type))" grep -qi '^application/problem+json' <<<"$(header content-type)"
check "  ... with X-Credgate-Error ($(header x-credgate-error))" test -n "$(header x-credgate-error)"
check "  ... and a JSON body" is_json "$body"

# The image logs one JSON object per request (CREDGATE_LOG_FORMAT=json), written off the event loop within ~100 ms.
sleep 0.5
access_log_is_json() {
    python3 - "$IMAGE_ROOT/credgate.out" <<'PY'
import json, sys
records = []
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        records.append(json.loads(line))
keys = {"time", "request_id", "route", "method", "path", "status", "bytes_in", "bytes_out", "duration_ms", "upstream", "credentials", "error"}
assert len(records) >= 4, f"{len(records)} access records"
assert all(keys <= set(r) for r in records), records
assert any(r["status"] == 404 and r["error"] == "no-route" for r in records), records
assert any(r["route"] == "assured-api" and r["credentials"] == ["assured_key"] for r in records), records
assert all("?" not in r["path"] for r in records), "no query strings by default"
PY
}
check "the access log is one JSON object per request, without query strings" access_log_is_json
no_secret_in_logs() { ! grep -qF -e "$SANDBOX_KEY" -e "$SANDBOX_PASSWORD" "$IMAGE_ROOT/credgate.out" "$IMAGE_ROOT/credgate.err"; }
check "  ... and neither the log nor stderr holds the API key or the password" no_secret_in_logs

# Prometheus metrics, as a scrape would read them. With prometheus-client (CI's .build/metrics-venv, or any
# python3 that has it) the text is parsed by a real Prometheus parser; otherwise line by line.
EXPECT=200 check "GET /credgate/metrics answers 200" request "$BASE/credgate/metrics"
check "  ... as the Prometheus text format ($(header content-type))" grep -qi '^text/plain; *version=0\.0\.4' <<<"$(header content-type)"
METRICS_PYTHON=python3
[[ -x $ROOT/.build/metrics-venv/bin/python ]] && METRICS_PYTHON=$ROOT/.build/metrics-venv/bin/python
metrics_hold_the_traffic() {
    "$METRICS_PYTHON" - "$body" <<'PY2'
import re, sys
text = open(sys.argv[1]).read()
samples = []  # (name, labels, value)
try:
    from prometheus_client.parser import text_string_to_metric_families
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.append((s.name, dict(s.labels), s.value))
    parser = "prometheus-client's parser"
except ImportError:
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?', line)
        assert m, f"not an exposition line: {line!r}"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    parser = "a line parser (prometheus-client is not installed)"
names = {n for n, _, _ in samples}
assert all(n.startswith("credgate_") for n in names), sorted(n for n in names if not n.startswith("credgate_"))
def total(name, **want):
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in want.items()))
api = total("credgate_requests_total", route="assured-api")
assert api >= 2, f"credgate_requests_total for route assured-api is {api}, expected the 2 requests made"
assert total("credgate_request_duration_seconds_count", route="assured-api") >= 2, "no duration histogram for assured-api"
assert "credgate_client_connections" in names, "credgate_client_connections missing"
assert any(n == "credgate_credential_state" and l.get("credential") == "assured_session" for n, l, _ in samples), \
    "no credgate_credential_state for the session credential"
for n, l, _ in samples:
    for k, v in l.items():
        assert "/" not in v or k == "le", f"a label holds a path: {n}{l}"
print(f"  metrics: {len(samples)} samples in {len(names)} series names, read with {parser}; assured-api requests: {api:g}")
PY2
}
check "  ... names with the credgate_ prefix, the route's requests counted, durations, connections, credential states" \
    metrics_hold_the_traffic
check "  ... and no secret" no_secret

# A clean drain, as Kubernetes stops a pod: SIGTERM while a request is in flight. The sandbox holds presign
# answers for 1.5 s; the request (key + session, so the session's login is done first: wait for readiness)
# must still get its 200 after the signal, and the process must exit 0.
ready() { [[ $(http_code "$BASE/credgate/readiness") == 200 ]]; }
for ((i = 0; i < 100; i++)); do ready && break; sleep 0.1; done
check "GET /credgate/readiness answers 200 (the session credential logged in against the sandbox)" ready

# Once ready, credgate lets go of its start-up code (Sources/credgate/ResidentCode.swift). As the image's user, who
# cannot write the root-owned binary, the kernel refuses to page a file out (MADV_PAGEOUT did nothing here); the
# release must still happen. Compared with a second process, started the same way with CREDGATE_KEEP_STARTUP_PAGES=1.
rss_file_kib() { awk '/^RssFile:/ { print $2 }' "/proc/$1/status"; }
sleep 1
RELEASED_KIB=$(rss_file_kib "$PID")
KEEP_PORT=$(free_port)
(cd "$IMAGE_ROOT" && exec "${AS_USER[@]}" env -i "${RUN_ENV[@]}" CREDGATE_PORT="$KEEP_PORT" CREDGATE_KEEP_STARTUP_PAGES=1 \
    "$ENTRY" "${CMD_WORDS[@]}") >"$IMAGE_ROOT/keep.out" 2>"$IMAGE_ROOT/keep.err" &
KEEP_PID=$!
PIDS+=("$KEEP_PID")
for ((i = 0; i < 100; i++)); do [[ $(http_code "http://127.0.0.1:$KEEP_PORT/credgate/readiness") == 200 ]] && break; sleep 0.1; done
sleep 1
KEPT_KIB=$(rss_file_kib "$KEEP_PID" 2>/dev/null || echo 0)
kill -TERM "$KEEP_PID" 2>/dev/null || true
check "once ready, the start-up pages are let go as $RUN_AS: mapped file pages $((RELEASED_KIB / 1024)) MiB, against $((KEPT_KIB / 1024)) MiB with CREDGATE_KEEP_STARTUP_PAGES=1" \
    test "$((RELEASED_KIB * 4))" -lt "$((KEPT_KIB * 3))"
EXPECT=200 check "  ... and the code comes back when it runs: GET /api/v1/users/providers-list/ answers 200" \
    request "$BASE/api/v1/users/providers-list/"
curl -sS --max-time 5 -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"delay_ms": 1500}' \
    "http://127.0.0.1:$SANDBOX_PORT/sandbox/presign" || true
curl -sS --max-time 20 -o "$IMAGE_ROOT/inflight.body" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -d '{"s3_url": "s3://smoke-bucket/drain.pdf", "presigned_url": ""}' \
    "$BASE/api/v1/files/presign-s3-url/presign_s3_url/" >"$IMAGE_ROOT/inflight.code" 2>"$IMAGE_ROOT/inflight.err" &
INFLIGHT=$!
sleep 0.5
kill -TERM "$PID"
start=$(date +%s%N)
stopped=0
for ((i = 0; i < 50; i++)); do
    kill -0 "$PID" 2>/dev/null || { stopped=1; break; }
    sleep 0.1
done
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
status=0
if ((stopped)); then wait "$PID" || status=$?; fi
wait "$INFLIGHT" || true
inflight_code=$(cat "$IMAGE_ROOT/inflight.code" 2>/dev/null || true)
check "a presign request in flight when SIGTERM came still got its answer (HTTP ${inflight_code:-none}$( [[ -s $IMAGE_ROOT/inflight.err ]] && echo "; curl: $(head -c 200 "$IMAGE_ROOT/inflight.err")"))" \
    grep -q presigned_url "$IMAGE_ROOT/inflight.body"
check "SIGTERM stops it within 5 s (${elapsed_ms} ms, the in-flight request included)" test "$stopped" = 1
check "  ... with exit status 0 (got $status)" test "$status" = 0
drain_logged() { grep -q 'credgate draining' "$IMAGE_ROOT/credgate.err" && grep -q 'credgate stopped' "$IMAGE_ROOT/credgate.err"; }
check "  ... saying 'credgate draining' and then 'credgate stopped' on stderr" drain_logged
if ((FAILED)); then
    echo "--- credgate stdout"; cat "$IMAGE_ROOT/credgate.out"; echo "--- credgate stderr"; cat "$IMAGE_ROOT/credgate.err"
fi
finish
