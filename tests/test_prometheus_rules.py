"""The shipped Prometheus rules and config, checked and unit-tested by the real promtool.

* the committed rule files are exactly what configs/prometheus/generate_rules.py generates,
  and the committed promtool tests what tests/promtool/build_tests.py builds;
* `promtool check rules` / `promtool check config` accept them;
* `promtool test rules` passes for both profiles (the scenarios are in build_tests.py: a sudden
  block fires with its technique, and nothing fires on a single failed round, a flapping lossy
  link, an offline vantage, a service down everywhere including at a control vantage, ...);
* the rules' idea of a block verdict matches the engine's verdicts.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from opstools import ROOT, require_tool, run

PROM = ROOT / "configs" / "prometheus"
RULE_FILES = {"default": PROM / "rules" / "msgreach.yml", "fast": PROM / "fast-profile" / "msgreach.yml"}
PROMTOOL_TESTS = {"default": ROOT / "tests" / "promtool" / "default_test.yml", "fast": ROOT / "tests" / "promtool" / "fast_test.yml"}


def test_rule_files_are_generated_and_fresh():
    proc = subprocess.run([sys.executable, str(PROM / "generate_rules.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_promtool_tests_are_built_and_fresh():
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "promtool" / "build_tests.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("profile", sorted(RULE_FILES))
def test_promtool_check_rules(profile):
    promtool = require_tool("promtool")
    out = run([promtool, "check", "rules", str(RULE_FILES[profile])])
    assert "SUCCESS" in out.stdout


@pytest.mark.parametrize("profile", sorted(RULE_FILES))
def test_every_alert_links_its_runbook_section_and_an_absolute_dashboard(profile):
    """Links a Telegram message, an e-mail or a pager can open: absolute on Prometheus's external
    URL; the runbook link names a section of docs/operators.md that exists."""
    operators = (ROOT / "docs" / "operators.md").read_text()
    sections = {line.removeprefix("### ").strip().lower() for line in operators.splitlines() if line.startswith("### ")}
    alerts = [r for g in yaml.safe_load(RULE_FILES[profile].read_text())["groups"] for r in g["rules"] if "alert" in r]
    assert len({a["alert"] for a in alerts}) >= 8
    for rule in alerts:
        annotations = rule["annotations"]
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "{{ $externalURL }}/docs/operators.md" and anchor == rule["alert"].lower(), annotations["runbook_url"]
        assert anchor in sections, f"docs/operators.md has no section '### {rule['alert']}'"
        assert annotations["dashboard"].startswith("{{ $externalURL }}/d/msgreach-"), annotations["dashboard"]


def test_promtool_check_config():
    promtool = require_tool("promtool")
    out = run([promtool, "check", "config", str(PROM / "prometheus.yml")])
    assert "SUCCESS" in out.stdout


@pytest.mark.parametrize("profile", sorted(PROMTOOL_TESTS))
def test_promtool_unit_tests(profile):
    promtool = require_tool("promtool")
    path = PROMTOOL_TESTS[profile]
    out = run([promtool, "test", "rules", path.name], cwd=path.parent, timeout=600)
    assert "SUCCESS" in out.stdout


def test_every_alert_is_exercised_by_a_unit_test():
    """Each alert name appears firing in at least one promtool expectation."""
    rules = yaml.safe_load(RULE_FILES["default"].read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load(PROMTOOL_TESTS["default"].read_text())
    fired = {c["alertname"] for t in tests["tests"] for c in t.get("alert_rule_test", []) if c["exp_alerts"]}
    assert alerts == fired, f"alerts never seen firing in a unit test: {sorted(alerts - fired)}"


# The cases that must never page a block (issue #13), each a generated promtool scenario of the
# default profile, with scheduled rounds only and with the engine's confirmation round.
SILENT_CASES = {
    "a one-round flap": ["a one-round flap (one blocked round", "a one-round flap that the confirmation round finds ok"],
    "a restart": ["a restart neither pages", "after a restart the first round's block is confirmed again"],
    "a lossy line": ["a lossy line (block, ok and offline rounds", "a lossy line (blocks whose confirmation round is ok"],
    "a dead resolver": ["a dead resolver", "its only resolver died"],
    "an offline vantage": ["an offline vantage"],
    "the allowlist regime": ["the allowlist regime: one page per country/ASN", "the allowlist regime pages once per country/ASN at its confirmation"],
}
BLOCK_ALERTS = {"MsgreachSuddenBlock", "MsgreachWideBlock", "MsgreachTechniqueChange"}


@pytest.mark.parametrize("case", sorted(SILENT_CASES))
def test_each_silent_case_is_a_generated_scenario_without_a_block_page(case):
    """Each case is still among the generated scenarios (removing one fails here), and none of
    its expectations lets a block alert fire (promtool then proves the expectations)."""
    tests = yaml.safe_load(PROMTOOL_TESTS["default"].read_text())["tests"]
    for fragment in SILENT_CASES[case]:
        found = [t for t in tests if fragment in t["name"]]
        assert len(found) == 1, f"{case}: no single generated scenario named like {fragment!r}"
        checks = found[0]["alert_rule_test"]
        assert checks, found[0]["name"]
        for check in checks:
            if check["alertname"] in BLOCK_ALERTS:
                # A page firing already before the case began (the restart) is allowed to hold; no other.
                assert all(a["exp_labels"].get("service") == "telegram" and "restart" in case for a in check["exp_alerts"]), (found[0]["name"], check)
        silent = [c for c in checks if c["alertname"] in BLOCK_ALERTS and not c["exp_alerts"]]
        assert silent, f"{found[0]['name']}: no expectation that the block alerts stay silent"


def test_block_verdicts_match_the_model():
    """The rules' idea of a block is probe.model's: every technique verdict (BLOCKS) and
    `partial`; `down`, `error`, `vantage_offline` and `ok` never page."""
    from probe.model import BLOCKS, SERVICE_VERDICTS, Verdict

    text = RULE_FILES["default"].read_text()
    matchers = set(re.findall(r'verdict=~"([a-z_|]+)"', text))
    blocks = {str(v) for v in BLOCKS} | {str(Verdict.PARTIAL)}
    not_blocks = {str(v) for v in SERVICE_VERDICTS} - blocks
    assert {frozenset(m.split("|")) for m in matchers} >= {frozenset(blocks), frozenset(not_blocks)}
    assert not_blocks == {"down", "error", "vantage_offline", "ok"}
    for matcher in matchers:  # no verdict outside the model's vocabulary
        assert set(matcher.split("|")) <= {str(v) for v in SERVICE_VERDICTS}, matcher


def test_rules_use_the_role_label_and_the_vantage_verdict():
    text = RULE_FILES["default"].read_text()
    assert 'role!="control"' in text and 'role="control"' in text
    assert '"control", "true"' not in text  # no `control` label: msgreach exports `role`
    assert 'msgreach_vantage_verdict{verdict="allowlist"}' in text
