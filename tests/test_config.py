"""Config: `msgreach check-config` names every problem with file, line and key path and exits 2
without a traceback; fuzzed config text never gets anything else than exit 0 or 2."""

from __future__ import annotations

import contextlib
import io
import os
import re
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers.testca import TestCA

from probe import cli
from probe import config as config_module

VALID = """\
vantages:
  - name: home
    country: RU
    asn: "12389"
    resolvers:
      - 127.0.0.1:5353
      - {address: "tls://127.0.0.1:853", server_name: dot.test}
      - {address: "https://127.0.0.1:8443/dns-query", control: true}
    bogon_exempt: ["127.0.0.0/8"]
schedule:
  interval_seconds: 30
  timeouts: {dns: 1, tls: 2}
services:
  - catalog: telegram
    patch:
      dc1: {addresses: ["127.0.0.1"]}
  - name: inline
    networks: {prefixes: ["127.0.0.0/8"]}
    targets:
      - name: web
        host: web.test
        ports: [8443]
        params: {http: {path: /x}}
controls:
  - {name: ctl, host: ctl.test, checks: [dns, tcp]}
listen: {address: "127.0.0.1:9911"}
"""


def _check_config(path: Path) -> tuple[int, str, str]:
    """`msgreach check-config` in process: (exit code, stdout, stderr); any exception escapes."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(["check-config", str(path)])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def test_valid_config(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(VALID)
    code, out, err = _check_config(path)
    assert (code, err) == (0, "")
    assert "ok (1 vantage(s), 2 service(s)" in out
    config = config_module.load(path)
    telegram = next(s for s in config.services if s.name == "telegram")
    assert next(t for t in telegram.targets if t.name == "dc1").addresses == ["127.0.0.1"]
    assert [r.kind for r in config.vantages[0].resolvers] == ["udp", "dot", "doh"]
    assert config.schedule.timeouts.for_check("tls") == 2 and config.schedule.timeouts.for_check("http") == 10


def test_the_embedded_default_loads():
    config = config_module.load(None)
    assert config.source == "<default>"
    assert {s.name for s in config.services} == {"whatsapp", "telegram", "signal"}
    assert config.controls, "the default has controls"
    assert any(r.control for r in config.vantages[0].resolvers)
    assert config.listen.address.startswith("127.0.0.1:")
    assert config.fingerprints.dns_addresses and config.fingerprints.redirect_hosts


@pytest.mark.parametrize("catalog", ["whatsapp", "telegram", "signal", "controls"])
def test_shipped_catalogs_are_valid(catalog):
    path = config_module.configs_dir() / "services" / f"{catalog}.yaml"
    service = config_module.Service.model_validate(config_module.resolve_paths(config_module.load_yaml(path)[0], path.parent))
    assert service.targets
    if service.ca_bundle is not None:
        assert service.ca_bundle.is_file()


# (file text, expected line, expected key, words of the message)
BROKEN = {
    "bad_yaml": ("vantages:\n  - name: a\n    resolvers: [1.2.3.4\nschedule: {}\n", 4, "<top>", "not valid YAML"),
    "wrong_type": ("schedule:\n  interval_seconds: often\nservices: []\n", 2, "schedule.interval_seconds", "number"),
    "unknown_key": ("vantages:\n  - name: a\n    colour: blue\nservices: []\n", 3, "vantages.0.colour", "Extra inputs"),
    "unknown_top_key": ("services: []\nsevrices: []\n", 2, "sevrices", "Extra inputs"),
    "bad_port": (
        "services:\n  - name: svc\n    targets:\n      - name: t\n        host: a.test\n        ports: [443, 70000]\n",
        6, "services.0.targets.0.ports.1", "less than 65536",
    ),
    "unknown_check": (
        "services:\n  - name: svc\n    targets:\n      - name: t\n        host: a.test\n        checks: [dns, telepathy]\n",
        6, "services.0.targets.0.checks", "unknown check 'telepathy'",
    ),
    "unknown_catalog": ("services:\n  - catalog: whatsapp\n  - catalog: icq\n", 3, "services.1.catalog", "no catalog 'icq'"),
    "bad_resolver": ("vantages:\n  - name: a\n    resolvers:\n      - system\n      - not-an-ip\n", 5, "vantages.0.resolvers.1.address", "not-an-ip"),
    "bad_resolver_port": ("vantages:\n  - resolvers: [\"tls://1.2.3.4:99999\"]\nservices: []\n", 2, "vantages.0.resolvers.0.address", "bad port"),
    "patch_unknown_target": (
        "services:\n  - catalog: telegram\n    patch:\n      dc9: {addresses: [\"127.0.0.1\"]}\n",
        4, "services.0.patch.dc9", "no target 'dc9'",
    ),
    "patch_bad_value": ("services:\n  - catalog: telegram\n    patch:\n      dc1: {ports: [0]}\n", 4, "services.0.patch.dc1.ports.0", "greater than 0"),
    "unknown_fingerprints": ("services: []\nfingerprints: [blockpages, nosuch]\n", 2, "fingerprints.1", "no fingerprints catalog 'nosuch'"),
    "bad_params": (
        "services:\n  - name: s\n    targets:\n      - {name: t, host: h.test, params: {http: {max_body_bytes: nope}}}\n",
        4, "services.0.targets.0.params.http.max_body_bytes", "valid integer",
    ),
    "params_unknown_check": (
        "services:\n  - name: s\n    targets:\n      - {name: t, host: h.test, params: {telepathy: {}}}\n",
        4, "services.0.targets.0.params", "params for unknown check 'telepathy'",
    ),
    "bad_pinned_address": (
        "services:\n  - name: s\n    targets:\n      - name: t\n        host: h.test\n        addresses: [999.1.1.1]\n",
        6, "services.0.targets.0.addresses.0", "999.1.1.1",
    ),
    "duplicate_targets": (
        "services:\n  - name: s\n    targets:\n      - {name: a, host: a.test}\n      - {name: a, host: b.test}\n",
        3, "services.0.targets", "duplicate target names",
    ),
    "empty_service": ("services:\n  - name: s\n    targets: []\n", 3, "services.0.targets", "at least one target"),
    "catalog_or_inline": ("services:\n  - name: lonely\n", 2, "services.0", "either `catalog`"),
    "no_vantage": ("vantages: []\nservices: []\n", 1, "vantages", "at least one vantage"),
    "negative_timeout": ("schedule:\n  timeouts: {tcp: -1}\nservices: []\n", 2, "schedule.timeouts.tcp", "greater than 0"),
    "negative_extra_timeout": ("schedule:\n  timeouts:\n    extra: {quic: 0}\nservices: []\n", 3, "schedule.timeouts.extra.quic", "greater than 0"),
    "bad_bogon_exempt": ("vantages:\n  - bogon_exempt: [\"10.0.0.0/33\"]\nservices: []\n", 2, "vantages.0.bogon_exempt.0", ""),
    "bad_socks": ("vantages:\n  - socks5: \"127.0.0.1:notaport\"\nservices: []\n", 2, "vantages.0.socks5", "bad port"),
    "top_level_list": ("- 1\n- 2\n", 1, "<top>", "dictionary"),
    "nested_too_deep": ("a: " + "[" * 3000 + "]" * 3000 + "\n", 1, "<top>", "nested too deeply"),
    "self_alias": ("vantages:\n  - name: &a [*a]\n", 2, "vantages.0.name.0", "an alias that contains itself"),
    "two_documents": ("services: []\n---\nservices: []\n", 2, "<top>", "not valid YAML"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_config_names_file_line_and_key(tmp_path, kind):
    text, line, key, words = BROKEN[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text)
    code, out, err = _check_config(path)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    where = f"{path}:{line}: " if line else f"{path}: "
    matching = [row for row in err.splitlines() if row.startswith(where + key + ":")]
    assert matching, f"no line starting {where + key!r} in:\n{err}"
    assert words in matching[0]


def test_several_problems_are_all_reported(tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text("vantages:\n  - colour: blue\nschedule:\n  interval_seconds: often\nservices:\n  - catalog: icq\n")
    code, _, err = _check_config(path)
    assert code == 2
    keys = [row.split(": ")[1] for row in err.splitlines()]
    assert "vantages.0.colour" in keys and "schedule.interval_seconds" in keys


def test_a_broken_catalog_is_reported_in_the_catalog(tmp_path):
    (tmp_path / "mine.yaml").write_text("name: mine\ntargets:\n  - name: t\n    host: h.test\n    ports: [-1]\n")
    path = tmp_path / "main.yaml"
    path.write_text("services:\n  - catalog: mine.yaml\n")
    code, _, err = _check_config(path)
    assert code == 2
    assert err.startswith(f"{tmp_path / 'mine.yaml'}:5: targets.0.ports.0:")


def test_unreadable_files(tmp_path):
    for path, words in ((tmp_path / "missing.yaml", "cannot read"), (tmp_path, "not a regular file")):
        code, _, err = _check_config(path)
        assert code == 2 and words in err and "Traceback" not in err
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = _check_config(binary)
    assert code == 2 and "not UTF-8" in err


def test_relative_paths_are_relative_to_the_config(tmp_path):
    TestCA(tmp_path / "certs", "ca")  # writes certs/ca.pem: a bundle must hold a certificate
    path = tmp_path / "main.yaml"
    path.write_text("vantages:\n  - ca_bundle: certs/ca.pem\nservices: []\n")
    config = config_module.load(path)
    assert config.vantages[0].ca_bundle == tmp_path / "certs" / "ca.pem"


def test_check_config_in_a_real_process(tmp_path, msgreach):
    path = tmp_path / "bad.yaml"
    path.write_text(BROKEN["bad_port"][0])
    completed = msgreach("check-config", str(path), timeout=30)
    assert completed.returncode == 2
    assert completed.stderr.startswith(f"{path}:6: services.0.targets.0.ports.1: ")
    assert "Traceback" not in completed.stderr


def test_a_key_with_a_line_break_is_one_problem_on_one_line(tmp_path: Path) -> None:
    """A plain key in a flow mapping may run over lines (a fuzz case once printed it raw)."""
    path = tmp_path / "c.yaml"
    path.write_text(VALID.replace("{name: ctl, host: ctl.test", "{name: ctl, h00\n\n ctl.test"))
    code, _, err = _check_config(path)
    assert code == 2 and f"{path}:25: controls.0.h00\\nctl.test: Extra inputs are not permitted" in err.splitlines(), err


# --- fuzzing -------------------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(string.printable, max_size=20),
    st.sampled_from(["system", "tls://1.2.3.4", "https://x/dns-query", "127.0.0.1:53", "[::1]:53", "::1", "dns", "tcp",
                     "whatsapp", "telegram", "controls", "blockpages", "*", "1.2.3.0/24", "0", "-1", "1e309", "~", ""]),
)
_keys = st.one_of(
    st.sampled_from(["vantages", "schedule", "services", "controls", "listen", "fingerprints", "extra_fingerprints", "decoy_sni",
                     "evidence", "name", "resolvers", "address", "control", "catalog", "patch", "targets", "host", "ports",
                     "addresses", "checks", "params", "timeouts", "extra", "networks", "prefixes", "ca_bundle", "bogon_exempt",
                     "socks5", "source_address", "server_name", "bootstrap", "enabled", "interval_seconds", "retries"]),
    st.text(string.ascii_letters + "_", min_size=1, max_size=10),
)
_yaml_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=5)), max_leaves=30)

# MSGREACH_FUZZ_EXAMPLES=5000 for a longer hunt than the default run's.
FUZZ = settings(max_examples=int(os.environ.get("MSGREACH_FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _never_a_traceback(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code, out, err = _check_config(path)
    assert code in (0, 2), (code, text)
    assert "Traceback" not in err
    if code == 2:
        assert err.strip(), "exit 2 must say why"
        for row in err.strip().splitlines():
            assert row.startswith(str(path)) or re.match(r"^/", row), row  # every problem names a file


@FUZZ
@given(data=st.dictionaries(_keys, _yaml_values, max_size=6))
def test_fuzz_random_structures(tmp_path, data):
    _never_a_traceback(tmp_path / "fuzz.yaml", yaml.safe_dump(data, allow_unicode=True))


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


@FUZZ
@given(data=st.data())
def test_fuzz_mutations_of_a_valid_config(tmp_path, data):
    config = yaml.safe_load(VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        paths = [p for p in _paths(config) if p]
        path = data.draw(st.sampled_from(paths))
        parent = config
        for part in path[:-1]:
            parent = parent[part]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = data.draw(_yaml_values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(_keys)] = data.draw(_yaml_values)
        else:
            parent.append(data.draw(_yaml_values))
    _never_a_traceback(tmp_path / "mutated.yaml", yaml.safe_dump(config, allow_unicode=True))


@FUZZ
@given(data=st.data())
def test_fuzz_text_edits_of_a_valid_config(tmp_path, data):
    text = VALID
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(text)))
        kind = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        snippet = data.draw(st.text(string.printable + "&*!|>{}[]-:#'\"%@`\t", min_size=1, max_size=8))
        if kind == "insert":
            text = text[:position] + snippet + text[position:]
        elif kind == "delete":
            text = text[:position] + text[position + len(snippet):]
        else:
            text = text[:position] + snippet + text[position + len(snippet):]
    _never_a_traceback(tmp_path / "edited.yaml", text)


@FUZZ
@given(text=st.text(max_size=300))
def test_fuzz_arbitrary_text(tmp_path, text):
    _never_a_traceback(tmp_path / "text.yaml", text)


@pytest.mark.parametrize("host", ["1.2.3.4", "999.1.1.1", "::1", "fe80::1%eth0", "2001:db8::", "t0001.bench.test",
                                  "_srv.example.", "-bad.test", "", "a..b", "[::1]", "1.2.3.4.5", "host name"])
def test_is_host_reads_as_an_ip_literal_or_a_host_name(host):
    """probe.addresses.is_host tests the name first (cheaper): the same answer either way."""
    from probe.addresses import is_host, is_host_name, is_ip_literal
    from probe.config.models import _host_name

    assert is_host(host) == (is_ip_literal(host) or is_host_name(host))
    try:
        _host_name(host)
        named = True
    except ValueError:
        named = False
    assert named == (not is_ip_literal(host) and is_host_name(host))
