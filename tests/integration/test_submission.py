"""portguard against a real Dovecot submission-login (see README.md).

Clients connect from 127.0.0.x (x >= 2): a connection from the server's own
address (127.0.0.1 -> 127.0.0.1) counts as "secured" for Dovecot.  Tests that
check the log for the absence of something use their own source address.
"""

import re
import smtplib
import ssl
import subprocess
import time
import uuid

import pytest

from pgdovecot import (CLIENT_ADDR, LISTEN, PASSWORD, USER, RawSMTP,
                       parse_kv, plain_b64, tls_context)

TLS_REFUSAL = re.compile(r"^421[ -]4\.7\.0 ")
LOGIN_RE = r"submission-login: Info: Login: user=<%s>.*rip=%s[,\s]"


def smtp(port, src=CLIENT_ADDR, timeout=20):
    return smtplib.SMTP(LISTEN, port, source_address=(src, 0), timeout=timeout)


def smtps(port, src=CLIENT_ADDR, ctx=None, timeout=20):
    return smtplib.SMTP_SSL(LISTEN, port, source_address=(src, 0),
                            timeout=timeout, context=ctx or tls_context())


def message(subject):
    return ("From: <%s>\r\nTo: <rcpt@example.net>\r\nSubject: %s\r\n\r\n"
            "portguard integration test\r\n" % (USER, subject)).encode()


def subject_pred(subject):
    return lambda m: ("Subject: %s" % subject) in m["data"]


def assert_no_login(dv, src, since=0, wait=1.5):
    time.sleep(wait)
    log = dv.log_since(since)
    bad = [l for l in log.splitlines()
           if re.search(LOGIN_RE % (re.escape(USER), re.escape(src)), l)]
    assert not bad, "unexpected login from %s:\n%s" % (src, "\n".join(bad))


def ehlo_has_auth(features_text):
    return any(l.upper().startswith("AUTH") for l in features_text.splitlines())


# --------------------------------------------------------------------------
# implicit TLS (465 role)


def test_implicit_tls_auth_and_relay(dv):
    subject = "implicit-%s" % uuid.uuid4()
    with smtps(dv.ports["implicit"]) as s:
        code, _ = s.ehlo("client.example.org")
        assert code == 250
        assert s.has_extn("auth"), s.ehlo_resp
        assert "PLAIN" in s.esmtp_features["auth"].upper()
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        code, text = s.login(USER, PASSWORD)
        assert code == 235, text
        refused = s.sendmail(USER, ["rcpt@example.net"], message(subject))
        assert refused == {}
    m = dv.sink.wait_for(subject_pred(subject))
    assert m is not None, "sink did not receive the message\n" + dv.tail()
    assert m["mail_from"] == "<%s>" % USER
    assert m["rcpt_to"] == ["<rcpt@example.net>"]


def test_implicit_tls12_allowed(dv):
    """TLSv1.2 is the default minimum: still accepted."""
    with smtps(dv.ports["implicit"], ctx=tls_context("TLSv1.2")) as s:
        assert s.sock.version() == "TLSv1.2"
        code, _ = s.ehlo("client.example.org")
        assert code == 250 and s.has_extn("auth")


def test_plaintext_on_implicit_tls_port_refused(dv):
    since = dv.log_size()
    c = RawSMTP(dv.ports["implicit_plain"])
    data, closed = c.read_until_eof(10)
    c.close()
    lines = data.splitlines()
    assert lines, "no reply at all (expected 421 4.7.0)"
    assert TLS_REFUSAL.match(lines[0]), "got %r" % data
    assert closed, "connection not closed after 421: %r" % data
    assert not any(l.startswith("220") for l in lines), data
    # this client's line: the harness's own port probe at start (from
    # 127.0.0.1) is refused too, and its line may come late (slow start)
    line = dv.wait_log(r"portguard: connection_refused "
                       r".*reason=plaintext_on_implicit_tls_port.*rip=%s[,\s]"
                       % re.escape(CLIENT_ADDR), since)
    assert line, "no connection_refused log line\n" + dv.tail()
    kv = parse_kv(line)
    assert kv["port"] == str(dv.ports["implicit_plain"])
    assert kv.get("rip") == CLIENT_ADDR


