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
