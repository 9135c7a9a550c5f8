"""Lockout traps: known users (portguard_known_user_period,
portguard_known_user_fail_limit).

A user who authenticated successfully from an address is "known" there;
its failures count against its own limit before they count against the
address, so a phone retrying a stale password, or one user behind a
shared NAT address, does not get everyone behind that address banned.
Unknown users (and known users past their own limit) count as before.

Instances (ports pgdovecot.instance_ports(30 + k), no imap):
`known` (limit 3, known-user limit 4) and `known_off` (the same with
portguard_known_user_period = 0). Every test uses source addresses of
its own (127.0.0.40-49). See test_ratelimit.py for the anvil penalty and
why each test first "primes" the wrong passwords it sends.
"""

import ipaddress
import os
import smtplib

import pytest

import pgdovecot
import pgredis
from pgdovecot import PASSWORD, USER, parse_kv, plain_b64
from test_ratelimit import (BANNED_421, TIMEOUT, WRONG, auth, ban_line_re,
                            connect_implicit, connect_starttls,
                            expect_greeting_starttls_port,
                            expect_refused_starttls_port, fail,
                            fail_reaching_limit, login_ok, server_for,
                            wait_lines)

KEY_LIMIT = 3
KNOWN_LIMIT = 4
OTHER_USER = "nobody@example.org"

CONF = """
auth_failure_delay = 0
portguard_auth_fail_limit = %d
portguard_known_user_fail_limit = %d
""" % (KEY_LIMIT, KNOWN_LIMIT) + pgdovecot.metric_conf(
    "portguard_known", "event=portguard_known_user_failure", ("counted_against",))


