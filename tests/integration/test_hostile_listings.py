"""Listing answers forged by a broken or hostile service: the real emulators behind
``StallProxy`` (``answer=``), each listing request answered by the test.

Red team: a GCS page whose prefixes were ``[null]`` ended ``bucket-chat rooms`` with a
Python traceback; a page naming another room's segment had it kept in this room; a 1 MB
gzip page inflated to 1,000 MiB in memory (3 GB peak), 300 MB pages were held whole by
all three SDKs, and 4 MiB next-page tokens were kept, every one. Each such listing now
fails with a ``StorageError`` that says what is wrong (the caller notes that the folder
could not be listed, as for any storage error), or drops what is outside the folder
asked, and the storage works again once the service behaves.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import re
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import pytest

from bucket_chat_desktop.storage.base import StorageError, StorageOfflineError
from bucket_chat_desktop.storage.cloud import ANSWER_MAX_BYTES, LIST_TOKEN_MAX

from . import _stall_proxy
from ._stall_proxy import Request, Rule
from .conftest import Emulators, Stores
from .test_hung_reads import GUARD, LIST_REQUEST, Proxied

DAY = "rooms/r/logs/2026-01-05/"
SEGMENT = DAY + "one.jsonl"
MIB = 1024 * 1024


@pytest.fixture
def proxied(cloud_stores: Stores, emulators: Emulators) -> Iterator[Proxied]:
    proxy = _stall_proxy.StallProxy(emulators.get(cloud_stores.kind).port).start()
    try:
        yield Proxied(cloud_stores, proxy)
    finally:
        proxy.release()
        proxy.close()


def _prefix(request: Request) -> str:
    return parse_qs(urlsplit(request.target).query).get("prefix", [""])[0]


def forged(
    kind: str,
    *,
    names: Callable[[str], list[tuple[str, object]]] = lambda prefix: [],
    folders: Callable[[str], list[str]] = lambda prefix: [],
    token: str = "",
    junk: int = 0,
    gzipped: bool = False,
    raw: bytes | None = None,
    edit: Callable[[str, bytes], bytes] = lambda prefix, body: body,
) -> Callable[[Request], bytes]:
    """An answer to a listing request in ``kind``'s own form: ``names(prefix)`` as objects
    ``(key, size)``, ``folders(prefix)`` as common prefixes, ``token`` as the next page's,
    ``junk`` bytes of filler in an element (a field) the SDK does not know; ``raw``: this
    body instead; ``edit(prefix, body)``: the body changed so. ``gzipped``: sent with
    ``Content-Encoding: gzip``."""

    def answer(request: Request) -> bytes:
        prefix = _prefix(request)
        objects, common = names(prefix), folders(prefix)
        filler = "a" * junk
        if raw is not None:
            body, ctype = raw, "application/json" if kind == "gs" else "application/xml"
        elif kind == "gs":
            page: dict[str, object] = {
                "kind": "storage#objects",
                "items": [{"name": n, "size": s} for n, s in objects],
                "prefixes": common,
                "x": filler,
            }
            if token:
                page["nextPageToken"] = token
            body, ctype = json.dumps(page).encode(), "application/json"
        elif kind == "s3":
            items = "".join(
                f"<Contents><Key>{escape(n)}</Key><Size>{s}</Size><ETag>&quot;e&quot;</ETag>"
                "</Contents>"
                for n, s in objects
            ) + "".join(
                f"<CommonPrefixes><Prefix>{escape(c)}</Prefix></CommonPrefixes>" for c in common
            )
            body = (
                '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
                'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>'
                f"<Prefix>{escape(prefix)}</Prefix><KeyCount>{len(objects)}</KeyCount>"
                f"<MaxKeys>1000</MaxKeys><IsTruncated>{str(bool(token)).lower()}</IsTruncated>"
                + (f"<NextContinuationToken>{token}</NextContinuationToken>" if token else "")
                + f"{items}<Junk>{filler}</Junk></ListBucketResult>"
            ).encode()
            ctype = "application/xml"
        else:
            blobs = "".join(
                f"<Blob><Name>{escape(n)}</Name><Properties>"
                "<Last-Modified>Mon, 05 Jan 2026 09:00:00 GMT</Last-Modified><Etag>0x1</Etag>"
                f"<Content-Length>{s}</Content-Length><BlobType>BlockBlob</BlobType>"
                "</Properties></Blob>"
                for n, s in objects
            ) + "".join(f"<BlobPrefix><Name>{escape(c)}</Name></BlobPrefix>" for c in common)
            body = (
                '<?xml version="1.0" encoding="utf-8"?><EnumerationResults '
                'ServiceEndpoint="http://127.0.0.1/devstoreaccount1/" ContainerName="c">'
                f"<Prefix>{escape(prefix)}</Prefix><Blobs>{blobs}</Blobs><Junk>{filler}</Junk>"
                f"<NextMarker>{token}</NextMarker></EnumerationResults>"
            ).encode()
            ctype = "application/xml"
        body = edit(prefix, body)
        extra = ""
        if gzipped:
            body, extra = gzip.compress(body, 9), "Content-Encoding: gzip\r\n"
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\n{extra}x-ms-version: 2021-08-06\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        return head.encode() + body

    return answer


async def _works_again(proxied: Proxied, store: object) -> None:
    """Once the service behaves, the same storage lists the real folder."""
    proxied.proxy.release()
    listed = await asyncio.wait_for(store.list_objects(DAY), GUARD)  # type: ignore[attr-defined]
    assert [i.path for i in listed] == [SEGMENT]


async def test_a_listing_page_over_the_cap_is_refused(proxied: Proxied) -> None:
    """A page of more than ``ANSWER_MAX_BYTES`` (a real one is well under 1 MiB) is
    refused, not held whole and parsed: the listing fails with a reason, nothing of it
    is used."""
    kind = proxied.stores.kind
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    rule = proxied.proxy.stall(
        LIST_REQUEST[kind],
        answer=forged(kind, names=lambda p: [(p + "a.jsonl", 1)], junk=ANSWER_MAX_BYTES + 1),
    )
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(store.list_objects(DAY), GUARD)
    assert not isinstance(caught.value, StorageOfflineError)  # it answered: no retry helps
    text = str(caught.value)
    assert f"a listing page of more than {ANSWER_MAX_BYTES // MIB} MiB" in text, text
    assert "broken or hostile" in text
    assert len(rule.hits) == 1
    await _works_again(proxied, store)


@pytest.mark.parametrize("cloud_kind", ["gs", "az"], indirect=True)
async def test_a_gzip_bomb_of_a_page_is_refused_without_inflating_it(proxied: Proxied) -> None:
    """GCS's and Azure's clients inflated a gzip answer whole (aiohttp's reader for
    gcsfs, the SDK's own ``body()``): half a megabyte became 128 MiB here. Its inflated
    bytes are counted as they come and the page refused past the cap; the memory the
    listing took stays near the cap (measured with ``tracemalloc``)."""
    kind = proxied.stores.kind
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    answer = forged(kind, junk=128 * MIB, gzipped=True)
    bomb = answer(Request("GET", "/?prefix=x", b""))
    assert len(bomb) < MIB
    proxied.proxy.stall(LIST_REQUEST[kind], answer=lambda _request: bomb)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(StorageError) as caught:
            await asyncio.wait_for(store.list_objects(DAY), GUARD)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"a listing page of more than {ANSWER_MAX_BYTES // MIB} MiB" in str(caught.value)
    assert peak < 3 * ANSWER_MAX_BYTES, f"{peak / MIB:.0f} MiB"
    await _works_again(proxied, store)


async def test_a_next_page_token_over_the_cap_is_refused(proxied: Proxied) -> None:
    """Each page may name the next with a token; every token was kept (to see a page
    named twice), 4 MiB each. One of more than ``LIST_TOKEN_MAX`` is refused at once."""
    kind = proxied.stores.kind
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    rule = proxied.proxy.stall(
        LIST_REQUEST[kind],
        answer=forged(kind, names=lambda p: [(p + "a.jsonl", 1)], token="t" * (LIST_TOKEN_MAX + 1)),
    )
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(store.list_objects(DAY), GUARD)
    assert f"a token of more than {LIST_TOKEN_MAX // 1024} KiB" in str(caught.value)
    assert len(rule.hits) == 1  # the page it names is never asked for
    await _works_again(proxied, store)


async def test_objects_listed_outside_the_folder_asked_are_dropped(
    proxied: Proxied, caplog: pytest.LogCaptureFixture
) -> None:
    """Asked for room r's day, the service also named another room's segment and a key
    outside the storage's own prefix: they were kept as objects of room r (and noted as
    unexpected objects of that room, for good). They are dropped, with one line in the
    log; what is in the folder is kept. The same for the folders of a folder."""
    kind = proxied.stores.kind
    store = proxied.storage()
    root = proxied.stores.location.prefix

    def names(prefix: str) -> list[tuple[str, object]]:
        return [
            (prefix + "one.jsonl", 3),
            (f"{root}/rooms/other/logs/2026-01-05/two.jsonl", 4),
            ("elsewhere/" + prefix + "three.jsonl", 5),
        ]

    def folders(prefix: str) -> list[str]:
        return [prefix + "r/", f"{root}/other-rooms/x/", "zz/rooms/y/"]

    proxied.proxy.stall(LIST_REQUEST[kind], answer=forged(kind, names=names, folders=folders))
    with caplog.at_level(logging.WARNING, logger="bucket_chat.storage"):
        listed = await asyncio.wait_for(store.list_objects(DAY), GUARD)
        assert [(i.path, i.size) for i in listed] == [(SEGMENT, 3)]
        assert await asyncio.wait_for(store.list_dirs("rooms/"), GUARD) == ["r"]
    warned = [
        r.getMessage() for r in caplog.records if "outside the folder asked" in r.getMessage()
    ]
    assert len(warned) == 2, warned
    assert "2 object(s) outside the folder asked; ignored" in warned[0]


GCS_MALFORMED = {
    "a name that is a number": (
        {"items": [{"name": 123, "size": "1"}]},
        "an item whose name is not text",
    ),
    "an item without a name": ({"items": [{"size": "5"}]}, "an item without a name"),
    "a size that is text": (
        {"items": [{"name": "{p}a.jsonl", "size": "abc"}]},
        "not a whole number",
    ),
    "a size that is a fraction": (
        {"items": [{"name": "{p}a.jsonl", "size": 3.9}]},
        "not a whole number",
    ),
    # a JSON escape of half a UTF-16 pair: no object's name; kept, it could not be saved
    # in the index, and the room's every pass stopped on it (red team rt41)
    "a name that is not UTF-8": (
        {"items": [{"name": "{p}a\udcff.jsonl", "size": "5"}]},
        "an object name that is not UTF-8 text",
    ),
    "items not a list": ({"items": "abc"}, '"items" is not a list'),
    "an item not an object": ({"items": ["abc"]}, 'an entry of "items" that is not an object'),
    "a page that is a list": ([{"items": []}], "the answer is not a JSON object"),
    "a token that is a list": (
        {"items": [], "nextPageToken": ["a"]},
        "the next page's token is not text",
    ),
    "not JSON": (None, "not JSON"),
    # red team rt48: a RecursionError and Python's advice on integer digits, in the text
    "JSON nested too deeply": (
        b'{"items": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
        "JSON nested too deeply",
    ),
    "a size of 5,000 digits": (
        b'{"items": [{"name": "team/rooms/r/logs/2026-01-05/a", "size": ' + b"9" * 5000 + b"}]}",
        "a number of thousands of digits",
    ),
}


@pytest.mark.parametrize("cloud_kind", ["gs"], indirect=True)
@pytest.mark.parametrize("variant", list(GCS_MALFORMED))
async def test_a_malformed_gcs_page_is_refused_in_words(proxied: Proxied, variant: str) -> None:
    """A GCS page whose fields are not of their types raised ``KeyError: 'name'``,
    ``ValueError: invalid literal for int()``, ``AttributeError: 'list' object has no
    attribute 'get'`` — or a bare ``TypeError`` past the storage's error handling (a
    traceback from ``bucket-chat rooms``). Each is a ``StorageError`` saying, in words,
    what is wrong with the answer."""
    page, reason = GCS_MALFORMED[variant]
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    if isinstance(page, bytes):
        body = page
    else:
        body = (
            b"<html>" if page is None else json.dumps(page).replace("{p}", "team/" + DAY).encode()
        )
    proxied.proxy.stall(LIST_REQUEST["gs"], answer=forged("gs", raw=body))
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(store.list_objects(DAY), GUARD)
    text = str(caught.value)
    assert "the GCS listing answer is malformed" in text, text
    assert reason in text, text
    await _works_again(proxied, store)


@pytest.mark.parametrize("cloud_kind", ["gs"], indirect=True)
@pytest.mark.parametrize(
    "page",
    [
        {"items": [{"name": "rooms/r/logs/\udcc3\udca9", "size": "1"}]},
        {"prefixes": ["rooms/r/logs/\udcc3\udca9/"]},
    ],
    ids=["object", "folder"],
)
async def test_a_level_listing_naming_lone_surrogates_is_refused(
    proxied: Proxied, page: object
) -> None:
    """Red team rt43: a name of lone surrogates (a JSON escape; no service stores one)
    in the listing of a room's ``logs/`` was shown as the name its bytes spell ("é"): one
    notice for it and a real object "é", or a real-looking name for it alone. Refused,
    as the listing of a day folder refuses one."""
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    proxied.proxy.stall(LIST_REQUEST["gs"], answer=forged("gs", raw=json.dumps(page).encode()))
    with pytest.raises(StorageError, match="name that is not UTF-8 text"):
        await asyncio.wait_for(store.list_level("rooms/r/logs/"), GUARD)
    await _works_again(proxied, store)


@pytest.mark.parametrize("cloud_kind", ["gs"], indirect=True)
@pytest.mark.parametrize("prefixes", [[None], [123], "rooms/abc/"])
async def test_malformed_folders_of_a_gcs_page_are_refused(
    proxied: Proxied, prefixes: object
) -> None:
    """``{"prefixes": [null]}`` made ``list_dirs`` raise a ``TypeError`` outside its error
    handling (``bucket-chat rooms`` ended with a traceback)."""
    store = proxied.storage()
    body = json.dumps({"prefixes": prefixes}).encode()
    proxied.proxy.stall(LIST_REQUEST["gs"], answer=forged("gs", raw=body))
    with pytest.raises(StorageError, match="the GCS listing answer is malformed"):
        await asyncio.wait_for(store.list_dirs("rooms/"), GUARD)


@pytest.mark.parametrize(
    ("cloud_kind", "variant"),
    [
        ("s3", "no name"),
        ("s3", "size not a number"),
        ("az", "no name"),
        ("az", "size not a number"),
        ("az", "not XML"),
    ],
    indirect=["cloud_kind"],
)
async def test_a_malformed_xml_page_is_refused_in_words(proxied: Proxied, variant: str) -> None:
    """The same for S3 and Azure, whose SDKs parse the XML: an entry without a name or
    with a size that is not a number, or (Azure) an answer that is not XML at all.
    (botocore takes a 200 answer to S3 that is not XML for a "200 error", a service
    error 500 to retry later: its own rule, not changed here.)"""
    kind = proxied.stores.kind
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    tag = "Key" if kind == "s3" else "Name"
    size = "abc" if "size" in variant else 1

    def edit(prefix: str, body: bytes) -> bytes:
        if variant == "not XML":
            return b"{not xml"
        if variant == "no name":
            return body.replace(f"<{tag}>{prefix}NAME</{tag}>".encode(), b"")
        return body

    answer = forged(kind, names=lambda p: [(p + "NAME", size)], edit=edit)
    proxied.proxy.stall(LIST_REQUEST[kind], answer=answer)
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(store.list_objects(DAY), GUARD)
    text = str(caught.value)
    service = {"s3": "S3", "az": "Azure Blob"}[kind]
    assert f"the {service} listing answer is malformed" in text, text
    await _works_again(proxied, store)


@pytest.mark.parametrize("cloud_kind", ["gs"], indirect=True)
def test_bucket_chat_rooms_says_the_listing_is_malformed(
    proxied: Proxied,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What a person saw: ``bucket-chat rooms`` ended with rc 1 and a Python traceback
    (``TypeError: 'NoneType' object is not subscriptable``). It now fails as for any
    storage error, with the reason in one line."""
    from bucket_chat_desktop.cli.main import main

    from .test_cli_cloud import _as, _cli_env

    url = _cli_env(proxied.stores, monkeypatch)
    endpoint = re.search(r"endpoint_url=([^&]+)", url)
    assert endpoint is not None
    _as(monkeypatch, tmp_path, "bob")
    body = json.dumps({"kind": "storage#objects", "prefixes": [None]}).encode()
    proxied.proxy.stall(LIST_REQUEST["gs"], answer=forged("gs", raw=body))
    assert main(["-s", url.replace(endpoint.group(1), proxied.proxy.endpoint), "rooms"]) == 2
    err = capsys.readouterr().err
    assert "cannot list the rooms" in err, err
    assert "the GCS listing answer is malformed" in err, err
    assert "Traceback" not in err


