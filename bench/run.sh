#!/usr/bin/env bash
# credgate against nginx, side by side in one run (issue 2, "Benchmark"). Prints figures; it is not a test.
#
#   bench/run.sh                          # defaults: wrk -t1 -c32 -d10s after a 3s warm-up, 1 GiB streams
#   DURATION=30s CONNECTIONS=64 bench/run.sh
#   bench/run.sh --bin PATH               # measure that binary as it is (same as CREDGATE_BIN=PATH), no build
#
# Which binary: by default the one the Dockerfile ships, built the same way: the arguments of the Dockerfile's
# `RUN swift build ... --product credgate` line (today `-c release --static-swift-stdlib --product credgate`) plus
# `--scratch-path .build-bench` (incremental; the first build takes 8-15 minutes on 2 cores; its own scratch path,
# so the shared .build is not touched), then stripped into the work directory as the Dockerfile strips it.
# CREDGATE_BUILD=dynamic measures the plain `swift build -c release` binary in .build instead (Swift runtime and
# Foundation as shared libraries, what `swift run -c release` runs); CREDGATE_BUILD=none takes the existing static
# build without building. The report names the binary measured: path, static or dynamic Swift runtime, stripped or
# not, size, and the shared libraries it loads.
#
# What runs, all on 127.0.0.1 ports picked at random:
#   origin   nginx answering a small JSON (`return 200`) on /api/, an upload sink and a 1 GiB download
#   peer     nginx `proxy_pass` to the origin with `proxy_set_header x-api-key` and a keep-alive upstream
#   credgate the release binary, one API-key route /api/** to the origin, --log-level warning (no access log)
# and wrk measures, one after the other: the origin directly, the peer, credgate. CPU time per request is the
# delta of utime+stime (/proc/PID/stat; every nginx master and worker PID) over the measured run divided by
# the requests wrk completed. Then 1 GiB goes up (PUT with Content-Length, then chunked) and down through
# credgate while its VmRSS is sampled every 50 ms and VmHWM is read.
#
# Environment: DURATION (10s), CONNECTIONS (32), WRK_THREADS (1), WARMUP (3s), ROUNDS (1: how many times the
# peer and credgate are measured, one after the other; with more, the table shows medians and the verdicts use
# the median of the rounds' ratios), NGINX_WORKERS (auto),
# CREDGATE_THREADS (0 = one event loop per core), STREAM_BYTES (1073741824), SKIP_STREAM (0),
# CREDGATE_BIN (skip the build and use this binary), CREDGATE_BUILD (static, dynamic or none; see above),
# KEEP (1 keeps the work directory), OUT_DIR (bench/out), PERF_RECORD (a file: `perf record -g` of credgate during
# its first measured run goes there; perf slows credgate, so that run's figures are marked and are not comparable).
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

