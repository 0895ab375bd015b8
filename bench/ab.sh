#!/usr/bin/env bash
# A/B of credgate's CPU per request: two credgate processes (two binaries, or one binary with two environments)
# in front of one nginx origin, measured alternately with wrk, so that the drift of a shared machine hits both
# alike. Prints each round and the medians. For checking that a change to the data path pays; bench/run.sh stays
# the benchmark of record (it also measures the nginx peer and memory).
#
#   bench/ab.sh OLD-BINARY NEW-BINARY
#   ENV_B="MALLOC_ARENA_MAX=2" bench/ab.sh BINARY BINARY
#
# Environment: ROUNDS (10; A then B in odd rounds, B then A in even ones), DURATION (5s per measurement),
# CONNECTIONS (32), WARMUP (3s, each side once), ENV_A / ENV_B (space-separated VAR=value words added to that side's
# environment), ACCESS_A / ACCESS_B (true: that side writes the JSON access log to a file; default false),
# CREDGATE_THREADS (0 = one event loop per core; THREADS_A / THREADS_B for one side). `ACCESS_B=true bench/ab.sh BIN BIN`
# is the access log's cost.
#
# On this 2-core machine, one 5 s measurement of the same binary varies by 10-15 %; interleaved over 10 rounds,
# a difference of 2-3 % in the medians is about the smallest worth believing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

