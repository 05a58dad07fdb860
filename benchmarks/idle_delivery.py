"""Idle delivery on a bucket (issue 9, item 11): how late the first message after a lull
arrives, and what an idle app costs in requests — each figure printed with its target.

Run:  .venv/bin/python benchmarks/idle_delivery.py [latency|requests|schedule|sqs|junk|all]
          [--followers 12] [--messages 5] [--minutes 10]

Real components only: moto's S3 server started here on 127.0.0.1 (stopped by PID), real
engines with the app's default ("normal") schedule, requests counted by a wrapper around
each follower's storage (a listing or a download is one request).

latency   REAL TIME, nothing compressed. One writer engine and N idle follower engines
          (each its own S3 client, started at random moments so their poll phases are
          independent). Each message is sent at a random moment after a lull long enough
          for every follower to have settled into its idle rhythm (focused: 65-80 s,
          unfocused: 125-170 s); its delivery latency is the time from the writer's
          ``send`` to the follower's ``EventsAppended``. Prints p50/p95 with the window
          focused and unfocused (target p95 <= 5 s focused).
requests  REAL TIME. Idle followers with 1 and with 50 rooms, window unfocused (the one
          with 50 rooms also has a room on screen), counted for ``--minutes`` after they
          settled: marker listings and anything else they do per hour; plus what one
          room's full listing costs, measured, times the rooms every 4 hours (a ten-minute
          run cannot wait for the 4-hourly listings). Target <= 150 per hour per storage.
schedule  TIME COMPRESSED 60x (every engine period divided by 60: a real minute is a
          simulated hour), 4.5 simulated hours, 1 and 50 rooms, unfocused and focused.
          This proves the schedule's logic end to end (all periodic requests, the 4-hourly
          listings included, add up as the docs say); its absolute figures are not the
          measurement (each round's own duration stretches a compressed period more).
sqs       REAL TIME. The push path: the bucket's event notifications (prefix chat/rooms/)
          go to an SNS topic that fans out to one SQS queue per follower (a queue is read
          by one device: each message reaches one reader), all on moto. Latency as above
          with N followers waiting on their queues, messages after lulls of 25-45 s (past
          a 20 s long poll, so they land anywhere in its cycle) with the window focused,
          target p95 <= 2 s; again unfocused, after lulls past the active minute, when
          the follower rests 15 s between long polls (stated, no target); then idle
          followers with 1 and 50 rooms, unfocused, counted for ``--minutes``: queue
          requests (SQS bills them) and bucket requests (S3 bills them), target <= 150
          per hour per storage for both together.
junk      REAL TIME. What queue junk costs (anyone who may send to the queue can make a
          long poll answer at once): an idle follower with 1 room, counted for
          ``--minutes`` with no junk, junk every 15 s and every 0.2 s behind other
          windows, and every 0.2 s in front (``schedule.feed_rest`` paces a wait that
          came back early with nothing new by the requests it cost).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sync_bench import REGION, WORK, CountingStorage, make_bucket, moto, s3_env

from bucket_chat_desktop.storage import open_storage
from bucket_chat_desktop.storage.feed import ChangeFeed
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, EventsAppended
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.writer import RoomWriter

ROOM = "room-0"
DEFAULT = SyncConfig()  # the app's "normal" speed (Settings().poll_intervals() gives these)
BUDGET = 150  # requests per hour per storage, idle and unfocused
RAMP = DEFAULT.active_window + 2 + 4 + 8 + 16 + 32  # until an unfocused wait reaches 45 s


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def make_rooms(spec: str, rooms: int) -> None:
    storage = open_storage(spec)
    signer = SigningKey.generate()
    for i in range(rooms):
        await RoomWriter(storage, f"room-{i}", "owner@x", signer).create_room(f"Room {i}", "now")
    await storage.close()


def new_engine(
    spec: str, config: SyncConfig, listener: Any = None
) -> tuple[SyncEngine, CountingStorage]:
    counting = CountingStorage(open_storage(spec))
    home = Path(tempfile.mkdtemp(dir=WORK))
    # The counting wrapper hides the S3 storage's queue option: hand its feed over.
    feed: ChangeFeed | None = counting.inner.change_feed()
    engine = SyncEngine(
        counting,
        outbox=Outbox(home / "outbox.sqlite3"),
        listener=listener,
        config=config,
        feed=feed,
    )
    return engine, counting


# -- latency (real time) -----------------------------------------------------------------------


async def _latency(
    spec: str,
    focused: bool,
    followers: int,
    messages: int,
    queues: list[str] | None = None,
) -> list[float]:
    """``queues``: one per follower, which then waits on it (the push path)."""
    lull = (65.0, 80.0) if focused else (RAMP + 3, RAMP + 48)
    if queues is not None:
        # focused: past a 20 s long poll, so a message lands anywhere in its cycle;
        # unfocused: past the active minute and a wait and a rest (20 + 15 s), so the
        # follower is resting or waiting when it comes, at any point of either
        rest = DEFAULT.active_window + DEFAULT.feed_wait + DEFAULT.feed_rest
        lull = (25.0, 45.0) if focused else (rest, rest + 35.0)
    sent: dict[str, float] = {}
    got: list[float] = []

    def listener(event: EngineEvent) -> None:
        if isinstance(event, EventsAppended):
            now = time.time()
            for a in event.items:
                body = a.event.content.get("body")
                if isinstance(body, str) and body in sent:
                    got.append(now - sent[body])

    await make_rooms(spec, 1)
    writer, _ = new_engine(spec, DEFAULT)
    await writer.start()
    engines = [writer]
    try:
        for i in range(followers):  # random starts: independent poll phases
            own = spec if queues is None else with_queue(spec, queues[i])
            engine, _store = new_engine(own, DEFAULT, listener)
            await engine.open_room(ROOM, background=False)
            engine.set_window_focused(focused)
            await engine.start()
            engines.append(engine)
            await asyncio.sleep(random.uniform(0.0, 3.0))
        key = SigningKey.generate()
        for m in range(messages):
            await asyncio.sleep(random.uniform(*lull))
            body = f"message {m}"
            sent[body] = time.time()
            await writer.send(ROOM, "writer@x", key, [("m.room.message", {"body": body})])
        deadline = time.monotonic() + DEFAULT.idle_interval + 30
        while len(got) < followers * messages and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        for engine in engines:
            await engine.close()
            await engine.storage.inner.close()
    return got


def bench_latency(followers: int, messages: int) -> None:
    with moto() as endpoint:
        s3_env_update(endpoint)
        for focused in (True, False):
            spec = make_bucket(endpoint, f"lat-{uuid.uuid4().hex[:8]}")
            started = time.monotonic()
            lat = asyncio.run(_latency(spec, focused, followers, messages))
            label = "focused" if focused else "unfocused"
            target = " (target p95 <= 5 s)" if focused else ""
            print(
                f"delivery after a lull, window {label}: p50 {statistics.median(lat):.2f} s, "
                f"p95 {pct(lat, 0.95):.2f} s, max {max(lat):.2f} s over "
                f"{len(lat)}/{followers * messages} deliveries "
                f"({followers} followers x {messages} messages, "
                f"{(time.monotonic() - started) / 60:.1f} min real time){target}",
                flush=True,
            )


def s3_env_update(endpoint: str) -> None:
    os.environ.update(s3_env(endpoint))


# -- requests per hour (real time) ----------------------------------------------------------


async def settled(
    spec: str, config: SyncConfig, rooms: int, focused: bool
) -> tuple[SyncEngine, CountingStorage]:
    """An engine following ``rooms`` rooms (the first on screen), settled into its idle
    rhythm, its request counts at zero."""
    await make_rooms(spec, rooms)
    engine, counting = new_engine(spec, config)
    for i in range(rooms):
        await engine.open_room(f"room-{i}", background=False, focus=(i == 0))
    engine.set_window_focused(focused)
    await engine.start()
    await asyncio.sleep(RAMP * config.active_window / DEFAULT.active_window + 1)
    for k in counting.counts:
        counting.counts[k] = 0
    return engine, counting


async def _idle(
    spec: str,
    rooms: int,
    minutes: float,
    *,
    focused: bool = False,
    junk: tuple[str, str, float] | None = None,
) -> dict[str, float]:
    """``junk``: moto's endpoint, a queue's URL and a period: a junk message is sent to
    the queue that often
    while the follower is counted (anyone who may send to the queue could)."""
    engine, counting = await settled(spec, DEFAULT, rooms, focused=focused)
    try:
        polls = engine.polls
        queue = engine.feed.requests if engine.feed is not None else 0
        sender = None if junk is None else asyncio.create_task(_send_junk(*junk))
        await asyncio.sleep(minutes * 60)
        if sender is not None:
            sender.cancel()
        per_hour = 60 / minutes
        counted = {k: v * per_hour for k, v in counting.counts.items()}
        rounds = (engine.polls - polls) * per_hour
        if engine.feed is not None:
            queue = (engine.feed.requests - queue) * per_hour
            assert engine.feed_active, engine.feed_message
        before = counting.total()
        await engine.refresh(ROOM)  # what one room's safety listing costs
        one_listing = counting.total() - before
    finally:
        await engine.close()
        await counting.close()
    safety = rooms * one_listing * 3600 / DEFAULT.background_safety
    return {
        "counted": sum(counted.values()),
        "rounds": rounds,
        "one": one_listing,
        "safety": safety,
        "queue": queue,
    }


def bench_requests(minutes: float) -> None:
    async def both(specs: dict[int, str]) -> dict[int, dict[str, float]]:
        runs = [_idle(spec, rooms, minutes) for rooms, spec in specs.items()]
        return dict(zip(specs, await asyncio.gather(*runs), strict=True))

    with moto() as endpoint:
        s3_env_update(endpoint)
        specs = {n: make_bucket(endpoint, f"idle-{n}-{uuid.uuid4().hex[:6]}") for n in (1, 50)}
        for rooms, r in asyncio.run(both(specs)).items():
            total = r["counted"] + r["safety"]
            print(
                f"idle, window unfocused, {rooms} room(s): {total:.0f} requests per hour "
                f"= {r['counted']:.0f} counted over {minutes:g} min real time "
                f"({r['rounds']:.0f} polling rounds/h) + {r['safety']:.1f} for every room's "
                f"4-hourly listing ({r['one']:.0f} requests each, measured); "
                f"target <= {BUDGET}",
                flush=True,
            )


# -- the schedule's logic (compressed) ----------------------------------------------------------


async def _compressed(spec: str, rooms: int, focused: bool, hours: float) -> tuple[float, int]:
    scale = 60.0
    config = replace(
        DEFAULT,
        active_interval=DEFAULT.active_interval / scale,
        focused_interval=DEFAULT.focused_interval / scale,
        idle_interval=DEFAULT.idle_interval / scale,
        active_window=DEFAULT.active_window / scale,
        focused_safety=DEFAULT.focused_safety / scale,
        background_safety=DEFAULT.background_safety / scale,
        batch_window=DEFAULT.batch_window / scale,
    )
    engine, counting = await settled(spec, config, rooms, focused)
    try:
        await asyncio.sleep(hours * 3600 / scale)
        total = counting.total()
    finally:
        await engine.close()
        await counting.close()
    return total / hours, rooms


def bench_schedule(hours: float) -> None:
    async def all_runs(specs: dict[tuple[int, bool], str]) -> list[tuple[float, int]]:
        runs = [_compressed(spec, n, f, hours) for (n, f), spec in specs.items()]
        return list(await asyncio.gather(*runs))

    with moto() as endpoint:
        s3_env_update(endpoint)
        specs = {
            (n, f): make_bucket(endpoint, f"sch-{n}-{int(f)}-{uuid.uuid4().hex[:6]}")
            for n in (1, 50)
            for f in (False, True)
        }
        for (rooms, focused), (per_hour, _) in zip(
            specs, asyncio.run(all_runs(specs)), strict=True
        ):
            expected = (
                3600 / (DEFAULT.focused_interval if focused else DEFAULT.idle_interval)
                + (1 if focused else 0) * 3 * 3600 / DEFAULT.focused_safety
                + rooms * 3 * 3600 / DEFAULT.background_safety
            )
            print(
                f"schedule (60x compressed, {hours:g} simulated h), "
                f"{'focused' if focused else 'unfocused'}, {rooms} room(s): "
                f"{per_hour:.0f} requests per simulated hour "
                f"(the schedule says at most {expected:.0f})",
                flush=True,
            )


# -- the push path: S3 event notifications through SQS ---------------------------------------


def with_queue(spec: str, queue_url: str) -> str:
    from urllib.parse import quote

    return f"{spec}&queue_url={quote(queue_url, safe='')}"


def fan_out(endpoint: str, spec: str, readers: int) -> list[str]:
    """S3 notifications of new objects under the storage's rooms/ -> an SNS topic -> one
    SQS queue per reader (as docs/STORAGE.md sets it up for several devices)."""
    import boto3

    from bucket_chat_desktop.storage.url import parse_storage_url

    loc = parse_storage_url(spec)
    keys = s3_env(endpoint)
    kw = {
        "endpoint_url": endpoint,
        "region_name": REGION,
        "aws_access_key_id": keys["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": keys["AWS_SECRET_ACCESS_KEY"],
    }
    sns, sqs = boto3.client("sns", **kw), boto3.client("sqs", **kw)
    topic = sns.create_topic(Name=f"t-{loc.bucket}")["TopicArn"]
    urls = []
    for i in range(readers):
        url = sqs.create_queue(QueueName=f"q-{loc.bucket}-{i}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"])
        urls.append(url)
    rule = {"Name": "prefix", "Value": f"{loc.prefix}/rooms/"}
    boto3.client("s3", **kw).put_bucket_notification_configuration(
        Bucket=loc.bucket,
        NotificationConfiguration={
            "TopicConfigurations": [
                {
                    "TopicArn": topic,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [rule]}},
                }
            ]
        },
    )
    return urls


async def _send_junk(endpoint: str, queue_url: str, every: float) -> None:
    import boto3

    keys = s3_env(endpoint)
    sqs = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
    )
    while True:
        await asyncio.to_thread(sqs.send_message, QueueUrl=queue_url, MessageBody="junk {")
        await asyncio.sleep(every)


def bench_junk(minutes: float) -> None:
    """What queue junk costs an idle follower (1 room), behind other windows and in
    front: junk every 15 s, and a flood (every 0.2 s)."""
    with moto() as endpoint:
        s3_env_update(endpoint)

        async def runs() -> None:
            for label, every, focused in (
                ("none", 0.0, False),
                ("every 15 s", 15.0, False),
                ("every 0.2 s", 0.2, False),
                ("every 0.2 s", 0.2, True),
            ):
                one = make_bucket(endpoint, f"sqs-junk-{uuid.uuid4().hex[:6]}")
                queue = fan_out(endpoint, one, 1)[0]
                jk = (endpoint, queue, every) if every else None
                r = await _idle(with_queue(one, queue), 1, minutes, focused=focused, junk=jk)
                where = "in front" if focused else "behind other windows"
                total = r["counted"] + r["queue"]
                print(
                    f"push path idle, 1 room, junk {label}, {where}: {total:.0f} requests "
                    f"per hour (bucket {r['counted']:.0f} + queue {r['queue']:.0f}; over "
                    f"{minutes:g} min; budget {BUDGET} behind other windows)",
                    flush=True,
                )

        asyncio.run(runs())


def bench_sqs(followers: int, messages: int, minutes: float) -> None:
    with moto() as endpoint:
        s3_env_update(endpoint)
        spec = make_bucket(endpoint, f"sqs-{uuid.uuid4().hex[:8]}")
        queues = fan_out(endpoint, spec, followers)
        for focused in (True, False):
            if not focused:  # a new bucket and queues: nothing left over from the first run
                spec = make_bucket(endpoint, f"sqs-{uuid.uuid4().hex[:8]}")
                queues = fan_out(endpoint, spec, followers)
            started = time.monotonic()
            lat = asyncio.run(_latency(spec, focused, followers, messages, queues))
            how = (
                "window focused (target p95 <= 2 s)"
                if focused
                else f"window unfocused, resting {DEFAULT.feed_rest:g} s between long polls "
                "once quiet for a minute"
            )
            print(
                f"push path (S3 -> SNS -> SQS, long polls of {DEFAULT.feed_wait:g} s), {how}: "
                f"delivery after a lull p50 {statistics.median(lat):.2f} s, p95 "
                f"{pct(lat, 0.95):.2f} s, max {max(lat):.2f} s over "
                f"{len(lat)}/{followers * messages} deliveries ({followers} followers x "
                f"{messages} messages, {(time.monotonic() - started) / 60:.1f} min real time)",
                flush=True,
            )

        async def both() -> dict[int, dict[str, float]]:
            specs = {}
            for n in (1, 50):
                one = make_bucket(endpoint, f"sqs-idle-{n}-{uuid.uuid4().hex[:6]}")
                specs[n] = with_queue(one, fan_out(endpoint, one, 1)[0])
            runs = [_idle(spec, rooms, minutes) for rooms, spec in specs.items()]
            return dict(zip(specs, await asyncio.gather(*runs), strict=True))

        for rooms, r in asyncio.run(both()).items():
            bucket = r["counted"] + r["safety"]
            cycle = DEFAULT.feed_wait + DEFAULT.feed_rest
            print(
                f"push path idle, window unfocused, {rooms} room(s): "
                f"{bucket + r['queue']:.0f} requests per hour (target <= {BUDGET}) = bucket "
                f"{bucket:.0f} ({r['counted']:.0f} counted over {minutes:g} min, markers "
                f"every {DEFAULT.feed_check / 60:g} min, + {r['safety']:.1f} for every "
                f"room's 4-hourly listing) + queue {r['queue']:.0f} (a long poll of "
                f"{DEFAULT.feed_wait:g} s and a rest of {DEFAULT.feed_rest:g} s: "
                f"{3600 / cycle:.0f}; billed by SQS)",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["latency", "requests", "schedule", "sqs", "junk", "all"],
    )
    parser.add_argument("--followers", type=int, default=12)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--minutes", type=float, default=10.0, help="real idle minutes counted")
    parser.add_argument("--hours", type=float, default=4.5, help="simulated hours (schedule)")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.what in ("latency", "all"):
        bench_latency(args.followers, args.messages)
    if args.what in ("requests", "all"):
        bench_requests(args.minutes)
    if args.what in ("schedule", "all"):
        bench_schedule(args.hours)
    if args.what in ("sqs", "all"):
        bench_sqs(args.followers, args.messages, args.minutes)
    if args.what in ("junk", "all"):
        bench_junk(args.minutes)


if __name__ == "__main__":
    main()
