"""Everything `run` or `once` would trip over is refused by `check-config` first (issue #12):
bounded YAML (alias bombs, duplicate keys), capped durations and counts, strict types, host
names and addresses, the files a config names (CA bundles, the listener's certificate and key,
secrets, catalogs) loaded as they will be used. Each refusal names file, line and key, exits 2,
and never sends a packet (check-config opens no socket: nothing here listens)."""

from __future__ import annotations

import contextlib
import io
import os
import resource
import string
import subprocess
import tracemalloc
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgreach_helpers import msgreach_command
from servers.testca import TestCA

from probe import cli
from probe import config as config_module
from probe.config import safe_yaml
from probe.config.files import MAX_YAML_BYTES, MIN_HELPER_SECRET_BYTES
from probe.params import CHECK_PARAMS, HTTPParams, ThroughputParams

BASE = """\
vantages:
  - name: home
    resolvers: [system]
controls:
  - {name: ctl, host: ctl.test, checks: [dns]}
services:
  - name: svc
    targets:
      - {name: t, host: t.test, checks: [dns, tcp]}
"""

# A 1 KB "billion laughs": ten levels of ten aliases each, 10^10 values if expanded.
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(9)
) + "vantages: [{name: *j}]\n"


def _check(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(["check-config", str(path)])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _refused(path: Path, key: str, words: str, line: int | None = None) -> str:
    code, out, err = _check(path)
    assert code == 2, (code, out, err)
    assert out == "" and "Traceback" not in err
    where = f"{path}:{line}: " if line else f"{path}"
    # "FILE:LINE: KEY: message"; KEY may go deeper than `key` (listen.tls vs listen.tls.cert_file)
    rows = [row for row in err.splitlines() if row.startswith(where) and (f": {key}: " in row or f": {key}." in row)]
    assert rows, f"no problem at {where} {key!r} in:\n{err}"
    assert words in rows[0], rows[0]
    return rows[0]


def _write(tmp_path: Path, text: str, name: str = "msgreach.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _with(extra: str, base: str = BASE) -> str:
    """BASE with top-level keys replaced or added (a key given in `extra` wins)."""
    data = yaml.safe_load(base)
    data.update(yaml.safe_load(extra))
    return yaml.safe_dump(data, sort_keys=False)


def test_the_base_config_is_valid(tmp_path):
    code, _out, err = _check(_write(tmp_path, BASE))
    assert (code, err) == (0, ""), err


# --- YAML ------------------------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_in_little_memory(tmp_path):
    assert len(ALIAS_BOMB) < 1024
    path = _write(tmp_path, ALIAS_BOMB)
    tracemalloc.start()
    try:
        code, _, err = _check(path)
        assert code == 2 and f"more than {safe_yaml.MAX_VALUES} values" in err and "Traceback" not in err, err
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, peak  # PyYAML's safe_load took gigabytes on this file


def test_an_alias_bomb_in_a_real_process_with_a_memory_cap(tmp_path):
    """Under a 1 GiB address-space cap (PyYAML's safe_load alone needed ~3 GB on this file, then
    ended in a MemoryError traceback)."""
    path = _write(tmp_path, ALIAS_BOMB)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1024**3, 1024**3))

    run = subprocess.run([*msgreach_command(), "check-config", str(path)], check=False, capture_output=True, text=True, timeout=120, preexec_fn=cap)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "more than" in run.stderr and "Traceback" not in run.stderr


def test_a_long_plain_config_names_the_budget_it_passed(tmp_path):
    """10,000 targets without an alias are no bomb: the refusal says which budget was passed
    and how to stay within it, and does not speak of aliases (an alias bomb's does)."""
    rows = "".join(f"      - {{name: t{i}, host: h{i}.test, ports: [443], checks: [tcp]}}\n" for i in range(10_000))
    text = BASE.split("services:")[0] + "services:\n  - name: big\n    targets:\n" + rows
    row = _refused(_write(tmp_path, text), "services.0.targets", f"more than {safe_yaml.MAX_VALUES} values in one file")
    assert "alias" not in row and "catalog files" in row, row
    code, _, err = _check(_write(tmp_path, ALIAS_BOMB, "bomb.yaml"))
    assert code == 2 and "copied by aliases" in err, err