def test_plaintext_on_implicit_port_no_commands(dv):
    """Even a client that talks first gets nothing but the 421."""
    c = RawSMTP(dv.ports["implicit_plain"])
    try:
        c.send("EHLO client.example.org\r\nAUTH PLAIN %s\r\n" % plain_b64())
    except OSError:
        pass
    data, closed = c.read_until_eof(10)
    c.close()
    assert "235" not in data and "250" not in data, data
    assert TLS_REFUSAL.match(data), data


# --------------------------------------------------------------------------
# STARTTLS (587 role)


def test_starttls_ehlo_hides_auth_before_tls(dv):
    c = RawSMTP(dv.ports["starttls"])
    code, greet = c.reply()
    assert code == 220, greet
    code, lines = c.cmd("EHLO client.example.org")
    assert code == 250, lines
    caps = [l[4:].upper() for l in lines[1:]]
    assert not any(cap.startswith("AUTH") for cap in caps), \
        "AUTH advertised before TLS: %r" % lines
    assert "STARTTLS" in caps, lines
    code, lines = c.cmd("STARTTLS")
    assert code == 220, lines
    c.starttls(tls_context())
    code, lines = c.cmd("EHLO client.example.org")
    assert code == 250
    caps = [l[4:].upper() for l in lines[1:]]
    auth = [cap for cap in caps if cap.startswith("AUTH")]
    assert auth and "PLAIN" in auth[0], lines
    assert "STARTTLS" not in caps
    c.cmd("QUIT")
    c.close()


@pytest.mark.parametrize("auth_cmd", ["AUTH PLAIN {b64}", "AUTH PLAIN", "AUTH LOGIN"])
def test_starttls_auth_before_tls_refused(dv, auth_cmd):
    src = "127.0.0.4"
    since = dv.log_size()
    c = RawSMTP(dv.ports["starttls"], src=src)
    c.reply()
    c.cmd("EHLO client.example.org")
    code, lines = c.cmd(auth_cmd.format(b64=plain_b64()))
    assert code == 530, lines
    assert lines[-1].startswith("530 5.7.0 "), lines
    # the connection stays usable and secure AUTH still works afterwards
    code, _ = c.cmd("NOOP")
    assert code == 250
    c.close()
    assert_no_login(dv, src, since)


@pytest.mark.parametrize("command", ["MAIL FROM:<%s>" % USER, "RCPT TO:<rcpt@example.net>"])
def test_starttls_mail_rcpt_before_tls_refused(dv, command):
    c = RawSMTP(dv.ports["starttls"])
    c.reply()
    c.cmd("EHLO client.example.org")
    code, lines = c.cmd(command)
    assert code == 530, lines
    assert lines[-1].startswith("530 5.7.0 "), lines
    # Dovecot alone answers "530 5.7.0 Authentication required." here; the
    # refusal must be about TLS
    assert re.search(r"(?i)tls", lines[-1]), \
        "530 is not about TLS (Dovecot's own pre-auth reply?): %r" % lines
    c.close()


def test_starttls_auth_after_tls_and_relay_smtplib(dv):
    subject = "starttls-smtplib-%s" % uuid.uuid4()
    with smtp(dv.ports["starttls"]) as s:
        s.ehlo("client.example.org")
        assert not s.has_extn("auth")
        assert s.has_extn("starttls")
        code, _ = s.starttls(context=tls_context())
        assert code == 220
        s.ehlo("client.example.org")
        assert s.has_extn("auth")
        code, _ = s.login(USER, PASSWORD)
        assert code == 235
        assert s.sendmail(USER, ["rcpt@example.net"], message(subject)) == {}
    m = dv.sink.wait_for(subject_pred(subject))
    assert m is not None, "sink did not receive the message\n" + dv.tail()
    assert m["mail_from"] == "<%s>" % USER


