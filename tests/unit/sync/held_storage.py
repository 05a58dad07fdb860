"""A real folder storage whose chosen reads and writes get no answer until released: what
one request on a dead connection (an fsspec call that never returns) looks like while others go
through. ``AsBucket`` shows a folder to an engine as a bucket (polled, not watched)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bucket_chat_desktop.storage.base import (
    DEFAULT_MAX_READ,
    AlreadyExistsError,
    Level,
    ObjectInfo,
    Storage,
    StorageOfflineError,
)
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig

# An engine ``start``ed polls in rounds every 20 ms, each waiting for a room's step at
# most 50 ms, and publishes at once; safety listings only as a test makes them due (the
# window is not focused: every 4 hours).
ROUNDS = SyncConfig(
    batch_window=0.0,
    active_interval=0.02,
    focused_interval=0.02,
    idle_interval=0.02,
    round_wait=0.05,
)
LIMIT = 5.0  # seconds: only a bound on a test that failed; what it waits for comes in rounds


async def until(what: str, check: Callable[[], bool | Awaitable[bool]]) -> None:
    """Wait until ``check()`` (true, or awaitable of true) holds, at most ``LIMIT``."""
    deadline = time.monotonic() + LIMIT
    while True:
        held = check()
        if await held if inspect.isawaitable(held) else held:
            return
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.01)


# (what is asked: "get", "list_objects", "list_dirs" or "put"; of which path or prefix) -> held
Hold = Callable[[str, str], bool]


def answer_all(what: str, path: str) -> bool:
    return False


def hold_all(what: str, path: str) -> bool:
    return True


class Held(LocalStorage):
    """The folder, except that the requests ``hold`` picks wait until ``answering`` is set
    (then they are answered as usual), and those ``fail`` picks fail as a request that
    timed out does; the others answer at once. ``asked`` lists every request, ``held``
    counts those that waited. A put refused because another segment already holds the
    name (two segments written in one millisecond: the writer tries the next, ``-r1``)
    is listed as ``put-taken``, not ``put``; a segment put again under a name it holds
    itself stays a ``put``."""

    def __init__(self, root: Path, hold: Hold = answer_all, fail: Hold = answer_all) -> None:
        super().__init__(root)
        self.hold = hold
        self.fail = fail
        self.answering = asyncio.Event()
        self.asked: list[tuple[str, str]] = []
        self.held = 0

    async def _ask(self, what: str, path: str) -> None:
        self.asked.append((what, path))
        if self.fail(what, path):
            raise StorageOfflineError(f"{path}: timed out (no answer)")
        if self.hold(what, path) and not self.answering.is_set():
            self.held += 1
            await self.answering.wait()

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        await self._ask("put", path)
        try:
            return await super().put_if_absent(path, data)
        except AlreadyExistsError:
            if await super().get(path) != data:
                at = len(self.asked) - 1 - self.asked[::-1].index(("put", path))
                self.asked[at] = ("put-taken", path)
            raise

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        await self._ask("get", path)
        return await super().get(path, max_bytes=max_bytes)

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        await self._ask("list_objects", prefix)
        return await super().list_objects(prefix)

    async def list_level(self, prefix: str) -> Level:
        await self._ask("list_dirs", prefix)
        return await super().list_level(prefix)

    async def wait_held(self, count: int = 1) -> None:
        """Until ``count`` reads wait (a test's step that must hang has begun)."""
        while self.held < count:
            await asyncio.sleep(0.005)


class AsBucket(Storage):
    """A folder storage reached the way a bucket is: through the ``Storage`` interface
    only, so an engine polls its activity markers instead of watching the folder (an
    engine watches what is a ``LocalStorage``). Every request goes to ``inner``."""

    def __init__(self, inner: LocalStorage) -> None:
        self.inner = inner
        self.url = inner.url

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        return await self.inner.put_if_absent(path, data)

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        return await self.inner.get(path, max_bytes=max_bytes)

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        return await self.inner.list_objects(prefix)

    async def list_level(self, prefix: str) -> Level:
        return await self.inner.list_level(prefix)

    async def list_level_first(self, prefix: str, most: int) -> Level:
        return await self.inner.list_level_first(prefix, most)

    async def list_after(self, prefix: str, after: str | None) -> list[ObjectInfo]:
        return await self.inner.list_after(prefix, after)

    async def list_first(
        self, prefix: str, after: str | None, most: int
    ) -> tuple[list[ObjectInfo], bool]:
        return await self.inner.list_first(prefix, after, most)

    async def exists(self, path: str) -> bool:
        return await self.inner.exists(path)
