"""Answers a hostile storage provider (or whoever controls the endpoint) sends, beyond
listings that are merely malformed: the real emulators behind ``StallProxy``.

Red team rt48:
- An XML listing page that declares entities grew a hundredfold as it was parsed: 11.8
  MB sent made one object name of 1.1 billion characters (4.3 GB of memory), past the
  16 MiB cap on what is sent; an S3 error answer did the same.
- A listing could name objects of 15 MB each, one a page, every page kept.
- All three clients (and the SQS change feed) followed a redirect to any address: each
  list, read and write — with its body and S3's session token — went where the
  endpoint said, and that address's answers were taken for the bucket's.
- GCS: after a read found nothing, the check whether the bucket exists ran with no
  deadline: a service trickling its answer held the read for ever.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from bucket_chat_desktop.storage.base import StorageError, StorageNotFoundError
from bucket_chat_desktop.storage.cloud import ANSWER_MAX_BYTES, NAME_MAX

from . import _stall_proxy
from ._stall_proxy import Request, Rule
from .conftest import Emulators, Stores
from .test_hostile_listings import DAY, MIB, SEGMENT, _works_again, forged
from .test_hung_reads import GUARD, LIST_REQUEST, Proxied


@pytest.fixture
def proxied(cloud_stores: Stores, emulators: Emulators) -> Iterator[Proxied]:
    proxy = _stall_proxy.StallProxy(emulators.get(cloud_stores.kind).port).start()
    try:
        yield Proxied(cloud_stores, proxy)
    finally:
        proxy.release()
        proxy.close()


def _entities(prefix: str, body: bytes) -> bytes:
    """The page with an internal entity of 280 characters declared, and the name of its
    one object made of 250,000 references to it (1 MB sent, 70 MB once expanded)."""
    head, _, rest = body.partition(b"?>")
    declared = b'<!DOCTYPE r [<!ENTITY e "' + b"x" * 280 + b'">]>'
    return head + b"?>" + declared + rest.replace(b"BOMB", b"&e;" * 250_000)


@pytest.mark.parametrize("cloud_kind", ["s3", "az"], indirect=True)
async def test_an_xml_page_declaring_entities_is_refused_before_it_is_parsed(
    proxied: Proxied,
) -> None:
    kind = proxied.stores.kind
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    answer = forged(kind, names=lambda p: [(p + "BOMB", 1)], edit=_entities)
    assert len(answer(Request("GET", "/?prefix=x", b""))) < 2 * MIB
    proxied.proxy.stall(LIST_REQUEST[kind], answer=answer)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(StorageError) as caught:
            await asyncio.wait_for(store.list_objects(DAY), GUARD)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = str(caught.value)
    assert "a listing page that declares XML entities" in text, text
    assert "broken or hostile" in text
    assert peak < 3 * ANSWER_MAX_BYTES, f"{peak / MIB:.0f} MiB"
    await _works_again(proxied, store)


@pytest.mark.parametrize("cloud_kind", ["s3"], indirect=True)
async def test_an_error_answer_declaring_entities_is_refused_too(proxied: Proxied) -> None:
    """The error a read of an object gets: botocore read it whole and parsed it (an
    object's own bytes are read within the read's cap, never parsed)."""
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    body = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "' + b"x" * 280 + b'">]>'
        b"<Error><Code>AccessDenied</Code><Message>" + b"&e;" * 250_000 + b"</Message></Error>"
    )
    head = (
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    proxied.proxy.add(Rule(r"one\.jsonl", method="GET", answer=lambda _r: head + body))
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(store.get(SEGMENT), GUARD)
    assert "declares a document type or entities" in str(caught.value), caught.value
    proxied.proxy.release()
    assert await asyncio.wait_for(store.get(SEGMENT), GUARD) == b"x"


async def test_a_name_longer_than_any_service_allows_is_refused(proxied: Proxied) -> None:
    kind = proxied.stores.kind
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    long = "a" * (NAME_MAX + 1)
    proxied.proxy.stall(LIST_REQUEST[kind], answer=forged(kind, names=lambda p: [(p + long, 1)]))
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(store.list_objects(DAY), GUARD)
    text = str(caught.value)
    assert f"no service allows more than {NAME_MAX:,}" in text, text
    # a folder listing the same
    folders = forged(kind, folders=lambda p: [p + long + "/"])
    proxied.proxy.release()
    proxied.proxy.stall(LIST_REQUEST[kind], answer=folders)
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(store.list_level("rooms/r/logs/"), GUARD)
    assert f"no service allows more than {NAME_MAX:,}" in str(caught.value)
    await _works_again(proxied, store)


def _redirect(to: str) -> Callable[[Request], bytes]:
    def answer(request: Request) -> bytes:
        body = b"<Error><Code>TemporaryRedirect</Code><Message>elsewhere</Message></Error>"
        if request.method == "HEAD":  # an answer to HEAD has no body
            body = b""
        return (
            f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}{request.target}\r\n"
            f"Content-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode() + body

    return answer


async def test_a_redirect_is_never_followed(proxied: Proxied, emulators: Emulators) -> None:
    """Every request answered "307, go to <another address>" (here: a second proxy in
    front of the same emulator, which would have answered honestly): the list, the read
    and the write each fail saying so, and nothing reaches that address."""
    kind = proxied.stores.kind
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    elsewhere = _stall_proxy.StallProxy(emulators.get(kind).port).start()
    try:
        reached = elsewhere.stall(r".", _stall_proxy.PASS)
        proxied.proxy.stall(r".", answer=_redirect(elsewhere.endpoint))
        for step in (
            store.list_objects(DAY),
            store.get(SEGMENT),
            store.put_if_absent(DAY + "two.jsonl", b"y"),
        ):
            with pytest.raises(StorageError) as caught:
                await asyncio.wait_for(step, GUARD)
            text = str(caught.value)
            assert "answered with a redirect (HTTP 307)" in text, text
            assert "follows none" in text
        assert reached.hits == [], [h.target for h in reached.hits]
    finally:
        elsewhere.release()
        elsewhere.close()
    await _works_again(proxied, store)


@pytest.mark.parametrize("cloud_kind", ["gs"], indirect=True)
async def test_a_gcs_bucket_check_that_trickles_ends_within_its_deadline(
    proxied: Proxied,
) -> None:
    """A fresh storage's first request is a read of an object that is not there; its
    "does the bucket exist?" check then trickled a byte a second. It has a listing
    page's deadline: the read ends saying the object does not exist."""
    store = proxied.storage()
    deadline = store.page_deadline()  # type: ignore[attr-defined]
    proxied.proxy.add(
        Rule(r"/b/[^/?]+(\?|$)", mode=_stall_proxy.TRICKLE, method="GET", every=1.0, head=True)
    )
    started = time.monotonic()
    with pytest.raises(StorageNotFoundError):
        await asyncio.wait_for(store.get(DAY + "missing.jsonl"), GUARD)
    assert time.monotonic() - started < deadline + 20