def test_a_catalog_takes_the_same_bounded_path(tmp_path):
    bomb = ALIAS_BOMB.replace("vantages: [{name: *j}]\n", "name: bomb\ntargets: [{name: t, host: *j}]\n")
    _write(tmp_path, bomb, "bomb.yaml")
    path = _write(tmp_path, _with("services: [{catalog: bomb.yaml}]"))
    code, _, err = _check(path)
    assert code == 2 and f"{tmp_path / 'bomb.yaml'}:" in err and "more than" in err


def test_aliases_and_merge_keys_within_bounds_still_work(tmp_path):
    text = BASE + "schedule:\n  timeouts: &t {dns: 2, tcp: 3}\nevidence: {keep_files: 3}\n"
    text = text.replace("      - {name: t, host: t.test, checks: [dns, tcp]}\n",
                        "      - &base {name: t, host: t.test, checks: [dns, tcp]}\n      - {<<: *base, name: u}\n")
    config = config_module.load(_write(tmp_path, text))
    assert [t.name for t in config.services[0].targets] == ["t", "u"]
    assert config.services[0].targets[1].checks == ["dns", "tcp"]
    assert config.schedule.timeouts.tcp == 3


@pytest.mark.parametrize(
    "text, line, key",
    [
        ("schedule:\n  retries: 1\n  retries: 2\n", 3, "schedule.retries"),
        ("vantages: []\nservices: []\nvantages: []\n", 3, "vantages"),
        ("schedule: {retries: 1, retries: 1}\n", 1, "schedule.retries"),
    ],
)
def test_duplicate_keys_are_refused(tmp_path, text, line, key):
    _refused(_write(tmp_path, text), key, "duplicate key", line)


@pytest.mark.parametrize(
    "text, words",
    [
        ("? [a, b]\n: 1\n", "plain value"),
        ("a: !!python/object:os.system {}\n", "not supported"),
        ("a: !!python/name:os.system ''\n", "not valid YAML"),
        ("a: !!set {x}\n", "not supported"),
        ("a: " + "9" * 5000 + "\n", "not a valid value"),
        ("a: &x {<<: *x}\n", "alias that contains itself"),
        ("a: " + "[" * 80 + "]" * 80 + "\n", "nested too deeply"),
    ],
)
def test_hostile_yaml_is_refused_with_a_line(tmp_path, text, words):
    code, _out, err = _check(_write(tmp_path, text))
    assert code == 2 and "Traceback" not in err
    assert words in err and f"{tmp_path / 'msgreach.yaml'}:" in err, err


def test_yaml_is_parsed_with_libyaml_where_available():
    assert safe_yaml._Loader is getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --- files: regular, bounded ----------------------------------------------------------------------


