# ruff: noqa: F811 - ``proxied`` is test_hostile_listings' fixture, named by the tests
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
import tracemalloc
from collections.abc import Callable

import pytest

from bucket_chat_desktop.storage.base import (
    StorageError,
    StorageNotFoundError,
    StorageThrottledError,
)
from bucket_chat_desktop.storage.cloud import ANSWER_MAX_BYTES, NAME_MAX

from . import _stall_proxy
from ._stall_proxy import Request, Rule
from .conftest import Emulators
from .test_hostile_listings import (  # noqa: F401 (proxied: a fixture)
    DAY,
    MIB,
    SEGMENT,
    _works_again,
    forged,
    proxied,
)
from .test_hung_reads import GUARD, LIST_REQUEST, Proxied


def _entities(prefix: str, body: bytes) -> bytes:
    """The page with an internal entity of 280 characters declared, and the name of its
    one object made of 250,000 references to it (1 MB sent, 70 MB once expanded)."""
    head, _, rest = body.partition(b"?>")
    declared = b'<!DOCTYPE r [<!ENTITY e "' + b"x" * 280 + b'">]>'
    return head + b"?>" + declared + rest.replace(b"BOMB", b"&e;" * 250_000)


def _utf16(prefix: str, body: bytes) -> bytes:
    """The same page in UTF-16 (red team rt49: a search of its bytes found nothing)."""
    text = _entities(prefix, body).decode("utf-8")
    return (
        text.replace('encoding="UTF-8"', 'encoding="UTF-16"')
        .replace('encoding="utf-8"', 'encoding="UTF-16"')
        .encode("utf-16")
    )


def _nested(prefix: str, body: bytes) -> bytes:
    """The name of the page's one object made of 600,000 nested tags (red team rt48:
    14 MB of such tags took 560 MB while the page was parsed)."""
    return body.replace(b"BOMB", b"<a>" * 600_000 + b"</a>" * 600_000)


def _flat(prefix: str, body: bytes) -> bytes:
    """The name made of 1,100,000 empty tags side by side."""
    return body.replace(b"BOMB", b"<a/>" * 1_100_000)


@pytest.mark.parametrize("cloud_kind", ["s3", "az"], indirect=True)
@pytest.mark.parametrize(
    ("encoded", "said"),
    [
        (_entities, "declares XML entities"),
        (_utf16, "is not in UTF-8"),
        (_nested, "holds more than 1,000,000 XML tags"),
        (_flat, "holds more than 1,000,000 XML tags"),
    ],
    ids=["utf-8", "utf-16", "nested-tags", "many-tags"],
)
async def test_an_xml_page_that_would_swell_as_it_is_parsed_is_refused_unparsed(
    proxied: Proxied, encoded: Callable[[str, bytes], bytes], said: str
) -> None:
    kind = proxied.stores.kind
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    answer = forged(kind, names=lambda p: [(p + "BOMB", 1)], edit=encoded)
    assert len(answer(Request("GET", "/?prefix=x", b""))) < 5 * MIB
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
    assert f"a listing page that {said}" in text, text
    assert "broken or hostile" in text
    assert peak < 3 * ANSWER_MAX_BYTES, f"{peak / MIB:.0f} MiB"
    await _works_again(proxied, store)


_ENTITY_ERROR = (
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "' + b"x" * 280 + b'">]>'
    b"<Error><Code>AccessDenied</Code><Message>" + b"&e;" * 250_000 + b"</Message></Error>"
)
_TAGS_ERROR = (
    b'<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>'
    + b"<a/>" * 1_100_000
    + b"</Message></Error>"
)


