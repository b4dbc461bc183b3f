"""The archive's files as untrusted ground: reading races rotation, lines beyond the cap, links,
FIFOs and devices where the archive should be, and records of a schema this msgreach cannot read.

Everything here is real files and real processes (a writer rotating in another process while
this one reads); nothing is mocked."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest
from msgreach_helpers import msgreach_command, require_root

from probe.config import Evidence
from probe.evidence import MAX_LINE_BYTES, SCHEMA, SCRUBBED, Archive, encode, read, records
from probe.evidence.schema import Schemas
from probe.model import CheckResult, ServiceResult, TargetResult, TCPConnect, TCPEvidence, VantageResult, Verdict

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc).timestamp()


def one_target_round(index: int, vantage: str = "v") -> VantageResult:
    """Round number `index`: one target, its start time T0 + index seconds (the sequence number)."""
    check = CheckResult("tcp", True, None, 0.01, None, TCPEvidence([TCPConnect("149.154.167.51", 443, None, 0.01)]))
    target = TargetResult("telegram", "dc2", "149.154.167.51", Verdict.OK, [check])
    return VantageResult(vantage, "ok", [ServiceResult("telegram", Verdict.OK, [target])], [], T0 + index, 0.5)


def sequence(record: dict[str, object]) -> int:
    return round(datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00")).timestamp() - T0)


# --- reading while another process rotates -----------------------------------------------------

WRITES = 400

_WRITER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{tests!r}]
    from test_evidence_archive import one_target_round
    from probe.config import Evidence
    from probe.evidence import Archive
    archive = Archive(Evidence(path={path!r}, max_bytes=1024, keep_files=3))
    for index in range({writes}):
        assert archive.append(one_target_round(index)) == 1, index
    """
)


def test_reading_races_rotation_and_always_sees_a_contiguous_run(tmp_path: Path) -> None:
    """A writer in another process rotates at every line (max_bytes=1024) while this
    process reads the archive again and again. Every reading must succeed and be one contiguous
    run of rounds: a file rotated away between listing and opening was a FileNotFoundError, and
    files read across a rotation lost or repeated a file's worth of rounds."""
    path = tmp_path / "ev.jsonl"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER.format(tests=str(Path(__file__).parent), path=str(path), writes=WRITES)])
    readings = with_records = 0
    try:
        while True:
            done = writer.poll() is not None  # one last reading after the writer's end
            reading = read(path)
            readings += 1
            numbers = [sequence(r) for r in reading.records]
            if numbers:
                with_records += 1
                assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), f"reading {readings}: not one contiguous run: {numbers}"
            assert reading.skipped <= 1, f"reading {readings}: more than the line being written unreadable"
            if done:
                break
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == 0
    assert numbers[-1] == WRITES - 1  # the last reading saw the last round
    assert with_records > 20, readings  # the reads did overlap the writes


# --- what sits at the archive's path ---------------------------------------------------------------


