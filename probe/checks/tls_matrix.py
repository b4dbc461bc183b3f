"""The tls check's ClientHello matrix (issue 20): a target measured with its real client's hello.

A target with a `client` (configs/services/*.yaml) is measured with the hello that client sends
(probe.fingerprint.CLIENTS) as well as Python's. Only when the real client's hello fails does the
matrix run, to the same address with the same name: the other hellos, the real hello with its
X25519MLKEM768 key share toggled, the real hello split across two TCP segments, and the decoy
SNI with the real hello; then, before any keyed claim, the alternated repeats: the real hello
again, and the attempt that passed again (real, other, real, other). Everything is bounded by the
check's own outer bound: the real hello gets at most the check's timeout, the matrix and each
repeat half of it, and what no longer fits is not tried (no repeats: no keyed claim). The judge
(probe.judge.tls) reads it all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine

from probe import failures, fingerprint
from probe.checks.context import Context
from probe.judge.rules import is_monitor_failure
from probe.judge.tls import VERIFY_FAILURES, repeat_partner
from probe.model import FingerprintedHandshake, TLSEvidence, TLSHandshake

_GRACE_SECONDS = 1.0  # past an attempt's own timeout (a thread to get, a tap to close): then it is a timeout
_MIN_ATTEMPT_SECONDS = 1.0  # less time left than this (or half the check's timeout, if less): the attempt is not made


class Clock:
    """What is left of the check's outer bound (probe.checks.measure: 3 x timeout + 1 s), from
    the check's start (the loop's time)."""

    def __init__(self, ctx: Context, started: float, *, tapped: bool = False) -> None:
        self._loop = asyncio.get_running_loop()
        # A tapped attempt may run its grace past its bound: the last one still ends inside the outer bound.
        self._end = started + ctx.timeout * 3 - (min(_GRACE_SECONDS, ctx.timeout / 2) if tapped else 0.0)
        self._timeout = ctx.timeout

    def bound(self, share: float = 1.0) -> float | None:
        """Seconds for the next attempt: `share` of the check's timeout at most."""
        left = min(self._timeout * share, self._end - self._loop.time())
        return left if left >= min(_MIN_ATTEMPT_SECONDS, self._timeout / 2) else None


async def _attempt(ctx: Context, address: str, port: int, sni: str, hello: str, timeout: float, *, pq: bool | None = None, split: bool = False) -> TLSHandshake:
    attempt = fingerprint.hello_handshake(
        ctx.route, address, port, sni, hello, pq=pq, split=split, verify=sni != ctx.decoy_sni,
        ca_bundles=ctx.ca_bundles(), replace_trust=ctx.replace_trust(), timeout=timeout,
    )
    try:
        async with asyncio.timeout(timeout + _GRACE_SECONDS):
            return await attempt
    except TimeoutError:
        return TLSHandshake(address, port, sni, failures.TIMEOUT, duration_seconds=round(timeout + _GRACE_SECONDS, 4), hello=hello, split=split)


async def as_the_client(
    ctx: Context, clock: Clock, client: str, python: Coroutine[None, None, None], address: str, port: int, sni: str, evidence: TLSEvidence
) -> None:
    """Python's handshake (`python`, to address:port) and, at the same time, the real client's
    hello to the same endpoint; on the real hello's failure the matrix and the repeats."""
    hello = fingerprint.CLIENTS[client]
    evidence.client = client
    if fingerprint.HELLOS[hello].profile is None:  # desktop_app: Python's hello is the client's
        await python
        real = evidence.handshakes[-1]
        real.hello = "openssl"
    else:
        bound = clock.bound() or min(_MIN_ATTEMPT_SECONDS, ctx.timeout)
        _, real = await asyncio.gather(python, _attempt(ctx, address, port, sni, hello, bound))
        openssl = evidence.handshakes[-1]
        openssl.hello = "openssl"
        evidence.browser = FingerprintedHandshake(real)
        if real.failure is None:
            if openssl.failure is not None:
                ctx.tls_endpoint = None  # the next stages speak Python's hello, which this path cuts
                ctx.close_streams()
                if not is_monitor_failure(openssl.failure):
                    await _repeats_of_a_pass(ctx, clock, real, openssl, evidence)
            return
    if real.failure is None or is_monitor_failure(real.failure) or real.failure in VERIFY_FAILURES:
        return  # passed, no curl-cffi here, or a certificate to judge: nothing for the matrix
    await _matrix(ctx, clock, real, hello, evidence)
    partner = repeat_partner(evidence)
    if partner is not None:
        await _repeats(ctx, clock, real, partner, evidence)


