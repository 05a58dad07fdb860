"""Red team rt71: the outbox file of a storage damaged between runs (a sync tool that
copied half of it, a bad disk, a file put in its place). The app's client attached
nothing and said nothing (only a traceback in the log): every room of the storage stayed
empty for good, with no message. Now the damaged file is set aside (never overwritten or
deleted), what can still be read from it is kept, the storage is attached with a new
outbox, and the user is told where the copy is; the next send reads its chain's head
from storage, so nothing forks."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import outbox as outbox_mod
from bucket_chat_desktop.sync.client import ChatClient, RoomRef
from bucket_chat_desktop.sync.events import EngineEvent, OutboxSetAside, RoomLoaded
from bucket_chat_desktop.sync.outbox import Outbox, open_outbox
from bucket_chat_desktop.sync.session import outbox_path_for, read_room

ALICE = "alice@example.com"
KEY = SigningKey(bytes(range(32)))
ROOM = "plans"
JUNK = b"not a database " * 400


def _first_run(store: LocalStorage, data: Path) -> None:
    async def go() -> None:
        async with ChatClient.session(store, identity=(ALICE, KEY), data_dir=data) as client:
            sid = client.session_storage
            ref = await client.create_room(sid, ROOM, "Plans", show=False)
            await client.send(ref, [(MESSAGE, {"body": "hi", "msgtype": "m.text"})])
            assert await client.within(sid, client.flush(sid, timeout=10))

    asyncio.run(go())


def _bodies_and_forks(store: LocalStorage) -> tuple[list[str], list[str]]:
    view = asyncio.run(read_room(store, ROOM))
    assert view.result is not None
    bodies = [a.event.body for a in view.result.timeline if a.event.type == MESSAGE]
    forks = [f.kind for f in view.result.findings if f.kind == "fork"]
    return bodies, forks


def test_a_damaged_outbox_neither_hides_the_storage_nor_goes_unsaid(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    data = tmp_path / "data"
    store = LocalStorage(store_dir)
    _first_run(store, data)
    outbox = outbox_path_for(data, store.identity)
    assert outbox.is_file()
    for extra in ("-wal", "-shm"):
        Path(f"{outbox}{extra}").unlink(missing_ok=True)
    outbox.write_bytes(JUNK)

    seen: list[tuple[str, EngineEvent]] = []
    entry = StorageSettings(str(store_dir), "Team share", [ROOM])
    settings = Settings(user_id=ALICE, displayname="Alice", storages=[entry])

    async def app_run() -> tuple[bool, bool]:
        client = ChatClient(
            settings, ALICE, KEY, lambda sid, ev: seen.append((sid, ev)), data_dir=data
        )
        try:
            await client.start()
            for _ in range(200):  # the room opens from the index, then the storage
                if any(isinstance(ev, RoomLoaded) for _, ev in seen):
                    break
                await asyncio.sleep(0.05)
            attached = client.is_attached(entry.id)
            ref = RoomRef(entry.id, ROOM)
            await client.send(ref, [(MESSAGE, {"body": "after", "msgtype": "m.text"})])
            assert await client.within(entry.id, client.flush(entry.id, timeout=10))
            loaded = any(isinstance(ev, RoomLoaded) for _, ev in seen)
            return attached, loaded
        finally:
            await client.close()

    attached, loaded = asyncio.run(app_run())
    assert attached and loaded, "the storage's rooms are not shown"
    said = [ev.message for sid, ev in seen if isinstance(ev, OutboxSetAside) and sid == entry.id]
    copies = list(outbox.parent.glob(f"{outbox.name}.broken-*"))
    assert len(copies) == 1 and copies[0].read_bytes() == JUNK  # kept as it was
    assert len(said) == 1 and "damaged" in said[0] and str(copies[0]) in said[0], said
    bodies, forks = _bodies_and_forks(store)
    assert bodies == ["hi", "after"] and forks == []  # the new outbox's head: from storage


def _break_an_index_page(path: Path) -> None:
    """Overwrite the page of the outbox's ``pending_room`` index: its tables still read
    whole, but the file does not check (``quick_check``)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        (root,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'pending_room'"
        ).fetchone()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * page_size)


