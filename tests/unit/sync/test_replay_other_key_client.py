"""A member signs an event of their own under Alice's event id, in a segment that sorts
first (PROTOCOL.md section 6 step 1), on a real local folder, index and engine: both
messages are shown (and after a restart, from the index alone), search finds each copy
and locates it at its own row, and what would act on the id is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from local_client import local_client
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol import relation_drafts as drafting
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.sync.client import ChatClient, RoomRef

ROOM = "room-1"
MALLORY = "mallory@example.com"


def planted(store: Path, taken: Event) -> str:
    """Mallory's join and her own message under ``taken``'s id, in a segment whose name
    sorts before ``taken``'s: returns its path."""
    key = SigningKey(bytes([7]) * 32)

    def signed(kind: str, content: dict[str, Any], ts: int, unique: str, prev: str | None) -> Event:
        return build_event(
            room_id=ROOM,
            sender_id=MALLORY,
            event_type=kind,
            content=content,
            timestamp_ms=ts,
            unique=unique,
            prev_event_hash=prev,
            signing_key=key,
        )

    join = signed(
        MEMBER,
        {"membership": "join"},
        taken.timestamp_ms - 1000,
        "00000000-0000-4000-8000-000000000007",
        None,
    )
    body = {"body": "lunch is cancelled", "msgtype": "m.text"}
    copy = signed(MESSAGE, body, taken.timestamp_ms, taken.event_id.rsplit("::", 1)[1], join.hash)
    assert copy.event_id == taken.event_id
    path = path_for([join, copy], client_id_for(MALLORY, bytes(key.verify_key)))
    (store / path).parent.mkdir(parents=True, exist_ok=True)
    (store / path).write_bytes(encode_segment([join, copy]))
    return path


async def shown_rows(client: ChatClient, ref: RoomRef) -> list[tuple[str, str]]:
    for _ in range(500):
        view = await client.room_view(ref)
        if view is not None and view.result is not None and len(view.result.timeline) >= 4:
            break
        await asyncio.sleep(0.01)
    assert view is not None and view.result is not None
    rows = await client.timeline_page(ref, view.result, 0, len(view.result.timeline))
    assert rows is not None
    return [(r.event.sender_id, r.event.body or "") for r in rows if isinstance(r.event, Event)]


def test_both_copies_shown_found_and_never_acted_on(tmp_path: Path) -> None:
    client, entry, _ = local_client(tmp_path)
    store = Path(entry.spec)
    out: dict[str, Any] = {}

    async def first_run() -> None:
        await client.attach(entry)
        try:
            ref = await client.create_room(entry.id, ROOM, "Plans")
            [msg] = await client.send_text(ref, "lunch at noon?")
            await client.flush(entry.id, timeout=5)
            out["id"] = msg.event_id
            out["planted"] = planted(store, msg)
            await client.reaudit(ref)
            out["rows"] = await shown_rows(client, ref)
            view = await client.room_view(ref)
            assert view is not None and view.result is not None
            out["kinds"] = [f.kind for f in view.result.findings]
            with pytest.raises(drafting.Refused, match="shown more than once"):
                await client.react(ref, msg.event_id, "👍")
            with pytest.raises(drafting.Refused, match="shown more than once"):
                await client.send_text(ref, "which one?", reply_to=msg.event_id)
            await client._storages[entry.id].engine.catch_up_text()
            found = await client.search("lunch")
            out["hits"] = sorted((h.sender_id, h.snippet.text) for h in found.hits)
            places = {
                h.sender_id: await client.locate(ref, view.result, h.event_id, (h.path, h.line))
                for h in found.hits
            }
            out["places"] = places
            out["unplaced"] = await client.locate(ref, view.result, msg.event_id)
        finally:
            await client.close()

    asyncio.run(first_run())
    me = client.user_id
    both = [(MALLORY, "lunch is cancelled"), (me, "lunch at noon?")]
    assert [r for r in out["rows"] if r[1]] == both  # tied: the first path first
    assert Kind.REPLAY in out["kinds"] and Kind.GAP not in out["kinds"]
    assert out["hits"] == sorted(both)
    assert sorted(out["places"].values()) == [2, 3]  # each hit at its own row
    assert out["places"][MALLORY] == 2 and out["unplaced"] is None  # no copy picked

    # A restart: the room as the index knows it, before the storage is read again.
    again, entry2, _ = local_client_again(tmp_path, entry.spec)

    async def second_run() -> list[tuple[str, str]]:
        await again.attach(entry2)
        try:
            ref = RoomRef(entry2.id, ROOM)
            view = await again.cached_room(ref)
            assert view is not None and view.result is not None
            assert view.result.timeline.repeated == {out["id"]}
            assert view.relations is not None and view.relations.repeated == {out["id"]}
            assert view.result.timeline.whole  # a cached room's rows carry their bodies
            rows = view.result.timeline
            return [(r.event.sender_id, r.event.body or "") for r in rows if r.event.body]
        finally:
            await again.close()

    assert asyncio.run(second_run()) == both


def local_client_again(tmp_path: Path, spec: str) -> tuple[ChatClient, Any, Any]:
    """The same device again (its data folder and storage), as after a restart."""
    from bucket_chat_desktop.settings import Settings, StorageSettings

    entry = StorageSettings(spec, "Team share", [])
    client = ChatClient(
        Settings("alice@example.com", "Alice", [entry]),
        "alice@example.com",
        SigningKey(bytes(range(32))),
        lambda _sid, _event: None,
        data_dir=tmp_path / "data",
    )
    return client, entry, None
