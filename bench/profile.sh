#!/usr/bin/env bash
# Where a request's CPU and allocations go (issue 13, item 2): the shipped Config/credgate.yaml in front of the
# benchmark's nginx origin, its API-key route loaded with wrk, and
#   1. `perf record -g` of credgate during the load: the hottest symbols (self time) and the share of each owner
#      (CredGate, NIO, the Swift runtime's retain/release, malloc, the kernel's sockets, ...);
#   2. with ALLOCS=1, heaptrack of credgate serving REQUESTS requests on keep-alive connections: heap allocations per
#      request and their top call sites.
# Prints a report; perf.data, the heaptrack file and the logs stay in the work directory it names.
#
#   bench/profile.sh [BINARY]          # default: the shipped build (scripts/shipped-build.sh --bin-path)
#
# Environment: SECONDS_LOAD (10), CONNECTIONS (32), ALLOCS (1), REQUESTS (20000), LOG_FORMAT (json), PATH_TESTED
# (/api/bench, the API-key route), WRK_SCRIPT (a wrk Lua script: the method and body, e.g. a presign POST), EXTRA_ARGS (more `credgate serve` arguments, e.g. "--log-level warning").
# perf slows the process it records and heaptrack much more: this script's figures are shares and counts, never
# throughput (bench/run.sh measures that).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

BIN=${1:-$("$ROOT/scripts/shipped-build.sh" --bin-path)}
BIN=$(realpath "$BIN")
SECONDS_LOAD=${SECONDS_LOAD:-10}
CONNECTIONS=${CONNECTIONS:-32}
ALLOCS=${ALLOCS:-1}
REQUESTS=${REQUESTS:-20000}
LOG_FORMAT=${LOG_FORMAT:-json}
PATH_TESTED=${PATH_TESTED:-/api/bench}
read -r -a EXTRA <<<"${EXTRA_ARGS:-}"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for tool in perf wrk curl "$NGINX"; do command -v "$tool" >/dev/null || die "$tool is missing (apt-get install linux-perf wrk nginx curl)"; done
((ALLOCS)) && { command -v heaptrack >/dev/null || die "heaptrack is missing (apt-get install heaptrack), or ALLOCS=0"; }

