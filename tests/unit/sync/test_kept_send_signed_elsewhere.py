"""A send the app kept (``Outbox.hold``) that another process of this device signs
first: ``bucket-chat send`` (or ``chat``) on the same profile signs the older holds of
its room and key before its own message (``Outbox.enqueue``). The app's own try for it
may then fail (the storage does not answer it), or find it gone: either way the message
is queued, once, and the app shows it as such — never "nothing was queued" (red team
rt92: the person was told it was not sent, typed it again, and it was in the room
twice)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
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

from bucket_chat_desktop import paths
from bucket_chat_desktop.keys.store import open_key_store
from bucket_chat_desktop.protocol.event import Event
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.device_files import outbox_file
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, OutboxChanged, SendKept
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.session import read_room

PASSPHRASE = "correct horse battery staple"


class AskedStorage(GatedStorage):
    """``GatedStorage`` that tells when a segment's download waits at the gate."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.asked = asyncio.Event()

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        if self.gate is not None and "/logs/" in path:
            self.asked.set()
        return await super().get(path, max_bytes=max_bytes)


def alice_head(root: Path) -> Event:
    view = run(read_room(LocalStorage(root), ROOM))
    assert view.result is not None
    return [a.event for a in view.result.timeline if a.event.sender_key == ALICE_KEY][-1]


def bodies(events: list[Event]) -> list[Any]:
    return [e.content.get("body") for e in events]


def shown_then_gone(said: list[EngineEvent], seq: int, body: str) -> None:
    """The hold's text is shown "sending" as the events it was signed as, and only then
    does its own row go; it is never said "not sent", nor refused."""
    kept = [(e.seq, e.kept, e.error) for e in said if isinstance(e, SendKept)]
    assert kept == [(seq, True, ""), (seq, False, "")], kept
    shown = [
        i
        for i, e in enumerate(said)
        if isinstance(e, OutboxChanged) and body in bodies(e.events) and e.state == "sending"
    ]
    gone = next(i for i, e in enumerate(said) if isinstance(e, SendKept) and not e.kept)
    assert shown and shown[0] < gone, said


