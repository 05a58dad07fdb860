"""Discarding a send the app kept unsigned (``Outbox.hold``), through the engine
(``SyncEngine.discard_held``): a kept send that can never go out (its key replaced on
this device, too large once its chain link is added) was shown "not sent" at every start,
and nothing could be done about it but copy its text. Now the person can let it go; only
while it is still a hold (another process of this device may have signed it meanwhile:
then it is shown queued and nothing is discarded), and its rows go.

Through a real outbox file; the engine's events as the app's controller gets them."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

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
from test_kept_first_send import ALICE_KEY, text, until_held
from test_kept_send_signed_elsewhere import alice_head, bodies

from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, OutboxChanged, SendKept
from bucket_chat_desktop.sync.outbox import Discard, Outbox
from bucket_chat_desktop.sync.publisher import UNSENT_HINT


def kept_events(said: list[EngineEvent], seq: int) -> list[tuple[bool, str]]:
    return [(e.kept, e.error) for e in said if isinstance(e, SendKept) and e.seq == seq]


def test_a_message_kept_for_a_replaced_key_can_be_discarded_and_is_not_shown_again(
    tmp_path: Path,
) -> None:
    """The rt92 row ("not sent: the key that was to sign it was replaced on this device")
    says it can be discarded; discarding it takes it off the outbox, its row goes, and
    the next start shows nothing of it; the room's sends go on."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    old_key = b64encode(bytes(key(9).verify_key))
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    seq = box.hold(ROOM, old_key, ALICE, None, text("typed before the key was replaced"))
    box.close()
    said: list[EngineEvent] = []

    async def start(discard: bool) -> None:
        box = Outbox(path)
        engine = SyncEngine(store, outbox=box, config=QUIET, listener=said.append)
        try:
            await engine._publisher.resume_held(ALICE, key(1), {ROOM})
            if discard:
                answer = await engine.discard_held(ROOM, seq)
                assert answer.outcome is Discard.DISCARDED
                assert answer.hold is not None and answer.hold.sender_key == old_key
                assert await engine.held() == ()
                await engine.send(ROOM, ALICE, key(1), text("typed now"), keep=True)
                assert await engine.flush(timeout=10)
        finally:
            await engine.close()
            box.close()

    run(start(discard=True))
    [(shown, error), gone] = kept_events(said, seq)
    assert shown and error.endswith(UNSENT_HINT), error
    assert gone == (False, "")
    said.clear()
    run(start(discard=False))
    assert kept_events(said, seq) == []  # gone for good: the next start shows nothing
    assert_linear_and_verified(store, ["one", "hi", "two", "typed now"])


def test_a_kept_send_discarded_while_this_engine_waits_to_sign_it_is_never_signed(
    tmp_path: Path,
) -> None:
    """The person discards a kept send while its own send still waits for the room's
    read: once the read completes the send finds it gone, queues nothing, raises
    nothing; the room never gets it."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    said: list[EngineEvent] = []
    outcome: dict[str, object] = {}

    async def go() -> None:
        box = Outbox(tmp_path / "outbox.sqlite")
        engine = SyncEngine(store, outbox=box, config=QUIET, listener=said.append)
        store.gate = asyncio.Event()  # the room's read waits
        try:
            await engine.open_room(ROOM)
            sending = asyncio.ensure_future(
                engine.send(ROOM, ALICE, key(1), text("second thoughts"), keep=True)
            )
            await until_held(box, 1, send=sending)
            assert not sending.done()
            [hold] = box.held()
            outcome["discard"] = (await engine.discard_held(ROOM, hold.seq)).outcome
            store.gate.set()
            outcome["answer"] = await sending
            assert await engine.flush(timeout=10)
            outcome["left"] = (box.held(), box.pending())
        finally:
            store.gate.set()
            await engine.close()
            box.close()

    run(go())
    assert outcome["discard"] is Discard.DISCARDED
    assert outcome["answer"] == []
    assert outcome["left"] == ([], [])
    assert not any(
        isinstance(e, OutboxChanged) and "second thoughts" in bodies(e.events) for e in said
    )
    assert kept_events(said, 1)[-1] == (False, "")  # its row went
    assert_linear_and_verified(store, ["one", "hi", "two"])


def test_discarding_a_kept_send_another_process_signed_shows_it_sent_and_discards_nothing(
    tmp_path: Path,
) -> None:
    """The command line (another connection to the outbox file) signed the kept send
    before the person's Discard reached the outbox: the answer is SIGNED, its row gives
    way to the event it was signed as ("sending"), and that event is delivered."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    head = alice_head(tmp_path / "store")
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    seq = box.hold(ROOM, ALICE_KEY, ALICE, None, text("typed in the app"))
    said: list[EngineEvent] = []

    async def go() -> None:
        engine = SyncEngine(store, outbox=box, config=QUIET, listener=said.append)
        try:
            command = Outbox(path)
            try:
                command.seed_head(ROOM, ALICE_KEY, head)
                command.enqueue(
                    room_id=ROOM,
                    user_id=ALICE,
                    signing_key=key(1),
                    drafts=text("typed in the terminal"),
                    clock=lambda: time.time_ns() // 1_000_000,
                    unique=lambda: str(uuid.uuid4()),
                )
            finally:
                command.close()
            answer = await engine.discard_held(ROOM, seq)
            assert answer.outcome is Discard.SIGNED
            assert [e.content.get("body") for e in answer.signed][-1] == "typed in the app"
            assert await engine.flush(timeout=10)
        finally:
            await engine.close()
            box.close()

    run(go())
    shown = [
        i
        for i, e in enumerate(said)
        if isinstance(e, OutboxChanged)
        and "typed in the app" in bodies(e.events)
        and e.state == "sending"
    ]
    gone = next(i for i, e in enumerate(said) if isinstance(e, SendKept) and e.seq == seq)
    assert shown and shown[0] < gone
    assert kept_events(said, seq) == [(False, "")]
    assert_linear_and_verified(
        store, ["one", "hi", "two", "typed in the app", "typed in the terminal"]
    )
