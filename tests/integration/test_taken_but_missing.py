# ruff: noqa: F811 - ``proxied`` is test_hung_reads' fixture, named by the tests
"""One "already exists" answer to a create-only write that stored nothing (red team
rt95): S3 412 PreconditionFailed, GCS 412 conditionNotMet, Azure 409 BlobAlreadyExists,
from the provider or a proxy in front of it, and the object then reads as missing (404).
Nothing holds the name: the write is tried again (an attachment is stored, a room is
made), and a service that says so at every try gets a passing error that says what it
claims (``TakenButMissingError``), never a final "already exists"."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.gui.attachments import passing
from bucket_chat_desktop.storage.base import TakenButMissingError
from bucket_chat_desktop.sync import blobs
from bucket_chat_desktop.sync.writer import RoomWriter

from ._stall_proxy import Request, Rule, http_answer
from .test_hung_reads import GUARD, Proxied, proxied  # noqa: F401 (proxied: a fixture)

CLOUDS = pytest.mark.parametrize("cloud_kind", ["s3", "gs", "az"], indirect=True)
WRITE = {"s3": "PUT", "az": "PUT", "gs": "POST"}
# gcsfs names the object in the upload's body, not in its address
WRITTEN = {"s3": r"/rooms/", "az": r"/rooms/", "gs": r"uploadType="}
CONTRADICTION = "says an object of that name already exists, but shows no object there"


def already_exists(kind: str) -> Callable[[Request], bytes]:
    """The service's own "already exists" answer to a create-only write; nothing stored."""

    def answer(_request: Request) -> bytes:
        if kind == "gs":
            body = (
                b'{"error":{"code":412,"message":"At least one of the pre-conditions you '
                b'specified did not hold.","errors":[{"reason":"conditionNotMet"}]}}'
            )
            return http_answer("412 Precondition Failed", body, "application/json")
        if kind == "s3":
            body = (
                b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code>'
                b"<Message>At least one of the pre-conditions you specified did not hold"
                b"</Message><Condition>If-None-Match</Condition></Error>"
            )
            return http_answer("412 Precondition Failed", body, "application/xml")
        body = (
            b'<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobAlreadyExists</Code>'
            b"<Message>The specified blob already exists.</Message></Error>"
        )
        head = (
            "HTTP/1.1 409 The specified blob already exists.\r\n"
            "Content-Type: application/xml\r\nx-ms-error-code: BlobAlreadyExists\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        return head.encode() + body

    return answer


def _report(tmp_path: Path) -> Path:
    file = tmp_path / "report.txt"
    file.write_bytes(b"the quarterly report")
    return file


@CLOUDS
async def test_an_attachment_answered_already_exists_with_nothing_there_is_stored(
    proxied: Proxied, tmp_path: Path
) -> None:
    """Observed: a final ``BlobError`` "report.txt cannot be stored: its name is held by
    an object this device cannot compare with it (… does not exist)", no Retry, though
    the next try would have stored it. Now the write is tried again at once."""
    kind = proxied.stores.kind
    lie = proxied.proxy.add(
        Rule(WRITTEN[kind], method=WRITE[kind], answer=already_exists(kind), times=1)
    )
    store = proxied.storage()
    content = await asyncio.wait_for(
        blobs.upload(store, "team", _report(tmp_path), limit_bytes=10**6), GUARD
    )
    assert len(lie.hits) == 1 and content["body"] == "report.txt"
    digest = blobs.sha256_hex(b"the quarterly report")
    stored = await proxied.stores.new().get(f"rooms/team/blobs/{digest}")
    assert stored == b"the quarterly report"


@CLOUDS
async def test_a_service_that_says_already_exists_at_every_try_gets_a_passing_error(
    proxied: Proxied, tmp_path: Path
) -> None:
    """Each try answered "already exists", and each read after it "not found": as many
    tries as the storage's ``retries``, then an error that says what the service claims
    and that can be retried (the attachment row's Retry)."""
    kind = proxied.stores.kind
    lie = proxied.proxy.add(
        Rule(WRITTEN[kind], method=WRITE[kind], answer=already_exists(kind), times=2)
    )
    store = proxied.storage(retries="2")
    with pytest.raises(TakenButMissingError) as caught:
        await asyncio.wait_for(
            blobs.upload(store, "team", _report(tmp_path), limit_bytes=10**6), GUARD
        )
    assert len(lie.hits) == 2  # bounded by the storage's retries
    assert passing(caught.value) and CONTRADICTION in str(caught.value), caught.value
    assert "asked 2 times" in str(caught.value)
    # the service answers honestly again (the rule is spent): Retry stores it
    content = await asyncio.wait_for(
        blobs.upload(store, "team", _report(tmp_path), limit_bytes=10**6), GUARD
    )
    assert content["body"] == "report.txt"


@CLOUDS
async def test_a_room_answered_already_exists_with_nothing_there_is_made(
    proxied: Proxied,
) -> None:
    """Observed: ``RoomError("room 'team' already exists")`` with nothing of room
    "team" in the storage. Now its metadata is written again and the room made."""
    kind = proxied.stores.kind
    written = r"metadata\.json" if kind != "gs" else WRITTEN[kind]
    lie = proxied.proxy.add(Rule(written, method=WRITE[kind], answer=already_exists(kind), times=1))
    writer = RoomWriter(proxied.storage(), "team", "alice@example.com", SigningKey(b"\x05" * 32))
    await asyncio.wait_for(writer.create_room("Team", "2026-01-05T09:00:00.000Z"), GUARD)
    assert len(lie.hits) == 1
    assert await proxied.stores.new().exists("rooms/team/metadata.json")