def test_a_device_a_fifo_and_a_huge_file_are_refused_unread(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # no writer: an open without O_NONBLOCK, or a read, would block forever
    huge = _write(tmp_path, "# " + "x" * MAX_YAML_BYTES + "\n", "huge.yaml")
    for path, words in ((Path("/dev/zero"), "not a regular file"), (fifo, "not a regular file"), (huge, "larger than")):
        code, _, err = _check(path)
        assert code == 2 and words in err, err
    for ref in ("/dev/zero", str(fifo)):
        path = _write(tmp_path, _with(f"fingerprints: [{ref}]"))
        _refused(path, "fingerprints.0", "no fingerprints catalog")
        path = _write(tmp_path, _with(f"services: [{{catalog: {ref}}}]"))
        _refused(path, "services.0.catalog", "no catalog")


# --- caps and strict types ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, key, words",
    [
        ("schedule: {interval_seconds: .inf}", "schedule.interval_seconds", "finite"),
        ("schedule: {interval_seconds: .nan}", "schedule.interval_seconds", "finite"),
        ("schedule: {interval_seconds: 1.0e+308}", "schedule.interval_seconds", "less than or equal"),
        ("schedule: {interval_seconds: 1e308}", "schedule.interval_seconds", "valid number"),  # YAML 1.1: a string
        ("schedule: {jitter_seconds: .inf}", "schedule.jitter_seconds", "finite"),
        ("schedule: {round_deadline_seconds: 1.0e+300}", "schedule.round_deadline_seconds", "less than or equal"),
        ("schedule: {timeouts: {tcp: .inf}}", "schedule.timeouts.tcp", "finite"),
        ("schedule: {timeouts: {http: 1.0e+308}}", "schedule.timeouts.http", "less than or equal"),
        ("schedule: {timeouts: {extra: {quic: .inf}}}", "schedule.timeouts.extra.quic", "finite"),
        ("schedule: {timeouts: {extra: {qiuc: 5}}}", "schedule.timeouts.extra", "unknown check"),
        ("schedule: {concurrency: 100000}", "schedule.concurrency", "less than or equal"),
        ("schedule: {concurrency: true}", "schedule.concurrency", "valid integer"),
        ("schedule: {retries: '3'}", "schedule.retries", "valid integer"),
        ("schedule: {interval_seconds: true}", "schedule.interval_seconds", "valid number"),
        ("evidence: {max_bytes: 1.0e+30}", "evidence.max_bytes", "valid integer"),
        ("evidence: {max_bytes: 100000000000000000}", "evidence.max_bytes", "less than or equal"),
        ("services: [{name: s, targets: [{name: t, host: t.test, ports: [true]}]}]", "services.0.targets.0.ports.0", "valid integer"),
        ("services: [{name: s, targets: [{name: t, host: t.test, ports: ['443']}]}]", "services.0.targets.0.ports.0", "valid integer"),
        ("services: [{name: s, enabled: 1, targets: [{name: t, host: t.test}]}]", "services.0.enabled", "valid boolean"),
        ("vantages: [{name: home, bogon_exempt: [true]}]", "vantages.0.bogon_exempt.0", "written as text"),
        ("services: [{name: s, networks: {prefixes: [5]}, targets: [{name: t, host: t.test}]}]", "services.0.networks.prefixes.0", "written as text"),
        ("services: [{name: s, targets: [{name: t, host: t.test, params: {mtproto: {exchange_timeout: .inf}}}]}]",
         "services.0.targets.0.params.mtproto.exchange_timeout", "finite"),
        ("services: [{name: s, targets: [{name: t, host: t.test, params: {throughput: {max_seconds: 1.0e+308}}}]}]",
         "services.0.targets.0.params.throughput.max_seconds", "less than or equal"),
        ("services: [{name: s, targets: [{name: t, host: t.test, params: {http: {max_body_bytes: true}}}]}]",
         "services.0.targets.0.params.http.max_body_bytes", "valid integer"),
        ("services: [{name: s, targets: [{name: t, host: t.test, params: {tls: {tries: 1000000}}}]}]",
         "services.0.targets.0.params.tls.tries", "less than or equal"),
    ],
)
def test_durations_and_counts_are_capped_and_typed(tmp_path, extra, key, words):
    _refused(_write(tmp_path, _with(extra)), key, words)


# --- names and addresses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, key, words",
    [
        ("services: [{name: s, targets: [{name: t, host: ''}]}]", "services.0.targets.0.host", "valid host name"),
        ("services: [{name: s, targets: [{name: t, host: 'a b.test'}]}]", "services.0.targets.0.host", "valid host name"),
        ("services: [{name: s, targets: [{name: t, host: ' t.test'}]}]", "services.0.targets.0.host", "valid host name"),
        ("services: [{name: s, targets: [{name: '', host: t.test}]}]", "services.0.targets.0.name", "non-empty"),
        ("vantages: [{name: ''}]", "vantages.0.name", "non-empty"),
        ("vantages: [{name: '  '}]", "vantages.0.name", "non-empty"),
        ("vantages: [{name: home, source_address: bogus}]", "vantages.0.source_address", "IP address"),
        ("vantages: [{name: home, source_address: 'example.org:80'}]", "vantages.0.source_address", "IP address"),
        ("vantages: [{name: home, socks5: hostonly}]", "vantages.0.socks5", "needs a port"),
        ("vantages: [{name: home, socks5: 'socks5://user@proxy.test:1080'}]", "vantages.0.socks5", "credentials"),
        ("vantages: [{name: home, socks5: 'http://proxy.test:8080'}]", "vantages.0.socks5", "socks5://"),
        ("vantages: [{name: home, socks5: 'a b:1080'}]", "vantages.0.socks5", "neither an IP address nor a host name"),
        ("vantages: [{name: home, resolvers: [{address: 'https://', control: true}]}]", "vantages.0.resolvers.0.address", "URL"),
        ("vantages: [{name: home, resolvers: [{address: 'tls://9.9.9.9', server_name: 'dns quad9'}]}]",
         "vantages.0.resolvers.0.server_name", "host name"),
        ("listen: {address: '127.0.0.1:99999'}", "listen.address", "bad port"),
        ("listen: {address: 'no such host:80'}", "listen.address", "neither"),
        ("listen: {address: ':80'}", "listen.address", "neither"),
        # What `run` could not bind (issue #21): no DNS is asked, nothing is sent.
        ("listen: {address: notanaddress}", "listen.address", "listen on an IP address"),
        ("listen: {address: '300.1.1.1:80'}", "listen.address", "not an IP address"),
        ("listen: {address: '192.0.2.55:9910'}", "listen.address", "not an address of this machine"),
        ("vantages: [{name: home, source_address: '192.0.2.77'}]", "vantages.0.source_address", "not an address of this machine"),
        ("vantages: [{name: home, source_address: '2001:db8::77'}]", "vantages.0.source_address", "not an address of this machine"),
        ("decoy_sni: ''", "decoy_sni", "host name"),
        ("controls: []", "controls", "at least one control"),
    ],
)
def test_names_and_addresses(tmp_path, extra, key, words):
    _refused(_write(tmp_path, _with(extra)), key, words)


