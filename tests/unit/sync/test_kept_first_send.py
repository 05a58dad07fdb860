"""A first send in a room that must wait for the room's read (red team rt87): the app's
send (``keep``) is kept in the outbox, unsigned, before it waits (``Outbox.hold``), so a
quit, a crash or the storage's removal meanwhile loses nothing; it is signed through the
one path every send takes once the head is known, by that send or by the next start's
(``resume_held``), and the device's chain never forks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from local_client import ALICE as LOCAL_ALICE
from local_client import local_client
from test_first_send import (
    ALICE,
    QUIET,
    ROOM,
    GatedStorage,
    a_room_with_history,
    assert_linear_and_verified,
    key,
    run,
)

from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import NotQueuedError, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, SendKept
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.publisher import SendStoppedError
from bucket_chat_desktop.sync.session import read_room

ALICE_KEY = b64encode(bytes(key(1).verify_key))


def text(body: str) -> list[tuple[str, dict[str, str]]]:
    return [(MESSAGE, {"body": body, "msgtype": "m.text"})]


async def until_held(box: Outbox, count: int, *, exactly: bool = False) -> None:
    """Until the outbox keeps ``count`` sends (each is kept before its send waits); with
    ``exactly``, no more either (the others were queued)."""
    while len(box.held()) < count or (exactly and len(box.held()) != count):
        await asyncio.sleep(0.005)


def test_a_first_send_cut_off_by_a_quit_is_kept_and_sent_by_the_next_start(
    tmp_path: Path,
) -> None:
    """The room is still being read when the person sends, then quits (the send is
    cancelled). What they typed is in the outbox, unsigned; the next start signs it on
    the head it reads and delivers it once, on her chain."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    outbox = tmp_path / "outbox.sqlite"

    async def quit_while_waiting() -> None:
        box = Outbox(outbox)
        engine = SyncEngine(store, outbox=box, config=QUIET)
        store.gate = asyncio.Event()  # the room's read waits
        try:
            await engine.open_room(ROOM)
            sending = asyncio.ensure_future(
                engine.send(ROOM, ALICE, key(1), text("three"), keep=True)
            )
            await until_held(box, 1)
            assert not sending.done()  # still waiting for the room's read
            sending.cancel()  # the quit
            with pytest.raises(asyncio.CancelledError):
                await sending
        finally:
            await engine.close()
            box.close()

    async def next_start() -> None:
        box = Outbox(outbox)
        [kept] = box.held()
        assert (kept.room_id, kept.sender_key, kept.user_id) == (ROOM, ALICE_KEY, ALICE)
        assert kept.drafts == tuple(text("three"))
        assert box.is_empty()  # nothing signed: nothing queued for delivery yet
        engine = SyncEngine(store, outbox=box, config=QUIET)
        store.gate = None
        try:
            engine.resume_held(ALICE, key(1), [ROOM])
            await until_queued(box)
            assert box.held() == []  # taken off as it was queued
            assert await engine.flush(timeout=10)
        finally:
            await engine.close()
            box.close()

    run(quit_while_waiting())
    run(next_start())
    assert_linear_and_verified(store, ["one", "hi", "two", "three"])
    run(resume_again(store, outbox))  # nothing kept is sent twice
    assert_linear_and_verified(store, ["one", "hi", "two", "three"])


async def until_queued(box: Outbox) -> None:
    while box.is_empty():
        await asyncio.sleep(0.005)


async def resume_again(store: GatedStorage, outbox: Path) -> None:
    box = Outbox(outbox)
    engine = SyncEngine(store, outbox=box, config=QUIET)
    try:
        await engine._publisher.resume_held(ALICE, key(1), {ROOM})
        assert box.is_empty() and box.held() == []
    finally:
        await engine.close()
        box.close()


