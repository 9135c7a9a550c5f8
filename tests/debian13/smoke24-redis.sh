#!/bin/bash
# Manual smoke test of portguard's Redis state and `doveadm portguard`
# against Dovecot 2.4 in the Debian 13 chroot (a stop-gap until the pytest
# harness writes 2.4 configs).
#
#   tests/debian13/smoke24-redis.sh [BUILDDIR]
#
# Run on the host as root: it re-executes itself inside a throwaway overlay
# of the chroot (tests/debian13/chroot.sh run), builds portguard out of tree
# in BUILDDIR (default: build24 in the source tree) unless it is built
# already, copies the settings module and the doveadm plugin into the
# overlay's Dovecot, starts a private redis-server (127.0.0.1, port
# PORTGUARD_TEST_PORT_BASE+379, private dir, nothing saved) and a private
# Dovecot 2.4 (own base_dir, ports base+465 implicit TLS and base+587
# STARTTLS; default base 32000) with
#
#   portguard_state = dict
#   portguard_state_dict {
#     dict redis {
#       redis_host = 127.0.0.1
#       redis_port = <base+379>
#       redis_db_id = 2
#       redis_key_prefix = mx1/
#       # ignored: portguard_state_timeout (500ms) replaces it
#       redis_request_timeout = 30s
#     }
#   }
#
# PORTGUARD_SMOKE_VALGRIND=1 runs every submission-login and doveadm call
# under valgrind and fails on any memcheck error or definite leak (the
# timing checks then allow valgrind's slowness).
# Clients connect from 127.0.0.2/127.0.0.3 with Python's smtplib/ssl. Each
# check prints PASS or FAIL; the exit code is the number of failures. Only
# the redis-server and Dovecot started here are signalled (by their pids).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
if [ "${PORTGUARD_SMOKE24_INSIDE:-}" != 1 ]; then
	exec "$top/tests/debian13/chroot.sh" run --bind "$top" \
		env PORTGUARD_SMOKE24_INSIDE=1 \
		PORTGUARD_TEST_PORT_BASE="${PORTGUARD_TEST_PORT_BASE:-32000}" \
		PORTGUARD_SMOKE_VALGRIND="${PORTGUARD_SMOKE_VALGRIND:-}" \
		"$top/tests/debian13/smoke24-redis.sh" "$@"
fi

build=${1:-$top/build24}
case "$(dovecot --version)" in
2.4*) ;;
*) echo "smoke24-redis: needs Dovecot 2.4, found $(dovecot --version)" >&2
   exit 99 ;;
esac
if [ ! -f "$build/.libs/lib20_portguard_plugin.so" ]; then
	mkdir -p "$build"
	(cd "$build" && "$top/configure" -q && make -j2 >/dev/null)
fi
# the overlay is thrown away afterwards: the cached chroot stays untouched
cp "$build/.libs/libportguard_settings.so" /usr/lib/dovecot/modules/settings/
mkdir -p /usr/lib/dovecot/modules/doveadm
cp "$build/.libs/lib10_doveadm_portguard_plugin.so" \
	/usr/lib/dovecot/modules/doveadm/

base=${PORTGUARD_TEST_PORT_BASE:-32000}
export SMOKE_DIR=/tmp/portguard-smoke24-redis
export SMOKE_IMPLICIT=$((base + 465))
export SMOKE_STARTTLS=$((base + 587))
export SMOKE_SINK=$((base + 25))
export SMOKE_REDIS=$((base + 379))
export SMOKE_TIMEOUT_MS=500
login_exec=
if [ "${PORTGUARD_SMOKE_VALGRIND:-}" = 1 ]; then
	login_exec="executable = /usr/bin/valgrind --leak-check=full --errors-for-leak-kinds=definite --log-file=$SMOKE_DIR/valgrind.%p.log /usr/lib/dovecot/submission-login
  vsz_limit = unlimited"
fi
rm -rf "$SMOKE_DIR"
mkdir -p "$SMOKE_DIR/tls" "$SMOKE_DIR/run" "$SMOKE_DIR/state" \
	"$SMOKE_DIR/redis"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mail.example.org \
	-keyout "$SMOKE_DIR/tls/key.pem" -out "$SMOKE_DIR/tls/cert.pem" 2>/dev/null
