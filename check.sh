#!/bin/bash
# Build portguard and run every test (unit and integration).
#
#   ./check.sh            install the build/test packages (as root, with
#                         apt-get) if any is missing, then build and test
#   ./check.sh --no-deps  skip the package step
#
# Used by CI (.ci/run) on a fresh clone, possibly on a brand-new Debian 12
# machine, as root, without stdin. Exits non-zero on any failure.
#
# Environment:
#   PORTGUARD_CONFIGURE_ARGS  extra arguments for ./configure
#   PORTGUARD_CHECK_TIMEOUT   seconds allowed for "make check" (default 1200)
#   PORTGUARD_ALLOW_SKIP=1    do not fail on skipped tests when CI=true
#   PORTGUARD_FUZZ_SECONDS    seconds per fuzz harness (default 10)
#   PORTGUARD_TEST_PORT_BASE  test ports: the host uses base..base+999, the
#                             Dovecot 2.4 chroot run base+1000.. (default 10000)
#   PORTGUARD_DOVECOT24=no    leave out the Dovecot 2.4 chroot run (not
#                             under CI=true)
#   PORTGUARD_PKG_SMOKE=0     leave out the Debian package test
#   PORTGUARD_PKG_DEBIAN13=0  leave out its Debian 13 (chroot) part
set -euo pipefail

usage() {
	sed -n '2,21s/^# \{0,1\}//p' "$0"
}

want_deps=yes
for arg in "$@"; do
	case "$arg" in
	--no-deps) want_deps=no ;;
	-h|--help) usage; exit 0 ;;
	*) echo "check.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
	esac
done

cd "$(dirname "$0")"

# Debian's own tools first: a python3 from pyenv or similar earlier in PATH
# lacks Debian's python3-pytest; Dovecot's binaries live in /usr/sbin.
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
export PYTHON="${PYTHON:-/usr/bin/python3}"

PACKAGES=(
	build-essential autoconf automake libtool pkg-config
	libcmocka-dev libssl-dev
	dovecot-core dovecot-dev dovecot-submissiond dovecot-imapd
	swaks libnet-ssleay-perl openssl python3 python3-pytest redis-server
	redis-tools util-linux iproute2 procps
	clang libclang-rt-14-dev valgrind
)

# Headers and binaries must come from the same build: dovecot-dev does not
# depend on an exact dovecot-core version, and Debian has changed structs
# between security updates without an ABI bump.
DOVECOT_PACKAGES=(dovecot-core dovecot-dev dovecot-submissiond dovecot-imapd)

dovecot_versions() {
	dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n' \
		"${DOVECOT_PACKAGES[@]}" 2>/dev/null || true
}

# True if every installed package of DOVECOT_PACKAGES has the same version.
dovecot_versions_match() {
	local n
	n=$(dovecot_versions | awk '$3 ~ /^ii/ { print $2 }' | sort -u | wc -l)
	[ "$n" -le 1 ]
}

step() {
	echo
	echo "==> $*"
}

# Print the packages of "$@" that are not installed.
missing_packages() {
	local pkg status
	for pkg in "$@"; do
		status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
		case "$status" in
		ii*) ;;
		*) echo "$pkg" ;;
		esac
	done
}

apt_update() {
	local try
	for try in 1 2 3; do
		if apt-get -qq -o DPkg::Lock::Timeout=300 update </dev/null; then
			return 0
		fi
		echo "check.sh: apt-get update failed (attempt $try)" >&2
		sleep $((try * 5))
	done
	return 1
}

apt_install() {
	DEBIAN_FRONTEND=noninteractive apt-get -q -y \
		-o DPkg::Lock::Timeout=300 \
		-o Dpkg::Options::=--force-confdef \
		-o Dpkg::Options::=--force-confold \
		install --no-install-recommends "$@" </dev/null
}

created_policy_rc=no
cleanup_policy_rc() {
	if [ "$created_policy_rc" = yes ]; then
		rm -f /usr/sbin/policy-rc.d
		created_policy_rc=no
	fi
}

