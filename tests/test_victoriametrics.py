"""The centre on VictoriaMetrics (deploy/central/compose.victoriametrics.yaml), with Debian's
real binaries: the dashboards' queries, the shipped rules on vmalert and a page through
Alertmanager, on samples that reached it by remote_write from Prometheus agents.

Setup (inside a fresh network namespace `mro-<random>` with loopback only, deleted after):

    msgreach (mro-a, mro-b: ZZ) --> agent a (deploy/volunteer/agent/run.sh) --\\
    msgreach (mro-c: control)   --> agent c -----------------------------------> victoria-metrics
                                                                                  ^        |
    vmalert (the fast profile's rules; queries, writes rule results back) --------+        |
        \\--> Alertmanager (the shipped routes, every receiver a webhook)                   |
    the dashboards' queries, the default profile's expressions ------------------------------/

victoria-metrics and vmalert run with the flags of the compose file (addresses and paths made
local; vmalert loads the fast profile instead of the default one: the same expressions, short
windows). As in tests/test_dashboard_queries.py, the shipped catalogs fail in a namespace with no
route (Telegram `ip_blocked`, the others `down`, at the control vantage too); a local listener
keeps the vantages online. mro-a and mro-b also measure a local web server, which is stopped
midway: their `local` service turns `ip_blocked`, and MsgreachSuddenBlock must reach the webhook.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import sys
import time

import panel_queries
import pytest
import yaml
from msgreach_helpers import require_root
from opstools import ROOT, require_tool
from panel_queries import substitute
from promstack import (
    Proc,
    Prometheus,
    PromQLError,
    Stack,
    Webhook,
    alertmanager_config,
    mro_namespace,
    wait_for,
)

COMPOSE = ROOT / "deploy" / "central" / "compose.victoriametrics.yaml"
AGENT = ROOT / "deploy" / "volunteer" / "agent" / "run.sh"
FAST_RULES = ROOT / "configs" / "prometheus" / "fast-profile"
sys.path.insert(0, str(ROOT / "configs" / "prometheus"))
from generate_rules import PROFILES, render  # noqa: E402 - the rules' generator, beside the rules

# vmalert stores a rule's result by remote_write and reads it back from the store: a rule that
# latches its own previous result (a block's start round) finds it only if the write is already
# searchable at the next evaluation. The fast profile's latch is 1.5 evaluations (1.5 s), shorter
# than that path here (remote_write flushed every second, then made searchable): the latch broke
# at random, and MsgreachSuddenBlock paged after 12 s, 68 s, 152 s or not within 360 s. The same
# rules evaluated every 5 s (a 7.5 s latch) leave that path room, as the default profile's 15 s
# (a 22.5 s latch) does in production.
VMALERT_PROFILE = dataclasses.replace(PROFILES["fast"], name="fast, evaluated every 5 s for vmalert", eval_interval="5s")
DEFAULT_RULES = ROOT / "configs" / "prometheus" / "rules" / "msgreach.yml"
CENTRE = "centre.example.org"  # CENTRE_HOSTNAME: the alerts' links are absolute on it
RESOLVERS = ["127.0.0.1:53", {"address": "127.0.0.2:53", "control": True}]  # nothing listens: lookups fail
CONTROL_PORT, WEB_PORT = 18080, 18081
SCHEDULE = {"interval_seconds": 2, "jitter_seconds": 0, "retries": 0,
            "timeouts": {"dns": 1, "tcp": 1, "tls": 1, "http": 1, "default": 1}}
CONTROLS = [{"name": "local", "host": "control.mro.test", "addresses": ["127.0.0.1"], "ports": [CONTROL_PORT],
             "checks": ["tcp", "http"], "params": {"http": {"scheme": "http"}}}]
LOCAL_SERVICE = {"name": "local", "targets": [{"name": "web", "host": "web.mro.test", "addresses": ["127.0.0.1"], "ports": [WEB_PORT],
                                               "checks": ["tcp", "http"], "params": {"http": {"scheme": "http"}}}]}
CATALOGS = [{"catalog": name} for name in ("whatsapp", "telegram", "signal")]
PROVIDES = {"rounds", "rules", "online", "failures", "dns_failures", "blocks", "alerts", "dns", "since"}
EMPTY_HERE = {"vantage:msgreach_allowlist_start_round:timestamp"}  # no vantage is in the allowlist regime
SELECTIONS = {
    "all": {"country": ".*", "vantage": "(mro-a|mro-b|mro-c)", "service": "(local|signal|telegram|whatsapp)"},
    "one": {"country": "ZZ", "vantage": "mro-a", "service": "telegram"},
}


# --- the compose file ----------------------------------------------------------------------------


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _expand(text: str) -> str:
    """Compose's ${VAR:-default} and ${VAR:?message}, with this test's .env (CENTRE_HOSTNAME only)."""
    def value(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if name == "CENTRE_HOSTNAME":
            return CENTRE
        assert op == ":-", f"${{{name}}} has no default and this test sets no value for it"
        return rest
    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", value, text)


def _flags(service: str, local: dict[str, str]) -> list[str]:
    """The service's command line from the compose file, each flag named in ``local`` given the
    local value instead (it must be in the compose: the test runs what the file says)."""
    command = [_expand(arg) for arg in _compose()["services"][service]["command"]]
    names = [arg.split("=", 1)[0] for arg in command]
    missing = set(local) - set(names)
    assert not missing, f"{service}: the compose file no longer sets {sorted(missing)}"
    return [f"{name}={local[name]}" if name in local else arg for name, arg in zip(names, command, strict=False)]


def test_the_compose_file_reaches_victoriametrics_where_the_shipped_files_expect_prometheus() -> None:
    """The gateway's write upstream and Grafana's data source (shared with compose.yaml) name
    prometheus:9090: VictoriaMetrics answers there; only the gateway is published; every
    service is as locked down as in compose.yaml; the rules mounted are the shipped default profile."""
    compose = _compose()
    services = compose["services"]
    assert compose["name"] == yaml.safe_load((COMPOSE.parent / "compose.yaml").read_text())["name"]  # same .env, secrets, volumes
    assert {name for name, s in services.items() if "ports" in s} == {"gateway"}
    vm = services["victoria-metrics"]
    assert "prometheus" in vm["networks"]["default"]["aliases"] and "-httpListenAddr=:9090" in vm["command"]
    assert "server prometheus:9090;" in (COMPOSE.parent / "gateway" / "nginx.conf").read_text()
    datasource = yaml.safe_load((COMPOSE.parent / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    for flag in ("-datasource.url", "-remoteWrite.url", "-remoteRead.url"):
        assert f"{flag}=http://victoria-metrics:9090" in services["vmalert"]["command"], flag
    assert "../../configs/prometheus/rules:/etc/vmalert/rules:ro" in services["vmalert"]["volumes"]
    assert "-rule=/etc/vmalert/rules/*.yml" in services["vmalert"]["command"]
    for name, service in services.items():
        assert service.get("read_only") is True and service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name


# --- the stack -----------------------------------------------------------------------------------


def _agent(stack: Stack, vantage: str, msgreach_target: str, write_url: str) -> Proc:
    """A volunteer's agent as shipped (run.sh: agent mode, WAL, remote_write), scraping every second."""
    workdir = stack.workdir / f"agent-{vantage}"
    workdir.mkdir()
    (workdir / "password").write_text("not-checked-here")
    env = {
        "MSGREACH_VANTAGE": vantage, "MSGREACH_TARGET": msgreach_target,
        "REMOTE_WRITE_URL": write_url, "REMOTE_WRITE_USERNAME": vantage, "REMOTE_WRITE_PASSWORD_FILE": str(workdir / "password"),
        "SCRAPE_INTERVAL": "1s", "SCRAPE_TIMEOUT": "900ms", "AGENT_LISTEN": f"127.0.0.1:{stack.port()}",
        "AGENT_CONFIG_DIR": str(workdir / "config"), "AGENT_WAL": str(workdir / "wal"),
        "REMOTE_WRITE_MIN_BACKOFF": "100ms", "REMOTE_WRITE_MAX_BACKOFF": "2s",
    }
    return stack.start(f"agent-{vantage}", "env", *(f"{k}={v}" for k, v in env.items()), "sh", str(AGENT))


