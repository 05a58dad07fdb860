"""An owed listing on a real bucket (the S3 emulator) delivers what its page shows
(review rev1 #2).

A read on a notice that fails owes the room a listing: one page of the segment's day
folder from just before it (``Poller._list_owed``). That page also shows what a writer
without activity markers (the reference implementation, older clients: PROTOCOL.md
section 15) wrote after it the same day, and the owed listing read only what it owed:
that message waited for the room's next safety listing, 4 hours on behind other windows.
The follower reaches moto through ``StallProxy``, which answers the read of the marked
writer's segment with a server error once. The rounds are driven by hand (the idle
interval is an hour): nothing is timed or slept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.event import Event
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, EventsAppended, RoomLoaded
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

from ._stall_proxy import Rule, StallProxy, server_error_once
from .conftest import StoresMaker

ROOM = "owed-page"
CONFIG = SyncConfig(batch_window=0.02, idle_interval=3600.0)
LIVENESS = 60.0  # seconds: only a bound on a hung flush


async def test_an_owed_listing_delivers_a_message_without_a_marker_on_its_page(
    stores_for: StoresMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bucket_chat_desktop.sync import poller

    monkeypatch.setattr(poller, "HINT_RETRY", 0.0)  # the owed listing is due at the next round
    stores = stores_for("s3")
    assert stores.emulators is not None
    proxy = StallProxy(stores.emulators.get("s3").port).start()
    alice, bob = SigningKey.generate(), SigningKey.generate()
    await RoomWriter(stores.new(), ROOM, "alice@x", alice).create_room("Owed page", "now")
    bodies: set[str] = set()  # what the reader's events showed (a new member: a full audit)

    def listener(event: EngineEvent) -> None:
        if isinstance(event, RoomLoaded):
            shown = [row.event for row in event.newest]
        elif isinstance(event, EventsAppended):
            shown = [row.event for row in event.items]
        else:
            return
        bodies.update(str(e.content.get("body")) for e in shown if isinstance(e, Event))

    marked = SyncEngine(stores.new(), outbox=Outbox(tmp_path / "bob-outbox.sqlite3"), config=CONFIG)
    index = Index.open(tmp_path / "reader-index.sqlite3", stores.url())
    options = {"endpoint_url": proxy.endpoint, "retries": "1"}
    reader = SyncEngine(stores.new(options=options), index=index, listener=listener, config=CONFIG)
    try:
        await reader.open_room(ROOM, background=False, focus=False)
        reader.set_window_focused(False)  # behind other windows: the room's listing is hours on
        room = reader.rooms[ROOM]
        listed = room.last_safety
        failed: list[str] = []
        bob_client = re.escape(client_id_for("bob@x", bytes(bob.verify_key)))
        proxy.add(
            Rule(rf"_{bob_client}\.jsonl", method="GET", answer=server_error_once(proxy, failed))
        )

        # Bob writes with an activity marker (this app); then alice, the same day, without.
        await marked.send(ROOM, "bob@x", bob, [("m.room.message", {"body": "with a marker"})])
        assert await marked.flush(LIVENESS)
        unmarked = RoomWriter(stores.new(), ROOM, "alice@x", alice)
        path, _ = await unmarked.send([Draft.text("without a marker")])

        await reader.poll_once()  # the marker: its segment's read fails, a listing is owed
        assert len(failed) == 1 and room.owed_paths and path not in room.known
        owed = next(iter(room.owed_paths))
        assert owed.rpartition("/")[0] == path.rpartition("/")[0] and path > owed  # its page

        await reader.poll_once()  # the owed listing: one page from just before bob's
        assert "with a marker" in bodies
        assert "without a marker" in bodies  # before: left to the listing 4 hours on
        assert path in room.known and not room.owed_paths and not room.unread
        assert room.last_safety == listed  # no safety listing of the room
    finally:
        await reader.close()
        await marked.close()
        index.close()
        proxy.close()
