#!/usr/bin/python3
"""What does a refused (banned) connection cost the server, compared with
what an attacker's connection costs without portguard?

Starts four private Dovecot 2.3 instances on loopback high ports (default
service_count = 1: one submission-login process per connection), each
master in a cpuacct cgroup of its own, and drives them with one client,
one connection at a time, interleaved connection by connection:

  A  no plugin (login_plugins empty): implicit TLS, greeting, EHLO, one
     failed AUTH PLAIN (535), QUIT -- what an attacker costs today
  B  plugin, source banned, portguard_ban_action = reply: TLS handshake,
     then "421 4.7.0 Too many failed ..." until EOF
  C  plugin, source banned, portguard_ban_action = drop: connect, wait for
     EOF (the client sends nothing, no TLS)
  D  plugin, source not banned: implicit TLS, greeting, EHLO, AUTH PLAIN
     (235), QUIT -- the legitimate reference (relayed to a sink)

D runs on an instance of its own (same config as B): CPU is measured per
instance, so sharing B's would mix the two.  Wall time is client side,
connect() to EOF.  CPU per connection = delta of the instance's
cpuacct.usage over the measured run / N (the cgroup keeps the CPU of
exited login/submission processes).  The master's own + reaped children's
CPU (/proc/<master>/stat) is reported as a cross-check.

Run as root from anywhere (after `make` at the top of the tree):

    /usr/bin/python3 bench/bench-refused.py [--n 200]

It re-executes itself under `unshare -m --propagation private` and
bind-mounts copies of Dovecot's settings and doveadm module dirs with the
build's libportguard_settings.so and lib10_doveadm_portguard_plugin.so
added (as tests/integration/run.sh does for the settings), so nothing is
installed system-wide and the system Dovecot is never touched.
"""

import argparse
import math
import os
import platform
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.dont_write_bytecode = True   # write nothing into tests/integration

import pgdovecot  # noqa: E402  (read-only use of the test harness)
from pgdovecot import LISTEN, PASSWORD, USER, RawSMTP, plain_b64, tls_context  # noqa: E402

CGROUP_ROOT = "/sys/fs/cgroup/cpuacct"
NS_ENV = "PORTGUARD_BENCH_IN_NS"
BANNED_SRC = "127.0.0.50"
LEGIT_SRC = "127.0.0.60"
WRONG = "wrong-password"
BANNED_421 = "421 4.7.0 Too many failed authentication attempts, try again later"
TIMEOUT = 30

VARIANTS = ("A", "B", "C", "D")
DESCR = {
    "A": "no plugin: TLS+greeting+AUTH 535+QUIT",
    "B": "banned, reply: TLS+421",
    "C": "banned, drop: no TLS, closed",
    "D": "not banned: TLS+AUTH 235+QUIT",
}

# auth_failure_delay = 0 in every instance (it only matters for A): the
# 535 still waits for Dovecot's failure flush, which runs every 0.5 s.
COMMON_CONF = "auth_failure_delay = 0\n"


class Stop(Exception):
    pass


def on_signal(signum, frame):
    raise Stop("signal %d" % signum)


# --------------------------------------------------------------------------
# mount namespace: settings + doveadm module dirs with the build's modules


