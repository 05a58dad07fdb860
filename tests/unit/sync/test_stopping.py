"""Stopping what one started absorbs only that: a caller cancelled while ``answer_within``
gives up its step, or while ``ChatClient.close`` stops its engines, is cancelled (both
absorbed it, and went on as if nobody had asked them to stop)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from held_storage import Held, hold_all
from nacl.signing import SigningKey

from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.sync import client as client_module
from bucket_chat_desktop.sync.client import ChatClient
from bucket_chat_desktop.sync.stopping import close_in_turn
from bucket_chat_desktop.sync.watched import NoAnswerError, answer_within, watched

ALICE = "alice@example.com"
KEY = SigningKey(bytes([1]) * 32)


def given_up(tmp_path: Path, *, cancel_caller: bool) -> None:
    """A step whose one request gets no answer is given up after 0.05 s; cancelled, the
    step winds down until it is cancelled again (``cancel_caller``: by the caller's own
    cancellation, which arrives meanwhile) or at once."""

    async def go() -> None:
        store = watched(Held(tmp_path, hold_all))
        winding_down = asyncio.Event()

        async def step() -> bytes:
            try:
                return await store.get("rooms/r/metadata.json")
            except asyncio.CancelledError:
                winding_down.set()
                if cancel_caller:
                    await asyncio.Event().wait()  # ends only when cancelled again
                raise

        caller = asyncio.create_task(answer_within(store, step(), 0.05))
        await asyncio.wait_for(winding_down.wait(), 5)
        if cancel_caller:
            caller.cancel()
        await asyncio.wait_for(caller, 5)

    asyncio.run(go())


def test_a_step_given_up_raises_no_answer(tmp_path: Path) -> None:
    with pytest.raises(NoAnswerError):
        given_up(tmp_path, cancel_caller=False)


def test_the_callers_cancellation_while_the_step_winds_down_is_raised(tmp_path: Path) -> None:
    with pytest.raises(asyncio.CancelledError):  # was NoAnswerError: the cancel was lost
        given_up(tmp_path, cancel_caller=True)


def test_a_close_cancelled_is_cancelled_and_still_closes_its_engines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    entry = StorageSettings(str(store), "Team share", ["room-a", "room-b"])
    hung = Held(store, hold_all)  # the rooms' opens wait for the storage
    monkeypatch.setattr(client_module, "open_storage", lambda spec: hung)

    async def go() -> None:
        client = ChatClient(
            Settings(ALICE, "Alice", [entry]),
            ALICE,
            KEY,
            lambda _sid, _e: None,
            data_dir=tmp_path / "data",
        )
        await client.attach(entry)
        await hung.wait_held()
        closing = asyncio.create_task(client.close())
        await asyncio.sleep(0)  # close is stopping the opens now
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):  # it returned as if not cancelled
            await asyncio.wait_for(closing, 5)
        assert closing.cancelled()
        me = asyncio.current_task()
        assert [t.get_name() for t in asyncio.all_tasks() if t is not me] == []
        assert not client.is_attached(entry.id)

    asyncio.run(go())


def test_closing_runs_every_step_however_often_the_caller_is_cancelled() -> None:
    """Each cancellation ends the wait of the step it arrives in, never the closing: the
    steps after it run (the engine's threads, the index, the storage), a failing step
    is logged, and the caller is cancelled once all ran."""
    ran: list[str] = []

    async def go() -> None:
        waiting = asyncio.Event()

        async def waits(name: str) -> None:
            ran.append(name)
            waiting.set()
            await asyncio.Event().wait()  # ends when the caller is cancelled

        async def fails() -> None:
            ran.append("fails")
            raise OSError("disk gone")

        async def last() -> None:
            ran.append("last")

        closing = asyncio.create_task(
            close_in_turn(
                lambda: waits("first"), lambda: waits("second"), fails, last, what="a test"
            )
        )
        for _ in range(2):  # cancelled in the first step, then again in the second
            await waiting.wait()
            waiting.clear()
            closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(closing, 5)

    asyncio.run(go())
    assert ran == ["first", "second", "fails", "last"]