def make_instance(name, offset, conf=""):
    """Instance k = offset / 100 of this file (slot 30 + k)."""
    return pgdovecot.started_instance(name, 30 + offset // 100, CONF + conf)


@pytest.fixture(scope="module")
def known():
    inst = make_instance("known", 0, "log_debug = event=portguard_known_user_failure\n")
    yield inst
    inst.cleanup()


@pytest.fixture(scope="module")
def known_redis():
    """The same as `known` with the Redis state backend."""
    srv = pgredis.started_redis(7, "redis-known")
    try:
        inst = make_instance("known-redis", 200,
                             "log_debug = event=portguard_known_user_failure\n" +
                             pgdovecot.redis_state_conf(srv.port))
    except Exception:
        srv.cleanup()
        raise
    inst.redis = srv
    yield inst
    inst.cleanup()
    srv.cleanup()


@pytest.fixture(scope="module")
def known_off():
    inst = make_instance("known-off", 100, "portguard_known_user_period = 0\n")
    yield inst
    inst.cleanup()


def prime(dv, src, *users):
    """Teach Dovecot's anvil penalty the wrong passwords of users (failures on
    the unguarded port, then a success, which resets the penalty): the same
    failures later on are not delayed. portguard counts nothing there."""
    with smtplib.SMTP(server_for(src), dv.ports["unguarded"], source_address=(src, 0),
                      timeout=TIMEOUT) as s:
        s.ehlo("client.example.org")
        for user in users:
            code, text = s.docmd("AUTH", "PLAIN " + plain_b64(user=user, password=WRONG))
            assert code == 535, text
        code, text = s.docmd("AUTH", "PLAIN " + plain_b64())
        assert code == 235, text


def fail_as(c, user):
    code, lines = c.cmd("AUTH PLAIN " + plain_b64(user=user, password=WRONG))
    assert code == 535, lines


def known_lines(dv, since, src):
    return [parse_kv(l) for l in dv.log_since(since).splitlines()
            if "portguard: known_user_failure key=%s " % src in l]


@pytest.mark.parametrize("backend,src", [("shm", "127.0.0.40"), ("redis", "127.0.0.46")])
def test_known_user_gets_own_limit(request, backend, src):
    """The stale-password phone: after a success from the address, the user's
    failures do not ban the address until the user's own limit (4) is used
    up; then they count against the address as before (3 more: banned).
    Both state backends."""
    dv = request.getfixturevalue("known" if backend == "shm" else "known_redis")
    prime(dv, src, USER)
    since = dv.log_size()
    c = connect_starttls(dv, src)
    login_ok(c)
    c.close()

    for _ in range(KNOWN_LIMIT):
        c = connect_implicit(dv, src)
        fail(c)
        c.close()
    # 4 failures > the address's limit of 3, still no ban
    assert not wait_lines(dv, ban_line_re(src), since, timeout=1)
    expect_greeting_starttls_port(dv, src)
    c = connect_starttls(dv, src)
    login_ok(c)
    c.close()

    # the success forgot the user's failures: 4 absorbed again, then the
    # address counts: 3 more ban it (7 failures in all)
    c = connect_starttls(dv, src)
    for _ in range(KNOWN_LIMIT + KEY_LIMIT - 1):
        fail(c)
    fail_reaching_limit(c)
    lines = wait_lines(dv, ban_line_re(src), since)
    assert len(lines) == 1, dv.tail()
    assert parse_kv(lines[0])["failures"] == str(KEY_LIMIT)
    expect_refused_starttls_port(dv, src)

    counted = [kv["counted_against"] for kv in known_lines(dv, since, src)]
    assert counted == ["user"] * (2 * KNOWN_LIMIT) + ["key"] * KEY_LIMIT, counted
    for kv in known_lines(dv, since, src):
        # the user name is logged (escaped), never a password
        assert kv["user"] == USER
        assert WRONG not in str(kv) and PASSWORD not in str(kv)
    if backend == "redis":
        # the records hold a hash, never the name
        keys = dv.redis.keys("portguard/k*")
        assert any(k.startswith("portguard/k/") for k in keys), keys
        assert not any(USER in k for k in keys), keys


def test_unknown_user_still_banned_at_address_limit(known):
    """A known user does not shield others behind the same address: another
    user's failures count against the address (3: banned)."""
    dv, src = known, "127.0.0.41"
    prime(dv, src, USER, OTHER_USER)
    since = dv.log_size()
    c = connect_starttls(dv, src)
    login_ok(c)
    c.close()
    c = connect_starttls(dv, src)
    for _ in range(KEY_LIMIT - 1):
        fail_as(c, OTHER_USER)
    code, lines = c.cmd("AUTH PLAIN " + plain_b64(user=OTHER_USER, password=WRONG))
    assert code == 535, lines
    data, closed = c.read_until_eof(10)
    c.close()
    assert data.splitlines()[:1] == [BANNED_421], data
    assert len(wait_lines(dv, ban_line_re(src), since)) == 1, dv.tail()
    assert known_lines(dv, since, src) == []


def test_known_user_is_per_address(known):
    """Known from one address says nothing about another address."""
    dv, src_a, src_b = known, "127.0.0.42", "127.0.0.43"
    prime(dv, src_a, USER)
    prime(dv, src_b, USER)
    since = dv.log_size()
    c = connect_starttls(dv, src_a)
    login_ok(c)
    c.close()
    c = connect_implicit(dv, src_b)
    for _ in range(KEY_LIMIT - 1):
        fail(c)
    fail_reaching_limit(c)
    assert len(wait_lines(dv, ban_line_re(src_b), since)) == 1, dv.tail()
    expect_greeting_starttls_port(dv, src_a)


def test_known_users_not_listed(known):
    """doveadm portguard list shows addresses only, never the known-user
    records (which hold no name, only a keyed hash)."""
    dv, src = known, "127.0.0.44"
    c = connect_starttls(dv, src)
    login_ok(c)
    c.close()
    r = dv.doveadm("-f", "tab", "portguard", "list")
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()[1:]
    for row in rows:
        key = row.split("\t")[0]
        ipaddress.ip_network(key, strict=False)   # raises if not an address
    # the shm file holds no user name
    with open(os.path.join(dv.dir, "run", "portguard.state"), "rb") as f:
        assert USER.encode() not in f.read()


def test_period_zero_turns_it_off(known_off):
    """portguard_known_user_period = 0: a success changes nothing, the
    address is banned at its limit (3)."""
    dv, src = known_off, "127.0.0.45"
    prime(dv, src, USER)
    since = dv.log_size()
    c = connect_starttls(dv, src)
    login_ok(c)
    c.close()
    c = connect_implicit(dv, src)
    for _ in range(KEY_LIMIT - 1):
        fail(c)
    fail_reaching_limit(c)
    assert len(wait_lines(dv, ban_line_re(src), since)) == 1, dv.tail()


def test_bad_known_user_limit_names_the_key(known):
    conf = os.path.join(known.dir, "bad-known.conf")
    with open(conf, "w") as f:
        f.write(known.config_text(extra=CONF + "portguard_known_user_fail_limit = 17\n"))
    r = known.doveconf("-n", conf=conf)
    assert r.returncode != 0
    assert "portguard_known_user_fail_limit: must be 1..16" in r.stderr, r.stderr
