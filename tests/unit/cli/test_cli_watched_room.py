"""``bucket-chat chat`` and ``sync --follow`` are someone watching the room live: the
room is served as the app serves the room on screen with its window in front (review
rev1 #3). They never said so, and the engine took them for a window behind others: the
room's safety listing came every 4 hours and took at most 30 pages (``SAFETY_PAGES_MAX``),
so a message of a writer without activity markers (the reference implementation) behind
a day folder a member padded with junk names was not delivered to a terminal at all.

The real commands run in-process on a folder read as a bucket is (``Bucket``: polled,
no watch; its listings of today's folder show 31,000 junk names that sort before every
segment, listed only). A message without a marker is held back from the storage until
the command follows the room; from then on the poller's clock is moved on a day at
each polling round, so the room's safety listing is due at each, whatever its period
(nothing is slept or timed). In front, that listing lists the day whole and the
message is printed. Taken for a background listing it is cut short (``Bucket.capped``)
and misses it; then a message with a marker is let in, which ends the command without
the first one."""

from __future__ import annotations

import asyncio
import io
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_run import WIDE
from nacl.signing import SigningKey

from bucket_chat_desktop.cli import main as cli_main
from bucket_chat_desktop.protocol.activity import ACTIVITY_PREFIX, marker_path
from bucket_chat_desktop.protocol.ids import logs_prefix, utc_date
from bucket_chat_desktop.storage.base import (
    DEFAULT_MAX_READ,
    Level,
    ObjectInfo,
    Storage,
    StorageNotFoundError,
)
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import poller
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

PASSPHRASE = "correct horse battery staple"
ALICE = "alice@example.com"
ROOM = "watched-room"
JUNK = 31_000  # past the 30 pages a background listing of a room may take
UNMARKED = "written without a marker, behind the junk"
MARKED = "a marker's message: the command ends here"
DAY = 86_400.0
LIVENESS = 120.0  # seconds: only a bound on a hung test (chat's input ends then)


class Bucket(Storage):
    """A folder read as a bucket is (not a ``LocalStorage``: polled, no watch). Listings
    of a ``padding`` folder show that many junk names (``aa-...``: sorting before every
    segment, never read); objects in ``hidden`` are not there yet; ``capped`` says a
    listing of a padded folder was cut short (``list_first``: a background listing),
    and ``on_capped`` runs then; ``on_round`` runs at each listing of the markers (a
    polling round)."""

    def __init__(self, inner: LocalStorage) -> None:
        self.inner = inner
        self.url = inner.url
        self.padding: dict[str, int] = {}
        self.hidden: set[str] = set()
        self.capped = False
        self.on_capped: Callable[[], None] = lambda: None
        self.on_round: Callable[[], None] = lambda: None

    def _shown(self, prefix: str, items: list[ObjectInfo], after: str | None) -> list[ObjectInfo]:
        items = [i for i in items if i.path not in self.hidden]
        junk = self.padding.get(prefix, 0)
        if not junk:
            return items
        names = (ObjectInfo(f"{prefix}aa-{i:06d}", 0) for i in range(junk))
        padded = [*items, *(i for i in names if after is None or i.path > after)]
        return sorted(padded, key=lambda i: i.path)

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        return await self.inner.put_if_absent(path, data)

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        if path in self.hidden:
            raise StorageNotFoundError(f"{path}: no such object")
        return await self.inner.get(path, max_bytes=max_bytes)

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        return self._shown(prefix, await self.inner.list_objects(prefix), None)

    async def list_after(self, prefix: str, after: str | None) -> list[ObjectInfo]:
        if prefix.startswith(ACTIVITY_PREFIX):
            self.on_round()
        return self._shown(prefix, await self.inner.list_after(prefix, after), after)

    async def list_first(
        self, prefix: str, after: str | None, most: int
    ) -> tuple[list[ObjectInfo], bool]:
        items = self._shown(prefix, await self.inner.list_after(prefix, after), after)
        more = len(items) > most
        if more and prefix in self.padding and not self.capped:
            self.capped = True
            self.on_capped()
        return items[:most], more

    async def list_dirs(self, prefix: str) -> list[str]:
        return await self.inner.list_dirs(prefix)

    async def list_level(self, prefix: str) -> Level:
        return await self.inner.list_level(prefix)

    async def list_level_first(self, prefix: str, most: int) -> Level:
        return await self.inner.list_level_first(prefix, most)

    async def exists(self, path: str) -> bool:
        return path not in self.hidden and await self.inner.exists(path)

    async def close(self) -> None:
        await self.inner.close()


class Terminal(io.StringIO):
    """The command's standard output: once it printed ``ready``, ``on_ready`` runs; once
    a line with one of ``ends``, ``on_end`` (which may raise, as a closed pipe does)."""

    def __init__(
        self,
        ready: str,
        on_ready: Callable[[], None],
        ends: tuple[str, ...],
        on_end: Callable[[], None],
    ) -> None:
        super().__init__()
        self.ready, self.on_ready, self.ends, self.on_end = ready, on_ready, ends, on_end
        self.readied = self.ended = False

    def write(self, text: str) -> int:
        written = super().write(text)
        seen = self.getvalue()
        if not self.readied and self.ready in seen:
            self.readied = True
            self.on_ready()
        if self.readied and not self.ended and any(e in seen for e in self.ends):
            self.ended = True
            self.on_end()
        return written


