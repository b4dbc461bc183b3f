"""The fleet, with Debian's Prometheus and nginx on loopback, using the shipped deploy files:

    msgreach v1 -> agent 1 (deploy/volunteer/agent/run.sh, agent mode, WAL) --\
                                                                               > gateway (deploy/central/gateway/nginx.conf:
    msgreach v2 -> agent 2 -------------------------------------------------/    TLS, per-volunteer basic auth)
                                                                                  -> central Prometheus (remote-write receiver,
                                                                                     the shipped rules)

Volunteers are added with deploy/central/add-volunteer.sh; their .env files configure the agents.
Both vantages' series must arrive labelled; then the central Prometheus is stopped for a while
(MSGREACH_FLEET_OUTAGE seconds, default 90) and started again, and every sample scraped during
the outage must arrive (the agents' WAL replays them): counted from the raw samples over the gap.
The msgreach configs measure only a local server: nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml
from mrfkit import HERE, REPO, free_port, gateway_config, http_get, make_pki, msgreach_argv, msgreach_env, require, wait_for

pytestmark = [pytest.mark.fleet, pytest.mark.slow]

OUTAGE = float(os.environ.get("MSGREACH_FLEET_OUTAGE", "90"))
SCRAPE = 1.0  # seconds: the agents' scrape interval in this test


def _query(base: str, promql: str, at: float | None = None) -> list[dict]:
    params = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    status, body = http_get(f"{base}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=10)
    if status != 200:
        return []
    return json.loads(body)["data"]["result"]


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _msgreach_config(directory: Path, name: str, web: int) -> Path:
    config = directory / f"{name}.yaml"
    config.write_text(
        f"""
vantages: [{{name: {name}, country: ZZ, resolvers: [system]}}]
controls: [{{name: ctl, host: 127.0.0.1, ports: [{web}], checks: [tcp]}}]
schedule: {{interval_seconds: 1, jitter_seconds: 0, retries: 0}}
services:
  - name: local
    targets:
      - {{name: web, host: 127.0.0.1, ports: [{web}], checks: [tcp, http], params: {{http: {{scheme: http}}}}}}
      - {{name: closed, host: 127.0.0.1, ports: [{free_port()}], checks: [tcp]}}