WORK=$(mktemp -d /tmp/credgate-profile.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
mkdir -p "$WORK/origin" "$WORK/data" "$WORK/sink"
free_port ORIGIN_PORT
free_port PORT
KEY="profile-$RANDOM$RANDOM-key"
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
NOW=$(date +%s)
JWT="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url).$(printf '{"token_type":"access","exp":%d,"iat":%d,"jti":"p%d","user_id":"7d1c3c5e-0000-4000-8000-000000000001"}' \
    $((NOW + 86400)) "$NOW" "$RANDOM" | b64url).$(head -c 32 /dev/urandom | b64url)"
render "$HERE/nginx-origin.conf.in" "$WORK/origin/nginx.conf" WORKERS=1 DIR="$WORK/origin" PORT="$ORIGIN_PORT" \
    SINK="$WORK/sink" DATA="$WORK/data" KEY="$KEY" JWT="$JWT" \
    AMZDAY="$(date -u -d "@$NOW" +%Y%m%d)" AMZDATE="$(date -u -d "@$NOW" +%Y%m%dT%H%M%SZ)"
"$NGINX" -p "$WORK/origin" -c "$WORK/origin/nginx.conf" >"$WORK/origin/stdout.log" 2>&1 &
PIDS+=($!)
ENVIRONMENT=(ASSURED_BASE_URL="http://127.0.0.1:$ORIGIN_PORT" ASSURED_API_KEY="$KEY" ASSURED_USER=profile@example.com
    ASSURED_PASS="profile-pass-$RANDOM" CREDGATE_LOG_FORMAT="$LOG_FORMAT")

start() { # wrapper words...: starts credgate (under the wrapper, if any) and waits until its session logged in
    env "${ENVIRONMENT[@]}" "$@" "$BIN" serve --config "$ROOT/Config/credgate.yaml" --port "$PORT" "${EXTRA[@]}" \
        >"$WORK/access.log" 2>"$WORK/stderr.log" &
    CG=$!
    PIDS+=("$CG")
    for _ in $(seq 1 300); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/credgate/readiness") == 200 ]] && return 0
        sleep 0.1
    done
    die "credgate did not become ready: $(tail -5 "$WORK/stderr.log")"
}
stop() { # SIGTERM to credgate itself (under heaptrack, CG is heaptrack's script, which then writes its file)
    local target
    target=$(pgrep -n -f "^$BIN serve" || echo "$CG")
    kill -TERM "$target" 2>/dev/null || true
    wait "$CG" 2>/dev/null || true
}
[[ $(curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $KEY" "http://127.0.0.1:$ORIGIN_PORT/api/check-key") == 200 ]] ||
    die "the origin did not start: $(cat "$WORK/origin/error.log" 2>/dev/null)"

echo "bench/profile.sh: $BIN"
echo "  shipped Config/credgate.yaml (log format $LOG_FORMAT${EXTRA_ARGS:+, $EXTRA_ARGS}), $PATH_TESTED, wrk -t1 -c$CONNECTIONS"
echo "  work directory: $WORK"

# ---------------------------------------------------------------------------------------------------- 1. perf
start
WRK_SCRIPT_ARGS=()
[[ -n ${WRK_SCRIPT:-} ]] && WRK_SCRIPT_ARGS=(-s "$WRK_SCRIPT")
wrk -t1 -c"$CONNECTIONS" -d2s "${WRK_SCRIPT_ARGS[@]}" "http://127.0.0.1:$PORT$PATH_TESTED" >/dev/null # warm-up
perf record -q -g -o "$WORK/perf.data" -p "$CG" >/dev/null 2>"$WORK/perf.log" &
PERF=$!
sleep 0.3
wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_LOAD}s" "${WRK_SCRIPT_ARGS[@]}" "http://127.0.0.1:$PORT$PATH_TESTED" >"$WORK/wrk.txt"
kill -INT "$PERF"
wait "$PERF" 2>/dev/null || true
stop
echo
echo "perf: $(grep -m1 'Requests/sec' "$WORK/wrk.txt" | awk '{ print $2 }') req/s under perf (slowed by it; not a benchmark figure)"
echo "  hottest symbols, self time (% of credgate's samples):"
perf report -i "$WORK/perf.data" --no-children --sort sym --stdio -g none --percent-limit 0.7 2>/dev/null |
    grep -E '^ +[0-9]' | head -40 | sed -E 's/^ +/    /' | cut -c1-150
echo "  by owner (self time):"
perf report -i "$WORK/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' |
    python3 -c '
import re, sys, collections
owners = collections.Counter()
rules = [
    (r"\[kernel|\[k\]", "kernel (sockets, epoll, scheduling)"),
    (r"swift_(retain|release|bridgeObjectRe|unknownObjectRe)|swift_isUniquely|_swift_release_dealloc", "Swift ARC (retain/release)"),
    (r"malloc|free|_int_|cfree|calloc|realloc|swift_allocObject|swift_deallocClassInstance|swift_slowAlloc|swift_slowDealloc", "heap (malloc/free, object alloc)"),
    (r"swift_(dynamicCast|conformsTo|getGeneric|getWitness|checkMetadata|getAssociated)|swift::", "Swift runtime (casts, generics, metadata)"),
    (r"\$s7NIOHTTP1|NIOHTTP1", "NIOHTTP1 (HTTP codec)"), (r"c_nio_llhttp|llhttp", "llhttp (NIO parser)"),
    (r"\$s7NIOCore|NIOCore", "NIOCore"), (r"\$s8NIOPosix|NIOPosix", "NIOPosix"),
    (r"\$s8CredGate|CredGate", "CredGate"), (r"\$s7Logging", "swift-log"), (r"\$s(7Metrics|10Prometheus|10CoreMetrics)", "metrics"),
    (r"\$s(ss|s[A-Z])|\$sS|Swift\.", "Swift stdlib"), (r"Foundation", "Foundation"),
    (r"mem(cpy|move|set|cmp)|str", "libc mem/str"),
]
for line in sys.stdin:
    m = re.match(r"\s+([0-9.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
    if not m: continue
    pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4)
    text = ("[k] " if kind == "k" else "") + dso + " " + sym
    for pattern, owner in rules:
        if re.search(pattern, text): owners[owner] += pct; break
    else: owners["other"] += pct
for owner, pct in owners.most_common(): print(f"    {pct:5.1f}%  {owner}")
'

# ---------------------------------------------------------------------------------------------------- 2. allocations
# Two heaptrack runs of the same start-up: one serves 1000 requests, the other 1000 + REQUESTS (curl's URL globbing:
# one keep-alive connection, an exact count). The difference of their allocation calls, divided by REQUESTS, is
# what one request allocates; heaptrack_print -d of the two shows where.
if ((ALLOCS)); then
    calls() { heaptrack_print -f "$1" 2>/dev/null | awk '/^calls to allocation functions:/ { print $5 }'; }
    for n in 1000 $((1000 + REQUESTS)); do
        start heaptrack -o "$WORK/heaptrack-$n"
        curl -s -o /dev/null "http://127.0.0.1:$PORT$PATH_TESTED?n=[1-$n]"
        stop
    done
    A=$(ls "$WORK"/heaptrack-1000.*) B=$(ls "$WORK"/heaptrack-$((1000 + REQUESTS)).*)
    echo
    echo "allocations (heaptrack, $REQUESTS requests on one keep-alive connection beyond a 1000-request run):"
    echo "    $(calls "$A") and $(calls "$B") calls to allocation functions:" \
        "$(awk -v a="$(calls "$A")" -v b="$(calls "$B")" -v n="$REQUESTS" 'BEGIN { printf "%.1f", (b - a) / n }') per request"
    echo "  where, per request (the first frame with a source file: credgate's or a package's, from the difference of the two runs):"
    heaptrack_print -d "$A" "$B" -n 5 -s 200 2>/dev/null | sed -n '/^MOST CALLS TO ALLOCATION FUNCTIONS/,/^PEAK MEMORY/p' |
        swift demangle --simplified | python3 -c '
import collections, re, sys
n = int(sys.argv[1])
sites = collections.Counter()
calls, frames = None, []
def flush():
    if calls is None: return
    site = "(no source frame)"
    for fn, at in frames:
        if at and "/Sources/" in at and "/swift/stdlib/" not in at:
            site = fn[:110] + "  " + re.sub(r".*/(Sources|checkouts)/", "", at); break
    sites[site] += calls
for line in sys.stdin:
    m = re.match(r"^(-?\d+) calls with .* from:$", line)
    if m:
        flush(); calls, frames = int(m.group(1)), []; continue
    if calls is None: continue
    m = re.match(r"^    (\S.*)$", line)
    if m: frames.append([m.group(1), None]); continue
    m = re.match(r"^      at (\S+)$", line)
    if m and frames: frames[-1][1] = m.group(1)
flush()
for site, c in sites.most_common(25):
    if c * 10 < n: break
    print(f"    {c / n:5.1f}  {site}")
' "$REQUESTS"
fi