install_deps() {
	local dovecot_was_installed=yes
	local -a missing
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "check.sh: not root or no apt-get: not installing packages"
		mapfile -t missing < <(missing_packages "${PACKAGES[@]}")
		if [ "${#missing[@]}" -gt 0 ]; then
			echo "check.sh: warning: missing packages: ${missing[*]}" >&2
		fi
		return 0
	fi
	mapfile -t missing < <(missing_packages "${PACKAGES[@]}")
	if [ "${#missing[@]}" -eq 0 ] && dovecot_versions_match; then
		echo "all ${#PACKAGES[@]} packages already installed"
		return 0
	fi
	if ! dovecot_versions_match; then
		echo "Dovecot packages differ in version; upgrading them together:"
		dovecot_versions
		missing+=("${DOVECOT_PACKAGES[@]}")
	elif [[ " ${missing[*]} " == *" dovecot-"* ]]; then
		# Installing one Dovecot package upgrades the others with it.
		missing+=("${DOVECOT_PACKAGES[@]}")
	fi
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	echo "to install: ${missing[*]}"
	if [ -n "$(missing_packages dovecot-core)" ]; then
		dovecot_was_installed=no
	fi

	# Keep the package scripts from starting the system Dovecot.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\n# written by portguard check.sh\nexit 101\n' \
			>/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		created_policy_rc=yes
	fi
	trap cleanup_policy_rc EXIT
	trap 'exit 130' INT TERM

	# Refresh the lists every time something is installed: stale lists can
	# install an older dovecot-dev than the running dovecot-core.
	apt_update
	apt_install "${missing[@]}"

	# A Dovecot installed just now for the tests must not come up at the
	# next boot either.
	if [ "$dovecot_was_installed" = no ]; then
		if command -v systemctl >/dev/null 2>&1; then
			systemctl disable --quiet dovecot.service dovecot.socket \
				>/dev/null 2>&1 || true
		fi
		if command -v update-rc.d >/dev/null 2>&1; then
			update-rc.d dovecot disable >/dev/null 2>&1 || true
		fi
	fi

	cleanup_policy_rc
	trap - EXIT INT TERM

	mapfile -t missing < <(missing_packages "${PACKAGES[@]}")
	if [ "${#missing[@]}" -gt 0 ]; then
		echo "check.sh: still missing after install: ${missing[*]}" >&2
		return 1
	fi
}

show_test_logs() {
	local f
	shopt -s globstar nullglob
	for f in tests/**/*.log; do
		echo
		echo "----- $f -----"
		cat "$f" || true
	done
	shopt -u globstar nullglob
}

if [ "$want_deps" = yes ]; then
	step "packages"
	install_deps
fi

step "dovecot --version"
dovecot --version
dovecot_versions
if ! dovecot_versions_match; then
	echo "check.sh: the installed Dovecot packages differ in version; the" >&2
	echo "plugin must be built with the headers of the running Dovecot." >&2
	echo "Run ./check.sh without --no-deps (as root) or upgrade them together." >&2
	exit 1
fi

step "./autogen.sh"
./autogen.sh

step "./configure ${PORTGUARD_CONFIGURE_ARGS:-}"
# shellcheck disable=SC2086
./configure ${PORTGUARD_CONFIGURE_ARGS:-}

step "make -j2"
make -j2

# ---- begin: Dovecot 2.4 run (tests/debian13/check24.sh), in the background --
# The same sources and the whole "make check" (unit + integration, plus the
# valgrind pass) against Dovecot 2.4 in the Debian 13 chroot:
# tests/debian13/chroot.sh setup builds it with debootstrap on a new machine
# (1-2 min) and reuses it afterwards. It runs while the host tests below
# run (their ports are base..base+999, its ports base+1000..base+1999) and
# must pass; its output is shown when it is waited for, and kept in
# tests/debian13/check24.log. PORTGUARD_DOVECOT24=no leaves it out (local
# runs only: under CI=true it cannot be left out).
d24_unit=0 d24_integ=0 d24_desel=0 d24_version= d24_pid=
d24_log=tests/debian13/check24.log
d24_summary=$(mktemp)
if [ "${PORTGUARD_DOVECOT24:-yes}" = no ] && [ "${CI:-}" != true ]; then
	echo
	echo "check.sh: PORTGUARD_DOVECOT24=no: the Dovecot 2.4 run is left out" >&2
	d24_version=skipped
