"""A first send in a room that must wait for the room's read (red team rt87): the app's
send (``keep``) is kept in the outbox, unsigned, before it waits (``Outbox.hold``), so a
quit, a crash or the storage's removal meanwhile loses nothing; it is signed through the
one path every send takes once the head is known, by that send or by the next start's
(``resume_held``), and the device's chain never forks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

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
from bucket_chat_desktop.sync.events import EngineEvent, OutboxChanged, SendKept
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.publisher import SendStoppedError
from bucket_chat_desktop.sync.session import read_room

ALICE_KEY = b64encode(bytes(key(1).verify_key))


def text(body: str) -> list[tuple[str, dict[str, str]]]:
    return [(MESSAGE, {"body": body, "msgtype": "m.text"})]


async def until_held(
    box: Outbox, count: int, *, exactly: bool = False, send: asyncio.Future[Any] | None = None
) -> None:
    """Until the outbox keeps ``count`` sends (each is kept before its send waits); with
    ``exactly``, no more either (the others were queued). ``send``: a send that ends
    meanwhile ends the wait (its outcome is then the test's to check)."""
    while len(box.held()) < count or (exactly and len(box.held()) != count):
        if send is not None and send.done():
            return
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
            await until_held(box, 1, send=sending)
            assert not sending.done(), sending  # still waiting for the room's read
            sending.cancel()  # the quit
            with pytest.raises(asyncio.CancelledError):
                await sending
        finally:
            store.gate.set()  # as a quit's own deadline would end a read that hangs
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


def test_a_send_kept_for_a_key_this_device_no_longer_has_is_shown_not_sent_with_its_text(
    tmp_path: Path,
) -> None:
    """Red team rt92, finding 1: a send kept for a key that was replaced since (or lost
    with its key store) was skipped by every resume, unseen for good: the typed text
    only in the outbox. Each start shows it in its room, "not sent" with why and with
    its text, and keeps it (the old key restored sends it); nothing signs it with the
    key now, nor holds the room's sends back. One typed as another user id is shown so
    too; one of a room not followed is not (its room is not shown)."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    old_key = b64encode(bytes(key(9).verify_key))
    box = Outbox(tmp_path / "outbox.sqlite")
    box.hold(ROOM, old_key, ALICE, None, text("typed before the key was replaced"))
    box.hold(ROOM, ALICE_KEY, "mallory@example.com", None, text("typed as another id"))
    box.hold("room-left", old_key, ALICE, None, text("left"))
    said: list[EngineEvent] = []

    async def go() -> None:
        engine = SyncEngine(store, outbox=box, config=QUIET, listener=said.append)
        try:
            await engine._publisher.resume_held(ALICE, key(1), {ROOM})
            await engine.send(ROOM, ALICE, key(1), text("typed now"), keep=True)
            assert await engine.flush(timeout=10)
        finally:
            await engine.close()

    try:
        run(go())
        assert [h.seq for h in box.held()] == [1, 2, 3]  # kept, text and all
    finally:
        box.close()
    kept = [e for e in said if isinstance(e, SendKept) and e.seq < 4]  # 4: "typed now"
    assert [(e.seq, e.kept, e.sender_id, e.sender_key) for e in kept] == [
        (1, True, ALICE, old_key),
        (2, True, "mallory@example.com", ALICE_KEY),
    ]
    assert kept[0].drafts == tuple(text("typed before the key was replaced"))
    assert kept[0].error == (
        "not sent: the key that was to sign it was replaced on this device (restoring "
        "that key sends it); right-click to copy its text or discard it"
    )
    assert kept[1].error == (
        "not sent: it was typed as mallory@example.com, and this device now sends as "
        "alice@example.com; right-click to copy its text or discard it"
    )
    assert_linear_and_verified(store, ["one", "hi", "two", "typed now"])


def test_a_send_kept_for_a_room_not_followed_goes_out_once_it_is_joined_again(
    tmp_path: Path,
) -> None:
    """What was kept when its storage was removed (the app's message says it goes out
    once the app opens the room there again): the storage added back without the room
    sends nothing of it; joining the room again sends it, once. The join's own event
    signs it first: it was typed before the join (``Outbox.enqueue`` keeps typed order)."""
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
    assert mine[-2:] == ["kept", MEMBER]
    assert mine.count("kept") == 1


def test_kept_sends_resumed_while_another_is_typed_go_out_in_typed_order(
    tmp_path: Path,
) -> None:
    """Red team rt90 (F2): an earlier run kept "first" and "second" (typed while the room
    was read, then a quit). At the next start the room is read again and she types
    "third" meanwhile. The resume sends one hold after the other, and "third" learned
    the head as soon as "first" did: it went out before "second", for good. Any send
    now signs the older holds of its room and key first (``Outbox.enqueue``)."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    box.hold(ROOM, ALICE_KEY, ALICE, None, text("first"))
    box.hold(ROOM, ALICE_KEY, ALICE, None, text("second"))
    box.close()

    async def next_start() -> None:
        box = Outbox(path)
        engine = SyncEngine(store, outbox=box, config=QUIET)
        store.gate = asyncio.Event()  # the room's read takes a while
        try:
            await engine.open_room(ROOM)
            engine.resume_held(ALICE, key(1), [ROOM])
            third = asyncio.ensure_future(
                engine.send(ROOM, ALICE, key(1), text("third"), keep=True)
            )
            await until_held(box, 3)  # all three kept, the read still going on
            store.gate.set()
            await third
            await until_held(box, 0, exactly=True)
            assert await engine.flush(timeout=10)
        finally:
            store.gate.set()
            await engine.close()
            box.close()

    run(next_start())
    assert_linear_and_verified(store, ["one", "hi", "two", "first", "second", "third"])


def test_a_kept_send_whose_resume_got_no_answer_is_not_overtaken_by_what_is_typed_next(
    tmp_path: Path,
) -> None:
    """Red team rt90 (F1): an earlier run kept "earlier". At the next start the storage
    does not answer for a moment and the resume gives up. The storage answers again, the
    room is read, and she types "later": it went out at once while "earlier" stayed in
    the outbox until some later start, after it. Readers see earlier, then later."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    box.hold(ROOM, ALICE_KEY, ALICE, None, text("earlier"))
    box.close()
    said: list[EngineEvent] = []

    async def next_start() -> None:
        box = Outbox(path)
        engine = SyncEngine(store, outbox=box, config=QUIET, listener=said.append)
        store.gate = asyncio.Event()  # no answer for now
        try:
            room = await engine.open_room(ROOM)
            engine.resume_held(ALICE, key(1), [ROOM])
            (resume,) = [t for t in engine._tasks if t.get_name() == "bc-resume-held"]
            # It gives up once the storage has not answered in time (today within
            # seconds); a resume that waits on for the room's read is fine too.
            await asyncio.wait([resume], timeout=30)
            kept = [(e.seq, e.kept) for e in said if isinstance(e, SendKept)]
            said_after = [e for e in said if not isinstance(e, SendKept)]
            record.append((kept, said_after))
            store.gate.set()  # the storage answers again
            assert room.backfill is not None
            await room.backfill  # the room is read
            await engine.send(ROOM, ALICE, key(1), text("later"), keep=True)
            assert await engine.flush(timeout=10)
            record.append(len(box.held()))
        finally:
            store.gate.set()
            await engine.close()
            box.close()

    async def a_later_start() -> None:  # whatever is still kept goes out now
        box = Outbox(path)
        engine = SyncEngine(store, outbox=box, config=QUIET)
        try:
            await engine._publisher.resume_held(ALICE, key(1), {ROOM})
            assert await engine.flush(timeout=10)
        finally:
            await engine.close()
            box.close()

    record: list[object] = []
    run(next_start())
    (kept, _others), still_held = record
    assert still_held == 0, kept  # "later" took "earlier" with it, first
    run(a_later_start())
    # Readers see what she typed in the order she typed it.
    assert_linear_and_verified(store, ["one", "hi", "two", "earlier", "later"])


def test_a_kept_send_a_resume_could_not_send_says_why_and_goes_out_when_the_room_is_read(
    tmp_path: Path,
) -> None:
    """A resume that gets no answer leaves the hold kept, its row says so and why ("not
    sent yet: …; it will be tried again", not "sending" for the whole run), and the
    room's read completing sends it, with nothing else typed."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    box.hold(ROOM, ALICE_KEY, ALICE, None, text("earlier"))
    box.close()
    said: list[EngineEvent] = []

    async def start() -> None:
        box = Outbox(path)
        engine = SyncEngine(store, outbox=box, config=QUIET, listener=said.append)
        store.gate = asyncio.Event()  # no answer for now
        try:
            room = await engine.open_room(ROOM)
            engine.resume_held(ALICE, key(1), [ROOM])
            (resume,) = [t for t in engine._tasks if t.get_name() == "bc-resume-held"]
            await resume  # gave up: the storage did not answer in time
            assert len(box.held()) == 1
            store.gate.set()  # the storage answers again
            assert room.backfill is not None
            await room.backfill  # the room is read: the hold is tried again
            await until_held(box, 0, exactly=True)
            assert await engine.flush(timeout=10)
        finally:
            store.gate.set()
            await engine.close()
            box.close()

    run(start())
    assert_linear_and_verified(store, ["one", "hi", "two", "earlier"])
    kept = [(e.seq, e.kept, e.error) for e in said if isinstance(e, SendKept)]
    assert [(seq, k) for seq, k, _ in kept] == [(1, True), (1, True), (1, True), (1, False)]
    assert [error != "" for _, _, error in kept] == [False, True, False, False]
    told = kept[1][2]
    assert told.startswith("not sent yet: ") and told.endswith("; it will be tried again")
    assert "answer" in told, told  # the storage's reason, not "try again" advice


def test_a_send_signs_the_older_holds_of_its_room_key_and_user_first_and_once(
    tmp_path: Path,
) -> None:
    """``Outbox.enqueue`` signs every older hold of its room, key and user first, oldest
    first, in its own transaction (and says which: ``drained``); other rooms', keys'
    and users' holds stay, and a second process of this device given a hold signed so
    queues nothing (it is signed once)."""
    path = tmp_path / "outbox.sqlite"
    one, two = Outbox(path), Outbox(path)  # two processes of one device
    other_key = b64encode(bytes(key(2).verify_key))
    try:
        one.hold(ROOM, ALICE_KEY, ALICE, None, text("a"))  # 1
        one.hold(ROOM, other_key, ALICE, None, text("other key"))  # 2
        one.hold("!other:room", ALICE_KEY, ALICE, None, text("other room"))  # 3
        one.hold(ROOM, ALICE_KEY, "bob@example.com", None, text("other user"))  # 4
        one.hold(ROOM, ALICE_KEY, ALICE, "Alice", text("b"))  # 5
        one.hold(ROOM, ALICE_KEY, ALICE, None, text("c"))  # 6
        one.seed_head(ROOM, ALICE_KEY, None)
        drained: list[int] = []
        stamps = iter(range(1_000, 2_000))
        events = one.enqueue(
            room_id=ROOM,
            user_id=ALICE,
            signing_key=key(1),
            drafts=text("d")[0:1],
            clock=lambda: next(stamps),
            unique=lambda: str(next(stamps)),
            held=5,
            drained=drained,
        )
        assert drained == [1]  # older than 5; 6 is younger: it waits for its own send
        assert [ev.type for ev in events] == [MEMBER, MESSAGE, MESSAGE]
        assert [ev.body for ev in events[1:]] == ["a", "d"]
        assert [ev.prev_event_hash for ev in events[1:]] == [ev.hash for ev in events[:-1]]
        assert [h.seq for h in two.held()] == [2, 3, 4, 6]
        again: list[int] = []
        late = two.enqueue(
            room_id=ROOM,
            user_id=ALICE,
            signing_key=key(1),
            drafts=text("a"),
            clock=lambda: next(stamps),
            unique=lambda: str(next(stamps)),
            held=1,
            drained=again,
        )
        assert late == [] and again == []  # signed once, by the first
        plain = two.enqueue(  # a send that was never kept (the command line) takes 6 first
            room_id=ROOM,
            user_id=ALICE,
            signing_key=key(1),
            drafts=text("e"),
            clock=lambda: next(stamps),
            unique=lambda: str(next(stamps)),
            drained=again,
        )
        assert again == [6] and [ev.body for ev in plain] == ["c", "e"]
        assert [h.seq for h in one.held()] == [2, 3, 4]
    finally:
        one.close()
        two.close()


def test_a_kept_send_said_not_sent_yet_and_signed_elsewhere_loses_its_row(
    tmp_path: Path,
) -> None:
    """A hold said "not sent yet" that another process of this device signs meanwhile
    (a command's send signs the older holds of its room and key first) is not left
    "not sent yet": the retry when the room is read finds it gone and its row goes."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    box.hold(ROOM, ALICE_KEY, ALICE, None, text("earlier"))
    box.close()
    said: list[EngineEvent] = []

    async def start() -> None:
        box = Outbox(path)
        engine = SyncEngine(store, outbox=box, config=QUIET, listener=said.append)
        store.gate = asyncio.Event()  # no answer for now
        try:
            room = await engine.open_room(ROOM)
            engine.resume_held(ALICE, key(1), [ROOM])
            (resume,) = [t for t in engine._tasks if t.get_name() == "bc-resume-held"]
            await resume
            elsewhere = Outbox(path)
            elsewhere.drop_held(1)  # as a command's send that signed it first would
            elsewhere.close()
            store.gate.set()
            assert room.backfill is not None
            await room.backfill
            retries = [t for t in engine._tasks if t.get_name() == "bc-resume-held"]
            assert len(retries) == 2  # the start's, and the one when the room was read
            await asyncio.gather(*retries)
        finally:
            store.gate.set()
            await engine.close()
            box.close()

    run(start())
    kept = [(e.seq, e.kept, bool(e.error)) for e in said if isinstance(e, SendKept)]
    assert kept == [(1, True, False), (1, True, True), (1, False, False)]


def test_a_kept_send_that_can_never_be_signed_is_refused_before_it_is_kept(
    tmp_path: Path,
) -> None:
    """Review a, A1: a first send too large to sign, typed while the room is read, was
    kept, refused at signing, and stayed kept: every later send in the room (and each
    start's resume) failed the same way. It is refused before it is kept now."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    said: list[EngineEvent] = []

    async def go() -> None:
        box = Outbox(tmp_path / "outbox.sqlite")
        engine = SyncEngine(store, outbox=box, config=QUIET, listener=said.append)
        store.gate = asyncio.Event()
        try:
            await engine.open_room(ROOM)
            with pytest.raises(ValueError, match="too large"):
                await engine.send(ROOM, ALICE, key(1), text("x" * 300_000), keep=True)
            assert box.held() == []
            store.gate.set()
            await engine.send(ROOM, ALICE, key(1), text("small"), keep=True)
            assert await engine.flush(timeout=10)
        finally:
            store.gate.set()
            await engine.close()
            box.close()

    run(go())
    assert_linear_and_verified(store, ["one", "hi", "two", "small"])
    kept = [e for e in said if isinstance(e, SendKept)]
    assert {e.seq for e in kept} == {1}  # the refused send was never kept nor shown
    assert kept[0].drafts == tuple(text("small"))


def test_a_kept_send_that_cannot_be_signed_is_set_aside_and_the_room_goes_on(
    tmp_path: Path,
) -> None:
    """Review a, A1: a hold that can never be signed (kept by an older version) stays
    kept, its row says "not sent: <why>", and neither the resume of the holds after it
    nor a new send waits behind it; the others keep their typed order."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    poison = box.hold(ROOM, ALICE_KEY, ALICE, None, text("x" * 300_000))
    box.hold(ROOM, ALICE_KEY, ALICE, None, text("after"))
    box.close()
    said: list[EngineEvent] = []

    async def start() -> None:
        box = Outbox(path)
        engine = SyncEngine(store, outbox=box, config=QUIET, listener=said.append)
        try:
            room = await engine.open_room(ROOM)
            assert room.backfill is not None
            await room.backfill
            engine.resume_held(ALICE, key(1), [ROOM])
            (resume,) = [t for t in engine._tasks if t.get_name() == "bc-resume-held"]
            await resume
            await engine.send(ROOM, ALICE, key(1), text("new"), keep=True)
            assert await engine.flush(timeout=10)
            assert [h.seq for h in box.held()] == [poison]  # kept, for the person to see
        finally:
            await engine.close()
            box.close()

    run(start())
    assert_linear_and_verified(store, ["one", "hi", "two", "after", "new"])
    told = {e.error for e in said if isinstance(e, SendKept) and e.seq == poison and e.error}
    assert told == {
        "not sent: refusing to write an invalid event: it is too large; right-click to copy "
        "its text or discard it"
    }


def test_enqueue_passes_over_an_older_hold_that_cannot_be_signed(tmp_path: Path) -> None:
    """``Outbox.enqueue``: an older hold whose signing fails is left kept and named in
    ``refused``; the send itself, and the holds that can be signed, are queued."""
    box = Outbox(tmp_path / "outbox.sqlite")
    box.seed_head(ROOM, ALICE_KEY, None)
    good = box.hold(ROOM, ALICE_KEY, ALICE, None, text("good"))
    bad = box.hold(ROOM, ALICE_KEY, ALICE, None, text("x" * 300_000))
    drained: list[int] = []
    refused: list = []
    events = box.enqueue(
        room_id=ROOM,
        user_id=ALICE,
        signing_key=key(1),
        drafts=text("now"),
        clock=lambda: 1_700_000_000_000,
        unique=lambda: "u",
        drained=drained,
        refused=refused,
    )
    assert [e.content.get("body") for e in events] == [None, "good", "now"]
    assert drained == [good]
    assert [(seq, why) for seq, why, _ in refused] == [
        (bad, "refusing to write an invalid event: it is too large")
    ]
    assert [h.seq for h in box.held()] == [bad]
    box.close()


def test_a_kept_send_refused_as_the_engine_closes_stays_kept_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review a, A2: a kept send refused (no answer) while the engine closed said "it is
    kept on this device" of a text it had just deleted. The wording follows what is in
    the outbox, and a send cut off by a close (its storage removed) keeps its text, to go
    out once the room is opened on that storage again, as a quit does (a CI run showed
    the close reaching the send through either path)."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)

    async def go() -> None:
        box = Outbox(None)
        engine = SyncEngine(store, outbox=box, config=QUIET)
        publisher = engine._publisher
        store.gate = asyncio.Event()

        async def refused_as_it_closes(*args: object) -> list[object]:
            engine._closed = True  # the storage is removed meanwhile
            raise NotQueuedError("nothing was queued: no answer")

        monkeypatch.setattr(publisher, "_send", refused_as_it_closes)
        try:
            await engine.open_room(ROOM)
            with pytest.raises(SendStoppedError) as stopped:
                await engine.send(ROOM, ALICE, key(1), text("lost"), keep=True)
            assert [h.drafts for h in box.held()] == [tuple(text("lost"))]
            assert "it is kept on this device" in str(stopped.value), stopped.value
        finally:
            store.gate.set()
            await engine.close()
            box.close()

    run(go())


def test_a_send_that_signs_older_holds_shows_their_events_before_their_rows_go(
    tmp_path: Path,
) -> None:
    """Review a, A3 and A4: the drained holds' rows gave way (``SendKept`` false) before
    ``OutboxChanged`` showed their events, so they vanished for a paint; and the send
    answered their events as its own. Now their events show first, and the send answers
    only its own (the others are told apart: ``held_signed``)."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    earlier = box.hold(ROOM, ALICE_KEY, ALICE, None, text("earlier"))
    box.close()
    said: list[EngineEvent] = []

    async def start() -> None:
        box = Outbox(path)
        engine = SyncEngine(store, outbox=box, config=QUIET, listener=said.append)
        try:
            room = await engine.open_room(ROOM)
            assert room.backfill is not None
            await room.backfill
            mine = await engine.send(ROOM, ALICE, key(1), text("now"), keep=True)
            assert [e.content.get("body") for e in mine] == ["now"]
            assert [e.content.get("body") for e in engine.held_signed] == ["earlier"]
            assert await engine.flush(timeout=10)
        finally:
            await engine.close()
            box.close()

    run(start())
    assert_linear_and_verified(store, ["one", "hi", "two", "earlier", "now"])
    shown = next(i for i, e in enumerate(said) if isinstance(e, OutboxChanged))
    gone = next(
        i for i, e in enumerate(said) if isinstance(e, SendKept) and e.seq == earlier and not e.kept
    )
    assert shown < gone
    changed = said[shown]
    assert isinstance(changed, OutboxChanged)
    assert "earlier" in [e.content.get("body") for e in changed.events]