"""
    )
    return config


def test_two_vantages_through_agents_lose_nothing_while_the_centre_is_down(tmp_path: Path, procs) -> None:
    prometheus, nginx = shutil.which("prometheus"), shutil.which("nginx")
    require(prometheus is not None, "needs Debian's prometheus package")
    require(nginx is not None, "needs nginx (Debian's nginx-light)")
    require(shutil.which("openssl") is not None, "needs openssl")
    help = subprocess.run([prometheus, "--help"], capture_output=True, text=True)
    help_text = help.stdout + help.stderr
    assert "agent" in help_text and "--web.enable-remote-write-receiver" in help_text, "this Prometheus has no agent mode or receiver"

    # The centre: Prometheus with the shipped config (rules from configs/prometheus/rules) ...
    central_port, gateway_port, web = free_port(), free_port(), free_port()
    shipped = yaml.safe_load((REPO / "deploy" / "central" / "prometheus" / "prometheus.yml").read_text())
    shipped["rule_files"] = [str(REPO / "configs" / "prometheus" / "rules" / "*.yml")]
    shipped.pop("alerting")
    shipped["scrape_configs"] = []
    shipped["global"]["evaluation_interval"] = "5s"
    central_config = tmp_path / "central.yml"
    central_config.write_text(yaml.safe_dump(shipped))
    check = subprocess.run(["promtool", "check", "config", str(central_config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    central_argv = [prometheus, f"--config.file={central_config}", f"--storage.tsdb.path={tmp_path / 'central-data'}",
                    f"--web.listen-address=127.0.0.1:{central_port}", "--web.enable-remote-write-receiver"]
    central = procs.start("central", central_argv)
    base = f"http://127.0.0.1:{central_port}"
    wait_for(lambda: http_get(f"{base}/-/ready")[0] == 200, 30, what="the central Prometheus")

    # ... behind the gateway, with two volunteers added by the operator's script.
    tls = make_pki(tmp_path, ["localhost"], ["127.0.0.1"])
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    users = secrets / "volunteers.htpasswd"
    users.write_text("")
    script_env = dict(os.environ, CENTRE_HOSTNAME=f"127.0.0.1:{gateway_port}", SECRETS_DIR=str(secrets), VOLUNTEERS_DIR=str(tmp_path / "volunteers"))
    env_files = {}
    for name in ("v1", "v2"):
        add = subprocess.run([str(REPO / "deploy" / "central" / "add-volunteer.sh"), name], capture_output=True, text=True, env=script_env, timeout=30)
        assert add.returncode == 0, add.stderr
        env_files[name] = dict(line.split("=", 1) for line in Path(add.stdout.strip()).read_text().splitlines() if line and not line.startswith("#"))
    assert len(users.read_text().splitlines()) == 2 and all(line.split(":", 1)[1].startswith("$6$") for line in users.read_text().splitlines())
    gateway_conf = gateway_config(tmp_path, f"127.0.0.1:{gateway_port}", f"127.0.0.1:{central_port}", tls, users)
    gateway = procs.start("gateway", [nginx, "-p", str(tmp_path), "-c", str(gateway_conf), "-e", "stderr", "-g", "daemon off; user root;"])
    write_url = env_files["v1"]["REMOTE_WRITE_URL"]
    assert write_url == f"https://127.0.0.1:{gateway_port}/api/v1/write"

    def gateway_up() -> bool:
        assert gateway.alive(), gateway.text()
        return http_get(write_url, cafile=tls["ca"])[0] == 403  # only POST is let through

    wait_for(gateway_up, 20, what="the gateway")
    # The gateway lets through only authenticated POSTs to the write path; the API stays hidden.
    assert http_get(f"https://127.0.0.1:{gateway_port}/api/v1/query?query=up", auth=("v1", env_files["v1"]["REMOTE_WRITE_PASSWORD"]), cafile=tls["ca"])[0] in (502, 504)  # Grafana's (absent) side
    bad = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(tls["ca"]), "-u", "v1:wrong", "-X", "POST", "--data-binary", "x", write_url], capture_output=True, text=True)
    assert bad.stdout == "401"

    # The vantages: msgreach measuring a local server, and an agent each (the shipped run.sh).
    procs.start("web", [sys.executable, str(HERE / "mrf_servers.py"), "http", "--port", str(web)])
    agents = {}
    for name in ("v1", "v2"):
        port = free_port()
        procs.start(f"msgreach-{name}", msgreach_argv("run", "--config", str(_msgreach_config(tmp_path, name, web)), "--listen", f"127.0.0.1:{port}"), env=msgreach_env())
        agent_port = free_port()
        env = dict(os.environ, **env_files[name])
        env.update(
            MSGREACH_TARGET=f"127.0.0.1:{port}", SCRAPE_INTERVAL=f"{SCRAPE:g}s", SCRAPE_TIMEOUT="900ms", AGENT_LISTEN=f"127.0.0.1:{agent_port}",
            AGENT_CONFIG_DIR=str(tmp_path / f"agent-{name}"), AGENT_WAL=str(tmp_path / f"wal-{name}"), REMOTE_WRITE_CA_FILE=str(tls["ca"]),
            REMOTE_WRITE_MIN_BACKOFF="100ms", REMOTE_WRITE_MAX_BACKOFF="2s",
        )
        agents[name] = (procs.start(f"agent-{name}", ["sh", str(REPO / "deploy" / "volunteer" / "agent" / "run.sh")], env=env), agent_port)
    wait_for(lambda: (tmp_path / "agent-v1" / "agent.yml").exists() or not agents["v1"][0].alive(), 10, what="the rendered agent config")
    rendered = (tmp_path / "agent-v1" / "agent.yml").read_text()
    assert env_files["v1"]["REMOTE_WRITE_PASSWORD"] not in rendered  # the password is in a 0600 file, not the config
    assert oct((tmp_path / "agent-v1" / "remote_write_password").stat().st_mode & 0o777) == "0o600"

    def both_arrived() -> bool:
        for _name, (agent, _) in agents.items():
            assert agent.alive(), agent.text()[-3000:]
        found = {r["metric"].get("vantage") for r in _query(base, 'msgreach_rounds_total{job="msgreach"}')}
        return found == {"v1", "v2"}

    wait_for(both_arrived, 60, what="both vantages' series at the centre")
    for name in ("v1", "v2"):
        series = _query(base, f'msgreach_target_verdict{{vantage="{name}",target="web",verdict="ok"}}')
        assert series and series[0]["metric"]["job"] == "msgreach" and series[0]["value"][1] == "1", series
        up = _query(base, f'up{{vantage="{name}",job="msgreach"}}')  # external label on the agent's own series
        assert up and up[0]["value"][1] == "1", up
    time.sleep(5)

    # The outage.
    stopped_at = time.time()
    assert procs.stop(central) == 0
    time.sleep(OUTAGE)
    restarted_at = time.time()
    central = procs.start("central-again", central_argv)
    wait_for(lambda: http_get(f"{base}/-/ready")[0] == 200, 60, what="the central Prometheus again")

    def caught_up() -> bool:
        newest = {r["metric"]["vantage"]: float(r["value"][1]) for r in _query(base, 'timestamp(up{job="msgreach"})')}
        return len(newest) == 2 and all(time.time() - ts < 5 for ts in newest.values())

    wait_for(caught_up, 120, interval=1, what="the agents to replay their WAL")
    time.sleep(2)
    now = time.time()
    window = int(now - stopped_at + 20)
    report = {}
    for name, (_, agent_port) in agents.items():
        for metric in ("up", "msgreach_rounds_total"):
            result = _query(base, f'{metric}{{vantage="{name}",job="msgreach"}}[{window}s]', at=now)
            assert len(result) == 1, result
            stamps = [float(t) for t, _ in result[0]["values"]]
            gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
            during = [t for t in stamps if stopped_at <= t <= restarted_at]
            expected = (restarted_at - stopped_at) / SCRAPE
            report[f"{name} {metric}"] = {"samples_in_outage": len(during), "expected": round(expected), "largest_gap_s": round(max(gaps), 2)}
            # A dropped batch leaves a hole of many scrapes (8 s when the agent resharded); a scrape
            # the loaded machine started late leaves a gap of 1-2 scrapes followed by a short one.
            assert max(gaps) < 2.5 * SCRAPE, f"{name} {metric}: a {max(gaps):.1f} s hole in the samples"
            assert len(during) >= expected - 2, f"{name} {metric}: {len(during)} samples in the outage, {expected:.0f} scraped"
        agent_metrics = http_get(f"http://127.0.0.1:{agent_port}/metrics")[1]
        retried = _metric(agent_metrics, "prometheus_remote_storage_samples_retried_total")
        failed = _metric(agent_metrics, "prometheus_remote_storage_samples_failed_total")
        assert retried > 0, "the agent never noticed the outage"
        assert failed == 0, f"{failed} samples failed for good"
        report[f"{name} agent"] = {"retried": retried, "failed": failed}
    print("fleet:", json.dumps(report))
    # The shipped alerting and recording rules load and evaluate on the fleet's data.
    if not list((REPO / "configs" / "prometheus" / "rules").glob("*.yml")):
        return  # no rules shipped (yet): nothing more to check
    status, body = http_get(f"{base}/api/v1/rules")
    groups = json.loads(body)["data"]["groups"]
    assert groups, "no rule group loaded"
    broken = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r.get("health") == "err"]
    assert not broken, broken
