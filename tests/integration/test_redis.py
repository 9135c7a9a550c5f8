"""Failed-AUTH rate limiting with the state in Redis (portguard_state =
dict:redis:...), through Dovecot's dict layer.

Private redis-servers (pgredis.RedisServer: own dir, no persistence,
127.0.0.1:PORTGUARD_TEST_PORT_BASE + 900 + k) and private Dovecot
instances (ports pgdovecot.instance_ports(20 + j), no imap):

  j=0 `rd_a`, j=1 `rd_b`: both on Redis k=0 (shared bans and counts)
  j=2 redis down (k=1), j=3 redis frozen (k=2), j=4 fail closed (k=3)
  (test_doveadm.py: j=5 shm, j=6 Redis k=4 with prefix=pgadm/)

Every test uses source addresses of its own (127.0.1.x).  The helpers
(connections, failures, Dovecot's anvil penalty workaround
skip_anvil_penalty, log checks) are test_ratelimit's; see its docstring.
"""

import collections
import re
import threading
import time

import pytest

import pgdovecot
import pgredis
from pgdovecot import RawSMTP, parse_kv, tls_context
from test_ratelimit import (BANNED_421, LIMIT, RL_CONF, TIMEOUT,
                            concurrent_auths, tally_concurrent,
                            ban_line_re, connect_implicit, connect_starttls,
                            expect_greeting_starttls_port,
                            expect_refused_starttls_port, fail,
                            fail_reaching_limit, login_ok, refused_line_re,
                            skip_anvil_penalty, stats, wait_lines)

# what portguard adds to the redis: URI: expire_secs = 2 * ban_duration_max
# + fail_window (defaults: 1 day, 10 mins)
EXPIRE_SECS = 2 * 86400 + 600
BAN_SECS = 900
STATE_DOWN_421 = "421 4.7.0 Temporary failure, try again later"
STATE_ERROR_RE = r"portguard: state_error op=(\w+) fail=%s: "

STATE_ERROR_METRIC = pgdovecot.metric_conf(
    "portguard_state_error", "event=portguard_state_error", ("operation",))


def redis_conf(redis, extra="", prefix=None):
    return (STATE_ERROR_METRIC +
            pgdovecot.redis_state_conf(redis.port, prefix=prefix) + extra)


