#!/bin/bash
# The whole integration suite with the login and doveadm plugins built with
# -fsanitize=address,undefined (gcc). Any sanitizer report fails the test
# that stopped the instance (tests/integration/README.md, "Sanitizers").
#
#   tests/integration/run-sanitized.sh [pytest args]   # after ./configure
#
# The sanitized build is out of tree: `make distdir` copies the sources
# into build-asan/src (the top of the tree is configured in place, so a
# VPATH build of it is refused), configured and built in build-asan/obj.
# Then tests/integration/run.sh runs with PORTGUARD_TEST_SANITIZE=1 and
# PORTGUARD_PLUGIN_DIR=build-asan/obj/.libs; the settings module comes from
# the normal build (doveconf and the config process load it unwrapped).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
builddir=${PORTGUARD_BUILDDIR:-$top}
out=$top/build-asan
cflags="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

if [ ! -f "$builddir/Makefile" ]; then
	echo "run-sanitized.sh: $builddir is not configured (run ./configure)" >&2
	exit 99
fi
for lib in libasan.so libubsan.so; do
	case $(gcc -print-file-name=$lib) in
	/*) ;;
	*) echo "run-sanitized.sh: gcc has no $lib" >&2; exit 99 ;;
	esac
done

rm -rf "$out"
mkdir -p "$out/obj"
make -s -C "$builddir" distdir distdir="$out/src" >/dev/null
(
	cd "$out/obj"
	# shellcheck disable=SC2086
	../src/configure -q ${PORTGUARD_CONFIGURE_ARGS:-} \
		CFLAGS="$cflags" LDFLAGS="-fsanitize=address,undefined"
	make -s -j2 lib20_portguard_plugin.la lib10_doveadm_portguard_plugin.la
) || { echo "run-sanitized.sh: sanitized build failed" >&2; exit 99; }

export PORTGUARD_TEST_SANITIZE=1
export PORTGUARD_PLUGIN_DIR="$out/obj/.libs"
exec "$top/tests/integration/run.sh" "$@"