class Waiting(io.StringIO):
    """Standard input of a chat that types nothing (no terminal): it ends once
    ``done`` is set (or after ``LIVENESS``, a hung test's bound)."""

    def __init__(self, done: threading.Event) -> None:
        super().__init__()
        self.done = done

    def readline(self, size: int | None = -1) -> str:
        self.done.wait(LIVENESS)
        return ""


@dataclass
class Watched:
    """The storage the commands get (``bucket``, over the folder ``store``) and what the
    test lets into it."""

    bucket: Bucket
    store: Path
    unmarked: str  # the message without a marker, held back until the command follows
    marked: str  # the segment a marker names once a listing is cut short (held back)
    offset: list[float]  # what the poller's clock is moved on by


def _write_messages(store: Path) -> tuple[str, str]:
    """A member's message written without a marker (the reference implementation), and
    another member's, both in today's folder; neither is shown by the storage yet."""

    async def write() -> tuple[str, str]:
        local = LocalStorage(store)
        carol = RoomWriter(local, ROOM, "carol@example.com", SigningKey.generate())
        unmarked, _ = await carol.send([Draft.text(UNMARKED)])
        dave = RoomWriter(local, ROOM, "dave@example.com", SigningKey.generate())
        marked, _ = await dave.send([Draft.text(MARKED)])
        return unmarked, marked

    return asyncio.run(write())


@pytest.fixture
def watched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Watched:
    monkeypatch.setenv("BUCKET_CHAT_KEY_STORE", "file")
    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / "device"))
    monkeypatch.setenv("COLUMNS", WIDE)
    monkeypatch.delenv("BUCKET_CHAT_STORAGE", raising=False)
    store = tmp_path / "shared"
    store.mkdir()
    for argv in (
        ["setup-keys", "--user-id", ALICE],
        ["create-room", "--room-id", ROOM, "--name", "Watched", "--user-id", ALICE],
    ):
        assert cli_main.main(["-s", str(store), *argv]) == 0
    unmarked, marked = _write_messages(store)
    bucket = Bucket(LocalStorage(store))
    bucket.hidden.update({unmarked, marked})
    bucket.padding[f"{logs_prefix(ROOM)}{utc_date(int(time.time() * 1000))}/"] = JUNK
    assert unmarked.startswith(next(iter(bucket.padding)))  # today's folder, behind the junk
    monkeypatch.setattr(cli_main, "open_storage", lambda spec: bucket)
    offset = [0.0]
    moved = types.SimpleNamespace(monotonic=lambda: time.monotonic() + offset[0], time=time.time)
    monkeypatch.setattr(poller, "time", moved)
    watched = Watched(bucket, store, unmarked, marked, offset)
    bucket.on_capped = lambda: _let_marked_in(watched)
    return watched


def _following(watched: Watched) -> None:
    """The command follows the room: the message without a marker is in the storage,
    and from now on each polling round comes a day after the last, so the room's safety
    listing is due at each (one that ran meanwhile, as the room opened, is over by one
    of them)."""
    watched.bucket.hidden.discard(watched.unmarked)
    watched.bucket.on_round = lambda: watched.offset.__setitem__(0, watched.offset[0] + DAY)


def _let_marked_in(watched: Watched) -> None:
    """A listing of the padded day was cut short (the room taken for one behind other
    windows): a message with a marker comes in, which ends the command."""
    watched.bucket.hidden.discard(watched.marked)
    marker = watched.store / marker_path(int(time.time() * 1000), watched.marked)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_bytes(b"")


@pytest.mark.timeout(180)
def test_sync_follow_lists_the_room_as_one_on_screen_in_front(
    watched: Watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    def closed() -> None:  # what it printed has no reader any more: it ends, exit 0
        raise BrokenPipeError(32, "Broken pipe")

    out = Terminal("Following", lambda: _following(watched), (UNMARKED, MARKED), closed)
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = cli_main.main(["-s", str(watched.store), "sync", "--room-id", ROOM, "--follow"])
    printed = out.getvalue()
    assert code == 0, printed
    assert UNMARKED in printed, printed  # before: cut short at 30 pages, never printed
    assert not watched.bucket.capped


@pytest.mark.timeout(180)
def test_chat_lists_the_room_as_one_on_screen_in_front(
    watched: Watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = threading.Event()
    out = Terminal("type a message", lambda: _following(watched), (UNMARKED, MARKED), done.set)
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stdin", Waiting(done))
    code = cli_main.main(["-s", str(watched.store), "chat", "--room-id", ROOM, "--user-id", ALICE])
    printed = out.getvalue()
    assert code == 0, printed
    assert UNMARKED in printed, printed  # before: cut short at 30 pages, never printed
    assert not watched.bucket.capped