else
	step "Dovecot 2.4: tests/debian13/check24.sh started in the background (log: $d24_log)"
	d24_start=$(date +%s)
	PORTGUARD_TEST_PORT_BASE=$(( ${PORTGUARD_TEST_PORT_BASE:-10000} + 1000 )) \
	PORTGUARD_CHECK24_SUMMARY=$d24_summary \
		setsid tests/debian13/check24.sh >"$d24_log" 2>&1 </dev/null &
	d24_pid=$!
	trap '[ -z "$d24_pid" ] || kill -- -"$d24_pid" "$d24_pid" 2>/dev/null; rm -f "$d24_summary"' EXIT
fi
# ---- end: Dovecot 2.4 run start ----------------------------------------------

# The unit tests (make check without its integration part: the whole
# integration suite runs below against this Dovecot 2.3, with the plugins
# built with ASan + UBSan; `make check` alone runs both for developers).
step "make check (unit tests)"
rc=0
timeout "${PORTGUARD_CHECK_TIMEOUT:-1200}" make -j1 check VERBOSE=1 \
	INTEGRATION_TESTS= || rc=$?
if [ "$rc" -ne 0 ]; then
	if [ "$rc" -eq 124 ]; then
		echo "check.sh: make check timed out after ${PORTGUARD_CHECK_TIMEOUT:-1200} s" >&2
	fi
	show_test_logs
	echo
	echo "check.sh: FAILED (make check exit $rc)" >&2
	exit "$rc"
fi

# Under CI a skipped test is a failure: every package is installed, so a
# skip means a test did not run, and a green run would hide it.
skipped=$(sed -n 's/^# SKIP: *\([0-9]*\).*/\1/p' test-suite.log 2>/dev/null | head -n1)
if [ "${skipped:-0}" -gt 0 ]; then
	echo
	echo "check.sh: $skipped test(s) skipped:" >&2
	grep '^SKIP: ' test-suite.log >&2 || true
	if [ "${CI:-}" = true ] && [ "${PORTGUARD_ALLOW_SKIP:-}" != 1 ]; then
		show_test_logs
		echo "check.sh: FAILED (skipped tests under CI=true; set PORTGUARD_ALLOW_SKIP=1 to allow)" >&2
		exit 1
	fi
fi

# The unit tests again under AddressSanitizer + UBSan.
step "tests/unit/run-sanitized.sh"
rc=0
tests/unit/run-sanitized.sh || rc=$?
if [ "$rc" -ne 0 ]; then
	echo
	echo "check.sh: FAILED (unit tests under ASan/UBSan)" >&2
	exit "$rc"
fi

# ---- begin: integration suite under ASan + UBSan ----
# The whole integration suite again with the login and doveadm plugins
# built with -fsanitize=address,undefined out of tree (build-asan/): every
# submission-login through a wrapper that preloads libasan + libubsan, and
# doveadm likewise; any sanitizer report fails the test
# (tests/integration/README.md, "Sanitizers"). This is the integration
# suite's run against Dovecot 2.3 in CI (about 5 minutes). The
# valgrind run below stays (1 min 40 s): it checks leaks in the chrooted
# login process, which LeakSanitizer cannot.
step "tests/integration/run-sanitized.sh"
rc=0
timeout "${PORTGUARD_CHECK_TIMEOUT:-1200}" tests/integration/run-sanitized.sh -q \
	2>&1 | tee tests/integration/run-sanitized.log || rc=$?
if [ "$rc" -eq 0 ] && ! grep -q '^=* [0-9]* passed' tests/integration/run-sanitized.log; then
	rc=1
fi
if [ "$rc" -ne 0 ]; then
	echo
	echo "check.sh: FAILED (integration tests under ASan/UBSan, exit $rc)" >&2
	exit "$rc"
fi
# ---- end: integration suite under ASan + UBSan ----

# The TLS-rule integration tests again with every submission-login process
# under valgrind (memcheck, leaks): any report fails them.
step "valgrind: tests/integration/run.sh (test_submission, test_exempt)"
rc=0
PORTGUARD_TEST_VALGRIND=1 tests/integration/run.sh -q \
	-k "test_submission or test_exempt" || rc=$?
if [ "$rc" -ne 0 ]; then
	echo
	echo "check.sh: FAILED (integration tests under valgrind)" >&2
	exit "$rc"
fi

# libFuzzer harnesses of src/core (tests/fuzz/README.md); clang's
# libFuzzer runtime is libclang-rt-14-dev, only a Recommends of clang.
if command -v clang >/dev/null 2>&1; then
	step "tests/fuzz/run.sh ${PORTGUARD_FUZZ_SECONDS:-10}"
	rc=0
	tests/fuzz/run.sh "${PORTGUARD_FUZZ_SECONDS:-10}" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo
		echo "check.sh: FAILED (tests/fuzz/run.sh exit $rc)" >&2
		exit "$rc"
	fi
