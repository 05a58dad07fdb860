"""An identical copy of Alice's event planted by a member in a segment whose name sorts
first, next to Eve's own event under the same id (PROTOCOL.md section 6 step 1), on a
real local folder, index and engine: a cold read (newest names first), a rebuild from the
index (path order) and a warm reopen show the same rows, in the same order, at the same
places, and name the same places in their findings. Before, the copy first *read* was
kept: after a restart the two rows under the id swapped and the ``replay`` finding moved
to another segment."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.audit import AuditResult
from bucket_chat_desktop.protocol.event import MESSAGE, Event
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.ids import client_id_for, segment_path
from bucket_chat_desktop.protocol.metadata import build_metadata
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine

ROOM = "room-1"
ALICE, BOB, EVE = "alice@example.com", "bob@example.com", "eve@example.com"
KEYS = {
    ALICE: SigningKey(b"\x01" * 32),
    BOB: SigningKey(b"\x02" * 32),
    EVE: SigningKey(b"\x03" * 32),
}
T0 = 1764000000000
QUIET = SyncConfig(
    batch_window=0.05, local_rescan=3600.0, active_interval=3600.0, process_min_bytes=1 << 40
)


def _event(sender: str, body: str, ts: int, unique: str) -> Event:
    return build_event(
        room_id=ROOM,
        sender_id=sender,
        event_type=MESSAGE,
        content={"msgtype": "m.text", "body": body},
        timestamp_ms=ts,
        unique=unique,
        prev_event_hash=None,
        signing_key=KEYS[sender],
    )


def _write(store: Path, path: str, data: bytes) -> str:
    (store / path).parent.mkdir(parents=True, exist_ok=True)
    (store / path).write_bytes(data)
    return path


def _room(store: Path) -> str:
    """The room; returns the path of the planted copy of Alice's first event."""
    (store / "rooms" / ROOM).mkdir(parents=True)
    (store / "rooms" / ROOM / "metadata.json").write_bytes(
        build_metadata(
            room_id=ROOM,
            name="R",
            created_at="2025-11-24T00:00:00.000Z",
            creator_id=ALICE,
            signing_key=KEYS[ALICE],
        )
    )
    a1 = _event(ALICE, "the real one", T0, "00000000-0000-4000-8000-000000000001")
    a2 = build_event(
        room_id=ROOM,
        sender_id=ALICE,
        event_type=MESSAGE,
        content={"msgtype": "m.text", "body": "second"},
        timestamp_ms=T0 + 1,
        unique="00000000-0000-4000-8000-000000000002",
        prev_event_hash=a1.hash,
        signing_key=KEYS[ALICE],
    )
    alice_id = client_id_for(ALICE, bytes(KEYS[ALICE].verify_key))
    _write(store, path_for([a1, a2], alice_id), encode_segment([a1, a2]))
    # Eve signs her own event under Alice's id and time (a replay), and plants an
    # identical copy of Alice's event in a segment whose name sorts first but is read
    # last by a cold read (newest names first).
    eve = _event(EVE, "eve: same id", T0, "00000000-0000-4000-8000-000000000001")
    assert eve.event_id == a1.event_id
    _write(store, segment_path(ROOM, T0, T0, "zz-eve"), eve.line())
    copy = _write(store, segment_path(ROOM, T0, T0, "z-copy"), a1.line())
    b1 = _event(BOB, "b1", T0 + 100, "00000000-0000-4000-8000-000000000003")
    bob_id = client_id_for(BOB, bytes(KEYS[BOB].verify_key))
    _write(store, path_for([b1], bob_id), encode_segment([b1]))
    return copy


def _said(result: AuditResult | None) -> dict[str, Any]:
    assert result is not None
    return {
        "rows": [
            (a.event.event_id, a.event.sender_id, a.event.hash, a.state, a.path, a.line)
            for a in result.timeline
        ],
        "findings": sorted(
            (f.kind.value, f.path or "", f.line or 0, f.message) for f in result.findings
        ),
    }


async def _open(store: Path, db: Path, config: SyncConfig) -> dict[str, Any]:
    engine = SyncEngine(LocalStorage(str(store)), index=Index.open(db), config=config)
    try:
        room = await engine.open_room(ROOM, background=False)
        assert room.complete
        return _said(room.result)
    finally:
        await engine.close()


async def _cached(store: Path, db: Path, config: SyncConfig) -> dict[str, Any]:
    engine = SyncEngine(LocalStorage(str(store)), index=Index.open(db), config=config)
    try:
        view = await engine.cached_room(ROOM)
        assert view is not None
        return _said(view.result)
    finally:
        await engine.close()


@pytest.mark.parametrize("keep_bodies", [True, False])
def test_a_planted_copy_is_kept_alike_by_a_cold_read_and_a_restart(
    tmp_path: Path, keep_bodies: bool
) -> None:
    store = tmp_path / "store"
    copy = _room(store)
    (tmp_path / "idx").mkdir()
    db = tmp_path / "idx" / "index.db"
    config = replace(QUIET, keep_bodies=keep_bodies)
    cold = asyncio.run(_open(store, db, config))
    rebuilt = asyncio.run(_cached(store, db, config))
    warm = asyncio.run(_open(store, db, config))
    assert rebuilt == cold
    assert warm == cold
    # the copy first in (path, line) order is Alice's row, and sorts before Eve's
    senders = [(sender, path, line) for _, sender, _, _, path, line in cold["rows"]]
    assert senders[:2] == [(ALICE, copy, 1), (EVE, segment_path(ROOM, T0, T0, "zz-eve"), 1)]
    replays = [f for f in cold["findings"] if f[0] == Kind.REPLAY.value]
    assert [(path, line) for _, path, line, _ in replays] == [(copy, 1)]
