"""Stopping tasks one started, without swallowing the caller's own cancellation.

Closing something (an engine, a client) or giving up a step (``answer_within``) cancels
the tasks it started and waits for them to end. Their ``CancelledError`` is the stopper's
own doing and is absorbed, and so are their failures (they are being thrown away). The
caller's cancellation is not: awaiting a cancelled task inside
``contextlib.suppress(asyncio.CancelledError)`` absorbed it too, when it arrived while the
stopper waited — the caller went on (a ``NoAnswerError`` raised instead, a close that
carried on to its end) as if nobody had asked it to stop.

Closing is made of steps (stop the tasks, the threads, then the files): ``close_in_turn``
runs every one of them even when the caller is cancelled meanwhile, and raises that
cancellation once all ran — a close cut short left threads, connections and files open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

log = logging.getLogger("bucket_chat.sync")


async def stop_tasks(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until they have all ended; what they raise (their
    cancellation, an error) is dropped. Raises ``CancelledError`` only when the caller
    itself is cancelled meanwhile — at once then: the tasks were told to stop already,
    and a caller that is cancelled does not wait for their end."""
    every = list(tasks)
    pending = [t for t in every if not t.done()]
    for task in pending:
        task.cancel()
    try:
        if pending:
            # ``asyncio.wait`` never raises what the tasks raise, only the caller's own
            # cancellation (and it does not cancel the tasks again when it does).
            await asyncio.wait(pending)
    finally:
        for task in every:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: dropped on purpose, never "never retrieved"


async def close_in_turn(*steps: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``steps`` (each closes one part of ``what``) one after the other, every one
    even when the caller is cancelled meanwhile: a cancellation ends the wait of the step
    it arrives in (its tasks were told to stop), never the closing, and is raised once all
    steps ran. A step that fails is logged; the next one runs all the same."""
    cancelled: asyncio.CancelledError | None = None
    for step in steps:
        try:
            await step()
        except asyncio.CancelledError as exc:
            cancelled = exc  # the caller's (``stop_tasks`` absorbs its tasks' own)
        except Exception:
            log.warning("closing %s: a step failed", what, exc_info=True)
    if cancelled is not None:
        raise cancelled