@pytest.mark.parametrize("cloud_kind", ["s3"], indirect=True)
async def test_the_change_feed_follows_no_redirect(proxied: Proxied, emulators: Emulators) -> None:
    """The SQS change feed (its own signed requests) sent its request, session token
    included, wherever a redirect said, and took that address's answer for the queue's."""
    from bucket_chat_desktop.storage.sqs import SqsChangeFeed
    from bucket_chat_desktop.storage.url import StorageLocation

    from .test_change_feed import queue_for

    real = queue_for(proxied.stores)
    path = real.split("://", 1)[1].split("/", 1)[1]
    elsewhere = _stall_proxy.StallProxy(emulators.get("s3").port).start()
    loc = proxied.stores.location
    options = {**loc.options, "queue_url": f"{proxied.proxy.endpoint}/{path}"}
    feed = SqsChangeFeed(
        StorageLocation(loc.kind, loc.bucket, loc.prefix, options), proxied.stores.secrets
    )
    try:
        reached = elsewhere.stall(r".", _stall_proxy.PASS)
        proxied.proxy.stall(r".", answer=_redirect(elsewhere.endpoint))
        with pytest.raises(StorageError) as caught:
            await asyncio.wait_for(feed.check(), GUARD)
        assert "answered with a redirect (HTTP 307)" in str(caught.value), caught.value
        assert reached.hits == []
        proxied.proxy.release()
        assert "message(s) waiting" in await asyncio.wait_for(feed.check(), GUARD)
    finally:
        await feed.close()
        elsewhere.release()
        elsewhere.close()


@pytest.mark.parametrize("cloud_kind", ["az"], indirect=True)
async def test_an_azure_write_answered_with_another_success_says_so(proxied: Proxied) -> None:
    """A create answered "200 OK" (Azure answers 201) said "cannot write …: 200: OK"."""
    store = proxied.storage()
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    proxied.proxy.add(Rule(r"/rooms/", method="PUT", answer=lambda _r: answer))
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(store.put_if_absent(SEGMENT, b"x"), GUARD)
    text = str(caught.value)
    assert "answered HTTP 200, which Azure never answers to this request" in text, text
    proxied.proxy.release()
    assert await asyncio.wait_for(store.put_if_absent(SEGMENT, b"x"), GUARD)
