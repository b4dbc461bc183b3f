"""The opening every helper check shares (udp_stream, circumvention, helper_transfer): the round's
helper abroad the check names, reached through its `Context`; and what the check observed when
it could not measure through it: `NoHelper` when the round has no such helper, the failed
`HelperExchange` when an exchange with it did not complete (the judge reads either as the
monitor's own trouble, never a block)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from probe.checks.context import Context
from probe.helper.client import HelperClient, HelperError
from probe.model import HelperExchange, NoHelper

Evidence = TypeVar("Evidence")


async def via_helper(ctx: Context, name: str | None, measure: Callable[[HelperClient], Awaitable[Evidence]]) -> Evidence | HelperExchange | NoHelper:
    """`measure(client)` with a client of the helper `name` (the first when None), bounded by
    the check's timeout and the round's deadline."""
    client = ctx.helper_client(name)
    if client is None:
        return NoHelper(name)
    try:
        return await measure(client)
    except HelperError as failed:
        return failed.exchange
