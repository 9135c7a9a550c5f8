#!/bin/bash
# Integration tests for portguard: a private Dovecot with the freshly built
# plugin.  Called by `make check` (PORTGUARD_BUILDDIR / PORTGUARD_SRCDIR set);
# defaults to the repository root.  Extra arguments go to pytest, e.g.
#   tests/integration/run.sh -k starttls
#
# Runs itself again inside a private mount namespace and bind-mounts a copy of
# Dovecot's settings module dir (plus our libportguard_settings.so) over it,
# so that doveconf/config know the portguard_* keys without installing
# anything system-wide; likewise a copy of the doveadm module dir plus our
# lib10_doveadm_portguard_plugin.so (doveadm portguard ...).  Needs root.
set -u

here=$(cd "$(dirname "$0")" && pwd)
srcdir=${PORTGUARD_SRCDIR:-$(cd "$here/../.." && pwd)}
builddir=${PORTGUARD_BUILDDIR:-$srcdir}
export PORTGUARD_SRCDIR="$srcdir" PORTGUARD_BUILDDIR="$builddir"
python=/usr/bin/python3

if [ "$(id -u)" != 0 ]; then
	echo "run.sh: integration tests need root (Dovecot, bind mount); skipped" >&2
	exit 77
fi

if [ -z "${PORTGUARD_IN_NS:-}" ]; then
	export PORTGUARD_IN_NS=1
	exec unshare -m --propagation private "$0" "$@"
fi

echo "dovecot --version: $(dovecot --version)"
echo "openssl version: $(openssl version)"

moduledir=${DOVECOT_MODULEDIR:-}
if [ -z "$moduledir" ] || [ ! -d "$moduledir" ]; then
	moduledir=$(pkg-config --variable=moduledir dovecot 2>/dev/null || true)
fi
if [ -z "$moduledir" ] || [ ! -d "$moduledir" ]; then
	moduledir=/usr/lib/dovecot/modules
fi
settingsdir=$moduledir/settings
doveadmdir=$moduledir/doveadm

# PORTGUARD_PLUGIN_DIR: where the login and doveadm plugins are (e.g. a
# sanitized build, run-sanitized.sh); the settings module always comes
# from the build dir (doveconf and the config process load it unwrapped).
plugin_dir=${PORTGUARD_PLUGIN_DIR:-$builddir/.libs}
plugin_so=$plugin_dir/lib20_portguard_plugin.so
settings_so=$builddir/.libs/libportguard_settings.so
doveadm_so=$plugin_dir/lib10_doveadm_portguard_plugin.so
if [ "${PORTGUARD_TEST_NO_PLUGIN:-}" != 1 ]; then
	for f in "$plugin_so" "$settings_so" "$doveadm_so"; do
		if [ ! -f "$f" ]; then
			echo "run.sh: $f not built (run make first)" >&2
			exit 99
		fi
	done
fi

missing=
"$python" -c 'import pytest' 2>/dev/null || missing="$missing python3-pytest"
for cmd in swaks openssl doveconf doveadm; do
	command -v $cmd >/dev/null || missing="$missing $cmd"
done
perl -MNet::SSLeay -e 1 2>/dev/null || missing="$missing libnet-ssleay-perl"
command -v unshare >/dev/null || missing="$missing util-linux"
[ -x /usr/lib/dovecot/imap-login ] || missing="$missing dovecot-imapd"
[ -x /usr/lib/dovecot/submission-login ] || missing="$missing dovecot-submissiond"
command -v redis-server >/dev/null || missing="$missing redis-server"
command -v redis-cli >/dev/null || missing="$missing redis-tools"
if [ -n "$missing" ]; then
	echo "run.sh: missing:$missing (see tests/integration/README.md)" >&2
	exit 99
fi

tmp=$(mktemp -d /tmp/portguard-settings.XXXXXX)
cleanup() {
	umount "$doveadmdir" 2>/dev/null
	umount "$settingsdir" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/settings"
if [ -d "$settingsdir" ]; then
	cp -a "$settingsdir"/. "$tmp/settings"/
else
	echo "run.sh: $settingsdir does not exist" >&2
	exit 99
fi
if [ -f "$settings_so" ]; then
	cp "$settings_so" "$tmp/settings/libportguard_settings.so"
fi
chmod 755 "$tmp" "$tmp/settings"
mount --bind "$tmp/settings" "$settingsdir" || exit 99
echo "settings modules ($settingsdir): $(ls "$settingsdir" | tr '\n' ' ')"

# doveadm loads every plugin of its module dir: the same trick for
# `doveadm portguard ...` (test_doveadm.py)
mkdir -p "$tmp/doveadm"
if [ -d "$doveadmdir" ]; then
	cp -a "$doveadmdir"/. "$tmp/doveadm"/
fi
if [ -f "$doveadm_so" ]; then
	cp "$doveadm_so" "$tmp/doveadm/lib10_doveadm_portguard_plugin.so"
fi
chmod 755 "$tmp/doveadm"
if [ -d "$doveadmdir" ]; then
	mount --bind "$tmp/doveadm" "$doveadmdir" || exit 99
else
	echo "run.sh: $doveadmdir does not exist" >&2
	exit 99
fi
echo "doveadm modules ($doveadmdir): $(ls "$doveadmdir" | tr '\n' ' ')"

export PYTHONDONTWRITEBYTECODE=1
cd "$here"
"$python" -m pytest -v -p no:cacheprovider -rfE "$here" "$@"
rc=$?
if [ $rc = 5 ]; then
	echo "run.sh: pytest collected no tests" >&2
	rc=1
fi
exit $rc
