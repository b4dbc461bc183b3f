"""The listener's protection, with a real TLS client: TLS, basic auth (password from a file or
the environment, never logged), and localhost by default."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import textwrap
from pathlib import Path

import pytest
from mrfkit import CONTRACT_FAMILIES, free_port, http_get, make_pki, msgreach_argv, msgreach_env, netns, wait_for

SECRET = "correct horse battery staple 7f3a"


def _config(directory: Path, pki: dict[str, Path], basic_auth: str, port: int) -> Path:
    config = directory / "msgreach.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            vantages: [{{name: listener-test, resolvers: [system]}}]
            controls: [{{name: self, host: 127.0.0.1, ports: [{port}], checks: [tcp]}}]  # its own listener
            schedule: {{interval_seconds: 2, jitter_seconds: 0, retries: 0}}
            listen:
              tls: {{cert_file: {pki['cert']}, key_file: {pki['key']}}}
              basic_auth: {basic_auth}
            services:
              - name: local
                targets:
                  - {{name: closed, host: 127.0.0.1, ports: [{free_port()}], checks: [tcp]}}
            """
        )
    )
    return config


@pytest.mark.parametrize("source", ["password_file", "password_env"])
def test_tls_and_basic_auth(tmp_path: Path, procs, source: str) -> None:
    pki = make_pki(tmp_path, ["localhost"], ["127.0.0.1"])
    env = msgreach_env()
    if source == "password_file":
        secret = tmp_path / "password"
        secret.write_text(SECRET + "\n")
        secret.chmod(0o600)
        auth = f"{{username: prometheus, password_file: {secret}}}"
    else:
        env["MSGREACH_TEST_PASSWORD"] = SECRET
        auth = "{username: prometheus, password_env: MSGREACH_TEST_PASSWORD}"
    port = free_port()
    config = _config(tmp_path, pki, auth, port)
    monitor = procs.start("msgreach", msgreach_argv("--log-level", "DEBUG", "run", "--config", str(config), "--listen", f"127.0.0.1:{port}"), env=env)
    base = f"https://127.0.0.1:{port}"

    def answering() -> bool:
        assert monitor.alive(), monitor.text()[-3000:]
        return http_get(f"{base}/healthz", auth=("prometheus", SECRET), cafile=pki["ca"])[0] == 200

    wait_for(answering, 30, what="/healthz over TLS")
    right = ("prometheus", SECRET)
    # TLS: a client that does not trust the certificate fails; plain HTTP gets nothing.
    status, error = http_get(f"{base}/metrics", auth=right)
    assert status == 0 and "CERTIFICATE_VERIFY_FAILED" in error
    assert http_get(f"http://127.0.0.1:{port}/metrics", auth=right)[0] != 200
    # Basic auth on every path, wrong user or password refused.
    for path in ("/metrics", "/healthz", "/", "/status.json"):
        status, body = http_get(f"{base}{path}", cafile=pki["ca"])
        assert status == 401, (path, status)
    assert http_get(f"{base}/metrics", auth=("prometheus", "wrong"), cafile=pki["ca"])[0] == 401
    assert http_get(f"{base}/metrics", auth=("admin", SECRET), cafile=pki["ca"])[0] == 401
    assert http_get(f"{base}/metrics", auth=("prometheus", SECRET + "x"), cafile=pki["ca"])[0] == 401
    # The right credentials, over a verified TLS 1.2+ connection.
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    wait_for(lambda: "msgreach_rounds_total" in http_get(f"{base}/metrics", auth=right, cafile=pki["ca"])[1], 20, what="a round in /metrics")
    status, metrics = http_get(f"{base}/metrics", auth=right, cafile=pki["ca"])
    assert status == 200
    for family in CONTRACT_FAMILIES:
        assert family in metrics, family
    assert procs.stop(monitor) == 0
    # The secret is never logged, nor served.
    assert "DEBUG" in monitor.text()
    for text in (monitor.text(), metrics, http_get(f"{base}/", auth=right, cafile=pki["ca"])[1]):
        assert SECRET not in text
        assert "Y29ycmVjdCBob3JzZ" not in text  # nor its base64


