# Shared by the scripts that run credgate's binary and check it (container-smoke.sh, upload-memory.sh).
# Source it; it keeps the PASSED/FAILED counts.
PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); printf '  ok    %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf '  FAIL  %s\n' "$*"; }

# A TCP port on 127.0.0.1 that nothing listens on.
# Below the kernel's ephemeral range (ip_local_port_range), as bench/lib.sh does: a port in that range can be the
# local end of some outgoing connection at the moment credgate binds it (EADDRINUSE although nothing listens).
free_port() {
    local p low=32768 span
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    span=$((low - 10000))
    ((span >= 1000)) || span=20000
    for _ in $(seq 1 200); do
        p=$((10000 + RANDOM % span))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    return 1
}
# A Python 3.12 or newer, for the venvs of the SDKs that need one (assured-py 1.3.0 requires 3.12): pyenv's 3.12.1
# when pyenv has it, else the first of python3.13, python3.12, python3 that is new enough; nothing (status 1) if none.
# It asks the interpreters themselves: `pyenv versions --bare | grep -qx 3.12.1` under `set -o pipefail` failed at
# random (grep exits at its match, pyenv gets SIGPIPE writing the next line, and the pipeline's status is 141), so
# the venv was made with the default 3.11 and pip found no assured-py for it (a red CI, not reproducible at will).
python312() {
    local candidate root
    if command -v pyenv >/dev/null 2>&1; then
        root=$(pyenv root 2>/dev/null) || root=
        candidate=$root/versions/3.12.1/bin/python3
        [[ -n $root && -x $candidate ]] && { echo "$candidate"; return 0; }
    fi
    for candidate in python3.13 python3.12 python3; do
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 || continue
        "$candidate" -c 'import sys; print(sys.executable)'
        return 0
    done
    return 1
}
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true; }
# Waits until URL answers at all, while PID lives, for at most SECONDS.
wait_up() { # url pid seconds
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        kill -0 "$2" 2>/dev/null || return 1
        [[ $(http_code "$1") != 000 ]] && return 0
        sleep 0.1
    done
    return 1
}

# Starts `BINARY sandbox` (the Assured emulator) on a free port, accepting KEY, USER and PASS, its log in
# WORK/sandbox.log; adds it to PIDS and sets SANDBOX_PORT. Prints the log and returns 1 if it does not answer in 30 s.
start_sandbox() { # binary key user pass
    SANDBOX_PORT=$(free_port)
    SANDBOX_API_KEY=$2 SANDBOX_USER=$3 SANDBOX_PASS=$4 "$1" sandbox --host 127.0.0.1 --port "$SANDBOX_PORT" \
        >"$WORK/sandbox.log" 2>&1 &
    PIDS+=($!)
    wait_up "http://127.0.0.1:$SANDBOX_PORT/sandbox/healthz" "$!" 30 || { cat "$WORK/sandbox.log"; return 1; }
}

# The arguments of the Dockerfile's `RUN swift build ... --product credgate` line (up to the line's end, a
# backslash or `&&`), one per line, plus `--scratch-path ROOT/.build-bench`; nothing if the line is missing or
# does not link the Swift stdlib statically. scripts/shipped-build.sh builds with them (bench/lib.sh reads the
# same line for bench/run.sh).
shipped_build_args() { # root
    local line
    [[ -f $1/Dockerfile ]] || return 0
    line=$(sed -n 's/^RUN swift build \(.*--product credgate\)\([^\\&]*\).*/\1\2/p' "$1/Dockerfile" | head -1)
    [[ " $line " == *" --static-swift-stdlib "* ]] || return 0
    printf '%s\n' $line --scratch-path "$1/.build-bench"
}

# Whether BINARY links the Swift runtime statically (no libswiftCore.so among what it loads), as the image's does.
# (No `ldd | grep -q` under pipefail: grep's early exit can make the pipeline fail; see python312.)
static_swift() { [[ $(ldd "$1" 2>/dev/null) != *libswiftCore.so* ]]; }

# The binary the image ships (the Dockerfile's build, scripts/shipped-build.sh), built first if missing: its path.
shipped_binary() { # root
    "$1/scripts/shipped-build.sh" --bin-path 2>/dev/null || "$1/scripts/shipped-build.sh" | tail -1
}

# How a binary is linked, for a script's first line: the memory figures mean the image's only for its build.
linkage() { # binary
    if static_swift "$1"; then echo "static Swift stdlib, as the image's"; else echo "WARNING: dynamic Swift runtime, not the image's build"; fi
}

# A scratch directory WORK and a list PIDS: when the script exits, every process in PIDS is stopped and WORK removed.
start_work() {
    WORK=$(mktemp -d)
    PIDS=()
    trap stop_work EXIT
}
stop_work() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
