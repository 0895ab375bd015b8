# shellcheck shell=bash
# Helpers for bench/run.sh (sourced, not run). Bash only; no dependency beyond coreutils, procps and curl.

log() { printf '%s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# Whether something listens on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Sets the variable named $1 to a loopback port nobody listens on, never one handed out before in this run.
_BENCH_PORTS=" "
free_port() {
    local p i
    for i in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        [[ $_BENCH_PORTS == *" $p "* ]] && continue
        if ! port_in_use "$p"; then
            _BENCH_PORTS+="$p "
            printf -v "$1" '%s' "$p"
            return 0
        fi
    done
    die "no free loopback port found"
}

# Waits until URL answers at all (any HTTP status), up to SECONDS seconds. Fails if PID (optional) dies.
wait_http() {
    local url=$1 seconds=${2:-30} pid=${3:-} i
    for ((i = 0; i < seconds * 10; i++)); do
        [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null && return 1
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null) != 000 ]] && return 0
        sleep 0.1
    done
    return 1
}

# Fills @NAME@ placeholders: render TEMPLATE OUT NAME=value ...
render() {
    local template=$1 out=$2 kv args=()
    shift 2
    for kv in "$@"; do
        args+=(-e "s|@${kv%%=*}@|${kv#*=}|g")
    done
    sed "${args[@]}" "$template" >"$out"
    if grep -q '@[A-Z_]*@' "$out"; then die "unfilled placeholder in $out: $(grep -o '@[A-Z_]*@' "$out" | head -1)"; fi
}

# The nginx master PID and its worker PIDs.
nginx_pids() {
    local master
    master=$(cat "$1/nginx.pid" 2>/dev/null) || return 1
    echo "$master" "$(pgrep -P "$master" | tr '\n' ' ')"
}

# Sum of utime+stime (clock ticks) of the given PIDs, all threads included (/proc/PID/stat fields 14 and 15,
# counted after the ')' that closes the command name, which may contain spaces).
cpu_ticks() {
    local pid total=0 rest fields
    for pid in "$@"; do
        rest=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        # The remainder starts at field 3 (state), so utime (14) and stime (15) are its 12th and 13th words.
        read -ra fields <<<"$rest"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# VmRSS or VmHWM (kB) of a PID.
proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }

kib_to_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# Samples VmRSS and RssAnon of PID every 50 ms until FILE.stop exists; writes the maxima seen (kB) to FILE and
# FILE.anon. RssAnon is the process's own memory (heap, buffers); the rest of VmRSS is mapped code and libraries.
sample_rss_max() {
    local pid=$1 file=$2 max=0 anon_max=0 v a
    while [[ ! -e $file.stop ]] && kill -0 "$pid" 2>/dev/null; do
        read -r v a < <(awk '$1 == "VmRSS:" { r = $2 } $1 == "RssAnon:" { a = $2 } END { print r + 0, a + 0 }' "/proc/$pid/status" 2>/dev/null)
        ((${v:-0} > max)) && max=$v
        ((${a:-0} > anon_max)) && anon_max=$a
        sleep 0.05
    done
    echo "$max" >"$file"
    echo "$anon_max" >"$file.anon"
}

# Converts a wrk latency such as 812.00us, 1.20ms or 1.05s to milliseconds.
wrk_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n = n * 60000; else if (v ~ /s$/) n = n * 1000
        printf "%.3f", n
    }'
}

# Parses a `wrk --latency` output file into: requests rps p50_ms p99_ms non2xx socket_errors
parse_wrk() {
    local f=$1 requests rps p50 p99 non2xx errors
    requests=$(awk '/ requests in / { print $1 }' "$f")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$f")
    p50=$(awk '$1 == "50%" { print $2 }' "$f")
    p99=$(awk '$1 == "99%" { print $2 }' "$f")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$f")
    errors=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$f")
    [[ -n $requests && -n $rps && -n $p50 && -n $p99 ]] || return 1
    echo "$requests $rps $(wrk_ms "$p50") $(wrk_ms "$p99") ${non2xx:-0} ${errors:-0}"
}
