"""A room rebuilt from this device's cache is audited by the rules the keeper's own full
audit applies: when part of it could not be read (a cached segment abandoned after too
many bad lines), nobody is trusted on first use (PROTOCOL.md section 16), and the rows
that arrive next are placed on top of that verdict, not of a warmer one."""

from __future__ import annotations

from pathlib import Path

from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.audit import RoomLedger, TrustState, prepare_segment
from bucket_chat_desktop.protocol.event import MEMBER
from bucket_chat_desktop.protocol.ids import segment_path
from bucket_chat_desktop.protocol.segment import MAX_BAD_LINES, encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.sync.keeper import RoomKeeper, read_cached, warmer_than_saved
from bucket_chat_desktop.sync.room_state import RoomState

ROOM = "room-1"
T = 1757851245000


def test_a_cached_abandoned_segment_keeps_trust_on_first_use_off(tmp_path: Path) -> None:
    join = build_event(
        room_id=ROOM,
        sender_id="carol@example.com",
        event_type=MEMBER,
        content={"membership": "join"},
        timestamp_ms=T,
        unique="00000001-0000-4000-8000-000000000001",
        prev_event_hash=None,
        signing_key=SigningKey(bytes([9]) * 32),
    )
    good = prepare_segment(path_for([join], "c"), encode_segment([join]), ROOM)
    bad_path = segment_path(ROOM, T, T, "x")
    bad = prepare_segment(bad_path, b"not json\n" * (MAX_BAD_LINES + 2), ROOM)
    index = Index.open(tmp_path / "index.db")
    try:
        ledger = RoomLedger(ROOM)
        ledger.add_prepared(good)
        whole = ledger.audit({}, complete=True)
        # the whole history was read once; then a pass cached an abandoned segment and
        # the app quit before its audit (a back-fill caches its slices before auditing)
        index.add_prepared(ROOM, [(good.path, 1, None, good)])
        index.save_audit(ROOM, whole, history_complete=True, history_partial=False)
        index.add_prepared(ROOM, [(bad_path, 1, None, bad)])

        room = RoomState(ROOM, RoomLedger(ROOM))
        complete = RoomKeeper._apply_cached(room, read_cached(index, ROOM), index.pins(ROOM))
        assert room.partial and room.result is not None
        keeper_says = room.ledger.audit({}, complete=complete, partial=complete and room.partial)
        assert [(a.state, a.reason) for a in room.result.timeline] == [
            (a.state, a.reason) for a in keeper_says.timeline
        ]
        assert room.result.timeline[0].state is not TrustState.VERIFIED
    finally:
        index.close()


def test_a_rebuild_is_never_judged_better_than_the_saved_timeline(tmp_path: Path) -> None:
    """Whatever the saved rules say, a rebuilt row judged better than the saved verdict
    on the same event (here: saved "key-changed", the whole read's rules would take the
    key on first use) has the room audited by the coldest rules: no trust on first use,
    and the room stays partial until it is read whole."""
    join = build_event(
        room_id=ROOM,
        sender_id="carol@example.com",
        event_type=MEMBER,
        content={"membership": "join"},
        timestamp_ms=T,
        unique="00000001-0000-4000-8000-000000000001",
        prev_event_hash=None,
        signing_key=SigningKey(bytes([9]) * 32),
    )
    good = prepare_segment(path_for([join], "c"), encode_segment([join]), ROOM)
    index = Index.open(tmp_path / "index.db")
    try:
        ledger = RoomLedger(ROOM)
        ledger.add_prepared(good)
        whole = ledger.audit({}, complete=True)
        assert whole.timeline[0].state is TrustState.VERIFIED
        index.add_prepared(ROOM, [(good.path, 1, None, good)])
        index.save_audit(ROOM, whole, history_complete=True, history_partial=False)
        index._db.execute("UPDATE timeline SET state = 'key-changed'")  # a colder saved read
        index._db.commit()

        room = RoomState(ROOM, RoomLedger(ROOM))
        complete = RoomKeeper._apply_cached(room, read_cached(index, ROOM), index.pins(ROOM))
        assert complete and room.partial and room.result is not None
        assert room.result.timeline[0].state is not TrustState.VERIFIED
    finally:
        index.close()


def test_saved_verdicts_that_cannot_be_read_give_no_warmer_rebuild() -> None:
    """``warmer_than_saved`` with nothing read (None): it may be, so the rebuild is not
    trusted to be as cold as the saved read."""
    assert warmer_than_saved(RoomLedger(ROOM).audit({}), None)
    assert not warmer_than_saved(RoomLedger(ROOM).audit({}), {})
