"""The deploy files themselves: compose files publish nothing they should not, configs validate,
the operator's scripts make secrets with tight permissions and volunteer settings that work."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from mrfkit import REPO, msgreach_argv, msgreach_env

DEPLOY = REPO / "deploy"


def _compose(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name / "compose.yaml").read_text())


def test_volunteer_compose_publishes_only_the_page_on_loopback_and_is_hardened() -> None:
    compose = _compose("volunteer")
    assert set(compose["services"]) == {"msgreach", "agent"}
    # The volunteer's status page, on the host's loopback only; the agent publishes nothing.
    assert compose["services"]["msgreach"]["ports"] == ["127.0.0.1:9910:9910"]
    assert "ports" not in compose["services"]["agent"]
    readme = (DEPLOY / "volunteer" / "README.md").read_text()
    assert "http://127.0.0.1:9910/" in readme
    for name, service in compose["services"].items():
        assert "network_mode" not in service and "expose" not in service, name
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["user"].split(":")[0] not in ("0", "root"), name
    msgreach, agent = compose["services"]["msgreach"], compose["services"]["agent"]
    assert msgreach["hostname"].startswith("${MSGREACH_VANTAGE:?")  # the vantage's name, from .env
    assert msgreach["build"]["dockerfile"] == "Dockerfile" and (DEPLOY / "volunteer" / msgreach["build"]["context"] / "Dockerfile").is_file()
    for key in ("REMOTE_WRITE_URL", "REMOTE_WRITE_USERNAME", "REMOTE_WRITE_PASSWORD", "MSGREACH_VANTAGE"):
        assert agent["environment"][key].startswith("${" + key + ":?"), key  # credentials from .env only
    assert "agent-wal:/prometheus" in agent["volumes"]  # the WAL survives restarts


def test_central_compose_publishes_only_the_gateway() -> None:
    compose = _compose("central")
    published = {name for name, service in compose["services"].items() if "ports" in service}
    assert published == {"gateway"}
    assert compose["services"]["gateway"]["ports"] == ["${GATEWAY_BIND:-0.0.0.0}:443:8443"]
    prometheus = compose["services"]["prometheus"]
    assert "--web.enable-remote-write-receiver" in prometheus["command"]
    assert "../../configs/prometheus/rules:/etc/prometheus/rules:ro" in prometheus["volumes"]
    assert "../../configs/alertmanager:/etc/alertmanager:ro" in compose["services"]["alertmanager"]["volumes"]
    grafana = compose["services"]["grafana"]
    assert "../../dashboards:/var/lib/grafana/dashboards/msgreach:ro" in grafana["volumes"]
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"].startswith("/run/secrets/")
    for service in compose["services"].values():
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    # The alerts' links are absolute on Prometheus's external URL: the gateway's Grafana and /docs/.
    assert "--web.external-url=https://${CENTRE_HOSTNAME:?set CENTRE_HOSTNAME in .env}/" in prometheus["command"]
    assert "../../docs:/usr/share/msgreach/docs:ro" in compose["services"]["gateway"]["volumes"]


def test_the_gateway_serves_the_runbooks_and_nothing_else_new(tmp_path: Path, procs) -> None:
    """The shipped nginx.conf (paths swapped for loopback ones) serves docs/operators.md, where
    every alert's runbook_url points, as UTF-8 text, to GET only; the write path stays behind auth."""
    from mrfkit import free_port, http_get, make_pki, wait_for

    nginx = shutil.which("nginx")
    if nginx is None:
        pytest.skip("needs nginx (Debian's nginx-light)")
    pki = make_pki(tmp_path, ["localhost"], ["127.0.0.1"])
    users = tmp_path / "volunteers.htpasswd"
    users.write_text("")
    (tmp_path / "nginx-tmp").mkdir()
    port = free_port()
    text = (DEPLOY / "central" / "gateway" / "nginx.conf").read_text()
    for old, new in {
        "server prometheus:9090;": f"server 127.0.0.1:{free_port()};", "server grafana:3000;": f"server 127.0.0.1:{free_port()};",
        "listen 8443 ssl;": f"listen 127.0.0.1:{port} ssl;", "/etc/nginx/tls/fullchain.pem": str(pki["cert"]),
        "/etc/nginx/tls/privkey.pem": str(pki["key"]), "/etc/nginx/secrets/volunteers.htpasswd": str(users),
        "/tmp/nginx": f"{tmp_path / 'nginx-tmp'}/nginx", "/usr/share/msgreach/docs/": f"{REPO / 'docs'}/",
    }.items():
        assert old in text, old
        text = text.replace(old, new)
    (tmp_path / "nginx.conf").write_text(text)
    gateway = procs.start("gateway", [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr", "-g", "daemon off; user root;"])
    base = f"https://127.0.0.1:{port}"

    def up() -> bool:
        assert gateway.alive(), gateway.text()
        return http_get(f"{base}/docs/operators.md", cafile=pki["ca"])[0] == 200

    wait_for(up, 20, what="the gateway")
    status, body = http_get(f"{base}/docs/operators.md#msgreachsuddenblock", cafile=pki["ca"])
    assert status == 200 and "### MsgreachSuddenBlock" in body and body == (REPO / "docs" / "operators.md").read_text()
    escaped = http_get(f"{base}/docs/../pyproject.toml", cafile=pki["ca"])  # nginx resolves it to /pyproject.toml: Grafana's, not a file
    assert escaped[0] != 200 and "[project]" not in escaped[1], escaped
    assert http_get(f"{base}/api/v1/write", cafile=pki["ca"])[0] in (401, 403)  # still the volunteers' path only


@pytest.mark.parametrize("config", ["deploy/volunteer/msgreach.yaml", "deploy/container/config.yaml"])
def test_shipped_msgreach_configs_validate(config: str) -> None:
    run = subprocess.run(msgreach_argv("check-config", str(REPO / config)), capture_output=True, text=True, env=msgreach_env(), timeout=60)
    assert run.returncode == 0, run.stderr


def test_agent_config_renders_and_validates(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("needs promtool (Debian's prometheus package)")
    password_env = {"MSGREACH_VANTAGE": "msk-1", "REMOTE_WRITE_URL": "https://centre.example.org/api/v1/write",
                    "REMOTE_WRITE_USERNAME": "msk-1", "REMOTE_WRITE_PASSWORD": "s3cret-Pw", "AGENT_CONFIG_DIR": str(tmp_path), "RENDER_ONLY": "1"}
    run = subprocess.run(["sh", str(DEPLOY / "volunteer" / "agent" / "run.sh")], env=dict(os.environ, **password_env), capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    rendered = (tmp_path / "agent.yml").read_text()
    config = yaml.safe_load(rendered)
    assert config["global"]["external_labels"] == {"vantage": "msk-1"}
    assert config["remote_write"][0]["basic_auth"]["password_file"] == str(tmp_path / "remote_write_password")
    assert "s3cret-Pw" not in rendered and (tmp_path / "remote_write_password").read_text() == "s3cret-Pw"
    assert (tmp_path / "remote_write_password").stat().st_mode & 0o077 == 0
    check = subprocess.run(["promtool", "check", "config", str(tmp_path / "agent.yml")], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    # Refused: plain http to a remote centre (credentials in clear), names that break YAML.
    for bad in ({"REMOTE_WRITE_URL": "http://centre.example.org/api/v1/write"}, {"MSGREACH_VANTAGE": 'x"; evil: 1'}):
        run = subprocess.run(["sh", str(DEPLOY / "volunteer" / "agent" / "run.sh")], env=dict(os.environ, **(password_env | bad)), capture_output=True, text=True, timeout=30)
        assert run.returncode == 2, bad


def test_operator_scripts(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    centre = tmp_path / "central"
    shutil.copytree(DEPLOY / "central", centre)
    for path in (centre / ".env", centre / "secrets", centre / "volunteers"):
        assert not path.exists()
    run = subprocess.run([str(centre / "init.sh"), "centre.example.org"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert (centre / ".env").read_text().startswith("CENTRE_HOSTNAME=centre.example.org\n")
    secrets = centre / "secrets"
    assert secrets.stat().st_mode & 0o077 == 0
    assert (secrets / "tls" / "fullchain.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert len((secrets / "grafana_admin_password").read_text()) >= 24
    before = {p: p.read_bytes() for p in secrets.rglob("*") if p.is_file()}
    assert subprocess.run([str(centre / "init.sh")], capture_output=True, timeout=60).returncode == 0  # idempotent
    assert before == {p: p.read_bytes() for p in secrets.rglob("*") if p.is_file()}

    add = subprocess.run([str(centre / "add-volunteer.sh"), "msk-7"], capture_output=True, text=True, timeout=30)
    assert add.returncode == 0, add.stderr
    settings = dict(line.split("=", 1) for line in Path(centre / add.stdout.strip()).read_text().splitlines() if line and not line.startswith("#"))
    assert settings["REMOTE_WRITE_URL"] == "https://centre.example.org/api/v1/write" and settings["MSGREACH_VANTAGE"] == "msk-7"
    assert len(settings["REMOTE_WRITE_PASSWORD"]) == 32
    users = (secrets / "volunteers.htpasswd").read_text()
    assert users.startswith("msk-7:$6$") and settings["REMOTE_WRITE_PASSWORD"] not in users
    assert subprocess.run([str(centre / "add-volunteer.sh"), "msk-7"], capture_output=True, timeout=30).returncode == 2
    assert subprocess.run([str(centre / "add-volunteer.sh"), "bad name"], capture_output=True, timeout=30).returncode == 2
    assert subprocess.run([str(centre / "add-volunteer.sh"), "--remove", "msk-7"], capture_output=True, timeout=30).returncode == 0
    assert (secrets / "volunteers.htpasswd").read_text() == ""
