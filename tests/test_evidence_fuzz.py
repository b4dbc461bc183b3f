"""The evidence reader and `msgreach evidence` take the archive and their arguments as untrusted
input: damaged files, foreign lines, records of the wrong types and absurd times end in a report
or a one-line error (exit 2), never a traceback."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.evidence import BadTimeArgument, archive_files, changes, parse_time, print_changes, read, render_table

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_times = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-03-01", "2026-13-01", "", "Z"]),
    st.text(max_size=30),
)
_FIELDS = ["service", "vantage", "verdict", "reason", "service_verdict", "probe_cc", "probe_asn", "probe_network_name", "input"]
# Records shaped like the archive's, with any type in any field: what damage or another tool could write.
_schemas = st.sampled_from(["msgreach-evidence/1"] * 4 + ["msgreach-evidence/2", "msgreach-evidence/0", "msgreach-evidence/", "x"]) | _json
_records = st.fixed_dictionaries(
    {"time": _times, "target": st.text(max_size=10), "schema": _schemas},
    optional={name: _json | st.sampled_from(["ok", "ip_blocked", "ZZ", "AS0", "telegram"]) for name in _FIELDS},
)
_lines = st.one_of(
    _records.map(lambda r: json.dumps(r).encode()),
    _json.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=80),
    st.just(b"[" * 100_000),  # nesting deeper than the JSON decoder's recursion limit
    st.just(b'{"time": "2026-03-01T12:00:00Z", "target": "a", "verdict": "ok"'),  # torn
)


def _args(path: Path, **kwargs: object) -> argparse.Namespace:
    defaults = {"path": str(path), "since": None, "until": None, "services": None, "vantages": None, "format": "table", "config": None}
    return argparse.Namespace(**(defaults | kwargs))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(live=st.lists(_lines, max_size=12), rotated=st.lists(_lines, max_size=6), since=st.sampled_from([None, "1h", "2026-03-01", "99999999999d"]), output=st.sampled_from(["table", "json", "ooni"]))
def test_no_archive_content_crashes_the_reader_or_the_command(live: list[bytes], rotated: list[bytes], since: str | None, output: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ev.jsonl"
        path.write_bytes(b"\n".join(live))
        path.with_name("ev.jsonl.1").write_bytes(b"\n".join(rotated))
        reading = read(path)
        assert reading.files == archive_files(path)
        lines = [line for file in reading.files for line in file.read_bytes().split(b"\n") if line.strip()]
        assert len(reading.records) + reading.skipped + sum(reading.refused.values()) == len(lines)  # every line is a record or counted
        groups = changes(reading.records, None, None)
        json.dumps(groups)  # the --format json document is serialisable
        render_table(groups, None, None, reading, path)
        code = print_changes(_args(path, since=since, format=output), None)
        assert code == (2 if since == "99999999999d" else 0)


@given(value=st.text(max_size=40))
def test_any_time_argument_is_a_time_or_a_clear_refusal(value: str) -> None:
    try:
        moment = parse_time(value, NOW, None)
    except BadTimeArgument as exc:
        assert str(exc)
        return
    assert moment is None or moment.tzinfo is not None


ABSURD = ["99999999999d", "9" * 400 + "w", "99999999999999999999s", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "99999-01-01", "last tuesday", "1e9d", "-5d"]


@pytest.mark.parametrize("value", ABSURD)
@pytest.mark.parametrize("option", ["--since", "--until"])
def test_absurd_times_end_in_one_line_and_exit_2(tmp_path: Path, option: str, value: str) -> None:
    path = tmp_path / "ev.jsonl"
    path.write_text('{"schema": "msgreach-evidence/1", "time": "2026-03-01T12:00:00Z", "target": "a", "service": "s", "vantage": "v", "verdict": "ok"}\n')
    run = subprocess.run(
        [sys.executable, "-m", "probe", "evidence", "--path", str(path), f"{option}={value}"],
        cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("msgreach: error: ")
