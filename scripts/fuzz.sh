#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ and runs each for a bounded time on a copy of its seed corpus
# (Fuzz/Corpus/<target>/, which is never modified). Exits non-zero if any target finds a crash (a trap, a
# fuzz invariant, an AddressSanitizer report), a leak, a timeout or runs out of memory, naming the target and
# the input that did it.
#
#   scripts/fuzz.sh                      every target, FUZZ_SECONDS (30) each
#   FUZZ_SECONDS=300 scripts/fuzz.sh FuzzUpload FuzzRequestHead
#   scripts/fuzz.sh --build-only
#
# Environment:
#   FUZZ_SECONDS   seconds per target (default 30)
#   FUZZ_JOBS      targets run at once (default: the number of cores; each libFuzzer run uses one)
#   FUZZ_RSS_MB    libFuzzer's -rss_limit_mb (default 2048)
#   FUZZ_TIMEOUT   libFuzzer's -timeout, seconds for one input (default 10)
#   FUZZ_CONFIG    debug or release (default debug: see "Why debug" below)
#   FUZZ_SANITIZE  swiftc -sanitize= value (default fuzzer,address)
#   FUZZ_SCRATCH   build folder (default .build-fuzz, git-ignored)
#   FUZZ_OUT       where corpus copies, logs and crash inputs go (default $FUZZ_SCRATCH/runs/<date-time>)
#
# A crash input reproduces with: $FUZZ_SCRATCH/<config>/<Target> <input>; minimise it with
# -minimize_crash=1 -runs=10000, and keep it under Fuzz/Crashes/ (see Fuzz/README.md).
#
# Why debug: it keeps Swift's overflow and bounds traps and builds faster than release on 2 cores, and SwiftPM
# debug builds are testable, which the request-head and presign targets need (@testable import).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
START=$(date +%s)
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
FUZZ_JOBS=${FUZZ_JOBS:-$(nproc)}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_CONFIG=${FUZZ_CONFIG:-debug}
FUZZ_SANITIZE=${FUZZ_SANITIZE:-fuzzer,address}
FUZZ_SCRATCH=${FUZZ_SCRATCH:-$ROOT/.build-fuzz}
FUZZ_OUT=${FUZZ_OUT:-$FUZZ_SCRATCH/runs/$(date +%Y%m%d-%H%M%S)}

