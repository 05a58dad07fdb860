"""The push path on S3 (moto's S3 and SQS): the bucket's event notifications go to a
queue, the follower waits on the queue instead of polling the bucket's markers, reads what
each notification names and verifies it like anything else; junk in the queue is ignored
and deleted; a queue that is deleted or stops answering makes the follower poll the bucket
again, with a status that says so. Proven by counted requests and rounds, never by time:
the marker polling interval is an hour wherever the queue must do the work."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from nacl.signing import SigningKey
from waiting import until

from bucket_chat_desktop.protocol.attachments import blob_path
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.ids import utc_date
from bucket_chat_desktop.storage.base import Storage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import ChangeFeedStatus, EngineEvent, EventsAppended
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.schedule import FEED_FRONT_PACE
from bucket_chat_desktop.sync.selfcheck import check_storage_use
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

from . import _emulators as emu
from .conftest import Stores, StoresMaker

ROOM = "pushed"
NEVER = 3600.0  # a follower that polled the markers at this interval would not see it
LIVENESS = 60.0  # seconds: only a bound on a hung test
QUEUE_ONLY = SyncConfig(
    batch_window=0.02,
    active_interval=NEVER,
    focused_interval=NEVER,
    idle_interval=NEVER,
    active_window=0.5,
    feed_wait=1.0,
    feed_check=NEVER,
    feed_retry=NEVER,
    feed_rest=0.0,  # no rest behind other windows (its own test below)
)
FALLBACK = SyncConfig(
    batch_window=0.02,
    active_interval=0.05,
    focused_interval=0.2,
    idle_interval=0.2,
    active_window=0.5,
    feed_wait=1.0,
    feed_check=NEVER,
    feed_retry=0.5,
    feed_rest=0.0,
)


@dataclass
class Chat:
    """Alice writes with a plain engine; the follower reads with the queue configured."""

    stores: Stores
    queue_url: str
    writer: SyncEngine
    follower: SyncEngine
    alice: SigningKey = field(default_factory=SigningKey.generate)
    bodies: list[str] = field(default_factory=list)
    statuses: list[ChangeFeedStatus] = field(default_factory=list)

    def sqs(self) -> Any:
        emulator = self.stores.emulators
        assert emulator is not None and emulator.s3_admin is not None
        return emu.s3_client(emulator.procs["s3"].endpoint, emulator.s3_admin, "sqs")

    def waiting(self) -> int:
        """Messages in the queue, visible or being processed."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        got = self.sqs().get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)
        return sum(int(got["Attributes"][n]) for n in names)

    async def say(self, text: str) -> None:
        await self.writer.send(ROOM, "alice@x", self.alice, [("m.room.message", {"body": text})])
        assert await self.writer.flush(LIVENESS)

    async def close(self) -> None:
        await self.follower.close()
        await self.writer.close()


def queue_for(stores: Stores) -> str:
    emulators = stores.emulators
    assert emulators is not None and emulators.s3_admin is not None
    prefix = f"{stores.location.prefix}/rooms/"
    return emu.s3_notify_queue(
        emulators.procs["s3"].endpoint, emulators.s3_admin, stores.bucket, prefix
    )


async def chat(
    stores: Stores,
    tmp_path: Path,
    config: SyncConfig,
    queue_url: str | None = None,
    follower_keys: emu.S3Keys | None = None,
    follower_options: dict[str, str] | None = None,
) -> Chat:
    queue = queue_url or queue_for(stores)
    owner = SigningKey.generate()
    await RoomWriter(stores.new(), ROOM, "owner@x", owner).create_room("Pushed", "now")
    writer = SyncEngine(stores.new(), outbox=Outbox(tmp_path / "w.sqlite3"), config=config)
    holder: list[Chat] = []

    def listener(event: EngineEvent) -> None:
        if isinstance(event, EventsAppended):
            holder[0].bodies.extend(str(a.event.content.get("body")) for a in event.items)
        elif isinstance(event, ChangeFeedStatus):
            holder[0].statuses.append(event)

    keys = follower_keys
    secrets = (
        None
        if keys is None
        else {"access_key_id": keys.access_key_id, "secret_access_key": keys.secret_access_key}
    )
    options = {"queue_url": queue, **(follower_options or {})}
    storage: Storage = stores.new(options=options, secrets=secrets)
    follower = SyncEngine(
        storage, outbox=Outbox(tmp_path / "f.sqlite3"), listener=listener, config=config
    )
    holder.append(Chat(stores, queue, writer, follower))
    await writer.start()
    await follower.open_room(ROOM, background=False)
    await follower.start()
    return holder[0]


async def rested(c: Chat, config: SyncConfig) -> None:
    """Wait until a whole long poll came back empty and the rest after it is as set
    (behind other windows and quiet), then give the follower ``config``. It was started
    on ``config`` with 1 s long polls (``quick_start``): the first empty one is only
    the way in, and 1 s shows it as well as 5 s; from the rest on, every long poll the
    test's steps must land within is ``config``'s."""
    await until(lambda: c.follower.feed_resting and c.follower.feed_last_rest == config.feed_rest)
    c.follower.config = config


