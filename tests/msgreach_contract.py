"""The outside contract (../shared/CONTRACT.md) as the tests check it: names written out here,
not imported from the engine, so that a renamed verdict or metric fails a test."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

TARGET_VERDICTS = frozenset(
    {
        "ok", "dns_blocked", "dns_tampered", "ip_blocked", "sni_blocked", "tls_blocked", "tls_mitm",
        "http_blocked", "quic_blocked", "protocol_blocked", "udp_blocked", "throttled", "down",
        "vantage_offline", "error",
    }
)
SERVICE_VERDICTS = TARGET_VERDICTS | {"partial"}
BLOCK_VERDICTS = TARGET_VERDICTS - {"ok", "down", "vantage_offline", "error"}
VANTAGE_VERDICTS = frozenset({"ok", "allowlist", "vantage_offline"})

# Metric families (names as exposed: counters with their _total).
METRIC_FAMILIES = (
    "msgreach_check_success",
    "msgreach_check_duration_seconds",
    "msgreach_check_failures_total",
    "msgreach_target_verdict",
    "msgreach_service_verdict",
    "msgreach_service_reachable_ratio",
    "msgreach_vantage_online",
    "msgreach_dns_lookup_duration_seconds",
    "msgreach_tls_cert_not_after_timestamp_seconds",
    "msgreach_download_throughput_bytes_per_second",
    "msgreach_round_duration_seconds",
    "msgreach_last_round_timestamp_seconds",
    "msgreach_rounds_total",
    "msgreach_vantage_info",
    "msgreach_build_info",
    "msgreach_vantage_verdict",
    "msgreach_target_verdict_since_timestamp_seconds",
    "msgreach_helper_up",
)

# The contract as this checkout knows it (docs/contract/CONTRACT.md, a copy kept in the repository so
# no test depends on ../shared being beside the checkout), and the shared original when it is there.
CONTRACT_FILE = Path(__file__).resolve().parent.parent / "docs" / "contract" / "CONTRACT.md"
SHARED_CONTRACT_FILE = Path(__file__).resolve().parent.parent.parent / "shared" / "CONTRACT.md"


def families_in_contract(text: str) -> set[str]:
    """The metric names the contract's Metrics section lists."""
    section = text.split("## Metrics", 1)[1]
    return set(re.findall(r"`(msgreach_[a-z0-9_]+)", section))


def assert_contract_document(document: dict[str, Any]) -> None:
    """`once --format json` as the contract describes it."""
    assert isinstance(document["version"], str) and document["version"]
    started = datetime.fromisoformat(document["started_at"])
    assert started.tzinfo is not None, "started_at must carry its offset (RFC 3339)"
    assert isinstance(document["duration_seconds"], int | float) and document["duration_seconds"] >= 0
    assert isinstance(document["vantages"], list) and document["vantages"]
    for vantage in document["vantages"]:
        assert isinstance(vantage["vantage"], str) and vantage["vantage"]
        assert vantage["verdict"] in VANTAGE_VERDICTS, vantage["verdict"]
        assert isinstance(vantage["services"], list)
        for service in vantage["services"]:
            assert isinstance(service["service"], str)
            assert service["verdict"] in SERVICE_VERDICTS, service["verdict"]
            assert isinstance(service["targets"], list)
            for target in service["targets"]:
                assert isinstance(target["target"], str)
                assert isinstance(target["host"], str)
                assert target["verdict"] in TARGET_VERDICTS, target["verdict"]
                assert isinstance(target["checks"], list)
                for check in target["checks"]:
                    assert isinstance(check["check"], str)
                    assert isinstance(check["ok"], bool)
                    assert check["failure"] is None or isinstance(check["failure"], str)
                    assert (check["failure"] is None) == check["ok"], check
                    assert isinstance(check["duration_seconds"], int | float) and check["duration_seconds"] >= 0


def verdicts(document: dict[str, Any], vantage: str | None = None) -> dict[str, Any]:
    """{service: (service verdict, {target: target verdict})} of one vantage (the first if None)."""
    chosen = next(v for v in document["vantages"] if vantage is None or v["vantage"] == vantage)
    return {s["service"]: (s["verdict"], {t["target"]: t["verdict"] for t in s["targets"]}) for s in chosen["services"]}
