"""doveconf validates portguard's settings (needs libportguard_settings.so in
Dovecot's settings module dir: run.sh bind-mounts it there)."""

import re

import pytest

from pgdovecot import is_24, make_plugin_conf


def write_conf(dv, tmp_path, plugin_conf, name="test.conf"):
    path = tmp_path / name
    path.write_text(dv.config_text(plugin_conf=plugin_conf, extra=""))
    return str(path)


def good_plugin_conf(dv, **override):
    return make_plugin_conf(dv.ports, **override)


def test_good_config_accepted(dv):
    r = dv.doveconf("-n")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert re.search(r"(?m)^portguard_implicit_tls_ports = %d %d$"
                     % (dv.ports["implicit"], dv.ports["implicit_plain"]), out), out
    assert re.search(r"(?m)^portguard_starttls_ports = %d$" % dv.ports["starttls"], out), out
    assert re.search(r"(?m)^\s*login_plugins = portguard$", out), out


def test_defaults(dv, tmp_path):
    conf = write_conf(dv, tmp_path, "")
    expected = {
        "portguard_implicit_tls_ports": "465",
        "portguard_starttls_ports": "587",
        "portguard_tls_exempt_networks": "",
        "portguard_min_tls_protocol": "TLSv1.2",
        "portguard_log_tls": "yes",
    }
    for key, value in expected.items():
        r = dv.doveconf("-h", key, conf=conf)
        assert r.returncode == 0, "%s: %s" % (key, r.stderr)
        assert r.stdout.strip() == value, "%s = %r" % (key, r.stdout)


@pytest.mark.parametrize("value", ["TLSv1.3", "ANY", "TLSv1"])
def test_min_protocol_values_accepted(dv, tmp_path, value):
    conf = write_conf(dv, tmp_path, good_plugin_conf(dv, portguard_min_tls_protocol=value))
    r = dv.doveconf("-h", "portguard_min_tls_protocol", conf=conf)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == value


def test_exempt_networks_accepted(dv, tmp_path):
    conf = write_conf(dv, tmp_path, good_plugin_conf(
        dv, portguard_tls_exempt_networks="127.0.0.2/32 10.0.0.0/8 ::1/128"))
    r = dv.doveconf("-n", conf=conf)
    assert r.returncode == 0, r.stderr


def test_misspelled_key_rejected(dv, tmp_path):
    pc = good_plugin_conf(dv) + "portguard_starttls_port = %d\n" % dv.ports["starttls"]
    conf = write_conf(dv, tmp_path, pc)
    r = dv.doveconf("-n", conf=conf)
    assert r.returncode != 0, r.stdout
    assert "portguard_starttls_port" in r.stderr, r.stderr


@pytest.mark.parametrize("key,value", [
    ("portguard_starttls_ports", "99999"),
    ("portguard_starttls_ports", "abc"),
    ("portguard_implicit_tls_ports", "0"),
    ("portguard_min_tls_protocol", "TLSv1.4"),
    ("portguard_tls_exempt_networks", "127.0.0.300/33"),
    ("portguard_log_tls", "maybe"),
])
def test_bad_value_rejected(dv, tmp_path, key, value):
    conf = write_conf(dv, tmp_path, good_plugin_conf(dv, **{key: value}))
    r = dv.doveconf("-n", conf=conf)
    assert r.returncode != 0, "accepted %s = %s:\n%s" % (key, value, r.stdout)
    if key == "portguard_log_tls" and not is_24():
        # Dovecot 2.3's own boolean parser: "Error in configuration file ...
        # line N: Invalid boolean value: maybe (use yes or no)" -- names the
        # line only (2.4 names the key as well)
        assert re.search(r"line \d+: Invalid boolean value", r.stderr), r.stderr
    else:
        assert key in r.stderr, r.stderr