while (($#)); do
    case $1 in
    --bin) (($# >= 2)) || die "--bin needs a path"; CREDGATE_BIN=$2; shift 2 ;;
    --bin=*) CREDGATE_BIN=${1#--bin=}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see bench/run.sh --help)" ;;
    esac
done

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-1}
WARMUP=${WARMUP:-3s}
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
mkdir -p "$SINK/files" "$WORK/data" "$WORK/origin" "$WORK/peer" "$WORK/credgate"
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
chmod 1777 "$SINK/files" # nginx workers run as nobody when started by root

PIDS=()
SAMPLER=""
cleanup() {
    local status=$? pid i
    trap - EXIT INT TERM
    [[ -n $SAMPLER ]] && kill "$SAMPLER" 2>/dev/null
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
"$NGINX" -h 2>&1 | grep -q -- '-e filename' && NGINX_E=(-e "$WORK/origin/error.log")

free_port ORIGIN_PORT
free_port PEER_PORT
free_port CREDGATE_PORT

render "$HERE/nginx-origin.conf.in" "$WORK/origin/nginx.conf" WORKERS="$NGINX_WORKERS" DIR="$WORK/origin" \
    PORT="$ORIGIN_PORT" SINK="$SINK" DATA="$WORK/data" KEY="$BENCH_KEY"
render "$HERE/nginx-peer.conf.in" "$WORK/peer/nginx.conf" WORKERS="$NGINX_WORKERS" DIR="$WORK/peer" \
    PORT="$PEER_PORT" ORIGIN_PORT="$ORIGIN_PORT" KEY="$BENCH_KEY"
render "$HERE/credgate.yaml.in" "$WORK/credgate/credgate.yaml" PORT="$CREDGATE_PORT" \
    ORIGIN_PORT="$ORIGIN_PORT" THREADS="$CREDGATE_THREADS"

start_nginx() { # name
    local dir=$WORK/$1 e=()
    ((${#NGINX_E[@]})) && e=(-e "$dir/error.log")
    "$NGINX" -p "$dir" "${e[@]}" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
    PIDS+=($!)
}
start_nginx origin
start_nginx peer
"$CREDGATE_BIN" serve --config "$WORK/credgate/credgate.yaml" --log-level warning \
    >"$WORK/credgate/stdout.log" 2>"$WORK/credgate/stderr.log" &
CREDGATE_PID=$!
PIDS+=("$CREDGATE_PID")

wait_http "http://127.0.0.1:$ORIGIN_PORT/api/x" 10 || die "origin nginx did not start: $(cat "$WORK/origin/"*.log)"
wait_http "http://127.0.0.1:$PEER_PORT/api/x" 10 || die "peer nginx did not start: $(cat "$WORK/peer/"*.log)"
wait_http "http://127.0.0.1:$CREDGATE_PORT/credgate/healthz" 30 "$CREDGATE_PID" ||
    die "credgate did not start: $(cat "$WORK/credgate/"*.log)"

sleep 0.5
RSS_START=$(proc_kb "$CREDGATE_PID" VmRSS)
ANON_START=$(proc_kb "$CREDGATE_PID" RssAnon)

# Each path answers 200 JSON, and both proxies inject the key (the origin's /api/check-key says 401 without).
for target in "origin $ORIGIN_PORT 401" "peer $PEER_PORT 200" "credgate $CREDGATE_PORT 200"; do
    read -r name port want <<<"$target"
    got=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/bench")
    [[ $got == 200 ]] || die "$name: GET /api/bench answered $got"
    got=$(curl -s -o /dev/null -w '%{http_code}' -H 'x-api-key: from-the-client' "http://127.0.0.1:$port/api/check-key")
    [[ $got == "$want" ]] || die "$name: GET /api/check-key answered $got, expected $want"
done

BODY_BYTES=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$ORIGIN_PORT/api/bench")

# ---------------------------------------------------------------------------------------------- throughput
declare -A RPS P50 P99 CPU NOTE
measure() { # key port pids...
    local key=$1 port=$2 url t0 t1 parsed requests non2xx errors
    shift 2
    url="http://127.0.0.1:$port/api/bench"
    log "measuring $key: warm-up $WARMUP, then wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency $url"
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$url" >/dev/null
    local perf_pid=""
    if [[ $key == "credgate#1" && -n $PERF_RECORD ]]; then
        perf record -q -g -o "$PERF_RECORD" -p "$CREDGATE_PID" >/dev/null 2>"$WORK/perf.log" &
        perf_pid=$!
        sleep 0.5
    fi
    t0=$(cpu_ticks "$@")
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url" >"$WORK/wrk-$key.txt"
    t1=$(cpu_ticks "$@")
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid" 2>/dev/null
        wait "$perf_pid" 2>/dev/null || true
        NOTE[$key]+=" (under perf record: slower)"
    fi
    parsed=$(parse_wrk "$WORK/wrk-$key.txt") || die "cannot read wrk's output: $(cat "$WORK/wrk-$key.txt")"
    read -r requests "RPS[$key]" "P50[$key]" "P99[$key]" non2xx errors <<<"$parsed"
    CPU[$key]=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')
    NOTE[$key]=${NOTE[$key]:-}
    ((non2xx > 0)) && NOTE[$key]+=" $non2xx non-2xx!"
    ((errors > 0)) && NOTE[$key]+=" $errors socket errors!"
    return 0
}
# shellcheck disable=SC2046
measure direct "$ORIGIN_PORT" $(nginx_pids "$WORK/origin")
# shellcheck disable=SC2046
# The peer and credgate one after the other, ROUNDS times: on a shared 2-core machine one pair of 10 s runs
# varies by 10-20 % in CPU per request, so with ROUNDS > 1 the verdicts use the median of the rounds' ratios.
TP_RATIOS=()
CPU_RATIOS=()
ROUND_LINES=()
for ((round = 1; round <= ROUNDS; round++)); do
    # shellcheck disable=SC2046
    measure "peer#$round" "$PEER_PORT" $(nginx_pids "$WORK/peer")
    measure "credgate#$round" "$CREDGATE_PORT" "$CREDGATE_PID"
    TP_RATIOS+=("$(awk -v a="${RPS[credgate#$round]}" -v b="${RPS[peer#$round]}" 'BEGIN { printf "%.2f", a / b }')")
    CPU_RATIOS+=("$(awk -v a="${CPU[credgate#$round]}" -v b="${CPU[peer#$round]}" 'BEGIN { printf "%.2f", a / b }')")
    ROUND_LINES+=("$(printf 'round %d: peer %6.0f req/s %5s µs/req, credgate %6.0f req/s %5s µs/req: throughput %s, CPU per request %sx' \
        "$round" "${RPS[peer#$round]}" "${CPU[peer#$round]}" "${RPS[credgate#$round]}" "${CPU[credgate#$round]}" \
        "${TP_RATIOS[-1]}" "${CPU_RATIOS[-1]}")")
done
for key in peer credgate; do
    for metric in RPS P50 P99 CPU; do
        declare -n table=$metric
        values=()
        for ((round = 1; round <= ROUNDS; round++)); do values+=("${table[$key#$round]}"); done
        # shellcheck disable=SC2004 # an associative array reached through a nameref, not arithmetic
        table[$key]=$(median "${values[@]}")
        unset -n table
    done
    NOTE[$key]=""
    for ((round = 1; round <= ROUNDS; round++)); do NOTE[$key]+=${NOTE[$key#$round]}; done
done
RSS_AFTER_LOAD=$(proc_kb "$CREDGATE_PID" VmRSS)
HWM_AFTER_LOAD=$(proc_kb "$CREDGATE_PID" VmHWM)

verdict() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN { ok = (op == ">=") ? a >= b : a <= b; print ok ? "PASS" : "FAIL" }'; }
THROUGHPUT_RATIO=$(median "${TP_RATIOS[@]}")
CPU_RATIO=$(median "${CPU_RATIOS[@]}")

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

# ---------------------------------------------------------------------------------------------- report
mkdir -p "$OUT_DIR"
REPORT=$OUT_DIR/bench-$(date +%Y%m%d-%H%M%S).txt
{
    echo "credgate benchmark, $(date '+%F %T %Z') on $(nproc) cores ($(uname -m)), load generator on the same cores"
    echo "  nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') (worker_processes $NGINX_WORKERS), $(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }'), $("$CREDGATE_BIN" --version 2>/dev/null || echo "credgate ?") release ($BUILD_NOTE), threads $CREDGATE_THREADS"
    echo "  binary: $BIN_DESC"
    echo "  sources: $(git -C "$ROOT" log -1 --format='%h %cd' --date='format:%F %T' 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- Sources Package.swift 2>/dev/null || echo ', with uncommitted changes in Sources or Package.swift') (the checkout's; a binary given with --bin may be older)"
    malloc_env=$(env | grep '^MALLOC_' | sort | tr '\n' ' ' || true)
    echo "  credgate environment: ${malloc_env:-no MALLOC_* variables}; $(awk '$1 == "Threads:" { print $2 }' "/proc/$CREDGATE_PID/status") threads after the load"
    echo "  wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency after a $WARMUP warm-up; GET /api/bench, a $BODY_BYTES-byte JSON answered by nginx$( ((ROUNDS > 1)) && echo "; $ROUNDS rounds of (peer, credgate), medians")"
    echo
    printf '%-37s %10s %9s %9s %12s\n' "path" "req/s" "p50 ms" "p99 ms" "CPU/req µs"
    printf '%-37s %10.0f %9.3f %9.3f %12.1f%s\n' "nginx directly" "${RPS[direct]}" "${P50[direct]}" "${P99[direct]}" "${CPU[direct]}" "${NOTE[direct]}  (origin)"
    printf '%-37s %10.0f %9.3f %9.3f %12.1f%s\n' "nginx proxy_pass (the peer)" "${RPS[peer]}" "${P50[peer]}" "${P99[peer]}" "${CPU[peer]}" "${NOTE[peer]}"
    printf '%-37s %10.0f %9.3f %9.3f %12.1f%s\n' "credgate (API-key route)" "${RPS[credgate]}" "${P50[credgate]}" "${P99[credgate]}" "${CPU[credgate]}" "${NOTE[credgate]}"
    echo
    ((ROUNDS > 1)) && printf '%s\n' "${ROUND_LINES[@]}"
    echo "credgate / peer:  throughput ${THROUGHPUT_RATIO}  (target >= $TARGET_THROUGHPUT_RATIO: $(verdict "$THROUGHPUT_RATIO" '>=' "$TARGET_THROUGHPUT_RATIO"))"
    echo "                  CPU per request ${CPU_RATIO}x  (target <= ${TARGET_CPU_RATIO}x: $(verdict "$CPU_RATIO" '<=' "$TARGET_CPU_RATIO"))"
    echo "credgate memory: VmRSS $(kib_to_mib "$RSS_START") MiB at start (RssAnon $(kib_to_mib "$ANON_START") MiB, the rest is mapped code and libraries);" \
        "after the load VmRSS $(kib_to_mib "$RSS_AFTER_LOAD") MiB, VmHWM $(kib_to_mib "$HWM_AFTER_LOAD") MiB"
    if [[ $SKIP_STREAM != 1 ]]; then
        echo
        echo "streaming through credgate (origin: nginx WebDAV PUT sink on $( [[ $SINK == /dev/shm/* ]] && echo tmpfs || echo disk ), sparse file for GET); idle VmRSS before: $(kib_to_mib "$RSS_IDLE") MiB"
        printf '%s\n' "${STREAM_LINES[@]}"
        echo "peak RSS during the upload: $UPLOAD_PEAK_MIB MiB  (target <= $TARGET_UPLOAD_RSS_MIB MiB: $(verdict "$UPLOAD_PEAK_MIB" '<=' "$TARGET_UPLOAD_RSS_MIB"));" \
            "$UPLOAD_SPLIT at the peak sample"
        echo "resident by mapping after the upload: $UPLOAD_MAPPINGS"
    fi
} | tee "$REPORT"
log "raw wrk output: $WORK/wrk-*.txt (kept with KEEP=1); report saved to $REPORT"
