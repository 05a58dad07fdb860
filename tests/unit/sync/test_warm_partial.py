"""A room rebuilt from this device's cache is audited by the rules the keeper's own full
audit applies: when part of it could not be read (a cached segment abandoned after too
many bad lines), nobody is trusted on first use (PROTOCOL.md section 16), and the rows
that arrive next are placed on top of that verdict, not of a warmer one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol import audit
from bucket_chat_desktop.protocol.audit import RoomLedger, TrustState, prepare_segment
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE
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


def _chain(n: int) -> list[Any]:
    key = SigningKey(bytes([9]) * 32)
    events, prev = [], None
    for i in range(n):
        ev = build_event(
            room_id=ROOM,
            sender_id="carol@example.com",
            event_type=MEMBER if i == 0 else MESSAGE,
            content={"membership": "join"} if i == 0 else {"body": f"{i}", "msgtype": "m.text"},
            timestamp_ms=T + i,
            unique=f"00000001-0000-4000-8000-{i:012x}",
            prev_event_hash=prev,
            signing_key=key,
        )
        prev = ev.hash
        events.append(ev)
    return events


def test_the_check_against_the_saved_verdicts_makes_no_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reviewer: ``warmer_than_saved`` made a row for every row of the rebuilt room at
    each rebuild whose saved timeline had one row below "verified" (about a second at
    1,000,000). It reads hashes and verdicts off the timeline: rows made are counted
    (``audit._event_of`` makes each row's event)."""
    events = _chain(500)
    ledger = RoomLedger(ROOM)
    ledger.add_prepared(prepare_segment(path_for(events, "c"), encode_segment(events), ROOM))
    result = ledger.audit({}, complete=True)
    assert len(result.timeline) == 500
    made = [0]
    real = audit._event_of

    def counted(c: Any) -> Any:
        made[0] += 1
        return real(c)

    monkeypatch.setattr(audit, "_event_of", counted)
    elsewhere = {"0" * 64: TrustState.INVALID}  # an event not in the rebuild: all compared
    assert not warmer_than_saved(result, elsewhere)
    newest = {events[-1].hash: TrustState.KEY_CHANGED}  # its newest row judged colder
    assert warmer_than_saved(result, newest)
    assert not warmer_than_saved(result, {events[-1].hash: TrustState.VERIFIED})
    assert made[0] == 0, f"{made[0]} rows made"


def test_saved_verdicts_are_not_read_for_a_saved_partial_read_of_the_whole_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A room whose saved read was partial is rebuilt by the coldest rules whatever the
    saved verdicts say: they are not read then (a query of the room's saved rows)."""
    events = _chain(3)
    good = prepare_segment(path_for(events, "c"), encode_segment(events), ROOM)
    index = Index.open(tmp_path / "index.db")
    try:
        ledger = RoomLedger(ROOM)
        ledger.add_prepared(good)
        index.add_prepared(ROOM, [(good.path, 1, None, good)])
        asked: list[str] = []
        real = index.saved_below_verified

        def counted(room_id: str) -> Any:
            asked.append(room_id)
            return real(room_id)

        monkeypatch.setattr(index, "saved_below_verified", counted)
        whole = ledger.audit({}, complete=True)
        index.save_audit(ROOM, whole, history_complete=True, history_partial=False)
        assert read_cached(index, ROOM).saved == {} and asked == [ROOM]
        partial = ledger.audit({}, complete=True, partial=True)
        index.save_audit(ROOM, partial, history_complete=True, history_partial=True)
        cached = read_cached(index, ROOM)
        assert cached.saved is None and asked == [ROOM]  # not asked again
        room = RoomState(ROOM, RoomLedger(ROOM))
        assert RoomKeeper._apply_cached(room, cached, index.pins(ROOM))
        assert room.partial and room.result is not None
        assert all(a.state is not TrustState.VERIFIED for a in room.result.timeline)
    finally:
        index.close()
