"""Red team: a member rewrites a room's ``metadata.json`` after this device read it.

Metadata is written once, create-only, by the room's creator (PROTOCOL.md section 10):
honest clients never change it. A member who overwrote it with metadata of their own,
well signed by their own key ("Payroll: send your bank details to mallory", created by
mallory, backdated), renamed the room for everyone, silently: every check passed (a good
signature by a key that speaks for its ``creator_id``), so the app even called the room
"signed by mallory". Now this device keeps the first metadata it used (in its index) and
reports any other as ``metadata-changed``, an error, showing the name it read first.
Real folder, real engine and real SQLite index across two sessions (a restart)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index, index_path_for
from bucket_chat_desktop.protocol.findings import Kind, Severity
from bucket_chat_desktop.protocol.metadata import MAX_METADATA_BYTES, build_metadata
from bucket_chat_desktop.protocol.signing import public_key_text, sign_mapping
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import RoomView, SyncConfig
from bucket_chat_desktop.sync.session import engine_session
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "design"
ALICE = "alice@example.com"
MALLORY = "mallory@example.com"
CREATED = "2026-01-05T09:00:00.000Z"


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def text(body: str) -> list[Draft]:
    return [Draft.text(body)]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"

    async def build() -> None:
        storage = LocalStorage(root)
        alice = RoomWriter(storage, ROOM, ALICE, key(1), displayname="Alice")
        await alice.create_room("Design review", CREATED)
        await alice.send(text("welcome"))
        # Mallory is a member like any other: her key is trusted on first use.
        await RoomWriter(storage, ROOM, MALLORY, key(9), displayname="Mallory").send(text("hi"))

    asyncio.run(build())
    return root


def open_view(store: Path, data: Path) -> RoomView:
    async def run() -> RoomView:
        storage = LocalStorage(store)
        async with engine_session(
            storage, outbox=False, config=SyncConfig(), data_dir=data
        ) as engine:
            await engine.open_room(ROOM, background=False, focus=False)
            view = await engine.room_view(ROOM)
            assert view is not None and view.result is not None
            return view

    return asyncio.run(run())


def metadata_file(store: Path) -> Path:
    return store / "rooms" / ROOM / "metadata.json"


def changed(view: RoomView) -> list[str]:
    return [f.message for f in view.metadata_findings if f.kind is Kind.METADATA_CHANGED]


def index_name(store: Path, data: Path) -> object:
    index = Index.open(index_path_for(data, LocalStorage(store).identity))
    try:
        row = index.room(ROOM)
        return row["name"] if row is not None else None
    finally:
        index.close()


def test_metadata_rewritten_by_a_member_is_reported_and_the_first_kept(
    store: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    first = open_view(store, data)
    assert first.metadata is not None and first.metadata.name == "Design review"
    assert changed(first) == []
    # Mallory replaces it with metadata of her own: well signed, by her key, backdated.
    metadata_file(store).write_bytes(
        build_metadata(
            room_id=ROOM,
            name="Payroll: send your bank details to mallory",
            created_at="2020-01-01T00:00:00.000Z",
            creator_id=MALLORY,
            signing_key=key(9),
        )
    )
    again = open_view(store, data)  # a restart of the app: a new session, the same index
    assert again.metadata is not None
    assert again.metadata.name == "Design review"  # the one read first
    assert again.metadata.creator_id == ALICE
    [message] = changed(again)
    assert "Payroll: send your bank details to mallory" in message
    assert "Design review" in message and MALLORY in message
    [finding] = [f for f in again.metadata_findings if f.kind is Kind.METADATA_CHANGED]
    assert finding.severity is Severity.ERROR
    assert finding.path == f"rooms/{ROOM}/metadata.json"
    assert index_name(store, data) == "Design review"


def test_metadata_removed_after_it_was_read_is_reported(store: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_view(store, data)
    metadata_file(store).unlink()
    view = open_view(store, data)
    assert view.metadata is not None and view.metadata.name == "Design review"
    [message] = changed(view)
    assert "no longer" in message
    assert not [f for f in view.metadata_findings if f.kind is Kind.METADATA_MISSING]


def test_metadata_replaced_by_junk_is_reported(store: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_view(store, data)
    metadata_file(store).write_bytes(b"{not json")
    view = open_view(store, data)
    assert view.metadata is not None and view.metadata.name == "Design review"
    [message] = changed(view)
    assert "cannot be used" in message


def test_the_same_metadata_written_differently_is_no_change(store: Path, tmp_path: Path) -> None:
    """A synced folder's tool may write the file again; an editor may re-indent it: the
    same JSON value is the same metadata."""
    data = tmp_path / "data"
    open_view(store, data)
    path = metadata_file(store)
    raw = path.read_bytes()
    path.write_bytes(b"  \n" + raw.replace(b',"', b', "') + b"\n\n")
    view = open_view(store, data)
    assert changed(view) == []
    assert view.metadata is not None and view.metadata.signed


def test_a_room_first_read_without_metadata_takes_the_first_that_appears(
    store: Path, tmp_path: Path
) -> None:
    """Metadata not there yet (not synced) is nothing to compare with: the first metadata
    this device uses is the one kept."""
    data = tmp_path / "data"
    path = metadata_file(store)
    raw = path.read_bytes()
    path.unlink()
    view = open_view(store, data)
    assert view.metadata is None and changed(view) == []
    path.write_bytes(raw)
    view = open_view(store, data)
    assert view.metadata is not None and view.metadata.name == "Design review"
    assert changed(view) == []


def test_first_metadata_whose_kept_form_is_larger_than_the_file_still_guards(
    store: Path, tmp_path: Path
) -> None:
    """The kept form is canonical JSON, which escapes every non-ASCII character (``é`` is
    two bytes in the file, six kept): metadata of 40 KB written in raw UTF-8 (any
    indentation and raw UTF-8 are fine, section 10) was kept as 120 KB, which the 64 KB
    limit on *reading storage* then refused, so the kept one was dropped and any
    rewrite that followed was taken silently, for good."""
    data = tmp_path / "data"
    body = {
        "room_id": ROOM,
        "name": "Design review",
        "created_at": CREATED,
        "version": "1.0",
        "protocol": "bucket-chat-v1",
        "creator_id": ALICE,
        "creator_key": public_key_text(key(1)),
        "topic": "é" * 20_000,  # a field of the creator's client, kept but not checked
    }
    raw = json.dumps(sign_mapping(body, key(1)), ensure_ascii=False).encode("utf-8")
    assert MAX_METADATA_BYTES // 2 < len(raw) <= MAX_METADATA_BYTES
    metadata_file(store).write_bytes(raw)
    first = open_view(store, data)
    assert first.metadata is not None and first.metadata.signed and changed(first) == []
    metadata_file(store).write_bytes(
        build_metadata(
            room_id=ROOM,
            name="Payroll: send your bank details to mallory",
            created_at="2020-01-01T00:00:00.000Z",
            creator_id=MALLORY,
            signing_key=key(9),
        )
    )
    again = open_view(store, data)
    assert again.metadata is not None and again.metadata.name == "Design review"
    [message] = changed(again)
    assert "Payroll" in message