@pytest.mark.parametrize("listen", ["a b:80", "127.0.0.1:99999", ":80", "127.0.0.1:http", "notanaddress", "300.1.1.1:80", "192.0.2.55:9910"])
def test_the_listen_option_is_checked_like_the_config(tmp_path, listen):
    path = _write(tmp_path, BASE)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--config", str(path), "--listen", listen])
    assert exit_.value.code == 2
    assert "--listen" in err.getvalue() and "Traceback" not in err.getvalue()


@pytest.mark.parametrize(
    "extra",
    [
        "vantages: [{name: home, source_address: '127.0.0.1'}]",
        "vantages: [{name: home, source_address: '127.0.0.1:40000'}]",
        "vantages: [{name: home, socks5: '127.0.0.1:1080', resolvers: ['127.0.0.1']}]",
        "vantages: [{name: home, socks5: 'socks5://proxy.test:1080', resolvers: ['tls://127.0.0.1']}]",
        "listen: {address: '[::1]:9911'}",
        "listen: {address: 'localhost:9911'}",
        "listen: {address: '127.0.0.1'}",
    ],
)
def test_good_addresses_pass(tmp_path, extra):
    code, _, err = _check(_write(tmp_path, _with(extra)))
    assert code == 0, err


# --- files a config names ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca = TestCA(directory)
    leaf = ca.issue("listener", ["localhost", "127.0.0.1"])
    other = ca.issue("other", ["localhost"])
    return {"ca": ca.pem, "cert": leaf.cert, "key": leaf.key, "other_key": other.key}


def test_ca_bundles_must_hold_a_certificate(tmp_path, pki):
    garbage = _write(tmp_path, "not a certificate\n", "garbage.pem")
    empty = _write(tmp_path, "", "empty.pem")
    key_only = pki["key"]
    for bundle, words in ((garbage, "not a PEM bundle"), (empty, "not a PEM bundle"), (key_only, "not a PEM bundle"),
                          (tmp_path / "missing.pem", "cannot read"), (Path("/dev/zero"), "not a regular file")):
        _refused(_write(tmp_path, _with(f"vantages: [{{name: home, ca_bundle: {bundle}}}]")), "vantages.0.ca_bundle", words)
    _refused(_write(tmp_path, _with(f"services: [{{name: s, ca_bundle: {garbage}, targets: [{{name: t, host: t.test}}]}}]")),
             "services.0.ca_bundle", "not a PEM bundle")
    _refused(_write(tmp_path, _with(f"services: [{{name: s, targets: [{{name: t, host: t.test, ca_bundle: {garbage}}}]}}]")),
             "services.0.targets.0.ca_bundle", "not a PEM bundle")
    config = config_module.load(_write(tmp_path, _with(f"vantages: [{{name: home, ca_bundle: {pki['ca']}}}]")))
    assert config.vantages[0].ca_bundle == pki["ca"]


def test_the_listener_certificate_and_key_must_load(tmp_path, pki):
    for cert, key, words in (
        (pki["cert"], pki["other_key"], "cannot load the certificate"),
        (pki["ca"], pki["cert"], "cannot load the certificate"),
        (tmp_path / "missing.pem", pki["key"], "cannot read"),
        (pki["cert"], Path("/dev/zero"), "not a regular file"),
    ):
        path = _write(tmp_path, _with(f"listen: {{tls: {{cert_file: {cert}, key_file: {key}}}}}"))
        _refused(path, "listen.tls", words)
    config = config_module.load(_write(tmp_path, _with(f"listen: {{tls: {{cert_file: {pki['cert']}, key_file: {pki['key']}}}}}")))
    assert config.listen.tls is not None


