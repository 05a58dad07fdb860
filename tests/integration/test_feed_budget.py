"""What the change feed's notifications may cost the bucket (``poller.HINTS_PER_MINUTE``).

A notification only names an object to read; a queue that names a hundred made-up
segments at every wait made the follower read the bucket ~50 times a second for as long
as the window was in front, while the queue itself was paced. The reads a feed causes
are now held to a budget per storage; past it, what the feed names is left to the
listing of the activity markers, which finds every real new segment. Moto's S3 for the
bucket, a queue service of the test's own (``fake_queue``) for the flood."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from waiting import until

from bucket_chat_desktop.protocol.ids import utc_date
from bucket_chat_desktop.sync import poller
from bucket_chat_desktop.sync.engine import SyncConfig
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

from .conftest import Stores, StoresMaker
from .test_change_feed import ROOM, chat, fake_queue

# The app's own pace for the feed (an hour between marker listings), quick batches.
CONFIG = replace(SyncConfig(), batch_window=0.02, feed_check=3600.0, active_window=0.5)


def queue_naming(stores: Stores, names: Callable[[], list[str]]) -> Any:
    """A queue service that answers every wait at once with notifications of ``names()``
    (ten records a message), and takes every deletion: ``counts`` says how often."""
    from aiohttp import web

    counts = {"receive": 0}

    async def answer(request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        if target.endswith("GetQueueAttributes"):
            doc: dict[str, Any] = {"Attributes": {"ApproximateNumberOfMessages": "100"}}
        elif target.endswith("DeleteMessageBatch"):
            entries = (await request.json())["Entries"]
            doc = {"Successful": [{"Id": e["Id"]} for e in entries]}
        else:
            counts["receive"] += 1
            paths = names()
            records = [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": stores.bucket},
                        "object": {"key": quote_plus(f"{stores.location.prefix}/{p}")},
                    },
                }
                for p in paths
            ]
            doc = {
                "Messages": [
                    {
                        "MessageId": str(i),
                        "ReceiptHandle": uuid.uuid4().hex,
                        "Body": json.dumps({"Records": records[i : i + 10]}),
                    }
                    for i in range(0, len(records), 10)
                ]
            }
        return web.Response(body=json.dumps(doc), content_type="application/x-amz-json-1.0")

    answer.counts = counts  # type: ignore[attr-defined]
    return answer


def made_up(count: int) -> Callable[[], list[str]]:
    def names() -> list[str]:
        now = int(time.time() * 1000)
        day = f"rooms/{ROOM}/logs/{utc_date(now)}"
        return [f"{day}/messages_{now}_{now}_x-{uuid.uuid4().hex[:8]}.jsonl" for _ in range(count)]

    return names


async def test_a_flood_of_made_up_segments_is_read_within_the_budget_and_said_once(
    stores_for: StoresMaker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Red team: 10 messages of 10 records at every wait, each a new made-up segment of
    the open room: 504 bucket requests in 10 s (~180,000 an hour) with the window in
    front. Now the feed's reads stop at the budget (lowered to 6 a minute here), the
    rest is dropped, the log says so in one line, and a real message still arrives: the
    markers are listed within ``HINT_CATCH_UP`` s (1 s here)."""
    monkeypatch.setattr(poller, "HINTS_PER_MINUTE", 6, raising=False)
    monkeypatch.setattr(poller, "HINT_CATCH_UP", 1.0, raising=False)
    caplog.set_level(logging.WARNING, logger="bucket_chat.sync")
    stores = stores_for("s3")
    answer = queue_naming(stores, made_up(100))
    async with fake_queue(answer, "flood") as queue:
        c = await chat(stores, tmp_path, CONFIG, queue_url=queue)
        try:
            c.follower.set_window_focused(True)
            await until(lambda: c.follower.feed_active)
            await until(lambda: answer.counts["receive"] >= 2)
            requests, waits = c.follower.requests, answer.counts["receive"]
            await c.say("a real one")
            await until(lambda: "a real one" in c.bodies)  # by the markers' listing
            await until(lambda: answer.counts["receive"] >= waits + 4)
            spent = c.follower.requests - requests
            # At most the budget's six reads, and a marker listing or two and the real
            # segment's read (the old code: ~50 reads a wait).
            assert spent <= 6 + 4, spent
            assert c.follower._poller.hint_budget.dropped >= 300
        finally:
            await c.close()
    said = [r for r in caplog.records if "names more new segments" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]


async def test_a_notification_of_a_missing_segment_costs_one_read(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """A notification naming a segment that is not there (a forger's, or one a queue
    delivers again and again) is read once: "not found" is no error of the room's and
    is not tried again, whatever the queue names it again."""
    stores = stores_for("s3")
    missing = made_up(1)()
    naming: list[str] = []
    answer = queue_naming(stores, lambda: naming)
    async with fake_queue(answer, "again") as queue:
        c = await chat(stores, tmp_path, CONFIG, queue_url=queue)
        try:
            c.follower.set_window_focused(True)
            await until(lambda: c.follower.feed_active)
            await until(lambda: answer.counts["receive"] >= 2)
            reads = c.follower.requests - c.follower.polls  # a marker listing a poll
            naming.append(missing[0])
            waits = answer.counts["receive"]
            await until(lambda: answer.counts["receive"] >= waits + 8)
            assert c.follower.requests - c.follower.polls == reads + 1
            room = c.follower.rooms[ROOM]
            assert missing[0] not in room.known
            assert not room.worth_reading_again  # nothing noted as unread
        finally:
            await c.close()


async def test_a_marker_less_writers_message_dropped_by_the_budget_arrives_within_the_catch_up(
    stores_for: StoresMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt59: a writer that makes no activity markers (PROTOCOL.md §15: the
    reference implementation, older clients, this package's ``RoomWriter``) is announced
    by its notification only. During a flood the budget dropped that notification, its
    path was noted as seen all the same (named again, it was not read), and the catch-up
    listed only the markers, which do not name it: the message waited for the room's
    safety listing (15 minutes in front, 4 hours behind). Now the day folders of what
    the budget dropped are listed within ``HINT_CATCH_UP`` s (1 s here; the budget 6 a
    minute): the message arrives, and the room's safety listing never ran."""
    monkeypatch.setattr(poller, "HINTS_PER_MINUTE", 6, raising=False)
    monkeypatch.setattr(poller, "HINT_CATCH_UP", 1.0, raising=False)
    stores = stores_for("s3")
    flood = made_up(99)  # and the real one: ten messages of ten, all of them read
    real: list[str] = []

    def names() -> list[str]:
        named = flood() + real
        real.clear()  # S3 notifies once
        return named

    answer = queue_naming(stores, names)
    async with fake_queue(answer, "flood") as queue:
        c = await chat(stores, tmp_path, CONFIG, queue_url=queue)
        try:
            c.follower.set_window_focused(True)
            await until(lambda: c.follower.feed_active)
            await until(lambda: answer.counts["receive"] >= 3)
            room = c.follower.rooms[ROOM]
            safety = room.last_safety
            dropped = c.follower._poller.hint_budget.dropped
            writer = RoomWriter(stores.new(), ROOM, "alice@x", c.alice)  # writes no marker
            path, _ = await writer.send([Draft.text("no marker from me")])
            real.append(path)
            await until(lambda: not real)  # named once, in a flood
            await until(lambda: "no marker from me" in c.bodies, timeout=30)
            assert c.follower._poller.hint_budget.dropped > dropped
            assert room.last_safety == safety  # not the room's safety listing
        finally:
            await c.close()
