"""Writes to a service that takes the upload and then never finishes its answer: the
real emulators behind ``StallProxy``, whose ``TRICKLE`` sends the emulator's answer (its
head too) a byte at a time, so the socket's read timeout never fires. The emulator
stores the object as it would; only its answer is held. The write must end within its
deadline as an offline error (tried again), and its next try must find its own bytes
and take the write as done: nothing lost, nothing written twice. The
``asyncio.wait_for`` around each write only keeps a failing test from hanging the
suite."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from waiting import until

from bucket_chat_desktop.storage.base import AlreadyExistsError, StorageOfflineError
from bucket_chat_desktop.storage.cloud import FsspecStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.writer import RoomWriter

from ._stall_proxy import HANG, SLOW_UPLOAD, TRICKLE, Request, Rule, StallProxy
from .conftest import StoresMaker
from .test_hung_reads import Proxied, proxied  # noqa: F401 (a fixture)

GUARD = 60  # seconds: only so that a write that never ends fails instead of hanging

# How each service's upload of an object named ``…one.jsonl`` looks.
UPLOAD = {"s3": ("PUT", r"one\.jsonl"), "az": ("PUT", r"one\.jsonl"), "gs": ("POST", "uploadType")}


async def test_a_write_whose_answer_trickles_is_given_up_and_its_retry_is_its_own(
    proxied: Proxied,  # noqa: F811
) -> None:
    """Red team: a service took a create-only upload, then answered a byte every half
    second: the write was still waiting after 75 s (timeout 5 s, one try), and the room's
    outbox lane with it. It ends now within ``write_deadline`` (3 s of the service's own
    time here, and a little for the bytes) as an offline error; the object the service
    stored meanwhile is this device's own, so the next try returns "already there"
    (``False``), not "other contents"."""
    kind = proxied.stores.kind
    path = "rooms/r/logs/2026-01-05/one.jsonl"
    data = b'{"body": "first"}\n'
    store = proxied.storage(timeout="1", retries="1")
    assert isinstance(store, FsspecStorage)
    method, pattern = UPLOAD[kind]
    rule = proxied.proxy.add(Rule(pattern, TRICKLE, method=method, every=0.5, head=True))
    with pytest.raises(StorageOfflineError) as caught:
        await asyncio.wait_for(store.put_if_absent(path, data), GUARD)
    deadline = store.write_deadline(len(data))
    assert deadline < 4
    # given up on its own deadline, which it names (the trickle would take a minute)
    assert re.search(rf"did not answer the write within {deadline:.0f} s", str(caught.value))
    assert len(rule.hits) == 1
    proxied.proxy.release()
    assert await proxied.stores.new().get(path) == data  # stored all the same

    assert await asyncio.wait_for(store.put_if_absent(path, data), GUARD) is False
    with pytest.raises(AlreadyExistsError):  # other bytes are still refused
        await asyncio.wait_for(store.put_if_absent(path, data + b"x"), GUARD)


async def test_a_send_whose_upload_answer_trickles_is_delivered_once(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """Red team, in the app (GCS): the first message's upload was stored, its answer
    trickled for ever; a minute later that message and the next one were both still
    pending, the room's lane held. Now the write is given up after its deadline, the
    outbox tries it again, finds it stored, and both messages are sent, each once."""
    stores = stores_for("gs")
    assert stores.emulators is not None
    proxy = StallProxy(stores.emulators.get("gs").port).start()
    key = SigningKey(b"\x02" * 32)
    await RoomWriter(stores.new(), "r", "alice@example.com", key).create_room("Team", "now")
    engine = SyncEngine(
        Proxied(stores, proxy).storage(timeout="1", retries="1"),
        outbox=Outbox(tmp_path / "outbox.sqlite3"),
        config=SyncConfig(batch_window=0.02),
    )
    try:
        await engine.open_room("r", background=False)
        await engine.start()
        rule = proxy.add(Rule("uploadType", TRICKLE, method="POST", every=0.5))
        await engine.send("r", "alice@example.com", key, [("m.room.message", {"body": "first"})])
        await until(lambda: rule.hits, GUARD)
        proxy.rules.remove(rule)  # only the first upload trickles
        await engine.send("r", "alice@example.com", key, [("m.room.message", {"body": "second"})])
        assert await engine.flush(GUARD)
        assert await engine.pending() == ()
        bodies: list[str] = []
        for item in await stores.new().list_objects("rooms/r/logs/"):
            data = await stores.new().get(item.path)
            bodies += [b for b in ("first", "second") if f'"{b}"'.encode() in data]
        assert sorted(bodies) == ["first", "second"]  # each stored, once
    finally:
        proxy.release()
        await engine.close()
        proxy.close()


async def test_an_upload_slower_than_the_deadline_allows_goes_through_on_its_next_try(
    proxied: Proxied,  # noqa: F811
) -> None:
    """Red team: on an uplink slower than the deadline allows (64 KiB/s), a big
    attachment could never be sent: every try started again from the first byte and
    stopped at the same deadline. A write that ran out of time now stretches the time
    the storage's next writes allow for their bytes (twice as long, up to 16 times); a
    big write that goes through quickly brings it back. Here 256 KiB at 36 KiB/s (7 s):
    the first try may take 5 s (its deadline is 7 s), the next one 9 s (11 s)."""
    kind = proxied.stores.kind
    path = "rooms/r/blobs/slow.bin"
    data = bytes(range(256)) * 1024  # 256 KiB
    store = proxied.storage(timeout="1", retries="1")
    assert isinstance(store, FsspecStorage)
    first, first_try = store.write_deadline(len(data)), store.write_read_timeout(len(data))
    assert 6 < first < 8 and 4 < first_try < 6
    method, _ = UPLOAD[kind]
    rule = proxied.proxy.add(
        Rule(r"slow\.bin|uploadType", SLOW_UPLOAD, method=method, keep=9 * 1024, every=0.25)
    )
    with pytest.raises(StorageOfflineError) as caught:
        await asyncio.wait_for(store.put_if_absent(path, data), GUARD)
    second = store.write_deadline(len(data))
    assert 10 < second < 12 and 8 < store.write_read_timeout(len(data)) < 10
    assert re.search(
        r"did not answer the write within \d+ s .*too slow for 262,144 bytes", str(caught.value)
    )
    assert f"the next try allows {second:.0f} s" in str(caught.value)
    # The proxy reads a body ``keep`` bytes after each pause of ``every`` seconds: the
    # whole of it takes longer than the first try allowed (which the first try showed).
    steps = -(-len(data) // rule.keep)
    assert steps * rule.every > first_try
    tried = len(rule.hits)
    # Created, or (the first try's bytes had left this machine's socket buffers before
    # it gave up, and the proxy passed them on) found stored as its own: both are sent.
    assert await asyncio.wait_for(store.put_if_absent(path, data), GUARD) in (True, False)
    # it needed the longer time: the proxy took (and the service answered) a request
    # only once it had read its whole body at its pace
    assert len(rule.hits) > tried and len(rule.hits[-1].body) >= len(data)
    assert store.write_deadline(len(data)) == second  # slow: the stretch stays
    assert await proxied.stores.new().get(path) == data

    proxied.proxy.release()  # the link is fast again: one quick big write undoes it
    assert await asyncio.wait_for(store.put_if_absent(path + ".2", data), GUARD) is True
    assert store.write_deadline(len(data)) == first


async def test_a_marker_whose_write_met_a_passing_failure_is_written_on_a_later_try(
    stores_for: StoresMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team: the bucket answered the write of a message's activity marker with a
    server error once. The message was stored and said sent, and the marker let go:
    followers that poll the markers got the message only with their safety listing (15
    minutes in front, 4 hours behind other windows). The marker is now written again
    (``publisher.MARKER_RETRIES``, 0.2 s here), once it is there not again."""
    from bucket_chat_desktop.protocol.activity import activity_folder, parse_marker
    from bucket_chat_desktop.protocol.ids import utc_date
    from bucket_chat_desktop.sync import publisher

    from ._stall_proxy import server_error_once

    monkeypatch.setattr(publisher, "MARKER_RETRIES", (0.2, 0.2, 0.2))
    stores = stores_for("s3")
    assert stores.emulators is not None
    proxy = StallProxy(stores.emulators.get("s3").port).start()
    refused: list[str] = []
    busy_once = server_error_once(proxy, refused)

    key = SigningKey(b"\x02" * 32)
    await RoomWriter(stores.new(), "r", "alice@example.com", key).create_room("Team", "now")
    engine = SyncEngine(
        Proxied(stores, proxy).storage(timeout="2", retries="1"),
        outbox=Outbox(tmp_path / "outbox.sqlite3"),
        config=SyncConfig(batch_window=0.02),
    )
    try:
        await engine.open_room("r", background=False)
        await engine.start()
        proxy.add(Rule(r"/activity/", method="PUT", answer=busy_once))
        await engine.send("r", "alice@example.com", key, [("m.room.message", {"body": "hi"})])
        assert await engine.flush(GUARD)
        assert await engine.pending() == () and len(refused) == 1  # sent; its marker failed

        async def markers() -> list[str]:
            named = []
            today = activity_folder(utc_date(int(time.time() * 1000)))
            for item in await stores.new().list_objects(today):
                got = parse_marker(item.path)
                if got is not None and got[1] == "r" and "/messages_" in got[2]:
                    named.append(got[2])
            return named

        deadline = time.monotonic() + GUARD
        while not await markers() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        (segment,) = await markers()  # written on a later try
        assert await stores.new().get(segment)
        retries = engine._publisher._markers
        while retries and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not retries and len(await markers()) == 1  # ended: once written, not again
    finally:
        proxy.release()
        await engine.close()
        proxy.close()


