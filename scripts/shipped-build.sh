#!/usr/bin/env bash
# Builds credgate exactly as the Dockerfile builds it, and prints the binary's path (the last line of output).
#
#   scripts/shipped-build.sh              # swift build <the Dockerfile's arguments> --scratch-path .build-bench
#   scripts/shipped-build.sh --bin-path   # only print where that binary is (no build; exits 1 if it is not there)
#
# The arguments are read from the Dockerfile's `RUN swift build ... --product credgate` line (today
# `-c release --static-swift-stdlib -Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs -Xlinker --no-export-dynamic --product
# credgate`), so a flag added there is built here too. The scratch path is `.build-bench` (the one bench/run.sh
# uses): the shared `.build` keeps its ordinary debug and release builds, and CI, the container smoke test, the
# memory scripts, the network fuzzer and the benchmark all run the same bytes. The image also strips the binary;
# stripping drops symbols only (nothing that is mapped), so the scripts run it unstripped, except
# container-smoke.sh, which strips its copy as the image does.
# Incremental: after a build, a second call only checks that nothing changed (a few seconds).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

mapfile -t ARGS < <(shipped_build_args "$ROOT")
((${#ARGS[@]})) || { echo "shipped-build: cannot read the Dockerfile's 'RUN swift build ... --product credgate' line (with --static-swift-stdlib)" >&2; exit 1; }
BIN=$(cd "$ROOT" && swift build "${ARGS[@]}" --show-bin-path)/credgate

if [[ ${1:-} == --bin-path ]]; then
    [[ -x $BIN ]] || { echo "shipped-build: no binary at $BIN yet (run scripts/shipped-build.sh)" >&2; exit 1; }
    echo "$BIN"
    exit 0
fi
[[ $# == 0 ]] || { echo "usage: scripts/shipped-build.sh [--bin-path]" >&2; exit 2; }
echo "shipped-build: swift build ${ARGS[*]}" >&2
# SwiftPM does not know the link order file is an input of the link: a binary older than it is linked again.
if [[ -x $BIN && $ROOT/link/credgate.order -nt $BIN ]]; then rm -f "$BIN"; fi
(cd "$ROOT" && swift build "${ARGS[@]}") >&2
[[ -x $BIN ]] || { echo "shipped-build: the build succeeded but there is no binary at $BIN" >&2; exit 1; }
echo "$BIN"