@pytest.mark.parametrize("cloud_kind", ["s3", "az"], indirect=True)
@pytest.mark.parametrize("body", [_ENTITY_ERROR, _TAGS_ERROR], ids=["entities", "many-tags"])
async def test_an_error_answer_that_would_swell_is_judged_by_its_status(
    proxied: Proxied, body: bytes
) -> None:
    """The error a read of an object gets: botocore read it whole and parsed it (an
    object's own bytes are read within the read's cap, never parsed). Its body is
    dropped, the error judged by its status (403: access denied)."""
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    head = (
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    proxied.proxy.add(Rule(r"one\.jsonl", method="GET", answer=lambda _r: head + body))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(StorageError) as caught:
            await asyncio.wait_for(store.get(SEGMENT), GUARD)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "access denied" in str(caught.value), caught.value
    assert peak < 3 * ANSWER_MAX_BYTES, f"{peak / MIB:.0f} MiB"
    proxied.proxy.release()
    assert await asyncio.wait_for(store.get(SEGMENT), GUARD) == b"x"


@pytest.mark.parametrize("cloud_kind", ["s3", "az"], indirect=True)
async def test_a_proxys_html_error_page_is_retried_as_its_status_says(proxied: Proxied) -> None:
    """Red team rt49: a gateway's "503" page (``<!DOCTYPE html>``) was refused as a
    hostile answer, for good: no retry, and a write's message was marked failed. A
    document type declares nothing: the page is read as any 503 (busy, try again), and
    the next try works."""
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    page = b"<!DOCTYPE html><html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
    busy = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\n"
        f"Content-Length: {len(page)}\r\nConnection: close\r\n\r\n"
    ).encode() + page
    rule = proxied.proxy.add(
        Rule(LIST_REQUEST[proxied.stores.kind], answer=_first_only(proxied, busy))
    )
    # (these tests' storages try once: the app's own retry is its next listing)
    with pytest.raises(StorageThrottledError) as caught:
        await asyncio.wait_for(store.list_objects(DAY), GUARD)
    assert "busy (503)" in str(caught.value) and caught.value.transient, caught.value
    assert len(rule.hits) == 1
    listed = await asyncio.wait_for(store.list_objects(DAY), GUARD)
    assert [i.path for i in listed] == [SEGMENT]


def _first_only(proxied: Proxied, answer: bytes) -> Callable[[Request], bytes]:
    """``answer`` to the first request the rule matches; the proxy's rules are dropped
    with it, so the emulator answers every later one."""

    def first(request: Request) -> bytes:
        proxied.proxy.release()
        return answer

    return first


async def test_a_name_longer_than_any_service_allows_is_skipped(
    proxied: Proxied, caplog: pytest.LogCaptureFixture
) -> None:
    """Names of 15 MB, one a page, were kept page after page (4.5 GB). A name longer
    than any service allows is skipped as each page comes, with a line in the log; it
    cannot be a segment's or a day's. (Refusing the whole listing let one member's junk
    object, on a service that allows long names, unlist a day for everyone: rt49.)"""
    kind = proxied.stores.kind
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    long = "a" * (NAME_MAX + 1)
    names = forged(kind, names=lambda p: [(p + long, 1), (p + "one.jsonl", 1)])
    proxied.proxy.stall(LIST_REQUEST[kind], answer=names)
    listed = await asyncio.wait_for(store.list_objects(DAY), GUARD)
    assert [i.path for i in listed] == [SEGMENT]
    assert f"no service allows more than {NAME_MAX}" in caplog.text
    proxied.proxy.release()
    alone = forged(kind, names=lambda p: [(p + long, 1)])  # a page of nothing else
    proxied.proxy.stall(LIST_REQUEST[kind], answer=alone)
    assert await asyncio.wait_for(store.list_objects(DAY), GUARD) == []
    proxied.proxy.release()
    folders = forged(kind, folders=lambda p: [p + long + "/", p + "2026-01-05/"])
    proxied.proxy.stall(LIST_REQUEST[kind], answer=folders)
    level = await asyncio.wait_for(store.list_level("rooms/r/logs/"), GUARD)
    assert level.folders == ["2026-01-05"], level
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
            assert "which this app never follows" in text
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
    check = proxied.proxy.add(
        Rule(r"/b/[^/?]+(\?|$)", mode=_stall_proxy.TRICKLE, method="GET", every=1.0, head=True)
    )
    # The check's answer, a byte a second, would take minutes (past GUARD); the page
    # deadline, well within it, ends the check and the read says what it knows.
    assert deadline < GUARD / 2
    with pytest.raises(StorageNotFoundError):
        await asyncio.wait_for(store.get(DAY + "missing.jsonl"), GUARD)
    assert check.hits, "the bucket check was made (and trickled)"


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
