# shellcheck shell=bash
# Helpers for bench/run.sh (sourced, not run). Bash only; no dependency beyond coreutils, procps and curl.

log() { printf '%s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# Whether something listens on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Sets the variable named $1 to a loopback port nobody listens on, never one handed out before in this run. The
# port is taken below the kernel's ephemeral range (ip_local_port_range), where the client side of an outgoing
# connection (wrk's, or a proxy's to its upstream) could hold it and make the bind fail.
_BENCH_PORTS=" "
free_port() {
    local p i low=32768 span
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    span=$((low - 10000))
    ((span >= 1000)) || span=20000 # an unusual range: fall back to 10000-29999 and hope
    for i in $(seq 1 200); do
        p=$((10000 + RANDOM % span))
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

# Samples VmRSS, RssAnon and RssFile of PID every 50 ms until FILE.stop exists; writes the largest VmRSS seen
# (kB) to FILE, the largest RssAnon to FILE.anon, and RssAnon and RssFile of the sample with the largest VmRSS
# to FILE.split. RssAnon is the process's own memory (heap, buffers, stacks); RssFile is the resident part of
# the mapped binary and shared libraries (shared with other processes running the same files).
sample_rss_max() {
    local pid=$1 file=$2 max=0 anon_max=0 split="0 0" v a f
    while [[ ! -e $file.stop ]] && kill -0 "$pid" 2>/dev/null; do
        read -r v a f < <(awk '$1 == "VmRSS:" { r = $2 } $1 == "RssAnon:" { a = $2 } $1 == "RssFile:" { f = $2 }
            END { print r + 0, a + 0, f + 0 }' "/proc/$pid/status" 2>/dev/null)
        if ((${v:-0} > max)); then max=$v; split="$a $f"; fi
        ((${a:-0} > anon_max)) && anon_max=$a
        sleep 0.05
    done
    echo "$max" >"$file"
    echo "$anon_max" >"$file.anon"
    echo "$split" >"$file.split"
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

# One line about a credgate binary: how the Swift runtime is linked, stripped or not, file size, and the size of
# its executable and read-only segments (what can become resident as file-backed RSS, together with the shared
# libraries it loads).
describe_binary() { # binary [name to show]
    local bin=$1 name=${2:-$1} linkage stripped libs text
    # Not `ldd | grep -q` under pipefail: grep's early exit can fail the pipeline (SIGPIPE) and flip the answer.
    if [[ $(ldd "$bin" 2>/dev/null) == *libswiftCore.so* ]]; then
        linkage="dynamic Swift runtime (libswiftCore, Foundation, ICU as shared libraries)"
    else
        linkage="static Swift stdlib (--static-swift-stdlib: runtime, Foundation, ICU linked in)"
    fi
    if [[ $(readelf -S -W "$bin" 2>/dev/null) == *' .symtab '* ]]; then stripped="not stripped"; else stripped="stripped"; fi
    libs=$(ldd "$bin" 2>/dev/null | awk '$1 !~ /^linux-vdso|^\/lib64/ { sub(/\.so.*/, "", $1); printf "%s%s", sep, $1; sep = " " }')
    # Sum of the PT_LOAD segments that are not writable (code and read-only data), in MiB.
    local type memsz flags total=0
    while read -r type _ _ _ _ memsz flags; do
        [[ $type == LOAD && $flags != *W* ]] && total=$((total + memsz))
    done < <(readelf -l -W "$bin" 2>/dev/null)
    text=$(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1048576 }')
    printf '%s\n    %s, %s, %s MiB on disk, %s MiB of code and read-only data; loads: %s' "$name" "$linkage" "$stripped" \
        "$(awk -v b="$(stat -c %s "$bin")" 'BEGIN { printf "%.1f", b / 1048576 }')" "${text:-?}" "${libs:-?}"
}

# Resident memory of PID by mapping, largest first (kB): each file by name, anonymous memory as [anon],
# [heap], [stack] and so on. From /proc/PID/smaps; prints the first N (default 8) and the total.
rss_by_mapping() {
    local pid=$1 n=${2:-8}
    awk '
        /^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6) ? $6 : "[anon]"; sub(/.*\//, "", name); next }
        $1 == "Rss:" { rss[name] += $2; total += $2 }
        END { for (k in rss) if (rss[k] > 0) printf "%d %s\n", rss[k], k; printf "%d TOTAL\n", total }
    ' "/proc/$pid/smaps" 2>/dev/null | sort -rn | awk -v n="$n" '
        $2 == "TOTAL" { total = $1; next }
        ++i <= n { printf "%s%s %.1f", sep, $2, $1 / 1024; sep = ", " }
        END { printf "  (MiB; all mappings %.1f)", total / 1024 }'
}

# The arguments of the Dockerfile's `RUN swift build ... --product credgate` line (up to the line's end, a
# backslash or `&&`), on one line; nothing if there is no such line.
dockerfile_build_args() {
    [[ -f $1 ]] || return 0
    sed -n 's/^RUN swift build \(.*--product credgate\)\([^\\&]*\).*/\1\2/p' "$1" | head -1 | sed 's/[[:space:]]*$//'
}

# The median of numbers (the mean of the middle two, with three decimals, for an even count).
median() {
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