echo "user@example.org:{PLAIN}secret" > "$SMOKE_DIR/passwd"

cat > "$SMOKE_DIR/dovecot.conf" <<EOF
dovecot_config_version = 2.4.1
dovecot_storage_version = 2.4.1
base_dir = $SMOKE_DIR/run
state_dir = $SMOKE_DIR/state
instance_name = portguard-smoke24-redis
log_path = $SMOKE_DIR/dovecot.log
protocols = submission
listen = 127.0.0.1
hostname = mail.example.org
shutdown_clients = yes

ssl = yes
ssl_server_cert_file = $SMOKE_DIR/tls/cert.pem
ssl_server_key_file = $SMOKE_DIR/tls/key.pem
auth_mechanisms = plain login
auth_failure_delay = 0

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
}

login_plugin_dir = $build/.libs
protocol submission {
  login_plugins {
    portguard = yes
  }
}
portguard_implicit_tls_ports = $SMOKE_IMPLICIT
portguard_starttls_ports = $SMOKE_STARTTLS
portguard_auth_fail_limit = 5
portguard_state = dict
portguard_state_timeout = ${SMOKE_TIMEOUT_MS}ms
portguard_state_dict {
  dict redis {
    redis_host = 127.0.0.1
    redis_port = $SMOKE_REDIS
    redis_db_id = 2
    redis_key_prefix = mx1/
    # ignored: portguard_state_timeout replaces it (the Redis-stopped
    # check below fails if it does not)
    redis_request_timeout = 30s
  }
}
EOF

exec python3 - <<'PYEOF'
import os, re, smtplib, socket, socketserver, ssl, subprocess, sys
import signal, threading, time, base64, warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)

D = os.environ["SMOKE_DIR"]
CONF = D + "/dovecot.conf"
IMPLICIT = int(os.environ["SMOKE_IMPLICIT"])
STARTTLS = int(os.environ["SMOKE_STARTTLS"])
SINK = int(os.environ["SMOKE_SINK"])
REDIS = int(os.environ["SMOKE_REDIS"])
TIMEOUT = int(os.environ["SMOKE_TIMEOUT_MS"]) / 1000.0
SERVER, CLIENT, CLIENT2 = "127.0.0.1", "127.0.0.2", "127.0.0.3"
LOG = D + "/dovecot.log"
failures = 0


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


