#!/usr/bin/env bash
# credgate against nginx, side by side in one run (issues 2, 12 and 13). Prints figures; it is not a test, except
# for --smoke, which fails only on something gross.
#
#   bench/run.sh                          # defaults: wrk -t1 -c32 -d10s after a 3s warm-up, 1 GiB streams
#   bench/run.sh --shipped                # also the shipped Config/credgate.yaml as users run it (see below)
#   bench/run.sh --smoke                  # a few seconds, for CI: exits 1 only below 0.2x nginx or over 64 MiB
#   DURATION=30s CONNECTIONS=64 ROUNDS=3 bench/run.sh --shipped
#   bench/run.sh --bin PATH               # measure that binary as it is (same as CREDGATE_BIN=PATH), no build
#
# Which binary: by default the one the Dockerfile ships, built the same way: the arguments of the Dockerfile's
# `RUN swift build ... --product credgate` line (today `-c release --static-swift-stdlib -Xswiftc -use-ld=lld
# -Xlinker -z -Xlinker pack-relative-relocs -Xlinker --no-export-dynamic --product credgate`) plus `--scratch-path .build-bench` (incremental; the first build takes
# 8-15 minutes on 2 cores; its own scratch path, so the shared .build is not touched; scripts/shipped-build.sh and
# CI build the same), then stripped into the work directory as the Dockerfile strips it.
# CREDGATE_BUILD=dynamic measures the plain `swift build -c release` binary in .build instead (Swift runtime and
# Foundation as shared libraries, what `swift run -c release` runs); CREDGATE_BUILD=none takes the existing static
# build without building. The report names the binary measured: path, static or dynamic Swift runtime, stripped or
# not, size, and the shared libraries it loads.
#
# What runs, all on 127.0.0.1 ports picked at random:
#   origin      nginx answering a small JSON (`return 200`) on /api/, an upload sink and a 1 GiB download; for
#               --shipped also the Assured login (a JWT-shaped token, exp a day ahead) and refresh, the JWT route
#               (200 only with that bearer token) and the presign route (a SigV4 URL signed now for an hour)
#   peer        nginx `proxy_pass` to the origin with `proxy_set_header x-api-key`, keep-alive upstream, no access log
#   credgate    one API-key route /api/** to the origin (bench/credgate.yaml.in), access log off (`log.access:
#               false`) at the default log level
#   credgate+log  the same build and config with `log.access: true, format: json` (the container's format),
#               stdout to a file: the access log's cost is this against `credgate`
#   credgate+scrape  `credgate` again while GET /credgate/metrics is scraped every SCRAPE_INTERVAL (0.1 s, 150
#               times Prometheus' usual 15 s). Metrics cannot be turned off (every request is counted, always),
#               so their per-request cost cannot be isolated with one build: the report gives CPU per request with
#               and without scraping, and the CPU of one scrape measured alone
#   with --shipped:
#   peer+log    the peer with its access log on, to a file, buffered (`access_log ... buffer=64k flush=1s`), as
#               nginx is usually run
#   shipped     Config/credgate.yaml unchanged, every route, both credentials (ASSURED_BASE_URL at the origin, the
#               session logged in against it), default log level, CREDGATE_LOG_FORMAT=json as in the image
#               (SHIPPED_LOG_FORMAT=text for a terminal's), stdout to a file; measured on its API-key route
#               (GET /api/bench through assured-api, rewrite_links included), its JWT route (GET
#               /api/v1/users/retrieve-update-provider-ssn/{id}/, the session alone) and a presign cache hit (POST
#               the presign route with one s3_url: the first request misses, every other is a hit, counted from
#               /credgate/metrics); plus its idle VmRSS and RssAnon, and its time from start to ready (healthz
#               answering, and readiness 200 after the login; bench/start-ready.py, median of START_RUNS=5)
# wrk measures each, one after the other, ROUNDS times. CPU time per request is the delta of utime+stime
# (/proc/PID/stat; every nginx master and worker PID) over the measured run divided by the requests wrk completed.
# Then 1 GiB goes up (PUT with Content-Length, then chunked) and down through `credgate` while its VmRSS is sampled
# every 50 ms and VmHWM is read.
#
# --smoke: DURATION=2s, WARMUP=1s, no streams, no direct run, no log or scrape runs; the peer and `credgate`, and
# with the shipped config peer+log and the shipped API-key route. Exits 1 if either credgate is below
# SMOKE_MIN_RATIO (0.2) of its nginx's throughput or its VmHWM is over SMOKE_MAX_RSS_MIB (64). Nothing else fails it.
#
# Environment: DURATION (10s), CONNECTIONS (32), WRK_THREADS (1), WARMUP (3s), ROUNDS (1: how many times the
# contenders are measured, one after the other; with more, the table shows medians and the ratios are the
# median of the rounds' ratios), NGINX_WORKERS (auto), SCRAPE_INTERVAL (0.1), START_RUNS (5),
# SHIPPED_LOG_FORMAT (json), CREDGATE_THREADS (0 = one event loop per core), STREAM_BYTES (1073741824),
# SKIP_STREAM (0), CREDGATE_BIN (skip the build and use this binary), CREDGATE_BUILD (static, dynamic or none; see
# above), KEEP (1 keeps the work directory), OUT_DIR (bench/out), PERF_RECORD (a file: `perf record -g` of credgate
# during its first measured run goes there; perf slows credgate, so that run's figures are marked and are not
# comparable).
# Whatever else is in the environment reaches credgate too (for example MALLOC_ARENA_MAX=2); the report lists the
# MALLOC_* variables it saw.
# Installs nginx and wrk with apt-get when they are missing (as root, or through sudo).
# To see what a running credgate's resident pages are (by Swift module / C library, and by ELF section):
#   bench/resident-code.py PID [UNSTRIPPED-BINARY]
# To check whether a change to the data path pays, compare two builds' CPU per request, interleaved:
#   bench/ab.sh OLD-BINARY NEW-BINARY
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

SHIPPED=${SHIPPED:-0}
SMOKE=${SMOKE:-0}
while (($#)); do
    case $1 in
    --bin) (($# >= 2)) || die "--bin needs a path"; CREDGATE_BIN=$2; shift 2 ;;
    --bin=*) CREDGATE_BIN=${1#--bin=}; shift ;;
    --shipped) SHIPPED=1; shift ;;
    --smoke) SMOKE=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see bench/run.sh --help)" ;;
    esac
done

if ((SMOKE)); then
    SHIPPED=1
    DURATION=${DURATION:-2s}
    WARMUP=${WARMUP:-1s}
    SKIP_STREAM=1
    ROUNDS=1
