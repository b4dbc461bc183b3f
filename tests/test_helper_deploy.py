"""The helper's deploy files: hardened like the monitor's, ports as documented, settings valid."""

from __future__ import annotations

from pathlib import Path

import yaml

from probe.helper import settings as settings_module

HELPER = Path(__file__).resolve().parents[1] / "deploy" / "helper"


def test_helper_compose_is_hardened_and_publishes_only_its_ports() -> None:
    compose = yaml.safe_load((HELPER / "compose.yaml").read_text())
    service = compose["services"]["helper"]
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"] and service["user"] == "10001:10001"
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["command"][-3:] == ["helper", "--config", "/etc/msgreach/helper.yaml"]
    assert sorted(service["ports"]) == sorted(["9920:9920/tcp", "9920:9920/udp", "9921:9921/tcp", "9921:9921/udp", "9922-9923:9922-9923/tcp"])
    assert service["secrets"][0]["target"] == "/run/secrets/msgreach-helper"


def test_helper_settings_file_is_valid_and_names_the_secret() -> None:
    settings = settings_module.load(HELPER / "helper.yaml")
    assert str(settings.secret_file) == "/run/secrets/msgreach-helper"
    assert settings.listen.endswith(":9920") and settings.probe_port == 9921 and settings.bulk_port == 9922
    assert settings.log_clients is False
