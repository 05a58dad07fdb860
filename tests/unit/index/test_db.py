"""The SQLite index on real files: schema, reopening, recovery from broken files, and every
table's round trip (segments, audits, findings, pins, cursors, rooms)."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest
from chains import ROOM, T0, indexed, segment, signed_chain
from nacl.signing import SigningKey

from bucket_chat_desktop.index import CachedEvent, Index, IndexedEvent, index_path_for
from bucket_chat_desktop.index.db import _MIGRATIONS, SCHEMA_VERSION
from bucket_chat_desktop.protocol.audit import (
    AuditResult,
    PreparedSegment,
    RoomLedger,
    TrustState,
    prepare_segment,
)
from bucket_chat_desktop.protocol.event import MESSAGE, Event, Malformed
from bucket_chat_desktop.protocol.findings import Finding, Kind
from bucket_chat_desktop.protocol.signing import build_event, public_key_text

TABLES = {"segments", "events", "segment_findings", "timeline", "findings", "rooms", "pins"}


def _chain(seed: int, user: str, bodies: list[str], ts: int = T0) -> list[Event]:
    """A device's join followed by one message per body, each chained to the last."""
    return signed_chain(seed, user, [(MESSAGE, {"body": b}) for b in bodies], ts)


def _cached(path: str, events: list[Event], sig_ok: bool | None = True) -> list[CachedEvent]:
    """What ``room_segments`` hands back for ``indexed(path, events, sig_ok)``."""
    return [CachedEvent(path, n, e, sig_ok, "") for n, e in enumerate(events, start=1)]


def _audit(*segments: tuple[str, bytes]) -> AuditResult:
    ledger = RoomLedger(ROOM)
    for path, data in segments:
        ledger.add_segment(path, data)
    return ledger.audit({})


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "index" / "x.sqlite3"


def test_index_path_depends_on_the_storage_url(tmp_path: Path) -> None:
    a = index_path_for(tmp_path, "s3://bucket/a")
    assert a == index_path_for(tmp_path, "s3://bucket/a")
    assert a != index_path_for(tmp_path, "s3://bucket/b")
    assert a.parent == tmp_path / "index" and a.suffix == ".sqlite3"


def test_open_creates_the_schema_and_its_folder(db_path: Path) -> None:
    index = Index.open(db_path, "file:///store")
    index.close()
    assert db_path.is_file()
    assert _tables(db_path) >= TABLES
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    index = Index.open(db_path)
    assert index.cursor("storage_url") == "file:///store"
    index.close()


def test_in_memory_index_works(tmp_path: Path) -> None:
    index = Index.open(None)
    index.set_cursor("a", "1")
    assert index.cursor("a") == "1"
    assert index.path is None
    index.close()
    assert list(tmp_path.iterdir()) == []


def test_reopening_keeps_data(db_path: Path) -> None:
    events = _chain(1, "alice@example.com", ["hello", "again"])
    path, data = segment(events, 1, "alice@example.com")
    index = Index.open(db_path, "url-1")
    index.add_segment(ROOM, path, len(data), "etag-1", indexed(path, events), [])
    index.save_audit(ROOM, _audit((path, data)), history_complete=True, history_partial=False)
    index.add_pins(
        [("alice@example.com", public_key_text(SigningKey(bytes([1]) * 32)))], room_id=ROOM
    )
    index.set_cursor("activity:2025-09-14", "activity/2025-09-14/x")
    index.close()

    again = Index.open(db_path, "url-2")  # a second url never replaces the first
    try:
        assert again.known_segments(ROOM) == {path: len(data)}
        assert again.timeline_length(ROOM) == 3
        assert [r.event for r in again.newest(ROOM, 10)] == events
        assert set(again.pins(ROOM)) == {"alice@example.com"}
        assert again.cursor("activity:2025-09-14") == "activity/2025-09-14/x"
        assert again.cursor("storage_url") == "url-1"
    finally:
        again.close()