UPLOAD_REQUEST = {"s3": ("PUT", r"/rooms/"), "gs": ("POST", r"/upload/"), "az": ("PUT", r"/rooms/")}


async def test_an_answer_over_the_cap_to_a_write_is_refused(proxied: Proxied) -> None:
    """The limit is on every answer a client holds whole, not only on listing pages: an
    upload's answer of more than 16 MiB (plain for S3, whose client decodes nothing; a
    gzip bomb for GCS and Azure) fails the write with the reason, and is not held."""
    kind = proxied.stores.kind
    store = proxied.storage()
    if kind == "s3":
        body, extra = b"<a>" + b"a" * (ANSWER_MAX_BYTES + 1) + b"</a>", ""
    else:
        body, extra = gzip.compress(b"a" * (128 * MIB), 9), "Content-Encoding: gzip\r\n"
    answer = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    method, pattern = UPLOAD_REQUEST[kind]
    proxied.proxy.add(Rule(pattern, method=method, answer=lambda _request: answer))
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(store.put_if_absent(SEGMENT, b"x"), GUARD)
    assert f"an answer of more than {ANSWER_MAX_BYTES // MIB} MiB" in str(caught.value)
    proxied.proxy.release()
    assert await asyncio.wait_for(store.put_if_absent(SEGMENT, b"x"), GUARD)
    await _works_again(proxied, store)


