#!/bin/bash
# bench/fuzz.sh - run every libFuzzer target for longer than CI does.
#
#   bench/fuzz.sh HOURS [TARGET...]
#
# HOURS (may be fractional: 0.1) is the wall time of the whole run; the
# targets share it, JOBS at a time, so each gets HOURS * JOBS / NTARGETS
# hours of one CPU. Builds the targets in FUZZ_BUILD (default
# ./build-fuzz, configured with CC=clang --enable-fuzzing when it is not
# yet) and prints, per target: seconds fuzzed, executions, edges covered
# and crashes. New inputs stay in the output directory (printed at the
# end); copy the ones worth keeping into t/fuzz/corpus/TARGET/, and every
# crash input there as a regression input with its fix.
#
# Environment: JOBS (default: the number of CPUs), FUZZ_BUILD.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 HOURS [TARGET...]" >&2; exit 2; }
hours=$1
shift
src=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-$src/build-fuzz}
jobs=${JOBS:-$(nproc)}
ntargets=$#
[ "$ntargets" -gt 0 ] || ntargets=$(ls "$src/t/fuzz/corpus" | wc -l)
secs=$(awk -v h="$hours" -v j="$jobs" -v n="$ntargets" \
    'BEGIN { s = int(h * 3600 * j / n); print (s < 10 ? 10 : s) }')

if [ ! -f "$build/Makefile" ]; then
	mkdir -p "$build"
	(cd "$build" && "$src/configure" CC=clang --enable-fuzzing >/dev/null)
fi
make -C "$build" -j"$jobs" fuzz >/dev/null
echo "# $ntargets targets, $secs s each, $jobs at a time"
"$src/t/fuzz/run.sh" -j "$jobs" "$secs" "$build" "$@"