def test_two_kept_first_sends_at_once_continue_one_chain(tmp_path: Path) -> None:
    """Two first sends while the room is read (a message and another one): both kept,
    then queued one after the other from the one head, never two chains."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)

    async def go() -> None:
        box = Outbox(tmp_path / "outbox.sqlite")
        engine = SyncEngine(store, outbox=box, config=QUIET)
        store.gate = asyncio.Event()
        try:
            await engine.open_room(ROOM)
            first = asyncio.ensure_future(engine.send(ROOM, ALICE, key(1), text("a"), keep=True))
            second = asyncio.ensure_future(engine.send(ROOM, ALICE, key(1), text("b"), keep=True))
            await until_held(box, 2)
            store.gate.set()
            await asyncio.gather(first, second)
            assert box.held() == []
            assert await engine.flush(timeout=10)
        finally:
            store.gate.set()
            await engine.close()
            box.close()

    run(go())
    assert_linear_and_verified(store, ["one", "hi", "two", "a", "b"])


def test_a_send_cut_off_by_the_storages_removal_says_so_and_keeps_the_text(
    tmp_path: Path,
) -> None:
    """The engine closes under a first send waiting for the room's read (the storage
    removed in Settings). The send ends with words for a person, saying the text is kept,
    and it is: the storage added again sends it. Not kept (a command's send): said too.
    Neither is a program fault (a RuntimeError of the stopped pools, red team rt87)."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    outbox = tmp_path / "outbox.sqlite"

    async def removed(keep: bool) -> str:
        box = Outbox(outbox)
        engine = SyncEngine(store, outbox=box, config=QUIET)
        store.gate = asyncio.Event()
        try:
            await engine.open_room(ROOM)
            sending = asyncio.ensure_future(
                engine.send(ROOM, ALICE, key(1), text("three"), keep=keep)
            )
            if keep:
                await until_held(box, 1)
            # Wherever the send is then, it says so. (The room's read stops once its
            # download, held at the gate here, ends: opened once the send said it.)
            closing = asyncio.ensure_future(engine.close())
            with pytest.raises(SendStoppedError) as said:
                await sending
            store.gate.set()
            await closing
            return str(said.value)
        finally:
            store.gate.set()
            await engine.close()
            box.close()

    said = run(removed(keep=False))
    assert said.startswith("not sent: ") and said.endswith("nothing of it was kept")
    said = run(removed(keep=True))
    assert said.startswith("not sent: ") and "kept on this device" in said
    store.gate = None

    async def added_again() -> None:
        box = Outbox(outbox)
        assert len(box.held()) == 1
        engine = SyncEngine(store, outbox=box, config=QUIET)
        try:
            engine.resume_held(ALICE, key(1), [ROOM])
            await until_queued(box)
            assert await engine.flush(timeout=10)
        finally:
            await engine.close()
            box.close()

    run(added_again())
    assert_linear_and_verified(store, ["one", "hi", "two", "three"])


def test_a_kept_send_the_storage_does_not_answer_for_is_refused_not_kept(
    tmp_path: Path,
) -> None:
    """The storage gives no answer in time: the send is refused ("nothing was queued"),
    as before, and its hold goes with it (it is said, not sent later unasked): its row,
    shown "sending" while it waited, goes too."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    said: list[EngineEvent] = []

    async def go() -> None:
        box = Outbox(None)
        engine = SyncEngine(store, outbox=box, config=QUIET, listener=said.append)
        store.gate = asyncio.Event()  # never opened before the send gives up
        try:
            await engine.open_room(ROOM)
            with pytest.raises(NotQueuedError, match="nothing was queued: no answer"):
                await engine.send(ROOM, ALICE, key(1), text("lost"), keep=True)
            assert box.held() == [] and box.is_empty()
        finally:
            store.gate.set()
            await engine.close()
            box.close()

    run(go())
    kept = [(e.seq, e.kept) for e in said if isinstance(e, SendKept)]
    assert kept == [(1, True), (1, False)]


def test_a_send_kept_is_resumed_only_for_its_rooms_user_and_key(tmp_path: Path) -> None:
    """What another key (or user) kept, or what was kept for a room no longer joined,
    stays kept and is not signed by the key resuming."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    box = Outbox(tmp_path / "outbox.sqlite")
    box.hold(ROOM, b64encode(bytes(key(9).verify_key)), ALICE, None, text("other key"))
    box.hold(ROOM, ALICE_KEY, "mallory@example.com", None, text("other user"))
    box.hold("room-left", ALICE_KEY, ALICE, None, text("left"))

    async def go() -> None:
        engine = SyncEngine(store, outbox=box, config=QUIET)
        try:
            await engine._publisher.resume_held(ALICE, key(1), {ROOM})
        finally:
            await engine.close()

    try:
        run(go())
        assert len(box.held()) == 3 and box.is_empty()
    finally:
        box.close()


def test_a_send_kept_for_a_room_not_followed_goes_out_once_it_is_joined_again(
    tmp_path: Path,
) -> None:
    """What was kept when its storage was removed (the app's message says it goes out
    once the app opens the room there again): the storage added back without the room
    sends nothing of it; joining the room again sends it, once, after the join."""
    client, entry, _events = local_client(tmp_path)
    me = b64encode(bytes(client._signer()[1].verify_key))

    async def go() -> list[str]:
        try:
            return await scenario()
        finally:
            await client.close()

    async def scenario() -> list[str]:
        await client.attach(entry)
        await client.create_room(entry.id, ROOM, "Plans")
        box = client._storages[entry.id].outbox
        assert box is not None
        box.hold(ROOM, me, LOCAL_ALICE, "Alice", text("kept"))
        await client.detach(entry.id)  # removed before it could be sent
        entry.rooms.clear()  # added back, the room not joined
        await client.attach(entry)
        box = client._storages[entry.id].outbox
        assert box is not None and len(box.held()) == 1
        await client.join_room(entry.id, ROOM, show=False)
        await until_held(box, 0, exactly=True)  # signed and queued
        assert await client.flush(entry.id, timeout=10)
        view = await read_room(LocalStorage(Path(entry.spec)), ROOM)
        assert view.result is not None
        return [
            a.event.body or a.event.type for a in view.result.timeline if a.event.sender_key == me
        ]

    mine = run(go())
    assert mine[-2:] == [MEMBER, "kept"]
    assert mine.count("kept") == 1
