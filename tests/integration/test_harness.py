"""The harness itself on the installed Dovecot (2.3 or 2.4 settings syntax):
a stock instance without the plugin starts, authenticates over STARTTLS and
relays to the sink, and every version-dependent snippet helper yields a
config that doveconf accepts.  Ports: pgdovecot.instance_ports(2)."""

import smtplib

import pytest

import pgdovecot
from pgdovecot import CLIENT_ADDR, LISTEN, PASSWORD, USER, tls_context


@pytest.fixture(scope="module")
def stock():
    inst = pgdovecot.started_instance("stock", 2, plugin=False)
    yield inst
    inst.cleanup()


def test_stock_starttls_auth_and_relay(stock):
    s = smtplib.SMTP(LISTEN, stock.ports["starttls"], timeout=15,
                     source_address=(CLIENT_ADDR, 0))
    try:
        s.ehlo()
        s.starttls(context=tls_context())
        s.ehlo()
        code, _ = s.login(USER, PASSWORD)
        assert code == 235
        s.sendmail("a@example.org", ["b@example.org"],
                   "Subject: harness %s\r\n\r\nhi\r\n" % pgdovecot.dovecot_version_string())
    finally:
        s.quit()
    m = stock.sink.wait_for(lambda m: "harness" in m["data"])
    assert m is not None, stock.tail()
    assert m["rcpt_to"] == ["<b@example.org>"]


def test_stock_allows_old_tls(stock):
    """Refusing TLS 1.0 is portguard's job: Dovecot itself accepts it."""
    s = smtplib.SMTP_SSL(LISTEN, stock.ports["implicit"], timeout=15,
                         source_address=(CLIENT_ADDR, 0),
                         context=tls_context("TLSv1"))
    try:
        assert s.sock.version() == "TLSv1"
    finally:
        s.quit()


def test_snippets_accepted(stock, tmp_path):
    extra = (pgdovecot.metric_conf("pg_a", "event=portguard_ban AND reason=banned",
                                   ("key", "ban_level")) +
             pgdovecot.listen_conf("127.0.0.1", "::1") +
             pgdovecot.login_plugins_conf("portguard"))
    path = tmp_path / "snippets.conf"
    path.write_text(stock.config_text(extra=extra))
    r = stock.doveconf("-n", conf=str(path))
    assert r.returncode == 0, r.stderr
    assert "metric pg_a {" in r.stdout, r.stdout
    r = stock.doveconf("-h", "listen", conf=str(path))
    assert r.stdout.split() in (["127.0.0.1,", "::1"], ["127.0.0.1", "::1"]), r.stdout
