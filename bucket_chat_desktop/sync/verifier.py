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

They run at a lower CPU priority than the app (``BACKGROUND_NICE`` steps nicer, on POSIX):
on two cores, two workers starting (each interpreter importing the parser) and checking
a back-fill took the cores from the GUI thread just when the back-fill began, and a
switch of rooms then took 250-550 ms instead of 40-90. Nothing in the app waits for
them but the back-fill itself, which loses no speed on an otherwise idle machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from ..protocol.handover import PackedSegment, prepare_packed

log = logging.getLogger("bucket_chat.sync")

T = TypeVar("T")
IDLE_STOP = 60.0  # seconds without work before the worker processes are stopped
BACKGROUND_NICE = 10  # how much nicer than the app the workers run (POSIX ``nice``)

Work = Callable[[str, bytes, str], PackedSegment]


def _worker_started() -> None:
    """What each worker runs first: nothing to set up, since unpickling this function
    imported the parser already. (``SegmentVerifier(initializer=...)`` replaces it: a
    test makes workers that cannot start.)"""


def _nothing() -> None:
    return None


class SegmentVerifier:
    """Decode and verify segments in worker processes. ``await prepare(...)`` gives the
    packed result; a ``str`` saying why the segment could not be checked; or None when
    worker processes cannot run here at all (``usable`` is then False: the caller does
    the work itself, as before there were workers)."""

    def __init__(
        self,
        workers: int,
        work: Work = prepare_packed,
        initializer: Callable[[], None] | None = None,
    ) -> None:
        self.workers = max(1, workers)
        self._work = work
        self._initializer = initializer or _worker_started
        self._pool: ProcessPoolExecutor | None = None
        self._quarantine: ProcessPoolExecutor | None = None
        self._alone = asyncio.Lock()
        self._generation = 0
        self._busy = 0
        self._idle_timer: asyncio.TimerHandle | None = None
        self.restarts = 0  # pools started again after a worker stopped (tests, logs)
        self._lowered: set[int] = set()  # worker processes set to the background priority
        self.usable = True
        self._closed = False

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=self._initializer,
        )

    def _executor(self) -> ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("the segment verifier is closed")
        if self._pool is None:
            self._pool = self._new_pool(self.workers)
            self._lowered.clear()  # a new pool's process may reuse an old one's id
        return self._pool

    def warm(self) -> None:
        """Start the worker processes now (in the background): a cold read about to
        need them does not wait for their start-up when its first big chunk comes."""
        if self._closed or not self.usable or self._pool is not None:
            return
        try:
            pool = self._executor()
            for _ in range(self.workers):
                pool.submit(_nothing)
        except Exception as exc:  # no process can be started here: said once, not fatal
            self._unusable(exc)
        else:
            self._in_background(pool)
        self._touch()

    def _in_background(self, pool: ProcessPoolExecutor) -> None:
        """Give the pool's processes started since the last call the background
        priority (a pool starts them as work comes, and each just after its start, before
        it imports the parser). Not on Windows (no ``nice``); refused, they run as they
        are."""
        if sys.platform == "win32":
            return
        for process in _processes(pool):
            pid = process.pid
            if pid is None or pid in self._lowered:
                continue
            self._lowered.add(pid)
            with contextlib.suppress(OSError):  # it ended already, or not allowed here
                nice = min(19, os.getpriority(os.PRIO_PROCESS, 0) + BACKGROUND_NICE)
                os.setpriority(os.PRIO_PROCESS, pid, nice)

    def pids(self) -> list[int]:
        """The worker processes' ids (for tests and diagnostics)."""
        return [p.pid for p in _processes(self._pool) if p.pid is not None]

    async def prepare(self, path: str, data: bytes, room_id: str) -> PackedSegment | str | None:
        if not self.usable:
            return None
        self._busy += 1
        try:
            generation = self._generation
            try:
                pool = self._executor()
                future = pool.submit(self._work, path, data, room_id)
                self._in_background(pool)
            except BrokenProcessPool:
                self._broken(generation)
            except Exception as exc:
                self._unusable(exc)
                return None
            else:
                try:
                    return await _result(future)
                except BrokenProcessPool:
                    self._broken(generation)
                except Exception as exc:  # the worker raised: a bug or no memory
                    return self._failed(path, exc)
            return await self._alone_once_more(path, data, room_id)
        finally:
            self._busy -= 1
            self._touch()

    async def _alone_once_more(
        self, path: str, data: bytes, room_id: str
    ) -> PackedSegment | str | None:
        """Once more, alone in the quarantine process: if it stops again, this segment
        stopped it, unless no process runs at all (then None: the caller does it)."""
        async with self._alone:
            try:
                if self._quarantine is None:
                    self._quarantine = self._new_pool(1)
                future = self._quarantine.submit(self._work, path, data, room_id)
                self._in_background(self._quarantine)
            except Exception as exc:
                self._unusable(exc)
                return None
            try:
                return await _result(future)
            except BrokenProcessPool:
                if self._quarantine is not None:
                    _stop(self._quarantine, cancel=False)
                self._quarantine = None
            except Exception as exc:
                return self._failed(path, exc)
            if not await self._canary():
                self._unusable(RuntimeError("a worker process stops before any work"))
                return None
            log.warning("%s: the worker process checking it stopped, twice", path)
            return (
                "the worker process checking it stopped twice (killed, out of memory or "
                "crashed); it is tried again on the next full read"
            )

    async def _canary(self) -> bool:
        """Whether a fresh worker process can do nothing at all (a program whose worker
        processes cannot start would otherwise blame every segment)."""
        pool = self._new_pool(1)
        try:
            await asyncio.wait_for(asyncio.wrap_future(pool.submit(_nothing)), 60)
            return True
        except Exception:
            return False
        finally:
            _stop(pool)

    def _unusable(self, exc: BaseException) -> None:
        if self.usable:
            log.warning(
                "segment-checking worker processes cannot run here (%r): segments are "
                "checked on threads instead (slower)",
                exc,
            )
        self.usable = False
        self._stop_pools(cancel=False)  # what waits in them fails and is told so

    def _broken(self, generation: int) -> None:
        """The pool lost a worker: start a new one (once for all the segments that were
        in it, which each see the break)."""
        if generation != self._generation or self._pool is None:
            return
        self._generation += 1
        self.restarts += 1
        log.warning("a segment-checking worker process stopped; starting the pool again")
        _stop(self._pool, cancel=False)  # every segment in it sees the break, and retries
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
        self._stop_pools()

    def _stop_pools(self, *, cancel: bool = True) -> None:
        for pool in (self._pool, self._quarantine):
            if pool is not None:
                _stop(pool, cancel=cancel)
        self._pool = self._quarantine = None

    def close(self) -> None:
        """Stop the workers, also one in the middle of a segment. Idempotent."""
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._stop_pools()


def _processes(pool: ProcessPoolExecutor | None) -> list[Any]:
    # ProcessPoolExecutor keeps its processes in ``_processes`` (3.11 has no public way
    # to stop a worker in the middle of a task; 3.14's terminate_workers is that).
    processes: dict[int, Any] = getattr(pool, "_processes", None) or {}
    return list(processes.values())


async def _result(future: Future[T]) -> T:
    """The result of a worker's future. One cancelled by a pool being stopped (not by
    cancelling the caller) is a broken pool to the caller, never its own cancellation."""
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if future.cancelled() and task is not None and not task.cancelling():
            raise BrokenProcessPool("the worker pool was stopped") from None
        raise


def _stop(pool: ProcessPoolExecutor, *, cancel: bool = True) -> None:
    """Shut a pool down without waiting for a segment in progress: its workers are
    terminated (a 64 MiB segment takes seconds; an app closing must not wait for it).
    ``cancel``: also cancel what waits for a worker (else it fails: the pool is broken)."""
    processes = _processes(pool)
    pool.shutdown(wait=False, cancel_futures=cancel)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(2)
            if process.is_alive():
                process.kill()
                process.join(2)
