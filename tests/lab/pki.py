"""Certificates for the lab, made with the openssl command line at lab-up time (nothing secret is
committed): a lab CA that msgreach trusts through its `ca_bundle`, one leaf per host name, and the
censor's certificates (an untrusted "MITM CA" and a lab-CA certificate for the wrong name)."""

from __future__ import annotations

import subprocess
from pathlib import Path

DAYS = "30"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_ca(directory: Path, name: str, common_name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", DAYS, "-subj", f"/O=msgreach lab/CN={common_name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
    )
    return key, cert


def make_leaf(directory: Path, name: str, dns_names: list[str], ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A server certificate for `dns_names` signed by `ca`; the .pem holds leaf + CA (a chain)."""
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    san = ",".join(f"DNS:{n}" for n in dns_names)
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", DAYS, "-subj", f"/O=msgreach lab/CN={dns_names[0]}",
        "-CA", str(ca[1]), "-CAkey", str(ca[0]),
        "-addext", f"subjectAltName={san}",
        "-addext", "basicConstraints=critical,CA:FALSE",
        "-addext", "keyUsage=critical,digitalSignature",
        "-addext", "extendedKeyUsage=serverAuth",
    )
    cert.write_text(cert.read_text() + ca[1].read_text())
    return key, cert


def build(directory: Path, hosts: list[str], resolver_name: str) -> dict[str, tuple[Path, Path]]:
    """Everything the lab serves. Keys: 'ca', 'mitm-ca', 'default', 'dot', 'mitm', 'wrongname',
    'blockpage' and one per host name."""
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, Path]] = {}
    out["ca"] = make_ca(directory, "ca", "msgreach lab CA")
    out["mitm-ca"] = make_ca(directory, "mitm-ca", "Lab Censor Security Certificate")  # never trusted
    out["default"] = make_leaf(directory, "default", ["default.lab.test"], out["ca"])
    out["dot"] = make_leaf(directory, "dot", [resolver_name], out["ca"])
    out["mitm"] = make_leaf(directory, "mitm", hosts, out["mitm-ca"])  # right names, wrong issuer
    out["wrongname"] = make_leaf(directory, "wrongname", ["mitm.lab.test"], out["ca"])  # trusted issuer, wrong name
    out["blockpage"] = make_leaf(directory, "blockpage", ["blocked.lab.test"], out["mitm-ca"])
    hostdir = directory / "hosts"
    hostdir.mkdir(exist_ok=True)
    for host in hosts:
        out[host] = make_leaf(hostdir, host, [host], out["ca"])
    return out
