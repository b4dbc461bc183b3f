"""Why a point is offline, in words: real rounds whose control sites meet a dead resolver, a
refused port, a certificate for another name, a block page instead of the site, and a network
namespace with no route at all; and the allowlist regime."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from msgreach_helpers import require_root

from probe.config import Target
from probe.runner import run_all
from probe.status_causes import cause_of, classes_of
from probe.status_texts import words

ROOT = Path(__file__).resolve().parent.parent


def _round(env, tmp_path, controls, resolvers=None):
    vantage = env.vantage(**({"resolvers": resolvers} if resolvers else {}))
    config = env.load(tmp_path, env.config([], vantages=[vantage], controls=controls, schedule={"timeouts": {"dns": 0.3, "tcp": 0.5}}))
    [result] = asyncio.run(run_all(config))
    return result, classes_of(config.controls)


@pytest.mark.parametrize(
    ("server", "params", "kind", "english"),
    [
        ("refused", None, "connect", "Names resolve, but no connection to the test sites gets through (connection refused)."),
        ("wrongname", None, "intercepted", "the test sites' certificates are not theirs (a certificate for another name)"),
        ("plain", {"http": {"path": "/rt", "scheme": "http"}}, "portal", "a sign-in page or a filter answers instead"),
    ],
)
def test_offline_causes_from_real_control_failures(env, tmp_path, server, params, kind, english):
    env.resolve("cause.good.test")
    control = env.target("site", "cause.good.test", server, checks=["dns", "tcp", "tls", "http"] if server != "plain" else ["dns", "tcp", "http"])
    if params:
        control["params"] = params
    result, classes = _round(env, tmp_path, [control])
    assert str(result.verdict) == "vantage_offline"
    cause = cause_of(result, classes)
    assert cause is not None and cause.kind == kind
    assert english in words(cause.reason, "en")
    assert words(cause.reason, "ru") != words(cause.reason, "en") and words(cause.advice, "ru")
    assert [words(s, "en").split(":")[0] for s in cause.sites] == ["site"]


def test_a_dead_resolver_reads_as_dns(env, tmp_path):
    result, classes = _round(env, tmp_path, [env.control_target()], resolvers=[env.dead_dns.address])
    cause = cause_of(result, classes)
    assert cause is not None and cause.kind == "dns"
    assert words(cause.advice, "en").startswith("Check the DNS settings")


def test_allowlist_reads_the_international_sites_only(env, tmp_path):
    env.resolve("abroad.good.test")
    domestic = {**env.control_target(), "name": "home-site", "control_class": "domestic"}
    abroad = env.target("abroad", "abroad.good.test", "refused", checks=["dns", "tcp", "tls", "http"])
    result, classes = _round(env, tmp_path, [domestic, abroad])
    assert str(result.verdict) == "allowlist"
    cause = cause_of(result, classes)
    assert cause is not None and cause.kind == "allowlist"
    assert [words(s, "en") for s in cause.sites] == ["abroad: TCP — connection refused"]
    assert "Nothing to fix on your side" in words(cause.advice, "en")


def test_an_online_point_has_no_cause(env, tmp_path):
    result, classes = _round(env, tmp_path, [env.control_target()])
    assert str(result.verdict) == "ok" and cause_of(result, classes) is None


ISOLATED = textwrap.dedent(
    """
    import asyncio, json, sys
    sys.path.insert(0, sys.argv[1])
    from probe import config as config_module
    from probe.runner import run_all
    from probe.status_causes import cause_of, classes_of
    from probe.status_texts import words
    config = config_module.load(sys.argv[2])
    [result] = asyncio.run(run_all(config))
    cause = cause_of(result, classes_of(config.controls))
    print(json.dumps({"verdict": str(result.verdict), "kind": cause.kind, "en": words(cause.reason, "en")}))
    """
)


def test_no_network_at_all_in_a_namespace_without_routes(tmp_path):
    """A real network namespace with only loopback: the controls' resolver and address have no
    route, so the kernel answers ENETUNREACH (network_unreachable)."""
    require_root("a network namespace (unshare --net)")
    config = tmp_path / "isolated.yaml"
    config.write_text(json.dumps({
        "vantages": [{"name": "isolated", "resolvers": ["198.18.0.53", {"address": "198.18.0.54", "control": True}]}],
        "services": [],
        "controls": [{"name": "abroad", "host": "abroad.example", "ports": [443], "checks": ["dns", "tcp", "tls", "http"]}],
        "schedule": {"timeouts": {"dns": 1, "tcp": 1}, "retries": 0},
    }))
    script = f"ip link set lo up && exec {sys.executable} -c '{ISOLATED}' {ROOT} {config}"
    done = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["verdict"] == "vantage_offline" and found["kind"] == "no_network"
    assert "network unreachable" in found["en"], found


def test_classes_follow_the_config():
    targets = [Target.model_validate({"name": "a", "host": "a.example"}), Target.model_validate({"name": "b", "host": "b.example", "control_class": "domestic"})]
    assert classes_of(targets) == {"a": "international", "b": "domestic"}
