"""The engine's state worker: one thread, two lanes, never a reordered room.

Every change to a room's state (its ledger, its audit, its row in the index) happens on
this one thread, so no lock is needed around it and a reader of a published snapshot
never sees half a change. What a person waits for (opening a room, a message that just
arrived, a send, a confirmation) goes in the *interactive* lane; the back-fill of a long
history goes in the *background* lane, cut by the engine into short jobs. The thread
always takes the oldest interactive job first, so an interactive job waits at most for
the one background job that is running, never for the queue behind it.

Jobs of one room are never reordered: an interactive job for a room promotes that room's
queued background jobs to the interactive lane, in its place (they run just before it,
in their order; interactive jobs submitted earlier still go first). The engine relies on
that: a room's jobs see its state in the order they were submitted.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Job:
    room: str | None  # None: jobs that touch no room's state (cursors, pins); FIFO too
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    urgent: int | None  # when it joined the interactive lane (None: background)
    future: Future[Any] = field(default_factory=Future)


class StateWorker:
    """A single worker thread with an interactive and a background lane (see the module)."""

    def __init__(self, name: str) -> None:
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._closed = False
        self._urgent = 0  # counts jobs joining the interactive lane
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(
        self,
        fn: Callable[..., T],
        *args: Any,
        room: str | None = None,
        interactive: bool = False,
    ) -> Future[T]:
        with self._cond:
            if self._closed:
                raise RuntimeError("the engine's state worker is shut down")
            urgent = None
            if interactive:
                self._urgent += 1
                urgent = self._urgent
                for queued in self._queue:  # keep the room's order: its queue goes first
                    if queued.room == room and queued.urgent is None:
                        queued.urgent = urgent
            job = _Job(room, fn, args, urgent)
            self._queue.append(job)
            self._cond.notify()
        return job.future

    async def run(
        self,
        fn: Callable[..., T],
        *args: Any,
        room: str | None = None,
        interactive: bool = False,
    ) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args, room=room, interactive=interactive))

    def pending(self) -> int:
        """Jobs waiting (not the running one); for tests and diagnostics."""
        with self._cond:
            return len(self._queue)

    def _next(self) -> _Job | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            best: tuple[int, int] | None = None
            for i, job in enumerate(self._queue):
                if job.urgent is not None and (best is None or job.urgent < best[0]):
                    best = (job.urgent, i)
            if best is None:
                return self._queue.popleft()
            job = self._queue[best[1]]
            del self._queue[best[1]]
            return job

    def _work(self) -> None:
        while (job := self._next()) is not None:
            if not job.future.set_running_or_notify_cancel():
                continue  # its caller gave up waiting
            try:
                result = job.fn(*job.args)
            except BaseException as exc:  # handed to the caller, like an executor does
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)

    def shutdown(self, *, wait: bool = True, cancel_futures: bool = False) -> None:
        with self._cond:
            self._closed = True
            if cancel_futures:
                while self._queue:
                    self._queue.popleft().future.cancel()
            self._cond.notify_all()
        if wait and self._thread is not threading.current_thread():
            self._thread.join()