fi
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-1}
WARMUP=${WARMUP:-3s}
SCRAPE_INTERVAL=${SCRAPE_INTERVAL:-0.1}
START_RUNS=${START_RUNS:-5}
SHIPPED_LOG_FORMAT=${SHIPPED_LOG_FORMAT:-json}
SMOKE_MIN_RATIO=${SMOKE_MIN_RATIO:-0.2}
SMOKE_MAX_RSS_MIB=${SMOKE_MAX_RSS_MIB:-64}
NGINX_WORKERS=${NGINX_WORKERS:-auto}
CREDGATE_THREADS=${CREDGATE_THREADS:-0}
STREAM_BYTES=${STREAM_BYTES:-1073741824}
SKIP_STREAM=${SKIP_STREAM:-0}
CREDGATE_BIN=${CREDGATE_BIN:-}
KEEP=${KEEP:-0}
PERF_RECORD=${PERF_RECORD:-}
ROUNDS=${ROUNDS:-1}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number, not '$ROUNDS'"
OUT_DIR=${OUT_DIR:-$ROOT/bench/out}
BENCH_KEY="bench-$RANDOM$RANDOM-key"
export BENCH_KEY

# Targets of issue 2.
TARGET_THROUGHPUT_RATIO=0.5 # credgate req/s / peer req/s, at least
TARGET_CPU_RATIO=2.5        # credgate CPU per request / peer's, at most
TARGET_UPLOAD_RSS_MIB=32    # credgate peak RSS during the 1 GiB upload, at most
# Targets of issue 12 (the access log and the metrics) and issue 13 (nginx-class speed as users run it).
TARGET_LOG_RATIO=0.9        # credgate+log req/s / credgate req/s, at least
TARGET_METRICS_US=2         # CPU per request the metrics may cost, at most
TARGET_SHIPPED_TP=0.8       # shipped API-key route / peer+log, throughput, at least
TARGET_SHIPPED_CPU=1.5      # ... CPU per request, at most
TARGET_NOLOG_TP=0.9         # credgate / peer (both without logs), throughput, at least
TARGET_NOLOG_CPU=1.3        # ... CPU per request, at most
TARGET_ROUTE_RATIO=0.9      # JWT route and presign hit / API-key route, throughput, at least
TARGET_RSS_MIB=20           # the shipped config's idle and peak RSS, at most
TARGET_ANON_MIB=8           # ... its RssAnon, at most
TARGET_READY_MS=50          # start to healthz answering, at most