elapsed() { local s=$(($(date +%s) - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

build_only=0
targets=()
for arg in "$@"; do
    case $arg in
    --build-only) build_only=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $arg" >&2; exit 2 ;;
    *) targets+=("$arg") ;;
    esac
done
# The targets: every folder under Fuzz/Sources/ with a main.swift (Fuzz/Package.swift lists the same names).
if ((${#targets[@]} == 0)); then
    for main in Fuzz/Sources/*/main.swift; do
        targets+=("$(basename "$(dirname "$main")")")
    done
fi
((${#targets[@]})) || { echo "fuzz.sh: no targets found in Fuzz/Package.swift" >&2; exit 2; }

# libFuzzer's runtime comes with the Swift toolchain (lib/clang/<version>/lib/linux/); -sanitize=fuzzer
# links it from there and nowhere else, so a toolchain without it cannot build these targets.
swiftc_path=$(readlink -f "$(command -v swiftc)")
toolchain_lib=$(dirname "$(dirname "$swiftc_path")")/lib
if ! compgen -G "$toolchain_lib/clang/*/lib/linux/libclang_rt.fuzzer-$(uname -m).a" >/dev/null; then
    echo "fuzz.sh: this Swift toolchain ($swiftc_path) has no libFuzzer runtime" \
        "($toolchain_lib/clang/*/lib/linux/libclang_rt.fuzzer-$(uname -m).a); use a swift.org toolchain" >&2
    exit 2
fi

# ------------------------------------------------------------------------------------------------ build
echo "==> building ${#targets[@]} fuzz targets ($FUZZ_CONFIG, -sanitize=$FUZZ_SANITIZE) in $FUZZ_SCRATCH"
build_start=$(date +%s)
# Every target is built, even when only some are run: they share all but one file, and linking is quick.
build=(swift build --package-path Fuzz --scratch-path "$FUZZ_SCRATCH" -c "$FUZZ_CONFIG" -Xswiftc "-sanitize=$FUZZ_SANITIZE")
[[ $FUZZ_CONFIG == release ]] && build+=(-Xswiftc -enable-testing) # @testable import CredGate
echo "\$ ${build[*]}"
mkdir -p "$FUZZ_SCRATCH"
# SwiftPM keeps the build plan of a path dependency (the root package) across builds and does not notice a source
# file added or removed there ("cannot find X in scope", "missing inputs"). When the list of credgate's source
# files changed since the last build here, the plan is dropped so that it is made anew (about a minute).
sources_list=$(cd "$ROOT" && find Sources -name '*.swift' | LC_ALL=C sort | sha256sum | cut -d' ' -f1)
if [[ -f $FUZZ_SCRATCH/sources.sha256 && $(cat "$FUZZ_SCRATCH/sources.sha256") != "$sources_list" ]]; then
    echo "fuzz.sh: credgate's source files changed since the last fuzz build: its build plan is made anew"
    rm -f "$FUZZ_SCRATCH/$FUZZ_CONFIG.yaml" "$FUZZ_SCRATCH"/*/"$FUZZ_CONFIG"/description.json
fi
echo "$sources_list" >"$FUZZ_SCRATCH/sources.sha256"
# The output goes to a log: a sanitizer build prints thousands of linker warnings about ASan's own symbols.
if ! "${build[@]}" >"$FUZZ_SCRATCH/build.log" 2>&1; then
    grep -E 'error:' "$FUZZ_SCRATCH/build.log" | sort -u | head -40 || true
    tail -20 "$FUZZ_SCRATCH/build.log"
    echo "fuzz.sh: FAILED: the build (log: $FUZZ_SCRATCH/build.log), after $(elapsed "$build_start")"
    exit 1
fi
build_time=$(elapsed "$build_start")
echo "fuzz.sh: built in $build_time"
((build_only)) && exit 0
bin=$FUZZ_SCRATCH/$FUZZ_CONFIG

# ------------------------------------------------------------------------------------------------ runs
mkdir -p "$FUZZ_OUT"
echo "==> running each target for ${FUZZ_SECONDS}s, $FUZZ_JOBS at a time (corpus copies, logs, artifacts: $FUZZ_OUT)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:handle_abort=1}
# libFuzzer and AddressSanitizer print the stack; Swift's own backtracer would take tens of seconds more per
# crash on these binaries.
export SWIFT_BACKTRACE=enable=no
runs_start=$(date +%s)

# Runs one target; its status is libFuzzer's (0: nothing found).
run_target() { # target
    local target=$1 corpus=$FUZZ_OUT/corpus/$1 artifacts=$FUZZ_OUT/artifacts/$1/
    mkdir -p "$corpus" "$artifacts"
    cp -R "Fuzz/Corpus/$target/." "$corpus/" 2>/dev/null || true
    # timeout: a hung libFuzzer (not an input: it has its own -timeout) must not stall CI.
    timeout --kill-after=10 $((FUZZ_SECONDS + 60)) "$bin/$target" \
        -max_total_time="$FUZZ_SECONDS" -rss_limit_mb="$FUZZ_RSS_MB" -timeout="$FUZZ_TIMEOUT" \
        -artifact_prefix="$artifacts" -print_final_stats=1 "$corpus" >"$FUZZ_OUT/$target.log" 2>&1
}

# Prints one line per finished target, and on a failure where its log and input are.
report() { # target status
    local target=$1 status=$2 log=$FUZZ_OUT/$1.log
    local stats
    stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 | sed -E 's/^#[0-9]+[[:space:]]+DONE +//; s/ *lim:.*//' || true)
    local runs
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if ((status == 0)); then
        printf '  %-18s ok      %s runs  %s\n' "$target" "${runs:-?}" "${stats:-}"
        return 0
    fi
    local artifact
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    printf '  %-18s FAILED  (exit %s)\n' "$target" "$status"
    grep -E 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|Fatal error|fuzz invariant failed|SUMMARY:' "$log" |
        head -5 | sed 's/^/      /' || true
    echo "      log:      $log"
    if [[ -n $artifact ]]; then
        echo "      input:    $artifact"
        echo "      replay:   $bin/$target $artifact"
    elif ((status == 124 || status == 137)); then
        echo "      libFuzzer itself did not stop within ${FUZZ_SECONDS}s + 60s"
    fi
    return 1
}

declare -A running=()
failed=()
finish_one() {
    local pid status=0
    wait -n -p pid "${!running[@]}" || status=$?
    local target=${running[$pid]}
    unset "running[$pid]"
    report "$target" "$status" || failed+=("$target")
}
for target in "${targets[@]}"; do
    ((${#running[@]} >= FUZZ_JOBS)) && finish_one
    run_target "$target" &
    running[$!]=$target
done
while ((${#running[@]})); do finish_one; done

runs_time=$(elapsed "$runs_start")
echo
if ((${#failed[@]})); then
    echo "fuzz.sh: FAILED: ${failed[*]} (build $build_time, runs $runs_time, total $(elapsed "$START"))"
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, ${FUZZ_SECONDS}s each, nothing found (build $build_time, runs $runs_time, total $(elapsed "$START"))"