def test_listens_on_localhost_unless_told_otherwise(tmp_path: Path, procs) -> None:
    """Without `listen` or `--listen`, the monitor binds 127.0.0.1:9910 (checked in an mrf-
    namespace with only loopback, so the shipped default config could not reach anything)."""
    config = tmp_path / "msgreach.yaml"
    config.write_text("vantages: [{name: quiet, resolvers: [system]}]\ncontrols: [{name: self, host: 127.0.0.1, ports: [9910], checks: [tcp]}]\nservices: [{name: x, targets: [{name: y, host: 127.0.0.1, ports: [9], checks: [tcp]}]}]\n")
    with netns("listen") as ns:
        monitor = procs.start("msgreach", msgreach_argv("run", "--config", str(config)), netns=ns.name, env=msgreach_env())

        def listening() -> str:
            assert monitor.alive(), monitor.text()
            out = ns.exec("ss", "-Hltn").stdout
            return out if ":9910" in out else ""

        sockets = wait_for(listening, 30, what="the listener")
        assert [line.split()[3] for line in sockets.splitlines() if ":9910" in line] == ["127.0.0.1:9910"]
        procs.stop(monitor)


# --- refusals (issue #12) ---------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["env_unset", "env_empty", "file_empty"])
def test_an_empty_or_unset_secret_never_opens_the_listener(tmp_path: Path, source: str) -> None:
    """Before: with `password_env` unset or an empty `password_file`, `curl -u u:` got 200."""
    env = msgreach_env()
    env.pop("MSGREACH_TEST_PASSWORD", None)
    if source == "env_empty":
        env["MSGREACH_TEST_PASSWORD"] = ""
    if source == "file_empty":
        (tmp_path / "password").write_text("\n")
        auth = f"{{username: prometheus, password_file: {tmp_path / 'password'}}}"
    else:
        auth = "{username: prometheus, password_env: MSGREACH_TEST_PASSWORD}"
    port = free_port()
    config = tmp_path / "msgreach.yaml"
    config.write_text(
        "vantages: [{name: refusal, resolvers: [system]}]\n"
        f"controls: [{{name: self, host: 127.0.0.1, ports: [{port}], checks: [tcp]}}]\n"
        f"listen: {{basic_auth: {auth}}}\n"
        f"services: [{{name: x, targets: [{{name: y, host: 127.0.0.1, ports: [{free_port()}], checks: [tcp]}}]}}]\n"
    )
    checked = subprocess.run(msgreach_argv("check-config", str(config)), env=env, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 2 and "listen.basic_auth" in checked.stderr, checked.stderr
    run = subprocess.run(msgreach_argv("run", "--config", str(config), "--listen", f"127.0.0.1:{port}"), env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert "listen.basic_auth" in run.stderr and ("empty" in run.stderr or "unset" in run.stderr), run.stderr
    assert "Traceback" not in run.stderr
    status, error = http_get(f"http://127.0.0.1:{port}/metrics", auth=("u", ""))
    assert status == 0, (status, error)  # nothing ever listened there


def test_a_hostile_reload_is_refused_and_the_listener_keeps_answering(tmp_path: Path, procs) -> None:
    """A 1 KB alias bomb sent by SIGHUP once froze the listener and the rounds for 15-27 s at 1-2 GB."""
    port = free_port()
    config = tmp_path / "msgreach.yaml"
    config.write_text(
        "vantages: [{name: reload, resolvers: [system]}]\n"
        f"controls: [{{name: self, host: 127.0.0.1, ports: [{port}], checks: [tcp]}}]\n"
        "schedule: {interval_seconds: 2, jitter_seconds: 0, retries: 0}\n"
        f"services: [{{name: x, targets: [{{name: y, host: 127.0.0.1, ports: [{free_port()}], checks: [tcp]}}]}}]\n"
    )
    monitor = procs.start("msgreach", msgreach_argv("run", "--config", str(config), "--listen", f"127.0.0.1:{port}"), env=msgreach_env())

    def healthy() -> bool:
        assert monitor.alive(), monitor.text()[-3000:]
        return http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200

    wait_for(healthy, 30, what="/healthz")
    config.write_text(ALIAS_BOMB)
    monitor.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: healthy() and "reload refused" in monitor.text(), 60, what="the reload refused, the listener answering")
    assert "more than" in monitor.text() and "Traceback" not in monitor.text()
    wait_for(lambda: "msgreach_rounds_total" in http_get(f"http://127.0.0.1:{port}/metrics")[1], 20, what="rounds after the refused reload")
    assert healthy()
    assert procs.stop(monitor) == 0


# A 1 KB "billion laughs" (also in tests/test_config_hardening.py): 10^10 values if expanded.
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(9)
) + "vantages: [{name: *j}]\n"
