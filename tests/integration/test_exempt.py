"""A second private instance (other ports) with non-default settings:
portguard_tls_exempt_networks = 127.0.0.2/32, portguard_min_tls_protocol =
TLSv1.3, portguard_log_tls = no.  Shows that the settings are honoured."""

import re
import smtplib
import time

import pytest

import pgdovecot
from pgdovecot import LISTEN, PASSWORD, USER, RawSMTP, plain_b64, tls_context

EXEMPT = "127.0.0.2"


@pytest.fixture(scope="module")
def dvx():
    inst = pgdovecot.started_instance("exempt", 1, exempt="%s/32" % EXEMPT,
                                      min_tls="TLSv1.3", log_tls="no")
    yield inst
    inst.cleanup()


def test_exempt_network_auth_without_tls(dvx):
    with smtplib.SMTP(LISTEN, dvx.ports["starttls"], source_address=(EXEMPT, 0),
                      timeout=20) as s:
        s.ehlo("client.example.org")
        assert s.has_extn("auth"), s.ehlo_resp
        code, _ = s.login(USER, PASSWORD)
        assert code == 235


def test_exempt_network_is_specific(dvx):
    """Only the listed network is exempt: 127.0.0.3 still needs TLS."""
    c = RawSMTP(dvx.ports["starttls"], src="127.0.0.3")
    c.reply()
    code, lines = c.cmd("EHLO client.example.org")
    assert code == 250
    assert not any(l[4:].upper().startswith("AUTH") for l in lines[1:]), lines
    code, lines = c.cmd("AUTH PLAIN %s" % plain_b64())
    assert code == 530 and lines[-1].startswith("530 5.7.0"), lines
    c.close()


def test_min_tls13_refuses_tls12(dvx):
    c = RawSMTP(dvx.ports["implicit"], src="127.0.0.3", implicit_tls=tls_context("TLSv1.2"))
    assert c.sock.version() == "TLSv1.2"
    data, closed = c.read_until_eof(10)
    c.close()
    assert re.match(r"421 4\.7\.0 ", data), "TLSv1.2 not refused with min TLSv1.3: %r" % data


def test_min_tls13_allows_tls13(dvx):
    with smtplib.SMTP_SSL(LISTEN, dvx.ports["implicit"], source_address=("127.0.0.3", 0),
                          timeout=20, context=tls_context("TLSv1.3")) as s:
        code, _ = s.ehlo("client.example.org")
        assert code == 250 and s.has_extn("auth")
        assert s.login(USER, PASSWORD)[0] == 235


def test_log_tls_no_suppresses_tls_line(dvx):
    src = "127.0.0.14"
    since = dvx.log_size()
    with smtplib.SMTP_SSL(LISTEN, dvx.ports["implicit"], source_address=(src, 0),
                          timeout=20, context=tls_context("TLSv1.3")) as s:
        s.ehlo("client.example.org")
    # the connection itself is logged by Dovecot at disconnect
    assert dvx.wait_log(r"rip=%s[,\s]" % re.escape(src), since), dvx.tail()
    time.sleep(0.5)
    lines = [l for l in dvx.log_since(since).splitlines()
             if "tls_established" in l and "rip=%s," % src in l]
    assert not lines, "portguard_log_tls = no but:\n" + "\n".join(lines)
