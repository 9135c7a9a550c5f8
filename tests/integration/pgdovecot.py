#!/usr/bin/python3
"""Test harness for portguard: a private Dovecot submission/imap instance.

Used by the pytest suite (tests/integration/test_*.py) and by demo.sh:

    /usr/bin/python3 tests/integration/pgdovecot.py demo [--dir DIR]

Everything lives in one private directory: base_dir, state_dir, the log
file, a self-signed certificate, a passwd-file with one user and the
messages received by the SMTP sink that Dovecot relays to.  Only the
Dovecot master started here (`dovecot -F`, tracked by its pid) is ever
stopped.  Needs root (Dovecot drops to its own users).
"""

import argparse
import json
import os
import pwd
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

USER = "demo@example.org"
PASSWORD = "demo-password"

# Where the private instance listens.  The client side uses other loopback
# source addresses (127.0.0.2, ...): 127.0.0.1 -> 127.0.0.1 is "secured" for
# Dovecot and would bypass every TLS rule.
LISTEN = "127.0.0.1"
CLIENT_ADDR = "127.0.0.2"


def env_int(name, default):
    val = os.environ.get(name)
    return int(val) if val else default


def default_ports(base=None):
    """Ports of one instance: PORTGUARD_TEST_PORT_BASE + well-known port."""
    if base is None:
        base = env_int("PORTGUARD_TEST_PORT_BASE", 10000)
    return {
        "implicit": base + 465,        # ssl = yes, guarded (implicit role)
        "implicit_plain": base + 466,  # no ssl, but in implicit_tls_ports
        "starttls": base + 587,        # guarded (STARTTLS role)
        "unguarded": base + 25,        # in no portguard list
        "imap": base + 143,            # imap-login, plugin not loaded there
    }


# A whole test run stays within PORTGUARD_TEST_PORT_BASE .. base + 999, so
# that runs whose bases are 1000 apart never meet: instance `slot` listens
# on base + 10*slot + 0..4 (slots 0..89), the Redis servers on base + 900 +
# k (pgredis.redis_port).  Slots: 0 main (conftest), 1 exempt, 2 harness,
# 10 + k rate limit (test_ratelimit), 20 + j Redis/doveadm (test_redis,
# test_doveadm), 30 + k known users (test_lockout), 41-49 hostile clients and faults, 50 settings cache
# (test_hostile, test_faults).
INSTANCE_SLOTS = 90
_SLOT_PORTS = {"unguarded": 0, "imap": 1, "implicit": 2, "implicit_plain": 3,
               "starttls": 4}


def instance_ports(slot):
    """Ports of test instance `slot` (see INSTANCE_SLOTS above)."""
    if not 0 <= slot < INSTANCE_SLOTS:
        raise ValueError("instance slot %d not in 0..%d" % (slot, INSTANCE_SLOTS - 1))
    base = env_int("PORTGUARD_TEST_PORT_BASE", 10000) + 10 * slot
    return {role: base + off for role, off in _SLOT_PORTS.items()}


def started_instance(name, slot, extra_conf="", imap=False, **kw):
    """A started instance on instance_ports(slot) with extra_conf (and
    Dovecot()'s other keyword arguments; submission only unless imap);
    stopped and removed again if it does not start."""
    inst = Dovecot(name=name, ports=instance_ports(slot), imap=imap,
                   extra_conf=extra_conf, **kw)
    try:
        inst.start()
    except Exception:
        inst.cleanup()
        raise
    return inst


def repo_root():
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def builddir():
    return os.path.abspath(os.environ.get("PORTGUARD_BUILDDIR") or repo_root())


def plugin_dir():
    """Directory holding lib20_portguard_plugin.so (the build's .libs)."""
    d = os.environ.get("PORTGUARD_PLUGIN_DIR")
    if d:
        return d
    return os.path.join(builddir(), ".libs")


def dovecot_bin(name):
    sbindir = os.environ.get("DOVECOT_SBINDIR")
    if name == "dovecot" and sbindir and os.path.exists(os.path.join(sbindir, name)):
        return os.path.join(sbindir, name)
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    return found or name


# --------------------------------------------------------------------------
# SMTP sink: what Dovecot's submission service relays to.