# The extra attempts look for a hello or name that passes: a handshake that passes does so in well
# under half the timeout, so the matrix and the repeats get half (all three then fit the check's
# bound after a real hello that ran to its timeout).
EXTRA_SHARE = 0.5


async def _matrix(ctx: Context, clock: Clock, real: TLSHandshake, hello: str, evidence: TLSEvidence) -> None:
    bound = clock.bound(EXTRA_SHARE)
    if bound is None:
        return
    address, port, sni = real.address, real.port, real.sni
    spec = fingerprint.HELLOS[hello]
    others = [h for h in fingerprint.HELLOS if h != hello and not (h == "openssl" and evidence.handshakes)]
    # The decoy first (the same hello): it starts before the rest when many targets fail at once.
    tries = [_attempt(ctx, address, port, ctx.decoy_sni, hello, bound)]
    tries += [_attempt(ctx, address, port, sni, other, bound) for other in others]
    if spec.profile is not None:  # the key share toggled: what the profile does not do by default
        tries.append(_attempt(ctx, address, port, sni, hello, bound, pq=not spec.pq))
    tries.append(_attempt(ctx, address, port, sni, hello, bound, split=True))
    decoy, *matrix = await asyncio.gather(*tries)
    evidence.matrix = list(matrix)
    evidence.decoy = decoy


async def _repeats(ctx: Context, clock: Clock, real: TLSHandshake, partner: TLSHandshake, evidence: TLSEvidence) -> None:
    """Real, then other, once more: a keyed claim needs both pairs to agree. When the other is
    another hello and the decoy passed too, both are repeated after the real hello, at once: a
    censor that does not reassemble lets a hello through now and then, as its segments fall, and
    the name's claim then has its own second pair (`repeats`: real, other, decoy)."""
    repeats = await _real_again(ctx, clock, real, evidence)
    if repeats is None or repeats[0].failure is None:
        return  # no time, or the real hello passed this time: no claim
    others = [partner]
    if partner is not evidence.decoy and evidence.decoy is not None and evidence.decoy.failure is None:
        others.append(evidence.decoy)
    bound = clock.bound(EXTRA_SHARE)
    if bound is None:
        return
    repeats += await asyncio.gather(*(_again(ctx, other, bound) for other in others))


async def _repeats_of_a_pass(ctx: Context, clock: Clock, real: TLSHandshake, cut: TLSHandshake, evidence: TLSEvidence) -> None:
    """The real hello passed where Python's, with the same name, was cut: real, then Python's,
    once more. A censor that does not reassemble lets a hello through now and then (Chrome's, 2 KB
    with its key share, crosses two segments and may split the name between them): a pass that
    does not hold on its repeat is luck, not reach; a cut that does not hold is a lost packet, not
    a filtered fingerprint (`repeats`: real, other; the judge reads them)."""
    repeats = await _real_again(ctx, clock, real, evidence)
    if repeats is None or repeats[0].failure is not None:
        return  # no time, or the real hello failed this time: no claim either way
    bound = clock.bound(EXTRA_SHARE)
    if bound is None:
        return
    repeats.append(await _again(ctx, cut, bound))


async def _real_again(ctx: Context, clock: Clock, real: TLSHandshake, evidence: TLSEvidence) -> list[TLSHandshake] | None:
    """The repeats begun (`evidence.repeats`): the real hello once more, first. None, and the
    repeats left empty: no time left."""
    evidence.repeats = repeats = []
    bound = clock.bound(EXTRA_SHARE)
    if bound is None:
        return None
    repeats.append(await _again(ctx, real, bound))
    return repeats


async def _again(ctx: Context, model: TLSHandshake, bound: float) -> TLSHandshake:
    assert model.hello is not None
    return await _attempt(ctx, model.address, model.port, model.sni, model.hello, bound, pq=_pq_asked(model), split=bool(model.split))


async def bounded(clock: Clock, attempt: Coroutine[None, None, TLSHandshake], address: str, port: int, sni: str, share: float = 1.0) -> TLSHandshake | None:
    """`attempt` within what is left of the check's bound, `share` of the timeout at most (a
    timeout when it ran out); None, and the attempt never made, when too little is left."""
    bound = clock.bound(share)
    if bound is None:
        attempt.close()
        return None
    try:
        async with asyncio.timeout(bound):
            return await attempt
    except TimeoutError:
        return TLSHandshake(address, port, sni, failures.TIMEOUT, duration_seconds=round(bound, 4))


def _pq_asked(attempt: TLSHandshake) -> bool | None:
    """The key share as the attempt had it, when that was not its profile's default."""
    spec = fingerprint.HELLOS[attempt.hello or "openssl"]
    if spec.profile is None or attempt.pq is None or attempt.pq == spec.pq:
        return None
    return attempt.pq
