"""The confirmation round (schedule.confirm_after_seconds): a service whose verdict turns into a
block is measured once more shortly after the round, and that round is published like any other,
so that the alert rules' "two consecutive blocked rounds" hold (or not) long before the next
scheduled round. The real runner against real loopback servers; the monitor's scheduled rounds are
started by hand (no scheduler), and every wait is for an event, not for a time."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from msgreach_helpers import free_port
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from probe import config as config_module
from probe.config import ConfigError
from probe.metrics import registry_for
from probe.service import Monitor, merge_confirmation, new_blocks

LOOPBACK = "127.0.0.1"




class Listener:
    """A TCP listener on loopback that counts the connections it accepted; can come and go."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.accepted = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> Listener:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            writer.close()

        self.server = await asyncio.start_server(accept, LOOPBACK, self.port, reuse_address=True)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


def _config(directory: Path, control: Listener, flaky_port: int, steady: Listener, *, confirm_after: float = 0.5):
    path = directory / "msgreach.yaml"
    path.write_text(
        "vantages: [{name: v1, country: XX, asn: '64500', resolvers: [system]}]\n"
        f"controls: [{{name: self, host: {LOOPBACK}, ports: [{control.port}], checks: [tcp]}}]\n"
        f"schedule: {{interval_seconds: 3600, jitter_seconds: 0, retries: 0, confirm_after_seconds: {confirm_after}, timeouts: {{tcp: 2}}}}\n"
        "services:\n"
        f"  - {{name: flaky, targets: [{{name: gate, host: {LOOPBACK}, ports: [{flaky_port}], checks: [tcp]}}]}}\n"
        f"  - {{name: steady, targets: [{{name: web, host: {LOOPBACK}, ports: [{steady.port}], checks: [tcp]}}]}}\n"
    )
    return config_module.load(path)


@contextlib.asynccontextmanager
async def _monitor(tmp_path: Path, servers, **config):
    """A Monitor on the three servers, stopped (and its history closed) whatever the test does."""
    control, flaky, steady = servers
    monitor = Monitor(_config(tmp_path, control, flaky.port, steady, **config), None)
    try:
        yield monitor
    finally:
        await monitor.stop()
        monitor.history.close()


def _verdicts(monitor: Monitor) -> dict[str, str]:
    """What /metrics says now: the verdict at 1 per service."""
    text = generate_latest(registry_for(monitor.state)).decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "msgreach_service_verdict" and sample.value == 1:
                found[sample.labels["service"]] = sample.labels["verdict"]
    return found


def _rounds(monitor: Monitor) -> float:
    text = generate_latest(registry_for(monitor.state)).decode()
    [value] = [s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == "msgreach_rounds_total"]
    return value


async def _confirmations_done(monitor: Monitor) -> None:
    """Wait for the confirmation tasks the monitor started (they end by themselves)."""
    for _ in range(1000):
        pending = [t for t in monitor._rounds if not t.done()]
        if not pending:
            return
        await asyncio.gather(*pending, return_exceptions=True)
    raise AssertionError("confirmation tasks kept coming")


@pytest.fixture
async def servers():
    control, steady = await Listener().start(), await Listener().start()
    flaky = Listener()  # not listening yet: connections to it are refused
    yield control, flaky, steady
    for listener in (control, flaky, steady):
        await listener.stop()


async def test_a_new_block_is_confirmed_by_an_early_round_of_that_service_only(tmp_path, servers):
    control, flaky, steady = servers
    async with _monitor(tmp_path, servers) as monitor:
        await monitor.round("v1")  # a scheduled round: the gate refuses, the service is blocked
        first = _verdicts(monitor)
        assert first["flaky"] != "ok" and first["steady"] == "ok", first
        assert [t for t in monitor._rounds if not t.done()], "no confirmation round was scheduled after a new block"
        controls_before, steady_before = control.accepted, steady.accepted

        await _confirmations_done(monitor)

        assert _rounds(monitor) == 2  # published like any round
        assert control.accepted > controls_before  # the controls were measured again (the vantage's verdict)
        assert steady.accepted == steady_before  # only the newly blocked service was
        assert _verdicts(monitor) == first  # still blocked, and the steady service kept its verdict
        latest = monitor.state.latest["v1"]
        assert [s.service for s in latest.services] == ["flaky", "steady"]
        # The confirmation is the vantage's latest round: the rules see a second blocked round.
        assert monitor.state.finished_at["v1"] == latest.started_at + latest.duration_seconds

        await monitor.round("v1")  # the next scheduled round: still blocked, nothing new to confirm
        assert not [t for t in monitor._rounds if not t.done()]
        assert _rounds(monitor) == 3


