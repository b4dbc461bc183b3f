"""Volunteer safety: the vantage's own public addresses appear nowhere it publishes or keeps.

Two namespaces joined by a veth pair and nothing else (no uplink): `mrf-vp-<pid>`, the
volunteer's machine, holding a public-looking IPv4 and IPv6 address, and `mrf-sv-<pid>`, "the
internet": a DNS server and web servers whose pages reflect the client's address back the way
block pages and what-is-my-IP pages do (in a 451 body, in a redirect to an ISP block-page host).
The monitor runs on the volunteer side with DEBUG logging; /metrics, the evidence archive and
the logs are then searched for the volunteer's addresses. The servers' own logs must show those
addresses (proof the search looks for something that was really there to leak).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from mrfkit import CONTRACT_FAMILIES, HERE, link, make_pki, msgreach_argv, msgreach_env, netns, wait_for

from probe.evidence import SCRUBBED, read

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VANTAGE_V4, VANTAGE_V6 = "85.143.10.2", "2a02:6b8:dead::2"
# How ISP host names on block pages and in redirects carry it.
VANTAGE_FORMS = (VANTAGE_V4, VANTAGE_V6, "85-143-10-2", "85_143_10_2")
SERVER_V4, SERVER_V6 = "85.143.10.1", "2a02:6b8:dead::1"
FETCH = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
# The body of an error page (urlopen raises on 451): what the block page shows the vantage.
FETCH_ERROR_BODY = (
    "import sys, urllib.error, urllib.request\n"
    "try:\n    urllib.request.urlopen(sys.argv[1], timeout=5)\n"
    "except urllib.error.HTTPError as exc:\n    sys.stdout.write(exc.read().decode())"
)


def _config(directory: Path, ca: Path) -> Path:
    config = directory / "msgreach.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            vantages:
              - name: volunteer-7
                country: RU
                asn: "12389"
                network: home line
                source_address: {VANTAGE_V4}
                resolvers: ["{SERVER_V4}", {{address: "{SERVER_V4}:5353", control: true}}]
                ca_bundle: {ca}
            controls:
              - {{name: ctl, host: ctl.mrf.test, checks: [dns, tcp, tls, http]}}
            schedule: {{interval_seconds: 2, jitter_seconds: 0, retries: 0}}
            evidence: {{path: state/evidence.jsonl}}
            services:
              - name: echoes
                targets:
                  - {{name: tls-echo, host: echo.mrf.test, checks: [dns, tcp, tls, http], params: {{http: {{path: /echo}}}}}}
                  - {{name: blockpage, host: block.mrf.test, ports: [80], checks: [dns, tcp, http], params: {{http: {{scheme: http, path: /blocked}}}}}}
                  - {{name: redirect, host: redir.mrf.test, ports: [80], checks: [dns, tcp, http], params: {{http: {{scheme: http, path: /redirect}}}}}}
                  - {{name: refused, host: dead.mrf.test, ports: [81], checks: [dns, tcp]}}
            """
        )
    )
    return config


def test_no_vantage_address_in_metrics_evidence_or_logs(tmp_path: Path, procs) -> None:
    pki = make_pki(tmp_path, ["ctl.mrf.test", "echo.mrf.test", "block.mrf.test", "redir.mrf.test"])
    config = _config(tmp_path, pki["ca"])
    servers = HERE / "mrf_servers.py"
    with netns("vp") as vantage, netns("sv") as internet:
        link(vantage, internet, [f"{VANTAGE_V4}/24", f"{VANTAGE_V6}/64"], [f"{SERVER_V4}/24", f"{SERVER_V6}/64"])
        for name, argv in {
            "dns": ["dns", "--bind", "0.0.0.0", "--port", "53", "--answer", SERVER_V4, "--answer6", SERVER_V6],
            "dns-control": ["dns", "--bind", "0.0.0.0", "--port", "5353", "--answer", SERVER_V4, "--answer6", SERVER_V6],
            "web": ["http", "--bind", "::", "--port", "80"],
            "web-tls": ["http", "--bind", "::", "--port", "443", "--tls", str(pki["cert"]), str(pki["key"])],
        }.items():
            procs.start(name, [sys.executable, str(servers), *argv], netns=internet.name)
        monitor = procs.start(
            "msgreach", msgreach_argv("--log-level", "DEBUG", "run", "--config", str(config), "--listen", "127.0.0.1:9910"), netns=vantage.name, env=msgreach_env()
        )
        archive = tmp_path / "state" / "evidence.jsonl"

        def rounds_done() -> bool:
            assert monitor.alive(), monitor.text()[-3000:]
            return archive.exists() and len({r["time"] for r in read(archive).records}) >= 3

        wait_for(rounds_done, 60, what="three rounds in the evidence archive")
        metrics = vantage.exec(sys.executable, "-c", FETCH, "http://127.0.0.1:9910/metrics").stdout
        status_json = vantage.exec(sys.executable, "-c", FETCH, "http://127.0.0.1:9910/status.json").stdout
        status_page = vantage.exec(sys.executable, "-c", FETCH, "http://127.0.0.1:9910/").stdout
        vantage_fetch_blocked = vantage.exec(sys.executable, "-c", FETCH_ERROR_BODY, f"http://{SERVER_V4}/blocked").stdout
        assert procs.stop(monitor) == 0
        server_logs = "".join(p.text() for p in procs.procs if p.name.startswith(("web", "dns")))
        logs = monitor.text()

    # The addresses were really used and really reflected: the search below means something.
    assert f"client={VANTAGE_V4}" in server_logs or f"client=::ffff:{VANTAGE_V4}" in server_logs
    reflected = vantage_fetch_blocked  # what the block page says to the vantage itself, unscrubbed
    assert all(form in reflected for form in (VANTAGE_V4, "85-143-10-2", "85_143_10_2")), reflected
    records = read(archive).records
    verdicts = {r["target"]: r["verdict"] for r in records}
    assert verdicts == {"ctl": "ok", "tls-echo": "ok", "blockpage": "http_blocked", "redirect": "http_blocked", "refused": "ip_blocked"}, verdicts
    blockpage = next(r for r in records if r["target"] == "blockpage")
    assert f"Your IP: {SCRUBBED}; host: dsl-{SCRUBBED}.pppoe.rt.ru; ticket {SCRUBBED}" in json.dumps(blockpage)
    redirect = next(r for r in records if r["target"] == "redirect")
    assert f"http://warning.rt.ru/?ip={SCRUBBED}&host={SCRUBBED}.dynamic.rt.ru&id=42" in json.dumps(redirect)
    assert redirect["probe_cc"] == "RU" and redirect["probe_asn"] == "AS12389"
    # The remote ends stay: evidence needs them.
    assert SERVER_V4 in json.dumps(redirect)

    for family in CONTRACT_FAMILIES:
        assert f"\n{family}" in metrics or metrics.startswith(family), family
    assert 'msgreach_vantage_info{asn="12389",country="RU",network="home line",role="vantage",vantage="volunteer-7"} 1.0' in metrics
    assert "DEBUG" in logs  # the most talkative level was searched
    # Everything in the state directory: the archive, and the verdict history's sqlite files.
    evidence_text = "".join(f.read_bytes().decode("utf-8", "replace") for f in archive.parent.iterdir() if f.is_file())
    assert "Your IP: " in status_json and "Your IP: " in evidence_text  # the block page itself is there
    outputs = {"metrics": metrics, "evidence": evidence_text, "logs": logs, "status.json": status_json, "status page": status_page}
    for where, text in outputs.items():
        for form in VANTAGE_FORMS:
            assert form not in text, f"the vantage's address ({form}) is in the {where}"