def test_what_a_damaged_outbox_still_holds_is_sent_once(tmp_path: Path) -> None:
    """A message queued offline, then the outbox damaged where its messages are not (an
    index page): the outbox is set aside, the message read back from the copy, queued
    again in the new outbox, and delivered exactly once, continuing the chain."""
    store = LocalStorage(tmp_path / "store")
    data = tmp_path / "data"
    _first_run(store, data)
    path = outbox_path_for(data, store.identity)

    async def queue_offline() -> None:
        async with ChatClient.session(store, identity=(ALICE, KEY), data_dir=data) as client:
            ref = client.room(ROOM)
            await client.send(ref, [(MESSAGE, {"body": "queued", "msgtype": "m.text"})])

    asyncio.run(queue_offline())  # not flushed: it waits in the outbox
    _break_an_index_page(path)
    box, set_aside = open_outbox(path, store.describe())
    try:
        assert set_aside is not None and set_aside.kept == 1, set_aside
        assert [p.state for p in box.pending()] == ["queued"]
    finally:
        box.close()
    assert set_aside.copy.is_file()

    async def deliver() -> None:
        async with ChatClient.session(store, identity=(ALICE, KEY), data_dir=data) as client:
            sid = client.session_storage
            assert await client.within(sid, client.flush(sid, timeout=10))

    asyncio.run(deliver())
    asyncio.run(deliver())  # again: nothing twice
    bodies, forks = _bodies_and_forks(store)
    assert bodies == ["hi", "queued"] and forks == []


def test_a_busy_outbox_is_never_set_aside(tmp_path: Path) -> None:
    """Only damage sets a file aside: another process holding the outbox locked is
    waited for (and, past the busy timeout, an error raised), never taken for broken."""
    path = tmp_path / "outbox.sqlite3"
    Outbox(path).close()
    holder = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        probe = sqlite3.connect(path, timeout=0)
        try:
            probe.execute("SELECT 1 FROM heads").fetchall()
        except sqlite3.OperationalError as exc:
            from bucket_chat_desktop.sync.outbox import is_damage

            assert not is_damage(exc)  # "database is locked"
        finally:
            probe.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    box, set_aside = open_outbox(path, "a folder")
    box.close()
    assert set_aside is None and not list(tmp_path.glob("*.broken-*"))


# -- two processes of this device setting one damaged outbox aside at once -----------------


def _queue(box: Outbox, body: str) -> None:
    box.seed_head(ROOM, b64encode(bytes(KEY.verify_key)), None)
    box.enqueue(
        room_id=ROOM,
        user_id=ALICE,
        signing_key=KEY,
        drafts=[(MESSAGE, {"body": body, "msgtype": "m.text"})],
        clock=lambda: 1_700_000_000_000,
        unique=lambda: body,
    )


def _damaged(tmp_path: Path) -> Path:
    path = tmp_path / "outbox" / "x.sqlite3"
    path.parent.mkdir()
    path.write_bytes(JUNK)
    return path


def _queued_bodies(path: Path) -> list[str]:
    box = Outbox(path)
    try:
        return sorted(
            e.content["body"]
            for p in box.pending(ROOM)
            if (e := p.event()) is not None and e.type == MESSAGE
        )
    finally:
        box.close()


def _paused_after_finding_damage(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, threading.Event, list[threading.Thread]]:
    """``open_outbox`` of the thread put in the list (process B) stops once it has found
    the file damaged, until the second event is set."""
    real = outbox_mod.is_damage
    found, go_on = threading.Event(), threading.Event()
    b_thread: list[threading.Thread] = []

    def is_damage(exc: sqlite3.Error) -> bool:
        damaged = real(exc)
        if (
            damaged
            and b_thread
            and threading.current_thread() is b_thread[0]
            and not found.is_set()
        ):
            found.set()
            assert go_on.wait(10)
        return damaged

    monkeypatch.setattr(outbox_mod, "is_damage", is_damage)
    return found, go_on, b_thread


