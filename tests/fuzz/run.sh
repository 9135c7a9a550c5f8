#!/bin/bash
# Build and run the libFuzzer harnesses of src/core (tests/fuzz/fuzz-*.c).
#
#   tests/fuzz/run.sh [seconds] [harness...]
#
#   seconds   time per harness (default 20)
#   harness   ports cidr logfmt ratelimit knownuser shm (default: all)
#
# A long run, e.g. before a release or after changing a parser:
#
#   tests/fuzz/run.sh 600
#
# Needs clang with libFuzzer (Debian: clang, libclang-rt-14-dev). Builds
# into a temporary directory (or $PORTGUARD_FUZZ_DIR, kept then), fuzzes
# a copy of tests/fuzz/corpus/<harness>/ (the repository is never
# written), prints per harness the runs executed, coverage and features,
# and exits non-zero if any harness crashed or failed to build; the input
# that crashed it is kept and its path printed.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/../.." && pwd)"
seconds="${1:-20}"
shift || true
all=(ports cidr logfmt ratelimit knownuser shm)
if [ "$#" -gt 0 ]; then
	harnesses=("$@")
else
	harnesses=("${all[@]}")
fi
case "$seconds" in
''|*[!0-9]*) echo "run.sh: seconds must be a number, not '$seconds'" >&2; exit 2 ;;
esac

CC="${CC:-clang}"
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "run.sh: $CC not found (install clang and libclang-rt-14-dev)" >&2
	exit 2
fi

if [ -n "${PORTGUARD_FUZZ_DIR:-}" ]; then
	work="$PORTGUARD_FUZZ_DIR"
	mkdir -p "$work"
else
	work="$(mktemp -d "${TMPDIR:-/tmp}/portguard-fuzz.XXXXXX")"
fi
echo "run.sh: working directory $work"

failed=0
summary=()
for name in "${harnesses[@]}"; do
	src="$here/fuzz-$name.c"
	if [ ! -f "$src" ]; then
		echo "run.sh: no harness $src" >&2
		exit 2
	fi
	bin="$work/fuzz-$name"
	corpus="$work/corpus-$name"
	artifacts="$work/artifacts-$name"
	log="$work/fuzz-$name.log"
	echo
	echo "==> fuzz-$name: build"
	if ! (cd "$top" && "$CC" -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -Isrc/core src/core/*.c \
		"tests/fuzz/fuzz-$name.c" -lpthread -o "$bin"); then
		summary+=("fuzz-$name: BUILD FAILED")
		failed=1
		continue
	fi
	rm -rf "$corpus"
	mkdir -p "$corpus" "$artifacts"
	if [ -d "$here/corpus/$name" ]; then
		cp "$here/corpus/$name"/* "$corpus"/ 2>/dev/null || true
	fi

	echo "==> fuzz-$name: ${seconds}s"
	rc=0
	UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" \
		"$bin" -max_total_time="$seconds" -print_final_stats=1 \
		-timeout=30 -rss_limit_mb=2048 \
		-artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || rc=$?

	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
	# the last status line: "#N  DONE  cov: C ft: F corp: ..."
	status=$(grep -E '^#[0-9]+' "$log" | tail -n1 || true)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")
	corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$status")
	crash=$(find "$artifacts" -type f | head -n1)
	line="fuzz-$name: ${runs:-?} runs (${seconds}s budget, ${execs:-?}/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}"
	if [ "$rc" -ne 0 ] || [ -n "$crash" ]; then
		failed=1
		line="$line: FAILED (exit $rc)${crash:+, input $crash}"
		echo
		grep -E -A40 'invariant failed|ERROR: |runtime error' "$log" |
			head -n 60 || tail -n 40 "$log"
		echo "(full log: $log)"
	else
		line="$line: nothing found"
	fi
	echo "$line"
	summary+=("$line")
done

echo
echo "==> fuzz summary"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
	echo "run.sh: FAILED (files kept in $work)" >&2
	exit 1
fi
if [ -z "${PORTGUARD_FUZZ_DIR:-}" ]; then
	rm -rf "$work"
fi