def make_instance(name, offset, conf=""):
    """Instance j = offset / 100 of this file (slot 20 + j)."""
    return pgdovecot.started_instance(name, 20 + offset // 100, RL_CONF + conf)


start_redis = pgredis.started_redis


@pytest.fixture(scope="module")
def redis_shared():
    srv = start_redis(0, "redis-shared")
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def rd_a(redis_shared):
    inst = make_instance("rd-a", 0, redis_conf(redis_shared))
    yield inst
    inst.cleanup()


@pytest.fixture(scope="module")
def rd_b(redis_shared):
    inst = make_instance("rd-b", 100, redis_conf(redis_shared))
    yield inst
    inst.cleanup()


@pytest.fixture
def redis_own():
    """Start Redis servers of the test's own (to kill or freeze):
    redis_own(k); all are stopped after the test, whatever happened."""
    started = []

    def start(k):
        srv = start_redis(k, "redis-%d" % k)
        started.append(srv)
        return srv
    yield start
    for srv in started:
        srv.cleanup()


def skip_parallel(pairs):
    """skip_anvil_penalty(dv, src) for every (dv, src) pair, in parallel."""
    errors = []

    def run(dv, src):
        try:
            skip_anvil_penalty(dv, src)
        except BaseException as e:      # re-raised below
            errors.append(e)
    threads = [threading.Thread(target=run, args=p) for p in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    if errors:
        raise errors[0]


def fail_keys(redis, src):
    return redis.keys("portguard/f/%s/*" % src)


def bad_lines(dv, allow_errors=False):
    rx = r"\b(Panic|Fatal):" if allow_errors else r"\b(Panic|Fatal|Error):"
    return [l for l in dv.log_text().splitlines()
            if re.search(rx, l) or "killed with signal" in l]


def timed_login(dv, src):
    """Connect (STARTTLS port), EHLO, STARTTLS, EHLO, AUTH with the right
    password, QUIT: seconds taken, and seconds until the greeting."""
    t0 = time.monotonic()
    c = RawSMTP(dv.ports["starttls"], src=src, timeout=TIMEOUT)
    code, lines = c.reply()
    t_greet = time.monotonic() - t0
    assert code == 220, lines
    code, lines = c.cmd("EHLO client.example.org")
    assert code == 250, lines
    code, lines = c.cmd("STARTTLS")
    assert code == 220, lines
    c.starttls(tls_context())
    code, lines = c.cmd("EHLO client.example.org")
    assert code == 250, lines
    login_ok(c)
    code, lines = c.cmd("QUIT")
    c.close()
    return time.monotonic() - t0, t_greet


def expect_counter(redis, src, value=1, timeout=5.0):
    """src's failure counter key appears in Redis with value and a TTL."""
    deadline = time.time() + timeout
    while True:
        keys = fail_keys(redis, src)
        if keys or time.time() > deadline:
            break
        time.sleep(0.1)
    assert len(keys) == 1, "expected one counter key for %s, got %r (all: %r)" \
        % (src, keys, redis.keys("portguard/*"))
    assert redis.get(keys[0]) == str(value), (keys[0], redis.get(keys[0]))
    ttl = redis.ttl(keys[0])
    assert 0 < ttl <= EXPIRE_SECS, (keys[0], ttl)
    return keys[0], ttl


def metric_count(dv, name, group):
    """count of `<name>_<group>` in doveadm stats dump (0 if absent)."""
    m = re.search(r"(?m)^%s_%s\tduration\t(\d+)\t" % (re.escape(name), re.escape(group)),
                  stats(dv))
    return int(m.group(1)) if m else 0


# --------------------------------------------------------------------------
# 1. five failures over both ports: banned, shown in Redis with TTLs


def test_redis_ban_across_ports(rd_a, redis_shared):
    dv, redis = rd_a, redis_shared
    src, other = "127.0.1.2", "127.0.1.3"
    skip_anvil_penalty(dv, src)
    since = dv.log_size()
    c = connect_starttls(dv, src)
    for _ in range(3):
        fail(c)
    c.close()

    # counted in Redis: one counter (this window) holding 3, expiring
    key, ttl = expect_counter(redis, src, 3)
    print("after 3 failures: %s = 3, TTL %d s" % (key, ttl))
    assert re.fullmatch(r"portguard/f/127\.0\.1\.2/\d+", key), key
    assert redis.get("portguard/b/%s" % src) is None

    c = connect_implicit(dv, src)
    fail(c)
    c.close()
    c = connect_implicit(dv, src)
    fail_reaching_limit(c)
    now = time.time()

    lines = wait_lines(dv, ban_line_re(src), since)
    assert len(lines) == 1, "expected one ban line for %s:\n%s" % (src, dv.tail())
    kv = parse_kv(lines[0])
    assert (kv["failures"], kv["ban_secs"], kv["ban_level"], kv["port"]) == \
        (str(LIMIT), str(BAN_SECS), "1", str(dv.ports["implicit"])), lines[0]

    # the ban record: "v1 <ban_until> <last_ban_start> <level> <flags>"
    bkey = "portguard/b/%s" % src
    value = redis.get(bkey)
    ttl = redis.ttl(bkey)
    print("ban record: %s = %r, TTL %d s; keys now: %r"
          % (bkey, value, ttl, redis.keys("portguard/*%s*" % src)))
    assert value is not None, redis.keys("portguard/*")
    m = re.fullmatch(r"v1 (\d+) (\d+) (\d+) (\d+)", value)
    assert m, value
    until, start, level = int(m.group(1)), int(m.group(2)), int(m.group(3))
    assert level == 1, value
    assert abs(start - now) <= 5, value
    assert until - start == BAN_SECS, value
    assert 0 < ttl <= EXPIRE_SECS, ttl

    # refused at connect, on both ports
    expect_refused_starttls_port(dv, src)
    c = RawSMTP(dv.ports["implicit"], src=src, timeout=TIMEOUT, implicit_tls=tls_context())
    first = c.readline()
    c.close()
    assert first == BANNED_421, first
    refused = wait_lines(dv, refused_line_re(src), since, count=3)
    assert len(refused) >= 3, "\n".join(refused)

    # another source is not affected
    c = connect_starttls(dv, other)
    login_ok(c)
    c.close()


# --------------------------------------------------------------------------
# 2. two Dovecot instances on one Redis share counts and bans


def test_redis_shared_between_instances(rd_a, rd_b, redis_shared):
    src = "127.0.1.4"
    # anvil is per instance: skip its penalty on both (at the same time:
    # each costs Dovecot's 4 s penalty wait)
    skip_parallel([(rd_a, src), (rd_b, src)])
    since_a, since_b = rd_a.log_size(), rd_b.log_size()

    c = connect_starttls(rd_a, src)
    for _ in range(3):
        fail(c)
    c.close()
    expect_counter(redis_shared, src, 3)

    c = connect_implicit(rd_b, src)
    fail(c)                     # 4th, on B: no ban yet
    fail_reaching_limit(c)      # 5th, on B: banned

    lines = wait_lines(rd_b, ban_line_re(src), since_b)
    assert len(lines) == 1, "B did not ban after 3 failures on A and 2 on B:\n" \
        + rd_b.tail()
    assert parse_kv(lines[0])["failures"] == str(LIMIT), lines[0]
    assert not re.search(ban_line_re(src), rd_a.log_since(since_a))

    # banned on both
    expect_refused_starttls_port(rd_a, src)
    expect_refused_starttls_port(rd_b, src)
    assert wait_lines(rd_a, refused_line_re(src), since_a), rd_a.tail()
    assert wait_lines(rd_b, refused_line_re(src), since_b), rd_b.tail()
    # and another source is welcome on both
    expect_greeting_starttls_port(rd_a, "127.0.1.5")
    expect_greeting_starttls_port(rd_b, "127.0.1.5")


# --------------------------------------------------------------------------
# 3. concurrency: 20 AUTHs from one source at the same moment, limit 5


def test_redis_concurrent_failures(rd_a, redis_shared):
    dv, src, n = rd_a, "127.0.1.30", 20
    skip_anvil_penalty(dv, src)
    since = dv.log_size()
    t0 = time.time()
    results = concurrent_auths(dv, src, n)
    errors = [r for r in results if r is None or r[0] == "error"]
    assert not errors, errors
    n535, n421_start, n421_after, other = tally_concurrent(results)
    bans = wait_lines(dv, ban_line_re(src), since)
    time.sleep(0.5)
    bans = [l for l in dv.log_since(since).splitlines() if re.search(ban_line_re(src), l)]
    outcomes = collections.Counter(
        (r[0], (r[2].splitlines() or ["<nothing>"])[0], "closed" if r[3] else "open")
        for r in results)
    print("\nredis concurrency: %d connections from %s, limit %d: %d AUTHs "
          "checked (535), %d refused at AUTH start (421), %d closed with "
          "the 421 after their 535, other replies %r, %d ban lines; %.1f s"
          % (n, src, LIMIT, n535, n421_start, n421_after, other, len(bans),
             time.time() - t0))
    for outcome, count in sorted(outcomes.items(), key=str):
        print("  %2d x %r" % (count, outcome))
    print("  ban record: %r; ban lines:\n  %s"
          % (redis_shared.get("portguard/b/%s" % src), "\n  ".join(bans)))
    assert not other, results
    assert n535 + n421_start == n, results
    # every attempt reads the shared total after its own atomic increment
    # and only those that read a total within the limit are checked: at
    # most LIMIT passwords (fewer, even none, when racing attempts push the
    # total past the limit before an earlier one reads it)
    assert n535 <= LIMIT, \
        "%d password checks for %d parallel AUTHs with limit %d" \
        % (n535, n, LIMIT)
    assert bans, dv.tail()
    assert redis_shared.get("portguard/b/%s" % src), redis_shared.keys("portguard/*")
    expect_refused_starttls_port(dv, src)


# --------------------------------------------------------------------------
# 4. Redis killed: logins go on (fail open), an error is logged (once a
#    minute across processes); Redis back: counting again


def test_redis_down_fails_open(redis_own):
    redis = redis_own(1)
    dv = make_instance("rd-down", 200, redis_conf(redis))
    try:
        src, src2, src3 = "127.0.1.10", "127.0.1.11", "127.0.1.12"
        up = [timed_login(dv, src) for _ in range(2)]
        t_up = min(t for t, _ in up)
        assert not re.search(STATE_ERROR_RE % r"\w+", dv.log_text()), dv.tail()

        since = dv.log_size()
        redis.kill()
        t_down, greet_down = timed_login(dv, src)
        print("\nredis down: login %.3f s (greeting %.3f s), with redis up "
              "%.3f s: %+.3f s" % (t_down, greet_down, t_up, t_down - t_up))
        assert t_down - t_up < 1.0, "login with Redis down took %.2f s, " \
            "up %.2f s" % (t_down, t_up)
        line = dv.wait_log(STATE_ERROR_RE % "open", since)
        assert line, "no state_error line:\n" + dv.tail()
        print(line)
        assert "Error:" in line, line

        # another connection (another login process): it works too, the
        # event is counted, but the error is not logged again
        t2, _ = timed_login(dv, src2)
        assert t2 - t_up < 1.0, t2
        deadline = time.time() + 10
        while metric_count(dv, "portguard_state_error", "check") < 2 and \
                time.time() < deadline:
            time.sleep(0.2)
        events = metric_count(dv, "portguard_state_error", "check")
        errors = wait_lines(dv, STATE_ERROR_RE % "open", since)
        print("state_error events: %d, error lines: %d" % (events, len(errors)))
        assert events >= 2, stats(dv)
        assert len(errors) == 1, "\n".join(errors)

        # Redis back (same port, empty): a failure is counted again
        redis.start()
        c = connect_starttls(dv, src3)
        fail(c)
        c.close()
        key, ttl = expect_counter(redis, src3, 1)
        print("redis back: %s TTL %d" % (key, ttl))
        assert not bad_lines(dv, allow_errors=True), "\n".join(bad_lines(dv, True))
    finally:
        dv.cleanup()


# --------------------------------------------------------------------------
# 5. Redis frozen (SIGSTOP): TCP connects, nothing answers; the login goes
#    on after portguard_state_timeout (500 ms)


def test_redis_frozen_fails_open(redis_own):
    redis = redis_own(2)
    dv = make_instance("rd-frozen", 300, redis_conf(redis))
    try:
        src, src2 = "127.0.1.20", "127.0.1.21"
        up = [timed_login(dv, src) for _ in range(2)]
        t_up = min(t for t, _ in up)
        g_up = min(g for _, g in up)
        since = dv.log_size()
        redis.freeze()
        try:
            t_frozen, g_frozen = timed_login(dv, src)
            line = dv.wait_log(STATE_ERROR_RE % "open", since)
        finally:
            redis.thaw()
        print("\nredis frozen: login %.3f s (greeting %.3f s), with redis up "
              "%.3f s (greeting %.3f s): %+.3f s"
              % (t_frozen, g_frozen, t_up, g_up, t_frozen - t_up))
        print(line)
        assert t_frozen < 3.0, "login with Redis frozen took %.2f s" % t_frozen
        assert line, "no state_error line:\n" + dv.tail()

        # thawed: used again
        c = connect_starttls(dv, src2)
        fail(c)
        c.close()
        key, ttl = expect_counter(redis, src2, 1)
        print("redis thawed: %s TTL %d" % (key, ttl))
        assert not bad_lines(dv, allow_errors=True), "\n".join(bad_lines(dv, True))
    finally:
        redis.thaw()
        dv.cleanup()


# --------------------------------------------------------------------------
# 6. portguard_state_failure = closed: Redis down refuses


def test_redis_down_fails_closed(redis_own):
    redis = redis_own(3)
    dv = make_instance("rd-closed", 400,
                       redis_conf(redis, "portguard_state_failure = closed\n"))
    try:
        src = "127.0.1.40"
        timed_login(dv, src)                # Redis up: fine
        since = dv.log_size()
        redis.kill()
        c = RawSMTP(dv.ports["starttls"], src=src, timeout=TIMEOUT)
        first = c.readline()
        c.sock.settimeout(10)
        data, closed = c.read_until_eof(10)
        c.close()
        print("\nfail closed, redis down: %r then %r" % (first, data))
        assert first == STATE_DOWN_421, first
        assert closed and not data.startswith("220"), data
        line = dv.wait_log(STATE_ERROR_RE % "closed", since)
        assert line, dv.tail()
        print(line)
        # Redis back: greeted again
        redis.start()
        timed_login(dv, src)
        assert not bad_lines(dv, allow_errors=True), "\n".join(bad_lines(dv, True))
    finally:
        dv.cleanup()


# --------------------------------------------------------------------------
# last: nothing went wrong in the instances that always had Redis


def test_zz_redis_no_errors_in_logs(rd_a, rd_b):
    time.sleep(0.5)
    for dv in (rd_a, rd_b):
        bad = bad_lines(dv)
        assert not bad, "%s:\n%s" % (dv.name, "\n".join(bad))
