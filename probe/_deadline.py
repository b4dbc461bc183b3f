"""`deadline(seconds)`: asyncio.timeout's bound for the operations every target goes through
(each check, each recorded operation, each attempt: seven per target of tcp, tls and http).

The same rule as `asyncio.timeout` (Python 3.11-3.13): at the deadline the task is cancelled, and
that cancellation, when it is ours alone, leaves the block as TimeoutError; a cancellation from
outside goes on as CancelledError. What it leaves out is what a target never uses: the state
machine, `reschedule`, `expired()`, `when()`, re-entry checks (about a third of its cost per
block). The deadline is fixed when the bound is made, as asyncio's.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["deadline"]


class deadline:  # lower case: used as `async with deadline(...)`, like asyncio.timeout
    __slots__ = ("_cancelling", "_expired", "_handle", "_loop", "_task", "_when")

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._when = self._loop.time() + seconds
        self._expired = False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline bounds a task")
        self._task = task
        self._cancelling = task.cancelling()
        loop = self._loop
        # As asyncio's: a deadline already past cancels at the loop's next turn.
        self._handle = loop.call_soon(self._on_deadline) if self._when <= loop.time() else loop.call_at(self._when, self._on_deadline)

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        self._handle.cancel()
        if self._expired and self._task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
            raise TimeoutError from exc  # no other cancellation came meanwhile: this one is ours

    def _on_deadline(self) -> None:
        self._task.cancel()
        self._expired = True