else
	echo
	echo "check.sh: clang not found: fuzzing skipped" >&2
fi


# ---- Dovecot 2.4 run: wait for it ------------------------------------------
if [ -n "$d24_pid" ]; then
	step "Dovecot 2.4: waiting for tests/debian13/check24.sh"
	rc=0
	wait "$d24_pid" || rc=$?
	d24_pid=
	cat "$d24_log"
	echo "check.sh: the Dovecot 2.4 part took $(($(date +%s) - d24_start)) s (in parallel)"
	if [ "$rc" -ne 0 ]; then
		echo
		echo "check.sh: FAILED (Dovecot 2.4: tests/debian13/check24.sh exit $rc)" >&2
		exit "$rc"
	fi
	read -r d24_unit d24_integ d24_desel d24_version < <(
		sed -n 's/^unit=\([0-9]*\) integration=\([0-9]*\) deselected=\([0-9]*\) dovecot=\(.*\)$/\1 \2 \3 \4/p' \
			"$d24_summary")
fi
rm -f "$d24_summary"

# ---- Debian package (tests/package/smoke.sh) --------------------------------
# Builds dovecot-portguard with dpkg-buildpackage, lintian (no errors),
# installs it, runs the system Dovecot on loopback high ports against it,
# purges it and leaves the system as it was; then the same for Dovecot 2.4
# inside the Debian 13 chroot (tests/debian13/chroot.sh; set up on first
# use). PORTGUARD_PKG_DEBIAN13=0 skips the chroot run,
# PORTGUARD_PKG_SMOKE=0 skips both.
pkg_passed=0
run_pkg_smoke() {
	local label=$1 log=$2 rc=0 n
	shift 2
	step "tests/package/smoke.sh $* ($label)"
	PORTGUARD_NO_DEPS=$([ "$want_deps" = no ] && echo 1 || echo 0) \
		tests/package/smoke.sh "$@" 2>&1 | tee "$log" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo
		echo "check.sh: FAILED (package smoke test, $label; build log in tests/package/out/)" >&2
		exit "$rc"
	fi
	n=$(sed -n 's/^package smoke: \([0-9]*\) passed.*/\1/p' "$log" | tail -n1)
	pkg_passed=$((pkg_passed + ${n:-0}))
}
if [ "${PORTGUARD_PKG_SMOKE:-1}" = 1 ]; then
	run_pkg_smoke "Debian 12, this host" tests/package/smoke12.log
	if [ "${PORTGUARD_PKG_DEBIAN13:-1}" = 1 ]; then
		run_pkg_smoke "Debian 13 chroot" tests/package/smoke13.log --debian13
	else
		echo
		echo "check.sh: package smoke test on Debian 13 NOT run (PORTGUARD_PKG_DEBIAN13=0)"
	fi
else
	echo
	echo "check.sh: package smoke test NOT run (PORTGUARD_PKG_SMOKE=0)"
fi
# ---- end of Debian package step -----------------------------------------------

# One closing line for CI: every cmocka case and pytest test that ran.
unit_passed=$(cat tests/unit/*.log 2>/dev/null |
	sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' |
	awk '{n += $1} END {print n + 0}')
integ_passed=$(sed -n 's/^=* \([0-9]*\) passed.*/\1/p' \
	tests/integration/run-sanitized.log 2>/dev/null | tail -n1)
echo
echo "check.sh: Dovecot $(dovecot --version): all tests passed (cmocka cases: $unit_passed, integration tests under ASan+UBSan: ${integ_passed:-0})"
if [ "$d24_version" = skipped ]; then
	echo "check.sh: Dovecot 2.4: not run (PORTGUARD_DOVECOT24=no)"
else
	echo "check.sh: Dovecot $d24_version: all tests passed (cmocka cases: $d24_unit, integration tests: $d24_integ, deselected as not applicable to 2.4: $d24_desel)"
fi
echo "check.sh: Debian package checks (Debian 12 and 13): $pkg_passed passed"
echo "tests: $((unit_passed + ${integ_passed:-0} + d24_unit + d24_integ + pkg_passed)) passed, 0 failed"
