"""The GUI's ``TaskRunner``: shutting down stops what it started, and a quit that is
itself cancelled meanwhile is cancelled (awaiting each task under
``suppress(CancelledError)`` absorbed the caller's cancellation too)."""

from __future__ import annotations

import asyncio
from typing import Any

from bucket_chat_desktop.gui.tasks import TaskRunner


def test_shutdown_stops_the_tasks_and_a_cancelled_shutdown_is_cancelled(
    qloop: Any, qtbot: Any
) -> None:
    runner = TaskRunner()
    release = asyncio.Event()
    winding_down = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            winding_down.set()
            await release.wait()  # cleaning up takes a while
            raise

    async def quick() -> None:
        await asyncio.Event().wait()

    runner.start(slow_to_stop(), "slow")
    runner.start(quick(), "quick")
    quitting = asyncio.ensure_future(runner.shutdown())
    qtbot.waitUntil(winding_down.is_set, timeout=2000)
    quitting.cancel()  # the caller gives up waiting
    qtbot.waitUntil(quitting.done, timeout=2000)
    assert quitting.cancelled()
    release.set()
    qtbot.waitUntil(lambda: runner.running == 0, timeout=2000)

    runner.start(quick(), "again")
    done = asyncio.ensure_future(runner.shutdown())
    qtbot.waitUntil(done.done, timeout=2000)
    assert done.result() is None and runner.running == 0


def test_a_failure_while_stopping_is_reported_not_raised(qloop: Any, qtbot: Any) -> None:
    runner = TaskRunner()
    failures: list[tuple[str, str]] = []
    runner.failed.connect(lambda what, msg: failures.append((what, msg)))

    async def fails_on_cancel() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise OSError("disk gone") from None

    runner.start(fails_on_cancel(), "Saving")
    done = asyncio.ensure_future(runner.shutdown())
    qtbot.waitUntil(done.done, timeout=2000)
    assert done.result() is None
    assert failures == [("Saving", "disk gone")]
