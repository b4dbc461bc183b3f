"""`msgreach run` in the lab, read through /metrics: no false positive on a bad line over 20
consecutive rounds, and a block switched on (and off) mid-run shows (and clears) in a running
monitor. How fast is measured by bench/alert_latency.py, not asserted here: a shared 2-core CI
box gives no test a bound on time (the lab report records what each run saw)."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from .harness import Monitor, record, value, verdicts
from .lab import Lab

pytestmark = pytest.mark.lab

VANTAGE = "lab-client"


def _rounds(samples) -> int:
    return int(value(samples, "msgreach_rounds_total", vantage=VANTAGE) or 0)


def _failures(samples) -> Counter:
    out = Counter()
    for s in samples:
        if s.name == "msgreach_check_failures_total" and s.value:
            out[(s.labels["service"], s.labels["target"], s.labels["check"], s.labels["failure"])] = int(s.value)
    return out


def test_lossy_line_twenty_rounds_all_ok(clean_lab: Lab) -> None:
    """5% loss each way, 100 ms ± 50 ms per packet each way, no censorship: 20 consecutive rounds,
    every target, service and control `ok`, the vantage online. With the engine's default
    timeouts (what volunteers run)."""
    lab = clean_lab
    # Rounds back to back (a round on this line takes ~20 s; interval 1 s starts the next one as
    # soon as the last ends), the engine's default timeouts, one confirmation retry.
    interval, rounds_wanted, round_bound = 1, 20, 45
    config = lab.write_config(
        lab.dir / "lossy.yaml", interval=interval, deadline=round_bound, retries=1,
        timeouts={"dns": 5, "tcp": 5, "tls": 8, "http": 10, "default": 15},
    )
    lab.scenario("lossy", True)
    seen_rounds, bad = 0, []
    with Monitor(lab, config, port=19911) as monitor:
        start = _rounds(monitor.metrics())
        deadline = time.monotonic() + rounds_wanted * round_bound + 30
        while seen_rounds < rounds_wanted and time.monotonic() < deadline:
            samples = monitor.metrics()
            count = _rounds(samples) - start
            if count > seen_rounds:
                seen_rounds = count
                off = {key: v for key, v in verdicts(samples).items() if v != "ok"}
                off |= {key: v for key, v in verdicts(samples, "msgreach_service_verdict").items() if v != "ok"}
                if value(samples, "msgreach_vantage_online", vantage=VANTAGE) != 1:
                    off[("vantage",)] = "offline"
                if off:
                    bad.append((seen_rounds, off))
            time.sleep(0.5)
        failures = _failures(monitor.metrics())
        log = monitor.log_tail()
    lab.scenario("lossy", False)
    record("lossy", f"{seen_rounds} rounds", "ok", None, "ok" if not bad else f"{len(bad)} round(s) not ok",
           "; ".join(f"round {n}: {off}" for n, off in bad)[:500])
    assert seen_rounds >= rounds_wanted, f"only {seen_rounds} rounds in time; log:\n{log}"
    assert not bad, (
        f"{len(bad)} of {seen_rounds} rounds were not all ok on a lossy line:\n"
        + "\n".join(f"  round {n}: {off}" for n, off in bad)
        + f"\nfailure counters (service, target, check, failure): {dict(failures)}"
    )


def _wait_for(monitor: Monitor, key: tuple[str, str], verdict: str, limit: float) -> float:
    """Seconds until /metrics shows `verdict` for (service, target); fails after `limit`."""
    started = time.monotonic()
    last = None
    while time.monotonic() - started < limit + 10:
        last = verdicts(monitor.metrics()).get(key)
        if last == verdict:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{key} still {last!r}, not {verdict!r}, {limit + 10:.0f} s after the switch:\n{monitor.log_tail()}")


@pytest.mark.parametrize(
    "scenario, selector, key, verdict, check",
    [
        # Fails at once (RST): the contract's bound, one interval plus the check timeout.
        ("sni-rst", "whatsapp/web", ("whatsapp", "web"), "sni_blocked", "tls"),
        # Fails by timeout: the retry that confirms a non-ok verdict costs one more timeout.
        ("syn-drop", "signal/cdn", ("signal", "cdn"), "ip_blocked", "tcp"),
    ],
)
def test_a_block_switched_on_mid_run_shows_and_clears(clean_lab: Lab, scenario: str, selector: str, key: tuple[str, str], verdict: str, check: str) -> None:
    lab = clean_lab
    interval, retries = 5, 1
    timeouts = {"dns": 2, "tcp": 2, "tls": 2, "http": 3}
    config = lab.write_config(lab.dir / "timing.yaml", interval=interval, deadline=15, retries=retries, timeouts=timeouts)
    timeout = timeouts[check]
    bound = interval + timeout * (1 if scenario == "sni-rst" else retries + 1)  # the contract's, on an idle machine
    # What the test waits for is liveness, not speed: several rounds' worth, so that a loaded
    # machine's slow rounds never fail it, while a monitor that never shows the change does.
    patience = 4 * bound
    with Monitor(lab, config, port=19912) as monitor:
        _wait_for(monitor, key, "ok", patience)
        # Switch at a random point of the cycle: just after a round started is the worst case.
        lab.scenario(scenario, True, [selector])
        on = _wait_for(monitor, key, verdict, patience)
        lab.scenario(scenario, False)
        off = _wait_for(monitor, key, "ok", patience)
    record(f"{scenario} (run)", selector, f"{verdict}, then ok (contract bound {bound} s)", None, f"{verdict} after {on:.1f} s, ok after {off:.1f} s")
