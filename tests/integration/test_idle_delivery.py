"""Idle delivery on a bucket (S3 emulator): a follower whose window is focused sees a
message after a lull within a round or two of its publication, without waiting the idle
interval; one behind other windows backs off, and polls at once when it comes to the front
or when it sends. Proven by poll rounds and their order, never by wall-clock time: the idle
interval is an hour here, so a follower that waited it would never see the message."""

from __future__ import annotations

import time
from pathlib import Path

from nacl.signing import SigningKey
from waiting import until

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.activity import marker_path
from bucket_chat_desktop.protocol.ids import utc_date
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, EventsAppended
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.writer import RoomWriter

from .conftest import StoresMaker

ROOM = "lull"
CONFIG = SyncConfig(
    batch_window=0.02,
    active_interval=0.05,
    focused_interval=0.2,
    idle_interval=3600.0,  # a follower that waited this would never see the message
    active_window=0.5,
)
LIVENESS = 60.0  # seconds: only a bound on a hung test, far below the idle interval


def reading(engine: SyncEngine) -> bool:
    """Whether a room's hint reader or safety pass still runs: its end counts as
    activity (``Poller._step_ended``), which may come after the message it delivered was
    shown (under load on CI: after the poller's waits had grown past the focused one)."""
    poller = engine._poller
    steps = (*poller._hint_readers.values(), *poller._safety.values())
    return any(t is not None and not t.done() for t in steps)


async def test_a_focused_follower_sees_a_message_after_a_lull_without_the_idle_wait(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    stores = stores_for("s3")
    alice, bob = SigningKey.generate(), SigningKey.generate()
    await RoomWriter(stores.new(), ROOM, "alice@x", alice).create_room("Lull", "now")
    bodies: list[str] = []

    def listener(event: EngineEvent) -> None:
        if isinstance(event, EventsAppended):
            bodies.extend(str(a.event.content.get("body")) for a in event.items)

    writer = SyncEngine(stores.new(), outbox=Outbox(tmp_path / "w-outbox.sqlite3"), config=CONFIG)
    index = Index.open(tmp_path / "f-index.sqlite3", stores.url())
    follower = SyncEngine(
        stores.new(),
        index=index,
        outbox=Outbox(tmp_path / "f-outbox.sqlite3"),
        listener=listener,
        config=CONFIG,
    )
    try:
        await writer.start()
        await follower.open_room(ROOM, background=False)
        await follower.start()

        async def say(text: str) -> int:
            """Alice publishes ``text``; the follower's rounds done when it was out."""
            await writer.send(ROOM, "alice@x", alice, [("m.room.message", {"body": text})])
            assert await writer.flush(LIVENESS)
            return follower.polls

        # 1. Focused, after a lull: the poller waits the focused interval, no longer.
        follower.set_window_focused(True)
        await until(lambda: follower.next_poll_in == CONFIG.focused_interval)
        quiet = follower.polls
        await until(lambda: follower.polls >= quiet + 5)  # a lull of five quiet rounds
        assert follower.next_poll_in == CONFIG.focused_interval  # and it stays there
        published = await say("after a lull")
        await until(lambda: "after a lull" in bodies)
        # seen by the round running when it was published or the next one
        assert follower.polls - published <= 2

        # 2. Behind other windows: the waits double past the focused interval ...
        follower.set_window_focused(False)
        await until(lambda: not reading(follower))
        await until(lambda: follower.next_poll_in >= 8 * CONFIG.focused_interval)

        async def park() -> None:
            """... and reach the idle interval (an hour here): the poller is waiting it."""
            follower.next_poll_in = CONFIG.idle_interval  # where doubling would end
            rounds = follower.polls
            await until(lambda: follower.polls > rounds)  # the wait underway ends
            assert follower.next_poll_in == CONFIG.idle_interval  # unfocused: no shorter

        await park()
        published = await say("while in the background")
        assert "while in the background" not in bodies and follower.polls == published
        # 3. Coming to the front polls at once: the message arrives in that round.
        follower.set_window_focused(True)
        await until(lambda: "while in the background" in bodies)
        assert follower.polls - published <= 1

        # 4. Behind other windows again, in the idle wait: its own send polls at once,
        # then often for a while.
        # (the round that delivered it may still be ending: its wait is the one to follow,
        # not the hour left over from step 2)
        follower.set_window_focused(False)
        unfocused = follower.polls
        await until(lambda: not reading(follower))
        await until(
            lambda: follower.polls > unfocused and follower.next_poll_in > CONFIG.focused_interval
        )
        await park()
        before = follower.polls
        await follower.send(ROOM, "bob@x", bob, [("m.room.message", {"body": "mine"})])
        await until(lambda: follower.polls > before)
        assert follower.next_poll_in == CONFIG.active_interval
    finally:
        await follower.close()
        await writer.close()
        index.close()


async def test_a_marker_naming_a_missing_segment_changes_nothing_on_s3(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    stores = stores_for("s3")
    alice = SigningKey.generate()
    await RoomWriter(stores.new(), ROOM, "alice@x", alice).create_room("Lull", "now")
    follower = SyncEngine(stores.new(), config=CONFIG)
    try:
        room = await follower.open_room(ROOM, background=False)
        assert room.result is not None and room.result.clean and not room.partial
        now = int(time.time() * 1000)
        missing = f"rooms/{ROOM}/logs/{utc_date(now)}/messages_{now}_1_nothere.jsonl"
        assert await stores.new().put_if_absent(marker_path(now, missing), b"")
        assert await follower.poll_once() == 0
        assert room.unread == {} and not room.partial and room.result.clean
    finally:
        await follower.close()
