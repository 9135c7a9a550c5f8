#!/bin/bash
# A Debian 13 (trixie) chroot with Dovecot 2.4 and the build/test packages,
# for building and testing portguard against Dovecot 2.4 on a Debian 12 host.
#
#   tests/debian13/chroot.sh setup     create or refresh the cached chroot
#   tests/debian13/chroot.sh run [--bind DIR]... CMD
#                                      run CMD inside a throwaway overlay of
#                                      it; each DIR of the host is bind-mounted
#                                      at the same path inside
#   tests/debian13/chroot.sh remove    delete it
#
# The chroot lives in ${PORTGUARD_CHROOT:-/var/cache/portguard/trixie-root}
# and is reused while its package list is the one this script wants (a stamp
# file records it). Needs root and debootstrap; only Debian's mirror is used.
# Every "run" happens in its own mount namespace on an overlayfs whose upper
# layer is deleted afterwards: runs can go on in parallel, and whatever a
# run installs (e.g. the .deb under test) never reaches the cached chroot.
set -euo pipefail

root=${PORTGUARD_CHROOT:-/var/cache/portguard/trixie-root}
mirror=${PORTGUARD_MIRROR:-http://deb.debian.org/debian}
packages=(
	dovecot-core dovecot-dev dovecot-submissiond dovecot-imapd
	build-essential autoconf automake libtool pkg-config
	libcmocka-dev libssl-dev swaks libnet-ssleay-perl openssl
	python3 python3-pytest redis-server redis-tools util-linux iproute2
	procps valgrind debhelper dh-autoreconf lintian fakeroot dpkg-dev
)
stamp="$root/.portguard-stamp"
want_stamp="trixie ${packages[*]}"

mounted=()
cleanup() {
	local i
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
		umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" || true
	done
	mounted=()
}
trap cleanup EXIT

mount_all() {
	mount -t proc proc "$root/proc"; mounted+=("$root/proc")
	mount -t sysfs sysfs "$root/sys"; mounted+=("$root/sys")
	mount --bind /dev "$root/dev"; mounted+=("$root/dev")
	mount --bind /dev/pts "$root/dev/pts"; mounted+=("$root/dev/pts")
}

setup() {
	# one setup at a time (two check.sh runs on a new machine)
	mkdir -p "$(dirname "$root")"
	exec 9>"$root.lock"
	flock 9
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ]; then
		echo "chroot.sh: $root is up to date"
		exec 9>&-
		return 0
	fi
	if ! command -v debootstrap >/dev/null; then
		# stale package lists on a new machine: update and try again
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap ||
			{ apt-get update -q &&
			  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap; }
	fi
	if [ ! -x "$root/usr/bin/apt-get" ]; then
		rm -rf "$root"
		mkdir -p "$(dirname "$root")"
		debootstrap --variant=minbase trixie "$root" "$mirror"
	fi
	# never start services inside the chroot
	printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"
	cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
	mount_all
	chroot "$root" apt-get update -q
	chroot "$root" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "${packages[@]}"
	chroot "$root" apt-get clean
	cleanup
	echo "$want_stamp" > "$stamp"
	echo "chroot.sh: $root ready: Dovecot $(chroot "$root" dovecot --version)"
	exec 9>&-
}

case "${1:-}" in
setup)
	setup
	;;
run)
	shift
	[ -f "$stamp" ] || setup
	if [ -z "${PORTGUARD_CHROOT_NS:-}" ]; then
		export PORTGUARD_CHROOT_NS=1
		exec unshare -m --propagation private "$0" run "$@"
	fi
	binds=()
	while [ "${1:-}" = --bind ]; do
		binds+=("$(cd "$2" && pwd)")
		shift 2
	done
	work=$(mktemp -d /var/tmp/portguard-chroot.XXXXXX)
	trap 'cleanup; rm -rf "$work"' EXIT
	mkdir -p "$work/upper" "$work/work" "$work/root"
	mount -t overlay overlay \
		-o "lowerdir=$root,upperdir=$work/upper,workdir=$work/work" \
		"$work/root"
	mounted+=("$work/root")
	lower=$root
	root=$work/root
	mount_all
	for dir in "${binds[@]}"; do
		mkdir -p "$root$dir"
		mount --bind "$dir" "$root$dir"
		mounted+=("$root$dir")
	done
	rc=0
	chroot "$root" "$@" || rc=$?
	cleanup
	root=$lower
	exit "$rc"
	;;
remove)
	rm -rf "$root"
	;;
*)
	sed -n '2,12s/^# \{0,1\}//p' "$0"
	exit 2
	;;
esac