async def test_a_one_round_flap_is_ok_at_the_confirmation_no_second_blocked_round(tmp_path, servers):
    control, flaky, steady = servers
    async with _monitor(tmp_path, servers) as monitor:
        await monitor.round("v1")
        assert _verdicts(monitor)["flaky"] != "ok"
        await flaky.start()  # the block was a one-round flap: the gate answers again
        await _confirmations_done(monitor)
        assert flaky.accepted >= 1  # the confirmation measured it
        assert _rounds(monitor) == 2
        assert _verdicts(monitor) == {"flaky": "ok", "steady": "ok"}
        # The status page's history has the flap as a change and back (the confirmation was recorded).
        changes = [verdict for _, verdict in reversed(monitor.history.summary("v1", "flaky").changes)]
        assert changes[-1] == "ok" and len(changes) == 2, changes
        assert [v for _, v in monitor.history.summary("v1", "steady").changes] == ["ok"]
        # A block that comes back after the flap is new again: confirmed again.
        await flaky.stop()
        await monitor.round("v1")
        assert [t for t in monitor._rounds if not t.done()]
        await _confirmations_done(monitor)
        assert _rounds(monitor) == 4


async def test_no_confirmation_when_turned_off(tmp_path, servers):
    control, flaky, steady = servers
    async with _monitor(tmp_path, servers, confirm_after=0) as monitor:
        await monitor.round("v1")
        assert _verdicts(monitor)["flaky"] != "ok"
        assert not [t for t in monitor._rounds if not t.done()]
        assert _rounds(monitor) == 1


async def test_a_scheduled_round_that_comes_first_replaces_the_confirmation(tmp_path, servers):
    control, flaky, steady = servers
    async with _monitor(tmp_path, servers, confirm_after=0.2) as monitor:
        await monitor.round("v1")
        await monitor.round("v1")  # before the confirmation's delay is over
        await _confirmations_done(monitor)
        assert _rounds(monitor) == 2  # the confirmation stood down


def test_which_services_are_confirmed():
    from probe.model import ServiceResult, VantageResult, VantageVerdict, Verdict

    def result(**verdicts: Verdict) -> VantageResult:
        return VantageResult("v", VantageVerdict.OK, [ServiceResult(n, v, []) for n, v in verdicts.items()], [], 0.0, 1.0)

    before = result(a=Verdict.OK, b=Verdict.IP_BLOCKED, c=Verdict.DOWN, d=Verdict.VANTAGE_OFFLINE, e=Verdict.OK)
    now = result(a=Verdict.DNS_BLOCKED, b=Verdict.SNI_BLOCKED, c=Verdict.PARTIAL, d=Verdict.TLS_BLOCKED, e=Verdict.DOWN, f=Verdict.THROTTLED)
    # new blocks: from ok, down or offline, and a service seen for the first time; a block that
    # changes technique is not new (it is sustained already), a non-block never is.
    assert new_blocks({s.service: s.verdict for s in before.services}, now) == ["a", "c", "d", "f"]
    assert new_blocks(None, now) == ["a", "b", "c", "d", "f"]
    merged = merge_confirmation(before, result(a=Verdict.OK))
    assert [(s.service, s.verdict) for s in merged.services] == [
        ("a", Verdict.OK), ("b", Verdict.IP_BLOCKED), ("c", Verdict.DOWN), ("d", Verdict.VANTAGE_OFFLINE), ("e", Verdict.OK)
    ]
    assert merged.started_at == 0.0 and merged.duration_seconds == 1.0


@pytest.mark.parametrize(("schedule", "error"), [
    ("{interval_seconds: 60, confirm_after_seconds: 60}", "must be shorter than interval_seconds"),
    ("{interval_seconds: 60, confirm_after_seconds: -1}", "confirm_after_seconds"),
    ("{interval_seconds: 60, confirm_after_seconds: .nan}", "confirm_after_seconds"),
    ("{interval_seconds: 60, confirm_after_seconds: '20'}", "confirm_after_seconds"),
])
def test_confirm_after_seconds_is_validated(tmp_path, schedule, error):
    path = tmp_path / "msgreach.yaml"
    path.write_text(f"schedule: {schedule}\n")
    with pytest.raises(ConfigError, match=error):
        config_module.load(path)


def test_confirm_after_seconds_defaults(tmp_path):
    path = tmp_path / "msgreach.yaml"
    path.write_text("schedule: {interval_seconds: 2}\n")
    assert config_module.load(path).schedule.confirm_delay is None  # the next round comes first
    path.write_text("schedule: {interval_seconds: 60}\n")
    assert config_module.load(path).schedule.confirm_delay == 20
    path.write_text("schedule: {interval_seconds: 60, confirm_after_seconds: 0}\n")
    assert config_module.load(path).schedule.confirm_delay is None