def quick_start(config: SyncConfig) -> SyncConfig:
    """``config`` with 1 s long polls until ``rested`` gives the follower ``config``."""
    return replace(config, feed_wait=1.0)


async def test_a_message_arrives_through_the_queue_without_polling_the_bucket(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    c = await chat(stores_for("s3"), tmp_path, QUEUE_ONLY)
    try:
        assert c.follower.feed is not None
        await until(lambda: c.follower.feed_active and c.follower.feed_rounds >= 1)
        assert c.statuses and c.statuses[-1].active and c.queue_url in c.statuses[-1].message
        await until(lambda: c.waiting() == 0)  # the test event and the room's creation
        polls, bucket = c.follower.polls, c.follower.requests
        assert polls == 1  # the markers were listed once, when the queue was first read
        queue = c.follower.feed.requests
        await c.say("pushed through the queue")
        await until(lambda: "pushed through the queue" in c.bodies)
        # The bucket was asked for the one new segment and nothing else: no listing.
        assert c.follower.polls == polls and c.follower.requests == bucket + 1
        assert c.follower.feed.requests > queue
        await until(lambda: c.waiting() == 0)  # what was read was deleted from the queue
        room = c.follower.rooms[ROOM]
        assert room.result is not None and room.result.clean
    finally:
        await c.close()


async def test_behind_other_windows_the_queue_rests_between_waits_and_the_front_ends_it(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """Listened to without a break, a queue costs 180 requests an hour: behind other
    windows and quiet, the follower rests between waits (an hour here: ``feed_rest``). A
    message sent meanwhile waits for the window to come to the front, which ends the
    rest at once; while the window is in front, there is no rest."""
    c = await chat(stores_for("s3"), tmp_path, replace(QUEUE_ONLY, feed_rest=NEVER))
    try:
        await until(lambda: c.follower.feed_resting)  # unfocused, quiet for 0.5 s
        rounds, rests = c.follower.feed_rounds, c.follower.feed_rests
        await c.say("sent while it rests")
        await until(lambda: c.waiting() >= 1)  # the notification is in the queue
        c.follower.set_window_focused(True)
        await until(lambda: "sent while it rests" in c.bodies)  # not in an hour: at once
        assert c.follower.feed_rounds > rounds
        # In front: waits follow each other with no rest in between.
        now = c.follower.feed_rounds
        await until(lambda: c.follower.feed_rounds >= now + 3)
        assert c.follower.feed_rests == rests and not c.follower.feed_resting
        # Behind other windows again: once quiet, it rests again.
        c.follower.set_window_focused(False)
        await until(lambda: c.follower.feed_resting)
        assert c.follower.feed_rests == rests + 1
    finally:
        await c.close()


async def test_a_send_behind_other_windows_ends_the_rest(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """A send is activity: a reply may come at once, so it ends a rest, as a wake does.
    While the feed was waited on, ``note_activity`` woke the poller only when its bucket
    polling interval was long, which the feed never changes: a send during a rest (a
    file dropped on the window behind others, a send from a headless engine) left the
    follower resting out the whole ``feed_rest`` (an hour here)."""
    c = await chat(stores_for("s3"), tmp_path, replace(QUEUE_ONLY, feed_rest=NEVER))
    try:
        await until(lambda: c.follower.feed_resting)  # unfocused, quiet for 0.5 s
        rounds = c.follower.feed_rounds
        await c.follower.send(ROOM, "alice@x", c.alice, [("m.room.message", {"body": "hi"})])
        await until(lambda: c.follower.feed_rounds > rounds)  # not in an hour: at once
        assert not c.follower.window_focused
    finally:
        await c.close()


async def test_queue_junk_behind_other_windows_stretches_the_rest(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """Junk makes a long poll answer at once, and deleting it is one more request: the
    rest after such a wait stretches so that the cycle costs no more per request than an
    honest one (``schedule.feed_rest``). Before, the rest stayed ``feed_rest``: junk sent
    every 15 s cost about 480 requests an hour instead of 103."""
    config = replace(QUEUE_ONLY, feed_rest=2.0)  # a cycle: 1 s wait + 2 s rest
    c = await chat(stores_for("s3"), tmp_path, config)
    try:
        # Unfocused, quiet for 0.5 s, and what was queued at the start read: after an
        # honest wait (its whole long poll) the rest is as set.
        await until(lambda: c.follower.feed_resting and c.follower.feed_last_rest == 2.0)
        rests = c.follower.feed_rests
        c.sqs().send_message(QueueUrl=c.queue_url, MessageBody="junk {")
        await until(lambda: c.follower.feed_ignored >= 1 and c.follower.feed_rests > rests)
        # Received at once and deleted: two requests, two cycles' time.
        assert c.follower.feed_last_rest > 2.0
        assert not c.follower.window_focused
    finally:
        await c.close()


async def test_an_attachment_behind_other_windows_is_followed_by_no_rest(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """An attachment is uploaded just before the message that carries it: its notification
    (a real object of a room open here, nothing to read by itself) makes a long poll
    answer at once. Taken for junk, the rest after it stretched to two whole cycles (70 s
    by default instead of 15), and the message's own notification, arriving meanwhile,
    waited that long behind other windows. No rest follows such a wait now: the message
    comes next."""
    config = replace(QUEUE_ONLY, feed_wait=5.0, feed_rest=2.0)
    c = await chat(stores_for("s3"), tmp_path, quick_start(config))
    try:
        # A whole long poll came back empty, and the rest after it is as set.
        await rested(c, config)
        data = b"the minutes"
        path = blob_path(ROOM, hashlib.sha256(data).hexdigest())
        assert await c.stores.new().put_if_absent(path, data)
        await until(lambda: c.follower.feed_last_rest == 0.0)  # not 2.0, not stretched
        await c.say("the minutes are attached")
        await until(lambda: "the minutes are attached" in c.bodies)
        assert c.follower.feed_ignored == 0 and not c.follower.window_focused
    finally:
        await c.close()


async def test_two_files_sent_together_make_no_message_wait_for_a_rest(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """rt27: two files dropped at once are uploaded one after the other, each message sent
    after its own file; a small second file can land before the first message's segment.
    Its notification, in the next long poll, is a second wait in a row that named an
    attachment: with one such wait let go without a rest, it rested like junk (four
    cycles, 140 s by default), and the messages noticed meanwhile waited for it behind
    other windows. Two are let go now (``FEED_NAMED_GRACES``)."""
    config = replace(QUEUE_ONLY, feed_wait=5.0, feed_rest=2.0)
    c = await chat(stores_for("s3"), tmp_path, quick_start(config))
    try:
        await rested(c, config)
        store = c.stores.new()
        first, second = b"the minutes", b"the agenda"
        assert await store.put_if_absent(blob_path(ROOM, hashlib.sha256(first).hexdigest()), first)
        await until(lambda: c.follower.feed_last_rest == 0.0)  # no rest: the message comes
        rests = c.follower.feed_rests
        assert await store.put_if_absent(
            blob_path(ROOM, hashlib.sha256(second).hexdigest()), second
        )
        await c.say("the minutes are attached")
        await until(lambda: "the minutes are attached" in c.bodies)
        assert c.follower.feed_rests == rests  # it waited for no rest
        assert not c.follower.window_focused
    finally:
        await c.close()


async def test_made_up_attachments_get_two_waits_without_a_rest_then_the_pace_of_junk(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """Whoever may send to the queue can name attachments that nobody wrote. Resting the
    usual ``feed_rest`` after each would keep the queue at about 480 requests an hour
    behind other windows; only the first two since something new was read (or a long
    poll came back empty) go without a rest, and the next is paced like junk and pays
    for them: three waits of a receive and a delete, six requests, rest until four
    cycles (the longest rest) have passed (rt27: with three, a fourth request went
    unpaid)."""
    config = replace(QUEUE_ONLY, feed_wait=5.0, feed_rest=2.0)  # a cycle: 7 s
    cycle = config.feed_wait + config.feed_rest
    stores = stores_for("s3")
    c = await chat(stores, tmp_path, quick_start(config))
    try:
        await rested(c, config)
        sqs = c.sqs()
        prefix = stores.location.prefix

        def forge(n: int) -> None:
            key = f"{prefix}/{blob_path(ROOM, hashlib.sha256(bytes([n])).hexdigest())}"
            record = {"Records": [notification(stores.bucket, key)]}
            sqs.send_message(QueueUrl=c.queue_url, MessageBody=json.dumps(record))

        forge(1)  # lands in the rest: the next wait brings it at once
        await until(lambda: c.follower.feed_last_rest == 0.0)
        rounds = c.follower.feed_rounds
        forge(2)  # during the long poll after it: no empty one came between
        await until(lambda: c.follower.feed_rounds > rounds and c.waiting() == 0)
        assert c.follower.feed_last_rest == 0.0 and not c.follower.feed_resting
        forge(3)
        await until(lambda: c.follower.feed_last_rest > config.feed_rest)
        assert c.follower.feed_last_rest > 3 * cycle  # four cycles from the first began
        assert c.follower.feed_ignored == 0 and not c.follower.window_focused
    finally:
        await c.close()


async def test_a_wait_let_go_without_a_rest_is_paid_for_by_the_next_rest(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """A forger who names one made-up attachment after each empty long poll gets each
    time a wait without a rest; the rest after the next (empty) long poll pays for it, so
    the queue costs no more per request than an honest cycle (without it, about 300
    requests an hour behind other windows)."""
    # A cycle: 5 s. Nothing here must land within one long poll (the forged notice is
    # read by whichever wait comes next), so the poll is short.
    config = replace(QUEUE_ONLY, feed_wait=2.0, feed_rest=3.0)
    stores = stores_for("s3")
    c = await chat(stores, tmp_path, config)
    try:
        await until(lambda: c.follower.feed_resting and c.follower.feed_last_rest == 3.0)
        key = f"{stores.location.prefix}/{blob_path(ROOM, hashlib.sha256(b'x').hexdigest())}"
        body = json.dumps({"Records": [notification(stores.bucket, key)]})
        c.sqs().send_message(QueueUrl=c.queue_url, MessageBody=body)
        await until(lambda: c.follower.feed_last_rest == 0.0)  # let go without a rest
        rests = c.follower.feed_rests
        await until(lambda: c.follower.feed_rests > rests)  # after the next, empty, wait
        # Three requests (a receive and a delete, then a receive) in about 2 s: rested
        # until three cycles (15 s) have passed since the first began. Unpaid, the rest
        # would be the plain ``feed_rest``.
        assert c.follower.feed_last_rest > 2 * config.feed_rest
    finally:
        await c.close()


async def test_queue_junk_in_front_is_paced_not_a_tight_loop(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """In front there is no rest after an honest wait, but a wait that came back at once
    with nothing new is paced (``FEED_FRONT_PACE`` s a request): before, a junk flood in
    front drove the queue as fast as it answered."""
    c = await chat(stores_for("s3"), tmp_path, QUEUE_ONLY)
    try:
        c.follower.set_window_focused(True)
        await until(lambda: c.follower.feed_active and c.follower.feed_rounds >= 2)
        rests = c.follower.feed_rests  # honest waits in front: none (the test above)
        sqs = c.sqs()
        for _ in range(3):
            sqs.send_message(QueueUrl=c.queue_url, MessageBody="junk {")
        await until(lambda: c.follower.feed_ignored >= 3 and c.waiting() == 0)
        await until(lambda: c.follower.feed_rests > rests)
        assert 0.0 < c.follower.feed_last_rest <= 2 * FEED_FRONT_PACE
        assert c.follower.window_focused
        # Something new still arrives with no rest before it.
        await c.say("after the junk in front")
        await until(lambda: "after the junk in front" in c.bodies)
    finally:
        await c.close()


def notification(bucket: str, key: str, event: str = "ObjectCreated:Put") -> dict[str, Any]:
    return {
        "eventName": event,
        "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), "size": 1}},
    }


async def test_junk_and_hostile_queue_messages_are_ignored_and_deleted(
    stores_for: StoresMaker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stores = stores_for("s3")
    c = await chat(stores, tmp_path, QUEUE_ONLY)
    # In front, a wait that brought junk is paced at ``FEED_FRONT_PACE`` a request, not
    # rested two cycles (2 s) as behind other windows: how junk is paced is the test of
    # the junk tests above; here, what is ignored, deleted, said and read.
    c.follower.set_window_focused(True)
    try:
        await until(lambda: c.follower.feed_active and c.follower.feed_rounds >= 1)
        await until(lambda: c.waiting() == 0)
        feed = c.follower.feed
        assert feed is not None
        prefix = stores.location.prefix
        now = int(time.time() * 1000)
        segment = f"rooms/{ROOM}/logs/{utc_date(now)}/messages_{now}_{now}_forged.jsonl"
        missing = f"rooms/{ROOM}/logs/{utc_date(now)}/messages_{now}_{now}_nothere.jsonl"
        # A segment that someone with write access put there, named by a notification:
        # read, and judged by its content (garbage), never by the notification.
        assert await stores.new().put_if_absent(segment, b'{"not": "an event"}\n')
        record = notification(stores.bucket, f"{prefix}/{segment}")
        junk: list[str] = [
            "not json {",
            json.dumps({"hello": "world"}),
            json.dumps([1, 2, 3]),
            "x" * 100_000,  # huge
            json.dumps({"Records": [notification("another-bucket", f"{prefix}/{segment}")]}),
            json.dumps({"Records": [notification(stores.bucket, f"elsewhere/{segment}")]}),
            json.dumps({"Records": [notification(stores.bucket, f"{prefix}/rooms/../../x")]}),
            json.dumps({"Records": [notification(stores.bucket, f"{prefix}/{segment}")] * 11}),
            json.dumps({"Records": [{"eventName": 7, "s3": "nope"}]}),
            json.dumps({"Records": [{**record, "s3": {**record["s3"], "object": {"key": "%ff"}}}]}),
            json.dumps({"Type": "Notification", "Message": "{not json"}),
            json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "other"}),
            json.dumps({"Records": [notification(stores.bucket, f"{prefix}/{missing}")]}),
            json.dumps({"Records": [notification(stores.bucket, f"{prefix}/{segment}")]}),
        ]
        sqs = c.sqs()
        for body in junk:
            sqs.send_message(QueueUrl=c.queue_url, MessageBody=body)
        caplog.set_level(logging.DEBUG, "bucket_chat.sync")
        await until(lambda: c.waiting() == 0)  # read and deleted, junk included
        room = c.follower.rooms[ROOM]
        # Read on the notice, it is not a clean segment: not kept from a read without a
        # listed size (the service may have sent an error page for it) ...
        await until(
            lambda: any(
                segment in r.getMessage() and "read on a notice, not kept" in r.getMessage()
                for r in caplog.records
            )
        )
        assert segment not in room.known
        assert missing not in room.known and missing not in room.unread
        # ... but read again by a listing, which keeps it, judged by its content (garbage),
        # never by the notification
        await c.follower.refresh(ROOM)
        assert segment in room.known and segment not in room.unread
        assert room.result is not None and not room.result.clean  # the forged segment
        assert any(f.path == segment for f in room.result.findings)
        # The same forged notification again and again: the bucket is asked once.
        requests = c.follower.requests
        again = json.dumps({"Records": [notification(stores.bucket, f"{prefix}/{missing}")]})
        for _ in range(5):
            sqs.send_message(QueueUrl=c.queue_url, MessageBody=again)
        await until(lambda: c.waiting() == 0)
        assert c.follower.requests == requests
        assert c.follower.feed_active  # junk does not stop the queue
        assert c.follower.feed_ignored >= 11
        told = [r for r in caplog.records if r.getMessage().startswith("ignored ")]
        said = " ".join(r.getMessage() for r in told)
        # More than one answer held junk (10 messages at most each): said once a minute.
        assert len(told) >= 2 and [r.levelno for r in told].count(logging.WARNING) == 1
        for reason in (
            "not JSON",
            "not a JSON object",
            "no S3 event records",
            "100,000 characters",
            "another bucket",
            "outside this storage's prefix",
            "unsafe object key",
            "11 records",
            "without eventName",
            "not UTF-8",
            "SNS notification whose message is not JSON",
            "test event of another bucket",
        ):
            assert reason in said
        # An SNS envelope (a topic fanned out to one queue per device) is read too.
        polls = c.follower.polls
        await c.say("after the junk")
        await until(lambda: "after the junk" in c.bodies)
        assert c.follower.polls == polls
        await until(lambda: c.waiting() == 0)
        later = now + 1
        sns_segment = f"rooms/{ROOM}/logs/{utc_date(later)}/messages_{later}_{later}_sns.jsonl"
        assert await stores.new().put_if_absent(sns_segment, b"garbage\n")
        inner = json.dumps({"Records": [notification(stores.bucket, f"{prefix}/{sns_segment}")]})
        envelope = {"Type": "Notification", "Message": inner}
        sqs.send_message(QueueUrl=c.queue_url, MessageBody=json.dumps(envelope))
        # read on the notice (garbage: not kept from it, a listing reads it again)
        await until(
            lambda: any(
                sns_segment in r.getMessage() and "read on a notice" in r.getMessage()
                for r in caplog.records
            )
        )
        assert c.follower.polls == polls
    finally:
        await c.close()


async def test_a_notification_of_an_object_that_is_no_segment_reads_nothing(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    stores = stores_for("s3")
    c = await chat(stores, tmp_path, QUEUE_ONLY)
    try:
        await until(lambda: c.follower.feed_active and c.waiting() == 0)
        now = int(time.time() * 1000)
        odd = f"rooms/{ROOM}/logs/{utc_date(now)}/notes.txt"  # no segment name
        assert await stores.new().put_if_absent(odd, b"x")
        key = f"{stores.location.prefix}/{odd}"
        body = json.dumps({"Records": [notification(stores.bucket, key)]})
        c.sqs().send_message(QueueUrl=c.queue_url, MessageBody=body)
        requests = c.follower.requests
        await until(lambda: c.waiting() == 0)
        assert c.follower.requests == requests  # not a segment name: nothing is read
        room = c.follower.rooms[ROOM]
        assert room.result is not None and room.result.clean
        assert not [f for f in room.result.findings if f.kind == Kind.UNEXPECTED_OBJECT]
    finally:
        await c.close()


async def test_a_deleted_queue_falls_back_to_polling_the_bucket_and_comes_back(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    stores = stores_for("s3")
    c = await chat(stores, tmp_path, FALLBACK)
    try:
        await until(lambda: c.follower.feed_active and c.follower.feed_rounds >= 1)
        c.sqs().delete_queue(QueueUrl=c.queue_url)
        # The long poll in flight when the queue went may fail otherwise first (its
        # connection ended): the retries (every 0.5 s here) then find it gone.
        await until(
            lambda: not c.follower.feed_active and "does not exist" in c.follower.feed_message
        )
        gone = c.statuses[-1]
        assert not gone.active and "polling the bucket instead" in gone.message
        polls = c.follower.polls
        await c.say("while the queue is gone")
        await until(lambda: "while the queue is gone" in c.bodies)
        # Found by listing the markers: by a poll done since, or by one still waiting for
        # its room steps (``round_wait``) as the message shows, counted when it ends.
        assert c.follower.polls > polls or c.follower._poller._in_poll
        # The queue is made again: the follower finds it and waits on it again.
        assert queue_for(stores) == c.queue_url
        await until(lambda: c.follower.feed_active)
        assert c.statuses[-1].active
    finally:
        await c.close()


async def test_keys_without_queue_permissions_say_which_ones_and_poll_the_bucket(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    stores = stores_for("s3")
    emulators = stores.emulators
    assert emulators is not None and emulators.s3_reader is not None
    # The follower's keys may read the bucket and nothing else.
    c = await chat(stores, tmp_path, FALLBACK, follower_keys=emulators.s3_reader)
    try:
        await until(lambda: bool(c.statuses))
        status = c.statuses[-1]
        assert not status.active and "sqs:ReceiveMessage" in status.message
        await c.say("read by listing")
        await until(lambda: "read by listing" in c.bodies)
    finally:
        await c.close()


async def test_a_queue_that_gets_no_notifications_is_backed_by_the_markers(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """A notification rule removed, or another reader emptying the queue: the queue
    answers, stays silent, and the markers listed every ``feed_check`` deliver."""
    stores = stores_for("s3")
    emulators = stores.emulators
    assert emulators is not None and emulators.s3_admin is not None
    sqs = emu.s3_client(emulators.procs["s3"].endpoint, emulators.s3_admin, "sqs")
    silent = sqs.create_queue(QueueName=f"nothing-{stores.bucket}")["QueueUrl"]
    config = replace(QUEUE_ONLY, feed_check=1.0)  # instead of 10 minutes
    c = await chat(stores, tmp_path, config, queue_url=silent)
    try:
        await until(lambda: c.follower.feed_active)
        polls, rounds = c.follower.polls, c.follower.feed_rounds
        await c.say("only in the markers")
        await until(lambda: "only in the markers" in c.bodies)
        # Found by the markers' listing that a long poll's round makes (``feed_check``):
        # done since, or still waiting for its room steps as the message shows.
        poller = c.follower._poller
        assert poller._in_poll or (c.follower.polls > polls and c.follower.feed_rounds > rounds)
        assert c.follower.feed_active
    finally:
        await c.close()


async def test_a_queue_service_that_floods_its_reply_is_cut_off(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """A hostile queue service answers with an endless reply: read to 12 MiB, then the
    queue is given up (the bucket is polled) — memory stays bounded."""
    from aiohttp import web

    from bucket_chat_desktop.storage.sqs import MAX_REPLY_BYTES

    sent: list[int] = []

    async def flood(request: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse(headers={"Content-Type": "application/x-amz-json-1.0"})
        await reply.prepare(request)  # chunked: no length announced
        chunk = b" " * (1024 * 1024)
        try:
            for _ in range(64):
                await reply.write(chunk)
                sent.append(len(chunk))
        except (ConnectionError, RuntimeError):
            pass  # the reader hung up
        return reply

    async with fake_queue(flood, "flood") as queue:
        c = await chat(stores_for("s3"), tmp_path, FALLBACK, queue_url=queue)
        try:
            await until(lambda: bool(c.statuses))
            status = c.statuses[-1]
            assert not status.active and "bytes (not read)" in status.message
            assert sum(sent) < 64 * 1024 * 1024  # it stopped reading long before the end
            assert MAX_REPLY_BYTES < 64 * 1024 * 1024
            await c.say("the bucket still works")
            await until(lambda: "the bucket still works" in c.bodies)
        finally:
            await c.close()


async def test_ten_large_messages_of_quotes_are_read_one_at_a_time_not_a_jam(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """Red team rt59: ten 1 MiB messages of '"' (SQS's largest) escape in the reply's
    JSON to 20 MiB, over ``MAX_REPLY_BYTES``: the reply was refused unread, nothing was
    deleted, and every retry got the same ten back for the queue's retention; the status
    went from "waiting on the bucket's notifications" to failing at each retry. Now the
    queue is read one message at a time: each is ignored as junk and deleted, the feed is
    never said to fail, and a real message still comes through the queue. The queue
    below is SQS's model (moto caps a message at 256 KiB): ``MaxNumberOfMessages``
    honoured, what a receive handed out hidden for a visibility timeout (1 s here) until
    deleted."""
    from aiohttp import web

    from bucket_chat_desktop.storage.sqs import MAX_REPLY_BYTES

    stores = stores_for("s3")
    hidden_for = 1.0
    queue: dict[str, tuple[str, float]] = {  # receipt -> body, visible from
        f"junk-{i}": ('"' * (1024 * 1024), 0.0) for i in range(10)
    }
    counts = {"receive": 0, "deleted": 0, "largest": 0}

    async def answer(request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        asked = await request.json()
        if target.endswith("GetQueueAttributes"):
            doc: dict[str, Any] = {"Attributes": {"ApproximateNumberOfMessages": str(len(queue))}}
        elif target.endswith("DeleteMessageBatch"):
            for entry in asked["Entries"]:
                if queue.pop(entry["ReceiptHandle"], None) is not None:
                    counts["deleted"] += 1
            doc = {"Successful": [{"Id": e["Id"]} for e in asked["Entries"]]}
        else:
            counts["receive"] += 1
            now = time.monotonic()
            ready = [r for r, (_, at) in queue.items() if at <= now]
            given = ready[: int(asked["MaxNumberOfMessages"])]
            for receipt in given:
                queue[receipt] = (queue[receipt][0], now + hidden_for)
            doc = {
                "Messages": [
                    {"MessageId": r, "ReceiptHandle": r, "Body": queue[r][0]} for r in given
                ]
            }
        data = json.dumps(doc).encode()
        counts["largest"] = max(counts["largest"], len(data))
        return web.Response(body=data, content_type="application/x-amz-json-1.0")

    async with fake_queue(answer, "quotes") as url:
        c = await chat(stores, tmp_path, FALLBACK, queue_url=url)
        # In front, junk is paced at ``FEED_FRONT_PACE`` a request (1 s a message) rather
        # than behind other windows' two cycles (2 s): how junk is paced is the test of
        # the two tests above; here, that every message is read, ignored and deleted.
        c.follower.set_window_focused(True)
        try:
            await until(lambda: counts["deleted"] == 10, timeout=LIVENESS)
            assert counts["largest"] > MAX_REPLY_BYTES  # the first reply: refused unread
            assert c.follower.feed_active
            assert [s.active for s in c.statuses] == [True]  # never said to fail
            writer = RoomWriter(stores.new(), ROOM, "alice@x", c.alice)  # writes no marker
            path, _ = await writer.send([Draft.text("after the quotes")])
            key = f"{stores.location.prefix}/{path}"
            queue["real"] = (json.dumps({"Records": [notification(stores.bucket, key)]}), 0.0)
            await until(lambda: "after the quotes" in c.bodies, timeout=LIVENESS)
            await until(lambda: not queue, timeout=LIVENESS)
        finally:
            await c.close()


@contextlib.asynccontextmanager
async def fake_queue(handler: Any, name: str) -> AsyncIterator[str]:
    """A queue service on 127.0.0.1 that answers every request with ``handler`` (an
    aiohttp handler): the URL of its queue ``name`` while the block runs."""
    from aiohttp import web

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/123456789012/{name}"
    finally:
        await runner.cleanup()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield int(server.getsockname()[1])


async def test_a_queue_that_does_not_answer_falls_back_without_hanging(
    stores_for: StoresMaker, tmp_path: Path, silent_port: int
) -> None:
    stores = stores_for("s3")
    queue = f"http://127.0.0.1:{silent_port}/123456789012/silent"
    # A queue's request is given up after the storage's timeout at most (``sqs.GRACE``,
    # 5 s): 2 s here, which the emulator's answers to the bucket's requests still fit in.
    options = {"timeout": "2"}
    c = await chat(stores, tmp_path, FALLBACK, queue_url=queue, follower_options=options)
    try:
        await until(lambda: bool(c.statuses))
        status = c.statuses[-1]
        assert not status.active and "polling the bucket instead" in status.message
        assert not c.follower.feed_active
        await c.say("the bucket still works")
        await until(lambda: "the bucket still works" in c.bodies)
    finally:
        await c.close()


async def test_the_connection_test_asks_the_queue(stores_for: StoresMaker) -> None:
    """The wizard's and settings' *Test connection* (and ``test-storage``)."""
    stores = stores_for("s3")
    queue = queue_for(stores)
    result = await check_storage_use(stores.new(options={"queue_url": queue}))
    assert result.level == "ok", result.message
    assert result.steps[-1].label == "the queue of the bucket's notifications answers"
    assert result.steps[-1].ok and queue in result.steps[-1].detail
    emulators = stores.emulators
    assert emulators is not None and emulators.s3_admin is not None
    endpoint = emulators.procs["s3"].endpoint
    emu.s3_client(endpoint, emulators.s3_admin, "sqs").delete_queue(QueueUrl=queue)
    result = await check_storage_use(stores.new(options={"queue_url": queue}))
    assert result.level == "warning" and result.usable
    assert "the queue does not exist" in result.message and "poll the bucket" in result.message
    assert not result.steps[-1].ok


async def test_a_queue_service_error_code_of_any_length_is_said_in_one_short_line(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """A hostile (or broken) queue service refuses with an error type of 200,000
    characters over several lines, with a terminal escape: what the follower says (the
    status bar, ``bucket-chat chat``'s line, the log) is one line of bounded length."""
    from aiohttp import web

    code = "Evil\n\x1b[2J" + "A" * 200_000 + "\nsecond line"

    async def refuse(request: web.Request) -> web.Response:
        body = json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": "no"})
        return web.Response(status=400, body=body, content_type="application/x-amz-json-1.0")

    async with fake_queue(refuse, "refusing") as queue:
        c = await chat(stores_for("s3"), tmp_path, FALLBACK, queue_url=queue)
        try:
            await until(lambda: bool(c.statuses))
            status = c.statuses[-1]
            assert not status.active and "polling the bucket instead" in status.message
            assert "\n" not in status.message and "\x1b" not in status.message
            assert len(status.message) < 1_000, len(status.message)
            await c.say("the bucket still works")
            await until(lambda: "the bucket still works" in c.bodies)
        finally:
            await c.close()


async def test_a_queue_service_error_reaches_the_apps_log_escaped(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """The desktop app logs to the terminal it was started from: a queue service's
    error with terminal escapes in it (JSON carries any character) is written there as
    visible escapes, like ``bucket-chat``'s output — not as a command to the terminal
    (here: set the window title)."""
    import io

    from aiohttp import web

    from bucket_chat_desktop.app import log_handler

    async def refuse(request: web.Request) -> web.Response:
        body = json.dumps({"__type": "x#Evil\x1b]0;owned\x07", "message": "no\x1b[2J"})
        return web.Response(status=400, body=body, content_type="application/x-amz-json-1.0")

    stream = io.StringIO()
    handler = log_handler(stream)
    logger = logging.getLogger("bucket_chat")
    logger.addHandler(handler)
    try:
        async with fake_queue(refuse, "refusing") as queue:
            c = await chat(stores_for("s3"), tmp_path, FALLBACK, queue_url=queue)
            try:
                await until(lambda: bool(c.statuses))
                await until(lambda: "change feed" in stream.getvalue())
            finally:
                await c.close()
        written = stream.getvalue()
        assert "Evil" in written and "\x1b" not in written and "\x07" not in written
        assert "\\x1b" in written
    finally:
        logger.removeHandler(handler)


async def test_a_queue_service_cannot_make_the_waiting_count_a_huge_line(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """The feed's status names how many messages wait, as the service counts them: a
    hostile service's count of a million digits is not repeated (the command line
    prints the status whole)."""
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        if target.endswith("GetQueueAttributes"):
            doc: dict[str, Any] = {"Attributes": {"ApproximateNumberOfMessages": "9" * 1_000_000}}
        else:
            doc = {"Messages": []}
        return web.Response(body=json.dumps(doc), content_type="application/x-amz-json-1.0")

    async with fake_queue(answer, "counting") as queue:
        c = await chat(stores_for("s3"), tmp_path, FALLBACK, queue_url=queue)
        try:
            await until(lambda: bool(c.statuses))
            status = c.statuses[-1]
            assert status.active and "waiting on the bucket's notifications" in status.message
            assert len(status.message) < 1_000, len(status.message)
        finally:
            await c.close()


async def test_a_read_on_a_notice_that_failed_is_made_good_by_a_listing_soon(
    stores_for: StoresMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team: the bucket answered the read of a segment that a notification named
    with a server error once. What could not be read was left to the room's safety
    listing: a minute later with the window in front, 4 hours behind other windows, and
    the message waited for it. Now the room's listing runs within ``HINT_RETRY``
    seconds (2 here) and reads it; here behind other windows. The follower reaches moto
    through ``StallProxy``."""
    from bucket_chat_desktop.sync import poller

    from ._stall_proxy import Rule, StallProxy, server_error_once

    monkeypatch.setattr(poller, "HINT_RETRY", 2.0)
    stores = stores_for("s3")
    assert stores.emulators is not None
    proxy = StallProxy(stores.emulators.get("s3").port).start()
    failed: list[str] = []
    busy_once = server_error_once(proxy, failed)

    options = {"endpoint_url": proxy.endpoint, "retries": "1"}
    c = await chat(stores, tmp_path, QUEUE_ONLY, follower_options=options)
    try:
        await until(lambda: c.follower.feed_active and c.follower.feed_rounds >= 1)
        await until(lambda: c.waiting() == 0)
        room = c.follower.rooms[ROOM]
        held = len(room.known)
        proxy.add(Rule(rf"/{ROOM}/logs/.*messages_.*\.jsonl", method="GET", answer=busy_once))
        await c.say("read on the second try")
        # Read by the owed listing: a page of its day from just before it (red team rt94:
        # not the room's newest days whole), which is no safety listing of the room.
        await until(lambda: len(room.known) > held and not room.unread, 20)
        assert len(failed) == 1  # the notice's read failed; the listing read it
        assert room.listing_owed_at is None and not room.owed_paths
    finally:
        await c.close()
        proxy.close()
