"""`msgreach run --web.config.file`: exporter-toolkit's web config (TLS, bcrypt users, headers)
with a real TLS client and a real Prometheus scraping through it; a bad file refused at load
(exit 2, file, line and key); credentials outside ASCII answered with 401 or 200, never a
traceback, for the web config's users and for the old `listen.basic_auth` alike."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import textwrap
import urllib.parse
from pathlib import Path

import bcrypt
import pytest
from mrfkit import (
    free_port,
    http_get,
    make_pki,
    msgreach_argv,
    msgreach_env,
    require,
    wait_for,
)

PROMETHEUS_PASSWORD = "scrape me 7f3a"
PERSON, PERSON_PASSWORD = "наблюдатель", "пароль-ключ"  # sent as UTF-8, as browsers and curl do


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()  # cost 4: tests stay quick


def _monitor_config(directory: Path, port: int, extra: str = "") -> Path:
    config = directory / "msgreach.yaml"
    config.write_text(textwrap.dedent(f"""
        vantages: [{{name: web-config-test, resolvers: [system]}}]
        controls: [{{name: self, host: 127.0.0.1, ports: [{port}], checks: [tcp]}}]  # its own listener
        schedule: {{interval_seconds: 2, jitter_seconds: 0, retries: 0}}
        services: [{{name: local, targets: [{{name: closed, host: 127.0.0.1, ports: [{free_port()}], checks: [tcp]}}]}}]
        """) + extra)
    return config


def _raw_get(port: int, authorization: bytes, cafile: Path) -> tuple[int, bytes]:
    """A GET whose Authorization header holds exactly these bytes (urllib would refuse some)."""
    context = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: " + authorization + b"\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer


def _basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def test_bcrypt_users_tls_and_headers_through_a_real_prometheus(tmp_path: Path, procs) -> None:
    prometheus_binary = shutil.which("prometheus")
    require(prometheus_binary is not None, "needs prometheus (Debian package prometheus)")
    pki = make_pki(tmp_path, ["localhost"], ["127.0.0.1"])
    port = free_port()
    web = tmp_path / "web.yml"
    web.write_text(textwrap.dedent(f"""
        tls_server_config:
          cert_file: {pki['cert'].name}     # relative to this file, as in the toolkit
          key_file: {pki['key'].name}
          min_version: TLS12
        http_server_config:
          headers: {{X-Frame-Options: deny, X-Content-Type-Options: nosniff}}
        basic_auth_users:
          prometheus: {_hash(PROMETHEUS_PASSWORD)}
          {PERSON}: {_hash(PERSON_PASSWORD)}
        """))
    config = _monitor_config(tmp_path, port)
    checked = subprocess.run(msgreach_argv("check-config", str(config), "--web.config.file", str(web)), env=msgreach_env(), capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stderr
    monitor = procs.start("msgreach", msgreach_argv("--log-level", "DEBUG", "run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--web.config.file", str(web)), env=msgreach_env())
    base = f"https://127.0.0.1:{port}"
    right = ("prometheus", PROMETHEUS_PASSWORD)

    def answering() -> bool:
        assert monitor.alive(), monitor.text()[-3000:]
        return http_get(f"{base}/healthz", auth=right, cafile=pki["ca"])[0] == 200

    wait_for(answering, 30, what="/healthz over TLS with a bcrypt user")
    for path in ("/metrics", "/healthz", "/", "/status.json"):
        assert http_get(f"{base}{path}", cafile=pki["ca"])[0] == 401, path  # no password: 401 everywhere
    assert http_get(f"{base}/metrics", auth=("prometheus", "wrong"), cafile=pki["ca"])[0] == 401
    assert http_get(f"{base}/metrics", auth=("nobody", PROMETHEUS_PASSWORD), cafile=pki["ca"])[0] == 401
    assert http_get(f"http://127.0.0.1:{port}/metrics", auth=right)[0] != 200  # TLS only
    # Outside ASCII: the right UTF-8 credentials pass; wrong ones, and bytes that are not UTF-8
    # at all, get 401 (they once dropped the connection with a traceback).
    assert _raw_get(port, _basic(PERSON, PERSON_PASSWORD), pki["ca"])[0] == 200
    assert _raw_get(port, _basic(PERSON, "пароль"), pki["ca"])[0] == 401
    assert _raw_get(port, _basic("prometheus", PROMETHEUS_PASSWORD + "ё"), pki["ca"])[0] == 401
    assert _raw_get(port, b"Basic " + base64.b64encode(b"\xff\xfe:\xc3"), pki["ca"])[0] == 401
    assert _raw_get(port, "Basic пароль".encode(), pki["ca"])[0] == 401
    assert _raw_get(port, b"Basic " + base64.b64encode(b"prometheus:" + b"x" * 100), pki["ca"])[0] == 401  # over bcrypt's 72 bytes
    status, answer = _raw_get(port, _basic(*right), pki["ca"])
    head = answer.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert status == 200 and "x-frame-options: deny" in head and "x-content-type-options: nosniff" in head

    # A real Prometheus scrapes through TLS and a bcrypt user (and asks for OpenMetrics, its default).
    password_file = tmp_path / "scrape-password"
    password_file.write_text(PROMETHEUS_PASSWORD)
    prometheus_port = free_port()
    (tmp_path / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{
            "job_name": "msgreach", "scheme": "https",
            "tls_config": {"ca_file": str(pki["ca"]), "server_name": "localhost"},
            "basic_auth": {"username": "prometheus", "password_file": str(password_file)},
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
        }],
    }))
    prometheus = procs.start("prometheus", [
        prometheus_binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
    ])

    def scraped() -> float:
        assert prometheus.alive(), prometheus.text()[-3000:]
        query = urllib.parse.quote("max(msgreach_rounds_total) and on() up{job='msgreach'} == 1")
        status, body = http_get(f"http://127.0.0.1:{prometheus_port}/api/v1/query?query={query}")
        result = json.loads(body)["data"]["result"] if status == 200 else []
        return float(result[0]["value"][1]) if result else 0.0

    assert wait_for(scraped, 60, what="Prometheus scraping msgreach through TLS and bcrypt") >= 1
    assert procs.stop(monitor) == 0
    log = monitor.text()
    assert "Traceback" not in log
    for secret in (PROMETHEUS_PASSWORD, PERSON_PASSWORD):
        assert secret not in log


@pytest.mark.parametrize("web, line, key, words", [
    ("basic_auth_users: {prometheus: hunter2}", 1, "basic_auth_users.prometheus", "not a bcrypt hash"),
    ("tls_server_config: {cert_file: missing.pem, key_file: missing.key}", 1, "tls_server_config", "cannot read"),
    ("tls_server_config:\n  cert_file: x\n  cipher_suites: [TLS_AES_128_GCM_SHA256]", 3, "tls_server_config.cipher_suites", "not supported"),
    ("tls_server_config:\n  client_auth_type: RequireAnyClientCert", 2, "tls_server_config.client_auth_type", "nobody verified"),
    ("http_server_config:\n  headers: {X-Frame-Options: allow-from evil}", 2, "http_server_config.headers", "not one of deny, sameorigin"),
    ("http_server_config:\n  headers: {Set-Cookie: a=b}", 2, "http_server_config.headers", "cannot be set here"),
    ("basic_auth_users: {prometheus: x}\nbasic_auth_user: {}", 2, "basic_auth_user", "Extra inputs"),
    ("rate_limit: {interval: 1s, burst: 5}", 1, "rate_limit", "not supported"),
    ("basic_auth_users: [a, b]", 1, "basic_auth_users", "dictionary"),
])
def test_a_bad_web_config_is_refused_at_load_with_file_line_and_key(tmp_path: Path, web: str, line: int, key: str, words: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(web + "\n")
    port = free_port()
    config = _monitor_config(tmp_path, port)
    for argv in (["check-config", str(config), "--web.config.file", str(path)],
                 ["run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--web.config.file", str(path)]):
        done = subprocess.run(msgreach_argv(*argv), env=msgreach_env(), capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2, (argv[0], done.stderr)
        assert "Traceback" not in done.stderr
        rows = [row for row in done.stderr.splitlines() if f"{path}:{line}: {key}" in row]
        assert rows and words in rows[0], (argv[0], done.stderr)
    assert http_get(f"http://127.0.0.1:{port}/metrics")[0] == 0  # nothing ever listened


def test_the_old_keys_and_a_web_config_are_not_both_taken(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    config = _monitor_config(tmp_path, free_port(), f"listen: {{basic_auth: {{username: prometheus, password_file: {secret}}}}}\n")
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users: {{prometheus: {_hash('s3cret')}}}\n")
    done = subprocess.run(msgreach_argv("run", "--config", str(config), "--web.config.file", str(web)), env=msgreach_env(), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "listen.basic_auth" in done.stderr and "--web.config.file" in done.stderr, done.stderr


def test_the_old_basic_auth_takes_a_password_outside_ascii(tmp_path: Path, procs) -> None:
    """`listen.basic_auth` keeps working; a password outside ASCII was accepted at load and then
    locked every client out (the comparison raised); now it is compared as UTF-8 bytes."""
    pki = make_pki(tmp_path, ["localhost"], ["127.0.0.1"])
    secret = tmp_path / "password"
    secret.write_text(PERSON_PASSWORD + "\n")
    port = free_port()
    config = _monitor_config(tmp_path, port, textwrap.dedent(f"""
        listen:
          tls: {{cert_file: {pki['cert']}, key_file: {pki['key']}}}
          basic_auth: {{username: {PERSON}, password_file: {secret}}}
        """))
    monitor = procs.start("msgreach", msgreach_argv("run", "--config", str(config), "--listen", f"127.0.0.1:{port}"), env=msgreach_env())

    def answering() -> int:
        assert monitor.alive(), monitor.text()[-3000:]
        try:
            return _raw_get(port, _basic(PERSON, PERSON_PASSWORD), pki["ca"])[0] == 200
        except OSError:
            return False

    wait_for(answering, 30, what="the old basic auth with a password outside ASCII")
    assert _raw_get(port, _basic(PERSON, "пароль"), pki["ca"])[0] == 401
    assert _raw_get(port, _basic("prometheus", PERSON_PASSWORD), pki["ca"])[0] == 401
    assert _raw_get(port, b"Basic " + base64.b64encode("ё:ж".encode("cp1251")), pki["ca"])[0] == 401
    assert procs.stop(monitor) == 0
    assert "Traceback" not in monitor.text()


def test_sighup_reads_the_web_config_again_and_refuses_a_bad_one(tmp_path: Path, procs) -> None:
    """As the toolkit's exporters pick up a changed file: users rotate without a restart (the
    systemd unit's `systemctl reload` sends SIGHUP); a broken file is refused and the running
    users kept; turning TLS on needs a restart and says so."""
    import signal

    port = free_port()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users: {{prometheus: {_hash('first')}}}\n")
    config = _monitor_config(tmp_path, port)
    monitor = procs.start("msgreach", msgreach_argv("run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--web.config.file", str(web)), env=msgreach_env())
    url = f"http://127.0.0.1:{port}/healthz"

    def status(password: str) -> int:
        assert monitor.alive(), monitor.text()[-3000:]
        return http_get(url, auth=("prometheus", password))[0]

    wait_for(lambda: status("first") == 200, 30, what="the first password")
    web.write_text(f"basic_auth_users: {{prometheus: {_hash('second')}}}\n")
    monitor.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: status("second") == 200, 30, what="the rotated password after SIGHUP")
    assert status("first") == 401  # remembered passes are forgotten with the old users
    for broken, words in (("basic_auth_users: {prometheus: plain-text}\n", "not a bcrypt hash"),
                          (f"tls_server_config: {{cert_file: {tmp_path}/c.pem, key_file: {tmp_path}/k.pem}}\n", "cannot read")):
        web.write_text(broken)
        monitor.popen.send_signal(signal.SIGHUP)
        wait_for(lambda words=words: monitor.text().count("web config reload refused") and words in monitor.text(), 30, what=f"the refusal ({words})")
        assert status("second") == 200
    pki = make_pki(tmp_path, ["localhost"], ["127.0.0.1"])
    web.write_text(f"tls_server_config: {{cert_file: {pki['cert']}, key_file: {pki['key']}}}\nbasic_auth_users: {{prometheus: {_hash('third')}}}\n")
    monitor.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "needs a restart" in monitor.text(), 30, what="TLS on refused until a restart")
    assert status("second") == 200 and status("third") == 401
    assert procs.stop(monitor) == 0
    assert "Traceback" not in monitor.text()
