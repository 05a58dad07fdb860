"""Answers cut off in the middle, and a service that stopped waiting: passing failures,
tried again, never a message parked until someone clicks.

Red team rt52: one dropped connection or gateway error while a message was written left
it — and every later message of the room, waiting behind it in its chain — "failed" in
the app until the user clicked, with library words ("ConnectionClosedError: Connection
was closed before…", "IncompleteReadError…", an empty "ProxyError: "), though the service
had stored it and answered normally a moment later. A cut answer, S3's ``RequestTimeout``
(its answer to a stalled upload), HTTP 408 and gcsfs's 502 were plain errors, which
nothing retries by itself. They are passing failures now: the outbox tries again with
its back-off, and the retry finds the bytes the first try stored (exactly once)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from waiting import until

from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE
from bucket_chat_desktop.storage.base import StorageError
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, OutboxChanged
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.selfcheck import check_storage_use
from bucket_chat_desktop.sync.session import read_room
from bucket_chat_desktop.sync.writer import RoomError, RoomWriter

from ._stall_proxy import CUT, LOST, Request, Rule, http_answer
from .test_hostile_listings import SEGMENT
from .test_hung_reads import GUARD, Proxied, proxied  # noqa: F401 (proxied: a fixture)

ALL = pytest.mark.parametrize("cloud_kind", ["s3", "gs", "az"], indirect=True)
# A write of an object: S3 and Azure put it, GCS posts an upload.
WRITE = {"s3": "PUT", "az": "PUT", "gs": "POST"}
# (gcsfs names the object in the upload's body, not in its address)
WRITTEN = {"s3": r"/one\.jsonl", "az": r"/one\.jsonl", "gs": r"uploadType="}
SEGMENTS = {"s3": r"/logs/.*\.jsonl", "az": r"/logs/.*\.jsonl", "gs": r"uploadType="}


@ALL
async def test_a_write_whose_answer_is_cut_is_a_passing_failure(proxied: Proxied) -> None:  # noqa: F811
    kind = proxied.stores.kind
    store = proxied.storage()
    proxied.proxy.add(Rule(WRITTEN[kind], CUT, method=WRITE[kind], keep=100))
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(store.put_if_absent(SEGMENT, b"stored all the same\n"), GUARD)
    assert caught.value.transient, caught.value
    assert "broke off before its answer was complete (retry later)" in str(caught.value)
    proxied.proxy.release()
    # the service stored it: a retry finds its own bytes, and writes nothing again
    assert await store.get(SEGMENT) == b"stored all the same\n"
    assert await store.put_if_absent(SEGMENT, b"stored all the same\n") is False


@ALL
async def test_a_read_whose_answer_is_cut_is_a_passing_failure(proxied: Proxied) -> None:  # noqa: F811
    await proxied.stores.new().put_if_absent(SEGMENT, b"x" * 5000)
    store = proxied.storage()
    proxied.proxy.add(Rule(r"one\.jsonl", CUT, method="GET", keep=1000))
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(store.get(SEGMENT), GUARD)
    assert caught.value.transient, caught.value
    assert "broke off" in str(caught.value)
    proxied.proxy.release()
    assert await store.get(SEGMENT) == b"x" * 5000


def _stopped_waiting(kind: str) -> Callable[[Request], bytes]:
    """The service's answer when it gave up waiting for the request's body: S3's 400
    ``RequestTimeout``, HTTP 408 elsewhere."""
    if kind == "s3":
        body = (
            b"<Error><Code>RequestTimeout</Code><Message>Your socket connection to the server "
            b"was not read from or written to within the timeout period.</Message></Error>"
        )
        return lambda _r: http_answer("400 Bad Request", body, "application/xml")
    if kind == "az":
        body = b'<?xml version="1.0" encoding="utf-8"?><Error><Code>RequestTimeout</Code></Error>'
        return lambda _r: http_answer("408 Request Timeout", body, "application/xml")
    body = b'{"error": {"code": 408, "message": "Request Timeout"}}'
    return lambda _r: http_answer("408 Request Timeout", body, "application/json")


@ALL
async def test_a_service_that_stopped_waiting_is_a_passing_failure(proxied: Proxied) -> None:  # noqa: F811
    kind = proxied.stores.kind
    store = proxied.storage()
    proxied.proxy.add(Rule(WRITTEN[kind], method=WRITE[kind], answer=_stopped_waiting(kind)))
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(store.put_if_absent(SEGMENT, b"x\n"), GUARD)
    assert caught.value.transient, caught.value
    assert "the service stopped waiting for the request" in str(caught.value)


@pytest.mark.parametrize("cloud_kind", ["gs"], indirect=True)
async def test_a_gcs_bad_gateway_is_a_passing_failure(proxied: Proxied) -> None:  # noqa: F811
    store = proxied.storage()
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    bad_gateway = http_answer("502 Bad Gateway", page, "text/html")
    proxied.proxy.add(Rule(WRITTEN["gs"], method="POST", answer=lambda _r: bad_gateway))
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(store.put_if_absent(SEGMENT, b"x\n"), GUARD)
    assert caught.value.transient, caught.value
    assert "service error 502 (bad gateway)" in str(caught.value)


@ALL
async def test_a_message_whose_write_was_cut_goes_out_by_itself_exactly_once(
    proxied: Proxied,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The engine and its outbox, as the app runs them: the first message's segment is
    stored but every answer to its write is cut; the second waits behind it. Both go out
    by themselves once the service answers again — never "failed", nothing written twice."""
    kind = proxied.stores.kind
    key = SigningKey(b"\x03" * 32)
    await RoomWriter(proxied.stores.new(), "r", "alice@example.com", key).create_room("Team", "now")
    states: list[tuple[str, str]] = []

    def heard(event: EngineEvent) -> None:
        if isinstance(event, OutboxChanged):
            states.append((event.state, event.error or ""))

    outbox = Outbox(tmp_path / "outbox.sqlite3")
    engine = SyncEngine(
        proxied.storage(), outbox=outbox, config=SyncConfig(batch_window=0.02), listener=heard
    )
    cut = proxied.proxy.add(Rule(SEGMENTS[kind], CUT, method=WRITE[kind], keep=100))
    try:
        await engine.open_room("r", background=False)
        await engine.start()
        text = {"msgtype": "m.text"}
        await engine.send("r", "alice@example.com", key, [(MESSAGE, {**text, "body": "first"})])
        await until(lambda: any(error for _, error in states), timeout=GUARD)
        await engine.send("r", "alice@example.com", key, [(MESSAGE, {**text, "body": "second"})])
        assert cut.hits, "the first message's write reached the service"
        proxied.proxy.release()
        assert await engine.flush(timeout=GUARD)
    finally:
        await engine.close()
        outbox.close()
    assert "failed" not in {state for state, _ in states}, states
    assert any("broke off" in error for _, error in states), states
    stored = []
    check = proxied.stores.new()
    for item in await check.list_objects("rooms/r/logs/"):
        stored += [line for line in (await check.get(item.path)).splitlines() if line]
    bodies = [line for line in stored if b'"m.room.message"' in line]
    assert len(bodies) == 2 and b'"first"' in bodies[0] + bodies[1], stored


