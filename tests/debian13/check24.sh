#!/bin/bash
# Build portguard against Dovecot 2.4 and run its whole test suite (unit and
# integration: make check) inside the Debian 13 chroot (chroot.sh).
#
#   tests/debian13/check24.sh [--keep]
#
# Steps: `chroot.sh setup` (cached: a second run reuses the chroot), a clean
# copy of the source tree (git's tracked and untracked-not-ignored files) in
# a staging directory, then inside the chroot: autogen.sh, configure, make,
# make check, and (as ./check.sh on the host) test_submission + test_exempt
# again with submission-login under valgrind (PORTGUARD_CHECK24_VALGRIND=no
# leaves that out).  The host's own build in the source tree is never touched (its
# objects and config.status are not copied), so ./check.sh can build for
# Dovecot 2.3 in place and for 2.4 here one after the other.
#
# The staging directory (${TMPDIR:-/var/tmp}/portguard-check24.XXXXXX) is
# deleted afterwards unless the run failed or --keep is given.  On success
# the last line is "check24: passed (cmocka cases: N, integration tests: M)".
# Needs root.  Environment: PORTGUARD_CONFIGURE_ARGS, PORTGUARD_CHECK_TIMEOUT
# (default 1200), PORTGUARD_TEST_PORT_BASE, CI, PORTGUARD_ALLOW_SKIP as for
# ./check.sh; PORTGUARD_CHECK24_SUMMARY=FILE also writes the counts to FILE
# ("unit=N integration=M deselected=D dovecot=VERSION").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
keep=no
for arg in "$@"; do
	case "$arg" in
	--keep) keep=yes ;;
	-h|--help) sed -n '2,25s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "check24.sh: unknown argument '$arg'" >&2; exit 2 ;;
	esac
done

if [ "$(id -u)" -ne 0 ]; then
	echo "check24.sh: needs root (chroot, mount namespaces)" >&2
	exit 1
fi

step() {
	echo
	echo "==> [2.4] $*"
}

step "tests/debian13/chroot.sh setup"
"$here/chroot.sh" setup

stage=$(mktemp -d "${TMPDIR:-/var/tmp}/portguard-check24.XXXXXX")
chmod 755 "$stage"
finish() {
	local rc=$?
	if [ "$rc" -eq 0 ] && [ "$keep" = no ]; then
		rm -rf "$stage"
	else
		echo "check24.sh: build and logs kept in $stage" >&2
	fi
	exit "$rc"
}
trap finish EXIT

step "copy the source tree to $stage/src"
mkdir "$stage/src"
if git -C "$srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# shellcheck disable=SC2016
	(cd "$srcdir" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 -r sh -c 'for f; do if [ -e "$f" ]; then printf "%s\0" "$f"; fi; done' sh |
		tar --null -T - -cf -) | tar -C "$stage/src" -xf -
else
	# no git: everything, then make distclean drops the host's build
	cp -a "$srcdir"/. "$stage/src"/
	if [ -f "$stage/src/Makefile" ]; then
		make -C "$stage/src" -s distclean >/dev/null 2>&1 || true
	fi
fi

# What runs inside the chroot (bash -c): $stage is bind-mounted at the same
# path.
# shellcheck disable=SC2016
inner='
set -euo pipefail
cd "$1/src"
step() { echo; echo "==> [2.4] $*"; }
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
step "dovecot --version (Debian 13 chroot)"
dovecot --version
dpkg-query -W -f="\${Package} \${Version}\n" dovecot-core dovecot-dev \
	dovecot-submissiond dovecot-imapd
step "./autogen.sh"
./autogen.sh
step "./configure ${PORTGUARD_CONFIGURE_ARGS:-}"
./configure ${PORTGUARD_CONFIGURE_ARGS:-}
step "make -j2"
make -j2
step "make check"
rc=0
timeout "${PORTGUARD_CHECK_TIMEOUT:-1200}" make -j1 check VERBOSE=1 || rc=$?
[ "$rc" -eq 0 ] || exit "$rc"
if [ "${PORTGUARD_CHECK24_VALGRIND:-yes}" != no ]; then
	# as ./check.sh does on the host: every submission-login process of
	# the TLS-rule tests under valgrind (memcheck, leaks)
	step "valgrind: tests/integration/run.sh (test_submission, test_exempt)"
	PORTGUARD_TEST_VALGRIND=1 tests/integration/run.sh -q \
		-k "test_submission or test_exempt" || exit 3
fi
'

rc=0
"$here/chroot.sh" run --bind "$stage" \
	bash -c "$inner" check24 "$stage" || rc=$?

src=$stage/src
show_logs() {
	local f
	shopt -s globstar nullglob
	for f in "$src"/tests/**/*.log; do
		echo
		echo "----- [2.4] ${f#"$src"/} -----"
		cat "$f" || true
	done
	shopt -u globstar nullglob
}

if [ "$rc" -ne 0 ]; then
	if [ "$rc" -eq 124 ]; then
		echo "check24.sh: make check timed out after ${PORTGUARD_CHECK_TIMEOUT:-1200} s" >&2
	fi
	show_logs
	echo
	echo "check24.sh: FAILED on Dovecot 2.4 (exit $rc)" >&2
	exit "$rc"
fi

# Same rule as ./check.sh: under CI a skipped test is a failure.
skipped=$(sed -n 's/^# SKIP: *\([0-9]*\).*/\1/p' "$src/test-suite.log" 2>/dev/null | head -n1)
if [ "${skipped:-0}" -gt 0 ]; then
	echo
	echo "check24.sh: $skipped test(s) skipped on Dovecot 2.4:" >&2
	grep '^SKIP: ' "$src/test-suite.log" >&2 || true
	if [ "${CI:-}" = true ] && [ "${PORTGUARD_ALLOW_SKIP:-}" != 1 ]; then
		show_logs
		echo "check24.sh: FAILED (skipped tests under CI=true; set PORTGUARD_ALLOW_SKIP=1 to allow)" >&2
		exit 1
	fi
fi

unit=$(cat "$src"/tests/unit/*.log 2>/dev/null |
	sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' |
	awk '{n += $1} END {print n + 0}')
integ=$(sed -n 's/^=* \([0-9]*\) passed.*/\1/p' \
	"$src/tests/integration/run.sh.log" 2>/dev/null | tail -n1)
desel=$(sed -n 's/^=* .*[ ,]\([0-9]*\) deselected.*/\1/p' \
	"$src/tests/integration/run.sh.log" 2>/dev/null | tail -n1)
version=$(sed -n 's/^dovecot --version: //p' \
	"$src/tests/integration/run.sh.log" 2>/dev/null | head -n1)
if [ -n "${PORTGUARD_CHECK24_SUMMARY:-}" ]; then
	echo "unit=$unit integration=${integ:-0} deselected=${desel:-0} dovecot=${version:-?}" \
		>"$PORTGUARD_CHECK24_SUMMARY"
fi
echo
echo "check24: passed on Dovecot ${version:-2.4} (cmocka cases: $unit, integration tests: ${integ:-0}, deselected as not applicable to 2.4: ${desel:-0})"
