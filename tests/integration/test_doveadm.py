"""doveadm portguard list | ban | unban | flush, on both state backends.

run.sh bind-mounts a copy of Dovecot's doveadm module dir with the build's
lib10_doveadm_portguard_plugin.so, so `doveadm -c <conf> portguard ...`
works on the test instances.  The `adm` fixture runs every test twice: on a
shm instance (the table file base_dir/portguard.state, test_redis's
instance j=5) and on a Redis one (j=6, Redis k=4, see pgredis.redis_port,
with a key prefix: prefix=pgadm/).  Sources
are 127.0.2.x.
"""

import json
import re
import time
from types import SimpleNamespace

import pytest

from test_ratelimit import (LIMIT, connect_starttls,
                            expect_greeting_starttls_port,
                            expect_refused_starttls_port, fail,
                            fail_reaching_limit, login_ok, refused_line_re,
                            skip_anvil_penalty, wait_lines)
from test_redis import make_instance, redis_conf, start_redis

PREFIX = "pgadm/"       # the Redis instance's key prefix
EX_NOTFOUND = 68        # DOVEADM_EX_NOTFOUND
COLUMNS = ["key", "state", "failures", "ban_remaining", "ban_level",
           "ban_until", "last_seen"]


@pytest.fixture(scope="module", params=["shm", "redis"])
def adm(request):
    redis = dv = None
    try:
        if request.param == "redis":
            redis = start_redis(4, "redis-doveadm")
            dv = make_instance("adm-redis", 600, redis_conf(redis, prefix=PREFIX))
        else:
            dv = make_instance("adm-shm", 500)
        yield SimpleNamespace(dv=dv, backend=request.param, redis=redis)
    finally:
        if dv is not None:
            dv.cleanup()
        if redis is not None:
            redis.cleanup()


def pg(adm, *args):
    r = adm.dv.doveadm("portguard", *args)
    print("doveadm portguard %s -> %d\n%s%s" % (" ".join(args), r.returncode,
                                              r.stdout, r.stderr))
    return r


def list_table(adm, *args):
    """Rows of `doveadm portguard list` (the default table format) by key.
    ban_until and last_seen hold a space: only the first five columns are
    split, the rest stays together."""
    r = pg(adm, "list", *args)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines and lines[0].split() == COLUMNS, r.stdout
    rows = {}
    for line in lines[1:]:
        f = line.split(None, 5)
        assert len(f) == 6, line
        rows[f[0]] = dict(zip(COLUMNS[:5], f[:5]), rest=f[5])
    return rows


def list_json(adm, *args):
    r = adm.dv.doveadm("-f", "json", "portguard", "list", *args)
    assert r.returncode == 0, r.stderr
    entries = json.loads(r.stdout)
    for e in entries:
        assert sorted(e) == sorted(COLUMNS), e
    return {e["key"]: e for e in entries}


def local_time(s):
    return time.mktime(time.strptime(s, "%Y-%m-%d %H:%M:%S"))


# --------------------------------------------------------------------------


def test_doveadm_ban_list_unban(adm):
    dv, src = adm.dv, "127.0.2.2"
    r = pg(adm, "ban", src)
    assert r.returncode == 0, r.stderr
    assert "ban key=%s ban_secs=900 manual=yes" % src in r.stderr, r.stderr

    rows = list_table(adm)
    assert src in rows, rows
    row = rows[src]
    assert row["state"] == "banned(manual)", row
    assert 890 <= int(row["ban_remaining"]) <= 900, row
    assert row["ban_level"] == "1", row
    entries = list_json(adm)
    assert entries[src]["state"] == "banned(manual)", entries
    assert 890 <= int(entries[src]["ban_remaining"]) <= 900, entries
    assert src in list_json(adm, "-b")

    # refused at connect
    since = dv.log_size()
    expect_refused_starttls_port(dv, src)
    assert wait_lines(dv, refused_line_re(src), since), dv.tail()

    # unbanned: connects and authenticates at once
    r = pg(adm, "unban", src)
    assert r.returncode == 0, r.stderr
    t0 = time.monotonic()
    c = connect_starttls(dv, src)
    login_ok(c)
    c.close()
    took = time.monotonic() - t0
    print("%s: login right after unban: %.3f s" % (adm.backend, took))
    assert took < 5, took
    assert src not in list_json(adm, "-b")
    entries = list_json(adm)
    assert src not in entries or entries[src]["state"] == "counting", entries


