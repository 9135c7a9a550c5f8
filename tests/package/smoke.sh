#!/bin/bash
# Smoke test of the Debian package dovecot-portguard on this system.
#
#   tests/package/smoke.sh [--deb FILE] [--build-only]
#   tests/package/smoke.sh --debian13 [--build-only]
#
# 1. builds the package from this tree (dpkg-buildpackage -us -uc -b on a
#    clean export, then lintian, which must report no error), unless --deb
#    names a .deb; build output in tests/package/out/<codename>/;
# 2. installs it with apt-get (dpkg -i as a fallback) and checks its files,
#    its conffile and that the stock /etc/dovecot configuration still
#    validates with the snippet as shipped (plugin not enabled);
# 3. starts the system Dovecot (/usr/sbin/dovecot, /etc/dovecot/dovecot.conf)
#    with one extra file, /etc/dovecot/conf.d/99-portguard-smoke.conf:
#    submission only, on 127.0.0.1 and high ports (PORTGUARD_TEST_PORT_BASE
#    + 465/466/587, default base 34000; 466 is a listener without ssl in
#    portguard_implicit_tls_ports), a self-signed certificate, a
#    passwd-file user, cleartext AUTH allowed by Dovecot, relay to a Python
#    SMTP sink (base + 25);
# 4. runs tests/package/smoke_client.py from 127.0.0.2: first with the
#    snippet as shipped (Dovecot's own behaviour: AUTH before STARTTLS is
#    accepted), then with the snippet's block enabled (530 before STARTTLS,
#    235 after, a tls_established line, 421 for cleartext on the
#    implicit-TLS port, doveadm portguard list);
# 5. stops Dovecot, purges the package, removes the test file, and shows
#    that doveconf -n still validates and Dovecot still starts and stops
#    (ports-only override, so no service reaches 25/465/587);
# 6. leaves the system as it found it: refuses to run if the system Dovecot
#    is running, if dovecot-portguard is installed or if its test files
#    exist; restores module files that a "make install" had put there;
#    removes everything it created (a policy-rc.d keeps package scripts
#    from starting services; the system Dovecot's boot setting is not
#    touched).
#
# --debian13 runs the same inside the Debian 13 chroot
# (tests/debian13/chroot.sh, a throwaway overlay; it always builds there),
# plus one step only a throwaway system gets: the package reinstalled and
# enabled, dovecot-submissiond removed, and doveconf -n and a Dovecot
# start still fine (the package only Recommends it). Needs root. Missing
# build packages are installed with apt-get unless PORTGUARD_NO_DEPS=1.
# Ends with "package smoke: N passed, N failed"; exit 0 only if all passed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
python=/usr/bin/python3

deb=
build_only=no
debian13=no
while [ $# -gt 0 ]; do
	case "$1" in
	--deb) deb=$(readlink -f "$2"); shift 2 ;;
	--build-only) build_only=yes; shift ;;
	--debian13) debian13=yes; shift ;;
	-h|--help) sed -n '2,/^set -e/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
	*) echo "smoke.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done

if [ "$(id -u)" -ne 0 ]; then
	echo "smoke.sh: needs root (installs a package, starts Dovecot)" >&2
	exit 1
fi

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
step() { echo; echo "==> $*"; }
summary() {
	echo
	echo "package smoke: $passed passed, $failed failed"
}

# A clean copy of the source: what git knows (committed or not, minus
# ignored build products), so that no object of another build leaks in.
export_source() {
	local dest=$1
	mkdir -p "$dest"
	if command -v git >/dev/null && git -C "$srcdir" rev-parse >/dev/null 2>&1; then
		(cd "$srcdir" &&
			git ls-files -z --cached --others --exclude-standard |
			xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
			tar --null -T - -cf -) | tar -xf - -C "$dest"
	else
		tar -C "$srcdir" --exclude=.git --exclude='build*' \
			--exclude=autom4te.cache --exclude='*.o' --exclude='*.lo' \
			--exclude='*.la' --exclude=.libs --exclude=.deps \
			--exclude=Makefile --exclude=config.status \
			--exclude=tests/package/out -cf - . | tar -xf - -C "$dest"
	fi
}

