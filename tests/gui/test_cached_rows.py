"""Rows shown from this device's index before the room's audit arrives, through the real
engine, a real SQLite index file and the real timeline model and delegate.

The index is a local file another program can edit: a row that no longer parses is
shown as a damaged row (never a crash, never the cached "verified"), the rows around it
are kept, and every cached verdict is marked as this device's earlier check until the
room's audit replaces it."""

from __future__ import annotations

import html
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import run, shot
from nacl.signing import SigningKey
from PySide6.QtCore import QModelIndex
from test_models import ALICE, Room, _chatter, key_text

from bucket_chat_desktop.gui import safe
from bucket_chat_desktop.gui.main_window import TimelineView
from bucket_chat_desktop.gui.models.timeline_model import EARLIER_CHECK, Roles, TimelineModel
from bucket_chat_desktop.gui.widgets.message_delegate import MessageDelegate, tooltip_html
from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.audit import TrustState
from bucket_chat_desktop.protocol.event import MESSAGE, Event, parse_line
from bucket_chat_desktop.protocol.relations import REDACTION
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, RoomLoaded, WarmTimeline
from bucket_chat_desktop.sync.writer import Draft

ROOM = "models"


def _open(room: Room, db: Path, events: list[EngineEvent], qtbot: Any) -> None:
    async def go() -> None:
        index = Index.open(db)
        engine = SyncEngine(room.storage, index=index, listener=events.append)
        try:
            await engine.open_room(ROOM, background=False)
        finally:
            await engine.close()
            index.close()

    run(go(), qtbot, timeout=30)


def _hostile_edit(db: Path) -> dict[str, str]:
    """Damage three cached message rows; returns body -> what the row must say."""
    conn = sqlite3.connect(db)
    with conn:
        rows = conn.execute("SELECT path, line, raw FROM events").fetchall()
        by_body = {json.loads(r)["content"].get("body"): (p, n, r) for p, n, r in rows}
        targets = [
            "bob@example.com says 88",
            "alice@example.com says 89",
            "carol@example.com says 89",
        ]
        put = "UPDATE events SET raw = ? WHERE path = ? AND line = ?"
        p, n, _ = by_body[targets[0]]
        conn.execute(put, ("{not json", p, n))
        p, n, raw = by_body[targets[1]]
        typed = json.loads(raw)
        typed["timestamp_ms"] = "soon"  # Row.from_cached's int() of old would have raised
        conn.execute(put, (json.dumps(typed), p, n))
        p, n, _ = by_body[targets[2]]
        conn.execute(put, (by_body["bob@example.com says 1"][2], p, n))  # not this row's event
    conn.close()
    return {
        targets[0]: "not JSON",
        targets[1]: "timestamp_ms",
        targets[2]: "not the event its row names",
    }


@pytest.fixture
def chatty(tmp_path: Path) -> Room:
    """A real room where three people talked (written before the test's Qt loop runs)."""
    room = Room(tmp_path / "store")
    _chatter(room, 90)
    return room


