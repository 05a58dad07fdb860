"""Review of fix102b: ``Storage.list_level_first`` (a listing of a room's ``logs/`` that
asks only the pages ``most`` names take, behind other windows) had a default in the
base class that listed the whole level and cut it afterwards: right for a folder, where
listing costs nothing, and silently wrong for a wrapper around a bucket that forgot to
forward it (``WatchedStorage`` needed an explicit override). A member's junk right in
``logs/`` then cost every page again. ``list_first`` (a day folder's listing, capped
the same way) had the same default. The capped listings are now abstract: a storage
says how it caps them, or it cannot be made.

A wrapper forwarding to a folder storage, as ``WatchedStorage`` forwards to any
storage: one that forgets a capped listing is refused when made; one that forwards it
still gets the folder's answer, cut."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, Level, ObjectInfo, Storage
from bucket_chat_desktop.storage.local import LocalStorage


class Forwarding(Storage):
    """Every required call forwarded to ``inner``, but no capped listing."""

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

    async def exists(self, path: str) -> bool:
        return await self.inner.exists(path)


class ForgetsLevelFirst(Forwarding):
    async def list_first(
        self, prefix: str, after: str | None, most: int
    ) -> tuple[list[ObjectInfo], bool]:
        return await self.inner.list_first(prefix, after, most)


class ForgetsFirst(Forwarding):
    async def list_level_first(self, prefix: str, most: int) -> Level:
        return await self.inner.list_level_first(prefix, most)


class Forwards(ForgetsLevelFirst, ForgetsFirst):
    pass


def test_a_storage_that_does_not_say_how_it_caps_a_level_listing_cannot_be_made(
    tmp_path: Path,
) -> None:
    with pytest.raises(TypeError, match="list_level_first"):
        ForgetsLevelFirst(LocalStorage(tmp_path))  # type: ignore[abstract]


def test_a_storage_that_does_not_say_how_it_caps_a_folders_listing_cannot_be_made(
    tmp_path: Path,
) -> None:
    with pytest.raises(TypeError, match="list_first"):
        ForgetsFirst(LocalStorage(tmp_path))  # type: ignore[abstract]


def test_a_storage_that_forwards_its_capped_listings_gets_the_folders_answer_cut(
    tmp_path: Path,
) -> None:
    async def run() -> None:
        inner = LocalStorage(tmp_path)
        for name in ("rooms/r/logs/2026-12-07/a.jsonl", "rooms/r/logs/2026-12-08/b.jsonl"):
            await inner.put_if_absent(name, b"x")
        for i in range(5):
            await inner.put_if_absent(f"rooms/r/logs/junk-{i}", b"")
        store = Forwards(inner)
        try:
            level = await store.list_level_first("rooms/r/logs/", 3)
            assert level.cut and level.folders == ["2026-12-07", "2026-12-08"], level
            assert level.objects == ["junk-0"], level
            items, more = await store.list_first("rooms/r/logs/2026-12-07/", None, 1)
            assert [i.path for i in items] == ["rooms/r/logs/2026-12-07/a.jsonl"] and not more
        finally:
            await inner.close()

    asyncio.run(run())
