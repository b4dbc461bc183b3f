"""The system trust store: read from OpenSSL's hashed directory when there is one (a CA parsed
when a chain needs it), from the bundle file otherwise. Real handshakes with the suite's TLS server,
its CA placed where OpenSSL looks for the system's."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import pytest
from msgreach_helpers import require_tool

from probe import net

LOOPBACK = "127.0.0.1"


@pytest.fixture
def fresh_trust(monkeypatch):
    """No cached contexts or directory choice before or after the test; no store from the machine."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    net.hashed_ca_directory.cache_clear()
    net._ssl_context.cache_clear()
    yield monkeypatch
    net.hashed_ca_directory.cache_clear()
    net._ssl_context.cache_clear()


def _handshake(env, context: ssl.SSLContext) -> str:
    with socket.create_connection((LOOPBACK, env.ports["web"]), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="trust.good.test"):
                return "ok"
        except ssl.SSLCertVerificationError as exc:
            return exc.verify_message


def _hashed_copy(env, directory) -> None:
    openssl = require_tool(shutil.which("openssl"), "openssl")
    subject_hash = subprocess.run([openssl, "x509", "-subject_hash", "-noout", "-in", str(env.ca.pem)], capture_output=True, text=True, check=True).stdout.strip()
    shutil.copy(env.ca.pem, directory / f"{subject_hash}.0")


def test_the_hashed_directory_is_the_system_store(env, tmp_path, fresh_trust):
    _hashed_copy(env, tmp_path)
    fresh_trust.setenv("SSL_CERT_DIR", str(tmp_path))
    assert net.hashed_ca_directory() == str(tmp_path)
    assert _handshake(env, net.ssl_context()) == "ok"  # no ca_bundle: the CA came from the directory


def test_a_directory_without_the_ca_does_not_trust_it(env, tmp_path, fresh_trust):
    (tmp_path / "0123abcd.0").write_text("")  # hashed names, none of them our CA
    fresh_trust.setenv("SSL_CERT_DIR", str(tmp_path))
    assert net.hashed_ca_directory() == str(tmp_path)
    assert _handshake(env, net.ssl_context()) == "unable to get local issuer certificate"


def test_a_bundle_file_from_elsewhere_wins_over_the_directory(env, tmp_path, fresh_trust):
    (tmp_path / "0123abcd.0").write_text("")
    fresh_trust.setenv("SSL_CERT_DIR", str(tmp_path))
    fresh_trust.setenv("SSL_CERT_FILE", str(env.ca.pem))  # not in tmp_path: it may hold other CAs
    assert net.hashed_ca_directory() is None
    assert _handshake(env, net.ssl_context()) == "ok"  # the bundle file, loaded whole as before


def test_the_directory_s_own_bundle_does_not_stop_the_directory(env, tmp_path, fresh_trust):
    _hashed_copy(env, tmp_path)
    shutil.copy(env.ca.pem, tmp_path / "ca-certificates.crt")  # as Debian's update-ca-certificates
    fresh_trust.setenv("SSL_CERT_DIR", str(tmp_path))
    fresh_trust.setenv("SSL_CERT_FILE", str(tmp_path / "ca-certificates.crt"))
    assert net.hashed_ca_directory() == str(tmp_path)
    assert _handshake(env, net.ssl_context()) == "ok"
