"""The login processes' settings cache (src/login/portguard-config-cache.c).

With service_count = 1 every connection is a new login process. The first
one asks the config service for portguard's settings and leaves them in
<base_dir>/portguard-settings.cache, keyed by the master's status pipe of
the service; later processes of the same service generation read the file
instead of making a config request. A reload creates new pipes: the next
processes must use the new settings, never the cached old ones.

Instance on pgdovecot.instance_ports(50) (no imap)."""

import os
import re
import ssl
import time

import pytest

import pgdovecot
from pgdovecot import RawSMTP, tls_context

SRC = "127.0.0.40"

# Dovecot 2.4 makes no config request per login process: there is nothing
# to cache (portguard-config-cache.c is 2.3 only).
pytestmark = pytest.mark.dovecot23_only(
    reason="2.4 login processes read settings without a config request")


@pytest.fixture(scope="module")
def dvc():
    inst = pgdovecot.started_instance("cfgcache", 50, min_tls="TLSv1.2")
    yield inst
    inst.cleanup()


def cache_path(dv):
    return os.path.join(dv.dir, "run", "portguard-settings.cache")


def tls12_refused(dv):
    """True if a TLS 1.2 session on the implicit-TLS port gets the 421,
    False if it gets the greeting."""
    c = RawSMTP(dv.ports["implicit"], src=SRC, implicit_tls=tls_context("TLSv1.2"))
    try:
        code, lines = c.reply()
    except ssl.SSLError as e:
        pytest.fail("TLS error: %r" % e)
    finally:
        c.close()
    if code == 220:
        return False
    assert code == 421 and re.match(r"421 4\.7\.0 ", lines[0]), lines
    return True


def wait_cache(dv, pattern, timeout=10):
    rx = re.compile(pattern, re.M)
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        try:
            with open(cache_path(dv)) as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        if rx.search(text):
            return text
        time.sleep(0.1)
    pytest.fail("cache never matched %r:\n%s" % (pattern, text))


def test_cache_written_then_read(dvc):
    assert not tls12_refused(dvc)
    text = wait_cache(dvc, r"^portguard_min_tls_protocol\tTLSv1\.2$")
    assert text.startswith("portguard-settings-cache 1\tsubmission-login\t"), text
    st = os.stat(cache_path(dvc))
    assert st.st_uid == 0 and (st.st_mode & 0o077) == 0, oct(st.st_mode)
    # the next processes read it and leave it alone
    for _ in range(3):
        assert not tls12_refused(dvc)
    st2 = os.stat(cache_path(dvc))
    assert (st2.st_ino, st2.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)


def test_cache_is_what_the_processes_use(dvc):
    """A root-owned cache with this generation's key is trusted as is: a
    forged minimum shows that the file, not a config request, decides. The
    same file writable by others is ignored."""
    assert not tls12_refused(dvc)
    text = wait_cache(dvc, r"^portguard_min_tls_protocol\tTLSv1\.2$")
    forged = text.replace("portguard_min_tls_protocol\tTLSv1.2",
                          "portguard_min_tls_protocol\tTLSv1.3")
    path = cache_path(dvc)
    tmp = path + ".test"
    with open(tmp, "w") as f:
        f.write(forged)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)
    assert tls12_refused(dvc), "the forged cache (TLSv1.3) was not used"
    os.chmod(path, 0o666)
    assert not tls12_refused(dvc), "a world-writable cache was trusted"
    # ... and the process that ignored it wrote a good one
    wait_cache(dvc, r"^portguard_min_tls_protocol\tTLSv1\.2$")
    assert (os.stat(path).st_mode & 0o077) == 0


def test_corrupt_cache_ignored(dvc):
    with open(cache_path(dvc), "w") as f:
        f.write("garbage\n\tmore\n")
    os.chmod(cache_path(dvc), 0o600)
    assert not tls12_refused(dvc)
    wait_cache(dvc, r"^portguard_min_tls_protocol\tTLSv1\.2$")


def test_reload_uses_new_settings(dvc):
    assert not tls12_refused(dvc)
    wait_cache(dvc, r"^portguard_min_tls_protocol\tTLSv1\.2$")
    dvc.min_tls = "TLSv1.3"
    dvc.write_config()
    r = dvc.doveadm("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    # the reload is asynchronous: wait for the new generation
    deadline = time.time() + 15
    while not tls12_refused(dvc):
        assert time.time() < deadline, \
            "TLS 1.2 still accepted after the reload to TLSv1.3:\n" + dvc.tail()
        time.sleep(0.2)
    wait_cache(dvc, r"^portguard_min_tls_protocol\tTLSv1\.3$")
    # and it stays refused (no process goes back to the old cache)
    for _ in range(3):
        assert tls12_refused(dvc)