if [ "$debian13" = yes ]; then
	# The export happens here (the chroot has no git); the chroot builds
	# from it and installs the .deb in its throwaway overlay.
	work=$(mktemp -d /var/tmp/portguard-pkg13.XXXXXX)
	trap 'rm -rf "$work"' EXIT
	export_source "$work/src"
	rm -rf "$work/src/tests/package/out"
	mkdir -p "$srcdir/tests/package/out"
	args=()
	[ "$build_only" = yes ] && args+=(--build-only)
	rc=0
	"$srcdir/tests/debian13/chroot.sh" run --bind "$work" \
		--bind "$srcdir/tests/package/out" \
		env PORTGUARD_TEST_PORT_BASE="${PORTGUARD_TEST_PORT_BASE:-34000}" \
		PORTGUARD_PKG_THROWAWAY=1 \
		PORTGUARD_PKG_OUT="$srcdir/tests/package/out" \
		bash "$work/src/tests/package/smoke.sh" "${args[@]}" || rc=$?
	exit "$rc"
fi

. /etc/os-release
codename=${VERSION_CODENAME:-unknown}
out=${PORTGUARD_PKG_OUT:-$srcdir/tests/package/out}/$codename
base=${PORTGUARD_TEST_PORT_BASE:-34000}
port_starttls=$((base + 587))
port_implicit=$((base + 465))
port_implicit_plain=$((base + 466))
port_sink=$((base + 25))
conf_smoke=/etc/dovecot/conf.d/99-portguard-smoke.conf
conf_snippet=/etc/dovecot/conf.d/95-portguard.conf
modules=(
	/usr/lib/dovecot/modules/login/lib20_portguard_plugin.so
	/usr/lib/dovecot/modules/settings/libportguard_settings.so
	/usr/lib/dovecot/modules/doveadm/lib10_doveadm_portguard_plugin.so
)
# the default place (base_dir) and the one before 0.3.0 (state_dir)
state_files=(/run/dovecot/portguard.state /var/lib/dovecot/portguard.state)

dovecot_major=$(dovecot --version | sed -n 's/^\([0-9]*\.[0-9]*\).*/\1/p')
echo "smoke.sh: Debian $codename ($(cat /etc/debian_version)), Dovecot $(dovecot --version)"

master_pid() {
	local pid
	pid=$(cat /run/dovecot/master.pid 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		echo "$pid"
	fi
}

pkg_installed() {
	case "$(dpkg-query -W -f='${db:Status-Abbrev}' dovecot-portguard 2>/dev/null || true)" in
	ii*|iU*|iF*|iH*|rc*|rU*|rF*|rH*) return 0 ;;
	*) return 1 ;;
	esac
}

# ---- 1. build ------------------------------------------------------------
build_tools=(debhelper dh-autoreconf lintian fakeroot dpkg-dev
	dovecot-dev libssl-dev pkg-config libcmocka-dev)

install_build_tools() {
	local pkg missing=()
	for pkg in "${build_tools[@]}"; do
		case "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)" in
		ii*) ;;
		*) missing+=("$pkg") ;;
		esac
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	if [ "${PORTGUARD_NO_DEPS:-0}" = 1 ]; then
		echo "smoke.sh: missing build packages: ${missing[*]} (PORTGUARD_NO_DEPS=1)" >&2
		exit 1
	fi
	echo "installing: ${missing[*]}"
	apt-get -qq -o DPkg::Lock::Timeout=300 update </dev/null
	DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 \
		install --no-install-recommends "${missing[@]}" </dev/null
}

