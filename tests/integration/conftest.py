import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgdovecot  # noqa: E402


_DESELECTED = pytest.StashKey()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "dovecot23_only(reason): the test cannot apply to Dovecot "
        "2.4; on 2.4 it is deselected (not skipped) and the reason printed")


def pytest_collection_modifyitems(config, items):
    """On Dovecot 2.4, deselect the tests marked dovecot23_only(reason)."""
    if not pgdovecot.is_24():
        return
    keep, drop = [], []
    for item in items:
        mark = item.get_closest_marker("dovecot23_only")
        if mark is None:
            keep.append(item)
            continue
        reason = mark.kwargs.get("reason") or (mark.args[0] if mark.args else "")
        if not reason:
            raise pytest.UsageError("%s: dovecot23_only needs a reason" % item.nodeid)
        drop.append((item.nodeid, reason))
    if drop:
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep
    config.stash[_DESELECTED] = drop


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    drop = config.stash.get(_DESELECTED, [])
    if drop:
        terminalreporter.section("deselected on Dovecot %s (not applicable)"
                                 % pgdovecot.dovecot_version_string())
        for nodeid, reason in drop:
            terminalreporter.line("DESELECTED %s: %s" % (nodeid, reason))


def pytest_sessionfinish(session, exitstatus):
    """Under CI=true a skipped test fails the run (every package is there,
    so a skip means a test did not run), unless PORTGUARD_ALLOW_SKIP=1.
    Deselected tests (dovecot23_only) are not skips."""
    if os.environ.get("CI") != "true" or os.environ.get("PORTGUARD_ALLOW_SKIP") == "1":
        return
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = tr.stats.get("skipped", []) if tr is not None else []
    if skipped and session.exitstatus == 0:
        tr.write_line("run.sh: %d test(s) skipped under CI=true (set "
                      "PORTGUARD_ALLOW_SKIP=1 to allow): %s"
                      % (len(skipped), " ".join(r.nodeid for r in skipped)),
                      red=True)
        session.exitstatus = 1


def pytest_report_header(config):
    return ["dovecot --version: %s (%s settings syntax)"
            % (pgdovecot.dovecot_version_string(),
               "2.4" if pgdovecot.is_24() else "2.3"),
            "portguard plugin dir: %s" % pgdovecot.plugin_dir(),
            "portguard plugin loaded: %s"
            % (os.environ.get("PORTGUARD_TEST_NO_PLUGIN") != "1")]


@pytest.fixture(scope="session")
def dv():
    """The main private instance (plugin loaded, no exempt networks).

    login_trusted_networks holds 127.0.0.7 so that the tests can show that a
    trusted client is not exempt from portguard's TLS rules."""
    inst = pgdovecot.started_instance("main", 0, imap=True,
                                      trusted="127.0.0.7/32")
    yield inst
    inst.cleanup()