def test_starttls_relay_swaks(dv):
    subject = "starttls-swaks-%s" % uuid.uuid4()
    r = subprocess.run(
        ["swaks", "--server", LISTEN, "--port", str(dv.ports["starttls"]),
         "--local-interface", CLIENT_ADDR, "--tls",
         "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD,
         "--from", USER, "--to", "rcpt@example.net",
         "--header", "Subject: %s" % subject, "--body", "sent by swaks",
         "--timeout", "30"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"<~\s+235 ", r.stdout), r.stdout
    m = dv.sink.wait_for(subject_pred(subject))
    assert m is not None, "sink did not receive the swaks message\n" + r.stdout


def test_starttls_relay_openssl_s_client(dv):
    subject = "starttls-openssl-%s" % uuid.uuid4()
    script = ("EHLO client.example.org\n"
              "AUTH PLAIN %s\n"
              "MAIL FROM:<%s>\n"
              "RCPT TO:<rcpt@example.net>\n"
              "DATA\n"
              "Subject: %s\n\nsent by openssl s_client\n.\n"
              "QUIT\n" % (plain_b64(), USER, subject))
    r = subprocess.run(
        ["openssl", "s_client", "-connect", "%s:%d" % (LISTEN, dv.ports["starttls"]),
         "-bind", "%s:0" % CLIENT_ADDR, "-starttls", "smtp", "-crlf", "-quiet"],
        input=script, capture_output=True, text=True, timeout=60)
    out = r.stdout
    assert "235 2.7.0" in out, out + r.stderr
    assert re.search(r"^250 2\.0\.0 .*", out, re.M), out
    m = dv.sink.wait_for(subject_pred(subject))
    assert m is not None, "sink did not receive the s_client message\n" + out


def test_wrong_password_535(dv):
    with smtp(dv.ports["starttls"], src="127.0.0.3") as s:
        s.ehlo("client.example.org")
        s.starttls(context=tls_context())
        s.ehlo("client.example.org")
        code, text = s.docmd("AUTH", "PLAIN " + plain_b64(password="wrong-password"))
        assert code == 535, text
        assert text.startswith(b"5.7.8"), text


def test_localhost_not_exempt(dv):
    """127.0.0.1 -> 127.0.0.1 is 'secured' for Dovecot; portguard still wants TLS."""
    c = RawSMTP(dv.ports["starttls"], src=LISTEN)
    c.reply()
    code, lines = c.cmd("EHLO client.example.org")
    assert code == 250
    assert not any(l[4:].upper().startswith("AUTH") for l in lines[1:]), lines
    code, lines = c.cmd("AUTH PLAIN %s" % plain_b64())
    assert code == 530 and lines[-1].startswith("530 5.7.0"), lines
    c.close()


def test_trusted_network_not_exempt(dv):
    """login_trusted_networks (127.0.0.7 here) does not exempt from TLS."""
    src = "127.0.0.7"
    since = dv.log_size()
    c = RawSMTP(dv.ports["starttls"], src=src)
    c.reply()
    code, lines = c.cmd("EHLO client.example.org")
    assert code == 250
    assert not any(l[4:].upper().startswith("AUTH") for l in lines[1:]), lines
    code, lines = c.cmd("AUTH PLAIN %s" % plain_b64())
    assert code == 530 and lines[-1].startswith("530 5.7.0"), lines
    c.close()
    assert_no_login(dv, src, since)


# --------------------------------------------------------------------------
# pipelining behind STARTTLS (CVE-2011-0411 class, RFC 7457 2.2)


@pytest.mark.parametrize("src,injected", [
    ("127.0.0.6", "AUTH PLAIN {b64}"),
    ("127.0.0.10", "MAIL FROM:<{user}>"),
])
def test_pipelined_after_starttls_not_executed(dv, src, injected):
    since = dv.log_size()
    c = RawSMTP(dv.ports["starttls"], src=src)
    c.reply()
    c.cmd("EHLO client.example.org")
    injected = injected.format(b64=plain_b64(), user=USER)
    c.send("STARTTLS\r\n%s\r\n" % injected)       # one packet
    code, lines = c.reply()
    assert code == 220, lines
    replies_in_tls = []
    try:
        c.starttls(tls_context())
        c.sock.settimeout(2)
        try:
            unsolicited = c.sock.recv(4096)
        except (TimeoutError, ssl.SSLError, OSError):
            unsolicited = b""
        replies_in_tls.append(unsolicited.decode(errors="replace"))
        c.sock.settimeout(10)
        code, lines = c.cmd("EHLO client.example.org")
        replies_in_tls.extend(lines)
        # a MAIL after a (wrongly) executed AUTH would be accepted with 250
        if injected.startswith("AUTH"):
            code, lines = c.cmd("MAIL FROM:<%s>" % USER)
            replies_in_tls.extend(lines)
            assert code != 250, "MAIL accepted: injected AUTH was executed: %r" % replies_in_tls
    except (ssl.SSLError, OSError, ConnectionError):
        pass    # the server dropped the connection: nothing was executed
    finally:
        c.close()
    text = "\n".join(replies_in_tls)
    assert "235" not in text, "injected AUTH executed inside TLS: %r" % text
    assert not re.search(r"^250 2\.1\.0", text, re.M), \
        "injected MAIL executed inside TLS: %r" % text
    assert_no_login(dv, src, since)


# --------------------------------------------------------------------------
# minimum TLS protocol


def test_tls11_refused_on_implicit_port(dv):
    src = "127.0.0.9"
    since = dv.log_size()
    c = RawSMTP(dv.ports["implicit"], src=src, implicit_tls=tls_context("TLSv1.1"))
    assert c.sock.version() == "TLSv1.1"
    try:
        data, closed = c.read_until_eof(10)
    except ssl.SSLError as e:
        data, closed = "", True
        pytest.fail("TLS error instead of 421: %r" % e)
    c.close()
    assert TLS_REFUSAL.match(data), "expected 421 4.7.0 instead of greeting, got %r" % data
    assert "220" not in data.splitlines()[0]
    assert closed
    line = dv.wait_log(r"portguard: connection_refused .*reason=tls_protocol_too_old.*rip=%s[,\s]"
                       % re.escape(src), since)
    assert line, "no tls_protocol_too_old log line\n" + dv.tail()
    assert parse_kv(line)["port"] == str(dv.ports["implicit"])


def test_tls11_refused_on_starttls_port(dv):
    src = "127.0.0.9"
    since = dv.log_size()
    c = RawSMTP(dv.ports["starttls"], src=src)
    c.reply()
    c.cmd("EHLO client.example.org")
    code, _ = c.cmd("STARTTLS")
    assert code == 220
    c.starttls(tls_context("TLSv1.1"))
    assert c.sock.version() == "TLSv1.1"
    data, closed = c.read_until_eof(10)
    c.close()
    assert TLS_REFUSAL.match(data), "expected 421 4.7.0 right after the handshake, got %r" % data
    assert closed
    line = dv.wait_log(r"portguard: connection_refused .*reason=tls_protocol_too_old.*rip=%s[,\s]"
                       % re.escape(src), since)
    assert line, "no tls_protocol_too_old log line\n" + dv.tail()
    assert parse_kv(line)["port"] == str(dv.ports["starttls"])
    assert_no_login(dv, src, since, wait=0)


def test_tls11_refused_starttls_openssl_s_client(dv):
    """The same with `openssl s_client -tls1_1 -starttls smtp`."""
    r = subprocess.run(
        ["openssl", "s_client", "-connect", "%s:%d" % (LISTEN, dv.ports["starttls"]),
         "-bind", "%s:0" % CLIENT_ADDR, "-starttls", "smtp", "-tls1_1",
         "-cipher", "DEFAULT:@SECLEVEL=0", "-crlf", "-ign_eof"],
        input="EHLO client.example.org\nAUTH PLAIN %s\nQUIT\n" % plain_b64(),
        capture_output=True, text=True, timeout=60)
    out = r.stdout
    assert re.search(r"Protocol\s*:\s*TLSv1\.1", out), out + r.stderr
    assert re.search(r"^421 4\.7\.0 ", out, re.M), out
    assert "235 " not in out


def test_tls11_works_on_unguarded_port(dv):
    """Dovecot itself allows TLSv1.1 (so the refusals above are portguard's)."""
    with smtp(dv.ports["unguarded"]) as s:
        s.ehlo("client.example.org")
        s.starttls(context=tls_context("TLSv1.1"))
        assert s.sock.version() == "TLSv1.1"
        s.ehlo("client.example.org")
        code, _ = s.login(USER, PASSWORD)
        assert code == 235


def test_tls11_s_client_works_on_unguarded_port(dv):
    r = subprocess.run(
        ["openssl", "s_client", "-connect", "%s:%d" % (LISTEN, dv.ports["unguarded"]),
         "-bind", "%s:0" % CLIENT_ADDR, "-starttls", "smtp", "-tls1_1",
         "-cipher", "DEFAULT:@SECLEVEL=0", "-crlf", "-ign_eof"],
        input="EHLO client.example.org\nQUIT\n",
        capture_output=True, text=True, timeout=60)
    assert re.search(r"Protocol\s*:\s*TLSv1\.1", r.stdout), r.stdout + r.stderr
    assert re.search(r"^250[ -]", r.stdout, re.M), r.stdout


# --------------------------------------------------------------------------
# unguarded port: the plugin leaves it alone


def test_unguarded_port_allows_plaintext_auth(dv):
    with smtp(dv.ports["unguarded"]) as s:
        s.ehlo("client.example.org")
        assert s.has_extn("auth"), s.ehlo_resp
        code, _ = s.login(USER, PASSWORD)
        assert code == 235


def test_unguarded_port_no_tls_log(dv):
    since = dv.log_size()
    with smtp(dv.ports["unguarded"], src="127.0.0.11") as s:
        s.ehlo("client.example.org")
        s.starttls(context=tls_context())
        s.ehlo("client.example.org")
        s.login(USER, PASSWORD)
    time.sleep(1)
    lines = [l for l in dv.log_since(since).splitlines()
             if "portguard:" in l and "rip=127.0.0.11" in l
             and "tls_established" in l]
    assert not lines, "\n".join(lines)


# --------------------------------------------------------------------------
# logging and events


def _check_tls_line(line, port, mode, sock):
    kv = parse_kv(line)
    assert kv["port"] == str(port)
    assert kv["mode"] == mode
    assert kv["proto"] == sock.version()
    name, _, bits = sock.cipher()
    assert kv["cipher"] == name
    assert int(kv["bits"]) == bits and bits > 0
    assert kv["resumed"] in ("no", "yes")
    assert int(kv["handshake_ms"]) >= 0
    for key in ("sni", "alpn", "client_cert"):
        assert key in kv, line
    return kv


def test_tls_log_line_implicit(dv):
    src = "127.0.0.5"
    since = dv.log_size()
    with smtps(dv.ports["implicit"], src=src, ctx=tls_context("TLSv1.3")) as s:
        s.ehlo("client.example.org")
        sock = s.sock
        line = dv.wait_log(r"submission-login: Info: portguard: tls_established .*rip=%s[,\s]"
                           % re.escape(src), since)
        assert line, "no tls_established line\n" + dv.tail()
        kv = _check_tls_line(line, dv.ports["implicit"], "implicit", sock)
    assert kv["proto"] == "TLSv1.3"
    assert kv["group"] not in ("-", ""), line
    assert kv["resumed"] == "no"
    assert kv["client_cert"] == "-"
    assert "session" in kv and "lip" in kv


def test_tls_log_line_starttls(dv):
    src = "127.0.0.8"
    since = dv.log_size()
    with smtp(dv.ports["starttls"], src=src) as s:
        s.ehlo("client.example.org")
        s.starttls(context=tls_context("TLSv1.2"))
        s.ehlo("client.example.org")
        sock = s.sock
        line = dv.wait_log(r"portguard: tls_established .*rip=%s[,\s]" % re.escape(src), since)
        assert line, "no tls_established line\n" + dv.tail()
        kv = _check_tls_line(line, dv.ports["starttls"], "starttls", sock)
    assert kv["proto"] == "TLSv1.2"


def test_tls_log_line_sni(dv):
    src = "127.0.0.12"
    since = dv.log_size()
    ctx = tls_context()
    import socket
    raw = socket.create_connection((LISTEN, dv.ports["implicit"]), source_address=(src, 0),
                                   timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="sni-test.example.org")
    s.recv(1000)
    line = dv.wait_log(r"portguard: tls_established .*rip=%s[,\s]" % re.escape(src), since)
    s.close()
    assert line, "no tls_established line\n" + dv.tail()
    assert parse_kv(line)["sni"] == "sni-test.example.org", line


def _stats(dv):
    r = dv.doveadm("stats", "dump")
    assert r.returncode == 0, r.stderr
    rows = [l.split("\t") for l in r.stdout.splitlines()]
    return r.stdout, {(row[0], row[1]): int(row[2]) for row in rows[1:] if len(row) > 2}


def test_stats_metric_tls(dv):
    with smtps(dv.ports["implicit"]) as s:
        s.ehlo("client.example.org")
    deadline = time.time() + 10
    while True:
        out, rows = _stats(dv)
        count = sum(c for (name, _f), c in rows.items() if name.startswith("portguard_tls"))
        if count > 0 or time.time() > deadline:
            break
        time.sleep(0.3)
    assert count > 0, out


def test_stats_metric_tls_group_by_protocol(dv):
    with smtps(dv.ports["implicit"], ctx=tls_context("TLSv1.3")) as s:
        s.ehlo("client.example.org")
    deadline = time.time() + 10
    while True:
        out, rows = _stats(dv)
        sub = [(n, c) for (n, _f), c in rows.items()
               if n.startswith("portguard_tls") and "TLSv1.3" in n and c > 0]
        if sub or time.time() > deadline:
            break
        time.sleep(0.3)
    assert sub, out


def test_stats_auth_and_refused_events(dv):
    with smtps(dv.ports["implicit"]) as s:
        s.ehlo("client.example.org")
        s.login(USER, PASSWORD)
    with smtps(dv.ports["implicit"], src="127.0.0.13") as s:
        s.ehlo("client.example.org")
        code, _ = s.docmd("AUTH", "PLAIN " + plain_b64(password="wrong"))
        assert code == 535
    c = RawSMTP(dv.ports["implicit_plain"])
    c.read_until_eof(5)
    c.close()
    deadline = time.time() + 10
    while True:
        out, rows = _stats(dv)
        auth = sum(c for (n, _f), c in rows.items() if n.startswith("portguard_auth"))
        auth_ok = sum(c for (n, _f), c in rows.items()
                      if n.startswith("portguard_auth") and "success" in n)
        refused = sum(c for (n, _f), c in rows.items() if n.startswith("portguard_refused"))
        auth_failed = sum(c for (n, _f), c in rows.items()
                          if n.startswith("portguard_auth") and "fail" in n)
        if (auth and auth_ok and auth_failed and refused) or time.time() > deadline:
            break
        time.sleep(0.3)
    assert refused > 0, "no portguard_connection_refused events:\n" + out
    assert auth > 0, "no portguard_auth_finished events:\n" + out
    assert auth_ok > 0, "no portguard_auth_finished result=success:\n" + out
    assert auth_failed > 0, "no portguard_auth_finished result=failed:\n" + out


# --------------------------------------------------------------------------
# other login services are unaffected


def test_imap_login_unaffected(dv):
    import socket
    s = socket.create_connection((LISTEN, dv.ports["imap"]), source_address=(CLIENT_ADDR, 0),
                                 timeout=15)
    f = s.makefile("rb")

    def tagged(tag):
        out = []
        while True:
            line = f.readline().decode(errors="replace")
            assert line, "imap connection closed: %r" % out
            out.append(line)
            if line.startswith(tag + " "):
                return out

    greet = f.readline().decode()
    assert greet.startswith("* OK"), greet
    s.sendall(b"a1 CAPABILITY\r\n")
    out = tagged("a1")
    assert out[-1].startswith("a1 OK"), out
    assert "IMAP4rev1" in "".join(out)
    s.sendall(('a2 LOGIN "%s" "%s"\r\n' % (USER, PASSWORD)).encode())
    out = tagged("a2")
    assert out[-1].startswith("a2 OK"), out
    s.sendall(b"a3 LOGOUT\r\n")
    tagged("a3")
    s.close()


# --------------------------------------------------------------------------
# last: nothing went wrong inside Dovecot


def test_zz_no_errors_in_log(dv):
    time.sleep(0.5)
    bad = [l for l in dv.log_text().splitlines()
           if re.search(r"\b(Panic|Fatal|Error):", l)
           or "killed with signal" in l]
    assert not bad, "\n".join(bad)