class Centre:
    """The running stack: the VictoriaMetrics query API (the same calls as Prometheus's), vmalert,
    the webhook behind Alertmanager, and what the tests switch."""

    def __init__(self, stack: Stack, vm: Prometheus, vm_argv: list[str], vmalert_url: str, webhook: Webhook, web: Proc):
        self.stack, self.vm, self.vm_argv, self.vmalert_url, self.webhook, self.web = stack, vm, vm_argv, vmalert_url, webhook, web

    def vmalert_rules(self) -> list[dict]:
        status, body = self.stack.http(f"{self.vmalert_url}/api/v1/rules")
        assert status == 200, body
        return [rule for group in json.loads(body)["data"]["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def centre(tmp_path_factory):
    require_root("a network namespace (mro-*)")
    for tool in ("ip", "prometheus", "victoria-metrics", "vmalert"):
        require_tool(tool)
    require_tool("prometheus-alertmanager", "alertmanager")
    with mro_namespace() as ns:
        stack = Stack(tmp_path_factory.mktemp("vm-centre"), ns)
        try:
            stack.start("control-listener", "python3", "-m", "http.server", str(CONTROL_PORT), "--bind", "127.0.0.1")
            web = stack.start("web", "python3", "-m", "http.server", str(WEB_PORT), "--bind", "127.0.0.1")

            vm_port = stack.port()
            vm_argv = [require_tool("victoria-metrics"), *_flags("victoria-metrics", {
                "-storageDataPath": str(stack.workdir / "vm-data"), "-httpListenAddr": f"127.0.0.1:{vm_port}"}), "-loggerLevel=WARN"]
            vm = Prometheus(stack, stack.start("victoria-metrics", *vm_argv), vm_port)  # the same query API
            stack.wait_http(f"{vm.url}/health", vm.proc)

            webhook = stack.webhook()
            alertmanager = stack.alertmanager(alertmanager_config(webhook.url, fast=True))
            vmalert_port = stack.port()
            rules = stack.workdir / "vmalert-rules.yml"
            rules.write_text(render(VMALERT_PROFILE))
            vmalert = stack.start("vmalert", require_tool("vmalert"), *_flags("vmalert", {
                "-rule": str(rules),
                "-datasource.url": vm.url, "-remoteWrite.url": vm.url, "-remoteRead.url": vm.url,
                "-notifier.url": alertmanager.url,
                "-evaluationInterval": VMALERT_PROFILE.eval_interval,  # the group sets it anyway
            }), f"-httpListenAddr=127.0.0.1:{vmalert_port}", "-loggerLevel=WARN")
            vmalert_url = f"http://127.0.0.1:{vmalert_port}"
            stack.wait_http(f"{vmalert_url}/health", vmalert)

            # Two processes, as two machines would be: a control vantage in the same process as
            # the others would turn their shared failures into `down` (no block left to see).
            zz = stack.msgreach({
                "vantages": [{"name": n, "country": "ZZ", "asn": "64500", "network": "mro-lab", "resolvers": RESOLVERS} for n in ("mro-a", "mro-b")],
                "schedule": SCHEDULE, "controls": CONTROLS, "services": [*CATALOGS, LOCAL_SERVICE],
            }, name="msgreach-zz")
            control = stack.msgreach({
                "vantages": [{"name": "mro-c", "country": "YY", "asn": "64501", "network": "mro-abroad", "resolvers": RESOLVERS, "control": True}],
                "schedule": SCHEDULE, "controls": CONTROLS, "services": CATALOGS,
            }, name="msgreach-control")
            agents = [_agent(stack, "mro-a", zz.target, f"{vm.url}/api/v1/write"),
                      _agent(stack, "mro-c", control.target, f"{vm.url}/api/v1/write")]

            def logs() -> str:
                return "\n".join(f"--- {p.name}\n{p.tail()}" for p in (*agents, vm.proc, vmalert))

            wait_for(
                "rounds from the three vantages, the local service ok, and an alert written back by vmalert",
                lambda: (len(vm.query("msgreach_rounds_total >= 6")) == 3
                         and vm.query('vantage_service:msgreach_ok:bool{service="local"} == 1')
                         and vm.query('ALERTS{alertname="MsgreachServiceFailingAtControl",alertstate="firing"}')),
                timeout=120, interval=1, on_timeout=logs,
            )
            yield Centre(stack, vm, vm_argv, vmalert_url, webhook, web)
        finally:
            stack.close()


def test_samples_arrive_by_remote_write_with_the_agents_labels(centre) -> None:
    for vantage in ("mro-a", "mro-c"):
        up = centre.vm.query(f'up{{job="msgreach",vantage="{vantage}"}}')  # the agent's external label
        assert up and up[0]["value"][1] == "1", up
    verdicts = centre.vm.query('msgreach_target_verdict{service="local",target="web",verdict="ok"} == 1')
    assert {r["metric"]["vantage"] for r in verdicts} == {"mro-a", "mro-b"}, verdicts


def test_the_rules_evaluate_on_vmalert_without_errors(centre) -> None:
    time.sleep(2)  # a few more evaluations of every rule
    rules = centre.vmalert_rules()
    shipped = yaml.safe_load((FAST_RULES / "msgreach.yml").read_text())["groups"]
    assert len(rules) == sum(len(g["rules"]) for g in shipped)
    bad = [(r["name"], r.get("health"), r.get("lastError")) for r in rules if r.get("health") != "ok" or r.get("lastError")]
    assert not bad, bad


@pytest.mark.parametrize("selection", sorted(SELECTIONS))
@pytest.mark.parametrize("uid", ["msgreach-overview", "msgreach-service", "msgreach-vantage"])
def test_every_panel_query(centre, uid, selection) -> None:
    checked, found = panel_queries.problems(centre.vm, SELECTIONS[selection], PROVIDES | {"vantage_verdict"}, uid)
    assert checked >= 5, f"only {checked} queries found for {uid}"
    assert not found, "\n".join(found)


def test_variable_queries_return_values(centre) -> None:
    dashboard = json.loads((ROOT / "dashboards" / "msgreach-overview.json").read_text())
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = substitute(var["query"]["query"], SELECTIONS["all"])
        selector, label = query.removeprefix("label_values(").removesuffix(")").rsplit(",", 1)
        status, doc = centre.vm.api(f"/api/v1/label/{label.strip()}/values", **{"match[]": selector.strip()})
        assert status == 200 and doc["status"] == "success", doc
        assert doc["data"], f"variable {var['name']} ({query}) has no values"


def _default_rules() -> list[dict]:
    return [r for g in yaml.safe_load(DEFAULT_RULES.read_text())["groups"] for r in g["rules"]]


def test_every_default_recording_rule_expression_returns_data(centre) -> None:
    """The production profile's expressions (5m/6h/1d windows), answered by VictoriaMetrics."""
    problems = []
    for rule in _default_rules():
        if "record" not in rule or rule["record"] in EMPTY_HERE:
            continue
        try:
            if not centre.vm.query(rule["expr"]):
                problems.append(f"{rule['record']}: no data")
        except PromQLError as e:
            problems.append(f"{rule['record']}: {e}")
    assert not problems, "\n".join(problems)


def test_every_default_alert_expression_runs(centre) -> None:
    problems = []
    for rule in _default_rules():
        if "alert" in rule:
            try:
                centre.vm.query(rule["expr"])
            except PromQLError as e:
                problems.append(f"{rule['alert']}: {e}")
    assert not problems, "\n".join(problems)


def test_the_harness_catches_a_broken_query(centre) -> None:
    with pytest.raises(PromQLError):
        centre.vm.query("max by (vantage (msgreach_vantage_online)")
    assert centre.vm.query('msgreach_vantage_online{vantage="no-such-vantage"}') == []


def test_a_new_block_pages_through_vmalert_and_alertmanager(centre) -> None:
    """The web server goes away: `local` turns ip_blocked at mro-a and mro-b, which saw it ok;
    MsgreachSuddenBlock reaches the on-call webhook with its technique and absolute links."""
    centre.web.stop()
    stopped_at = time.monotonic()

    def paged() -> dict | None:
        for _, alert in centre.webhook.alerts():
            labels = alert["labels"]
            if labels["alertname"] == "MsgreachSuddenBlock" and labels.get("vantage") == "mro-a" and alert["status"] == "firing":
                return alert
        return None

    # vmalert sees a chained rule's result an evaluation (5 s) later, and a loaded machine
    # stretches each evaluation: the bound is generous, the latency itself is the bench's.
    alert = wait_for("MsgreachSuddenBlock for mro-a delivered", paged, timeout=360, interval=1,
                     on_timeout=lambda: _sudden_block_legs(centre))
    print(f"MsgreachSuddenBlock delivered {time.monotonic() - stopped_at:.1f} s after the server stopped ({VMALERT_PROFILE.name})")
    assert alert["labels"]["service"] == "local" and alert["labels"]["technique"] == "ip_blocked", alert["labels"]
    assert alert["labels"]["country"] == "ZZ", alert["labels"]
    assert alert["annotations"]["runbook_url"] == f"https://{CENTRE}/docs/operators.md#msgreachsuddenblock"
    # Telegram fails at the control vantage too: held back, never paged.
    assert not [a for _, a in centre.webhook.alerts() if a["labels"]["alertname"] == "MsgreachSuddenBlock" and a["labels"].get("service") == "telegram"]


def _sudden_block_legs(centre) -> str:
    """What a page that did not come is made of: each leg of MsgreachSuddenBlock's expression for
    mro-a/local in the store, what vmalert holds as alerts, and what the webhook received."""
    legs = {
        "active": 'vantage_service_technique:msgreach_block:active{vantage="mro-a",service="local"}',
        "sustained": 'vantage_service:msgreach_block_sustained:bool{vantage="mro-a",service="local"}',
        "agreed": 'vantage_service:msgreach_block_agreed:bool{vantage="mro-a",service="local"}',
        "held": 'vantage_service:msgreach_block_held:bool{service="local"}',
        "start_round": 'vantage_service:msgreach_block_start_round:timestamp{service="local"}',
        "ok_15m": 'max by (vantage, service) (max_over_time(msgreach_service_verdict{verdict="ok",vantage="mro-a",service="local"}[15m]))',
        "verdicts": 'msgreach_service_verdict{vantage="mro-a",service="local"} == 1',
        "failing_at_control": 'service:msgreach_failing_at_control:bool{service="local"}',
        "allowlist": 'vantage:msgreach_allowlist:bool{vantage="mro-a"}',
        "info": 'vantage:msgreach_info:last{vantage="mro-a"}',
        "alerts": 'ALERTS{alertstate="firing"}',
    }
    lines = [f"{name}: {json.dumps([(r['metric'], r['value'][1]) for r in centre.vm.query(q)])[:600]}" for name, q in legs.items()]
    status, body = centre.stack.http(f"{centre.vmalert_url}/api/v1/alerts")
    lines.append(f"vmalert alerts ({status}): {body[:1500]}")
    lines.append(f"webhook: {json.dumps(centre.webhook.deliveries())[-1500:]}")
    return "\n".join(lines)


def test_samples_kept_by_the_agents_while_the_store_was_down_arrive(centre) -> None:
    """VictoriaMetrics stopped for a while: the agents keep what they scrape in their WAL and send
    it when it is back; it is stored (any timestamp within the retention, no out-of-order window)."""
    vm_proc = next(p for p in centre.stack.procs if p.name == "victoria-metrics")
    stopped_at = time.time()
    vm_proc.stop()
    time.sleep(20)
    restarted_at = time.time()
    again = centre.stack.start("victoria-metrics-again", *centre.vm_argv)
    centre.stack.wait_http(f"{centre.vm.url}/health", again)

    def caught_up() -> bool:
        newest = centre.vm.query('timestamp(up{job="msgreach"})')
        return len(newest) == 2 and all(time.time() - float(r["value"][1]) < 5 for r in newest)

    wait_for("the agents to replay their WAL", caught_up, timeout=90, interval=1, on_timeout=again.tail)
    now = time.time()
    for vantage in ("mro-a", "mro-c"):
        (series,) = centre.vm.query(f'up{{job="msgreach",vantage="{vantage}"}}[{int(now - stopped_at + 10)}s]', at=now)
        stamps = [float(t) for t, _ in series["values"]]
        during = [t for t in stamps if stopped_at <= t <= restarted_at]
        assert len(during) >= (restarted_at - stopped_at) - 3, f"{vantage}: {len(during)} samples from the {restarted_at - stopped_at:.0f} s outage"
        assert max(b - a for a, b in itertools.pairwise(stamps)) <= 1.5, f"{vantage}: a hole in the samples"