def test_basic_auth_secrets_must_be_set_and_non_empty(tmp_path, monkeypatch):
    empty = _write(tmp_path, "\n  \n", "empty-password")
    monkeypatch.delenv("MSGREACH_TEST_UNSET", raising=False)
    monkeypatch.setenv("MSGREACH_TEST_EMPTY", "")
    for auth, words in (
        (f"{{username: prom, password_file: {empty}}}", "is empty"),
        (f"{{username: prom, password_file: {tmp_path / 'missing'}}}", "cannot read"),
        ("{username: prom, password_file: /dev/zero}", "not a regular file"),
        ("{username: prom, password_env: MSGREACH_TEST_UNSET}", "unset or empty"),
        ("{username: prom, password_env: MSGREACH_TEST_EMPTY}", "unset or empty"),
        ("{username: prom}", "exactly one"),
        ("{username: '', password_env: MSGREACH_TEST_EMPTY}", "non-empty"),
    ):
        _refused(_write(tmp_path, _with(f"listen: {{basic_auth: {auth}}}")), "listen.basic_auth", words)
    monkeypatch.setenv("MSGREACH_TEST_SET", "s3cret")
    config = config_module.load(_write(tmp_path, _with("listen: {basic_auth: {username: prom, password_env: MSGREACH_TEST_SET}}")))
    assert config.listen.basic_auth.password() == "s3cret"


# --- typed params, control classes, helpers ----------------------------------------------------------


def test_params_are_stored_typed_and_every_check_has_its_model(tmp_path):
    from probe.checks import (
        REGISTRY,  # here only: the config itself never imports the checks
    )

    assert list(REGISTRY) == list(CHECK_PARAMS)
    for name, module in REGISTRY.items():
        assert module.Params is CHECK_PARAMS[name], name
    text = _with("services: [{name: s, targets: [{name: t, host: t.test, checks: [http], params: {http: {path: /x}}}]}]")
    target = config_module.load(_write(tmp_path, text)).services[0].targets[0]
    assert isinstance(target.params["http"], HTTPParams) and target.params["http"].path == "/x"
    controls = config_module.load(None).controls
    download = next(t for t in controls if "throughput" in t.checks)
    assert isinstance(download.params["throughput"], ThroughputParams)


def test_control_class(tmp_path):
    config = config_module.load(_write(tmp_path, BASE))
    assert config.controls[0].control_class == "international"
    shipped = {t.name: t.control_class for t in config_module.load(None).controls}
    assert shipped["domestic"] == "domestic" and shipped["international"] == "international" and shipped["stun"] == "yardstick"
    _refused(_write(tmp_path, _with("controls: [{name: c, host: c.test, control_class: abroad}]")), "controls.0.control_class", "international")


def test_helpers(tmp_path):
    secret = _write(tmp_path, "a shared secret, long enough\n", "helper.secret")
    empty = _write(tmp_path, "", "empty.secret")
    short = _write(tmp_path, "x" * (MIN_HELPER_SECRET_BYTES - 1) + "\n", "short.secret")  # the helper refuses it: so does check-config
    fifo = tmp_path / "fifo.secret"
    os.mkfifo(fifo)
    config = config_module.load(_write(tmp_path, _with("helpers: [{name: nl, url: 'https://helper.test:8443', secret_file: helper.secret}]")))
    [helper] = config.helpers
    assert (helper.name, helper.url, helper.secret_file, helper.control) == ("nl", "https://helper.test:8443", secret, True)
    assert config_module.load(_write(tmp_path, BASE)).helpers == []
    for helper_text, key, words in (
        (f"{{name: nl, url: 'https://helper.test', secret_file: {empty}}}", "helpers.0.secret_file", "is empty"),
        (f"{{name: nl, url: 'https://helper.test', secret_file: {short}}}", "helpers.0.secret_file", f"shorter than {MIN_HELPER_SECRET_BYTES} bytes"),
        (f"{{name: nl, url: 'https://helper.test', secret_file: {fifo}}}", "helpers.0.secret_file", "not a regular file"),
        ("{name: nl, url: 'https://helper.test', secret_file: nowhere}", "helpers.0.secret_file", "cannot read"),
        (f"{{name: nl, url: 'ftp://helper.test', secret_file: {secret}}}", "helpers.0.url", "http:// or https://"),
        (f"{{name: nl, url: 'https://user:pw@helper.test', secret_file: {secret}}}", "helpers.0.url", "no credentials"),
        (f"{{name: nl, url: 'https://', secret_file: {secret}}}", "helpers.0.url", "URL"),
    ):
        _refused(_write(tmp_path, _with(f"helpers: [{helper_text}]")), key, words)
    two = f"helpers: [{{name: a, url: 'http://h.test', secret_file: {secret}}}, {{name: a, url: 'http://h.test', secret_file: {secret}}}]"
    _refused(_write(tmp_path, _with(two)), "helpers", "unique")