def test_doveadm_unban_unknown(adm):
    r = pg(adm, "unban", "127.0.2.99")
    assert r.returncode == EX_NOTFOUND, (r.returncode, r.stderr)
    assert "not tracked" in r.stderr, r.stderr
    r = pg(adm, "unban", "not-an-address")
    assert r.returncode != 0, r.stderr
    r = pg(adm, "ban", "127.0.2.98", "soon")
    assert r.returncode != 0, r.stderr
    assert "127.0.2.98" not in list_json(adm)


def test_doveadm_ban_duration_forms(adm):
    """Durations as Dovecot writes them, short units, or plain seconds."""
    for src, duration, secs in (("127.0.2.31", "2h", 7200),
                                ("127.0.2.32", "90 secs", 90),
                                ("127.0.2.33", "300", 300)):
        r = pg(adm, "ban", src, duration)
        assert r.returncode == 0, (duration, r.stderr)
        assert "ban key=%s ban_secs=%d manual=yes" % (src, secs) in r.stderr, \
            (duration, r.stderr)
        pg(adm, "unban", src)


def test_doveadm_ban_duration(adm):
    src = "127.0.2.3"
    r = pg(adm, "ban", src, "10 mins")
    now = time.time()
    assert r.returncode == 0, r.stderr
    assert "ban key=%s ban_secs=600 manual=yes" % src in r.stderr, r.stderr
    e = list_json(adm)[src]
    print("%s: %r" % (adm.backend, e))
    assert e["state"] == "banned(manual)", e
    assert 595 <= int(e["ban_remaining"]) <= 600, e
    assert abs(local_time(e["ban_until"]) - (now + 600)) <= 5, e
    expect_refused_starttls_port(adm.dv, src)


def test_doveadm_auto_ban_listed(adm):
    """A ban made by LIMIT failures: state banned, ban_level 1."""
    dv, src = adm.dv, "127.0.2.4"
    skip_anvil_penalty(dv, src)
    c = connect_starttls(dv, src)
    for _ in range(LIMIT - 1):
        fail(c)
    fail_reaching_limit(c)
    rows = list_table(adm, "-b")
    assert src in rows, rows
    row = rows[src]
    assert row["state"] == "banned", row
    assert row["ban_level"] == "1", row
    assert 0 < int(row["ban_remaining"]) <= 900, row
    e = list_json(adm)[src]
    assert (e["state"], e["ban_level"]) == ("banned", "1"), e
    if adm.redis is not None:
        # the login processes wrote it under the prefix, doveadm found it
        bkey = PREFIX + "portguard/b/" + src
        assert adm.redis.get(bkey), adm.redis.keys()
        assert 0 < adm.redis.ttl(bkey), bkey


def test_doveadm_flush(adm):
    dv = adm.dv
    for src in ("127.0.2.5", "127.0.2.6"):
        assert pg(adm, "ban", src).returncode == 0
    expect_refused_starttls_port(dv, "127.0.2.5")
    assert {"127.0.2.5", "127.0.2.6"} <= set(list_json(adm))
    if adm.redis is not None:
        # a key outside the prefix that flush must leave alone
        adm.redis.cli("SET", "other/portguard/b/127.0.2.7", "keep")
    r = pg(adm, "flush")
    assert r.returncode == 0, r.stderr
    assert list_json(adm) == {}
    assert list_table(adm) == {}
    if adm.redis is not None:
        assert adm.redis.keys(PREFIX + "*") == [], adm.redis.keys()
        assert adm.redis.get("other/portguard/b/127.0.2.7") == "keep"
    # forgotten: welcome again
    expect_greeting_starttls_port(dv, "127.0.2.5")
    c = connect_starttls(dv, "127.0.2.6")
    login_ok(c)
    c.close()


def test_doveadm_zz_no_errors(adm):
    bad = [l for l in adm.dv.log_text().splitlines()
           if re.search(r"\b(Panic|Fatal|Error):", l) or "killed with signal" in l]
    assert not bad, "\n".join(bad)
