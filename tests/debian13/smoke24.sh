#!/bin/bash
# Smoke test of portguard against Dovecot 2.4 in the Debian 13 chroot: a
# stop-gap until the pytest harness (tests/integration) writes 2.4 configs.
#
#   tests/debian13/smoke24.sh [BUILDDIR]
#
# Run on the host as root: it re-executes itself inside a throwaway overlay of
# the chroot (tests/debian13/chroot.sh run), builds portguard out of tree in
# BUILDDIR (default: build24 in the source tree) unless it is built already,
# copies the settings module into the overlay's Dovecot, and runs a private
# Dovecot 2.4 (own base_dir in /tmp of the overlay, ports
# PORTGUARD_TEST_PORT_BASE+465/+466/+587 on 127.0.0.1, default base 31000)
# with a self-signed certificate, a passwd-file user and a Python SMTP sink.
# Clients connect from 127.0.0.2 with Python's smtplib/ssl. Each check prints
# PASS or FAIL; the exit code is the number of failures.
# PORTGUARD_SMOKE_VALGRIND=1 runs every submission-login under valgrind and
# fails on any memcheck error or definite leak.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
if [ "${PORTGUARD_SMOKE24_INSIDE:-}" != 1 ]; then
	exec "$top/tests/debian13/chroot.sh" run --bind "$top" \
		env PORTGUARD_SMOKE24_INSIDE=1 \
		PORTGUARD_TEST_PORT_BASE="${PORTGUARD_TEST_PORT_BASE:-31000}" \
		PORTGUARD_SMOKE_VALGRIND="${PORTGUARD_SMOKE_VALGRIND:-}" \
		"$top/tests/debian13/smoke24.sh" "$@"
fi

build=${1:-$top/build24}
case "$(dovecot --version)" in
2.4*) ;;
*) echo "smoke24: needs Dovecot 2.4, found $(dovecot --version)" >&2; exit 99 ;;
esac
if [ ! -f "$build/.libs/lib20_portguard_plugin.so" ]; then
	mkdir -p "$build"
	(cd "$build" && "$top/configure" -q && make -j2 >/dev/null)
fi
cp "$build/.libs/libportguard_settings.so" /usr/lib/dovecot/modules/settings/

base=${PORTGUARD_TEST_PORT_BASE:-31000}
export SMOKE_DIR=/tmp/portguard-smoke24
export SMOKE_TOP=$top
export SMOKE_BUILD=$build
export SMOKE_IMPLICIT=$((base + 465))
export SMOKE_IMPLICIT_PLAIN=$((base + 466))
export SMOKE_STARTTLS=$((base + 587))
export SMOKE_SINK=$((base + 25))
login_exec=
if [ "${PORTGUARD_SMOKE_VALGRIND:-}" = 1 ]; then
	login_exec="executable = /usr/bin/valgrind --leak-check=full --errors-for-leak-kinds=definite --log-file=$SMOKE_DIR/valgrind.%p.log /usr/lib/dovecot/submission-login
  vsz_limit = unlimited"
fi
rm -rf "$SMOKE_DIR"
mkdir -p "$SMOKE_DIR/tls" "$SMOKE_DIR/run" "$SMOKE_DIR/state"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mail.example.org \
	-keyout "$SMOKE_DIR/tls/key.pem" -out "$SMOKE_DIR/tls/cert.pem" 2>/dev/null
echo "user@example.org:{PLAIN}secret" > "$SMOKE_DIR/passwd"

cat > "$SMOKE_DIR/dovecot.conf" <<EOF
dovecot_config_version = 2.4.1
dovecot_storage_version = 2.4.1
base_dir = $SMOKE_DIR/run
state_dir = $SMOKE_DIR/state
instance_name = portguard-smoke24
log_path = $SMOKE_DIR/dovecot.log
protocols = submission
listen = 127.0.0.1
hostname = mail.example.org
shutdown_clients = yes

