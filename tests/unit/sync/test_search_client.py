"""``ChatClient.search`` on real folders, indexes and engines: results of two storages
merged newest first, each naming its storage; filters by storage and room; deleted
messages (the room's relations) are dropped and the search reads on to make up for them;
an edit's text finds its target; ``locate`` finds a hit's place in the room's audit."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.relations import EDIT
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.sync import engine as engine_module
from bucket_chat_desktop.sync.client import ChatClient, RoomRef, SearchResults
from bucket_chat_desktop.sync.events import EngineEvent, RoomLoaded

ALICE = "alice@example.com"


async def _loaded(events: list[tuple[str, EngineEvent]], storage_id: str, room: str) -> None:
    while not any(
        sid == storage_id and isinstance(e, RoomLoaded) and e.room_id == room and e.complete
        for sid, e in events
    ):
        await asyncio.sleep(0.01)


def _two_folders(
    tmp_path: Path,
) -> tuple[ChatClient, list[StorageSettings], list[tuple[str, EngineEvent]]]:
    """A client of two local folders ("one", "two"), not attached yet, and the list its
    engines' events go to (storage id, event)."""
    entries = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        entries.append(StorageSettings(str(tmp_path / name), f"Share {name}", []))
    events: list[tuple[str, EngineEvent]] = []
    client = ChatClient(
        Settings(ALICE, "Alice", entries),
        ALICE,
        SigningKey(bytes(range(32))),
        lambda sid, event: events.append((sid, event)),
        data_dir=tmp_path / "data",
    )
    return client, entries, events


def test_search_across_storages_with_filters_and_deletions(
    tmp_path: Path,
) -> None:
    assert engine_module.SEARCH_ROUNDS >= 3  # the hidden hits below take three pages
    client, entries, events = _two_folders(tmp_path)
    one, two = (e.id for e in entries)

    async def scenario() -> dict[str, object]:
        for entry in entries:
            await client.attach(entry)
        try:
            a = await client.create_room(one, "plans", "Plans")
            b = await client.create_room(two, "plans", "Plans elsewhere")
            c = await client.create_room(one, "misc", "Misc")
            (first,) = await client.send_text(a, "launch on Monday")
            await client.send_text(b, "launch party")
            await client.send_text(c, "launch code is secret")
            windows = [(await client.send_text(a, f"launch window {i}"))[0] for i in range(8)]
            # The newest four are deleted: their hits are dropped, and a search for three
            # reads on (three pages) to fill its page.
            for window in windows[4:]:
                await client.delete_event(a, window.event_id)
            edit = await client._storages[one].engine.send(
                "plans",
                ALICE,
                client.key,
                [
                    (
                        "m.room.edit",
                        {
                            "replaces": first.event_id,
                            "new_content": {"body": "liftoff on Tuesday", "msgtype": "m.text"},
                        },
                    )
                ],
            )
            for engine in (client._storages[one].engine, client._storages[two].engine):
                await engine.flush(5)
            for sid, room in ((one, "plans"), (two, "plans"), (one, "misc")):
                await client.open_room(RoomRef(sid, room))
                await _loaded(events, sid, room)
            # Text is indexed after the read, in the background; here, at once.
            for engine in (client._storages[one].engine, client._storages[two].engine):
                await engine.catch_up_text()
            out: dict[str, object] = {"first": first.event_id, "edit": edit[0].event_id}
            out["all"] = await client.search("launch")
            out["one"] = await client.search("launch", storage_id=one)
            out["room"] = await client.search("launch", room_id="plans")
            out["edited"] = await client.search("liftoff")
            out["limited"] = await client.search("launch window", limit=3)
            view = await client.room_view(a)
            assert view is not None and view.result is not None
            out["pos"] = await client.locate(a, view.result, first.event_id)
            out["nowhere"] = await client.locate(a, view.result, "no-such-event")
            out["detached"] = await client.locate(RoomRef("gone", "plans"), view.result, "x")
            return out
        finally:
            await client.close()

    out = asyncio.run(scenario())
    all_hits = out["all"]
    assert isinstance(all_hits, SearchResults)
    texts = [h.snippet.text for h in all_hits.hits]
    assert texts[:3] == ["launch window 3", "launch window 2", "launch window 1"]
    assert not any(f"window {i}" in t for t in texts for i in (4, 5, 6, 7))
    assert {"launch party", "launch code is secret", "launch on Monday"} <= set(texts)
    keys = [h.key for h in all_hits.hits]
    assert keys == sorted(keys, reverse=True)
    party = next(h for h in all_hits.hits if h.snippet.text == "launch party")
    assert party.storage_id == two and party.room_id == "plans"
    with pytest.raises(dataclasses.FrozenInstanceError):
        all_hits.more = True  # type: ignore[misc]
    assert {h.storage_id for h in out["one"].hits} == {one}  # type: ignore[attr-defined]
    assert {h.room_id for h in out["room"].hits} == {"plans"}  # type: ignore[attr-defined]
    assert {h.storage_id for h in out["room"].hits} == {one, two}  # type: ignore[attr-defined]
    (edited,) = out["edited"].hits  # type: ignore[attr-defined]
    assert edited.event_id == out["first"] and edited.source_id == out["edit"] and edited.edited
    limited = out["limited"]
    assert len(limited.hits) == 3 and limited.more  # type: ignore[attr-defined]
    visible = [h.snippet.text for h in limited.hits]  # type: ignore[attr-defined]
    assert visible == ["launch window 3", "launch window 2", "launch window 1"]
    assert isinstance(out["pos"], int) and out["pos"] >= 0
    assert out["nowhere"] is None and out["detached"] is None


