#!/bin/bash
# t/fuzz/run.sh - run the libFuzzer targets: each over its seed corpus
# (t/fuzz/corpus/TARGET/: every seed and regression input must pass), then
# on fresh input for SECONDS, JOBS targets at a time. New inputs go to a
# scratch corpus, never into the source tree. Prints one line per target:
# seconds fuzzed, executions, edges covered (libFuzzer's "cov"), crashes;
# a crash leaves its input in OUT/crash-TARGET-* and the exit status is 1.
#
#   t/fuzz/run.sh [-j JOBS] [-o OUT] SECONDS BUILDDIR [TARGET...]
#
# BUILDDIR is a build configured with CC=clang --enable-fuzzing in which
# `make fuzz` was run. Used by .ci/run (fuzz stage) and bench/fuzz.sh.
set -u
jobs=2
out=
while getopts j:o: opt; do
	case $opt in
	j) jobs=$OPTARG ;;
	o) out=$OPTARG ;;
	*) echo "usage: $0 [-j JOBS] [-o OUT] SECONDS BUILDDIR [TARGET...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || { echo "usage: $0 [-j JOBS] [-o OUT] SECONDS BUILDDIR [TARGET...]" >&2; exit 2; }
secs=$1 build=$(cd "$2" && pwd) || exit 2
shift 2
src=$(cd "$(dirname "$0")" && pwd)
[ -n "$out" ] || out=$(mktemp -d /tmp/mxfuzz.XXXXXX)
mkdir -p "$out"
if [ $# -eq 0 ]; then
	set -- $(cd "$src/corpus" && ls)
fi

# one - fuzz target $1; its log in $out/$1.log, its verdict in $out/$1.rc
one() {
	local t=$1 bin="$build/fuzz_$1" dict=() work="$out/work-$1"
	[ -x "$bin" ] || { echo "no $bin: run make fuzz in $build" > "$out/$t.log"; echo 2 > "$out/$t.rc"; return; }
	[ -d "$src/corpus/$t" ] || { echo "no corpus $src/corpus/$t" > "$out/$t.log"; echo 2 > "$out/$t.rc"; return; }
	[ -f "$src/dict/$t.dict" ] && dict=(-dict="$src/dict/$t.dict")
	mkdir -p "$work"
	# -max_len: room for lines over 998 octets and whole spool files
	LSAN_OPTIONS="suppressions=$src/lsan.supp:print_suppressions=0" \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    "$bin" "${dict[@]}" -max_total_time="$secs" -max_len=16384 -timeout=30 \
	    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/crash-$t-" \
	    "$work" "$src/corpus/$t" > "$out/$t.log" 2>&1
	echo $? > "$out/$t.rc"
}

running=0
for t in "$@"; do
	one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

status=0
printf '%-16s %8s %12s %8s %8s\n' target seconds executions edges crashes
for t in "$@"; do
	rc=$(cat "$out/$t.rc" 2>/dev/null || echo 2)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log" | tail -1)
	edges=$(grep -o 'cov: [0-9]*' "$out/$t.log" | tail -1 | sed 's/cov: //')
	crashes=$(ls "$out"/crash-"$t"-* 2>/dev/null | wc -l)
	printf '%-16s %8s %12s %8s %8s\n' "$t" "$secs" "${execs:-?}" "${edges:-?}" "$crashes"
	if [ "$rc" != 0 ]; then
		status=1
		echo "== fuzz_$t failed (exit $rc); end of its log:"
		tail -40 "$out/$t.log"
		for f in "$out"/crash-"$t"-*; do
			[ -f "$f" ] || continue
			echo "== input $f (base64):"
			base64 "$f" | head -20
		done
	fi
done
echo "logs and scratch corpora in $out"
exit $status
