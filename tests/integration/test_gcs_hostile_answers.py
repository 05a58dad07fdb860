# ruff: noqa: F811 - ``proxied`` is test_hostile_listings' fixture, named by the tests
"""Google Cloud Storage as a hostile provider (red team rt82): fake-gcs-server behind
``StallProxy`` (``answer=``: the test answers the request).

- A GCS JSON listing page under the 16 MiB cap made of millions of tiny values
  (``{},{},…``) was parsed whole: 16 MiB sent, or 16 KB gzip-compressed, took 421 MiB
  while parsed (the XML of S3 and Azure is refused past ``XML_TAGS_MAX`` tags for this
  very reason). It is refused unparsed.
- An answer to a GCS error (a 503) was judged by its body, not its status: a message
  holding the word "invalid" became gcsfs's "Bad Request" (refused for good, no retry),
  and one ``json.loads`` cannot take (nested deep, a number of 5,000 digits) a raw
  Python error; the 503 was never said, never retried, and a message being sent was
  marked failed (it waits for a click) instead of being retried.
- A GCS write answered "200 OK" with a body that is not JSON (a proxy's HTML page, JSON
  nested deep, a huge number) said the Python error it met: "JSONDecodeError: Expecting
  value: line 1 column 1 (char 0)", "RecursionError: …", "… use
  sys.set_int_max_str_digits() to increase the limit".
"""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc

import pytest

from bucket_chat_desktop.storage.base import StorageError
from bucket_chat_desktop.storage.cloud import ANSWER_MAX_BYTES

from ._stall_proxy import Rule, http_answer
from .test_hostile_listings import (  # noqa: F401 (proxied: a fixture)
    DAY,
    MIB,
    SEGMENT,
    _works_again,
    proxied,
)
from .test_hung_reads import GUARD, LIST_REQUEST, Proxied

# -- F1 ------------------------------------------------------------------------------------


def _many_empty_objects(gzipped: bool) -> bytes:
    """A GCS listing page within the 16 MiB cap whose "items" are 5.6 million empty JSON
    objects: ``json.loads`` makes a dict of each (72 bytes of memory per 3 sent)."""
    count = (ANSWER_MAX_BYTES - 64) // 3
    body = b'{"kind":"storage#objects","items":[' + b",".join([b"{}"] * count) + b"]}"
    assert len(body) <= ANSWER_MAX_BYTES
    extra = ""
    if gzipped:
        body, extra = gzip.compress(body, 9), "Content-Encoding: gzip\r\n"
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


@pytest.mark.parametrize("cloud_kind", ["gs"], indirect=True)
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
async def test_a_gcs_json_page_of_millions_of_values_is_refused_unparsed(
    proxied: Proxied, gzipped: bool
) -> None:
    """An S3 or Azure XML page is refused past ``XML_TAGS_MAX`` tags before it is parsed
    ("a million take at most 140 MB"); a GCS JSON page has no such bound: 16 MiB of
    ``{},{},…`` (16 KB gzip-compressed) are 5.6 million dicts, 421 MiB while parsed, for
    a page that is refused anyway ("an item without a name"). Bounded as the XML tests
    bound it (``test_hostile_answers``): three times the cap."""
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    bomb = _many_empty_objects(gzipped)
    proxied.proxy.stall(LIST_REQUEST["gs"], answer=lambda _request: bomb)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(StorageError) as caught:
            await asyncio.wait_for(store.list_objects(DAY), GUARD)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "broken or hostile" in str(caught.value), str(caught.value)
    assert peak < 3 * ANSWER_MAX_BYTES, f"{len(bomb):,} bytes sent took {peak / MIB:.0f} MiB"
    await _works_again(proxied, store)


# -- F2 ------------------------------------------------------------------------------------

_DEEP = b"[" * 60_000  # within the 64 KiB of an error's body gcsfs reads
_DIGITS = b'{"error": {"code": 503, "message": "busy", "x": ' + b"9" * 5000 + b"}}"
_INVALID = b'{"error": {"code": 503, "message": "backend in an invalid state, retry"}}'
_PLAIN = b'{"error": {"code": 503, "message": "backend busy, retry"}}'  # the control: holds


@pytest.mark.parametrize("cloud_kind", ["gs"], indirect=True)
@pytest.mark.parametrize(
    "body", [_DEEP, _DIGITS, _INVALID, _PLAIN], ids=["deep", "digits", "invalid", "control"]
)
@pytest.mark.parametrize("step", ["read", "write", "list"])
async def test_a_gcs_503_is_judged_by_its_status_whatever_its_body(
    proxied: Proxied, body: bytes, step: str
) -> None:
    """A 503 (the service or a proxy in front of it is busy) is a passing failure: it
    must be said as such (``transient``: the outbox retries, the status line says the
    storage is not answering), whatever text its body holds. S3 and Azure drop an error
    body they cannot read and judge by the status alone (``refuse_xml_declarations``)."""
    await proxied.stores.new().put_if_absent(SEGMENT, b"x")
    store = proxied.storage()
    answer = http_answer("503 Service Unavailable", body, "application/json")
    if step == "read":
        proxied.proxy.add(Rule(r"/o/", method="GET", answer=lambda _r: answer))
        call = store.get(SEGMENT)
    elif step == "write":
        proxied.proxy.add(Rule(r"uploadType=", method="POST", answer=lambda _r: answer))
        call = store.put_if_absent(DAY + "two.jsonl", b"y")
    else:
        proxied.proxy.add(Rule(LIST_REQUEST["gs"], answer=lambda _r: answer))
        call = store.list_objects(DAY)
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(call, GUARD)
    text = str(caught.value)
    assert caught.value.transient, f"{type(caught.value).__name__}: {text}"
    assert "503" in text, text
    assert "Error:" not in text and "sys.set_int_max_str_digits" not in text, text
    proxied.proxy.release()
    await _works_again(proxied, store)


# -- F3 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cloud_kind", ["gs"], indirect=True)
@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"<html><body><h1>Welcome to nginx!</h1></body></html>", "text/html"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b'{"md5Hash": ' + b"9" * 5000 + b"}", "application/json"),
    ],
    ids=["html", "deep-json", "huge-number"],
)
async def test_a_gcs_write_answered_200_with_no_json_says_so(
    proxied: Proxied, body: bytes, ctype: str
) -> None:
    """An upload answered "200 OK" with what is not the object's JSON resource is a
    broken or hostile answer, said so in words (as ``_get_json`` says it of a listing
    page, and Azure of a write answered 200); the message named the Python error met
    ("JSONDecodeError: Expecting value: line 1 column 1 (char 0)", "RecursionError:
    maximum recursion depth exceeded …", "ValueError: Exceeds the limit (4300 digits)
    … use sys.set_int_max_str_digits() to increase the limit"). Nothing is lost: once
    the service behaves the write goes through."""
    store = proxied.storage()
    answer = http_answer("200 OK", body, ctype)
    proxied.proxy.add(Rule(r"uploadType=", method="POST", answer=lambda _r: answer))
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(store.put_if_absent(SEGMENT, b"x"), GUARD)
    text = str(caught.value)
    assert "broken or hostile" in text, text
    assert "Error:" not in text and "sys.set_int_max_str_digits" not in text, text
    proxied.proxy.release()
    assert await asyncio.wait_for(store.put_if_absent(SEGMENT, b"x"), GUARD)