(($# == 2)) || die "usage: bench/ab.sh BINARY-A BINARY-B (see the top of bench/ab.sh)"
BIN_A=$(realpath "$1")
BIN_B=$(realpath "$2")
[[ -x $BIN_A && -x $BIN_B ]] || die "both binaries must be executable"
ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-3s}
CREDGATE_THREADS=${CREDGATE_THREADS:-0}
THREADS_A=${THREADS_A:-$CREDGATE_THREADS}
THREADS_B=${THREADS_B:-$CREDGATE_THREADS}
read -ra ENV_A <<<"${ENV_A:-}"
read -ra ENV_B <<<"${ENV_B:-}"
command -v wrk >/dev/null || die "needs wrk (bench/run.sh installs it)"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
CLK_TCK=$(getconf CLK_TCK)
BENCH_KEY="ab-$RANDOM$RANDOM-key"
export BENCH_KEY

WORK=$(mktemp -d "${TMPDIR:-/tmp}/credgate-ab.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/origin" "$WORK/sink/files" "$WORK/data" "$WORK/a" "$WORK/b"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port ORIGIN_PORT
free_port PORT_A
free_port PORT_B
# The origin's login answer and presign stand-in (bench/run.sh --shipped) are not used here; their placeholders
# get inert values.
NOW=$(date +%s)
render "$HERE/nginx-origin.conf.in" "$WORK/origin/nginx.conf" WORKERS=auto DIR="$WORK/origin" PORT="$ORIGIN_PORT" \
    SINK="$WORK/sink" DATA="$WORK/data" KEY="$BENCH_KEY" JWT="unused.by.ab" \
    AMZDAY="$(date -u -d "@$NOW" +%Y%m%d)" AMZDATE="$(date -u -d "@$NOW" +%Y%m%dT%H%M%SZ)"
ACCESS_A=${ACCESS_A:-false}
ACCESS_B=${ACCESS_B:-false}
LEVEL_A=() LEVEL_B=()
render "$HERE/credgate.yaml.in" "$WORK/a/credgate.yaml" PORT="$PORT_A" ORIGIN_PORT="$ORIGIN_PORT" THREADS="$THREADS_A" ACCESS="$ACCESS_A"
render "$HERE/credgate.yaml.in" "$WORK/b/credgate.yaml" PORT="$PORT_B" ORIGIN_PORT="$ORIGIN_PORT" THREADS="$THREADS_B" ACCESS="$ACCESS_B"
# Without the access log: no `log:` section (binaries older than it refuse the key) and --log-level warning. With
# it (ACCESS_A/ACCESS_B=true): the JSON access log at the default level, to a file, as bench/run.sh writes it.
if [[ $ACCESS_A == true ]]; then LEVEL_A=(--log-level info); else sed -i '/^log:/d' "$WORK/a/credgate.yaml"; LEVEL_A=(--log-level warning); fi
if [[ $ACCESS_B == true ]]; then LEVEL_B=(--log-level info); else sed -i '/^log:/d' "$WORK/b/credgate.yaml"; LEVEL_B=(--log-level warning); fi
"$NGINX" -p "$WORK/origin" -e "$WORK/origin/error.log" -c "$WORK/origin/nginx.conf" >"$WORK/origin/stdout.log" 2>&1 &
PIDS+=($!)
env "${ENV_A[@]}" "$BIN_A" serve --config "$WORK/a/credgate.yaml" "${LEVEL_A[@]}" >"$WORK/a/log" 2>&1 &
PID_A=$!
PIDS+=("$PID_A")
env "${ENV_B[@]}" "$BIN_B" serve --config "$WORK/b/credgate.yaml" "${LEVEL_B[@]}" >"$WORK/b/log" 2>&1 &
PID_B=$!
PIDS+=("$PID_B")
wait_http "http://127.0.0.1:$ORIGIN_PORT/api/x" 10 || die "nginx did not start: $(cat "$WORK/origin/"*.log)"
wait_http "http://127.0.0.1:$PORT_A/credgate/healthz" 30 "$PID_A" || die "A did not start: $(cat "$WORK/a/log")"
wait_http "http://127.0.0.1:$PORT_B/credgate/healthz" 30 "$PID_B" || die "B did not start: $(cat "$WORK/b/log")"
for port in "$PORT_A" "$PORT_B"; do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/check-key") == 200 ]] ||
        die "credgate on $port does not inject the key"
    wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "http://127.0.0.1:$port/api/bench" >/dev/null
done

one() { # pid port -> "µs-per-request req/s"
    local pid=$1 port=$2 t0 t1 parsed requests rps
    t0=$(cpu_ticks "$pid")
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$port/api/bench" >"$WORK/wrk.txt"
    t1=$(cpu_ticks "$pid")
    parsed=$(parse_wrk "$WORK/wrk.txt") || die "cannot read wrk's output: $(cat "$WORK/wrk.txt")"
    read -r requests rps _ <<<"$parsed"
    awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" -v rps="$rps" 'BEGIN { printf "%.1f %.0f", d / hz * 1e6 / n, rps }'
}

echo "A: ${ENV_A[*]:+${ENV_A[*]} }$BIN_A"
echo "B: ${ENV_B[*]:+${ENV_B[*]} }$BIN_B"
echo "wrk -t1 -c$CONNECTIONS -d$DURATION, $ROUNDS rounds, alternating which goes first"
CPU_A=()
CPU_B=()
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then
        a=$(one "$PID_A" "$PORT_A")
        b=$(one "$PID_B" "$PORT_B")
    else
        b=$(one "$PID_B" "$PORT_B")
        a=$(one "$PID_A" "$PORT_A")
    fi
    CPU_A+=("${a% *}")
    CPU_B+=("${b% *}")
    printf 'round %2d: A %5s µs/req (%s req/s)   B %5s µs/req (%s req/s)\n' "$round" "${a% *}" "${a#* }" "${b% *}" "${b#* }"
done
MA=$(median "${CPU_A[@]}")
MB=$(median "${CPU_B[@]}")
LOWER=0
for ((i = 0; i < ROUNDS; i++)); do
    awk -v a="${CPU_A[i]}" -v b="${CPU_B[i]}" 'BEGIN { exit !(b < a) }' && LOWER=$((LOWER + 1))
done
awk -v a="$MA" -v b="$MB" -v lower="$LOWER" -v n="$ROUNDS" 'BEGIN {
    printf "median CPU per request: A %.1f µs, B %.1f µs (B - A = %+.1f µs, %+.1f %%); B lower in %d of %d rounds\n",
        a, b, b - a, (b - a) / a * 100, lower, n
}'
# What each side wrote to standard output: its access-log lines when ACCESS_x=true (a check that the log was on).
echo "lines written to standard output: A $(wc -l <"$WORK/a/log"), B $(wc -l <"$WORK/b/log")"