def test_the_rooms_relations_decide_what_edits_and_deletions_find(tmp_path: Path) -> None:
    """Only an applied edit's text finds a message (the original, also through an edit of
    an edit); a forged edit (another sender's) finds nothing; a deleted message is never
    found; a text replaced by a later edit is marked superseded."""
    (tmp_path / "store").mkdir()
    entry = StorageSettings(str(tmp_path / "store"), "Share", [])
    events: list[tuple[str, EngineEvent]] = []
    alice = ChatClient(
        Settings(ALICE, "Alice", [entry]),
        ALICE,
        SigningKey(bytes(range(32))),
        lambda sid, event: events.append((sid, event)),
        data_dir=tmp_path / "alice",
    )
    mallory_entry = StorageSettings(str(tmp_path / "store"), "Share", [])
    mallory = ChatClient(
        Settings("mallory@example.com", "Mallory", [mallory_entry]),
        "mallory@example.com",
        SigningKey(bytes(range(1, 33))),
        lambda sid, event: None,
        data_dir=tmp_path / "mallory",
    )
    sid = entry.id

    async def scenario() -> dict[str, SearchResults]:
        await alice.attach(entry)
        await mallory.attach(mallory_entry)
        try:
            ref = await alice.create_room(sid, "plans", "Plans")
            (kept,) = await alice.send_text(ref, "alpha original text")
            (gone,) = await alice.send_text(ref, "alpha to be deleted")
            (first_edit,) = await alice.edit_message(ref, kept.event_id, "alpha first edit")
            await alice.edit_message(ref, first_edit.event_id, "alpha second edit")
            await alice.delete_event(ref, gone.event_id)
            await alice._storages[sid].engine.flush(5)
            mref = await mallory.join_room(mallory_entry.id, "plans")
            forged = {"body": "alpha forged edit", "msgtype": "m.text"}  # her client refuses:
            # a member's own code does not (the raw send)
            await mallory.send(mref, [(EDIT, {"replaces": kept.event_id, "new_content": forged})])
            await mallory._storages[mallory_entry.id].engine.flush(5)
            await alice._storages[sid].engine.refresh("plans")
            await alice.open_room(ref)
            await _loaded(events, sid, "plans")
            while True:  # until the forged edit was read and the relations applied
                view = await alice.room_view(ref)
                if (
                    view
                    and view.relations
                    and any(
                        e.event.content.get("new_content", {}).get("body") == "alpha forged edit"
                        for e in view.result.timeline  # type: ignore[union-attr]
                    )
                ):
                    break
                await alice._storages[sid].engine.refresh("plans")
                await asyncio.sleep(0.05)
            await alice._storages[sid].engine.catch_up_text()
            return {
                "alpha": await alice.search("alpha"),
                "forged": await alice.search("forged"),
                "deleted": await alice.search("deleted"),
                "second": await alice.search("second"),
                "original": await alice.search("original"),
                "ids": kept.event_id,  # type: ignore[dict-item]
            }
        finally:
            await alice.close()
            await mallory.close()

    out = asyncio.run(scenario())
    kept_id = out.pop("ids")
    (hit,) = out["alpha"].hits  # one message: the deleted one and the forged text never
    assert hit.event_id == kept_id and hit.snippet.text == "alpha second edit"
    assert hit.edited and not hit.superseded
    assert out["forged"].hits == () and out["deleted"].hits == ()
    (second,) = out["second"].hits
    assert second.event_id == kept_id  # an edit of an edit finds the original
    (old,) = out["original"].hits  # found by the text it had: marked as replaced since
    assert old.event_id == kept_id and old.superseded and not old.edited