def test_the_writer_refuses_a_symbolic_link_and_leaves_its_target_alone(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("not the archive's\n")
    path = tmp_path / "ev.jsonl"
    archive = Archive(Evidence(path=tmp_path / "ev.jsonl"))  # a regular path at load...
    path.symlink_to(elsewhere)  # ...swapped for a link afterwards
    assert archive.append(one_target_round(0)) == 0
    assert archive.failing and archive.last_success is None  # what the monitor exports as metrics
    assert elsewhere.read_text() == "not the archive's\n" and path.is_symlink()
    path.unlink()
    assert archive.append(one_target_round(1)) == 1 and not archive.failing  # a regular file again


def test_the_writer_refuses_a_fifo(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ev.jsonl"
    archive = Archive(Evidence(path=path))
    os.mkfifo(path)
    assert archive.append(one_target_round(0)) == 0 and archive.failing
    assert f"{path} is a FIFO: msgreach writes only to a regular file" in caplog.text
    assert stat.S_ISFIFO(os.lstat(path).st_mode)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_check_config_refuses_an_archive_path_that_is_no_regular_file(tmp_path: Path, kind: str) -> None:
    """At load, with file, line and key: check-config (and so run and once) refuse it."""
    path = tmp_path / "ev.jsonl"
    {"symlink": lambda: path.symlink_to(tmp_path / "target"), "fifo": lambda: os.mkfifo(path), "directory": path.mkdir}[kind]()
    config = tmp_path / "msgreach.yaml"
    config.write_text(f"vantages: [{{name: v}}]\nevidence:\n  path: {path}\n")
    run = subprocess.run([*msgreach_command(), "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run
    what = {"symlink": "a symbolic link", "fifo": "a FIFO", "directory": "a directory"}[kind]
    assert f"{config}:3: evidence.path: {path} is {what}: msgreach writes only to a regular file" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


def test_reading_refuses_fifos_links_and_devices_under_the_archive_name(tmp_path: Path) -> None:
    """`msgreach evidence` reads the regular files and names the others; a reader that opened
    them would hang on the FIFO (nobody writes to it) or read /dev/zero until memory ran out."""
    require_root("a character device node")
    path = tmp_path / "ev.jsonl"
    Archive(Evidence(path=path)).append(one_target_round(0))
    os.mkfifo(tmp_path / "ev.jsonl.3")  # the oldest name: read first
    os.mknod(tmp_path / "ev.jsonl.2", 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # what /dev/zero is
    (tmp_path / "ev.jsonl.1").symlink_to("/etc/passwd")
    report = subprocess.run([*msgreach_command(), "evidence", "--path", str(path), "--format", "json"], capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    document = json.loads(report.stdout)
    assert document["records"] == 1 and document["files"] == [str(path)]
    refused = [
        f"{tmp_path}/ev.jsonl.3: a FIFO, not a regular file: not read",
        f"{tmp_path}/ev.jsonl.2: a character device, not a regular file: not read",
        f"{tmp_path}/ev.jsonl.1: a symbolic link, not a regular file: not read",
    ]
    assert document["refused_files"] == refused
    assert report.stderr.splitlines() == [f"msgreach: evidence archive: {line}" for line in refused]


# --- lines ----------------------------------------------------------------------------------------


def test_lines_above_the_cap_are_skipped_unread_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    archive = Archive(Evidence(path=path))
    archive.append(one_target_round(0))
    huge = json.loads(encode(next(iter(records(one_target_round(1))))))
    huge["padding"] = "x" * MAX_LINE_BYTES  # parseable, schema and all: only its length is wrong
    exactly = b'{"time":"2026-03-01T12:00:02Z","target":"dc2","schema":"' + SCHEMA.encode() + b'","pad":"'
    exactly += b"y" * (MAX_LINE_BYTES - len(exactly) - 3) + b'"}\n'
    assert len(exactly) == MAX_LINE_BYTES  # the cap counts the newline: this one is read
    with open(path, "ab") as handle:
        handle.write(encode(huge) + exactly)
    archive.append(one_target_round(3))
    reading = read(path)
    assert [sequence(r) for r in reading.records] == [0, 2, 3]
    assert (reading.oversized, reading.skipped) == (1, 0)
    assert f"1 line(s) longer than {MAX_LINE_BYTES} bytes skipped unread" in reading.notes()


def test_the_writer_never_writes_a_line_the_reader_would_skip(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    archive = Archive(Evidence(path=path, max_bytes=64 * MAX_LINE_BYTES))  # files far larger than the cap
    result = one_target_round(0)
    result.services[0].targets[0].reason = "r" * (2 * MAX_LINE_BYTES)
    assert archive.append(result) == 1
    assert path.stat().st_size <= MAX_LINE_BYTES
    [line] = read(path).records
    assert line["truncated"] is True and line["verdict"] == "ok"


# --- schema versions --------------------------------------------------------------------------------


def _line(version: object, index: int) -> bytes:
    record = json.loads(encode(next(iter(records(one_target_round(index))))))
    if version is None:
        del record["schema"]
    else:
        record["schema"] = version
    return encode(record)


def test_records_of_a_newer_or_foreign_schema_are_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    path.write_bytes(_line(SCHEMA, 0) + _line("msgreach-evidence/9", 1) + _line("msgreach-evidence/9", 2) + _line(None, 3) + _line("ooni/0.2.0", 4))
    reading = read(path)
    assert [sequence(r) for r in reading.records] == [0]
    assert reading.refused == {
        f"schema msgreach-evidence/9 was written by a newer msgreach (this one reads msgreach-evidence/1 to {SCHEMA}): read it with that version": 2,
        "not a msgreach evidence record (no `schema`)": 1,
        "not a msgreach evidence record (`schema` 'ooni/0.2.0')": 1,
    }
    report = subprocess.run([*msgreach_command(), "evidence", "--path", str(path), "--format", "json"], capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    assert "msgreach: evidence archive: 2 record(s) refused: schema msgreach-evidence/9 was written by a newer msgreach" in report.stderr
    document = json.loads(report.stdout)
    assert document["records"] == 1 and sum(document["refused_records"].values()) == 4


def test_an_older_schema_is_read_upgraded_or_refused_as_the_reader_says(tmp_path: Path) -> None:
    """What a reader of version 3 does with version 1 and 2 records: reads them from its oldest
    readable version on, bringing each forward through the upgrades registered, as written
    where none is; refuses what is older than it reads."""
    path = tmp_path / "ev.jsonl"
    path.write_bytes(_line("msgreach-evidence/1", 0) + _line("msgreach-evidence/2", 1) + _line("msgreach-evidence/3", 2))

    def two_to_three(record: dict[str, object]) -> dict[str, object]:
        return {**record, "schema": "msgreach-evidence/3", "upgraded": True}

    reading = read(path, Schemas(current=3, oldest=1, upgrades={2: two_to_three}))
    assert [(sequence(r), r["schema"], r.get("upgraded")) for r in reading.records] == [
        (0, "msgreach-evidence/3", True),  # 1 -> 2 as written (nothing to change), 2 -> 3 upgraded
        (1, "msgreach-evidence/3", True),
        (2, "msgreach-evidence/3", None),
    ]
    reading = read(path, Schemas(current=3, oldest=2))
    assert [sequence(r) for r in reading.records] == [1, 2]
    assert reading.refused == {"schema msgreach-evidence/1 is older than this msgreach reads (msgreach-evidence/2 to msgreach-evidence/3): read it with an older msgreach": 1}


# --- the lines: what `records` says, encoded (the archive scrubs only the lines that need it) ----


def _revealing_round() -> VantageResult:
    """Targets whose records hold what the scrub removes, and what it must keep: a reflected
    public address in a reason, one after a newline (JSON escapes the newline: the string is not
    read off the line as it is), the vantage's own private address, a measured (kept) public
    address, and a public address as a key (keys are never scrubbed)."""
    from probe.model import MTProtoEvidence, MTProtoProbe

    def target(name: str, reason: str, evidence: object = None) -> TargetResult:
        connect = TCPConnect("149.154.167.51", 443, "connection_reset", 0.01)
        check = CheckResult("tcp", False, "connection_reset", 0.01, None, evidence or TCPEvidence([connect]))
        return TargetResult("telegram", name, "149.154.167.51", Verdict.IP_BLOCKED, [check], reason)

    targets = [
        target("plain", "tcp: connection_reset by 149.154.167.51"),
        target("reflected", "block page: your IP 81.2.69.160"),
        target("dashed", "redirect to dsl-81-2-69-160.pppoe.rt.ru"),
        target("escaped", "page:\n2a00:1450:4001:80b::200e said so"),
        target("escaped-kept", 'said "149.154.167.51"'),
        target("own", "bound to 10.1.2.3"),
        target("key", "", MTProtoEvidence([MTProtoProbe("149.154.167.51", 443, "obfuscated2", False, "eof_error")], {"81.2.69.160": False})),
    ]
    return VantageResult("v", "ip_blocked", [ServiceResult("telegram", Verdict.IP_BLOCKED, targets)], [], T0, 0.5)


def test_the_lines_are_the_records_encoded_whether_scrubbed_or_not() -> None:
    from test_evidence_ooni import _round

    from probe.config import Vantage
    from probe.evidence.archive import encoded_records

    vantage = Vantage(name="v", source_address="10.1.2.3")
    rounds = [_revealing_round(), *(_round(index, verdict) for index, verdict in enumerate(Verdict))]
    for result in rounds:
        assert list(encoded_records(result, vantage)) == [encode(record) for record in records(result, vantage)]
    lines = {json.loads(line)["target"]: line.decode() for line in encoded_records(_revealing_round(), vantage)}
    assert "81.2.69.160" not in lines["reflected"] and "81-2-69-160" not in lines["dashed"]
    assert "2a00:1450" not in lines["escaped"] and "10.1.2.3" not in lines["own"]
    assert SCRUBBED in lines["reflected"] and "149.154.167.51" in lines["plain"]
    assert '"81.2.69.160":false' in lines["key"]  # a key, kept as the scrub keeps keys
