#!/usr/bin/python3
"""Clients and SMTP sink for tests/package/smoke.sh (the Debian package test).

    smoke_client.py sink PORT DIR        run the relay sink until killed
    smoke_client.py check --plugin on|off --starttls P --implicit P
                    --implicit-plain P --log FILE --sink-dir DIR [--user U --password PW]

"check" talks to the system-style Dovecot from 127.0.0.2 (a client on the
server's own address counts as secured in Dovecot) with real TLS and
prints one line per check; exit 0 only if every check passed.  With
--plugin off it expects Dovecot's own behaviour (the configuration allows
cleartext AUTH), so the same checks prove that the package's snippet is
inactive until enabled and that the refusals come from portguard.
"""

import argparse
import json
import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
import pgdovecot  # noqa: E402  (SmtpSink, RawSMTP, tls_context, plain_b64)

HOST = "127.0.0.1"
SRC = "127.0.0.2"


class Checks:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print("%s: %s%s" % ("ok" if ok else "FAIL", name,
                            " (%s)" % detail if detail else ""), flush=True)


def wait_log(path, needle, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    if needle in line:
                        return line.rstrip("\n")
        except FileNotFoundError:
            pass
        time.sleep(0.2)
    return None


def wait_sink(directory, needle, timeout=15.0):
    """True once a message containing needle is in the sink's directory."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for name in os.listdir(directory):
            if name.startswith("msg-") and name.endswith(".json"):
                with open(os.path.join(directory, name)) as f:
                    if needle in json.load(f)["data"]:
                        return True
        time.sleep(0.2)
    return False


def run_sink(args):
    sink = pgdovecot.SmtpSink(args.dir, host=HOST, port=args.port).start()
    print("sink listening on %s:%d" % (sink.host, sink.port), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def run_check(args):
    c = Checks()
    on = args.plugin == "on"
    user, password = args.user, args.password
    auth_arg = "PLAIN " + pgdovecot.plain_b64(user, password)
    ctx = pgdovecot.tls_context()

    # STARTTLS port, before STARTTLS: AUTH hidden and refused (530) with the
    # plugin; Dovecot alone (cleartext allowed) advertises and accepts it.
    s = smtplib.SMTP(HOST, args.starttls, timeout=15, source_address=(SRC, 0))
    s.ehlo("smoke.test")
    c.check("%d: EHLO before STARTTLS %s AUTH" % (
        args.starttls, "hides" if on else "advertises"),
        s.has_extn("auth") != on, "extensions: %s" % sorted(s.esmtp_features))
    code, msg = s.docmd("AUTH", auth_arg)
    want = 530 if on else 235
    c.check("%d: AUTH before STARTTLS from %s -> %d" % (args.starttls, SRC, want),
            code == want, "got %d %s" % (code, msg.decode(errors="replace")))
    s.close()

    # STARTTLS, EHLO again, AUTH -> 235, a message through the relay sink.
    s = smtplib.SMTP(HOST, args.starttls, timeout=15, source_address=(SRC, 0))
    s.ehlo("smoke.test")
    code, _ = s.starttls(context=ctx)
    s.ehlo("smoke.test")
    code, msg = s.docmd("AUTH", auth_arg)
    c.check("%d: AUTH after STARTTLS -> 235" % args.starttls, code == 235,
            "got %d %s" % (code, msg.decode(errors="replace")))
    subject = "portguard package smoke %d %s" % (os.getpid(), args.plugin)
    if code == 235:
        try:
            s.sendmail(user, ["rcpt@example.org"],
                       "Subject: %s\r\n\r\nhello\r\n" % subject)
            sent = True
        except smtplib.SMTPException as e:
            sent = False
            c.check("message accepted", False, repr(e))
        if sent:
            got = wait_sink(args.sink_dir, subject)
            c.check("message relayed to the sink", got)
    s.close()

    # tls_established line for the STARTTLS session.
    line = wait_log(args.log, "portguard: tls_established port=%d mode=starttls"
                    % args.starttls, timeout=10 if on else 2)
    c.check("tls_established line %s" % ("logged" if on else "absent"),
            (line is not None) == on, line or "")

    # A listener without ssl = yes whose port is in
    # portguard_implicit_tls_ports: portguard refuses cleartext with 421;
    # Dovecot alone greets in cleartext.
    raw = pgdovecot.RawSMTP(args.implicit_plain, src=SRC, host=HOST, timeout=5)
    code, lines = raw.reply()
    raw.close()
    first = lines[0] if lines else ""
    c.check("%d: cleartext on an implicit-TLS port %s" % (
        args.implicit_plain, "refused with 421 4.7.0" if on else "greeted (220)"),
        first.startswith("421 4.7.0") if on else code == 220, repr(first))

    # The implicit-TLS listener (ssl = yes): TLS from the first byte works.
    s = smtplib.SMTP_SSL(HOST, args.implicit, timeout=15,
                         source_address=(SRC, 0), context=ctx)
    s.ehlo("smoke.test")
    code, msg = s.docmd("AUTH", auth_arg)
    c.check("%d: AUTH on implicit TLS -> 235" % args.implicit, code == 235,
            "got %d %s" % (code, msg.decode(errors="replace")))
    s.quit()

    print("smoke_client: %d passed, %d failed" % (c.passed, c.failed))
    return 1 if c.failed else 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    ps = sub.add_parser("sink")
    ps.add_argument("port", type=int)
    ps.add_argument("dir")
    pc = sub.add_parser("check")
    pc.add_argument("--plugin", choices=("on", "off"), required=True)
    pc.add_argument("--starttls", type=int, required=True)
    pc.add_argument("--implicit", type=int, required=True)
    pc.add_argument("--implicit-plain", type=int, required=True)
    pc.add_argument("--log", required=True)
    pc.add_argument("--sink-dir", required=True)
    pc.add_argument("--user", default="smoke@example.org")
    pc.add_argument("--password", default="smoke-password")
    args = p.parse_args()
    if args.cmd == "sink":
        return run_sink(args)
    try:
        return run_check(args)
    except Exception as e:  # any client error is one failed check
        print("FAIL: client error: %r" % (e,))
        return 1


if __name__ == "__main__":
    sys.exit(main())
