#!/bin/bash
# Build and run every cmocka unit test again with AddressSanitizer and
# UndefinedBehaviorSanitizer (the pure core has no Dovecot dependency, so
# this needs only gcc and libcmocka-dev). Any report fails the run.
#
#   tests/unit/run-sanitized.sh            # from the top of the tree
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d /tmp/portguard-asan.XXXXXX)
trap 'rm -rf "$out"' EXIT

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

cflags=(-std=gnu99 -g -O1 -Wall -Wextra -fno-omit-frame-pointer
	-fsanitize=address,undefined -fno-sanitize-recover=undefined
	-Isrc/core)
rc=0
for src in tests/unit/test-*.c; do
	name=$(basename "$src" .c)
	if ! gcc "${cflags[@]}" src/core/*.c "$src" -lcmocka -lpthread \
		-o "$out/$name"; then
		echo "run-sanitized: $name: build failed" >&2
		rc=1
		continue
	fi
	if "$out/$name" > "$out/$name.log" 2>&1; then
		echo "PASS (asan+ubsan): $name"
	else
		echo "FAIL (asan+ubsan): $name" >&2
		cat "$out/$name.log" >&2
		rc=1
	fi
done
exit $rc
