"""Signed device chains for the index tests (``test_db``, ``test_index_search``): fixed
keys from a one-byte seed, one room, events one second apart; and the rows a segment of
them is indexed as."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from nacl.signing import SigningKey

from bucket_chat_desktop.index import IndexedEvent
from bucket_chat_desktop.protocol.event import MEMBER, Event
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event

ROOM = "room-1"
T0 = 1757851245000  # 2025-09-14T12:00:45.000Z
_ids = itertools.count(1)


def signed_chain(
    seed: int, user: str, drafts: list[tuple[str, dict[str, Any]]], ts: int = T0
) -> list[Event]:
    """A device's join followed by ``drafts`` (type, content), each chained to the last."""
    key = SigningKey(bytes([seed]) * 32)
    out: list[Event] = []
    prev: str | None = None
    for i, (event_type, content) in enumerate([(MEMBER, {"membership": "join"}), *drafts]):
        ev = build_event(
            room_id=ROOM,
            sender_id=user,
            event_type=event_type,
            content=content,
            timestamp_ms=ts + i * 1000,
            unique=str(uuid.UUID(int=next(_ids), version=4)),
            prev_event_hash=prev,
            signing_key=key,
        )
        prev = ev.hash
        out.append(ev)
    return out


def segment(events: list[Event], seed: int, user: str) -> tuple[str, bytes]:
    """The segment (object name, bytes) the device of ``seed`` writes ``events`` as."""
    key = SigningKey(bytes([seed]) * 32)
    return path_for(events, client_id_for(user, bytes(key.verify_key))), encode_segment(events)


def indexed(
    path: str, events: list[Event], sig_ok: bool | None = True, error: str = ""
) -> list[IndexedEvent]:
    """The index rows of the segment ``path`` holding ``events`` (line numbers from 1)."""
    return [
        IndexedEvent(
            path, n, e.event_id, e.timestamp_ms, e.line().decode().rstrip("\n"), sig_ok, error
        )
        for n, e in enumerate(events, start=1)
    ]