class _SinkHandler(socketserver.StreamRequestHandler):
    timeout = 60

    def send(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        sink = self.server.sink
        self.send("220 sink.test ESMTP portguard test sink")
        mail_from, rcpts = None, []
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            sink.record_command(line)
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "LHLO"):
                self.send("250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                          "250 ENHANCEDSTATUSCODES")
            elif verb == "HELO":
                self.send("250 sink.test")
            elif verb == "MAIL":
                mail_from, rcpts = line[10:].strip(), []
                self.send("250 2.1.0 Ok")
            elif verb == "RCPT":
                rcpts.append(line[8:].strip())
                self.send("250 2.1.5 Ok")
            elif verb == "DATA":
                if mail_from is None or not rcpts:
                    self.send("503 5.5.1 Bad sequence of commands")
                    continue
                self.send("354 End data with <CR><LF>.<CR><LF>")
                data = []
                while True:
                    dl = self.rfile.readline(1 << 20)
                    if not dl:
                        return
                    if dl in (b".\r\n", b".\n"):
                        break
                    if dl.startswith(b".."):
                        dl = dl[1:]
                    data.append(dl)
                n = sink.store(mail_from, rcpts, b"".join(data))
                self.send("250 2.0.0 Ok: queued as SINK%d" % n)
                mail_from, rcpts = None, []
            elif verb == "RSET":
                mail_from, rcpts = None, []
                self.send("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.send("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("502 5.5.2 Command not recognized")


class _SinkServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class SmtpSink:
    """Threaded SMTP server that stores every message as DIR/msg-N.json."""

    def __init__(self, directory, host=LISTEN, port=0):
        self.dir = directory
        os.makedirs(self.dir, exist_ok=True)
        self.server = _SinkServer((host, port), _SinkHandler)
        self.server.sink = self
        self.host, self.port = self.server.server_address[:2]
        self.lock = threading.Lock()
        self.count = 0
        self.thread = None

    def record_command(self, line):
        with self.lock, open(os.path.join(self.dir, "commands.log"), "a") as f:
            f.write(line + "\n")

    def store(self, mail_from, rcpts, data):
        with self.lock:
            self.count += 1
            n = self.count
            path = os.path.join(self.dir, "msg-%d.json" % n)
            with open(path + ".tmp", "w") as f:
                json.dump({"mail_from": mail_from, "rcpt_to": rcpts,
                           "data": data.decode("utf-8", "replace")}, f)
            os.rename(path + ".tmp", path)
        return n

    def messages(self):
        out = []
        for name in sorted(os.listdir(self.dir),
                           key=lambda n: (len(n), n)):
            if name.startswith("msg-") and name.endswith(".json"):
                with open(os.path.join(self.dir, name)) as f:
                    out.append(json.load(f))
        return out

    def wait_for(self, predicate, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for m in self.messages():
                if predicate(m):
                    return m
            time.sleep(0.1)
        return None

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name="smtp-sink", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------
# Dovecot instance


# --------------------------------------------------------------------------
# Dovecot version: 2.3 and 2.4 spell many settings differently.  Tests build
# version-dependent snippets with the helpers below (metric_conf,
# login_plugins_conf, redis_state_conf, ...) instead of raw 2.3 text.


_VERSION = None


def dovecot_version_string():
    """`dovecot --version` as printed, e.g. "2.4.1-4 (7d8c0e5759)"."""
    global _VERSION
    if _VERSION is None:
        _VERSION = run([dovecot_bin("dovecot"), "--version"]).stdout.strip()
    return _VERSION


def dovecot_version():
    """(major, minor, micro) of the installed Dovecot (`dovecot --version`)."""
    out = dovecot_version_string()
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    if not m:
        raise RuntimeError("cannot parse `dovecot --version`: %r" % out)
    return tuple(int(x or 0) for x in m.groups())


def is_24():
    """True on Dovecot 2.4 or later (new settings syntax)."""
    return dovecot_version() >= (2, 4)


def metric_conf(name, event_filter, group_by=()):
    """A `metric` block: `event_filter` is Dovecot's event filter text
    (the same in 2.3 and 2.4), `group_by` a list of field names."""
    if not is_24():
        text = "metric %s {\n  filter = %s\n" % (name, event_filter)
        if group_by:
            text += "  group_by = %s\n" % " ".join(group_by)
        return text + "}\n"
    text = "metric %s {\n  filter = %s\n" % (name, event_filter)
    for field in group_by:
        text += "  group_by %s {\n  }\n" % field
    return text + "}\n"


def login_plugins_conf(plugins="portguard"):
    """Load login plugins in submission-login only (2.4: login_plugins is a
    boolean list; `login_plugins = a b` replaces it, as in 2.3)."""
    return "protocol submission {\n  login_plugins = %s\n}\n" % plugins


def listen_conf(*addrs):
    """`listen` with several addresses (2.3: comma list, 2.4: space list)."""
    return "listen = %s\n" % (", " if not is_24() else " ").join(addrs)


def redis_state_conf(port, prefix=None, host="127.0.0.1"):
    """portguard_state for a Redis server, through Dovecot's dict layer.
    2.3: a dict URI; 2.4 (port24b): portguard_state = dict and the dict in
    a `portguard_state_dict { dict redis { ... } }` filter."""
    if not is_24():
        return ("portguard_state = dict:redis:host=%s:port=%d%s\n"
                % (host, port, ":prefix=" + prefix if prefix else ""))
    return ("portguard_state = dict\n"
            "portguard_state_dict {\n  dict redis {\n"
            "    redis_host = %s\n    redis_port = %d\n%s"
            "  }\n}\n"
            % (host, port,
               "    redis_key_prefix = %s\n" % prefix if prefix else ""))


# The parts of the instance configuration that are the same for 2.3 and 2.4
# (2.4 puts its two version settings before everything).
_CONF_TEMPLATE_HEAD = """\
# Generated by tests/integration/pgdovecot.py -- private test instance
base_dir = {d}/run
state_dir = {d}/state
instance_name = portguard-{name}
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
debug_log_path = {d}/dovecot.log
log_timestamp = "%Y-%m-%d %H:%M:%S "

protocols = {protocols}
listen = {listen}
hostname = mail.example.org
shutdown_clients = yes

ssl = yes
"""

_CONF_TEMPLATE_TAIL = """\
submission_relay_host = {sink_host}
submission_relay_port = {sink_port}
submission_relay_trusted = no
submission_relay_ssl = no

service submission-login {{
{login_exec}  inet_listener submission {{
    port = {ports[starttls]}
  }}
  inet_listener submissions {{
    port = {ports[implicit]}
    ssl = yes
  }}
  inet_listener submissions_plain {{
    port = {ports[implicit_plain]}
  }}
  inet_listener submission_unguarded {{
    port = {ports[unguarded]}
  }}
}}
{imap_service}service submission {{
  process_limit = 64
}}

{metrics}
{plugin_conf}
{sanitizer_conf}{extra}
"""


CONF_TEMPLATE_23 = _CONF_TEMPLATE_HEAD + """\
ssl_cert = <{d}/tls/cert.pem
ssl_key = <{d}/tls/key.pem
# Dovecot itself allows TLSv1/1.1 so that refusing old TLS is portguard's job
ssl_min_protocol = TLSv1
ssl_cipher_list = DEFAULT:@SECLEVEL=0
ssl_prefer_server_ciphers = yes

# Dovecot itself allows cleartext AUTH: refusing it is portguard's job
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 1 secs
login_trusted_networks = {trusted}

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/home/%u
}}
mail_location = maildir:~/Maildir

""" + _CONF_TEMPLATE_TAIL


CONF_TEMPLATE_24 = """\
dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
""" + _CONF_TEMPLATE_HEAD + """\
ssl_server_cert_file = {d}/tls/cert.pem
ssl_server_key_file = {d}/tls/key.pem
# Dovecot itself allows TLSv1/1.1 so that refusing old TLS is portguard's job
ssl_min_protocol = TLSv1
ssl_cipher_list = DEFAULT:@SECLEVEL=0
ssl_server_prefer_ciphers = server

# Dovecot itself allows cleartext AUTH: refusing it is portguard's job
auth_allow_cleartext = yes
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 1 secs
login_trusted_networks = {trusted}

passdb passwd-file {{
  default_password_scheme = PLAIN
  passwd_file_path = {d}/passwd
}}
userdb static {{
  fields {{
    uid = nobody
    gid = nogroup
    home = {d}/home/%{{user}}
  }}
}}
mail_driver = maildir
mail_path = ~/Maildir

""" + _CONF_TEMPLATE_TAIL

IMAP_SERVICE_TEMPLATE = """\
service imap-login {{
  inet_listener imap {{
    port = {ports[imap]}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""

PLUGIN_CONF_TEMPLATE = """\
login_plugin_dir = {plugin_dir}
{login_plugins}portguard_implicit_tls_ports = {ports[implicit]} {ports[implicit_plain]}
portguard_starttls_ports = {ports[starttls]}
portguard_tls_exempt_networks = {exempt}
portguard_min_tls_protocol = {min_tls}
portguard_log_tls = {log_tls}
"""


DEFAULT_METRICS = (
    ("portguard_tls", "event=portguard_tls_established", ("tls_protocol",)),
    ("portguard_refused", "event=portguard_connection_refused", ("reason",)),
    ("portguard_auth", "event=portguard_auth_finished", ("result",)),
)


def make_plugin_conf(ports, exempt="", min_tls="TLSv1.2", log_tls="yes", **override):
    """The plugin's settings for an instance on `ports`; override replaces
    (or, for keys not in the template, appends) `key = value` lines."""
    text = PLUGIN_CONF_TEMPLATE.format(
        plugin_dir=plugin_dir(), login_plugins=login_plugins_conf(),
        ports=ports, exempt=exempt, min_tls=min_tls, log_tls=log_tls)
    for key, value in override.items():
        text, n = re.subn(r"(?m)^%s = .*$" % re.escape(key),
                          lambda m: "%s = %s" % (key, value), text)
        if n == 0:
            text += "%s = %s\n" % (key, value)
    return text


def run(cmd, check=True, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    r = subprocess.run(cmd, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(cmd), r.returncode,
                                                   r.stdout, r.stderr))
    return r


def wait_port(host, port, timeout=20.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("dovecot exited with %s" % proc.returncode)
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("port %s:%d did not open" % (host, port))


class Dovecot:
    """One private Dovecot instance (submission + imap) with an SMTP sink."""

    def __init__(self, name="main", plugin=None, ports=None, exempt="",
                 trusted="", extra_conf="", directory=None, keep=None,
                 imap=True, min_tls="TLSv1.2", log_tls="yes"):
        if plugin is None:
            plugin = os.environ.get("PORTGUARD_TEST_NO_PLUGIN") != "1"
        self.name = name
        self.plugin = plugin
        self.ports = ports or instance_ports(0)
        self.exempt = exempt
        self.trusted = trusted
        self.extra_conf = extra_conf
        self.imap = imap
        self.min_tls = min_tls
        self.log_tls = log_tls
        if not imap:
            self.ports = dict(self.ports)
            self.ports.pop("imap", None)
        self.keep = (os.environ.get("PORTGUARD_TEST_KEEP") == "1") if keep is None else keep
        if directory:
            os.makedirs(directory, exist_ok=True)
            self.dir = os.path.abspath(directory)
            self.own_dir = False
        else:
            self.dir = tempfile.mkdtemp(prefix="portguard-%s-" % name)
            self.own_dir = True
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log = os.path.join(self.dir, "dovecot.log")
        self.proc = None
        self.sink = None

    # -- setup ------------------------------------------------------------
    def _make_cert(self):
        tls = os.path.join(self.dir, "tls")
        os.makedirs(tls, exist_ok=True)
        cert, key = os.path.join(tls, "cert.pem"), os.path.join(tls, "key.pem")
        if not (os.path.exists(cert) and os.path.exists(key)):
            run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-sha256", "-days", "30", "-subj", "/CN=mail.example.org",
                 "-addext", "subjectAltName=DNS:mail.example.org,DNS:localhost,IP:127.0.0.1",
                 "-keyout", key, "-out", cert])
        os.chmod(key, 0o600)
        self.cert = cert

    def _make_users(self):
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            f.write("%s:{PLAIN}%s::::::\n" % (USER, PASSWORD))
        os.chmod(os.path.join(self.dir, "passwd"), 0o644)
        home = os.path.join(self.dir, "home")
        os.makedirs(home, exist_ok=True)
        os.chmod(home, 0o1777)

    def config_text(self, extra=None, plugin_conf=None):
        if plugin_conf is None:
            plugin_conf = ""
            if self.plugin:
                plugin_conf = make_plugin_conf(
                    self.ports, exempt=self.exempt, min_tls=self.min_tls,
                    log_tls=self.log_tls)
        template = CONF_TEMPLATE_24 if is_24() else CONF_TEMPLATE_23
        return template.format(
            d=self.dir, name=self.name, listen=LISTEN, trusted=self.trusted,
            sink_host=self.sink.host if self.sink else LISTEN,
            sink_port=self.sink.port if self.sink else 25,
            ports=self.ports, plugin_conf=plugin_conf,
            protocols="submission imap" if self.imap else "submission",
            imap_service=IMAP_SERVICE_TEMPLATE.format(ports=self.ports) if self.imap else "",
            login_exec=valgrind_login_exec(self.dir) + sanitizer_login_exec(self.dir),
            sanitizer_conf=sanitizer_conf(),
            metrics="".join(metric_conf(*m) for m in DEFAULT_METRICS),
            extra=self.extra_conf if extra is None else extra)

    def write_config(self):
        for sub in ("run", "state"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        sanitizer_prepare(self.dir)
        with open(self.conf, "w") as f:
            f.write(self.config_text())

    def check_ports_free(self, wait=10.0):
        """Fail unless every port is free.  A port may be busy for a moment
        as the local end of some short client connection (the test ports
        lie in Linux's ephemeral range): wait up to `wait` seconds."""
        deadline = time.time() + wait
        for role, port in self.ports.items():
            while True:
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        s.bind((LISTEN, port))
                        break
                    except OSError as e:
                        if time.time() < deadline:
                            time.sleep(0.2)
                            continue
                        raise RuntimeError(
                            "%s:%d (%s) is in use: %s. Is the demo (demo.sh) "
                            "or another test run still running? Set "
                            "PORTGUARD_TEST_PORT_BASE to use other ports."
                            % (LISTEN, port, role, e))

    def start(self, timeout=20):
        self.check_ports_free()
        self._make_cert()
        self._make_users()
        self.sink = SmtpSink(os.path.join(self.dir, "sink")).start()
        self.write_config()
        if self.plugin and not os.path.exists(
                os.path.join(plugin_dir(), "lib20_portguard_plugin.so")):
            raise RuntimeError("plugin not built: %s/lib20_portguard_plugin.so"
                               % plugin_dir())
        r = run([dovecot_bin("doveconf"), "-c", self.conf, "-n"], check=False)
        if r.returncode != 0:
            raise RuntimeError("doveconf rejects the test config:\n" + r.stderr)
        self.logf = open(os.path.join(self.dir, "master.out"), "w")
        self.proc = subprocess.Popen([dovecot_bin("dovecot"), "-F", "-c", self.conf],
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            for p in self.ports.values():
                wait_port(LISTEN, p, timeout, self.proc)
        except Exception:
            self.stop()
            raise RuntimeError("dovecot did not start:\n" + self.tail(40))
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)   # only our own master
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.sink is not None:
            self.sink.stop()
            self.sink = None

        check_valgrind_logs(self.dir)
        check_sanitizer_reports(self.dir)

    def restart(self, timeout=20):
        """Stop the master and start it again in the same directory:
        base_dir, state_dir (e.g. portguard's state table) and the log are
        kept; only the sink is new."""
        self.stop()
        return self.start(timeout)

    def cleanup(self):
        self.stop()
        if self.own_dir and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.cleanup()

    # -- log helpers --------------------------------------------------------
    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(self.log)
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        try:
            with open(self.log, errors="replace") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, since=0, timeout=10.0):
        """Wait until a log line (after byte offset `since`) matches; return it."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while True:
            for line in self.log_since(since).splitlines():
                if rx.search(line):
                    return line
            if time.time() > deadline:
                return None
            time.sleep(0.1)

    def tail(self, n=30):
        return "\n".join(self.log_text().splitlines()[-n:])

    # -- tools ---------------------------------------------------------------
    def doveconf(self, *args, conf=None):
        return run([dovecot_bin("doveconf"), "-c", conf or self.conf] + list(args),
                   check=False)

    def doveadm(self, *args):
        return run([dovecot_bin("doveadm"), "-c", self.conf] + list(args),
                   check=False, env=sanitizer_env(self.dir, "doveadm"))


# --------------------------------------------------------------------------
# client helpers


def tls_context(version=None):
    """Unverified client context; version pins one TLS version ("TLSv1.1")."""
    import ssl
    import warnings
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version:
        v = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
             "TLSv1.2": ssl.TLSVersion.TLSv1_2,
             "TLSv1.3": ssl.TLSVersion.TLSv1_3}[version]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = v
            ctx.maximum_version = v
        if v < ssl.TLSVersion.TLSv1_2:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def plain_b64(user=USER, password=PASSWORD):
    import base64
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


class RawSMTP:
    """Line-level SMTP client over a raw socket (for things smtplib hides)."""

    def __init__(self, port, src=CLIENT_ADDR, host=LISTEN, timeout=15,
                 implicit_tls=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(src, 0))
        if implicit_tls is not None:
            self.sock = implicit_tls.wrap_socket(self.sock)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def readline(self):
        """One line without CRLF; None at EOF."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line.decode("utf-8", "replace")
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """(code, [lines]) of one (multi-line) reply; (None, lines) at EOF."""
        lines = []
        while True:
            line = self.readline()
            if line is None:
                return None, lines
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                try:
                    return int(line[:3]), lines
                except ValueError:
                    return None, lines

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def read_until_eof(self, limit=10.0):
        """Everything the server sends until it closes (or limit seconds)."""
        import socket as _s
        deadline = time.time() + limit
        data = self.buf
        self.buf = b""
        while time.time() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except (_s.timeout, TimeoutError):
                return data.decode("utf-8", "replace"), False
            except OSError:
                return data.decode("utf-8", "replace"), True
            if not chunk:
                return data.decode("utf-8", "replace"), True
            data += chunk
        return data.decode("utf-8", "replace"), False

    def starttls(self, ctx):
        self.sock = ctx.wrap_socket(self.sock)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


KV_RE = re.compile(r'(\w+)=(<[^>]*>|[^\s,]+)')


def parse_kv(line):
    """key=value pairs of a log line (values in <...> are unwrapped)."""
    out = {}
    for k, v in KV_RE.findall(line):
        if v.startswith("<") and v.endswith(">"):
            v = v[1:-1]
        elif v.endswith(":"):      # "handshake_ms=3: user=<>, rip=..."
            v = v[:-1]
        out.setdefault(k, v)
    return out


# --------------------------------------------------------------------------
# demo mode


# -- valgrind -------------------------------------------------------------
# PORTGUARD_TEST_VALGRIND=1 runs every submission-login process under
# valgrind (memcheck, leak check); stopping the instance fails if any of
# their logs reports an error or a definite leak.

def valgrind_login_exec(directory):
    if os.environ.get("PORTGUARD_TEST_VALGRIND") != "1":
        return ""
    return ("  executable = /usr/bin/valgrind --leak-check=full "
            "--errors-for-leak-kinds=definite --trace-children=no "
            "--log-file=%s/valgrind.%%p.log /usr/lib/dovecot/submission-login\n"
            "  vsz_limit = %s\n" % (directory, "unlimited" if is_24() else "0"))


def check_valgrind_logs(directory):
    if os.environ.get("PORTGUARD_TEST_VALGRIND") != "1":
        return
    bad = []
    try:
        names = sorted(n for n in os.listdir(directory)
                       if n.startswith("valgrind.") and n.endswith(".log"))
    except FileNotFoundError:
        return
    for name in names:
        with open(os.path.join(directory, name), errors="replace") as f:
            text = f.read()
        m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
        if m is None or m.group(1) != "0":
            bad.append("%s:\n%s" % (name, text[-4000:]))
    if bad:
        raise AssertionError("valgrind reported errors in submission-login:\n"
                             + "\n".join(bad))


# -- AddressSanitizer + UBSan ----------------------------------------------
# PORTGUARD_TEST_SANITIZE=1 (tests/integration/run-sanitized.sh): the plugins
# in PORTGUARD_PLUGIN_DIR are built with -fsanitize=address,undefined.
# Every submission-login process is started through a wrapper script that
# preloads gcc's libasan + libubsan and sets ASAN_OPTIONS/UBSAN_OPTIONS;
# doveadm gets the same environment.  Reports go to files in
# sanitizer_dir(); stopping the instance fails if there is any.
#
# The login process chroots to base_dir/login after plugin init, and the
# sanitizers open their log file only when they report: one absolute path
# has to work on both sides of the chroot.  sanitizer_dir() is
# <base_dir>/login/sanitizer, and inside the chroot dir a relative symlink
# <base_dir>/login/<base_dir>/login -> ../.. (to the chroot root) makes
# the same string lead to the same directory after the chroot.

SANITIZER_REPORT_RE = re.compile(
    r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
    r"runtime error: ")


def sanitizing():
    return os.environ.get("PORTGUARD_TEST_SANITIZE") == "1"


def sanitizer_dir(directory):
    return os.path.join(directory, "run", "login", "sanitizer")


def sanitizer_runtime():
    """LD_PRELOAD value: gcc's libasan and libubsan (asan first)."""
    libs = []
    for name in ("libasan.so", "libubsan.so"):
        path = run(["gcc", "-print-file-name=" + name]).stdout.strip()
        if not os.path.isabs(path):
            raise RuntimeError("gcc -print-file-name=%s: not found" % name)
        libs.append(os.path.realpath(path))
    return " ".join(libs)


def sanitizer_options(directory, prog, leaks):
    """(ASAN_OPTIONS, UBSAN_OPTIONS) writing reports to
    sanitizer_dir()/<prog>-{asan,ubsan}.<pid>."""
    rep = sanitizer_dir(directory)
    asan = ("log_path=%s/%s-asan:detect_leaks=%d:halt_on_error=1:"
            "abort_on_error=0:exitcode=86:detect_stack_use_after_return=1:"
            "strict_string_checks=1:check_initialization_order=1"
            % (rep, prog, 1 if leaks else 0))
    if leaks:
        asan += ":suppressions=%s" % os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "lsan.supp")
    ubsan = ("log_path=%s/%s-ubsan:print_stacktrace=1:halt_on_error=1:"
             "abort_on_error=0" % (rep, prog))
    return asan, ubsan


def sanitizer_prepare(directory):
    """Create the report dir and the chroot symlink (before the master
    starts: it only removes sockets from base_dir/login)."""
    if not sanitizing():
        return
    login = os.path.join(directory, "run", "login")
    rep = sanitizer_dir(directory)
    os.makedirs(rep, exist_ok=True)
    os.chmod(rep, 0o1777)          # the login processes run as dovenull
    # the mode and owner the master gives base_dir/login, or it warns
    os.chown(login, 0, pwd.getpwnam("dovenull").pw_gid)
    os.chmod(login, 0o750)
    inner = login + os.path.abspath(login)   # <login>/<abs path of login>
    os.makedirs(os.path.dirname(inner), mode=0o755, exist_ok=True)
    if not os.path.islink(inner):
        os.symlink(os.path.relpath(login, os.path.dirname(inner)), inner)
    wrapper = os.path.join(directory, "sanitizer-login.sh")
    asan, ubsan = sanitizer_options(directory, "submission-login", False)
    # written aside and renamed: rewriting it in place while a login
    # process is starting from it fails with ETXTBSY (reload tests)
    with open(wrapper + ".new", "w") as f:
        f.write("#!/bin/sh\n"
                "# Generated by pgdovecot.py: submission-login with the\n"
                "# sanitizer runtimes of the plugin's -fsanitize build.\n"
                "LD_PRELOAD='%s'\n"
                "ASAN_OPTIONS='%s'\n"
                "UBSAN_OPTIONS='%s'\n"
                "export LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS\n"
                'exec /usr/lib/dovecot/submission-login "$@"\n'
                % (sanitizer_runtime(), asan, ubsan))
    os.chmod(wrapper + ".new", 0o755)
    os.replace(wrapper + ".new", wrapper)


def sanitizer_login_exec(directory):
    if not sanitizing():
        return ""
    # ASan reserves terabytes of virtual shadow memory: no vsz_limit
    return ("  executable = %s/sanitizer-login.sh\n"
            "  vsz_limit = 0\n" % directory)


def sanitizer_conf():
    """doveadm (and doveconf's exec back into it) keeps only the variables
    in import_environment: keep the sanitizer runtime and its options.
    The master itself is started without them, so no other process gets
    them."""
    if not sanitizing():
        return ""
    return ("import_environment = TZ CORE_OUTOFMEM CORE_ERROR LISTEN_PID "
            "LISTEN_FDS NOTIFY_SOCKET LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS\n")


def sanitizer_env(directory, prog):
    """Environment for a tool run (doveadm) that loads a sanitized plugin;
    None (inherit) when not sanitizing."""
    if not sanitizing():
        return None
    env = dict(os.environ)
    asan, ubsan = sanitizer_options(directory, prog, True)
    env.update(LD_PRELOAD=sanitizer_runtime(), ASAN_OPTIONS=asan,
               UBSAN_OPTIONS=ubsan)
    return env


def symbolize(text):
    """Add function and file:line to the unsymbolized frames
    "(module+0xoff)" of our plugins that a chrooted process prints (it
    cannot open its own binaries to symbolize them)."""
    ours = os.path.realpath(plugin_dir()) + os.sep

    def one(m):
        module, off = m.group(1), m.group(2)
        # only our own modules: Dovecot's have no debug info here, and
        # addr2line would name the nearest exported symbol instead
        if not os.path.realpath(module).startswith(ours):
            return m.group(0)
        r = run(["addr2line", "-f", "-i", "-p", "-e", module, off], check=False)
        where = r.stdout.strip().replace("\n", " / ")
        return "%s [%s]" % (m.group(0), where) if where else m.group(0)
    return re.sub(r"\((/[^()\s]+)\+(0x[0-9a-f]+)\)", one, text)


def check_sanitizer_reports(directory):
    """Fail on any sanitizer report file, or report text in the log."""
    if not sanitizing():
        return
    bad = []
    rep = sanitizer_dir(directory)
    try:
        names = sorted(os.listdir(rep))
    except FileNotFoundError:
        names = []
    for name in names:
        path = os.path.join(rep, name)
        with open(path, errors="replace") as f:
            text = f.read()
        if text.strip():
            bad.append("%s:\n%s" % (path, symbolize(text[-8000:])))
    try:
        with open(os.path.join(directory, "dovecot.log"), errors="replace") as f:
            lines = [l for l in f if SANITIZER_REPORT_RE.search(l)]
    except FileNotFoundError:
        lines = []
    if lines:
        bad.append("dovecot.log:\n" + "".join(lines[:50]))
    if bad:
        raise AssertionError("sanitizer reports:\n" + "\n".join(bad))


def stop_stale_master(directory, timeout=20):
    """Stop a Dovecot master left over from an earlier run in directory (only
    if its command line names this directory's dovecot.conf)."""
    try:
        with open(os.path.join(directory, "run", "master.pid")) as f:
            pid = int(f.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read().split(b"\0")
    except (OSError, ValueError):
        return
    conf = os.path.join(os.path.abspath(directory), "dovecot.conf").encode()
    if conf not in cmdline:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while time.time() < deadline and os.path.exists("/proc/%d" % pid):
        time.sleep(0.1)


def demo(args):
    os.environ.setdefault("PORTGUARD_PLUGIN_DIR", args.plugin_dir)
    marker = os.path.join(args.dir, ".portguard-demo")
    if os.path.exists(args.dir):
        if os.listdir(args.dir) and not os.path.exists(marker):
            sys.exit("%s exists and is not a portguard demo dir; not touching it"
                     % args.dir)
        stop_stale_master(args.dir)
        shutil.rmtree(args.dir)
    os.makedirs(args.dir)
    open(marker, "w").close()
    dv = Dovecot(name="demo", ports=default_ports(10000), directory=args.dir,
                 plugin=True, imap=False, keep=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    dv.start()
    with open(os.path.join(args.dir, "demo.pid"), "w") as f:
        f.write("%d\n" % os.getpid())
    with open(os.path.join(args.dir, "ready"), "w") as f:
        f.write(json.dumps({"ports": dv.ports, "user": USER, "password": PASSWORD,
                            "log": dv.log, "sink": dv.sink.dir,
                            "master_pid": dv.proc.pid}) + "\n")
    print("portguard demo running: dir=%s master_pid=%d sink=%s:%d"
          % (args.dir, dv.proc.pid, dv.sink.host, dv.sink.port), flush=True)
    try:
        while not stop.is_set():
            if dv.proc.poll() is not None:
                print("dovecot exited (%s)" % dv.proc.returncode, flush=True)
                break
            stop.wait(1)
    finally:
        dv.stop()
        try:
            os.unlink(os.path.join(args.dir, "ready"))
        except OSError:
            pass
        print("portguard demo stopped", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="run a private instance until SIGTERM")
    d.add_argument("--dir", default="/tmp/portguard-demo")
    d.add_argument("--plugin-dir", default="/usr/lib/dovecot/modules/login",
                   help="directory with lib20_portguard_plugin.so")
    args = ap.parse_args()
    if args.cmd == "demo":
        demo(args)


if __name__ == "__main__":
    sys.exit(main())