class _FirstOnly(Rule):
    """A rule that applies to the first request it matches only."""

    def matches(self, request: Request) -> bool:
        return not self.hits and super().matches(request)


async def test_a_write_whose_first_request_is_lost_is_tried_again_within_its_deadline(
    proxied: Proxied,  # noqa: F811
) -> None:
    """Red team: with the SDK's read timeout set past the whole write deadline (so that
    a slow upload could finish), one lost request — a dead pooled connection — was never
    tried again: the write failed as offline after its deadline (12 s here) where the
    SDK's own retry had it through in 3. Each try's read timeout is now the service's
    ``timeout`` after the time its bytes may take: the SDK tries again, and a small
    write that was never answered teaches nothing of the link (no stretch)."""
    kind = proxied.stores.kind
    path = "rooms/r/logs/2026-01-05/one.jsonl"
    data = b'{"body": "first"}\n'
    store = proxied.storage(timeout="2", retries="3")
    assert isinstance(store, FsspecStorage)
    before = store.write_deadline(len(data))
    method, pattern = UPLOAD[kind]
    lost = proxied.proxy.add(_FirstOnly(pattern, HANG, method=method))
    seen = len(proxied.proxy.requests)
    # Written (a write that waited out its deadline fails as offline), by a second try
    # of the same request after the lost one: the SDK's retry, not a new write of ours.
    assert await asyncio.wait_for(store.put_if_absent(path, data), GUARD) is True
    assert len(lost.hits) == 1
    uploads = [
        r
        for r in proxied.proxy.requests[seen:]
        if r.method == method and re.search(pattern, r.target)
    ]
    assert len(uploads) == 2, [r.target for r in uploads]
    assert store.write_deadline(len(data)) == before
    assert await proxied.stores.new().get(path) == data


async def test_small_writes_that_get_no_answer_do_not_stretch_big_ones(
    proxied: Proxied,  # noqa: F811
) -> None:
    """Red team: four small writes a hung or hostile service did not answer made every
    later upload allow 16 times the time for its bytes (a 25 MB attachment: 1.8 hours),
    and small writes never undid it. Only a write whose bytes were given more time than
    the service's own stretches the deadline."""
    kind = proxied.stores.kind
    store = proxied.storage(timeout="1", retries="1")
    assert isinstance(store, FsspecStorage)
    big = 25 * 1024 * 1024
    before = store.write_deadline(big)
    method, _ = UPLOAD[kind]
    proxied.proxy.add(Rule(r"hang\d|uploadType", HANG, method=method))
    for i in range(4):
        with pytest.raises(StorageOfflineError):
            await asyncio.wait_for(
                store.put_if_absent(f"rooms/r/logs/2026-01-05/hang{i}.jsonl", b"{}\n"), GUARD
            )
    assert store.write_deadline(big) == before
