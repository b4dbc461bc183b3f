"""Measure one check on one target's context, the runner's way: bounded, never raising; the
judge reads what it observed at once (not a check: no NAME).

The runner runs a target's checks through `measure` (`probe.runner.run_checks`), and so does a
check that measures other hosts itself (`whatsapp_chat` runs `dns` and `tcp` per chat host): one
copy of the step. It lives in the checks package so that a check can use it without importing
the runner (which imports every check).
"""

from __future__ import annotations

import logging
import time
from types import ModuleType

from probe import failures, judge
from probe._deadline import deadline
from probe.checks.context import Context, Params, Skip
from probe.model import CheckResult, Unfinished

log = logging.getLogger(__name__)


async def measure(ctx: Context, module: ModuleType, params: Params | None = None) -> CheckResult | None:
    """Run `module` on `ctx` (its `ctx.timeout` already set), have the judge read its evidence,
    and record the result in `ctx.results`; None when the check does not apply (`Skip`).
    `params`: the target's own settings for the check when not given."""
    name: str = module.NAME
    params = params if params is not None else ctx.params_for(name, module.Params)
    started, t0 = time.monotonic(), ctx.clock.elapsed()
    evidence: object
    try:
        # The check bounds its own operations; this outer bound is the guarantee.
        async with deadline(ctx.timeout * 3 + 1):
            evidence = await module.run(ctx, params)
    except Skip:
        return None
    except TimeoutError:
        evidence = Unfinished("overran", failures.TIMEOUT)
    except Exception as exc:  # a bug in a check must not end the round
        log.exception("check %s failed on %s", name, ctx.target.name)
        evidence = Unfinished("crashed", failures.classify(exc))
    result = judge.analyse(name, evidence, ctx.round_facts(), time.monotonic() - started)
    result.t0 = t0
    ctx.results.append(result)
    return result
