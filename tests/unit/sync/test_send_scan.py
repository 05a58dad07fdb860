"""The send scan (``room_state.SendScan``) carried over rows placed before shown ones
(``RoomLedger.try_place`` behind rows dated a little ahead, ``RoomState.carry_scan``) is
the scan made from the first row: each device's newest event, the devices in the order of
their newest rows (the witness's most recently active first), and the offers — whatever
the senders and however many placements, appends and full audits come in between."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import RoomLedger, prepare_segment
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.sync.publisher import send_context
from bucket_chat_desktop.sync.room_state import RoomState, SendScan

ROOM = "room-1"
NOW = 1757851245000
MINUTE = 60_000
DEVICES = 6  # the last two write a row dated ahead (shown: within the hour)


class _Writer:
    def __init__(self, n: int) -> None:
        self.user = f"user{n}@example.com"
        self.key = SigningKey(bytes([n + 1]) * 32)
        self.prev: str | None = None

    def segment(self, at_ms: int, event_type: str, content: dict[str, object]) -> tuple[str, bytes]:
        ev: Event = build_event(
            room_id=ROOM,
            sender_id=self.user,
            event_type=event_type,
            content=content,
            timestamp_ms=at_ms,
            unique=str(uuid.uuid4()),
            prev_event_hash=self.prev,
            signing_key=self.key,
        )
        self.prev = ev.hash
        return path_for([ev], self.user.split("@")[0]), encode_segment([ev])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, DEVICES - 1), min_size=1, max_size=12))
def test_a_carried_scan_is_the_scan_made_again(senders: list[int]) -> None:
    writers = [_Writer(n) for n in range(DEVICES)]
    ledger = RoomLedger(ROOM, keep_bodies=False)
    for n, w in enumerate(writers):
        ledger.add_prepared(
            prepare_segment(*w.segment(NOW - MINUTE + n, MEMBER, {"membership": "join"}), ROOM)
        )
    for n, ahead in ((DEVICES - 2, 10 * MINUTE), (DEVICES - 1, 20 * MINUTE)):
        segment = writers[n].segment(NOW + ahead, MESSAGE, {"body": "soon", "msgtype": "m.text"})
        ledger.add_prepared(prepare_segment(*segment, ROOM))
    room = RoomState(ROOM, ledger, result=ledger.audit(now_ms=NOW), complete=True)
    me = writers[0]
    key_text = b64encode(bytes(me.key.verify_key))
    send_context(room, me.user, key_text)
    carried = 0
    for step, n in enumerate(senders):
        shown = room.result
        assert shown is not None
        segment = writers[n].segment(NOW + step, MESSAGE, {"body": f"m{step}", "msgtype": "m.text"})
        placed = ledger.try_place(ledger.add_prepared(prepare_segment(*segment, ROOM)), NOW)
        scan = room.scan
        if placed is None:
            room.result = ledger.audit(now_ms=NOW)
        else:
            room.result = ledger.result
            assert room.result is not None
            if placed.inserted:
                room.moved = (shown, room.result, placed.at, len(placed.rows))
        room.carry_scan()  # the end of the job (``keeper._publish``)
        room.moved = None
        context = send_context(room, me.user, key_text)
        if placed is not None and placed.inserted:
            assert room.scan is scan  # carried, not made again
            carried += 1
        fresh = SendScan(room.result)
        fresh.catch_up()
        assert room.scan is not None
        assert list(room.scan.tips.items()) == list(fresh.tips.items())
        assert context == (
            True,
            fresh.introductions(me.user, key_text).offers(),
            fresh.witness_order(key_text),
            fresh.named_tips(key_text),
        )
        # what ranks the witness (rt99) is carried exactly too
        assert room.scan.first == fresh.first and room.scan.trusted == fresh.trusted
        assert room.scan.witnessed == fresh.witnessed
    if all(n < DEVICES - 2 for n in senders):
        assert carried == len(senders)  # every message went before the rows dated ahead


@pytest.mark.parametrize("named", [False, True], ids=["unnamed", "named-by-my-witness"])
def test_a_witness_names_chains_read_before_then_trusted_ones_then_the_rest(
    named: bool,
) -> None:
    """``SendScan.witness_order`` (red team rt99): a key costs nothing, so the chains a
    witness names first are those this key's own witnesses named before, then verified
    chains already in the room when this device last wrote, then verified keys first
    seen since, then the rest (here a chain that does not link) — each kind most
    recently active first, whatever the order of activity."""
    me, old, new, broken = _Writer(0), _Writer(1), _Writer(2), _Writer(3)
    ledger = RoomLedger(ROOM, keep_bodies=False)
    text = {"body": "hi", "msgtype": "m.text"}
    for at, w, kind, content in (
        (-10, me, MEMBER, {"membership": "join"}),
        (-9, old, MEMBER, {"membership": "join"}),
        (-8, broken, MEMBER, {"membership": "join"}),
    ):
        ledger.add_prepared(prepare_segment(*w.segment(NOW + at * MINUTE, kind, content), ROOM))
    joined = broken.prev
    assert joined is not None
    mine = build_event(
        room_id=ROOM,
        sender_id=me.user,
        event_type=MESSAGE,
        content=text,
        timestamp_ms=NOW - 5 * MINUTE,
        unique=str(uuid.uuid4()),
        prev_event_hash=me.prev,
        signing_key=me.key,
        witness={b64encode(bytes(broken.key.verify_key)): joined} if named else None,
    )
    ledger.add_prepared(prepare_segment(path_for([mine], "user0"), encode_segment([mine]), ROOM))
    broken.prev = b64encode(bytes(32))  # its next row links to no event: not verified
    for at, w in ((-3, new), (-2, broken), (-1, old)):
        if w is new:
            join = w.segment(NOW + at * MINUTE - 1, MEMBER, {"membership": "join"})
            ledger.add_prepared(prepare_segment(*join, ROOM))
        ledger.add_prepared(prepare_segment(*w.segment(NOW + at * MINUTE, MESSAGE, text), ROOM))
    scan = SendScan(ledger.audit(now_ms=NOW))
    scan.catch_up()
    key_text = b64encode(bytes(me.key.verify_key))
    assert scan.trusted[b64encode(bytes(broken.key.verify_key))] is False
    order = [ev.sender_id for ev in scan.witness_order(key_text) if ev.sender_key != key_text]
    if named:
        assert order == [broken.user, old.user, new.user]
    else:
        assert order == [old.user, new.user, broken.user]
