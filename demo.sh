#!/bin/bash
# portguard quick start for a fresh Debian 12 machine, as root.
#
#   ./demo.sh          install packages, build, install, (re)start the demo
#   ./demo.sh stop     stop the demo
#
# Installs the build dependencies and Dovecot packages with apt-get, runs
# ./autogen.sh && ./configure && make && make install (this installs the
# plugin and its settings module into Dovecot's module dir), then starts a
# private Dovecot submission service with the plugin on loopback:
#   127.0.0.1:10465  implicit TLS ("submissions" role)
#   127.0.0.1:10587  STARTTLS ("submission" role: TLS required before AUTH)
#   127.0.0.1:10466  plaintext listener on an implicit-TLS port (always refused)
#   127.0.0.1:10025  a port portguard does not guard
# with a self-signed certificate, one user (demo@example.org / demo-password)
# and a local SMTP sink as relay host that stores every message it gets.
# The system's own Dovecot configuration is not touched.  Re-running restarts
# the demo.
set -eu

cd "$(dirname "$0")"
top=$(pwd)
demo_dir=${PORTGUARD_DEMO_DIR:-/tmp/portguard-demo}
out=$demo_dir.out

if [ "$(id -u)" != 0 ]; then
	echo "demo.sh: run as root (apt-get, make install, Dovecot)" >&2
	exit 1
fi

stop_demo() {
	local pid
	if [ -f "$demo_dir/demo.pid" ]; then
		pid=$(cat "$demo_dir/demo.pid")
		if [ -r "/proc/$pid/cmdline" ] &&
		   tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q 'pgdovecot.py demo'; then
			echo "stopping the running demo (pid $pid)"
			kill "$pid"
			for _ in $(seq 1 100); do
				[ -d "/proc/$pid" ] || break
				sleep 0.2
			done
		fi
		rm -f "$demo_dir/demo.pid"
	fi
}

if [ "${1:-}" = stop ]; then
	stop_demo
	exit 0
fi

echo "== installing packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
	build-essential autoconf automake libtool pkg-config \
	dovecot-core dovecot-dev dovecot-submissiond \
	swaks openssl python3 libnet-ssleay-perl ca-certificates

stop_demo

echo "== building and installing portguard"
./autogen.sh
./configure
make
make install

moduledir=$(sed -n 's/^moduledir = //p' Makefile)
moduledir=${moduledir:-/usr/lib/dovecot/modules}
echo "installed: $(ls "$moduledir"/login/lib20_portguard_plugin.so "$moduledir"/settings/libportguard_settings.so | tr '\n' ' ')"

echo "== starting the demo instance in $demo_dir"
rm -f "$demo_dir/ready"
nohup /usr/bin/python3 "$top/tests/integration/pgdovecot.py" demo \
	--dir "$demo_dir" --plugin-dir "$moduledir/login" > "$out" 2>&1 < /dev/null &
demo_pid=$!
for _ in $(seq 1 150); do
	[ -f "$demo_dir/ready" ] && break
	if ! kill -0 "$demo_pid" 2>/dev/null; then
		echo "demo.sh: the demo failed to start:" >&2
		cat "$out" >&2
		[ -f "$demo_dir/dovecot.log" ] && tail -20 "$demo_dir/dovecot.log" >&2
		exit 1
	fi
	sleep 0.2
done
if [ ! -f "$demo_dir/ready" ]; then
	echo "demo.sh: the demo did not become ready; see $out" >&2
	exit 1
fi

cat <<EOF

portguard demo is running (Dovecot $(dovecot --version | cut -d' ' -f1), config $demo_dir/dovecot.conf).
Clients connect from 127.0.0.2: a client on the server's own address
(127.0.0.1 -> 127.0.0.1) counts as secured for Dovecot.

1. Implicit TLS on 10465: AUTH and send a message (ends with 250 ... queued):
   swaks --server 127.0.0.1 --port 10465 --local-interface 127.0.0.2 --tls-on-connect \\
         --auth PLAIN --auth-user demo@example.org --auth-password demo-password \\
         --from demo@example.org --to someone@example.net

2. STARTTLS on 10587: AUTH works after STARTTLS:
   swaks --server 127.0.0.1 --port 10587 --local-interface 127.0.0.2 --tls \\
         --auth PLAIN --auth-user demo@example.org --auth-password demo-password \\
         --from demo@example.org --to someone@example.net

3. Without STARTTLS on 10587: EHLO lists no AUTH, MAIL gets "530 5.7.0 TLS required.":
   swaks --server 127.0.0.1 --port 10587 --local-interface 127.0.0.2 \\
         --from demo@example.org --to someone@example.net --quit-after MAIL

4. Plaintext on the implicit-TLS port 10466 gets "421 4.7.0 ..." and is closed:
   swaks --server 127.0.0.1 --port 10466 --local-interface 127.0.0.2 --quit-after EHLO

5. TLS 1.1 is refused with "421 4.7.0 TLS protocol version too old" (Dovecot itself
   allows it here; portguard_min_tls_protocol = TLSv1.2 refuses it):
   openssl s_client -connect 127.0.0.1:10465 -bind 127.0.0.2:0 -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' -quiet

6. Five wrong passwords ban the address (the 5th gets 535, then 421); list
   and lift bans with doveadm:
   for i in 1 2 3 4 5; do swaks --server 127.0.0.1 --port 10465 --tlsc \
         --local-interface 127.0.0.3 --auth PLAIN --auth-user demo@example.org \
         --auth-password wrong --quit-after AUTH; done
   doveadm -c $demo_dir/dovecot.conf portguard list
   doveadm -c $demo_dir/dovecot.conf portguard unban 127.0.0.3

What portguard logged, the metrics, the relayed messages:
   grep portguard: $demo_dir/dovecot.log
   doveadm -c $demo_dir/dovecot.conf stats dump
   ls $demo_dir/sink/

Stop the demo:   $top/demo.sh stop     (or: kill \$(cat $demo_dir/demo.pid))
EOF