def test_cached_rows_are_marked_and_damaged_ones_shown_as_such(
    chatty: Room, qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    safe._reported.clear()
    room = chatty
    db = tmp_path / "index.sqlite3"
    _open(room, db, [], qtbot)  # the index now holds the room
    damaged = _hostile_edit(db)

    events: list[EngineEvent] = []
    _open(room, db, events, qtbot)
    (warm,) = [e for e in events if isinstance(e, WarmTimeline)]
    model = TimelineModel(key_text(ALICE))
    view = TimelineView()
    view.setItemDelegate(MessageDelegate(view))
    view.setModel(model)
    view.resize(700, 900)
    view.show()
    model.show_cached(warm.rows)
    assert model.rowCount() == len(warm.rows)  # nothing dropped, nothing raised
    rows = [model.index(i) for i in range(model.rowCount())]
    assert all(ix.data(Roles.Cached) is True for ix in rows)
    bad = [ix for ix in rows if ix.data(Roles.Trust) == TrustState.INVALID.value]
    assert len(bad) == len(damaged)
    reasons = " | ".join(str(ix.data(Roles.TrustReason)) for ix in bad)
    for why in damaged.values():
        assert why in reasons
    assert all("could not be shown" in str(ix.data(Roles.Body)) for ix in bad)
    good = [ix for ix in rows if ix not in bad]
    assert {ix.data(Roles.Trust) for ix in good} == {TrustState.VERIFIED.value}
    assert all(html.escape(EARLIER_CHECK) in tooltip_html(ix) for ix in rows)
    view.scrollToBottom()
    shot(view, "cached-rows", tmp_path)
    assert not safe.failures()

    # The room's audit arrives (existing flow): its verdicts replace the cached ones.
    final = [e for e in events if isinstance(e, RoomLoaded)][-1]
    model.set_timeline(final.result.timeline, final.complete)
    rows = [model.index(i) for i in range(model.rowCount())]
    assert not any(ix.data(Roles.Cached) for ix in rows)
    assert {ix.data(Roles.Trust) for ix in rows} == {TrustState.VERIFIED.value}
    assert not any(html.escape(EARLIER_CHECK) in tooltip_html(ix) for ix in rows)
    bodies = {str(ix.data(Roles.Body)) for ix in rows}
    assert set(damaged) <= bodies  # read again from storage: nothing is lost
    view.scrollToBottom()
    shot(view, "audited-rows", tmp_path)
    assert not safe.failures()
    assert model.index(0).parent() == QModelIndex()


def test_a_deleted_message_is_not_shown_from_the_cache(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    """Red team: the index's newest rows are shown before the audit, without relations;
    a message its sender deleted was shown there with its text until the audit came (on
    a long room or a slow storage, seconds). A deletion among the cached rows takes its
    message out of them; a deletion by someone else does not."""
    room = Room(tmp_path / "store")

    async def go() -> None:
        for w in (room.alice, room.bob):
            await w.send([])
        _, [*_, secret] = await room.bob.send([Draft.text("the password is hunter2")])
        _, [*_, kept] = await room.alice.send([Draft.text("this one stays")])
        await room.bob.send([Draft(REDACTION, {"redacts": secret.event_id})])
        await room.alice.send([Draft.text("after")])
        await room.bob.send([Draft(REDACTION, {"redacts": kept.event_id})])  # not his

    run(go(), qtbot, timeout=30)
    db = tmp_path / "index.sqlite3"
    _open(room, db, [], qtbot)
    events: list[EngineEvent] = []
    _open(room, db, events, qtbot)
    (warm,) = [e for e in events if isinstance(e, WarmTimeline)]
    model = TimelineModel(key_text(ALICE))
    model.show_cached(warm.rows)
    bodies = [str(model.index(i).data(Roles.Body)) for i in range(model.rowCount())]
    assert "the password is hunter2" not in bodies
    assert "this one stays" in bodies and "after" in bodies


def test_a_line_rewritten_with_a_good_signature_is_not_painted_under_the_saved_verdict(
    chatty: Room, qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    """Red team: the storage rewrote a cached line with another text under the same event
    id, signed well by another key, and it was read again before the room's next audit
    was saved. The first paint showed that text with the saved "verified" badge."""
    safe._reported.clear()
    db = tmp_path / "index.sqlite3"
    _open(chatty, db, [], qtbot)
    conn = sqlite3.connect(db)
    with conn:
        target = "alice@example.com says 89"
        path, line, raw = next(
            r
            for r in conn.execute("SELECT path, line, raw FROM events")
            if json.loads(r[2])["content"].get("body") == target
        )
        old = parse_line(raw.encode(), ROOM)
        assert isinstance(old, Event)
        swapped = build_event(
            room_id=ROOM,
            sender_id=old.sender_id,
            event_type=MESSAGE,
            content={"body": "send the keys to mallory", "msgtype": "m.text"},
            timestamp_ms=old.timestamp_ms,
            unique=old.event_id.rsplit("::", 1)[1],
            prev_event_hash=old.prev_event_hash,
            signing_key=SigningKey(bytes([9]) * 32),
        )
        assert swapped.event_id == old.event_id
        conn.execute(
            "UPDATE events SET raw = ?, sig_ok = 1 WHERE path = ? AND line = ?",
            (swapped.line().decode().rstrip("\n"), path, line),
        )
    conn.close()

    events: list[EngineEvent] = []
    _open(chatty, db, events, qtbot)
    (warm,) = [e for e in events if isinstance(e, WarmTimeline)]
    model = TimelineModel(key_text(ALICE))
    view = TimelineView()
    view.setItemDelegate(MessageDelegate(view))
    view.setModel(model)
    view.resize(700, 900)
    view.show()
    model.show_cached(warm.rows)
    rows = [model.index(i) for i in range(model.rowCount())]
    assert not any("mallory" in str(ix.data(Roles.Body)) for ix in rows)
    (bad,) = [ix for ix in rows if ix.data(Roles.Trust) != TrustState.VERIFIED.value]
    assert bad.data(Roles.Trust) == TrustState.INVALID.value
    assert "last check" in str(bad.data(Roles.TrustReason))
    assert "could not be shown" in str(bad.data(Roles.Body))
    view.scrollToBottom()
    shot(view, "rewritten-cached-row", tmp_path)
    assert not safe.failures()


def test_a_cached_deletion_by_another_key_waits_for_the_audit(qtbot: Any) -> None:
    """Red team: a key seen first while older history was read is taken provisionally,
    and its rows are saved "verified". Mallory's key signing as bob had deleted bob's
    message that way: the cached rows hid it on the next start until the audit came (on
    a slow storage, as long as the storage liked). Before the audit only a deletion by
    the message's own key takes it out of the cached rows."""
    from bucket_chat_desktop.index.db import TimelineRow

    bob, impostor = SigningKey(bytes([2]) * 32), SigningKey(bytes([66]) * 32)
    made: list[Event] = []

    def sign(key: SigningKey, kind: str, content: dict[str, Any]) -> Event:
        ev = build_event(
            room_id=ROOM,
            sender_id="bob@example.com",
            event_type=kind,
            content=content,
            timestamp_ms=1_767_225_600_000 + len(made),
            unique=f"u{len(made)}",
            prev_event_hash=made[-1].hash if made and key is bob else None,
            signing_key=key,
        )
        made.append(ev)
        return ev

    kept = sign(bob, MESSAGE, {"body": "meet at noon", "msgtype": "m.text"})
    gone = sign(bob, MESSAGE, {"body": "the password is hunter2", "msgtype": "m.text"})
    sign(bob, REDACTION, {"redacts": gone.event_id})  # his own key: hidden at once
    sign(impostor, REDACTION, {"redacts": kept.event_id})  # provisionally "verified"
    rows = [
        TimelineRow(i, ev, TrustState.VERIFIED, "", f"seg-{i}.jsonl", 1)
        for i, ev in enumerate(made)
    ]
    model = TimelineModel(key_text(ALICE))
    model.show_cached(rows)
    bodies = [str(model.index(i).data(Roles.Body)) for i in range(model.rowCount())]
    assert bodies == ["meet at noon"]