# ---------------------------------------------------------------------------------------------- tools
need_install=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need_install+=(nginx)
command -v wrk >/dev/null || need_install+=(wrk)
command -v curl >/dev/null || need_install+=(curl)
if ((${#need_install[@]})); then
    log "installing ${need_install[*]} with apt-get ..."
    SUDO=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need ${need_install[*]}; run as root or install them"
        SUDO=(sudo)
    fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_install[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------------------- credgate
CREDGATE_BUILD=${CREDGATE_BUILD:-static}
STRIP_COPY=0
if [[ -n $CREDGATE_BIN ]]; then
    BUILD_NOTE="given as CREDGATE_BIN / --bin, not built"
else
    case $CREDGATE_BUILD in
    static | none)
        # The Dockerfile's own `swift build` arguments, so that a flag added there is measured here too.
        read -ra BUILD_ARGS <<<"$(dockerfile_build_args "$ROOT/Dockerfile")"
        if [[ " ${BUILD_ARGS[*]} " != *" --static-swift-stdlib "* ]]; then
            log "cannot read the Dockerfile's 'RUN swift build ... --product credgate' line; using the arguments it had when this was written"
            BUILD_ARGS=(-c release --static-swift-stdlib --product credgate)
        fi
        BUILD_ARGS+=(--scratch-path "$ROOT/.build-bench")
        STRIP_COPY=1
        ;;
    dynamic) BUILD_ARGS=(-c release --product credgate) ;;
    *) die "CREDGATE_BUILD must be static, dynamic or none, not '$CREDGATE_BUILD'" ;;
    esac
    BIN_DIR=$(cd "$ROOT" && swift build "${BUILD_ARGS[@]}" --show-bin-path)
    CREDGATE_BIN=$BIN_DIR/credgate
    if [[ $CREDGATE_BUILD == none ]]; then
        [[ -x $CREDGATE_BIN ]] || die "CREDGATE_BUILD=none but there is no static build at $CREDGATE_BIN"
        BUILD_NOTE="existing build from $(date -r "$CREDGATE_BIN" '+%F %T'), not rebuilt"
    else
        log "building credgate: swift build ${BUILD_ARGS[*]} (the first build takes about 8 minutes) ..."
        BUILD_NOTE="built now: swift build ${BUILD_ARGS[*]}"
        if ! (cd "$ROOT" && swift build "${BUILD_ARGS[@]}") >&2; then
            [[ -x $CREDGATE_BIN ]] || die "the release build failed and there is no earlier binary"
            BUILD_NOTE="WARNING: the build failed, using the earlier binary from $(date -r "$CREDGATE_BIN" '+%F %T')"
            log "$BUILD_NOTE"
        fi
    fi
fi
[[ -x $CREDGATE_BIN ]] || die "no credgate binary at $CREDGATE_BIN"
CREDGATE_BIN=$(realpath "$CREDGATE_BIN")
BUILT_BIN=$CREDGATE_BIN

# ---------------------------------------------------------------------------------------------- processes
WORK=$(mktemp -d "${TMPDIR:-/tmp}/credgate-bench.XXXXXX")
chmod 755 "$WORK"
# The upload sink stores each upload whole (see nginx-origin.conf.in): on tmpfs when there is room for it.
need_kb=$((STREAM_BYTES * 2 / 1024 + 262144))
if [[ -d /dev/shm && -w /dev/shm ]] && (($(df -Pk /dev/shm | awk 'NR == 2 { print $4 }') > need_kb)); then
    SINK=$(mktemp -d /dev/shm/credgate-bench-sink.XXXXXX)
else
    SINK=$WORK/sink
    mkdir -p "$SINK"
fi
chmod 755 "$SINK"
mkdir -p "$SINK/files" "$WORK/data" "$WORK/origin" "$WORK/peer" "$WORK/peer-log" "$WORK/credgate" "$WORK/credgate-log" \
    "$WORK/shipped"
if ((STRIP_COPY)) && [[ -n $PERF_RECORD ]]; then
    STRIP_COPY=0 # perf needs the symbols; stripping moves nothing, so the figures are the same either way
    BUILD_NOTE+="; not stripped, for PERF_RECORD"
fi
if ((STRIP_COPY)); then
    # The Dockerfile ships `strip credgate`: run the same bytes (stripping drops symbols and debug sections, which
    # are never mapped, so it does not change RSS; it makes the report's size the shipped size).
    if command -v strip >/dev/null && strip -o "$WORK/credgate/credgate" "$CREDGATE_BIN"; then
        CREDGATE_BIN=$WORK/credgate/credgate
        BUILD_NOTE+="; run as a stripped copy, like the Dockerfile's"
    else
        BUILD_NOTE+="; not stripped (no strip)"
    fi
fi
if [[ $CREDGATE_BIN == "$BUILT_BIN" ]]; then
    BIN_DESC=$(describe_binary "$CREDGATE_BIN")
else
    BIN_DESC=$(describe_binary "$CREDGATE_BIN" "$BUILT_BIN, run as a stripped copy")
fi
log "credgate binary: $BIN_DESC"
# How much of the link order (link/credgate.order, scripts/order-file.sh) the binary still has: a low share means
# the data path's functions were renamed since it was generated, and its code is spread again (more resident).
ORDER_NOTE="link order: no link/credgate.order"
if [[ -f $ROOT/link/credgate.order ]] && command -v nm >/dev/null; then
    ORDER_NOTE=$(nm "$BUILT_BIN" 2>/dev/null | awk '{ print $NF }' | sort -u | awk 'NR == FNR { d[$0] = 1; next }
        !/^#/ && NF { n++; if (d[$0]) k++ } END { printf "link order: %d of the %d functions in link/credgate.order are in the binary (%.0f%%; regenerate with scripts/order-file.sh when low)", k, n, n ? 100 * k / n : 0 }' - "$ROOT/link/credgate.order")
fi
log "$ORDER_NOTE"
chmod 1777 "$SINK/files" # nginx workers run as nobody when started by root

PIDS=()
SAMPLER=""
SCRAPER=""
cleanup() {
    local status=$? pid i
    trap - EXIT INT TERM
    [[ -n $SAMPLER ]] && kill "$SAMPLER" 2>/dev/null
    [[ -n $SCRAPER ]] && kill "$SCRAPER" 2>/dev/null
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ $KEEP == 1 ]]; then
        log "kept $WORK and $SINK"
    else
        rm -rf "$WORK" "$SINK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

NGINX_E=()
[[ $("$NGINX" -h 2>&1) == *'-e filename'* ]] && NGINX_E=(-e "$WORK/origin/error.log")

free_port ORIGIN_PORT
free_port PEER_PORT
free_port CREDGATE_PORT
free_port CREDGATE_LOG_PORT

# A JWT-shaped token for the shipped config's session (HS256 header, simplejwt's claims, exp a day ahead; credgate
# reads exp and never checks the signature, which only the platform could), and the presigned URL's date: now.
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
NOW=$(date +%s)
JWT="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url).$(printf '{"token_type":"access","exp":%d,"iat":%d,"jti":"bench%d","user_id":"7d1c3c5e-0000-4000-8000-000000000001"}' \
    $((NOW + 86400)) "$NOW" "$RANDOM" | b64url).$(head -c 32 /dev/urandom | b64url)"
render "$HERE/nginx-origin.conf.in" "$WORK/origin/nginx.conf" WORKERS="$NGINX_WORKERS" DIR="$WORK/origin" \
    PORT="$ORIGIN_PORT" SINK="$SINK" DATA="$WORK/data" KEY="$BENCH_KEY" JWT="$JWT" \
    AMZDAY="$(date -u -d "@$NOW" +%Y%m%d)" AMZDATE="$(date -u -d "@$NOW" +%Y%m%dT%H%M%SZ)"
render "$HERE/nginx-peer.conf.in" "$WORK/peer/nginx.conf" WORKERS="$NGINX_WORKERS" DIR="$WORK/peer" \
    PORT="$PEER_PORT" ORIGIN_PORT="$ORIGIN_PORT" KEY="$BENCH_KEY" ACCESS_LOG=off
render "$HERE/credgate.yaml.in" "$WORK/credgate/credgate.yaml" PORT="$CREDGATE_PORT" \
    ORIGIN_PORT="$ORIGIN_PORT" THREADS="$CREDGATE_THREADS" ACCESS=false
render "$HERE/credgate.yaml.in" "$WORK/credgate-log/credgate.yaml" PORT="$CREDGATE_LOG_PORT" \
    ORIGIN_PORT="$ORIGIN_PORT" THREADS="$CREDGATE_THREADS" ACCESS=true
if ((SHIPPED)); then
    free_port PEER_LOG_PORT
    free_port SHIPPED_PORT
    free_port READY_PORT
    render "$HERE/nginx-peer.conf.in" "$WORK/peer-log/nginx.conf" WORKERS="$NGINX_WORKERS" DIR="$WORK/peer-log" \
        PORT="$PEER_LOG_PORT" ORIGIN_PORT="$ORIGIN_PORT" KEY="$BENCH_KEY" \
        ACCESS_LOG="$WORK/peer-log/access.log combined buffer=64k flush=1s"
fi

start_nginx() { # name
    local dir=$WORK/$1 e=()
    ((${#NGINX_E[@]})) && e=(-e "$dir/error.log")
    "$NGINX" -p "$dir" "${e[@]}" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
    PIDS+=($!)
}
start_nginx origin
start_nginx peer
((SHIPPED)) && start_nginx peer-log
# Both one-route credgates at the default log level (info): `log.access` alone tells them apart.
"$CREDGATE_BIN" serve --config "$WORK/credgate/credgate.yaml" \
    >"$WORK/credgate/stdout.log" 2>"$WORK/credgate/stderr.log" &
CREDGATE_PID=$!
PIDS+=("$CREDGATE_PID")
CREDGATE_LOG_PID=""
if ((!SMOKE)); then
    "$CREDGATE_BIN" serve --config "$WORK/credgate-log/credgate.yaml" \
        >"$WORK/credgate-log/stdout.log" 2>"$WORK/credgate-log/stderr.log" &
    CREDGATE_LOG_PID=$!
    PIDS+=("$CREDGATE_LOG_PID")
fi

# The shipped config as a user (or the image) runs it: the file unchanged, the platform's variables, the port.
SHIPPED_ENV=(ASSURED_BASE_URL="http://127.0.0.1:$ORIGIN_PORT" ASSURED_API_KEY="$BENCH_KEY" ASSURED_USER=bench@example.com
    ASSURED_PASS="bench-pass-$RANDOM$RANDOM" CREDGATE_LOG_FORMAT="$SHIPPED_LOG_FORMAT")
SHIPPED_PID=""
wait_http "http://127.0.0.1:$ORIGIN_PORT/api/x" 10 || die "origin nginx did not start: $(cat "$WORK/origin/"*.log)"
if ((SHIPPED)); then
    # Start to ready first, while nothing else is busy: START_RUNS fresh processes on their own port.
    log "shipped config: start to ready, $START_RUNS runs (bench/start-ready.py) ..."
    START_READY=$(env "${SHIPPED_ENV[@]}" python3 "$HERE/start-ready.py" --port "$READY_PORT" --runs "$START_RUNS" -- \
        "$CREDGATE_BIN" serve --config "$ROOT/Config/credgate.yaml" --port "$READY_PORT") ||
        die "the shipped config did not get ready: $START_READY"
    env "${SHIPPED_ENV[@]}" "$CREDGATE_BIN" serve --config "$ROOT/Config/credgate.yaml" --port "$SHIPPED_PORT" \
        >"$WORK/shipped/stdout.log" 2>"$WORK/shipped/stderr.log" &
    SHIPPED_PID=$!
    PIDS+=("$SHIPPED_PID")
fi

wait_http "http://127.0.0.1:$PEER_PORT/api/x" 10 || die "peer nginx did not start: $(cat "$WORK/peer/"*.log)"
wait_http "http://127.0.0.1:$CREDGATE_PORT/credgate/healthz" 30 "$CREDGATE_PID" ||
    die "credgate did not start: $(cat "$WORK/credgate/"*.log)"
if [[ -n $CREDGATE_LOG_PID ]]; then
    wait_http "http://127.0.0.1:$CREDGATE_LOG_PORT/credgate/healthz" 30 "$CREDGATE_LOG_PID" ||
        die "credgate (access log on) did not start: $(cat "$WORK/credgate-log/"*.log)"
fi
if ((SHIPPED)); then
    wait_http "http://127.0.0.1:$PEER_LOG_PORT/api/x" 10 || die "peer nginx (logging) did not start: $(cat "$WORK/peer-log/"*.log)"
    wait_http "http://127.0.0.1:$SHIPPED_PORT/credgate/healthz" 30 "$SHIPPED_PID" ||
        die "credgate (shipped config) did not start: $(cat "$WORK/shipped/"*.log)"
    for ((i = 0; i < 100; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SHIPPED_PORT/credgate/readiness") == 200 ]] && break
        sleep 0.1
    done
    [[ $i -lt 100 ]] || die "the shipped config's session did not log in against the origin: $(curl -s "http://127.0.0.1:$SHIPPED_PORT/credgate/readiness"; cat "$WORK/shipped/stderr.log")"
fi

sleep 0.5
RSS_START=$(proc_kb "$CREDGATE_PID" VmRSS)
ANON_START=$(proc_kb "$CREDGATE_PID" RssAnon)
if ((SHIPPED)); then
    sleep 0.5 # idle: logged in, nothing asked yet
    SHIPPED_IDLE_RSS=$(proc_kb "$SHIPPED_PID" VmRSS)
    SHIPPED_IDLE_ANON=$(proc_kb "$SHIPPED_PID" RssAnon)
fi
# The peaks reported are those of the measured load: VmHWM is reset here (write 5 to /proc/PID/clear_refs), after
# the idle readings, so start-up's own peak (before credgate releases its start-up pages) is not counted in them.
HWM_RESET="no"
if echo 5 >"/proc/$CREDGATE_PID/clear_refs" 2>/dev/null; then
    HWM_RESET="yes"
    ((SHIPPED)) && { echo 5 >"/proc/$SHIPPED_PID/clear_refs" 2>/dev/null || HWM_RESET="no"; }
fi

# Each path answers 200 JSON, and every proxy injects the key (the origin's /api/check-key says 401 without).
TARGETS=("origin $ORIGIN_PORT 401" "peer $PEER_PORT 200" "credgate $CREDGATE_PORT 200")
[[ -n $CREDGATE_LOG_PID ]] && TARGETS+=("credgate+log $CREDGATE_LOG_PORT 200")
((SHIPPED)) && TARGETS+=("peer+log $PEER_LOG_PORT 200" "shipped $SHIPPED_PORT 200")
for target in "${TARGETS[@]}"; do
    read -r name port want <<<"$target"
    got=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/bench")
    [[ $got == 200 ]] || die "$name: GET /api/bench answered $got"
    got=$(curl -s -o /dev/null -w '%{http_code}' -H 'x-api-key: from-the-client' "http://127.0.0.1:$port/api/check-key")
    [[ $got == "$want" ]] || die "$name: GET /api/check-key answered $got, expected $want"
done
JWT_PATH=/api/v1/users/retrieve-update-provider-ssn/7d1c3c5e-0000-4000-8000-00000000beef/
PRESIGN_PATH=/api/v1/files/presign-s3-url/presign_s3_url/
PRESIGN_BODY='{"s3_url": "s3://bench-bucket/bench.pdf", "presigned_url": ""}'
cat >"$WORK/presign.lua" <<EOF
wrk.method = "POST"
wrk.body = '$PRESIGN_BODY'
wrk.headers["Content-Type"] = "application/json"
EOF
if ((SHIPPED)); then
    got=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ORIGIN_PORT$JWT_PATH")
    [[ $got == 401 ]] || die "origin: the JWT route answered $got without a token, expected 401"
    got=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer not-the-token' "http://127.0.0.1:$SHIPPED_PORT$JWT_PATH")
    [[ $got == 200 ]] || die "shipped: the JWT route answered $got, expected 200 (the session's token injected)"
    got=$(curl -s -w ' %{http_code}' -X POST -H 'Content-Type: application/json' -d "$PRESIGN_BODY" "http://127.0.0.1:$SHIPPED_PORT$PRESIGN_PATH")
    [[ $got == *X-Amz-Signature*' 200' ]] || die "shipped: the presign route answered: $got"
fi

BODY_BYTES=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$ORIGIN_PORT/api/bench")

# A counter (or the sum of a counter's series) from a credgate's /credgate/metrics.
metric() { # port name [label filter, e.g. route="api"]
    curl -s --max-time 5 "http://127.0.0.1:$1/credgate/metrics" |
        awk -v n="$2" -v f="${3:-}" 'index($0, n) == 1 && (substr($0, length(n) + 1, 1) ~ /[{ ]/) && (f == "" || index($0, f)) { s += $NF } END { printf "%.0f\n", s }'
}
# CPU time of PIDS in nanoseconds, every thread (/proc/PID/task/*/schedstat: precise, unlike the 10 ms ticks;
# threads that ended are not counted, so only for short, steady measures).
cpu_ns() {
    local pid total=0 ns
    for pid in "$@"; do
        for f in /proc/"$pid"/task/*/schedstat; do
            read -r ns _ <"$f" 2>/dev/null || continue
            total=$((total + ns))
        done
    done
    echo "$total"
}

# ---------------------------------------------------------------------------------------------- throughput
declare -A RPS P50 P99 CPU NOTE
measure() { # key port path lua-script-or-empty pids...
    local key=$1 port=$2 path=$3 script=$4 url t0 t1 parsed requests non2xx errors wrk_args=()
    shift 4
    url="http://127.0.0.1:$port$path"
    [[ -n $script ]] && wrk_args=(-s "$script")
    log "measuring $key: warm-up $WARMUP, then wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency ${script:+-s $script }$url"
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$WARMUP" "${wrk_args[@]}" "$url" >"$WORK/wrk-$key.warmup.txt"
    WARM_REQUESTS[$key]=$(awk '/ requests in / { print $1 }' "$WORK/wrk-$key.warmup.txt")
    local perf_pid=""
    if [[ $key == "credgate#1" && -n $PERF_RECORD ]]; then
        perf record -q -g -o "$PERF_RECORD" -p "$CREDGATE_PID" >/dev/null 2>"$WORK/perf.log" &
        perf_pid=$!
        sleep 0.5
    fi
    if [[ $key == credgate+scrape#* ]]; then
        rm -f "$WORK/scrape.stop" "$WORK/scrape.count"
        (
            n=0
            while [[ ! -e $WORK/scrape.stop ]]; do
                curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$port/credgate/metrics" && n=$((n + 1))
                sleep "$SCRAPE_INTERVAL"
            done
            echo "$n" >"$WORK/scrape.count"
        ) &
        SCRAPER=$!
    fi
    t0=$(cpu_ticks "$@")
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${wrk_args[@]}" "$url" >"$WORK/wrk-$key.txt"
    t1=$(cpu_ticks "$@")
    NOTE[$key]=""
    if [[ -n $SCRAPER ]]; then
        touch "$WORK/scrape.stop"
        wait "$SCRAPER" 2>/dev/null || true
        SCRAPER=""
        NOTE[$key]+=" ($(cat "$WORK/scrape.count" 2>/dev/null || echo '?') scrapes)"
    fi
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid" 2>/dev/null
        wait "$perf_pid" 2>/dev/null || true
        NOTE[$key]+=" (under perf record: slower)"
    fi
    parsed=$(parse_wrk "$WORK/wrk-$key.txt") || die "cannot read wrk's output: $(cat "$WORK/wrk-$key.txt")"
    read -r requests "RPS[$key]" "P50[$key]" "P99[$key]" non2xx errors <<<"$parsed"
    CPU[$key]=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')
    REQUESTS[$key]=$requests
    ((non2xx > 0)) && NOTE[$key]+=" $non2xx non-2xx!"
    ((errors > 0)) && NOTE[$key]+=" $errors socket errors!"
    return 0
}
declare -A REQUESTS WARM_REQUESTS
# One contender, by name (its port, path and the PIDs whose CPU counts).
contender() { # name round
    local key=$1#$2
    case $1 in
    direct) measure "$key" "$ORIGIN_PORT" /api/bench "" $(nginx_pids "$WORK/origin") ;;
    peer) measure "$key" "$PEER_PORT" /api/bench "" $(nginx_pids "$WORK/peer") ;;
    peer+log) measure "$key" "$PEER_LOG_PORT" /api/bench "" $(nginx_pids "$WORK/peer-log") ;;
    credgate) measure "$key" "$CREDGATE_PORT" /api/bench "" "$CREDGATE_PID" ;;
    credgate+log)
        local lines0 lines1
        lines0=$(wc -l <"$WORK/credgate-log/stdout.log")
        measure "$key" "$CREDGATE_LOG_PORT" /api/bench "" "$CREDGATE_LOG_PID"
        sleep 0.3 # the writer thread's last batch
        lines1=$(wc -l <"$WORK/credgate-log/stdout.log")
        LOG_LINES[$2]=$((lines1 - lines0))
        ;;
    credgate+scrape) measure "$key" "$CREDGATE_PORT" /api/bench "" "$CREDGATE_PID" ;;
    shipped-api) measure "$key" "$SHIPPED_PORT" /api/bench "" "$SHIPPED_PID" ;;
    shipped-jwt) measure "$key" "$SHIPPED_PORT" "$JWT_PATH" "" "$SHIPPED_PID" ;;
    shipped-presign)
        local hits0 misses0
        hits0=$(metric "$SHIPPED_PORT" credgate_presign_cache_hits_total)
        misses0=$(metric "$SHIPPED_PORT" credgate_presign_cache_misses_total)
        measure "$key" "$SHIPPED_PORT" "$PRESIGN_PATH" "$WORK/presign.lua" "$SHIPPED_PID"
        PRESIGN_HITS[$2]=$(($(metric "$SHIPPED_PORT" credgate_presign_cache_hits_total) - hits0))
        PRESIGN_MISSES[$2]=$(($(metric "$SHIPPED_PORT" credgate_presign_cache_misses_total) - misses0))
        ;;
    *) die "unknown contender $1" ;;
    esac
}
declare -A LOG_LINES PRESIGN_HITS PRESIGN_MISSES

# Who runs, in order, in each round; and the pairs compared (a against b), each round's ratios kept.
CONTENDERS=(peer credgate)
PAIRS=("credgate peer")
if ((!SMOKE)); then
    CONTENDERS+=(credgate+log credgate+scrape)
    PAIRS+=("credgate+log credgate" "credgate+scrape credgate")
fi
if ((SHIPPED)); then
    CONTENDERS+=(peer+log shipped-api)
    PAIRS+=("shipped-api peer+log")
    if ((!SMOKE)); then
        CONTENDERS+=(shipped-jwt shipped-presign)
        PAIRS+=("shipped-jwt shipped-api" "shipped-presign shipped-api")
    fi
fi
if ((!SMOKE)); then
    contender direct 1
    for metric_name in RPS P50 P99 CPU NOTE; do
        declare -n table=$metric_name
        # shellcheck disable=SC2004
        table[direct]=${table[direct#1]}
        unset -n table
    done
fi
declare -A TP_RATIOS CPU_RATIOS
ROUND_LINES=()
for ((round = 1; round <= ROUNDS; round++)); do
    for c in "${CONTENDERS[@]}"; do contender "$c" "$round"; done
    line="round $round:"
    for pair in "${PAIRS[@]}"; do
        read -r a b <<<"$pair"
        tp=$(awk -v x="${RPS[$a#$round]}" -v y="${RPS[$b#$round]}" 'BEGIN { printf "%.2f", x / y }')
        cr=$(awk -v x="${CPU[$a#$round]}" -v y="${CPU[$b#$round]}" 'BEGIN { printf "%.2f", x / y }')
        TP_RATIOS[$pair]+="$tp "
        CPU_RATIOS[$pair]+="$cr "
        line+=" $a/$b $tp ${cr}x;"
    done
    ROUND_LINES+=("${line%;}")
done
# Medians over the rounds, under the contender's plain name.
for c in "${CONTENDERS[@]}"; do
    for metric_name in RPS P50 P99 CPU; do
        declare -n table=$metric_name
        values=()
        for ((round = 1; round <= ROUNDS; round++)); do values+=("${table[$c#$round]}"); done
        # shellcheck disable=SC2004 # an associative array reached through a nameref, not arithmetic
        table[$c]=$(median "${values[@]}")
        unset -n table
    done
    NOTE[$c]=""
    for ((round = 1; round <= ROUNDS; round++)); do NOTE[$c]+=${NOTE[$c#$round]}; done
done
# shellcheck disable=SC2086 # word splitting wanted: the rounds' ratios
ratio_tp() { median ${TP_RATIOS[$1 $2]}; }
# shellcheck disable=SC2086
ratio_cpu() { median ${CPU_RATIOS[$1 $2]}; }
RSS_AFTER_LOAD=$(proc_kb "$CREDGATE_PID" VmRSS)
HWM_AFTER_LOAD=$(proc_kb "$CREDGATE_PID" VmHWM)
if ((SHIPPED)); then
    SHIPPED_RSS_AFTER=$(proc_kb "$SHIPPED_PID" VmRSS)
    SHIPPED_HWM=$(proc_kb "$SHIPPED_PID" VmHWM)
    SHIPPED_ANON_AFTER=$(proc_kb "$SHIPPED_PID" RssAnon)
fi

verdict() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN { ok = (op == ">=") ? a >= b : a <= b; print ok ? "PASS" : "FAIL" }'; }
THROUGHPUT_RATIO=$(ratio_tp credgate peer)
CPU_RATIO=$(ratio_cpu credgate peer)

# The CPU one scrape costs, measured alone on the idle one-route credgate: SCRAPES GETs on one connection.
SCRAPE_US="" SCRAPE_BYTES=""
if ((!SMOKE)); then
    SCRAPES=400
    urls=()
    for ((i = 0; i < SCRAPES; i++)); do urls+=("http://127.0.0.1:$CREDGATE_PORT/credgate/metrics"); done
    sleep 0.5
    n0=$(cpu_ns "$CREDGATE_PID")
    curl -s "${urls[@]}" >/dev/null
    n1=$(cpu_ns "$CREDGATE_PID")
    SCRAPE_US=$(awk -v d=$((n1 - n0)) -v n="$SCRAPES" 'BEGIN { printf "%.0f", d / n / 1000 }')
    SCRAPE_BYTES=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$CREDGATE_PORT/credgate/metrics")
    LOG_DROPPED=$(metric "$CREDGATE_LOG_PORT" credgate_access_log_dropped_total)
fi

# ---------------------------------------------------------------------------------------------- streaming
# One credgate process throughout: its RSS after the load above is the baseline the streams start from.
# VmHWM is reset before each stream (write 5 to /proc/PID/clear_refs) so it is that stream's peak; the
# 50 ms samples of VmRSS are kept as well, and the larger of the two is reported.
STREAM_LINES=()
UPLOAD_PEAK_MIB=""
UPLOAD_SPLIT=""
UPLOAD_MAPPINGS=""
stream() { # label method curl-args... ; the URL is last
    local label=$1 kind=$2 hwm_ok=0 out code bytes secs peak_kb hwm sampled mib down anon
    shift 2
    echo 5 >"/proc/$CREDGATE_PID/clear_refs" 2>/dev/null && hwm_ok=1
    rm -f "$WORK/rss-max" "$WORK/rss-max.stop"
    sample_rss_max "$CREDGATE_PID" "$WORK/rss-max" &
    SAMPLER=$!
    out=$(curl -sS --max-time 600 -o "$WORK/stream-body" -w '%{http_code} %{size_upload} %{size_download} %{time_total}' "$@") ||
        out="000 0 0 0"
    touch "$WORK/rss-max.stop"
    wait "$SAMPLER" 2>/dev/null || true
    SAMPLER=""
    read -r code _ down secs <<<"$out"
    sampled=$(cat "$WORK/rss-max" 2>/dev/null || echo 0)
    anon=$(cat "$WORK/rss-max.anon" 2>/dev/null || echo 0)
    local split_anon split_file
    read -r split_anon split_file <"$WORK/rss-max.split" 2>/dev/null || { split_anon=0; split_file=0; }
    hwm=0
    ((hwm_ok)) && hwm=$(proc_kb "$CREDGATE_PID" VmHWM)
    peak_kb=$((hwm > sampled ? hwm : sampled))
    mib=$(kib_to_mib "$peak_kb")
    if [[ $kind == up ]]; then
        bytes=$(stat -c %s "$SINK/files/$(basename "${*: -1}")" 2>/dev/null || echo 0)
        rm -f "$SINK/files/"* # free the tmpfs
    else
        bytes=$down
    fi
    local ok="ok"
    [[ $code == 2* && $bytes == "$STREAM_BYTES" ]] || ok="FAILED (HTTP $code, $bytes of $STREAM_BYTES bytes arrived)"
    local rate
    rate=$(awk -v b="$bytes" -v s="$secs" 'BEGIN { if (s > 0) printf "%.0f", b / 1048576 / s; else print 0 }')
    STREAM_LINES+=("$(printf '%-37s HTTP %-3s %6.2f s %5s MiB/s   peak RSS %6s MiB (%s; RssAnon %s + RssFile %s, RssAnon max %s)   %s' \
        "$label" "$code" "$secs" "$rate" "$mib" "$([[ $hwm_ok == 1 ]] && echo "VmHWM" || echo "sampled")" \
        "$(kib_to_mib "$split_anon")" "$(kib_to_mib "$split_file")" "$(kib_to_mib "$anon")" "$ok")")
    if [[ $kind == up && -z $UPLOAD_PEAK_MIB ]]; then
        UPLOAD_PEAK_MIB=$mib
        UPLOAD_SPLIT="RssAnon $(kib_to_mib "$split_anon") MiB + RssFile $(kib_to_mib "$split_file") MiB"
        UPLOAD_MAPPINGS=$(rss_by_mapping "$CREDGATE_PID" 8)
    fi
    return 0
}
RSS_IDLE=""
if [[ $SKIP_STREAM != 1 ]]; then
    truncate -s "$STREAM_BYTES" "$WORK/data/big.bin" # sparse: costs no disk, reads as zeros
    chmod 644 "$WORK/data/big.bin"
    cat "$WORK/data/big.bin" >/dev/null # the first read fills the page cache (1 s a GiB): not credgate's cost
    sleep 1
    RSS_IDLE=$(proc_kb "$CREDGATE_PID" VmRSS)
    size_label=$(awk -v b="$STREAM_BYTES" 'BEGIN { if (b % 1073741824 == 0) printf "%d GiB", b / 1073741824; else printf "%d MiB", b / 1048576 }')
    log "streaming $size_label up (Content-Length) through credgate ..."
    stream "$size_label up   (PUT, Content-Length)" up -T "$WORK/data/big.bin" -H 'Content-Type: application/octet-stream' \
        "http://127.0.0.1:$CREDGATE_PORT/api/upload/big.bin"
    log "streaming $size_label up (chunked, from a pipe) through credgate ..."
    stream "$size_label up   (PUT, chunked)" up -T - -H 'Content-Type: application/octet-stream' \
        "http://127.0.0.1:$CREDGATE_PORT/api/upload/chunked.bin" < <(head -c "$STREAM_BYTES" /dev/zero)
    log "streaming $size_label down through credgate ..."
    stream "$size_label down (GET, sendfile origin)" down "http://127.0.0.1:$CREDGATE_PORT/api/download/big.bin"
fi

# With PERF_RECORD: the share of credgate's CPU samples (in its first, perf-recorded run; access log off) spent in
# the metrics' per-request code: CredGate's *Metrics methods, inclusive of what they call (Prometheus' counters and
# histogram, the atomics, the lock). The only per-request figure for the metrics, since they cannot be turned off.
METRICS_SHARE=""
if [[ -n $PERF_RECORD && -s $PERF_RECORD ]] && command -v perf >/dev/null; then
    METRICS_SHARE=$(perf report -i "$PERF_RECORD" --children --sort sym --stdio -g none 2>/dev/null |
        awk '$3 == "[.]" && $4 ~ /^\$s8CredGate[0-9]+(Route|Upstream|Gateway|UploadRejection)MetricsC/ { gsub("%", "", $1); s += $1 } END { printf "%.2f", s }')
fi

# ---------------------------------------------------------------------------------------------- report
mkdir -p "$OUT_DIR"
REPORT=$OUT_DIR/bench-$( ((SMOKE)) && echo smoke- || true)$( ((SHIPPED && !SMOKE)) && echo shipped- || true)$(date +%Y%m%d-%H%M%S).txt
row() { # label key [suffix]
    printf '%-50s %10.0f %9.3f %9.3f %12.1f%s\n' "$1" "${RPS[$2]}" "${P50[$2]}" "${P99[$2]}" "${CPU[$2]}" "${NOTE[$2]}${3:-}"
}
# "0.93 (target >= 0.9: PASS)"
judged() { # value op target [unit]
    printf '%s%s (target %s %s%s: %s)' "$1" "${4:-}" "$2" "$3" "${4:-}" "$(verdict "$1" "$2" "$3")"
}
cpu_delta() { awk -v a="${CPU[$1]}" -v b="${CPU[$2]}" 'BEGIN { printf "%+.1f", a - b }'; }
SMOKE_FAILED=0
{
    echo "credgate benchmark$( ((SMOKE)) && echo " (--smoke: a few seconds, gross regressions only)" || true), $(date '+%F %T %Z') on $(nproc) cores ($(uname -m)), load generator on the same cores"
    echo "  nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') (worker_processes $NGINX_WORKERS), $(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }'), $("$CREDGATE_BIN" --version 2>/dev/null || echo "credgate ?") release ($BUILD_NOTE), threads $CREDGATE_THREADS"
    echo "  binary: $BIN_DESC"
    echo "  sources: $(git -C "$ROOT" log -1 --format='%h %cd' --date='format:%F %T' 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- Sources Package.swift 2>/dev/null || echo ', with uncommitted changes in Sources or Package.swift') (the checkout's; a binary given with --bin may be older)"
    malloc_env=$(env | grep '^MALLOC_' | sort | tr '\n' ' ' || true)
    echo "  credgate environment: ${malloc_env:-no MALLOC_* variables}; $(awk '$1 == "Threads:" { print $2 }' "/proc/$CREDGATE_PID/status") threads after the load"
    echo "  wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency after a $WARMUP warm-up, one contender after the other; a $BODY_BYTES-byte JSON answered by nginx$( ((ROUNDS > 1)) && echo "; $ROUNDS rounds, medians" || true)"
    echo
    printf '%-50s %10s %9s %9s %12s\n' "path" "req/s" "p50 ms" "p99 ms" "CPU/req µs"
    ((SMOKE)) || row "nginx directly" direct "  (origin)"
    row "nginx proxy_pass (the peer), no access log" peer
    row "credgate, one API-key route, access log off" credgate
    if ((!SMOKE)); then
        row "credgate, same, JSON access log on" credgate+log
        row "credgate, same as log off, scraped every ${SCRAPE_INTERVAL}s" credgate+scrape
    fi
    if ((SHIPPED)); then
        row "nginx proxy_pass, access log on (file, buffered)" peer+log
        row "credgate, Config/credgate.yaml, API-key route" shipped-api "  (default logging, $SHIPPED_LOG_FORMAT)"
        if ((!SMOKE)); then
            row "credgate, Config/credgate.yaml, JWT route" shipped-jwt
            row "credgate, Config/credgate.yaml, presign cache hit" shipped-presign
        fi
    fi
    echo
    ((ROUNDS > 1)) && printf '%s\n' "${ROUND_LINES[@]}"

    echo "one route, no logs (issue 2; issue 13's targets with logging off on both in brackets):"
    echo "  credgate / peer:  throughput $(judged "$THROUGHPUT_RATIO" '>=' "$TARGET_THROUGHPUT_RATIO") [$(judged "$THROUGHPUT_RATIO" '>=' "$TARGET_NOLOG_TP")]"
    echo "                    CPU per request $(judged "$CPU_RATIO" '<=' "$TARGET_CPU_RATIO" x) [$(judged "$CPU_RATIO" '<=' "$TARGET_NOLOG_CPU" x)]"
    if ((!SMOKE)); then
        log_tp=$(ratio_tp credgate+log credgate)
        echo "access log (issue 12.1; same build and config, log.access true vs false, JSON to a file, default log level):"
        echo "  throughput with / without $(judged "$log_tp" '>=' "$TARGET_LOG_RATIO"); CPU per request ${CPU[credgate+log]} vs ${CPU[credgate]} µs ($(cpu_delta credgate+log credgate) µs, ratio $(ratio_cpu credgate+log credgate)x)"
        lines=0 reqs=0
        for ((round = 1; round <= ROUNDS; round++)); do
            lines=$((lines + LOG_LINES[$round]))
            reqs=$((reqs + REQUESTS[credgate+log#$round] + ${WARM_REQUESTS[credgate+log#$round]:-0}))
        done
        echo "  access-log lines written: $lines for $reqs requests wrk completed (warm-ups included; those in flight when wrk stops are logged, not counted by wrk); credgate_access_log_dropped_total ${LOG_DROPPED:-?}"
        echo "metrics (issue 12.2): always on, they cannot be turned off, so the cost of counting each request cannot be"
        echo "  measured apart with one build. Scraping every ${SCRAPE_INTERVAL}s: throughput $(ratio_tp credgate+scrape credgate) of the same process unscraped, CPU per request ${CPU[credgate+scrape]} vs ${CPU[credgate]} µs ($(cpu_delta credgate+scrape credgate) µs)."
        if [[ -n $METRICS_SHARE ]]; then
            echo "  perf (PERF_RECORD, credgate's first run): the metrics' per-request code (CredGate *Metrics methods and what they call) is ${METRICS_SHARE}% of its CPU samples:" \
                "about $(awk -v p="$METRICS_SHARE" -v c="${CPU[credgate#1]}" 'BEGIN { printf "%.2f", p / 100 * c }') µs of its ${CPU[credgate#1]} µs per request (target <= $TARGET_METRICS_US µs)"
        else
            echo "  (PERF_RECORD=FILE also attributes the per-request counting with perf: its share of credgate's CPU samples)"
        fi
        echo "  One scrape alone costs ${SCRAPE_US} µs of CPU (mean of $SCRAPES, idle process; $SCRAPE_BYTES bytes): at Prometheus' 15 s interval and $(printf '%.0f' "${RPS[credgate]}") req/s that is $(awk -v u="$SCRAPE_US" -v r="${RPS[credgate]}" 'BEGIN { printf "%.4f", u / (15 * r) }') µs per request."
    fi
    if ((SHIPPED)); then
        sh_tp=$(ratio_tp shipped-api peer+log)
        sh_cpu=$(ratio_cpu shipped-api peer+log)
        echo "as users run it (issue 13.1): Config/credgate.yaml, default logging ($SHIPPED_LOG_FORMAT), API-key route, against nginx logging to a buffered file:"
        echo "  shipped / peer+log: throughput $(judged "$sh_tp" '>=' "$TARGET_SHIPPED_TP"), CPU per request $(judged "$sh_cpu" '<=' "$TARGET_SHIPPED_CPU" x)"
        if ((!SMOKE)); then
            jwt_tp=$(ratio_tp shipped-jwt shipped-api)
            presign_tp=$(ratio_tp shipped-presign shipped-api)
            hits=0 misses=0
            for ((round = 1; round <= ROUNDS; round++)); do
                hits=$((hits + PRESIGN_HITS[$round])); misses=$((misses + PRESIGN_MISSES[$round]))
            done
            echo "  JWT route / API-key route: throughput $(judged "$jwt_tp" '>=' "$TARGET_ROUTE_RATIO"), CPU per request ${CPU[shipped-jwt]} vs ${CPU[shipped-api]} µs"
            echo "  presign cache hit / API-key route: throughput $(judged "$presign_tp" '>=' "$TARGET_ROUTE_RATIO"), CPU per request ${CPU[shipped-presign]} vs ${CPU[shipped-api]} µs (cache during the measured runs: $hits hits, $misses misses)"
        fi
        echo "  memory: idle VmRSS $(kib_to_mib "$SHIPPED_IDLE_RSS") MiB $(verdict "$(kib_to_mib "$SHIPPED_IDLE_RSS")" '<=' "$TARGET_RSS_MIB") (target <= $TARGET_RSS_MIB), RssAnon $(kib_to_mib "$SHIPPED_IDLE_ANON") MiB $(verdict "$(kib_to_mib "$SHIPPED_IDLE_ANON")" '<=' "$TARGET_ANON_MIB") (target <= $TARGET_ANON_MIB);" \
            "after the load VmRSS $(kib_to_mib "$SHIPPED_RSS_AFTER") MiB, RssAnon $(kib_to_mib "$SHIPPED_ANON_AFTER") MiB, peak during the load (VmHWM$([[ $HWM_RESET == yes ]] && echo ", reset after the idle reading" || echo " since start: clear_refs not writable")) $(kib_to_mib "$SHIPPED_HWM") MiB $(verdict "$(kib_to_mib "$SHIPPED_HWM")" '<=' "$TARGET_RSS_MIB")"
        read -r _ healthz_ms _ _ _ _ _ ready_ms _ <<<"$START_READY"
        echo "  start to ready (bench/start-ready.py, $START_RUNS fresh processes, ms): $(sed -e 's/healthz /healthz answering /' -e 's/ readiness / · readiness 200 (logged in) /' -e 's/ runs [0-9]*$//' <<<"$START_READY");" \
            "healthz $(verdict "$healthz_ms" '<=' "$TARGET_READY_MS") (target <= $TARGET_READY_MS ms)"
    fi
    echo "$ORDER_NOTE"
    echo "credgate (one route) memory: VmRSS $(kib_to_mib "$RSS_START") MiB at start (RssAnon $(kib_to_mib "$ANON_START") MiB, the rest is mapped code and libraries);" \
        "after the load VmRSS $(kib_to_mib "$RSS_AFTER_LOAD") MiB, VmHWM $(kib_to_mib "$HWM_AFTER_LOAD") MiB"
    if [[ $SKIP_STREAM != 1 ]]; then
        echo
        echo "streaming through credgate (origin: nginx WebDAV PUT sink on $( [[ $SINK == /dev/shm/* ]] && echo tmpfs || echo disk ), sparse file for GET); idle VmRSS before: $(kib_to_mib "$RSS_IDLE") MiB"
        printf '%s\n' "${STREAM_LINES[@]}"
        echo "peak RSS during the upload: $UPLOAD_PEAK_MIB MiB  (target <= $TARGET_UPLOAD_RSS_MIB MiB: $(verdict "$UPLOAD_PEAK_MIB" '<=' "$TARGET_UPLOAD_RSS_MIB"));" \
            "$UPLOAD_SPLIT at the peak sample"
        echo "resident by mapping after the upload: $UPLOAD_MAPPINGS"
    fi
    if ((SMOKE)); then
        echo
        smoke_check() { # description value op bound
            if [[ $(verdict "$2" "$3" "$4") == PASS ]]; then
                echo "smoke: ok    $1: $2 $3 $4"
            else
                echo "smoke: FAIL  $1: $2, not $3 $4"
                return 1
            fi
        }
        smoke_check "credgate (one route) / peer throughput" "$THROUGHPUT_RATIO" '>=' "$SMOKE_MIN_RATIO" || SMOKE_FAILED=1
        smoke_check "credgate (shipped config) / peer+log throughput" "$sh_tp" '>=' "$SMOKE_MIN_RATIO" || SMOKE_FAILED=1
        smoke_check "credgate (one route) VmHWM MiB" "$(kib_to_mib "$HWM_AFTER_LOAD")" '<=' "$SMOKE_MAX_RSS_MIB" || SMOKE_FAILED=1
        smoke_check "credgate (shipped config) VmHWM MiB" "$(kib_to_mib "$SHIPPED_HWM")" '<=' "$SMOKE_MAX_RSS_MIB" || SMOKE_FAILED=1
        for key in "${CONTENDERS[@]}"; do
            [[ ${NOTE[$key]} == *'!'* ]] && { echo "smoke: FAIL  $key:${NOTE[$key]}"; SMOKE_FAILED=1; }
        done
        ((SMOKE_FAILED)) && echo "smoke: FAILED (a gross regression, or errors; timings alone never fail it)" || echo "smoke: PASSED"
    fi
    echo "$SMOKE_FAILED" >"$WORK/smoke-failed"
} | tee "$REPORT"
log "raw wrk output: $WORK/wrk-*.txt (kept with KEEP=1); report saved to $REPORT"
# --smoke fails on a gross regression only (the report's "smoke: FAIL" lines); a full run never fails on a figure.
if ((SMOKE)) && [[ $(cat "$WORK/smoke-failed" 2>/dev/null) != 0 ]]; then exit 1; fi
exit 0
