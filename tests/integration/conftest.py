import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgdovecot  # noqa: E402


def pytest_report_header(config):
    return ["portguard plugin dir: %s" % pgdovecot.plugin_dir(),
            "portguard plugin loaded: %s"
            % (os.environ.get("PORTGUARD_TEST_NO_PLUGIN") != "1")]


@pytest.fixture(scope="session")
def dv():
    """The main private instance (plugin loaded, no exempt networks).

    login_trusted_networks holds 127.0.0.7 so that the tests can show that a
    trusted client is not exempt from portguard's TLS rules."""
    inst = pgdovecot.Dovecot(name="main", trusted="127.0.0.7/32")
    try:
        inst.start()
    except Exception:
        inst.cleanup()
        raise
    yield inst
    inst.cleanup()