def wait_log(pattern, since=0, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(pattern, log_text()[since:], re.M)
        if m:
            return m
        time.sleep(0.1)
    return None


PREFIX = "mx1/"


def redis_cli(*args, db=2):
    r = subprocess.run(["redis-cli", "-h", SERVER, "-p", str(REDIS),
                        "-n", str(db)] +
                       list(args), capture_output=True, text=True, timeout=5)
    return r.stdout.strip()


# PORTGUARD_SMOKE_VALGRIND=1: every doveadm portguard call under valgrind
# (an error or a definite leak makes it exit 99, failing its check)
VALGRIND = (["valgrind", "-q", "--leak-check=full",
             "--errors-for-leak-kinds=definite", "--error-exitcode=99"]
            if os.environ.get("PORTGUARD_SMOKE_VALGRIND") == "1" else [])


def doveadm(*args, conf=CONF):
    r = subprocess.run(VALGRIND + ["doveadm", "-c", conf, "portguard"] +
                       list(args),
                       capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


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


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def smtps(source=CLIENT):
    return smtplib.SMTP_SSL(SERVER, IMPLICIT, timeout=10,
                            source_address=(source, 0), context=tls_ctx())


def greeting(port, source):
    """The first line the server sends on a plain connect."""
    s = socket.create_connection((SERVER, port), timeout=10,
                                 source_address=(source, 0))
    try:
        return s.makefile("rb").readline().decode(errors="replace").strip()
    except OSError as e:
        return repr(e)
    finally:
        s.close()


def auth(source, good):
    """One implicit-TLS connection with one AUTH PLAIN: its reply code, or
    421 if the connection was refused at connect."""
    cred = b"\0user@example.org\0" + (b"secret" if good else b"wrong")
    try:
        s = smtps(source)
    except smtplib.SMTPConnectError as e:
        return e.smtp_code
    except Exception as e:
        return repr(e)
    try:
        s.ehlo("client.example.org")
        code, _ = s.docmd("AUTH", "PLAIN " + base64.b64encode(cred).decode())
        try:
            s.quit()
        except Exception:
            pass
        return code
    except Exception as e:
        return repr(e)


# ---- redis-server: private dir, high port, nothing on disk ----
redis = subprocess.Popen(
    ["redis-server", "--port", str(REDIS), "--bind", SERVER,
     "--dir", D + "/redis", "--save", "", "--appendonly", "no",
     "--daemonize", "no", "--logfile", D + "/redis/redis.log"],
    stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    start_new_session=True)
deadline = time.time() + 10
while time.time() < deadline and redis_cli("PING") != "PONG":
    time.sleep(0.05)
check("redis-server answers on port %d" % REDIS, redis_cli("PING") == "PONG")

# ---- doveconf: the 2.4 syntax is accepted, a 2.3 URI refused by key ----
r = subprocess.run(["doveconf", "-c", CONF, "-h", "portguard_state"],
                   capture_output=True, text=True)
check("doveconf accepts portguard_state = dict + portguard_state_dict {}",
      r.returncode == 0 and r.stdout.strip() == "dict",
      (r.returncode, r.stdout.strip(), r.stderr.strip()))
with open(CONF) as f:
    bad = f.read().replace(
        "portguard_state = dict\n",
        "portguard_state = dict:redis:host=127.0.0.1:port=%d\n" % REDIS)
with open(D + "/bad.conf", "w") as f:
    f.write(bad)
r = subprocess.run(["doveconf", "-c", D + "/bad.conf", "-n"],
                   capture_output=True, text=True)
check("doveconf refuses a 2.3 dict URI naming portguard_state",
      r.returncode != 0 and "portguard_state" in r.stderr, r.stderr.strip())
print("     " + r.stderr.strip()[-300:])
with open(CONF) as f:
    nodict = re.sub(r"(?ms)^portguard_state_dict \{.*?^\}\n", "", f.read())
with open(D + "/nodict.conf", "w") as f:
    f.write(nodict)
rc, out, err = doveadm("list", conf=D + "/nodict.conf")
check("no portguard_state_dict block: doveadm says so, exit 75",
      rc == 75 and "portguard_state_dict" in err, (rc, err.strip()))
print("     " + err.strip()[-300:])

dovecot_started = False
try:
    subprocess.run(["dovecot", "-c", CONF], check=True)
    dovecot_started = True
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection((SERVER, STARTTLS), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)

    # ---- 5 failed AUTHs ban the address; the ban is in Redis ----
    since = len(log_text())
    codes = [auth(CLIENT, False) for i in range(5)]
    check("5 wrong passwords get 535", codes == [535] * 5, codes)
    check("ban logged", wait_log(
        r"portguard: ban key=127\.0\.0\.2 failures=5 ban_secs=900 "
        r"ban_level=1", since), log_text()[since:][-800:])
    code = auth(CLIENT, True)
    check("banned: next implicit-TLS connect gets 421", code == 421, code)
    g = greeting(STARTTLS, CLIENT)
    check("banned: next STARTTLS-port connect gets 421 4.7.0",
          g.startswith("421 4.7.0 Too many failed"), g)
    value = redis_cli("GET", PREFIX + "portguard/b/127.0.0.2")
    check("ban record in Redis db 2 (mx1/portguard/b/127.0.0.2)",
          value.startswith("v1 "), repr(value))
    ttl = redis_cli("TTL", PREFIX + "portguard/b/127.0.0.2")
    check("ban record expires on its own (TTL > 0)",
          ttl.isdigit() and int(ttl) > 0, ttl)
    print("     redis db 2: mx1/portguard/b/127.0.0.2 = %r, TTL %s"
          % (value, ttl))

    # ---- doveadm portguard list / unban ----
    rc, out, err = doveadm("list")
    print("     doveadm portguard list:\n       " +
          "\n       ".join(out.rstrip().splitlines()))
    check("doveadm portguard list shows the ban", rc == 0 and
          re.search(r"^127\.0\.0\.2\s+banned\s", out, re.M), (rc, out, err))
    rc, out, err = doveadm("list", "-b")
    check("doveadm portguard list -b shows it", rc == 0 and
          re.search(r"^127\.0\.0\.2\s+banned\s", out, re.M), (rc, out, err))
    rc, out, err = doveadm("unban", "127.0.0.2")
    check("doveadm portguard unban 127.0.0.2 exits 0", rc == 0, (rc, err))
    code = auth(CLIENT, True)
    check("unbanned: AUTH PLAIN gets 235", code == 235, code)
    rc, out, err = doveadm("unban", "127.0.0.99")
    check("unban of an unknown address exits 68", rc == 68, (rc, err))
    rc, out, err = doveadm("unban", "127.0.0.0/8")
    check("unban with the wrong prefix exits 64", rc == 64, (rc, err))

    # ---- doveadm portguard ban / flush ----
    rc, out, err = doveadm("ban", "127.0.0.3", "1h")
    check("doveadm portguard ban 127.0.0.3 1h exits 0", rc == 0, (rc, err))
    rc, out, err = doveadm("list")
    check("list shows the manual ban", re.search(
        r"^127\.0\.0\.3\s+banned\(manual\)\s+0\s+(3[5-6]\d\d)\s", out, re.M),
        out)
    g = greeting(STARTTLS, CLIENT2)
    check("manually banned: connect gets 421 4.7.0",
          g.startswith("421 4.7.0"), g)
    rc, out, err = doveadm("flush")
    check("doveadm portguard flush exits 0", rc == 0, (rc, err))
    redis_cli("SET", PREFIX + "other/key", "x")
    redis_cli("SET", "portguard/b/10.0.0.1", "v1 0 0 0 0", db=0)
    rc, out, err = doveadm("flush")
    keys = redis_cli("--scan", "--pattern", PREFIX + "portguard/*")
    check("flush: no mx1/portguard/ keys left in Redis", keys == "", keys)
    check("flush: other keys and other dbs untouched",
          redis_cli("GET", PREFIX + "other/key") == "x" and
          redis_cli("GET", "portguard/b/10.0.0.1", db=0) != "", "")
    rc, out, err = doveadm("list")
    check("flush: list is empty", rc == 0 and
          not re.search(r"^127\.", out, re.M), out)
    g = greeting(STARTTLS, CLIENT2)
    check("flushed: 127.0.0.3 gets the greeting", g.startswith("220 "), g)

    # ---- Redis frozen: a login still completes within the timeout ----
    since = len(log_text())
    os.kill(redis.pid, signal.SIGSTOP)      # only our own redis-server
    try:
        start = time.monotonic()
        code = auth(CLIENT, True)
        elapsed = time.monotonic() - start
    finally:
        os.kill(redis.pid, signal.SIGCONT)
    limit = TIMEOUT + (1.0 if not VALGRIND else 10.0)
    check("Redis stopped: AUTH PLAIN still gets 235", code == 235, code)
    check("Redis stopped: login took %.2f s <= timeout %.1f s + %.0f s"
          % (elapsed, TIMEOUT, limit - TIMEOUT), elapsed <= limit, elapsed)
    check("Redis stopped: state_error logged (fail open)", wait_log(
        r"portguard: state_error op=\S+ fail=open: ", since),
        log_text()[since:][-800:])
    rc, out, err = doveadm("list")
    check("Redis back: doveadm portguard list works", rc == 0, (rc, err))

    bad_lines = [l for l in log_text().splitlines()
                 if re.search(r"(Error|Fatal|Panic):", l) and
                 "state_error" not in l]
    check("no other errors in the log", not bad_lines,
          "\n".join(bad_lines)[-1500:])
finally:
    if dovecot_started:
        subprocess.run(["doveadm", "-c", CONF, "stop"])
    redis.terminate()
    try:
        redis.wait(10)
    except subprocess.TimeoutExpired:
        redis.kill()
    sink.shutdown()

if VALGRIND:
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

if failures:
    print("---- last lines of %s ----" % LOG)
    print("\n".join(log_text().splitlines()[-40:]))
print("%d failure(s)" % failures)
sys.exit(failures)
PYEOF