ssl = yes
ssl_server_cert_file = $SMOKE_DIR/tls/cert.pem
ssl_server_key_file = $SMOKE_DIR/tls/key.pem
# Dovecot itself allows TLSv1/1.1 so that refusing old TLS is portguard's job
ssl_min_protocol = TLSv1
ssl_cipher_list = DEFAULT:@SECLEVEL=0
# Dovecot itself allows cleartext AUTH: refusing it is portguard's job
auth_allow_cleartext = yes
auth_mechanisms = plain login
auth_failure_delay = 0
# trusted clients must not be exempt from STARTTLS either
login_trusted_networks = 127.0.0.0/8

passdb passwd-file {
  passwd_file_path = $SMOKE_DIR/passwd
}
userdb static {
  fields {
    uid = nobody
    gid = nogroup
    home = $SMOKE_DIR/home/%{user}
  }
}
mail_driver = maildir
mail_path = ~/Maildir

submission_relay_host = 127.0.0.1
submission_relay_port = $SMOKE_SINK
submission_relay_ssl = no

service submission-login {
  $login_exec
  inet_listener submission {
    port = $SMOKE_STARTTLS
  }
  inet_listener submissions {
    port = $SMOKE_IMPLICIT
    ssl = yes
  }
  inet_listener submissions_plain {
    port = $SMOKE_IMPLICIT_PLAIN
  }
}

login_plugin_dir = $build/.libs
protocol submission {
  login_plugins {
    portguard = yes
  }
  # read through the protocol filter (process-wide rate-limit settings)
  portguard_ban_duration = 20 mins
}
portguard_auth_fail_limit = 5
portguard_implicit_tls_ports = $SMOKE_IMPLICIT $SMOKE_IMPLICIT_PLAIN
portguard_starttls_ports = $SMOKE_STARTTLS
portguard_min_tls_protocol = TLSv1.2
# filters are evaluated per client: remote address and TLS SNI
remote 127.0.0.3 {
  portguard_min_tls_protocol = TLSv1.3
}
local_name strict.example.org {
  portguard_min_tls_protocol = TLSv1.3
}
EOF

exec python3 - <<'PYEOF'
import os, re, smtplib, socket, socketserver, ssl, subprocess, sys
import threading, time, base64, warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)

D = os.environ["SMOKE_DIR"]
CONF = D + "/dovecot.conf"
IMPLICIT = int(os.environ["SMOKE_IMPLICIT"])
IMPLICIT_PLAIN = int(os.environ["SMOKE_IMPLICIT_PLAIN"])
STARTTLS = int(os.environ["SMOKE_STARTTLS"])
SINK = int(os.environ["SMOKE_SINK"])
SERVER, CLIENT = "127.0.0.1", "127.0.0.2"
LOG = D + "/dovecot.log"
failures = 0
# valgrind makes every login process slow
T = 60 if os.environ.get("PORTGUARD_SMOKE_VALGRIND") == "1" else 10


def check(name, ok, detail=""):
    global failures
    print("%s %s%s" % ("PASS" if ok else "FAIL", name,
                       "" if ok or not detail else ": " + str(detail)))
    if not ok:
        failures += 1