def _server_error(kind: str) -> bytes:
    if kind == "gs":
        body = b'{"error": {"code": 500, "message": "Backend Error"}}'
        return http_answer("500 Internal Server Error", body, "application/json")
    body = b"<Error><Code>InternalError</Code><Message>We encountered an error.</Message></Error>"
    return http_answer("500 Internal Server Error", body, "application/xml")


@ALL
async def test_the_self_check_passes_when_a_probes_answer_was_lost(proxied: Proxied) -> None:  # noqa: F811
    """Red team rt52: the service stored the probe and answered 500; the SDK's retry met
    the create-only conflict and found its own bytes, and "Test connection" failed a
    working storage: "a new object's name was already taken"."""
    kind = proxied.stores.kind
    store = proxied.storage(retries="3")
    error = _server_error(kind)
    probe = r"bucket-chat-probe" if kind != "gs" else WRITTEN["gs"]
    lost = proxied.proxy.add(
        Rule(probe, LOST, method=WRITE[kind], answer=lambda _r: error, times=1)
    )
    result = await asyncio.wait_for(check_storage_use(store), GUARD)
    assert lost.hits, "the probe's first answer was lost"
    assert result.level == "ok", result
    (step,) = [s for s in result.steps if s.label == "create-only write"]
    assert step.ok and "the first try's answer was lost" in step.detail


@ALL
async def test_making_a_room_again_after_its_answer_was_lost_makes_it(proxied: Proxied) -> None:  # noqa: F811
    """Red team rt52: the room's metadata was stored and its answer lost; making the room
    again said only "room 'team' already exists", as if it were someone else's. The
    metadata there is this device's own, under the same name: the room is made, joined
    once. Another key's room of that id is still refused."""
    kind = proxied.stores.kind
    key = SigningKey(b"\x05" * 32)
    error = _server_error(kind)
    metadata = r"metadata\.json" if kind != "gs" else WRITTEN["gs"]
    proxied.proxy.add(Rule(metadata, LOST, method=WRITE[kind], answer=lambda _r: error, times=1))
    first = RoomWriter(proxied.storage(), "team", "alice@example.com", key)
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(first.create_room("Team", _now(-7)), GUARD)
    assert caught.value.transient, caught.value
    again = RoomWriter(proxied.storage(), "team", "alice@example.com", key)
    await asyncio.wait_for(again.create_room("Team", _now()), GUARD)
    view = await read_room(proxied.stores.new(), "team")
    assert view.result is not None and not view.result.errors
    joins = [a for a in view.result.timeline if a.event.type == MEMBER]
    assert [a.event.sender_id for a in joins] == ["alice@example.com"]
    other = RoomWriter(proxied.storage(), "team", "alice@example.com", SigningKey(b"\x06" * 32))
    with pytest.raises(RoomError, match="room 'team' already exists"):
        await other.create_room("Team", _now())


def _now(seconds: float = 0) -> str:
    """A room's creation time, as the app writes it, ``seconds`` from now."""
    when = datetime.now(UTC) + timedelta(seconds=seconds)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@ALL
async def test_a_copy_of_a_room_made_here_long_ago_is_not_taken_for_one_just_made(
    proxied: Proxied,  # noqa: F811
) -> None:
    """Red team rt53: a device's key is the same on every storage. A room it made
    elsewhere a year ago, its metadata copied here with someone's segments beside it,
    was taken for this device's own earlier try: "made", into a room another had set."""
    key = SigningKey(b"\x05" * 32)
    old = RoomWriter(proxied.stores.new(), "team", "alice@example.com", key)
    await old.write_metadata("Team", _now(-365 * 86_400))  # as if copied from elsewhere
    again = RoomWriter(proxied.storage(), "team", "alice@example.com", key)
    with pytest.raises(RoomError, match="room 'team' already exists"):
        await again.create_room("Team", _now())