def moduledir():
    d = os.environ.get("DOVECOT_MODULEDIR")
    if d and os.path.isdir(d):
        return d
    try:
        d = subprocess.run(["pkg-config", "--variable=moduledir", "dovecot"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True).stdout.strip()
    except OSError:
        d = ""
    return d if d and os.path.isdir(d) else "/usr/lib/dovecot/modules"


class Mounts:
    """Copies of <moduledir>/settings and <moduledir>/doveadm with our
    modules added, bind-mounted over the originals (private namespace)."""

    def __init__(self, libs):
        self.libs = libs
        self.tmp = tempfile.mkdtemp(prefix="portguard-bench-mods.")
        os.chmod(self.tmp, 0o755)
        self.mounted = []

    def overlay(self, sub, extra):
        target = os.path.join(moduledir(), sub)
        copy = os.path.join(self.tmp, sub)
        if os.path.isdir(target):
            shutil.copytree(target, copy, symlinks=True)
        else:
            raise RuntimeError("%s does not exist" % target)
        for src, name in extra:
            shutil.copy(src, os.path.join(copy, name))
        os.chmod(copy, 0o755)
        subprocess.run(["mount", "--bind", copy, target], check=True)
        self.mounted.append(target)

    def setup(self):
        self.overlay("settings", [(os.path.join(self.libs, "libportguard_settings.so"),
                                   "libportguard_settings.so")])
        self.overlay("doveadm", [(os.path.join(self.libs, "lib10_doveadm_portguard_plugin.so"),
                                  "lib10_doveadm_portguard_plugin.so")])

    def cleanup(self):
        for target in reversed(self.mounted):
            subprocess.run(["umount", target], stderr=subprocess.DEVNULL)
        self.mounted = []
        shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------
# cgroups


class Cgroup:
    def __init__(self, path):
        self.path = path
        os.mkdir(path)

    def usage_ns(self):
        with open(os.path.join(self.path, "cpuacct.usage")) as f:
            return int(f.read())

    def stat_ticks(self):
        out = {}
        with open(os.path.join(self.path, "cpuacct.stat")) as f:
            for line in f:
                k, v = line.split()
                out[k] = int(v)
        return out

    def pids(self):
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    def remove(self, timeout=20):
        deadline = time.time() + timeout
        while self.pids() and time.time() < deadline:
            time.sleep(0.1)
        # last resort: only processes inside our own cgroup, i.e. children
        # of a master this script started
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
        print("warning: could not remove cgroup %s" % self.path, file=sys.stderr)


def proc_cpu_ticks(pid):
    """utime+stime (self) and cutime+cstime (reaped children) of pid."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3): utime is field 14 -> index 11
    ut, st, cut, cst = (int(x) for x in fields[11:15])
    return ut + st, cut + cst


# --------------------------------------------------------------------------
# Dovecot instance: the harness's, started inside a cgroup


class BenchDovecot(pgdovecot.Dovecot):
    def __init__(self, cgroup, **kw):
        super().__init__(**kw)
        self.cgroup = cgroup

    def start(self, timeout=20):
        """Like pgdovecot.Dovecot.start(), but the master enters its cgroup
        before exec, so every process it forks is accounted there."""
        self.check_ports_free()
        self._make_cert()
        self._make_users()
        self.sink = pgdovecot.SmtpSink(os.path.join(self.dir, "sink")).start()
        self.write_config()
        if self.plugin and not os.path.exists(
                os.path.join(pgdovecot.plugin_dir(), "lib20_portguard_plugin.so")):
            raise RuntimeError("plugin not built: %s/lib20_portguard_plugin.so"
                               % pgdovecot.plugin_dir())
        r = self.doveconf("-n")
        if r.returncode != 0:
            raise RuntimeError("doveconf rejects the config of %s:\n%s"
                               % (self.name, r.stderr))
        self.logf = open(os.path.join(self.dir, "master.out"), "w")
        self.proc = subprocess.Popen(
            ["/bin/sh", "-c", 'echo $$ > "$1/cgroup.procs" && exec "$2" -F -c "$3"',
             "sh", self.cgroup.path, pgdovecot.dovecot_bin("dovecot"), self.conf],
            stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            for p in self.ports.values():
                pgdovecot.wait_port(LISTEN, p, timeout, self.proc)
        except Exception:
            self.stop()
            raise RuntimeError("dovecot %s did not start:\n%s" % (self.name, self.tail(40)))
        return self

    def master_pid(self):
        """The pid in our own base_dir's master.pid, if it is the master we
        started (never any other Dovecot)."""
        try:
            with open(os.path.join(self.dir, "run", "master.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        if self.proc is not None and pid == self.proc.pid:
            return pid
        return None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            pid = self.master_pid()
            try:
                if pid is not None:
                    os.kill(pid, signal.SIGTERM)
                else:   # no pid file yet: the process we spawned ourselves
                    self.proc.send_signal(signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.sink is not None:
            self.sink.stop()
            self.sink = None


# --------------------------------------------------------------------------
# one connection per variant; each returns (wall_s, phases dict)


class Unexpected(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Unexpected(what)


def conn_session(port, src, ctx, password, want_auth):
    """Implicit TLS, greeting, EHLO, AUTH PLAIN, QUIT, EOF."""
    t0 = time.perf_counter()
    c = RawSMTP(port, src=src, timeout=TIMEOUT, implicit_tls=ctx)
    try:
        t_tls = time.perf_counter()
        code, lines = c.reply()
        expect(code == 220, "greeting: %r" % lines)
        t_greet = time.perf_counter()
        code, lines = c.cmd("EHLO bench.example.org")
        expect(code == 250, "EHLO: %r" % lines)
        t_auth0 = time.perf_counter()
        code, lines = c.cmd("AUTH PLAIN " + plain_b64(USER, password))
        expect(code == want_auth, "AUTH: want %d, got %r" % (want_auth, lines))
        t_auth = time.perf_counter()
        code, lines = c.cmd("QUIT")
        expect(code == 221, "QUIT: %r" % lines)
        data, closed = c.read_until_eof(TIMEOUT)
        expect(closed, "not closed after QUIT: %r" % data)
        t1 = time.perf_counter()
    finally:
        c.close()
    return t1 - t0, {"tls": t_tls - t0, "greeting": t_greet - t0,
                     "auth": t_auth - t_auth0}


def conn_banned_reply(port, src, ctx):
    t0 = time.perf_counter()
    c = RawSMTP(port, src=src, timeout=TIMEOUT, implicit_tls=ctx)
    try:
        t_tls = time.perf_counter()
        data, closed = c.read_until_eof(TIMEOUT)
        t1 = time.perf_counter()
    finally:
        c.close()
    expect(data.splitlines()[:1] == [BANNED_421], "banned, reply: got %r" % data)
    expect(closed, "banned, reply: not closed: %r" % data)
    return t1 - t0, {"tls": t_tls - t0}


def conn_banned_drop(port, src):
    t0 = time.perf_counter()
    s = socket.create_connection((LISTEN, port), timeout=TIMEOUT,
                                 source_address=(src, 0))
    data, closed = b"", False
    try:
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
    except socket.timeout:
        pass
    finally:
        t1 = time.perf_counter()
        s.close()
    expect(closed, "banned, drop: not closed within %d s" % TIMEOUT)
    expect(not data.startswith(b"220") and b"421" not in data,
           "banned, drop: got %r" % data)
    return t1 - t0, {"bytes": len(data)}


def a_source(i):
    """A fresh source address per A connection: 127.0.1.1, 127.0.1.2, ...
    127.0.1.254, 127.0.2.1, ... (each fails AUTH exactly once)."""
    hi, lo = divmod(i, 254)
    if hi >= 254:
        raise ValueError("too many A connections for distinct sources")
    return "127.0.%d.%d" % (hi + 1, lo + 1)


# --------------------------------------------------------------------------
# statistics and output


def pct(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    k = max(1, math.ceil(p / 100.0 * len(v)))
    return v[k - 1]


def ratio(x, y):
    return "%.3f" % (x / y) if y else "-"


def machine_info():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    dv = subprocess.run([pgdovecot.dovecot_bin("dovecot"), "--version"],
                        stdout=subprocess.PIPE, text=True).stdout.strip()
    ossl = subprocess.run(["openssl", "version"], stdout=subprocess.PIPE,
                          text=True).stdout.strip()
    return [
        "machine: nproc=%d (online CPUs %d) %s" % (len(os.sched_getaffinity(0)),
                                                  os.cpu_count(), model),
        "kernel: %s %s" % (platform.system(), platform.release()),
        "dovecot --version: %s" % dv,
        "openssl: %s; client: Python %s, %s" % (ossl, platform.python_version(),
                                               ssl.OPENSSL_VERSION),
    ]


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# --------------------------------------------------------------------------
# main


def run(args):
    libs = os.path.join(os.path.abspath(args.builddir), ".libs")
    os.environ["PORTGUARD_BUILDDIR"] = os.path.abspath(args.builddir)
    for f in ("lib20_portguard_plugin.so", "libportguard_settings.so",
              "lib10_doveadm_portguard_plugin.so"):
        if not os.path.exists(os.path.join(libs, f)):
            sys.exit("%s/%s not built: run make at the top of the tree" % (libs, f))
    if not os.path.isdir(CGROUP_ROOT):
        sys.exit("%s: no cgroup v1 cpuacct hierarchy" % CGROUP_ROOT)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    mounts = Mounts(libs)
    cg_parent = None
    cgroups = {}
    inst = {}
    t_start = time.time()
    try:
        mounts.setup()
        cg_parent = os.path.join(CGROUP_ROOT, "portguard-bench-%d" % os.getpid())
        os.mkdir(cg_parent)
        base = args.port_base
        # name, plugin, ban_action, port offset
        spec = {"A": (False, None, 0), "B": (True, "reply", 100),
                "C": (True, "drop", 200), "D": (True, "reply", 300)}
        for v in VARIANTS:
            plugin, action, off = spec[v]
            cgroups[v] = Cgroup(os.path.join(cg_parent, v))
            extra = COMMON_CONF
            if action:
                extra += "portguard_ban_action = %s\n" % action
            inst[v] = BenchDovecot(cgroups[v], name="bench-%s" % v, plugin=plugin,
                                   ports=pgdovecot.default_ports(base + off),
                                   imap=False, extra_conf=extra, keep=args.keep)
        for v in VARIANTS:
            inst[v].start()
        print("\n".join(machine_info()))
        for v in VARIANTS:
            i = inst[v]
            print("instance %s: %-40s implicit TLS port %d, dir %s, cgroup %s"
                  % (v, DESCR[v], i.ports["implicit"], i.dir, cgroups[v].path))

        # ban the source on B and C (not on D: D's source is not banned)
        secs = max(3600, int(args.n * 4))
        for v in ("B", "C"):
            r = inst[v].doveadm("portguard", "ban", BANNED_SRC, "%d secs" % secs)
            if r.returncode != 0:
                raise RuntimeError("doveadm portguard ban failed on %s: %s%s"
                                   % (v, r.stdout, r.stderr))
            r = inst[v].doveadm("portguard", "list", "-b")
            if BANNED_SRC not in r.stdout:
                raise RuntimeError("%s not listed as banned on %s:\n%s%s"
                                   % (BANNED_SRC, v, r.stdout, r.stderr))

        ctx = tls_context()
        a_index = [0]

        def one(v):
            if v == "A":
                src = a_source(a_index[0])
                a_index[0] += 1
                return conn_session(inst[v].ports["implicit"], src, ctx, WRONG, 535)
            if v == "B":
                return conn_banned_reply(inst[v].ports["implicit"], BANNED_SRC, ctx)
            if v == "C":
                return conn_banned_drop(inst[v].ports["implicit"], BANNED_SRC)
            return conn_session(inst[v].ports["implicit"], LEGIT_SRC, ctx, PASSWORD, 235)

        # warm-up (also a functional check of every variant), not measured
        for _ in range(args.warmup):
            for v in VARIANTS:
                one(v)
        time.sleep(1.0)

        # idle background CPU of each instance (timers, stats, ...)
        idle0 = {v: cgroups[v].usage_ns() for v in VARIANTS}
        t_idle = time.perf_counter()
        time.sleep(args.idle)
        t_idle = time.perf_counter() - t_idle
        idle_rate = {v: (cgroups[v].usage_ns() - idle0[v]) / t_idle for v in VARIANTS}
        base_pids = {v: len(cgroups[v].pids()) for v in VARIANTS}

        print("Choice for A: every A connection comes from a fresh source "
              "address (127.0.1.1, 127.0.1.2, ...) and fails AUTH once, so "
              "Dovecot's anvil auth penalty (per IP, 2-15 s) never delays it "
              "and every connection costs what an attacker's first attempt "
              "costs. auth_failure_delay = 0 in all instances, but the 535 "
              "still waits for the auth process's failure-flush timer "
              "(about 0.5 s): idle time, not CPU. A's wall time is therefore "
              "dominated by that wait; the phase lines below also give A "
              "without it.")
        print("load average before: %s; measuring %d connections per variant, "
              "interleaved A,B,C,D,... one at a time" % (loadavg(), args.n))
        sys.stdout.flush()

        cpu0 = {v: cgroups[v].usage_ns() for v in VARIANTS}
        st0 = {v: cgroups[v].stat_ticks() for v in VARIANTS}
        m0 = {v: proc_cpu_ticks(inst[v].proc.pid) for v in VARIANTS}
        walls = {v: [] for v in VARIANTS}
        phases = {v: [] for v in VARIANTS}
        t_run = time.perf_counter()
        for k in range(args.n):
            for v in VARIANTS:
                w, ph = one(v)
                walls[v].append(w)
                phases[v].append(ph)
            if args.progress and (k + 1) % args.progress == 0:
                print("  %d/%d rounds, %.0f s" % (k + 1, args.n,
                                                   time.perf_counter() - t_run),
                      file=sys.stderr, flush=True)
        # let the last connections' processes exit (their CPU is charged
        # to the cgroup when they run; wait until only the long-lived
        # processes are left)
        deadline = time.time() + 10
        while time.time() < deadline and any(
                len(cgroups[v].pids()) > base_pids[v] for v in VARIANTS):
            time.sleep(0.05)
        time.sleep(0.3)
        t_run = time.perf_counter() - t_run
        cpu1 = {v: cgroups[v].usage_ns() for v in VARIANTS}
        st1 = {v: cgroups[v].stat_ticks() for v in VARIANTS}
        m1 = {v: proc_cpu_ticks(inst[v].proc.pid) for v in VARIANTS}
        load_after = loadavg()

        # ---- results
        n = args.n
        hz = os.sysconf("SC_CLK_TCK")
        cpu = {v: (cpu1[v] - cpu0[v]) / 1e6 / n for v in VARIANTS}   # ms/conn
        med = {v: statistics.median(walls[v]) * 1e3 for v in VARIANTS}
        p99 = {v: pct(walls[v], 99) * 1e3 for v in VARIANTS}

        print()
        print("Results: N=%d per variant, %d warm-up rounds, run %.1f s, "
              "load average after: %s" % (n, args.warmup, t_run, load_after))
        hdr = ("%-2s %-38s %9s %9s %11s %7s %7s %7s %7s"
               % ("", "variant", "med ms", "p99 ms", "CPU ms/conn",
                  "wall/A", "CPU/A", "wall/D", "CPU/D"))
        print(hdr)
        print("-" * len(hdr))
        for v in VARIANTS:
            print("%-2s %-38s %9.2f %9.2f %11.3f %7s %7s %7s %7s"
                  % (v, DESCR[v], med[v], p99[v], cpu[v],
                     ratio(med[v], med["A"]), ratio(cpu[v], cpu["A"]),
                     ratio(med[v], med["D"]), ratio(cpu[v], cpu["D"])))
        print("(wall ratios use the medians; CPU = instance cgroup cpuacct.usage "
              "delta / N, idle background included)")

        print()
        print("Per instance (master + all its processes), over the measured run:")
        hdr2 = ("%-2s %12s %10s %8s %14s %16s %15s"
                % ("", "cgroup ms", "ms/conn", "sys %", "idle ms/conn",
                   "master+reaped ms", "  ...ms/conn"))
        print(hdr2)
        print("-" * len(hdr2))
        for v in VARIANTS:
            tot = (cpu1[v] - cpu0[v]) / 1e6
            du = st1[v]["user"] - st0[v]["user"]
            ds = st1[v]["system"] - st0[v]["system"]
            sysp = 100.0 * ds / (du + ds) if du + ds else 0.0
            idle_pc = idle_rate[v] * t_run / 1e6 / n
            mt = ((m1[v][0] - m0[v][0]) + (m1[v][1] - m0[v][1])) * 1000.0 / hz
            print("%-2s %12.1f %10.3f %8.1f %14.4f %16.1f %15.3f"
                  % (v, tot, tot / n, sysp, idle_pc, mt, mt / n))
        print("(master+reaped = the master's own CPU plus that of its exited "
              "children, from /proc/<pid>/stat, %d Hz ticks; the long-lived "
              "config/log/auth/anvil/stats processes are only in the cgroup "
              "figure)" % hz)

        print()
        print("Client-side phases (medians, ms):")
        for v in ("A", "D"):
            tls = statistics.median(p["tls"] for p in phases[v]) * 1e3
            gr = statistics.median(p["greeting"] for p in phases[v]) * 1e3
            au = statistics.median(p["auth"] for p in phases[v]) * 1e3
            print("  %s: TLS handshake done %.2f, greeting %.2f, AUTH reply "
                  "wait %.2f (p99 %.2f)"
                  % (v, tls, gr, au, pct([p["auth"] for p in phases[v]], 99) * 1e3))
        tls = statistics.median(p["tls"] for p in phases["B"]) * 1e3
        print("  B: TLS handshake done %.2f" % tls)
        nbytes = sum(p["bytes"] for p in phases["C"])
        print("  C: bytes received before close: %d in total" % nbytes)
        wo = [w - p["auth"] for w, p in zip(walls["A"], phases["A"])]
        print("  A without the AUTH reply wait: median %.2f ms (B/that %.3f, "
              "C/that %.3f)" % (statistics.median(wo) * 1e3,
                                med["B"] / (statistics.median(wo) * 1e3),
                                med["C"] / (statistics.median(wo) * 1e3)))
        for v in VARIANTS:
            bad = [l for l in inst[v].log_text().splitlines()
                   if " Panic: " in l or " Fatal: " in l or " Error: " in l]
            if bad:
                print("note: %d error lines in %s's log, e.g. %s"
                      % (len(bad), v, bad[0]))
        print("total time %.0f s" % (time.time() - t_start))
        return 0
    finally:
        # no second Ctrl-C/TERM in the middle of the cleanup
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for v in list(inst):
            try:
                inst[v].cleanup()
            except Exception as e:  # keep cleaning up the rest
                print("warning: stopping %s: %s" % (v, e), file=sys.stderr)
        for cg in cgroups.values():
            cg.remove()
        if cg_parent is not None and os.path.isdir(cg_parent):
            try:
                os.rmdir(cg_parent)
            except OSError as e:
                print("warning: %s: %s" % (cg_parent, e), file=sys.stderr)
        mounts.cleanup()


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200,
                    help="measured connections per variant (default 200)")
    ap.add_argument("--warmup", type=int, default=5,
                    help="unmeasured rounds first (default 5)")
    ap.add_argument("--idle", type=float, default=2.0,
                    help="seconds of idle-CPU measurement (default 2)")
    ap.add_argument("--port-base", type=int, default=20000,
                    help="ports: base+465 etc. for A, base+100+... for B, "
                         "+200 C, +300 D (default 20000)")
    ap.add_argument("--builddir", default=os.environ.get("PORTGUARD_BUILDDIR", REPO),
                    help="where .libs/ is (default: top of the tree)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the instance dirs (/tmp/portguard-bench-*)")
    ap.add_argument("--progress", type=int, default=50,
                    help="progress line every N rounds on stderr (0: none)")
    args = ap.parse_args()
    if args.n < 1:
        ap.error("--n must be >= 1")
    if os.geteuid() != 0:
        sys.exit("bench-refused.py needs root (Dovecot, cgroups, bind mounts)")
    if os.environ.get(NS_ENV) != "1":
        os.environ[NS_ENV] = "1"
        argv = ["unshare", "-m", "--propagation", "private",
                sys.executable, os.path.abspath(__file__)] + sys.argv[1:]
        os.execvp("unshare", argv)
    try:
        return run(args)
    except (KeyboardInterrupt, Stop) as e:
        print("interrupted (%s); everything stopped" % (str(e) or "Ctrl-C"), file=sys.stderr)
        return 130
    except Unexpected as e:
        print("unexpected server behaviour: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