def log_text():
    try:
        with open(LOG, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait_log(pattern, since=0, timeout=T):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(pattern, log_text()[since:], re.M)
        if m:
            return m
        time.sleep(0.1)
    return None


class Sink(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"220 sink ESMTP\r\n")
        for line in self.rfile:
            cmd = line.strip().upper()
            if cmd.startswith(b"EHLO"):
                self.wfile.write(b"250-sink\r\n250 8BITMIME\r\n")
            elif cmd == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


socketserver.ThreadingTCPServer.allow_reuse_address = True
sink = socketserver.ThreadingTCPServer((SERVER, SINK), Sink)
threading.Thread(target=sink.serve_forever, daemon=True).start()


def raw(port, data=None, timeout=T):
    """Connect from CLIENT, optionally send data, read until EOF."""
    s = socket.create_connection((SERVER, port), timeout=timeout,
                                 source_address=(CLIENT, 0))
    if data:
        try:
            s.sendall(data)
        except OSError:
            pass
    buf = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    except (socket.timeout, OSError):
        pass
    s.close()
    return buf.decode(errors="replace")


def tls_ctx(maxver=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if maxver is not None:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = maxver
    return ctx


def smtp(port):
    return smtplib.SMTP(SERVER, port, timeout=T,
                        source_address=(CLIENT, 0))


def smtps(port, ctx=None):
    return smtplib.SMTP_SSL(SERVER, port, timeout=T,
                            source_address=(CLIENT, 0),
                            context=ctx or tls_ctx())


AUTH_PLAIN = base64.b64encode(b"\0user@example.org\0secret").decode()
AUTH_BAD = base64.b64encode(b"\0user@example.org\0wrong").decode()

# ---- doveconf knows the keys (settings module) and names a bad one ----
r = subprocess.run(["doveconf", "-c", CONF, "-h", "portguard_starttls_ports"],
                   capture_output=True, text=True)
check("doveconf accepts portguard_* keys", r.returncode == 0 and
      r.stdout.strip() == str(STARTTLS), r.stderr.strip())
with open(CONF) as f:
    bad = f.read().replace("portguard_starttls_ports = %d" % STARTTLS,
                           "portguard_starttls_ports = 99999")
with open(D + "/bad.conf", "w") as f:
    f.write(bad)
r = subprocess.run(["doveconf", "-c", D + "/bad.conf", "-n"],
                   capture_output=True, text=True)
check("doveconf rejects a bad value naming the key", r.returncode != 0 and
      "portguard_starttls_ports" in r.stderr, r.stderr.strip())
with open(D + "/unknown.conf", "w") as f:
    f.write(bad.replace("portguard_starttls_ports = 99999",
                        "portguard_no_such_key = 1"))
r = subprocess.run(["doveconf", "-c", D + "/unknown.conf", "-n"],
                   capture_output=True, text=True)
check("doveconf rejects an unknown portguard_ key", r.returncode != 0 and
      "portguard_no_such_key" in r.stderr, r.stderr.strip())

# the 2.4 snippet: every commented setting and metric uncommented
snippet = os.path.join(os.environ["SMOKE_TOP"], "conf.d/2.4/95-portguard.conf")
out = []
for line in open(snippet):
    if re.match(r"#(portguard_\w+ =|metric |  filter = |  group_by |  }|}$)",
                line):
        line = line[1:]
    out.append(line)
with open(CONF) as f:
    base_conf = "".join(l for l in f if not l.startswith("portguard_"))
with open(D + "/snippet.conf", "w") as f:
    f.write(base_conf + "".join(out))
r = subprocess.run(["doveconf", "-c", D + "/snippet.conf", "-n"],
                   capture_output=True, text=True)
check("conf.d/2.4/95-portguard.conf (all uncommented) accepted",
      r.returncode == 0 and "portguard_min_tls_protocol" in r.stdout,
      r.stderr.strip())

# ---- start Dovecot ----
subprocess.run(["dovecot", "-c", CONF], check=True)
try:
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection((SERVER, STARTTLS), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)

    # ---- implicit TLS port whose listener lacks ssl = yes ----
    since = len(log_text())
    data = raw(IMPLICIT_PLAIN, b"EHLO client.example.org\r\n")
    check("plaintext on implicit-TLS port gets 421 4.7.0",
          data.startswith("421 4.7.0") and "220" not in data, repr(data))
    check("refusal logged", wait_log(
        r"portguard: connection_refused port=%d "
        r"reason=plaintext_on_implicit_tls_port" % IMPLICIT_PLAIN, since),
        log_text()[since:][-500:])
    check("listener without ssl = yes warned about", wait_log(
        r"Warning: .*portguard: inet_listener submissions_plain \(port %d\)"
        r" is in portguard_implicit_tls_ports but has no 'ssl = yes'"
        % IMPLICIT_PLAIN, since), log_text()[since:][-500:])

    # ---- implicit TLS port (ssl = yes): plaintext never gets SMTP ----
    data = raw(IMPLICIT, b"EHLO client.example.org\r\n")
    check("plaintext on ssl=yes implicit port gets no SMTP reply",
          "220" not in data and "250" not in data, repr(data))

    # ---- implicit TLS: AUTH works, tls_established logged ----
    since = len(log_text())
    try:
        s = smtps(IMPLICIT)
        s.ehlo("client.example.org")
        code, _ = s.docmd("AUTH", "PLAIN " + AUTH_PLAIN)
        check("implicit TLS: AUTH PLAIN 235", code == 235, code)
        s.quit()
    except Exception as e:
        check("implicit TLS: AUTH PLAIN 235", False, e)
    m = wait_log(r"portguard: tls_established port=%d mode=implicit "
                 r"proto=TLSv1\.[23] .*" % IMPLICIT, since)
    check("implicit TLS: tls_established logged", m,
          log_text()[since:][-800:])

    # ---- STARTTLS port ----
    since = len(log_text())
    try:
        s = smtp(STARTTLS)
        code, caps = s.ehlo("client.example.org")
        caps = caps.decode().upper()
        check("587: EHLO before STARTTLS has no AUTH",
              code == 250 and "AUTH" not in caps and "STARTTLS" in caps,
              caps)
        code, msg = s.docmd("AUTH", "PLAIN " + AUTH_PLAIN)
        check("587: AUTH before STARTTLS gets 530", code == 530,
              (code, msg))
        code, msg = s.docmd("MAIL", "FROM:<user@example.org>")
        check("587: MAIL before STARTTLS gets 530", code == 530,
              (code, msg))
        s.starttls(context=tls_ctx())
        code, caps = s.ehlo("client.example.org")
        check("587: EHLO after STARTTLS has AUTH",
              "AUTH" in caps.decode().upper(), caps)
        code, msg = s.docmd("AUTH", "PLAIN " + AUTH_PLAIN)
        check("587: AUTH PLAIN after STARTTLS gets 235", code == 235,
              (code, msg))
        s.quit()
    except Exception as e:
        check("587: STARTTLS session", False, repr(e))
    m = wait_log(r"portguard: tls_established port=%d mode=starttls "
                 r"proto=TLSv1\.[23] cipher=\S+ bits=\d+ group=\S+ .*"
                 r"handshake_ms=\d+" % STARTTLS, since)
    check("587: tls_established logged", m, log_text()[since:][-800:])
    if m:
        print("     " + m.group(0)[:300])

    # ---- localhost (secured for Dovecot itself) is not exempt ----
    try:
        s = smtplib.SMTP(SERVER, STARTTLS, timeout=T,
                         source_address=(SERVER, 0))
        code, caps = s.ehlo("client.example.org")
        check("587 from 127.0.0.1: no AUTH before STARTTLS",
              code == 250 and "AUTH" not in caps.decode().upper(), caps)
        code, msg = s.docmd("AUTH", "PLAIN " + AUTH_PLAIN)
        check("587 from 127.0.0.1: AUTH before STARTTLS gets 530",
              code == 530, (code, msg))
        s.quit()
    except Exception as e:
        check("587 from 127.0.0.1", False, repr(e))

    # ---- TLS 1.1 refused on a guarded port ----
    since = len(log_text())
    try:
        ctx = tls_ctx(ssl.TLSVersion.TLSv1_1)
        s = socket.create_connection((SERVER, IMPLICIT), timeout=T,
                                     source_address=(CLIENT, 0))
        try:
            t = ctx.wrap_socket(s)
        except ssl.SSLError as e:
            print("SKIP TLSv1.1 refused: this OpenSSL cannot do TLSv1.1 "
                  "(%s)" % e)
            t = None
        if t is not None:
            data = b""
            try:
                while True:
                    chunk = t.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (OSError, ssl.SSLError):
                pass
            data = data.decode(errors="replace")
            check("TLSv1.1 on implicit port gets 421 4.7.0",
                  data.startswith("421 4.7.0") and "220 " not in data,
                  repr(data))
            check("TLSv1.1 refusal logged", wait_log(
                r"reason=tls_protocol_too_old proto=TLSv1\.1 min=TLSv1\.2",
                since), log_text()[since:][-500:])
    except Exception as e:
        check("TLSv1.1 session", False, repr(e))

    # ---- per-client filters: remote { } and local_name { } (TLS SNI) ----
    def tls12_first_line(source, sni):
        ctx = tls_ctx(ssl.TLSVersion.TLSv1_2)
        s = socket.create_connection((SERVER, IMPLICIT), timeout=T,
                                     source_address=(source, 0))
        t = ctx.wrap_socket(s, server_hostname=sni)
        data = b""
        try:
            while b"\n" not in data:
                chunk = t.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (OSError, ssl.SSLError):
            pass
        t.close()
        return data.decode(errors="replace")

    try:
        data = tls12_first_line(CLIENT, None)
        check("TLSv1.2 without filter: greeting", data.startswith("220 "),
              repr(data))
        data = tls12_first_line("127.0.0.3", None)
        check("TLSv1.2 from remote 127.0.0.3 (min TLSv1.3): 421",
              data.startswith("421 4.7.0 TLS protocol version too old"),
              repr(data))
        data = tls12_first_line(CLIENT, "strict.example.org")
        check("TLSv1.2 with SNI strict.example.org (min TLSv1.3): 421",
              data.startswith("421 4.7.0 TLS protocol version too old"),
              repr(data))
        data = tls12_first_line(CLIENT, "other.example.org")
        check("TLSv1.2 with another SNI: greeting", data.startswith("220 "),
              repr(data))
    except Exception as e:
        check("per-client filters", False, repr(e))

    # ---- 5 failed AUTHs ban the address (shm state) ----
    since = len(log_text())
    codes = []
    for i in range(5):
        try:
            s = smtps(IMPLICIT)
            s.ehlo("client.example.org")
            code, _ = s.docmd("AUTH", "PLAIN " + AUTH_BAD)
            codes.append(code)
            s.close()
        except Exception as e:
            codes.append(repr(e))
    check("5 wrong passwords get 535", codes == [535] * 5, codes)
    check("ban logged", wait_log(
        r"portguard: ban key=127\.0\.0\.2 failures=5 ban_secs=1200 "
        r"ban_level=1", since), log_text()[since:][-800:])
    try:
        s = smtps(IMPLICIT)
        check("banned: next implicit-TLS connect refused", False,
              "got greeting")
        s.close()
    except smtplib.SMTPConnectError as e:
        check("banned: next implicit-TLS connect gets 421",
              e.smtp_code == 421, e)
    except Exception as e:
        check("banned: next implicit-TLS connect gets 421", False, repr(e))
    data = raw(STARTTLS)
    check("banned: next STARTTLS-port connect gets 421 4.7.0",
          data.startswith("421 4.7.0 Too many failed"), repr(data))
    check("banned: refusal logged", wait_log(
        r"connection_refused port=%d reason=banned key=127\.0\.0\.2"
        % STARTTLS, since), log_text()[since:][-500:])

    check("plugin loaded, no errors in the log",
          "portguard" in log_text() and
          not re.search(r"(Error|Fatal|Panic):", log_text()),
          "\n".join(l for l in log_text().splitlines()
                    if re.search(r"(Error|Fatal|Panic):", l))[-1500:])
finally:
    subprocess.run(["doveadm", "-c", CONF, "stop"])
    sink.shutdown()

if os.environ.get("PORTGUARD_SMOKE_VALGRIND") == "1":
    logs = sorted(n for n in os.listdir(D) if n.startswith("valgrind."))
    bad = []
    for n in logs:
        text = open(os.path.join(D, n), errors="replace").read()
        m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
        if m is None or m.group(1) != "0" or \
           re.search(r"definitely lost: [1-9]", text):
            bad.append(n + ":\n" + text[-3000:])
    check("valgrind: %d submission-login logs clean" % len(logs),
          logs and not bad, "\n".join(bad)[:6000])

print("%d failure(s)" % failures)
sys.exit(failures)
PYEOF
