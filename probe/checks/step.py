"""One check on one target's context, the runner's way: bounded, never raising (not a check: no NAME).

The runner runs a target's checks through `run_check` (`probe.runner.run_checks`), and so does a
check that measures other hosts itself (`whatsapp_chat` runs `dns` and `tcp` per chat host): one
copy of the step. It lives in the checks package so that a check can use it without importing
the runner (which imports every check).
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import ModuleType

from probe import failures
from probe.checks.base import Context, Params, Skip
from probe.model import CheckResult, Fault, Finding

log = logging.getLogger(__name__)


async def run_check(ctx: Context, module: ModuleType, params: Params | None = None) -> CheckResult | None:
    """Run `module` on `ctx` (its `ctx.timeout` already set) and record the result in
    `ctx.results`; None when the check does not apply (`Skip`). `params`: the target's own
    settings for the check when not given."""
    name: str = module.NAME
    params = params if params is not None else ctx.params_for(name, module.Params)
    started = time.monotonic()
    try:
        # The check bounds its own operations; this outer bound is the guarantee.
        async with asyncio.timeout(ctx.timeout * 3 + 1):
            result = await module.run(ctx, params)
    except Skip:
        return None
    except TimeoutError:
        finding = Finding(module.BLOCK_VERDICT, Fault.UNSEPARATED, "", "the check ran past every bound")
        result = CheckResult(name, False, failures.TIMEOUT, time.monotonic() - started, finding)
    except Exception as exc:  # a bug in a check must not end the round
        log.exception("check %s failed on %s", name, ctx.target.name)
        finding = Finding(module.BLOCK_VERDICT, Fault.MONITOR, "", "the check itself failed (a bug of msgreach)")
        result = CheckResult(name, False, failures.classify(exc), time.monotonic() - started, finding)
    ctx.results.append(result)
    return result
