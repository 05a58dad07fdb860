"""Every coroutine the GUI starts goes through ``TaskRunner``: it keeps a reference (so
the task is not garbage-collected), logs and surfaces its exception, and cancels what is
left at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from PySide6.QtCore import QObject, Signal

from ..keys import KeysError
from ..storage.base import StorageError
from ..sync.stopping import stop_tasks
from ..sync.writer import RoomError

log = logging.getLogger("bucket_chat.gui")

# Errors whose message is written for the user; anything else is a bug, shown as such.
EXPECTED = (StorageError, RoomError, KeysError, ValueError, OSError)


class TaskRunner(QObject):
    failed = Signal(str, str)  # what was being done, the message for the user

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, what))
        return task

    def _done(self, task: asyncio.Task[Any], what: str) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if isinstance(exc, EXPECTED):
            log.warning("%s failed: %s", what, exc)
            self.failed.emit(what, str(exc))
        else:
            log.error("%s failed", what, exc_info=exc)
            self.failed.emit(what, f"Unexpected error ({type(exc).__name__}): {exc}")

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def shutdown(self) -> None:
        """Cancel what is still running and wait for it to end. The caller's own
        cancellation is raised (awaiting each task under ``suppress(CancelledError)``
        absorbed it too: a quit cancelled meanwhile went on as if not asked to stop)."""
        tasks = list(self._tasks)
        try:
            await stop_tasks(tasks)
        finally:
            self._tasks.difference_update(tasks)
