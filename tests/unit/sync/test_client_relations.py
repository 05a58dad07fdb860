"""Replies, reactions, edits and deletions through the ChatClient on a real local folder,
index and engine: what is sent is what every reader's relations show (PROTOCOL.md 18)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.relations import Relations
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.sync.client import ChatClient, RoomRef
from bucket_chat_desktop.sync.events import EngineEvent, EventsAppended, RoomLoaded

ALICE = "alice@example.com"
ROOM = "room-1"


async def _settled(client: ChatClient, ref: RoomRef, sent: list[str]) -> Relations:
    """The room's relations once every event id in ``sent`` is in the published result."""
    for _ in range(1000):
        view = await client.room_view(ref)
        if view is not None and view.result is not None and view.relations is not None:
            ids = {a.event.event_id for a in view.result.timeline}
            if set(sent) <= ids:
                return view.relations
        await asyncio.sleep(0.01)
    raise AssertionError("the sent events never reached the room's view")


def test_reply_react_edit_delete_through_the_client(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    entry = StorageSettings(str(store), "Team share", [])
    events: list[EngineEvent] = []
    client = ChatClient(
        Settings(ALICE, "Alice", [entry]),
        ALICE,
        SigningKey(bytes(range(32))),
        lambda _sid, event: events.append(event),
        data_dir=tmp_path / "data",
    )

    async def scenario() -> None:
        await client.attach(entry)
        try:
            ref = await client.create_room(entry.id, ROOM, "Plans")
            [msg] = await client.send_text(ref, "teh plan")
            [reply] = await client.send_text(ref, "sounds good", reply_to=msg.event_id)
            assert reply.parent_event_id == msg.event_id
            [r1] = await client.react(ref, msg.event_id, " 👍 ")
            assert r1.content == {"relates_to": msg.event_id, "reaction": "👍"}
            [e1] = await client.edit_message(ref, msg.event_id, "the plan")
            rel = await _settled(
                client, ref, [msg.event_id, reply.event_id, r1.event_id, e1.event_id]
            )
            agg = rel.of(msg.event_id)
            assert agg is not None and agg.latest is not None and agg.latest.body == "the plan"
            assert agg.reactions[0].key == "👍" and agg.reactions[0].all_verified
            assert agg.thread == (reply.event_id,) and rel.findings == ()
            assert len(rel.hidden) == 2  # the reaction and the edit are not rows

            # taking the reaction back redacts it; deleting the reply hides it
            [un] = await client.unreact(ref, msg.event_id, "👍")
            assert un.content == {"redacts": r1.event_id}
            assert await client.unreact(ref, msg.event_id, "🎉") == []  # none of mine
            [gone] = await client.delete_event(ref, reply.event_id, " sent too early ")
            rel = await _settled(client, ref, [un.event_id, gone.event_id])
            assert rel.of(msg.event_id).reactions == ()  # type: ignore[union-attr]
            red = rel.of(reply.event_id).redacted  # type: ignore[union-attr]
            assert red is not None and red.reason == "sent too early"

            # appends and full audits both carry the relations to front ends
            appended = [e for e in events if isinstance(e, EventsAppended) and e.relations]
            loaded = [e for e in events if isinstance(e, RoomLoaded)]
            assert appended or any(e.relations is not None for e in loaded)

            for bad in ("", "x" * 65, "a\nb", "\u202e"):
                with pytest.raises(ValueError):
                    await client.react(ref, msg.event_id, bad)
            with pytest.raises(ValueError, match="not an event of room"):
                await client.react(ref, "other-room::2025-01-01T00:00:00Z::u", "👍")
            with pytest.raises(ValueError):
                await client.edit_message(ref, msg.event_id, "   ")
        finally:
            await client.close()

    asyncio.run(scenario())
