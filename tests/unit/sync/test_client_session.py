"""``ChatClient.session``: the client of one storage the command line and the first-run
wizard use (no app settings), and the calls they make of it instead of an engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol import relation_drafts as drafting
from bucket_chat_desktop.protocol.attachments import FileInfo, parse_file_content
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.storage.base import Level, StorageError
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.client import ChatClient, RoomRef
from bucket_chat_desktop.sync.events import EngineEvent, RoomLoaded
from bucket_chat_desktop.sync.watched import NoAnswerError

ALICE = "alice@example.com"
KEY = SigningKey(bytes(range(32)))


def test_a_room_key_names_its_room_and_a_key_without_a_slash_names_none() -> None:
    ref = RoomRef("8c6815e64530", "plans/2026")  # the room id is all after the first "/"
    assert RoomRef.from_key(ref.key) == ref
    assert RoomRef.from_key("s/") == RoomRef("s", "")
    for key in ("", "no-slash-at-all"):  # never a room of an empty id (nor a crash elsewhere)
        with pytest.raises(ValueError, match="not a room key"):
            RoomRef.from_key(key)


def test_a_session_creates_sends_reads_and_closes_what_it_opened(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    data = tmp_path / "data"
    seen: list[EngineEvent] = []

    async def run() -> None:
        async with ChatClient.session(
            store, identity=(ALICE, KEY), displayname="Alice", data_dir=data, listener=seen.append
        ) as client:
            sid = client.session_storage
            assert client.is_attached(sid) and client.describe(sid) == store.describe()
            ref = await client.create_room(sid, "plans", "Plans", show=False)
            assert ref == client.room("plans") == RoomRef(sid, "plans")
            assert await client.knows_room(ref)  # its outbox has it: no storage call needed
            (sent,) = await client.send(ref, [(MESSAGE, {"body": "hi", "msgtype": "m.text"})])
            assert [p.event_id for p in await client.pending(sid)][-1] == sent.event_id
            assert await client.within(sid, client.flush(sid, timeout=10))
            assert await client.pending(sid) == ()
            await client.open_room(ref, wait=True)
            view = await client.room_view(ref)
            assert view is not None and view.result is not None
            bodies = [a.event.content.get("body") for a in view.result.timeline]
            assert "hi" in bodies
            assert await client.room_name(ref) == "Plans"
            assert await client.timeline_length(ref) == len(view.result.timeline)
            assert [r.room_id for r in await client.cached_rooms(sid)] == ["plans"]
            listed = await client.storage_rooms(sid, limit=None)
            assert not listed.from_cache and [(r.room_id, r.name) for r in listed.rooms] == [
                ("plans", "Plans")
            ]
            assert listed.rooms[0].metadata is not None  # who it claims made it: the CLI says
            cached = await client.cached_room(ref)
            assert cached is not None and cached.result is not None
            assert await client.last_read(ref) is not None
            page = await client.search_read(sid, "hi")
            assert [h.event_id for h in page.hits] == [sent.event_id]
            # Attachments: up and down through the client, checked against the hash.
            (tmp_path / "f.txt").write_bytes(b"file bytes")
            content = await client.upload_blob(ref, tmp_path / "f.txt", limit_bytes=1000)
            info = parse_file_content(content)
            assert isinstance(info, FileInfo), info
            assert await client.download_blob(ref, info) == b"file bytes"
        assert not client.is_attached(sid)  # closed on exit
        # The storage stays the caller's: still usable.
        assert await store.list_dirs("rooms/") == ["plans"]

    asyncio.run(run())
    assert any(isinstance(e, RoomLoaded) and e.room_id == "plans" for e in seen)


def test_a_reading_session_has_no_key_no_outbox_and_no_index(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")

    async def run() -> None:
        async with ChatClient.session(
            store, index=False, outbox=False, data_dir=tmp_path / "data"
        ) as client:
            ref = client.room("plans")
            with pytest.raises(RuntimeError, match="no signing key"):
                await client.send(ref, [(MESSAGE, {"body": "x", "msgtype": "m.text"})])
            assert await client.pending(ref.storage_id) == ()
            assert await client.room_name(ref) is None
            assert await client.cached_rooms(ref.storage_id) == ()
            assert not await client.knows_room(ref)
            assert not await client.room_exists(ref)
            await client.sign_as(ALICE, KEY)  # a key loaded later (the CLI's relation commands)
            with pytest.raises(RuntimeError, match="no outbox"):  # signed, nowhere to queue
                await client.send(ref, [(MESSAGE, {"body": "x", "msgtype": "m.text"})])
        assert not (tmp_path / "data").exists()  # nothing of this device was written

    asyncio.run(run())


def test_a_storage_that_is_not_attached_reads_as_empty_and_refuses_steps(
    tmp_path: Path,
) -> None:
    async def run() -> None:
        async with ChatClient.session(
            LocalStorage(tmp_path / "store"), data_dir=tmp_path / "data"
        ) as client:
            ref = RoomRef("elsewhere", "plans")
            assert not client.is_attached("elsewhere") and client.describe("elsewhere") is None
            assert await client.room_view(ref) is None and await client.room_name(ref) is None
            assert await client.pending("elsewhere") == ()
            for step in (
                client.flush("elsewhere"),
                client.open_room(ref),
                client.download_blob(ref, FileInfo("m.file", "a", 1, "text/plain", "0" * 64)),
            ):
                with pytest.raises(StorageError, match="not connected"):
                    await step

            async def never() -> None:
                raise AssertionError("not run")

            step = never()
            with pytest.raises(StorageError, match="not connected"):
                await client.within("elsewhere", step)  # and the step is closed, not leaked

    asyncio.run(run())


def test_within_gives_up_a_step_the_storage_does_not_answer(tmp_path: Path) -> None:
    class Silent(LocalStorage):
        async def list_level(self, prefix: str) -> Level:
            await asyncio.sleep(3600)
            return Level([], [])

    async def run() -> None:
        async with ChatClient.session(
            Silent(tmp_path / "store"), outbox=False, data_dir=tmp_path / "data"
        ) as client:
            sid = client.session_storage
            with pytest.raises(NoAnswerError, match="the storage"):
                step = client.room_exists(client.room("x"))
                await client.within(sid, step, 0.2, what="the storage")

    asyncio.run(run())


def test_relation_actions_follow_one_set_of_rules(tmp_path: Path) -> None:
    """The client refuses what every reader would ignore (``relation_drafts``, the rules
    the command line follows): an edit or deletion of another's message; it keeps a
    notice a notice; it acts on its own message still waiting in the outbox."""
    store = LocalStorage(tmp_path / "store")
    bob_key = SigningKey(bytes(range(1, 33)))

    async def run() -> None:
        async with ChatClient.session(
            store, identity=("bob@example.com", bob_key), data_dir=tmp_path / "bob"
        ) as bob:
            sid = bob.session_storage
            ref = await bob.create_room(sid, "plans", "Plans", show=False)
            (bobs,) = await bob.send(ref, [(MESSAGE, {"body": "bob's", "msgtype": "m.text"})])
            assert await bob.flush(sid, timeout=10)
        async with ChatClient.session(
            store, identity=(ALICE, KEY), data_dir=tmp_path / "alice"
        ) as client:
            sid = client.session_storage
            ref = await client.join_room(sid, "plans", show=False)
            (notice,) = await client.send(ref, [(MESSAGE, {"body": "fyi", "msgtype": "m.notice"})])
            assert await client.flush(sid, timeout=10)
            await client.open_room(ref, wait=True)
            with pytest.raises(drafting.Refused, match="not yours"):
                await client.edit_message(ref, bobs.event_id, "mine now")
            with pytest.raises(drafting.Refused, match="not yours"):
                await client.delete_event(ref, bobs.event_id)
            (edit,) = await client.edit_message(ref, notice.event_id, "fyi: done")
            assert edit.content["new_content"] == {"body": "fyi: done", "msgtype": "m.notice"}
            assert await client.flush(sid, timeout=10)
            await client.open_room(ref, wait=True)  # the edit read back: "fyi" is a change
            assert await client.edit_message(ref, notice.event_id, "fyi: done") == []
            assert await client.edit_message(ref, notice.event_id, "fyi") != []
            (react,) = await client.react(ref, bobs.event_id, "👍")
            assert react.content == {"relates_to": bobs.event_id, "reaction": "👍"}
            # Not published yet (this session does not poll): still found, as Alice's own.
            (waiting,) = await client.send(ref, [(MESSAGE, {"body": "typo", "msgtype": "m.text"})])
            assert waiting.event_id in [p.event_id for p in await client.pending(sid)]
            (fix,) = await client.edit_message(ref, waiting.event_id, "fixed")
            assert fix.content["replaces"] == waiting.event_id
            assert await client.edit_message(ref, waiting.event_id, "typo") == []  # says so

    asyncio.run(run())
