"""The default state directory (history and evidence kept without any config) and how a config
chooses or switches off what goes there."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.config.state_dir import default_state_dir


@pytest.mark.parametrize(
    ("environ", "evidence", "expected"),
    [
        ({"HOME": "/home/v"}, None, "/home/v/.local/state/msgreach"),
        ({"HOME": "/home/v", "XDG_STATE_HOME": "/xdg"}, None, "/xdg/msgreach"),
        ({"HOME": "/home/v", "XDG_STATE_HOME": "relative/is/invalid"}, None, "/home/v/.local/state/msgreach"),
        ({"HOME": "/home/v", "XDG_STATE_HOME": "/xdg"}, "/data/ev.jsonl", "/data"),  # where history went with an archive
        ({"HOME": "/home/v", "STATE_DIRECTORY": "/var/lib/msgreach:/var/lib/other"}, "/data/ev.jsonl", "/var/lib/msgreach"),  # systemd
        ({"HOME": "/home/v", "MSGREACH_STATE_DIR": "/srv/m", "STATE_DIRECTORY": "/var/lib/msgreach"}, "/data/ev.jsonl", "/srv/m"),
        ({"HOME": "/"}, None, None),  # a container's numeric user: no home to write to
        ({}, None, None),
    ],
)
def test_default_state_dir(environ, evidence, expected):
    found = default_state_dir(Path(evidence) if evidence else None, environ)
    assert found == (Path(expected) if expected else None)


def test_history_and_evidence_go_to_the_state_dir_by_default(env, tmp_path, monkeypatch):
    monkeypatch.delenv("MSGREACH_STATE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    state = tmp_path / "home" / ".local" / "state" / "msgreach"
    config = env.load(tmp_path, env.config([]))
    assert config.state_dir == state and config.evidence.path == state / "evidence.jsonl"
    assert not state.exists()  # loading (and check-config) creates nothing

    off = env.load(tmp_path, env.config([], evidence={"enabled": False}))
    assert off.evidence.path is None and off.state_dir == state

    chosen = env.load(tmp_path, env.config([], state_dir="mine"))  # relative to the config file
    assert chosen.state_dir == tmp_path / "mine" and chosen.evidence.path == tmp_path / "mine" / "evidence.jsonl"

    apart = env.load(tmp_path, env.config([], evidence={"path": "/elsewhere/ev.jsonl"}))
    assert apart.evidence.path == Path("/elsewhere/ev.jsonl") and apart.state_dir == Path("/elsewhere")


def test_the_catalogs_spell_the_services_names():
    from probe import config as config_module

    titles = {s.name: s.title for s in config_module.load().services}
    assert titles == {"whatsapp": "WhatsApp", "telegram": "Telegram", "signal": "Signal"}