if [ -z "$deb" ]; then
	step "build: dpkg-buildpackage -us -uc -b (output in $out)"
	install_build_tools
	bwork=$(mktemp -d /var/tmp/portguard-pkgbuild.XXXXXX)
	export_source "$bwork/src"
	rm -rf "$bwork/src/tests/package/out"
	rc=0
	(cd "$bwork/src" && dpkg-buildpackage -us -uc -b) >"$bwork/build.log" 2>&1 || rc=$?
	rm -rf "$out"
	mkdir -p "$out"
	cp "$bwork/build.log" "$out/"
	if [ "$rc" -ne 0 ]; then
		tail -n 60 "$bwork/build.log"
		bad "dpkg-buildpackage (exit $rc, log: $out/build.log)"
		rm -rf "$bwork"
		summary
		exit 1
	fi
	grep -E '^(PASS|FAIL|# (TOTAL|PASS|FAIL)):?' "$bwork/build.log" || true
	cp "$bwork"/*.deb "$bwork"/*.changes "$bwork"/*.buildinfo "$out/"
	rm -rf "$bwork"
	ok "dpkg-buildpackage -us -uc -b: $(cd "$out" && echo *.deb)"
	deb=$(ls "$out"/dovecot-portguard_*.deb)

	step "lintian $(basename "$out"/*.changes)"
	rc=0
	lintian --allow-root -I "$out"/*.changes 2>&1 | tee "$out/lintian.log" || rc=$?
	if [ "$rc" -eq 0 ] && ! grep -q '^E: ' "$out/lintian.log"; then
		ok "lintian: no errors ($(grep -c '^W: ' "$out/lintian.log" || true) warnings)"
	else
		bad "lintian reported errors (exit $rc)"
	fi
	dpkg-deb -I "$deb" | sed -n '/^ Depends:/p; /^ Recommends:/p'
	if [ "$build_only" = yes ]; then
		summary
		[ "$failed" -eq 0 ]
		exit
	fi
fi
[ -f "$deb" ] || { echo "smoke.sh: no package file '$deb'" >&2; exit 1; }

# ---- preflight: never disturb what is there --------------------------------
step "preflight"
if [ -n "$(master_pid)" ]; then
	echo "smoke.sh: the system Dovecot is running (pid $(master_pid)): not touching it" >&2
	exit 1
fi
if pkg_installed; then
	echo "smoke.sh: dovecot-portguard is already installed: not touching it" >&2
	exit 1
fi
for f in "$conf_smoke" "$conf_snippet"; do
	if [ -e "$f" ]; then
		echo "smoke.sh: $f exists: not touching it" >&2
		exit 1
	fi
done
for f in "${state_files[@]}"; do
	if [ -e "$f" ]; then
		echo "smoke.sh: $f exists (a portguard in use?): not touching it" >&2
		exit 1
	fi
done
if ! doveconf -n >/dev/null; then
	echo "smoke.sh: doveconf -n fails before the package is installed: fix that first" >&2
	exit 1
fi
for p in "$port_starttls" "$port_implicit" "$port_implicit_plain" "$port_sink"; do
	if ss -Hltn "sport = :$p" | grep -q .; then
		echo "smoke.sh: port $p is in use (set PORTGUARD_TEST_PORT_BASE)" >&2
		exit 1
	fi
done

# How the system Dovecot comes up at boot (sysv links, systemd state):
# compared at the end.
boot_state() {
	ls -l /etc/rc?.d/ 2>/dev/null | grep -i dovecot | awk '{print $9, $11}' || true
	if [ -d /run/systemd/system ]; then
		systemctl is-enabled dovecot.service dovecot.socket 2>&1 || true
	fi
}
boot_before=$(boot_state)

work=$(mktemp -d /var/tmp/portguard-smoke.XXXXXX)
chmod 755 "$work"
backup=$work/backup
mkdir -p "$backup"
created_policy_rc=no
stock_cert_created=()
sink_pid=
started_dovecot=no
login_dir_existed=no
[ -d /usr/lib/dovecot/modules/login ] && login_dir_existed=yes

# Module files of a "make install": kept aside, put back at the end.
for f in "${modules[@]}"; do
	if [ -e "$f" ]; then
		mkdir -p "$backup$(dirname "$f")"
		cp -a "$f" "$backup$f"
		echo "kept aside: $f (not from this package)"
	fi
done

stop_dovecot() {
	local pid i
	pid=$(master_pid)
	[ -n "$pid" ] || return 0
	dovecot stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	echo "smoke.sh: Dovecot (pid $pid) did not stop" >&2
	return 1
}

cleanup() {
	local rc=$? f
	set +e
	if [ "$started_dovecot" = yes ]; then
		stop_dovecot
	fi
	if [ -n "$sink_pid" ]; then
		kill "$sink_pid" 2>/dev/null
		wait "$sink_pid" 2>/dev/null
	fi
	rm -f "$conf_smoke"
	for f in "${stock_cert_created[@]}"; do
		rm -f "$f"
	done
	if pkg_installed; then
		dpkg --purge dovecot-portguard >/dev/null 2>&1
	fi
	rm -f "$conf_snippet"
	for f in "${state_files[@]}"; do
		rm -f "$f" "$f".*
	done
	for f in "${modules[@]}"; do
		if [ -e "$backup$f" ]; then
			mkdir -p "$(dirname "$f")"
			cp -a "$backup$f" "$f"
		fi
	done
	if [ "$login_dir_existed" = no ]; then
		rmdir /usr/lib/dovecot/modules/login 2>/dev/null
	fi
	if [ "$created_policy_rc" = yes ]; then
		rm -f /usr/sbin/policy-rc.d
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Package scripts must not start or reload a system service here.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\n# written by portguard tests/package/smoke.sh\nexit 101\n' \
		>/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	created_policy_rc=yes
fi

# ---- 2. install ------------------------------------------------------------
step "install $(basename "$deb")"
if DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends \
	-o DPkg::Lock::Timeout=300 install "$deb" </dev/null; then
	ok "apt-get install $(basename "$deb")"
else
	echo "apt-get failed; trying dpkg -i"
	if dpkg -i "$deb"; then
		ok "dpkg -i $(basename "$deb")"
	else
		bad "installing $(basename "$deb")"
		summary
		exit 1
	fi
fi
for f in "${modules[@]}" "$conf_snippet"; do
	if dpkg -S "$f" 2>/dev/null | grep -q '^dovecot-portguard:' && [ -f "$f" ]; then
		ok "installed $f"
	else
		bad "not installed by the package: $f"
	fi
done
if dpkg-query -W -f='${Conffiles}\n' dovecot-portguard | grep -q " $conf_snippet "; then
	ok "$conf_snippet is a conffile"
else
	bad "$conf_snippet is not a conffile"
fi
if grep -q '^# >>> portguard' "$conf_snippet" &&
	! grep -Eq '^[[:space:]]*[^#[:space:]]' "$conf_snippet"; then
	ok "the snippet ships with no active line"
else
	bad "the snippet has active lines or no enable markers"
fi
if out_n=$(doveconf -n 2>&1); then
	ok "doveconf -n validates with the package installed (snippet as shipped)"
else
	bad "doveconf -n with the package installed: $out_n"
fi
v=$(doveconf -h portguard_starttls_ports 2>&1 || true)
if [ "$v" = 587 ]; then
	ok "doveconf knows portguard_starttls_ports (default $v): settings module loaded"
else
	bad "doveconf -h portguard_starttls_ports: $v"
fi

# ---- 3. configuration for the test -----------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=smoke.test" \
	-keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1
chmod 644 "$work/key.pem"
# The stock 10-ssl.conf names /etc/dovecot/private/dovecot.{pem,key}, which
# dovecot-core's postinst links to ssl-cert's snakeoil pair when that exists;
# Dovecot reads them even though the test file overrides them. Where they
# are missing, the test's pair stands in until the end.
stock_cert_created=()
for pair in "pem:cert.pem" "key:key.pem"; do
	f=/etc/dovecot/private/dovecot.${pair%%:*}
	if [ ! -e "$f" ] && [ ! -L "$f" ]; then
		install -D -m 600 "$work/${pair#*:}" "$f"
		stock_cert_created+=("$f")
		echo "created $f (missing; removed at the end)"
	fi
done
echo 'smoke@example.org:{PLAIN}smoke-password' >"$work/passwd"
chmod 644 "$work/passwd"
mkdir -p "$work/home" "$work/sink"
log=$work/dovecot.log
touch "$log"

if [ "$dovecot_major" = 2.3 ]; then
	cat >"$conf_smoke" <<EOF
# written by portguard tests/package/smoke.sh; removed at its end
protocols = submission
listen = 127.0.0.1
log_path = $log
ssl = yes
ssl_cert = <$work/cert.pem
ssl_key = <$work/key.pem
disable_plaintext_auth = no
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $work/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$work/home/%u
}
EOF
else
	cat >"$conf_smoke" <<EOF
# written by portguard tests/package/smoke.sh; removed at its end
protocols = submission
listen = 127.0.0.1
log_path = $log
ssl = yes
ssl_server_cert_file = $work/cert.pem
ssl_server_key_file = $work/key.pem
auth_allow_cleartext = yes
passdb smoke {
  driver = passwd-file
  passwd_file_path = $work/passwd
  default_password_scheme = PLAIN
}
userdb smoke {
  driver = static
  fields {
    uid = nobody
    gid = nogroup
    home = $work/home/%{user}
  }
}
EOF
fi
cat >>"$conf_smoke" <<EOF
submission_relay_host = 127.0.0.1
submission_relay_port = $port_sink
submission_relay_trusted = no
submission_relay_ssl = no
service submission-login {
  inet_listener submission {
    port = $port_starttls
  }
  inet_listener submissions {
    port = $port_implicit
    ssl = yes
  }
  inet_listener submissions_plain {
    port = $port_implicit_plain
  }
}
EOF
# Only in the test: the ports of the guarded listeners (the defaults are
# 465/587); kept in a separate block so that the after-purge start can drop it.
cat >>"$conf_smoke" <<EOF
# portguard settings (dropped after the purge)
portguard_implicit_tls_ports = $port_implicit $port_implicit_plain
portguard_starttls_ports = $port_starttls
EOF

"$python" "$here/smoke_client.py" sink "$port_sink" "$work/sink" \
	>"$work/sink.log" 2>&1 &
sink_pid=$!
for i in $(seq 1 50); do
	grep -q listening "$work/sink.log" && break
	sleep 0.1
done

start_dovecot() {
	local i
	if ! dovecot; then
		return 1
	fi
	started_dovecot=yes
	for i in $(seq 1 100); do
		if ss -Hltn "sport = :$port_starttls" | grep -q . &&
			ss -Hltn "sport = :$port_implicit" | grep -q .; then
			return 0
		fi
		sleep 0.1
	done
	echo "smoke.sh: Dovecot does not listen on $port_starttls/$port_implicit" >&2
	tail -n 20 "$log" >&2
	return 1
}

run_client() {
	local line fails=0
	while IFS= read -r line; do
		echo "  $line"
		case "$line" in
		ok:*) passed=$((passed + 1)) ;;
		FAIL:*) failed=$((failed + 1)); fails=$((fails + 1)) ;;
		exit=0) ;;
		exit=*) [ "$fails" -gt 0 ] || bad "smoke_client.py $line" ;;
		esac
	done < <("$python" "$here/smoke_client.py" check --plugin "$1" \
		--starttls "$port_starttls" --implicit "$port_implicit" \
		--implicit-plain "$port_implicit_plain" \
		--log "$log" --sink-dir "$work/sink" 2>&1 && echo "exit=0" ||
		echo "exit=$?")
}

# ---- 4a. the snippet as shipped: Dovecot's own behaviour ---------------------
step "Dovecot with the package installed, snippet as shipped (plugin not enabled)"
if doveconf -n >/dev/null && start_dovecot; then
	ok "dovecot started ($(dovecot --version), /etc/dovecot/dovecot.conf)"
	run_client off
	stop_dovecot && ok "dovecot stopped" || bad "dovecot stop"
else
	bad "dovecot did not start with the snippet as shipped"
	tail -n 20 "$log"
fi

# ---- 4b. the snippet enabled -------------------------------------------------
step "enable the snippet's block, start Dovecot"
sed -i '/^# >>> portguard/,/^# <<< portguard/{/^# [<>][<>][<>] portguard/!s/^#//}' "$conf_snippet"
echo "active lines of $conf_snippet now:"
grep -E '^[[:space:]]*[^#[:space:]]' "$conf_snippet" | sed 's/^/  /'
if [ "$dovecot_major" = 2.3 ]; then
	lp=$(doveconf -f service=submission -h login_plugins 2>&1 || true)
else
	lp=$(doveconf -f protocol=submission -h login_plugins 2>&1 || true)
fi
case "$lp" in
*portguard*) ok "doveconf: login_plugins for submission = $lp" ;;
*) bad "doveconf: login_plugins for submission = '$lp'" ;;
esac
if start_dovecot; then
	ok "dovecot started with the plugin enabled"
	run_client on
	if doveadm portguard list >"$work/list.out" 2>&1; then
		ok "doveadm portguard list (exit 0)"
		sed 's/^/  /' "$work/list.out"
	else
		bad "doveadm portguard list: $(cat "$work/list.out")"
	fi
	if grep -E 'Error|Fatal|Panic' "$log" | grep -v 'smoke.test' | grep -q .; then
		bad "errors in the Dovecot log:"
		grep -E 'Error|Fatal|Panic' "$log" | tail -n 10
	else
		ok "no Error/Fatal/Panic in the Dovecot log"
	fi
	grep 'portguard: ' "$log" | tail -n 4 | sed 's/^/  log: /' || true
	stop_dovecot && ok "dovecot stopped" || bad "dovecot stop"
else
	bad "dovecot did not start with the plugin enabled"
	tail -n 20 "$log"
fi

# ---- 5. purge, and Dovecot without portguard -----------------------------------
step "dpkg --purge dovecot-portguard"
if [ -f "${state_files[0]}" ]; then
	ok "the plugin created its state file ${state_files[0]}"
else
	bad "no state file ${state_files[0]} after the plugin ran"
fi
if dpkg --purge dovecot-portguard; then
	ok "dpkg --purge dovecot-portguard"
else
	bad "dpkg --purge dovecot-portguard"
fi
left=()
for f in "${modules[@]}" "$conf_snippet" "${state_files[@]}"; do
	[ -e "$f" ] && left+=("$f")
done
if [ "${#left[@]}" -eq 0 ]; then
	ok "purge removed the modules, the conffile and the state file"
else
	bad "left after purge: ${left[*]}"
fi
# The test's listeners stay (no 25/465/587 here); its portguard keys go.
sed -i '/^# portguard settings/,$d' "$conf_smoke"
if out_n=$(doveconf -n 2>&1); then
	ok "doveconf -n validates after the purge"
else
	bad "doveconf -n after the purge: $out_n"
fi
: >"$log"
if start_dovecot; then
	ok "dovecot starts after the purge"
	greeting=$("$python" - "$port_starttls" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10,
                             source_address=("127.0.0.2", 0))
print(s.makefile().readline().strip())
EOF
) || true
	case "$greeting" in
	220*) ok "submission greets without the plugin: $greeting" ;;
	*) bad "no greeting after the purge: '$greeting'"; tail -n 20 "$log" ;;
	esac
	stop_dovecot && ok "dovecot stops after the purge" || bad "dovecot stop after the purge"
else
	bad "dovecot does not start after the purge"
	tail -n 20 "$log"
fi
rm -f "$conf_smoke"
if doveconf -n >/dev/null 2>&1; then
	ok "doveconf -n validates with the test file removed"
else
	bad "doveconf -n with the test file removed"
fi

# ---- only on a throwaway system (the chroot): without dovecot-submissiond ----
# The package only Recommends dovecot-submissiond: with the snippet enabled
# and submission-login absent, doveconf must validate and Dovecot start.
if [ "${PORTGUARD_PKG_THROWAWAY:-0}" = 1 ]; then
	step "throwaway system: the package enabled, dovecot-submissiond removed"
	dpkg -i "$deb" >/dev/null
	sed -i '/^# >>> portguard/,/^# <<< portguard/{/^# [<>][<>][<>] portguard/!s/^#//}' "$conf_snippet"
	if dpkg --remove dovecot-submissiond >/dev/null 2>&1 &&
		[ ! -e /usr/lib/dovecot/submission-login ]; then
		ok "dovecot-submissiond removed, dovecot-portguard installed and enabled"
	else
		bad "could not remove dovecot-submissiond"
	fi
	cat >"$conf_smoke" <<EOF
# written by portguard tests/package/smoke.sh (throwaway system)
listen = 127.0.0.1
log_path = $log
service imap-login {
  inet_listener imap {
    port = $((base + 143))
  }
  inet_listener imaps {
    port = 0
  }
}
EOF
	if out_n=$(doveconf -n 2>&1); then
		ok "doveconf -n validates without dovecot-submissiond (protocols: $(doveconf -h protocols 2>&1 | tr '\n' ' '))"
	else
		bad "doveconf -n without dovecot-submissiond: $out_n"
	fi
	: >"$log"
	if dovecot; then
		started_dovecot=yes
		sleep 1
		if [ -n "$(master_pid)" ]; then
			ok "dovecot starts without dovecot-submissiond"
		else
			bad "dovecot exited without dovecot-submissiond"
			tail -n 20 "$log"
		fi
		stop_dovecot && ok "dovecot stops" || bad "dovecot stop"
	else
		bad "dovecot does not start without dovecot-submissiond"
		tail -n 20 "$log"
	fi
fi

if [ "$(boot_state)" = "$boot_before" ]; then
	ok "the system Dovecot's boot setting is unchanged"
else
	bad "the system Dovecot's boot setting changed: $(boot_state)"
fi

summary
[ "$failed" -eq 0 ]