def test_a_corrupt_file_is_moved_aside_and_rebuilt(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db_path.parent.mkdir(parents=True)
    garbage = b"this is not an SQLite database\x00\xff" * 200
    db_path.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="bucket_chat.index"):
        index = Index.open(db_path, "url")
    try:
        index.set_cursor("k", "v")
        assert index.cursor("k") == "v"
        assert index.rooms() == []
    finally:
        index.close()
    broken = [p for p in db_path.parent.iterdir() if ".broken-" in p.name]
    assert len(broken) == 1 and broken[0].read_bytes() == garbage
    assert _tables(db_path) >= TABLES
    assert any(
        "unusable" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records
    )


def test_a_newer_schema_is_refused_and_rebuilt(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE from_the_future (x)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with caplog.at_level(logging.WARNING, logger="bucket_chat.index"):
        index = Index.open(db_path)
    index.close()
    assert any("newer" in r.getMessage() for r in caplog.records)
    tables = _tables(db_path)
    assert tables >= TABLES and "from_the_future" not in tables
    broken = [p for p in db_path.parent.iterdir() if ".broken-" in p.name]
    assert len(broken) == 1 and "from_the_future" in _tables(broken[0])


def test_add_segment_and_room_segments_round_trip(db_path: Path) -> None:
    alice = _chain(1, "alice@example.com", ["a1", "a2"])
    bob = _chain(2, "bob@example.com", ["b1"], ts=T0 + 500)
    pa, da = segment(alice, 1, "alice@example.com")
    pb, db = segment(bob, 2, "bob@example.com")
    finding = Finding(Kind.BAD_JSON, "not JSON", pb, 7)
    index = Index.open(db_path)
    try:
        index.add_segment(ROOM, pb, len(db), None, indexed(pb, bob, sig_ok=None), [finding])
        index.add_segment(ROOM, pa, len(da), "e", indexed(pa, alice), [])
        index.add_segment("other-room", "rooms/other-room/logs/x", 1, None, [], [])
        got = list(index.room_segments(ROOM))
        assert [p for p, _, _ in got] == sorted([pa, pb])
        by_path = {p: (ev, f) for p, ev, f in got}
        assert by_path[pa] == (_cached(pa, alice), [])
        assert by_path[pb] == (_cached(pb, bob, sig_ok=None), [finding])
        assert index.known_segments(ROOM) == {pa: len(da), pb: len(db)}

        # Re-adding a segment replaces its rows instead of duplicating them.
        index.add_segment(ROOM, pb, len(db), None, indexed(pb, bob[:1], sig_ok=False), [])
        again = {p: (ev, f) for p, ev, f in index.room_segments(ROOM)}
        assert again[pb] == (_cached(pb, bob[:1], sig_ok=False), [])
        assert len(list(index.room_segments("other-room"))) == 1
        assert list(index.room_segments("nobody")) == []
    finally:
        index.close()


def test_save_audit_newest_and_append_timeline(db_path: Path) -> None:
    events = _chain(1, "alice@example.com", [f"m{i}" for i in range(8)])  # 9 events
    first, later = events[:6], events[6:]
    p1, d1 = segment(first, 1, "alice@example.com")
    p2, d2 = segment(later, 1, "alice@example.com")
    index = Index.open(db_path)
    try:
        assert index.timeline_length(ROOM) == 0 and index.newest(ROOM, 5) == []
        index.add_segment(ROOM, p1, len(d1), None, indexed(p1, first), [])
        result = _audit((p1, d1))
        index.save_audit(ROOM, result, history_complete=False, history_partial=False)
        assert index.timeline_length(ROOM) == 6
        rows = index.newest(ROOM, 4)
        assert [r.pos for r in rows] == [2, 3, 4, 5]  # the newest, oldest first
        assert [r.event for r in rows] == first[2:]
        assert all(r.state is TrustState.VERIFIED and r.path == p1 for r in rows)
        assert [r.line for r in rows] == [3, 4, 5, 6]
        assert [r.pos for r in index.newest(ROOM, 4, before=2)] == [0, 1]
        room = index.rooms()[0]
        assert room["last_ts"] == first[-1].timestamp_ms and room["last_preview"] == "m4"
        assert room["history_complete"] == 0 and room["errors"] == 0

        ledger = RoomLedger(ROOM)
        ledger.add_segment(p1, d1)
        ledger.audit({})
        ledger.add_segment(p2, d2)
        full = ledger.audit({})
        index.add_segment(ROOM, p2, len(d2), None, indexed(p2, later), [])
        index.append_timeline(ROOM, 6, full.timeline[6:])
        assert index.timeline_length(ROOM) == 9
        assert [r.event for r in index.newest(ROOM, 3)] == later  # exactly the appended rows

        # A new full audit replaces the timeline instead of adding to it.
        index.save_audit(ROOM, full, history_complete=True, history_partial=False)
        assert index.timeline_length(ROOM) == 9
        assert index.rooms()[0]["history_complete"] == 1
    finally:
        index.close()


def test_timeline_is_says_whether_the_saved_rows_are_an_audits(db_path: Path) -> None:
    """Exactly the audit's rows, places and verdicts: one more, one fewer, another
    verdict or another room's rows are not (``RoomKeeper._adopt_saved`` rewrites then)."""
    events = _chain(1, "alice@example.com", [f"m{i}" for i in range(8)])  # 9 events
    path, data = segment(events, 1, "alice@example.com")
    index = Index.open(db_path)
    try:
        index.add_segment(ROOM, path, len(data), None, indexed(path, events), [])
        result = _audit((path, data))
        assert not index.timeline_is(ROOM, result.timeline)  # nothing saved yet
        index.save_audit(ROOM, result, history_complete=True, history_partial=False)
        assert index.timeline_is(ROOM, result.timeline)
        assert not index.timeline_is(ROOM, result.timeline[:-1])
        assert not index.timeline_is("room-2", result.timeline)
        index._db.execute(
            "UPDATE timeline SET state = ? WHERE room_id = ? AND pos = 8",
            (TrustState.INVALID.value, ROOM),
        )
        assert not index.timeline_is(ROOM, result.timeline)
        index._db.execute("DELETE FROM timeline WHERE room_id = ? AND pos = 8", (ROOM,))
        assert not index.timeline_is(ROOM, result.timeline)
    finally:
        index.close()


def test_findings_are_replaced_per_room(db_path: Path) -> None:
    events = _chain(1, "alice@example.com", ["x"])
    path, data = segment(events, 1, "alice@example.com")
    result = _audit((path, data))
    gap = Finding(Kind.GAP, "gap: missing", path, 2, events[1].event_id)
    notice = Finding(Kind.UNEXPECTED_OBJECT, "odd object", "rooms/room-1/logs/x")
    result.findings[:] = [gap, notice]
    index = Index.open(db_path)
    try:
        index.save_audit(ROOM, result, history_complete=True, history_partial=False)
        index.save_audit("room-2", _audit(), history_complete=True, history_partial=False)
        assert index.findings(ROOM) == [gap, notice]
        assert index.findings("room-2") == []
        rooms = {r["room_id"]: r for r in index.rooms()}
        assert rooms[ROOM]["errors"] == 1  # the notice is not an error
        assert rooms["room-2"]["last_ts"] == 0 and rooms["room-2"]["last_preview"] is None
        result.findings[:] = []
        index.save_audit(ROOM, result, history_complete=True, history_partial=False)
        assert index.findings(ROOM) == []
    finally:
        index.close()


def test_pins_tofu_and_user_verified(db_path: Path) -> None:
    index = Index.open(db_path)
    try:
        assert index.pins("r") == {} and index.user_verified_keys() == set()
        index.add_pins([("alice@x", "K1"), ("alice@x", "K2"), ("bob@x", "K3")], room_id="r")
        index.add_pins([("alice@x", "K1")], room_id="r")  # again: ignored
        assert index.pins("r") == {"alice@x": {"K1", "K2"}, "bob@x": {"K3"}}
        assert index.user_verified_keys() == set()
        index.mark_verified("alice@x", "K2")  # a tofu pin is promoted
        index.mark_verified("carol@x", "K4")  # a new one is added
        assert index.user_verified_keys() == {("alice@x", "K2"), ("carol@x", "K4")}
        index.add_pins([("carol@x", "K4")], room_id="r")  # never demotes a user verification
        assert index.user_verified_keys() == {("alice@x", "K2"), ("carol@x", "K4")}
        assert index.pins("r")["carol@x"] == {"K4"}
    finally:
        index.close()


def test_trust_on_first_use_is_a_rooms_own(db_path: Path) -> None:
    """A key pinned on first use in one room does not speak for its id in another; the
    keys a person confirmed, and this device's own, do in every room."""
    index = Index.open(db_path)
    try:
        index.add_pins([("alice@x", "K-impostor")], room_id="their-room")
        index.add_pins([("me@x", "K-me")], source="own")
        assert index.pins("their-room") == {"alice@x": {"K-impostor"}, "me@x": {"K-me"}}
        assert index.pins("payments") == {"me@x": {"K-me"}}
        index.mark_verified("bob@x", "K-bob")
        assert index.pins("payments")["bob@x"] == {"K-bob"}
        with pytest.raises(ValueError):
            index.add_pins([("alice@x", "K")])  # trust on first use names its room
        with pytest.raises(ValueError):
            index.add_pins([("alice@x", "K")], source="own", room_id="payments")
    finally:
        index.close()


def test_pins_of_the_storage_wide_kind_are_migrated(db_path: Path) -> None:
    """Schema 6 kept trust on first use for the whole storage: those pins name no room
    and are dropped (each room pins again at its next whole read); the person's own
    confirmations and this device's key are kept for every room."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path)
    for version in range(1, 7):
        conn.executescript(_MIGRATIONS[version])
    conn.execute("PRAGMA user_version = 6")
    conn.executemany(
        "INSERT INTO pins VALUES (?, ?, ?, 0)",
        [("alice@x", "K-first-seen", "tofu"), ("bob@x", "K-bob", "user"), ("me@x", "K", "own")],
    )
    conn.commit()
    conn.close()
    index = Index.open(db_path)
    try:
        assert index.pins("any-room") == {"bob@x": {"K-bob"}, "me@x": {"K"}}
        assert index.user_verified_keys() == {("bob@x", "K-bob")}
    finally:
        index.close()


def test_the_rules_of_a_saved_audit_are_migrated_never_taken_as_whole(db_path: Path) -> None:
    """Schema 7 saved one fact, "complete and not partial": a complete but partial read
    was kept as not complete. Migrated, a room saved whole stays whole, and one saved not
    complete is partial (it cannot say which it was; never taken as whole). New saves
    keep both facts as they are."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path)
    for version in range(1, 8):
        conn.executescript(_MIGRATIONS[version])
    conn.execute("PRAGMA user_version = 7")
    conn.executemany(
        "INSERT INTO rooms (room_id, history_complete) VALUES (?, ?)",
        [("whole", 1), ("not-whole", 0)],
    )
    conn.commit()
    conn.close()
    index = Index.open(db_path)
    try:
        facts = {r["room_id"]: (r["history_complete"], r["history_partial"]) for r in index.rooms()}
        assert facts == {"whole": (1, 0), "not-whole": (0, 1)}
        index.save_audit("whole", _audit(), history_complete=True, history_partial=True)
        assert index.room("whole") is not None
        assert (index.room("whole") or {})["history_partial"] == 1
    finally:
        index.close()


def test_cursors(db_path: Path) -> None:
    index = Index.open(db_path)
    try:
        assert index.cursor("activity:2025-09-14") is None
        index.set_cursor("activity:2025-09-14", "a")
        index.set_cursor("activity:2025-09-14", "b")
        index.set_cursor("activity:2025-09-15", "c")
        index.set_cursor("other", "d")
        assert index.cursor("activity:2025-09-14") == "b"
        assert index.cursors("activity:") == {
            "activity:2025-09-14": "b",
            "activity:2025-09-15": "c",
        }
        assert index.cursors("nothing:") == {}
    finally:
        index.close()


def test_the_first_metadata_kept_stays(db_path: Path) -> None:
    """Metadata is written once: the index keeps the first this device used, whatever is
    recorded later (``sync.keeper`` compares each read with it), across a reopen."""
    index = Index.open(db_path)
    try:
        assert index.kept_metadata(ROOM) is None
        index.set_room_info(ROOM, "Room One", signed=True)  # nothing to keep yet
        assert index.kept_metadata(ROOM) is None
        index.set_room_info(ROOM, "Room One", signed=True, metadata=b'{"name":"Room One"}')
        index.set_room_info(ROOM, "Other", signed=False, metadata=b'{"name":"Other"}')
    finally:
        index.close()
    index = Index.open(db_path)
    try:
        assert index.kept_metadata(ROOM) == b'{"name":"Room One"}'
        assert index.kept_metadata("b-room") is None
    finally:
        index.close()


def test_room_info_and_audit_summary_share_a_row(db_path: Path) -> None:
    events = _chain(1, "alice@example.com", ["the last word"])
    path, data = segment(events, 1, "alice@example.com")
    index = Index.open(db_path)
    try:
        index.set_room_info("b-room", "B", signed=False)
        index.set_room_info(ROOM, "Room One", signed=True)
        index.save_audit(ROOM, _audit((path, data)), history_complete=True, history_partial=False)
        index.set_room_info(ROOM, "Renamed", signed=True)  # keeps the audit summary
        rooms = index.rooms()
        assert [r["room_id"] for r in rooms] == ["b-room", ROOM]
        assert rooms[0] == {
            "room_id": "b-room",
            "name": "B",
            "signed": 0,
            "last_ts": 0,
            "last_preview": None,
            "errors": 0,
            "history_complete": 0,
            "history_partial": 1,  # no audit saved: never taken as whole
        }
        assert rooms[1]["name"] == "Renamed" and rooms[1]["signed"] == 1
        assert rooms[1]["last_preview"] == "the last word"
        assert rooms[1]["last_ts"] == events[-1].timestamp_ms
        assert rooms[1]["history_complete"] == 1
    finally:
        index.close()


# -- cached rows come back only through the protocol parser ---------------------------------
# The index is a local file that another program can edit: a row that no longer parses, holds
# the wrong types or is not the event its columns name comes back as a ``Malformed`` saying
# so (and is logged), the good rows around it are kept, and nothing raises.


def _cached_room(db_path: Path) -> tuple[list[Event], str]:
    events = _chain(1, "alice@example.com", [f"m{i}" for i in range(7)])  # 8 events
    path, data = segment(events, 1, "alice@example.com")
    index = Index.open(db_path)
    index.add_segment(ROOM, path, len(data), None, indexed(path, events), [])
    index.save_audit(ROOM, _audit((path, data)), history_complete=True, history_partial=False)
    index.close()
    return events, path


def _edit(db_path: Path, events: list[Event]) -> dict[int, str]:
    """Damage lines 2-7 of the cached segment the way a hostile program could; returns the
    reason each damaged line must be reported with."""
    other = dict(events[4].raw)
    huge = dict(events[5].raw)
    huge["timestamp_ms"] = 10**30
    typed = dict(events[6].raw)
    typed["timestamp_ms"] = str(typed["timestamp_ms"])
    conn = sqlite3.connect(db_path)
    with conn:
        put = "UPDATE events SET raw = ? WHERE line = ?"
        conn.execute(put, ("{not json", 2))
        conn.execute(put, (json.dumps(other), 3))  # a real event, but not this row's
        conn.execute("UPDATE events SET raw = CAST(x'7bff22' AS TEXT) WHERE line = 4")
        conn.execute(put, (json.dumps(huge), 6))
        conn.execute(put, (json.dumps(typed), 7))
        conn.execute("UPDATE events SET raw = 12 WHERE line = 8")
        conn.execute("UPDATE timeline SET state = 'trust-me' WHERE line = 5")
    conn.close()
    return {
        2: "the cached line no longer parses: not JSON",
        3: "the cached line is not the event its row names",
        4: "the cached line no longer parses: not valid UTF-8",
        5: "unknown cached trust state 'trust-me'",
        6: "the cached line no longer parses: integer 100000000000…000000 (31 characters)",
        7: "the cached line no longer parses: timestamp_ms",
        8: "the cached line no longer parses: an event must be a JSON object, not int",
    }


def test_damaged_rows_come_back_as_malformed_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db_path = tmp_path / "index.sqlite3"
    events, path = _cached_room(db_path)
    reasons = _edit(db_path, events)
    index = Index.open(db_path)
    try:
        caplog.set_level(logging.WARNING, "bucket_chat.index")
        rows = index.newest(ROOM, 100)
        assert [r.line for r in rows] == list(range(1, 9))
        for r in rows:
            if r.line in reasons:
                assert isinstance(r.event, Malformed), r.line
                assert r.event.reason.startswith(reasons[r.line]), (r.line, r.event.reason)
                assert r.state is TrustState.INVALID  # never the cached "verified"
            else:
                assert r.event == events[r.line - 1] and r.state is TrustState.VERIFIED
        logged = [rec.getMessage() for rec in caplog.records]
        assert len(logged) == len(reasons)
        assert all(f"{path}:" in m and "is damaged" in m for m in logged)

        caplog.clear()
        ((seg, cached, _findings),) = index.room_segments(ROOM)
        assert seg == path and [c.line for c in cached] == list(range(1, 9))
        bad = {c.line for c in cached if isinstance(c.event, Malformed)}
        assert bad == set(reasons) - {5}  # the trust state is the timeline's, not the event's
        assert [c.event for c in cached if c.line not in bad] == [events[0], events[4]]
        assert len(caplog.records) == len(bad)
    finally:
        index.close()


def test_wrong_column_types_and_unknown_kinds_do_not_raise(tmp_path: Path) -> None:
    db_path = tmp_path / "index.sqlite3"
    _events, path = _cached_room(db_path)
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE events SET line = 'two', sig_why = 3 WHERE line = 2")
        conn.execute("UPDATE timeline SET reason = x'00' WHERE line = 3")
        conn.execute("UPDATE events SET event_id = 'someone-else' WHERE line = 4")
        conn.execute(
            "INSERT INTO findings VALUES (?, 'made-up-kind', 'x', NULL, NULL, NULL)", (ROOM,)
        )
        conn.execute(
            "INSERT INTO segment_findings VALUES (?, ?, 'made-up-kind', 'x', 1, NULL)",
            (ROOM, path),
        )
    conn.close()
    index = Index.open(db_path)
    try:
        assert index.findings(ROOM) == []
        ((_seg, cached, findings),) = index.room_segments(ROOM)
        assert findings == []
        bad = [c for c in cached if isinstance(c.event, Malformed)]
        assert len(bad) == 2 and {c.line for c in bad} == {-1, 4}
        rows = index.newest(ROOM, 100)  # 'two' no longer joins the timeline's line 2
        assert [r.line for r in rows if isinstance(r.event, Malformed)] == [3, 4]
    finally:
        index.close()


def test_a_reader_sees_one_moment_and_cannot_write(db_path: Path) -> None:
    """The engine's reader connection (docs/SCHEDULING.md): what the writer commits during
    a read snapshot is not seen until the next one, never half of it; it cannot write."""
    writer = Index.open(db_path, "file:///store")
    reader = Index.open_reader(db_path)
    first = _chain(1, "alice@example.com", ["one"])
    second = _chain(2, "bob@example.com", ["two"])
    path1, _ = segment(first, 1, "alice@example.com")
    path2, _ = segment(second, 2, "bob@example.com")
    try:
        writer.add_segment(ROOM, path1, 10, None, indexed(path1, first), [])
        with reader.read_snapshot():
            assert set(reader.known_segments(ROOM)) == {path1}
            writer.add_segment(ROOM, path2, 20, None, indexed(path2, second), [])
            assert set(reader.known_segments(ROOM)) == {path1}  # the same moment
            assert [p for p, _, _ in reader.room_segments(ROOM)] == [path1]
        with reader.read_snapshot():
            assert set(reader.known_segments(ROOM)) == {path1, path2}
        with pytest.raises(sqlite3.OperationalError):
            reader.set_cursor("x", "y")
        assert writer.cursor("x") is None
    finally:
        reader.close()
        writer.close()


def test_prepared_segments_are_cached_as_one_transaction_with_the_same_rows(
    db_path: Path,
) -> None:
    """``add_prepared`` (the engine's cold-read path) stores exactly what ``add_segment``
    stores for the same events and verdicts, findings too; and a reader sees all of the
    segments of one call or none of them (one transaction, docs/SCHEDULING.md)."""
    alice = _chain(1, "alice@example.com", ["one", "two"])
    bob = _chain(2, "bob@example.com", ["three"])
    segments = [segment(alice, 1, "alice@example.com"), segment(bob, 2, "bob@example.com")]
    prepared = [prepare_segment(path, data, ROOM) for path, data in segments]
    finding = Finding(Kind.BAD_JSON, "a line that is not JSON", path=segments[1][0], line=9)
    prepared[1].decoded.findings.append(finding)
    prepared[1].verdicts[1] = (False, "bad signature")

    plain = Index.open(db_path.with_name("plain.sqlite3"), "file:///store")
    writer = Index.open(db_path, "file:///store")
    reader = Index.open_reader(db_path)
    try:
        for (path, data), got in zip(segments, prepared, strict=True):
            rows = [
                IndexedEvent(
                    loc.path,
                    loc.line,
                    loc.event.event_id,
                    loc.event.timestamp_ms,
                    raw.decode(),
                    ok,
                    why,
                )
                for loc, raw, (ok, why) in zip(
                    got.decoded.events, got.decoded.lines, got.verdicts, strict=True
                )
            ]
            plain.add_segment(ROOM, path, len(data), "e", rows, got.decoded.findings)
        todo = [
            (path, len(data), "e", got)
            for (path, data), got in zip(segments, prepared, strict=True)
        ]
        broken = PreparedSegment(prepared[1].decoded, prepared[1].verdicts[:1])
        with pytest.raises(ValueError):  # the second cannot be written: neither is
            writer.add_prepared(ROOM, [todo[0], (*todo[1][:3], broken)])
        assert writer.known_segments(ROOM) == {}
        with reader.read_snapshot():
            assert reader.known_segments(ROOM) == {}
            writer.add_prepared(ROOM, todo)
            assert reader.known_segments(ROOM) == {}  # the same moment
        assert (
            reader.known_segments(ROOM)
            == plain.known_segments(ROOM)
            == {path: len(data) for path, data in segments}
        )
        assert writer.room_segments(ROOM) == plain.room_segments(ROOM)
        (_, events, findings) = writer.room_segments(ROOM, [segments[1][0]])[0]
        assert findings == [finding]
        assert [(e.sig_ok, e.sig_why) for e in events] == [
            prepared[1].verdicts[0],
            (False, "bad signature"),
        ]
        query = "SELECT * FROM events ORDER BY path, line"
        assert writer._db.execute(query).fetchall() == plain._db.execute(query).fetchall()
    finally:
        reader.close()
        writer.close()
        plain.close()


def test_a_cached_line_whose_signature_failed_never_comes_back_verified(db_path: Path) -> None:
    """The segment was rewritten in the storage and read again before the room's next
    audit was saved (the app closed meanwhile): its line now holds a forged text under
    the same event id. The timeline saved before lists that place as "verified", and the
    next start painted the forged text with it, until the audit replaced the page."""
    alice = "alice@example.com"
    genuine = signed_chain(1, alice, [(MESSAGE, {"body": "pay ACME", "msgtype": "m.text"})])
    path, data = segment(genuine, 1, alice)
    index = Index.open(db_path)
    try:
        index.add_segment(ROOM, path, len(data), None, indexed(path, genuine), [])
        index.save_audit(ROOM, _audit((path, data)), history_complete=True, history_partial=False)
        assert [r.state for r in index.newest(ROOM, 10)] == [TrustState.VERIFIED] * 2
        forged = genuine[1].line().replace(b"ACME", b"EVIL").decode().rstrip("\n")
        rows = indexed(path, genuine)
        rows[1] = rows[1]._replace(raw=forged, sig_ok=False, sig_why="bad signature")
        index.add_segment(ROOM, path, len(data), None, rows, [])
        first, second = index.newest(ROOM, 10)
        assert first.state is TrustState.VERIFIED and first.event == genuine[0]
        assert second.state is TrustState.INVALID and isinstance(second.event, Malformed)
        assert "signature" in second.event.reason
    finally:
        index.close()


def _rewrite(original: Event, body: str, seed: int = 2) -> Event:
    """``original``'s event id and time, another body, signed (well) by another key: what
    a storage provider can put in ``original``'s place."""
    unique = original.event_id.rsplit("::", 1)[1]
    other = build_event(
        room_id=ROOM,
        sender_id=original.sender_id,
        event_type=MESSAGE,
        content={"body": body, "msgtype": "m.text"},
        timestamp_ms=original.timestamp_ms,
        unique=unique,
        prev_event_hash=original.prev_event_hash,
        signing_key=SigningKey(bytes([seed]) * 32),
    )
    assert other.event_id == original.event_id and other.hash != original.hash
    return other


def test_a_line_rewritten_with_a_good_signature_never_comes_back_under_the_saved_verdict(
    db_path: Path,
) -> None:
    """Red team: the storage rewrote a cached segment's line with another text under the
    same event id, signed well by another key, and the app read it again before the
    room's next audit was saved. The saved timeline said "verified" of that place, and
    the first paint (also a page further up) showed the new line under it."""
    alice = "alice@example.com"
    genuine = signed_chain(1, alice, [(MESSAGE, {"body": f"m{i}"}) for i in range(3)])
    path, data = segment(genuine, 1, alice)
    index = Index.open(db_path)
    try:
        index.add_segment(ROOM, path, len(data), None, indexed(path, genuine), [])
        index.save_audit(ROOM, _audit((path, data)), history_complete=True, history_partial=False)
        assert {r.state for r in index.newest(ROOM, 10)} == {TrustState.VERIFIED}
        rows = indexed(path, genuine)
        swapped = _rewrite(genuine[1], "pay EVIL")
        rows[1] = indexed(path, [swapped])[0]._replace(line=2)  # signature good: sig_ok 1
        index.add_segment(ROOM, path, len(data), None, rows, [])
    finally:
        index.close()
    again = Index.open(db_path)
    try:
        for got in (again.newest(ROOM, 10), again.newest(ROOM, 1, before=2)):
            changed = [r for r in got if r.line == 2]
            assert len(changed) == 1
            assert changed[0].state is TrustState.INVALID
            assert isinstance(changed[0].event, Malformed)
            assert "not the event" in changed[0].event.reason
            assert "last check" in changed[0].event.reason
        assert [r.state for r in again.newest(ROOM, 10) if r.line != 2] == [TrustState.VERIFIED] * 3
    finally:
        again.close()


def test_an_index_without_event_hashes_is_migrated_and_its_verdicts_not_trusted(
    tmp_path: Path,
) -> None:
    """A version 3 cache saved "verified" per place only. Migrated, its rows are not
    checked yet (never "verified") until the room's next audit is saved."""
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    for step in (1, 2, 3):
        conn.executescript(_MIGRATIONS[step])
    conn.execute("PRAGMA user_version = 3")
    alice = "alice@example.com"
    genuine = signed_chain(1, alice, [(MESSAGE, {"body": "hello"})])
    seg, data = segment(genuine, 1, alice)
    conn.execute("INSERT INTO segments VALUES (?, ?, ?, NULL, 0)", (ROOM, seg, len(data)))
    for n, e in enumerate(genuine, start=1):
        raw = e.line().decode().rstrip("\n")
        conn.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, 1, '')",
            (ROOM, seg, n, e.event_id, e.timestamp_ms, raw),
        )
        conn.execute(
            "INSERT INTO timeline VALUES (?, ?, ?, ?, ?, 'verified', 'signature good')",
            (ROOM, n - 1, e.event_id, seg, n),
        )
    conn.commit()
    conn.close()
    index = Index.open(path)
    try:
        assert index._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        rows = index.newest(ROOM, 10)
        assert [r.event for r in rows] == genuine  # still painted at once
        assert {r.state for r in rows} == {TrustState.UNVERIFIED}
        assert all("not checked yet" in r.reason for r in rows)
        index.save_audit(ROOM, _audit((seg, data)), history_complete=True, history_partial=False)
        assert {r.state for r in index.newest(ROOM, 10)} == {TrustState.VERIFIED}
    finally:
        index.close()