@pytest.mark.parametrize("cloud_kind", ["az"], indirect=True)
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
async def test_an_azure_read_answered_past_its_range_is_refused(
    proxied: Proxied, gzipped: bool
) -> None:
    """The Azure SDK joins each ranged piece of a download whole, and inflated it whole:
    a read of at most 1,000 bytes answered with 32 MiB (or a gzip bomb of 128 MiB) was
    held whole before the read's own cap cut it. The piece is read within the range it
    asked for; more is refused with the reason."""
    store = proxied.storage()
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    if gzipped:
        body, extra = gzip.compress(b"a" * (128 * MIB), 9), "Content-Encoding: gzip\r\n"
    else:
        body, extra = b"a" * (32 * MIB), ""
    answer = (
        f"HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\n{extra}"
        f"Content-Range: bytes 0-{len(body) - 1}/{len(body)}\r\nx-ms-blob-type: BlockBlob\r\n"
        f"x-ms-version: 2021-08-06\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    proxied.proxy.add(Rule(r"/one\.jsonl", method="GET", answer=lambda _request: answer))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(StorageError) as caught:
            await asyncio.wait_for(store.get(SEGMENT, max_bytes=1000), GUARD)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "the service sent an answer of more than 1,001 bytes" in str(caught.value)
    if gzipped:  # (a plain answer's bytes are in the proxy's buffers, in this process too)
        assert peak < 8 * MIB, f"{peak / MIB:.0f} MiB"
    proxied.proxy.release()
    assert await asyncio.wait_for(store.get(SEGMENT, max_bytes=1000), GUARD) == b"x"
