"""A private redis-server for the portguard tests (dict:redis: state).

Each RedisServer has a directory of its own, listens on 127.0.0.1 only, on a
fixed high port, and keeps nothing on disk (--save '' --appendonly no).
Only the redis-server started here (tracked by its pid) is ever signalled:
stop(), kill(), freeze() (SIGSTOP: the kernel still accepts TCP
connections, nobody answers) and thaw() (SIGCONT).  cli() runs redis-cli
against it.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pgdovecot

LISTEN = "127.0.0.1"


def redis_port(k):
    """Port k (0..9) for the test Redis servers: PORTGUARD_TEST_PORT_BASE +
    900 + k (above every Dovecot instance: pgdovecot.instance_ports)."""
    if not 0 <= k <= 9:
        raise ValueError("Redis server %d not in 0..9" % k)
    return pgdovecot.env_int("PORTGUARD_TEST_PORT_BASE", 10000) + 900 + k


def started_redis(k, name):
    """A started private redis-server on redis_port(k); removed again if
    it does not start."""
    srv = RedisServer(redis_port(k), name=name)
    try:
        srv.start()
    except Exception:
        srv.cleanup()
        raise
    return srv


class RedisServer:
    def __init__(self, port, name="redis"):
        self.port = port
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="portguard-%s-" % name)
        self.log = os.path.join(self.dir, "redis.log")
        self.proc = None
        self.frozen = False

    def start(self, timeout=10):
        # busy for a moment as the local end of a client connection (the
        # port is in Linux's ephemeral range): wait a little
        deadline = time.time() + 10
        while True:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((LISTEN, self.port))
                    break
                except OSError as e:
                    if time.time() < deadline:
                        time.sleep(0.2)
                        continue
                    raise RuntimeError(
                        "%s:%d is in use (%s): an earlier Redis test server "
                        "still running? Set PORTGUARD_TEST_PORT_BASE to use "
                        "other ports." % (LISTEN, self.port, e))
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", LISTEN,
             "--dir", self.dir, "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--logfile", self.log,
             "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.frozen = False
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited (%s):\n%s"
                                   % (self.proc.returncode, self.tail()))
            r = self.cli("PING", check=False, timeout=2)
            if r.returncode == 0 and r.stdout.strip() == "PONG":
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer on port %d:\n%s"
                           % (self.port, self.tail()))

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig):
        if self.running():
            os.kill(self.proc.pid, sig)     # only our own redis-server

    def freeze(self):
        """SIGSTOP: connections are accepted by the kernel, never answered."""
        self._signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self):
        self._signal(signal.SIGCONT)
        self.frozen = False

    def kill(self):
        """SIGKILL, as if it crashed; waits until the port is closed."""
        if self.running():
            self._signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
        self.frozen = False

    def stop(self):
        if self.running():
            if self.frozen:
                self.thaw()
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        self.frozen = False

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        self.stop()
        if os.environ.get("PORTGUARD_TEST_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self, n=20):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except FileNotFoundError:
            return ""

    # -- redis-cli -----------------------------------------------------------
    def cli(self, *args, check=True, timeout=10):
        r = subprocess.run(["redis-cli", "-h", LISTEN, "-p", str(self.port)]
                           + [str(a) for a in args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout)
        if check and (r.returncode != 0 or r.stdout.startswith("ERR")):
            raise RuntimeError("redis-cli %s: %d %s%s" % (" ".join(map(str, args)),
                                                         r.returncode, r.stdout,
                                                         r.stderr))
        return r

    def keys(self, pattern="*"):
        """Keys matching pattern (redis-cli --scan, not KEYS)."""
        out = self.cli("--scan", "--pattern", pattern).stdout
        return sorted(l for l in out.splitlines() if l)

    def get(self, key):
        out = self.cli("GET", key).stdout.rstrip("\n")
        return out if out else None

    def ttl(self, key):
        return int(self.cli("TTL", key).stdout.strip())

    def flushall(self):
        self.cli("FLUSHALL")
