"""`kill -9` of a running `msgreach run` mid-round never damages earlier evidence lines.

The monitor runs inside a fresh network namespace `mrf-crash-<pid>` that has only loopback (so
nothing it does can leave the machine), measuring local servers in the same namespace, a round
every few seconds with rotation on. It is killed with SIGKILL several times: at random moments
(mid-round) and the instant the archive starts growing (mid-append). After each kill, everything
the archive held just before is still there byte for byte, every line but a torn last one parses,
the bound holds, and the restarted monitor carries on.

The test is about the archive, not about verdicts: on a busy machine a round may be slow and a
target may read anything; what must hold is that every line written is whole and kept. Deadlines
are generous (a shared 2-core CI machine), and nothing asserts how fast a round is.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mrfkit import HERE, msgreach_argv, msgreach_env, netns, wait_for

from probe.evidence import SCHEMA, archive_files, read
from probe.model import TARGET_VERDICTS

pytestmark = [pytest.mark.netns, pytest.mark.slow]

TARGETS_PER_SERVICE = 12
MAX_BYTES = 192 * 1024
KEEP_FILES = 3
INTERVAL = 2  # seconds between rounds
PATIENCE = 180  # seconds to wait for a round under load


def _config(directory: Path) -> Path:
    targets = []
    for index in range(TARGETS_PER_SERVICE):
        port = 8080 if index % 4 else 8081  # every fourth target is refused: evidence of failure
        targets.append(f"{{name: t{index}, host: web{index}.mrf.test, ports: [{port}], checks: [dns, tcp, http], params: {{http: {{scheme: http}}}}}}")
    body = "\n".join(f"      - {t}" for t in targets)
    config = directory / "msgreach.yaml"
    config.write_text(
        textwrap.dedent(
            """
            vantages:
              - name: crash
                resolvers: ["127.0.0.1:5353", {address: "127.0.0.1:5354", control: true}]
                bogon_exempt: ["127.0.0.0/8"]
            controls: [{name: ctl, host: 127.0.0.1, ports: [8080], checks: [tcp]}]  # the web server
            schedule: {interval_seconds: %d, jitter_seconds: 0, concurrency: 4, retries: 0, round_deadline_seconds: 120, timeouts: {dns: 20, tcp: 20, http: 30}}
            evidence: {path: state/evidence.jsonl, max_bytes: %d, keep_files: %d}
            services:
              - name: alpha
                targets:
            %s
              - name: beta
                targets:
            %s
            """
        )
        % (INTERVAL, MAX_BYTES, KEEP_FILES, body, body)
    )
    return config


def _snapshot(path: Path) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as handle:
            return handle.read(), os.fstat(handle.fileno()).st_size
    except FileNotFoundError:
        return b"", 0


def _complete_rounds(path: Path) -> set[str]:
    """Round start times with every target's line in the archive. (Counting lines would not do:
    at its bound the archive drops an old round for every new one.)"""
    counts: dict[str, int] = {}
    for item in read(path).records:
        counts[item["time"]] = counts.get(item["time"], 0) + 1
    return {time for time, count in counts.items() if count >= 2 * TARGETS_PER_SERVICE}


def _check_files(path: Path) -> None:
    files = archive_files(path)
    assert len(files) <= KEEP_FILES, files
    for file in files:
        assert file.stat().st_size <= MAX_BYTES, (file, file.stat().st_size)


def test_kill_9_mid_round_keeps_every_earlier_line(tmp_path: Path, procs) -> None:
    config = _config(tmp_path)
    archive = tmp_path / "state" / "evidence.jsonl"
    servers = HERE / "mrf_servers.py"
    rng = random.Random(os.getpid())
    stats = {"kills": 0, "mid_append": 0, "partial_rounds": 0, "torn": 0}
    with netns("crash") as ns:
        procs.start("web", [sys.executable, str(servers), "http", "--port", "8080", "--delay-max", "0.25"], netns=ns.name)
        procs.start("dns", [sys.executable, str(servers), "dns", "--port", "5353", "--answer", "127.0.0.1"], netns=ns.name)
        procs.start("dns-control", [sys.executable, str(servers), "dns", "--port", "5354", "--answer", "127.0.0.1"], netns=ns.name)
        time.sleep(0.5)
        for iteration in range(8):
            monitor = procs.start(f"msgreach-{iteration}", msgreach_argv("--log-level", "INFO", "run", "--config", str(config), "--listen", "127.0.0.1:9910"), netns=ns.name, env=msgreach_env())
            previous = _complete_rounds(archive)  # the live file may be missing: killed mid-rotation

            def grown() -> bool:
                assert monitor.alive(), monitor.text()[-3000:]
                return bool(_complete_rounds(archive) - previous)

            wait_for(grown, PATIENCE, what="a round in the archive")
            if iteration % 2:
                time.sleep(rng.uniform(0, 1.5 * INTERVAL))  # somewhere in a round
                before, _ = _snapshot(archive)
            else:
                before, size = _snapshot(archive)  # then kill the instant the next append starts
                deadline = time.monotonic() + PATIENCE
                while time.monotonic() < deadline:
                    try:
                        if os.stat(archive).st_size != size:
                            stats["mid_append"] += 1
                            break
                    except FileNotFoundError:  # mid-rotation
                        stats["mid_append"] += 1
                        break
            os.kill(monitor.popen.pid, signal.SIGKILL)
            assert monitor.popen.wait(60) == -signal.SIGKILL
            stats["kills"] += 1

            # Everything that was there before the kill is still there, byte for byte: in the
            # live file, or in F.1 if that append rotated it.
            candidates = [archive, archive.with_name(archive.name + ".1")]
            assert any(c.exists() and c.read_bytes().startswith(before) for c in candidates), f"kill {iteration}: earlier lines changed"
            _check_files(archive)
            reading = read(archive)
            data = archive.read_bytes() if archive.exists() else b""  # killed between rotation and the new file
            if data and not data.endswith(b"\n"):
                stats["torn"] += 1
            assert reading.skipped <= stats["torn"], "only torn last lines may fail to parse"
            rounds: dict[str, int] = {}
            for item in reading.records:
                rounds[item["time"]] = rounds.get(item["time"], 0) + 1
            stats["partial_rounds"] = sum(1 for count in rounds.values() if count < 2 * TARGETS_PER_SERVICE)

        # The last restart: it ends any torn fragment, appends whole rounds, stops cleanly.
        monitor = procs.start("msgreach-final", msgreach_argv("run", "--config", str(config), "--listen", "127.0.0.1:9910"), netns=ns.name, env=msgreach_env())
        previous = _complete_rounds(archive)
        wait_for(lambda: bool(_complete_rounds(archive) - previous), PATIENCE, what="a round after the last restart")
        assert procs.stop(monitor, timeout=60) == 0  # SIGTERM, possibly mid-round: a clean exit
        procs.stop_all()
    _check_files(archive)
    final = read(archive)
    assert final.skipped <= stats["torn"]
    assert all(line.endswith(b"\n") for line in archive.read_bytes().splitlines(keepends=True))
    # Whole rounds of whole records: every target of both services and the control, each line a complete record
    # (whatever the verdicts a loaded machine produced).
    expected = {(service, f"t{index}") for service in ("alpha", "beta") for index in range(TARGETS_PER_SERVICE)} | {("controls", "ctl")}
    assert {(r["service"], r["target"]) for r in final.records} == expected
    assert all(r["schema"] == SCHEMA and "verdict" in r and "test_keys" in r for r in final.records)
    assert {r["verdict"] for r in final.records} <= set(TARGET_VERDICTS)
    print(f"crash test: {stats}, {len(final.records)} records in {len(archive_files(archive))} file(s)")