def test_a_kept_send_the_command_signed_while_the_room_was_read_is_shown_queued(
    tmp_path: Path,
) -> None:
    """The app's first send in a room still being read is kept; a command's send on the
    same outbox file learns the head and signs it first. The app's send, once its wait
    for the read gives up, finds the head the command recorded: it queues nothing more,
    raises nothing, and shows the message "sending", as the event it was signed as."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)
    head = alice_head(tmp_path / "store")
    path = tmp_path / "outbox.sqlite"
    said: list[EngineEvent] = []
    outcome: dict[str, Any] = {}

    async def go() -> None:
        box = Outbox(path)
        engine = SyncEngine(store, outbox=box, config=QUIET, listener=said.append)
        store.gate = asyncio.Event()  # the room's read gets no answer for now
        try:
            await engine.open_room(ROOM)
            sending = asyncio.ensure_future(
                engine.send(ROOM, ALICE, key(1), text("typed in the app"), keep=True)
            )
            await until_held(box, 1, send=sending)
            assert not sending.done()
            command = Outbox(path)  # as `bucket-chat send` on the same profile
            drained: list[int] = []
            try:
                command.seed_head(ROOM, ALICE_KEY, head)
                command.enqueue(
                    room_id=ROOM,
                    user_id=ALICE,
                    signing_key=key(1),
                    drafts=text("typed in the terminal"),
                    clock=lambda: time.time_ns() // 1_000_000,
                    unique=lambda: str(uuid.uuid4()),
                    drained=drained,
                )
            finally:
                command.close()
            assert drained == [1]
            outcome["answer"] = await sending  # no NotQueuedError
            outcome["queued"] = [p.line for p in box.pending(ROOM) if "typed in the app" in p.line]
            outcome["noted"] = box.replaced(1)
        finally:
            store.gate.set()
            await engine.close()
            box.close()

    run(go())
    assert outcome["answer"] == []  # this send queued nothing of its own: the command did
    assert len(outcome["queued"]) == 1
    assert outcome["noted"] is None  # shown: the note is let go
    shown_then_gone(said, 1, "typed in the app")


def test_a_resumed_kept_send_signed_elsewhere_while_its_try_waits_is_not_said_unsent(
    tmp_path: Path,
) -> None:
    """A start resumes a kept send; the storage does not answer its try, and meanwhile a
    command's send signs it. Its row is not left "not sent yet … tried again" (nothing
    is left to try): it shows the queued event, and nothing is tried again."""
    store = AskedStorage(tmp_path / "store")
    a_room_with_history(store)
    head = alice_head(tmp_path / "store")
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    box.hold(ROOM, ALICE_KEY, ALICE, None, text("kept last time"))
    box.close()
    said: list[EngineEvent] = []

    async def start() -> None:
        box = Outbox(path)
        engine = SyncEngine(store, outbox=box, config=QUIET, listener=said.append)
        store.gate = asyncio.Event()  # no answer
        try:
            engine.resume_held(ALICE, key(1), [ROOM])
            await store.asked.wait()  # the try asks the storage for the chain's head
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
            (resume,) = [t for t in engine._tasks if t.get_name() == "bc-resume-held"]
            await resume
            assert engine._publisher._unsent == {}  # nothing left to try when read
        finally:
            store.gate.set()
            await engine.close()
            box.close()

    run(start())
    shown_then_gone(said, 1, "kept last time")


def test_a_kept_send_that_bucket_chat_send_signed_in_another_process_is_not_said_unsent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real processes on one profile: the app's first send in a room is kept while
    its read of the storage gets no answer; ``bucket-chat send`` (a process of its own,
    whose reads are answered) signs the kept message first, then its own, and delivers
    both. The app's try then gives up on the storage, and its send, which once said
    "nothing was queued" and took the row away, now shows the message as the event the
    command signed; the room holds it once, before the command's."""
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BUCKET_CHAT_KEY_STORE", "file")
    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("BUCKET_CHAT_STORAGE", raising=False)
    open_key_store().save(ALICE, key(1))
    store = AskedStorage(tmp_path / "store")
    a_room_with_history(store)
    path = outbox_file(paths.data_dir(), store)  # the command's outbox of that storage
    path.parent.mkdir(parents=True, exist_ok=True)
    said: list[EngineEvent] = []
    outcome: dict[str, Any] = {}

    async def go() -> None:
        box = Outbox(path)
        engine = SyncEngine(store, outbox=box, config=QUIET, listener=said.append)
        store.gate = asyncio.Event()  # this process's reads get no answer
        try:
            sending = asyncio.ensure_future(
                engine.send(ROOM, ALICE, key(1), text("typed in the app"), keep=True)
            )
            await until_held(box, 1, send=sending)
            await store.asked.wait()  # the app's send waits for the storage
            # Run while this process waits (its loop is held): the command's whole run
            # falls within the app's wait for the storage, as it does over a slow link.
            command = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bucket_chat_desktop.cli",
                    "-s",
                    str(tmp_path / "store"),
                    "send",
                    "--room-id",
                    ROOM,
                    "--user-id",
                    ALICE,
                    "typed in the terminal",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                # the key store took the passphrase out of this process's environment
                env={**os.environ, "BUCKET_CHAT_PASSPHRASE": PASSPHRASE},
            )
            outcome["command"] = command
            try:
                outcome["answer"] = await sending
            except Exception as exc:  # the test says what it was
                outcome["error"] = exc
        finally:
            store.gate.set()
            await engine.close()
            box.close()

    run(go())
    command = outcome["command"]
    assert command.returncode == 0, command
    assert "also sent 1 message(s) kept by the app" in command.stderr, command
    assert "error" not in outcome, outcome["error"]
    assert outcome["answer"] == []
    shown_then_gone(said, 1, "typed in the app")
    assert_linear_and_verified(
        store, ["one", "hi", "two", "typed in the app", "typed in the terminal"]
    )
