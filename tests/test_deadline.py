"""probe._deadline.deadline reads as asyncio.timeout in every case a target meets: its own expiry
is TimeoutError, a cancellation from outside stays CancelledError, nested bounds each answer for
their own expiry, a block that ends in time is left alone, a deadline already past cancels."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from probe._deadline import deadline

Bound = Callable[[float], Any]
BOUNDS = [pytest.param(asyncio.timeout, id="asyncio.timeout"), pytest.param(deadline, id="deadline")]


def _outcome(scenario: Callable[[Bound], Awaitable[str]], bound: Bound) -> str:
    async def main() -> str:
        try:
            return await scenario(bound)
        except BaseException as exc:  # noqa: BLE001 - the outcome is what is compared
            return type(exc).__name__

    return asyncio.run(main())


async def _expires(bound: Bound) -> str:
    async with bound(0.01):
        await asyncio.sleep(5)
    return "finished"


async def _ends_in_time(bound: Bound) -> str:
    async with bound(5):
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)  # nothing fires after the block
    return "finished"


async def _already_past(bound: Bound) -> str:
    async with bound(-1):
        await asyncio.sleep(5)
    return "finished"


async def _inner_expires(bound: Bound) -> str:
    async with bound(5):
        try:
            async with bound(0.01):
                await asyncio.sleep(5)
        except TimeoutError:
            return "inner"
    return "finished"


async def _outer_expires(bound: Bound) -> str:
    try:
        async with bound(0.01):
            async with bound(5):
                await asyncio.sleep(5)
    except TimeoutError:
        return "outer"
    return "finished"


async def _cancelled_from_outside(bound: Bound) -> str:
    async def body() -> None:
        async with bound(5):
            await asyncio.sleep(5)

    task = asyncio.ensure_future(body())
    await asyncio.sleep(0.01)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    return "finished"


async def _error_inside(bound: Bound) -> str:
    async with bound(5):
        raise ConnectionResetError


SCENARIOS = {
    _expires: "TimeoutError",
    _ends_in_time: "finished",
    _already_past: "TimeoutError",
    _inner_expires: "inner",
    _outer_expires: "outer",
    _cancelled_from_outside: "cancelled",
    _error_inside: "ConnectionResetError",
}


@pytest.mark.parametrize("bound", BOUNDS)
@pytest.mark.parametrize("scenario", list(SCENARIOS), ids=lambda s: s.__name__.strip("_"))
def test_deadline_reads_as_asyncio_timeout(scenario: Callable[[Bound], Awaitable[str]], bound: Bound) -> None:
    assert _outcome(scenario, bound) == SCENARIOS[scenario]