def test_an_edits_text_finds_nothing_before_the_rooms_relations_are_known() -> None:
    """Until a room's relations are built (not read since start), an edit's text is not
    known to be applied: it could be another sender's forged edit. Its hit is dropped;
    the message's own text still finds it."""
    from types import SimpleNamespace

    from bucket_chat_desktop.index.search import SearchHit, Snippet
    from bucket_chat_desktop.sync.engine import SyncEngine

    def hit(source: str) -> SearchHit:
        return SearchHit(
            "room-1",
            "room-1::2025-01-01T00:00:00Z::m",
            source,
            "bob@example.com",
            1,
            None,
            "",
            Snippet("pay to account 2", ((0, 3),), False, False),
            "rooms/room-1/logs/x.jsonl",
            1,
            1,
        )

    nobody = SimpleNamespace(rooms={})
    own = hit("room-1::2025-01-01T00:00:00Z::m")
    forged = hit("room-1::2025-01-01T00:00:01Z::e")
    assert forged.edited and not own.edited
    assert SyncEngine._related(nobody, own, None) is own  # type: ignore[arg-type]
    assert SyncEngine._related(nobody, forged, None) is None  # type: ignore[arg-type]


def test_paging_on_reaches_every_match_past_hidden_ones_in_every_storage(
    tmp_path: Path,
) -> None:
    """``next`` pages on from where each storage stopped: every message that matches is
    found once, newest first across both storages, also behind more deleted matches
    than one search reads pages for (a member can write that many on purpose; before,
    the older matches could not be reached at all)."""
    client, entries, events = _two_folders(tmp_path)
    one, two = (e.id for e in entries)
    limit = 2
    hidden = limit * engine_module.SEARCH_ROUNDS + 3  # more than one search reads

    async def scenario() -> tuple[list[str], list[SearchResults]]:
        for entry in entries:
            await client.attach(entry)
        try:
            a = await client.create_room(one, "plans", "Plans")
            b = await client.create_room(two, "plans", "Plans elsewhere")
            live = []
            for i in range(3):  # the storages' messages alternate in time
                for ref, where in ((a, "one"), (b, "two")):
                    (sent,) = await client.send_text(ref, f"launch {where} {i}")
                    live.append(sent.content["body"])
                    await asyncio.sleep(0.002)  # each its own millisecond
            for i in range(hidden):
                (gone,) = await client.send_text(a, f"launch gone {i}")
                await client.delete_event(a, gone.event_id)
            for attached in client._storages.values():
                await attached.engine.flush(5)
            for sid in (one, two):
                await client.open_room(RoomRef(sid, "plans"))
                await _loaded(events, sid, "plans")
            for attached in client._storages.values():
                await attached.engine.catch_up_text()
            pages = [await client.search("launch", limit=limit)]
            while pages[-1].next and len(pages) < 50:
                pages.append(await client.search("launch", limit=limit, after=pages[-1].next))
            return live, pages
        finally:
            await client.close()

    live, pages = asyncio.run(scenario())
    found = [h for page in pages for h in page.hits]
    assert [h.snippet.text for h in found] == list(reversed(live))  # each once, newest first
    keys = [h.key for h in found]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
    assert {h.storage_id for h in found} == {one, two}
    assert all(len(page.hits) <= limit for page in pages)
    assert all(page.more == bool(page.next) for page in pages)
    assert not pages[-1].more and pages[-1].next == ()
    # The first page: the deleted matches take every round storage one reads, so it
    # says where it stopped; storage two's hits are older than that place, and wait
    # (storage one may hold newer live ones below it): nothing is shown yet.
    first = pages[0]
    assert first.hits == () and first.more
    assert dict(first.next)[one] is not None and dict(first.next)[two] is None
