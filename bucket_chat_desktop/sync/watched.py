"""Tell a hung storage from a slow one: every request is timed while it is in flight.

A storage that refuses connections fails fast; one that accepts them and never answers
(a frozen service, a dead NAT mapping, a captive portal) makes each request wait for the
service's own timeout times its retries — 90 s with the defaults. Background work should
keep that patience; a person should not. ``WatchedStorage`` wraps the engine's storage
and records when each request started and when the last one was answered, so that

- ``answer_within`` can give up an interactive step (a send's delivery, opening a room
  for ``history``) once *one request* has waited ``INTERACTIVE_DEADLINE`` seconds without
  an answer — a slow but answering storage is never cut off, a silent one is;
- the engine's watchdog can say "not answering since …" once a request has waited
  ``STALL_AFTER`` seconds, and clear it with the next answer.

An answer is any outcome the service gave: data, "not found", "already exists" and
"access denied" all count; only timeouts and broken connections do not. A download
that keeps receiving answers as it goes: every ``PROGRESS_BYTES`` that arrive count as
an answer (``READ_PROGRESS``), so a large attachment on a slow link is never shown as
"not answering", while one that trickles a byte now and then still is; a person's step
is held to the read's minimum rate (``WatchedStorage._waited``).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ..storage.base import (
    DEFAULT_MAX_READ,
    READ_PROGRESS,
    Level,
    ObjectInfo,
    Storage,
    StorageError,
    StorageOfflineError,
)
from ..storage.cloud import MIN_READ_RATE
from ..storage.feed import ChangeFeed
from .stopping import stop_tasks

T = TypeVar("T")

log = logging.getLogger("bucket_chat.sync")

INTERACTIVE_DEADLINE = 1.2
"""Seconds one request may go unanswered while a person or a script waits (``send``,
``history``, ``rooms``, ``sync``, opening a room): then the step falls back to what this
device knows. Background work (the app's publisher and polling) is not bound by it.
``BUCKET_CHAT_INTERACTIVE_DEADLINE`` overrides it (``interactive_deadline``)."""

DEADLINE_ENV = "BUCKET_CHAT_INTERACTIVE_DEADLINE"
DEADLINE_RANGE = (0.5, 120.0)


def interactive_deadline() -> float:
    """The interactive deadline: ``INTERACTIVE_DEADLINE``, or the seconds set in
    ``BUCKET_CHAT_INTERACTIVE_DEADLINE`` (for a slow link, where a new connection's first
    answer takes longer), kept within ``DEADLINE_RANGE``. A value that is not a number
    is ignored, with a warning."""
    text = os.environ.get(DEADLINE_ENV, "").strip()
    if not text:
        return INTERACTIVE_DEADLINE
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        log.warning(
            "%s=%r is not a number of seconds: using %g",
            DEADLINE_ENV,
            text[:40],
            INTERACTIVE_DEADLINE,
        )
        return INTERACTIVE_DEADLINE
    return min(max(seconds, DEADLINE_RANGE[0]), DEADLINE_RANGE[1])


STALL_AFTER = 8.0
"""Seconds a request may go unanswered before the storage is shown as not answering."""

OPEN_GRACE = 10.0
"""Seconds opening the storage (``Storage.open``: importing a cloud SDK, making its
client, finding credentials) may take before it counts as a request unanswered. It is
mostly local work — s3fs's import alone took 1–1.4 s on a loaded 2-core machine, more
than the interactive deadline — and counted from its start it made a ``bucket-chat``
command report "no answer" from a service that answered at once. A credential lookup
that hangs still counts, ``OPEN_GRACE`` s late."""


PROGRESS_BYTES = 16 * 1024
"""Bytes of a download that count as one answer (``WatchedStorage``): a link that
brings 16 KiB a second keeps a read answered every second; a service trickling a byte
every quarter second would need over an hour for one."""


_STEPS: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar(
    "bucket_chat_steps", default=()
)
"""The ``answer_within`` steps the running code belongs to (set in each step's task, and
so in the tasks it creates): their requests' answers are theirs."""


class NoAnswerError(StorageOfflineError):
    """A request got no answer within an interactive deadline (the step was given up)."""

    def __init__(self, message: str, *, since: float) -> None:
        super().__init__(message)
        self.since = since  # wall-clock time the unanswered request was sent


def clock_text(wall: float) -> str:
    """``HH:MM:SS`` local time, for messages a person reads."""
    return time.strftime("%H:%M:%S", time.localtime(wall))


class WatchedStorage(Storage):
    """``inner`` with every request timed. Behaves exactly like ``inner`` otherwise."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.url = inner.url
        self._ids = itertools.count()
        self._in_flight: dict[int, tuple[float, float]] = {}  # id -> (monotonic, wall)
        self.last_answer: float | None = None  # wall-clock time of the last answer
        # Wall-clock start of the first request sent since the last answer (None right
        # after an answer): how long the storage has been silent, across timeouts and
        # retries — a request that timed out is no longer in flight, but still unanswered.
        self.silent_since: float | None = None
        self.on_answer: Callable[[], None] | None = None
        # ``answer_within``'s steps in progress: id -> [their start, the latest answer to
        # one of their own requests] (``(monotonic, wall)`` each; the start until one).
        self._steps: dict[int, list[tuple[float, float]]] = {}
        # Bytes received so far by each request in flight that is receiving (``_waited``).
        self._received: dict[int, int] = {}
        self._started: dict[int, tuple[float, float]] = {}
        # The steps each request in flight is for (``_STEPS`` when it was sent).
        self._owners: dict[int, tuple[int, ...]] = {}

    # -- what the engine asks ----------------------------------------------------------------

    def oldest_unanswered(self) -> tuple[float, float] | None:
        """``(monotonic, wall)`` start of the longest-waiting request in flight, if any."""
        return min(self._in_flight.values(), default=None)

    def _step_waits(self, step: int) -> tuple[float, float] | None:
        """``(monotonic, wall)`` since when step ``step`` (``answer_within``) has waited
        without an answer, if a request is in flight: one of the step's own requests
        counts from its own start; any other, from its start or the latest answer to
        one of the step's own requests (the step's start until then), whichever is
        later: the step may be waiting on it, but while its own requests keep getting
        answers, it is not what holds it up. Answers to other work (polling, other
        rooms) do not count. Other work is also another step running beside it: the
        join dialog's rooms, each read as a step of its own, where one room's stalled
        read gave up every room still being read (red team rt95)."""
        began, answered = self._steps[step]
        older = max(began, answered)
        return min(
            (
                sent if step in self._owners.get(rid, ()) else max(sent, older)
                for sent, rid in (
                    (self._waited(rid, at), rid) for rid, at in self._in_flight.items()
                )
            ),
            default=None,
        )

    def _waited(self, rid: int, at: tuple[float, float]) -> tuple[float, float]:
        """Since when request ``rid`` keeps a person waiting (``answer_within``): its
        start, moved on by what it received at the read's own minimum rate
        (``MIN_READ_RATE``, as a read's deadline is): a download that keeps that rate
        never does, one slower does at its pace. The watch's own 16 KiB rule
        (``PROGRESS_BYTES``) is more lenient — a slow link is answering — but a person
        was held for minutes by a service sending 16 KiB a second of a large segment."""
        received = self._received.get(rid)
        if received is None:
            return at
        start, wall = self._started[rid]
        credit = min(received / MIN_READ_RATE, time.monotonic() - start)
        return (start + credit, wall + credit)

    def stalled(self, after: float) -> float | None:
        """Wall-clock start of a request unanswered for ``after`` seconds, else None."""
        oldest = self.oldest_unanswered()
        if oldest is None or time.monotonic() - oldest[0] < after:
            return None
        return oldest[1]

    async def _opened(self) -> None:
        """The inner storage opened (see ``OPEN_GRACE``): in flight meanwhile, as a
        request sent ``OPEN_GRACE`` s later (its wall-clock start is the real one)."""
        rid = next(self._ids)
        self._in_flight[rid] = (time.monotonic() + OPEN_GRACE, time.time())
        try:
            await self.inner.open()
        finally:
            del self._in_flight[rid]

    async def _timed(self, call: Awaitable[T]) -> T:
        try:
            await self._opened()
        except BaseException:
            if inspect.iscoroutine(call):
                call.close()  # never started: no "never awaited" warning
            raise
        rid = next(self._ids)
        self._in_flight[rid] = (time.monotonic(), time.time())
        if self.silent_since is None:
            self.silent_since = self._in_flight[rid][1]
        steps = _STEPS.get()  # the steps this request is for, if any
        self._owners[rid] = steps
        arrived = 0

        def progress(size: int) -> None:
            """Bytes of the answer arrived: each ``PROGRESS_BYTES`` are an answer, and
            the request waits for the next ones from now on (a person waits by the
            rate, ``_waited``)."""
            nonlocal arrived
            if rid not in self._in_flight:
                return
            if rid not in self._received:
                self._started[rid] = self._in_flight[rid]
            self._received[rid] = self._received.get(rid, 0) + size
            arrived += size
            if arrived >= PROGRESS_BYTES:
                arrived = 0
                self._in_flight[rid] = (time.monotonic(), time.time())
                self._answered(steps)

        token = READ_PROGRESS.set(progress)
        answered = False
        try:
            result = await call
            answered = True
            return result
        except StorageOfflineError:
            raise  # a timeout or a broken connection: no answer
        except StorageError:
            answered = True  # the service answered, if only to say no
            raise
        finally:
            READ_PROGRESS.reset(token)
            del self._in_flight[rid]
            del self._owners[rid]
            self._received.pop(rid, None)
            self._started.pop(rid, None)
            if answered:
                self._answered(steps)

    def _answered(self, steps: tuple[int, ...]) -> None:
        """A request of ``steps`` (``answer_within``) was answered, or its bytes keep
        arriving."""
        now = (time.monotonic(), time.time())
        for mark in steps:
            if mark in self._steps:
                self._steps[mark][1] = now
        self.last_answer = now[1]
        self.silent_since = None
        if self.on_answer is not None:
            self.on_answer()

    # -- Storage -------------------------------------------------------------------------------

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        return await self._timed(self.inner.put_if_absent(path, data))

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        return await self._timed(self.inner.get(path, max_bytes=max_bytes))

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        return await self._timed(self.inner.list_objects(prefix))

    async def list_dirs(self, prefix: str) -> list[str]:
        return await self._timed(self.inner.list_dirs(prefix))

    async def list_level(self, prefix: str) -> Level:
        return await self._timed(self.inner.list_level(prefix))

    async def list_level_first(self, prefix: str, most: int) -> Level:
        return await self._timed(self.inner.list_level_first(prefix, most))

    async def list_after(self, prefix: str, after: str | None) -> list[ObjectInfo]:
        return await self._timed(self.inner.list_after(prefix, after))

    async def list_between(self, prefix: str, after: str | None, before: str) -> list[ObjectInfo]:
        return await self._timed(self.inner.list_between(prefix, after, before))

    async def list_first(
        self, prefix: str, after: str | None, most: int
    ) -> tuple[list[ObjectInfo], bool]:
        return await self._timed(self.inner.list_first(prefix, after, most))

    async def exists(self, path: str) -> bool:
        return await self._timed(self.inner.exists(path))

    async def written_lately(self, path: str) -> bool:
        return await self._timed(self.inner.written_lately(path))

    async def spelled_as_stored(self, path: str) -> bool:
        return await self._timed(self.inner.spelled_as_stored(path))

    async def remove_probe(self, path: str) -> None:
        await self._timed(self.inner.remove_probe(path))

    async def probe_create_only(self) -> tuple[bool, str]:
        return await self._timed(self.inner.probe_create_only())

    async def open(self) -> None:
        await self._opened()

    async def close(self) -> None:
        await self.inner.close()

    @property
    def identity(self) -> str:
        return self.inner.identity

    def describe(self) -> str:
        return self.inner.describe()

    def tag_of_written(self, data: bytes) -> str | None:
        return self.inner.tag_of_written(data)

    def change_feed(self) -> ChangeFeed | None:
        return self.inner.change_feed()  # not timed here: a long poll waits on purpose

    def create_only_mechanism(self) -> str:
        return self.inner.create_only_mechanism()

    def create_only_failure(self, what: str) -> str:
        return self.inner.create_only_failure(what)


def watched(storage: Storage) -> WatchedStorage:
    return storage if isinstance(storage, WatchedStorage) else WatchedStorage(storage)


async def answer_within(
    storage: WatchedStorage,
    step: Coroutine[Any, Any, T],
    seconds: float | None = None,
    *,
    what: str = "the storage",
) -> T:
    """Run ``step``; give it up (cancelled, ``NoAnswerError``) as soon as one of its
    requests has waited ``seconds`` (default: ``interactive_deadline()``) without an
    answer. A step that keeps getting answers runs as long as it needs. What a cancelled
    write already sent may still arrive: callers only give up steps that are safe to
    repeat (create-only writes, reads). A cancellation of the caller is raised, also
    one that arrives while the step given up winds down.

    A request sent before the step (background work: polling, the publisher, an
    attachment's download) counts from the step's start, and from the latest answer to
    one of the step's own requests (made in its task, or in tasks it creates): it may
    be what the step waits for, so it cannot be left out, but a step begun right after
    a storage came back is not given up at once because of a request still hanging from
    when it was away, nor one whose own requests keep getting answers because of a
    download that stalled meanwhile. Answers to other work do not keep a step going."""
    if seconds is None:
        seconds = interactive_deadline()
    began = (time.monotonic(), time.time())
    mark = next(storage._ids)
    storage._steps[mark] = [began, began]

    context = contextvars.copy_context()  # the step's task's: its requests are its own
    context.run(_STEPS.set, (*_STEPS.get(), mark))
    task = asyncio.get_running_loop().create_task(step, context=context)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.05)
            if done:
                return task.result()
            since = storage._step_waits(mark)
            if since is None:
                continue
            if time.monotonic() - since[0] >= seconds:
                raise NoAnswerError(
                    f"no answer from {what} within {seconds:g} s "
                    f"(waiting since {clock_text(since[1])})",
                    since=since[1],
                )
    finally:
        # The step given up is stopped; a cancellation of the caller while it winds
        # down is raised, never absorbed with the step's own.
        try:
            await stop_tasks([task])
        finally:
            del storage._steps[mark]


class OneDeadline:
    """Steps of one batch (the rooms of a listing, each read as a step of its own:
    ``answer_within``) that share one deadline: once a step got no answer, a step about
    to begin waits for those still running. If one of them is answered (ends other than
    by ``StorageOfflineError``: a result, "not found", "access denied"…), the storage
    answers and the step begins; if none is, it is given up unasked, with the same
    ``NoAnswerError`` as the first one given up. So a storage that answers the listing
    and then stops answering costs one deadline for the batch, not one for every
    ``_PARALLEL`` rooms (review rev1: 1,000 rooms ≈ 150 s for ``bucket-chat rooms``), and
    one room that gets no answer still does not blank the rooms that do (red team rt95):
    a step already running is never given up for another's silence, only by its own
    deadline. Called as a ``room_objects.Within``; one for each batch."""

    def __init__(self, storage: WatchedStorage, seconds: float | None = None, *, what: str) -> None:
        self.storage = storage
        self.seconds = seconds
        self.what = what
        self.asked = 0  # steps begun (sent to the storage)
        self.skipped = 0  # steps given up unasked
        self._running = 0
        # The step given up for no answer, while no step has been answered since.
        self._silent: NoAnswerError | None = None
        self._moved = asyncio.Event()  # set (and replaced) when a step ends

    async def __call__(self, step: Coroutine[Any, Any, T]) -> T:
        try:
            while self._silent is not None and self._running:
                await self._moved.wait()
        except BaseException:
            step.close()  # never started: no "never awaited" warning
            raise
        silent = self._silent
        if silent is not None:
            step.close()
            self.skipped += 1
            raise NoAnswerError(str(silent), since=silent.since)
        self.asked += 1
        self._running += 1
        answered: bool | None = None  # None: no word either way
        try:
            result = await answer_within(self.storage, step, self.seconds, what=self.what)
            answered = True
            return result
        except NoAnswerError as exc:
            answered = False
            self._silent = self._silent or exc
            raise
        except StorageOfflineError:
            raise  # refused or broken at once: no answer, and no deadline spent
        except StorageError:
            answered = True  # the service answered, if only to say no
            raise
        finally:
            self._running -= 1
            if answered:
                self._silent = None
            self._moved.set()
            self._moved = asyncio.Event()
