"""Why a measuring point is offline (or under an allowlist), in words a volunteer can act on.

The judge has decided already (`vantage_offline`, `allowlist`) from the control sites; this reads
the same control sites' first failing steps and names the likely cause and what to check: no
network at all, DNS, connections, an interceptor (antivirus, proxy, captive portal) or a
sign-in page. It decides nothing and changes no verdict: it is the page's explanation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from probe import failures
from probe.config import Target
from probe.model import CheckResult, TargetResult, VantageResult, VantageVerdict
from probe.status_texts import Reason

_NO_NETWORK = frozenset({failures.NETWORK_UNREACHABLE, failures.HOST_UNREACHABLE})
_INTERCEPTED = frozenset({failures.SSL_UNKNOWN_AUTHORITY, failures.SSL_INVALID_HOSTNAME, failures.SSL_INVALID_CERTIFICATE})
_PRECEDENCE = ("no_network", "intercepted", "portal", "dns", "connect", "other")  # ties: the most telling first


@dataclass(frozen=True)
class Cause:
    """The likely cause (a sentence), what to check, and each control site's first failure."""

    kind: str
    reason: Reason
    advice: Reason
    sites: tuple[Reason, ...]
    keyed: tuple[Reason, ...] = ()  # under an allowlist: what it follows, per address family (the judge's)


def cause_of(result: VantageResult, classes: Mapping[str, str]) -> Cause | None:
    """The cause behind an offline or allowlist verdict (None for an online point).

    ``classes``: each control target's class (`international`, `domestic`, `yardstick`); the
    yardsticks never count, as for the verdict. Under an allowlist only the international sites
    are read (the domestic ones pass)."""
    if result.verdict == VantageVerdict.OK:
        return None
    wanted = ("international",) if result.verdict == VantageVerdict.ALLOWLIST else ("international", "domestic")
    failing = [(t, _first_failure(t)) for t in result.controls if classes.get(t.target, "international") in wanted]
    failing_steps = [(t, c) for t, c in failing if c is not None]
    sites = tuple(
        Reason("cause.site", {"site": t.target, "check": c.check, "failure": c.failure or "unknown_failure"}) for t, c in failing_steps
    )
    if result.verdict == VantageVerdict.ALLOWLIST:
        first = failing_steps[0][1] if failing_steps else None
        params = {"check": first.check, "failure": first.failure or "unknown_failure"} if first else {}
        keyed = tuple(Reason("allowlist_keyed", {"family": k.family, "keyed_on": Reason(f"keyed_on_{k.keyed_on}")}) for k in result.allowlist if k.keyed_on)
        return Cause("allowlist", Reason("cause.allowlist", params), Reason("advice.allowlist"), sites, keyed)
    kinds = Counter(_kind(c) for _, c in failing_steps)
    if not kinds:  # no control site at all, or none with a failed step (the round was cut short)
        return Cause("other", Reason("cause.unknown"), Reason("advice.no_network"), sites)
    kind = max(kinds, key=lambda k: (kinds[k], -_PRECEDENCE.index(k)))
    example = next(c for _, c in failing_steps if _kind(c) == kind)
    params = {"check": example.check, "failure": example.failure or "unknown_failure"}
    if kind == "other":
        return Cause(kind, Reason("cause.other", {"sites": list(sites)}), Reason("advice.connect"), sites)
    advice = "advice.connect" if kind == "connect" else f"advice.{kind}"
    return Cause(kind, Reason(f"cause.{kind}", params), Reason(advice), sites)


def _first_failure(target: TargetResult) -> CheckResult | None:
    return next((c for c in target.checks if not c.ok), None)


def _kind(check: CheckResult) -> str:
    failure = (check.failure or "").partition(":")[0]
    if failure in _NO_NETWORK and check.check in ("dns", "tcp"):
        return "no_network"
    if check.check == "dns":
        return "dns"
    if check.check == "tcp":
        return "connect"
    if check.check == "tls" and failure in _INTERCEPTED:
        return "intercepted"
    if check.check in ("tls", "http") and failure in failures.INTERFERENCE:
        return "connect"  # cut, reset or silent: nothing answered in the site's place
    if check.check == "http":
        return "portal"  # an answer that is not the site's: a sign-in page, a filter's page
    if check.check == "tls":
        return "connect"
    return "other"


def classes_of(controls: Iterable[Target]) -> dict[str, str]:
    """{control target name: class} from the config's control targets."""
    return {t.name: str(t.control_class) for t in controls}
