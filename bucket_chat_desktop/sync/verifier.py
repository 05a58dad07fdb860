"""Worker processes that decode and verify segments: a cold read on every core.

Threads alone cannot do it: libsodium releases the interpreter lock while it checks a
signature, but decoding JSON, validating and canonicalising an event hold it, and so does
everything the engine's serial worker does with the result. Measured on two cores, a
thread pool read a 100,000-event room at about a third of the raw verify rate of both
cores; the verifying threads waited for the lock most of the time. Here each worker
process decodes and verifies whole segments (``protocol.handover.prepare_packed``) and
sends back a compact result that the engine's process unpacks cheaply.

Failure is contained and said: a worker that dies (killed, out of memory, a crash in a
C library) breaks the pool; every segment it was checking is tried once more, each alone
in a quarantine process so that the one that stops its worker again is told apart from
its neighbours. That one comes back as a reason (the engine notes the segment as unread:
the room's verdict is not final, and the next full pass tries again). The pool is then
started again. A worker raising instead of dying is the same kind of reason, at once.

Workers are started with ``spawn`` on every platform (the same path as on Windows and
macOS, and no fork of a process that runs Qt, asyncio and watchdog threads); a frozen
program must call ``multiprocessing.freeze_support()`` first thing (the PyInstaller entry
points do). They start when first needed and stop after ``IDLE_STOP`` seconds without
work, or when the engine closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..protocol.handover import PackedSegment, prepare_packed

log = logging.getLogger("bucket_chat.sync")

IDLE_STOP = 60.0  # seconds without work before the worker processes are stopped

Work = Callable[[str, bytes, str], PackedSegment]


def _worker_started() -> None:
    """In each worker, once: import what ``prepare_packed`` needs before the first
    segment arrives (it is imported already; this keeps the worker's start in ``warm``)."""
    from ..protocol import audit, event, segment, signing  # noqa: F401


def _nothing() -> None:
    return None


class SegmentVerifier:
    """Decode and verify segments in worker processes. ``await prepare(...)`` gives the
    packed result, or a ``str`` saying why the segment could not be checked."""

    def __init__(self, workers: int, work: Work = prepare_packed) -> None:
        self.workers = max(1, workers)
        self._work = work
        self._pool: ProcessPoolExecutor | None = None
        self._quarantine: ProcessPoolExecutor | None = None
        self._alone = asyncio.Lock()
        self._generation = 0
        self._busy = 0
        self._idle_timer: asyncio.TimerHandle | None = None
        self.restarts = 0  # pools started again after a worker stopped (tests, logs)
        self._closed = False

    @staticmethod
    def _new_pool(workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_started,
        )

    def _executor(self) -> ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("the segment verifier is closed")
        if self._pool is None:
            self._pool = self._new_pool(self.workers)
        return self._pool

    def warm(self) -> None:
        """Start the worker processes now (in the background): a cold read about to
        need them does not wait for their start-up when its first big chunk comes."""
        if self._closed or self._pool is not None:
            return
        pool = self._executor()
        for _ in range(self.workers):
            pool.submit(_nothing)
        self._touch()

    def pids(self) -> list[int]:
        """The worker processes' ids (for tests and diagnostics)."""
        pool = self._pool
        processes: dict[int, Any] = getattr(pool, "_processes", None) or {}
        return [p.pid for p in list(processes.values()) if p.pid is not None]

    async def prepare(self, path: str, data: bytes, room_id: str) -> PackedSegment | str:
        self._busy += 1
        try:
            generation = self._generation
            try:
                return await self._run(self._executor(), path, data, room_id)
            except BrokenProcessPool:
                self._broken(generation)
            except Exception as exc:  # the worker raised: a bug or no memory, said at once
                return self._failed(path, exc)
            # Once more, alone: if the worker stops again, this segment stopped it.
            async with self._alone:
                if self._quarantine is None:
                    self._quarantine = self._new_pool(1)
                try:
                    return await self._run(self._quarantine, path, data, room_id)
                except BrokenProcessPool:
                    self._quarantine.shutdown(wait=False, cancel_futures=True)
                    self._quarantine = None
                    log.warning("%s: the worker process checking it stopped, twice", path)
                    return (
                        "the worker process checking it stopped twice (killed, out of "
                        "memory or crashed); it is tried again on the next full read"
                    )
                except Exception as exc:
                    return self._failed(path, exc)
        finally:
            self._busy -= 1
            self._touch()

    async def _run(
        self, pool: ProcessPoolExecutor, path: str, data: bytes, room_id: str
    ) -> PackedSegment:
        return await asyncio.wrap_future(pool.submit(self._work, path, data, room_id))

    def _broken(self, generation: int) -> None:
        """The pool lost a worker: start a new one (once for all the segments that were
        in it, which each see the break)."""
        if generation != self._generation or self._pool is None:
            return
        self._generation += 1
        self.restarts += 1
        log.warning("a segment-checking worker process stopped; starting the pool again")
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    @staticmethod
    def _failed(path: str, exc: BaseException) -> str:
        log.warning("%s: checking it failed in a worker process: %r", path, exc)
        return f"checking it failed in a worker process ({type(exc).__name__})"

    def _touch(self) -> None:
        """(Re)arm the idle stop: the workers' memory is given back when nothing is read."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        with contextlib.suppress(RuntimeError):  # no running loop (closing)
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(IDLE_STOP, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        self._idle_timer = None
        if self._busy:
            self._touch()
            return
        self._stop_pools(wait=False)

    def _stop_pools(self, *, wait: bool) -> None:
        for pool in (self._pool, self._quarantine):
            if pool is not None:
                pool.shutdown(wait=wait, cancel_futures=True)
        self._pool = self._quarantine = None

    def close(self) -> None:
        """Stop the workers (waiting for them to exit). Idempotent."""
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._stop_pools(wait=True)


# -- the cyclic garbage collector during a cold read ---------------------------------------

_gc_lock = threading.Lock()
_gc_holds = 0
_gc_was_enabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a room's history is read (nested and
    concurrent uses count; the collector's state before the first is restored after the
    last). A read allocates only acyclic values, yet with a large room in memory the
    collector rescanned it so often that decoding took three times as long (25 µs an
    event instead of 8); references still free everything as usual meanwhile."""
    global _gc_holds, _gc_was_enabled
    with _gc_lock:
        if _gc_holds == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holds += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holds -= 1
            if _gc_holds == 0 and _gc_was_enabled:
                # Everything allocated meanwhile is still in the youngest generation: the
                # next allocation would scan it all at once (half a second on the loop
                # after a 100,000-event read). Moved to the oldest generation instead (a
                # list splice, no scan): a cycle among it is collected by the next full
                # collection, as if it had aged there. Nothing else here freezes objects.
                gc.freeze()
                gc.unfreeze()
                gc.enable()