# --- fuzzing ------------------------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from([
    "&a ", "*a", "&b ", "*b", "<<: *a", "<<: [*a, *b]", "!!set ", "!!python/object:os.system ", "!!binary ", "!!timestamp ",
    ".inf", "-.inf", ".nan", "1.0e+308", "1e308", "true", "yes", "~", "0x10", "0o7", "1_000", "'x'", '"\\x00"', "[", "]", "{", "}",
    ": ", "\n", "\n  ", "\n    ", "- ", ", ", "? ", "interval_seconds", "timeouts", "tcp", "ports", "host", "name", "controls",
    "vantages", "services", "targets", "ca_bundle", "/dev/zero", "password_env", "socks5", "source_address", "listen", "address",
    "params", "http", "exchange_timeout", "control_class", "helpers", "secret_file", "retries", "concurrency",
])


@settings(max_examples=int(os.environ.get("MSGREACH_FUZZ_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(pieces=st.lists(st.one_of(_FRAGMENTS, st.text(string.printable, max_size=6)), max_size=40), where=st.integers(0, len(BASE)))
def test_fuzz_hostile_fragments_never_traceback(tmp_path, pieces, where):
    text = BASE[:where] + "".join(pieces) + BASE[where:]
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code, _out, err = _check(path)
    assert code in (0, 2), (code, text)
    assert "Traceback" not in err
    if code == 2:
        assert err.strip() and all(row.startswith("/") for row in err.strip().splitlines()), err


@pytest.mark.parametrize("text", ["!!timestamp vantages: []\n", "!!bool maybe\n", "schedule: !!timestamp soon\n", "!!binary vantages: []\n"])
def test_an_explicit_tag_pyyaml_cannot_read_is_the_files_fault(tmp_path, text):
    # Found by the fuzz test above: PyYAML's timestamp constructor raised AttributeError on a
    # value it could not match, and check-config printed a traceback.
    path = tmp_path / "tagged.yaml"
    path.write_text(text)
    code, _out, err = _check(path)
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"{path}:1: "), err


SAME_AS_PYYAML = [
    "a: 1\nb: [x, 'y', \"z\", 1.5, true, null, 2026-12-02]\nc: {d: e}\n",
    "base: &b {x: 1, y: [1, 2]}\nc: {<<: *b, y: 3}\nd: {<<: [*b, {z: 2}], x: 0}\ne: *b\n",
    "k: &k key\n*k : 3\nlist: &l [a, b]\nagain: *l\n",
    "? plain\n: value\n'<<': quoted is a key\n",
    "---\nonly: one document\n...\n",
    "",
    "- 0x1f\n- 0o17\n- 1_000\n- .inf\n- ~\n- !!str 12\n- !!int '7'\n",
    # Repeated scalars, plain, quoted and tagged (the builder resolves and builds each once per file).
    "- 443\n- '443'\n- 443\n- !!str 443\n- \"443\"\n- 443\n- true\n- 'true'\n- true\n- ~\n- '~'\n- ~\n- 1\n- !!float 1\n- 1\n- !!bool true\n",
    "a: [x]\nb: !!seq [x]\nc: {k: v}\nd: !!map {k: v}\ne: [x]\n",
]


@pytest.mark.parametrize("text", SAME_AS_PYYAML)
def test_the_event_builder_reads_what_pyyaml_reads(text):
    data = safe_yaml.parse_data(text, "t.yaml")
    assert data == yaml.safe_load(text)
    assert repr(data) == repr(yaml.safe_load(text))  # the same types too: 1 == 1.0 == True


def test_parsing_holds_little_more_than_the_data_it_builds():
    # The data is built from libyaml's events: no node tree (nor the constructor's memory of
    # every node) is held on the way. The node-tree builder peaked at 5x the data it returned.
    text = "targets:\n" + "".join(f"  - {{name: t{i}, host: t{i}.test, ports: [443], checks: [tcp, tls]}}\n" for i in range(500))
    tracemalloc.start()
    try:
        data = safe_yaml.parse_data(text, "big.yaml")
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(data["targets"]) == 500
    assert peak < 2 * held, (peak, held)