def _open_in_thread(path: Path, b_thread: list[threading.Thread]) -> dict[str, object]:
    got: dict[str, object] = {}

    def b() -> None:
        try:
            got["b"] = open_outbox(path, "store")[0]
        except BaseException as exc:
            got["b_error"] = exc

    b_thread.append(threading.Thread(target=b))
    b_thread[0].start()
    return got


def test_a_set_aside_racing_another_process_keeps_one_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt76: process B found the outbox damaged; process A then set it aside and
    made the new outbox; B (no lock) then moved A's new, whole outbox aside too, under
    A's open connection, and made a third: what A queued went into a ``.broken-…`` file
    nothing opens again, and the two held two heads of one chain. B now checks again
    under the opening lock and opens A's outbox: both queue into the one file."""
    path = _damaged(tmp_path)
    found, go_on, b_thread = _paused_after_finding_damage(monkeypatch)
    got = _open_in_thread(path, b_thread)
    assert found.wait(10)
    box_a, said_a = open_outbox(path, "store")  # process A: sets aside, new outbox
    assert said_a is not None
    go_on.set()
    b_thread[0].join(10)
    box_b = got.get("b")
    assert isinstance(box_b, Outbox), got
    _queue(box_a, "from the app")
    _queue(box_b, "from the script")
    box_a.close()
    box_b.close()
    assert _queued_bodies(path) == ["from the app", "from the script"]
    asides = [p.name for p in path.parent.iterdir() if p.name.startswith("x.sqlite3.broken-")]
    assert [n for n in asides if not n.endswith(("-wal", "-shm", "-journal"))] == [
        said_a.copy.name
    ], asides


def test_a_set_aside_finding_the_file_already_moved_does_not_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt76: process B found the file damaged; another process then moved it
    aside and had not made the new one yet. B's move found nothing to move and failed
    with FileNotFoundError (the storage did not open, a command ended in a traceback).
    B now opens an outbox at the place."""
    path = _damaged(tmp_path)
    found, go_on, b_thread = _paused_after_finding_damage(monkeypatch)
    got = _open_in_thread(path, b_thread)
    assert found.wait(10)
    path.rename(path.with_name("x.sqlite3.broken-by-another"))  # that process's move
    go_on.set()
    b_thread[0].join(10)
    assert "b_error" not in got, repr(got.get("b_error"))
    box_b = got["b"]
    assert isinstance(box_b, Outbox)
    _queue(box_b, "after")
    box_b.close()
    assert _queued_bodies(path) == ["after"]


def test_a_damaged_outbox_of_a_version_before_kept_sends_is_still_read_back(
    tmp_path: Path,
) -> None:
    """An outbox written by a version that kept no sends (no ``held`` nor ``replaced``
    table), damaged: what waits in it is read back all the same (the missing tables are
    no reason to drop every message in it)."""
    store = LocalStorage(tmp_path / "store")
    data = tmp_path / "data"
    _first_run(store, data)
    path = outbox_path_for(data, store.identity)

    async def queue_offline() -> None:
        async with ChatClient.session(store, identity=(ALICE, KEY), data_dir=data) as client:
            ref = client.room(ROOM)
            await client.send(ref, [(MESSAGE, {"body": "queued", "msgtype": "m.text"})])

    asyncio.run(queue_offline())
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("DROP TABLE held")
        db.execute("DROP TABLE replaced")
    _break_an_index_page(path)
    box, set_aside = open_outbox(path, store.describe())
    try:
        assert set_aside is not None and set_aside.kept == 1, set_aside
        assert [p.state for p in box.pending()] == ["queued"]
    finally:
        box.close()
