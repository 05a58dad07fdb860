"""An export's "partial" and its "removed or changed in storage" come from the same
moment of the room's state (``RoomView``): its audit's findings may be older, an audit
put off for a burst of arrivals. Before, the words came from those findings and
"partial" from the state, so a read that failed after the last audit was called a
removal (and a removal noted since, with an older read failure in the findings, the
reverse)."""

from __future__ import annotations

from bucket_chat_desktop.export.snapshot import snapshot_of
from bucket_chat_desktop.protocol.audit import AuditResult, RoomLedger, Timeline
from bucket_chat_desktop.protocol.findings import Finding, Kind
from bucket_chat_desktop.sync.backfill import LOST_HERE
from bucket_chat_desktop.sync.keeper import RoomKeeper
from bucket_chat_desktop.sync.room_state import RoomState, unread_findings

ROOM = "falcon"
GONE = f"rooms/{ROOM}/logs/2026-01-01/messages_1_1_alice-a.jsonl"
LATER = f"rooms/{ROOM}/logs/2026-01-02/messages_3_3_carol-c.jsonl"


def _room() -> RoomState:
    room = RoomState(ROOM, RoomLedger(ROOM))
    room.complete = True
    room.vanished[GONE] = f"{LOST_HERE}no longer in storage: someone removed or moved it"
    room.result = AuditResult(ROOM, Timeline.empty(), [], unread_findings(room), 3)
    return room


def test_a_read_failed_since_the_last_audit_is_not_called_a_removal() -> None:
    room = _room()
    RoomKeeper._publish(room)
    assert room.view is not None and room.view.vanished
    snap = snapshot_of(room.view, "folder")
    assert not snap.complete and snap.vanished  # only the removal: its words
    # A read fails; the audit that would add its finding is put off.
    assert room.note_unread({LATER: "timed out"})
    RoomKeeper._publish(room)
    assert room.view is not None and room.view.partial and not room.view.vanished
    snap = snapshot_of(room.view, "folder")
    assert not snap.complete and not snap.vanished  # a failed read: the general words


def test_a_removal_noted_after_a_failed_read_was_retried_is_called_one() -> None:
    room = _room()
    failed = Finding(Kind.SEGMENT_UNREADABLE, "timed out", LATER)
    assert room.result is not None
    room.result = AuditResult(ROOM, Timeline.empty(), [], [*room.result.findings, failed], 3)
    RoomKeeper._publish(room)  # the read was retried and worked; its audit is put off
    assert room.view is not None
    assert snapshot_of(room.view, "folder").vanished
