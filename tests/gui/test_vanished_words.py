"""A room whose only problem is segments this device read and checked that storage no
longer holds as read (removed, moved, replaced, rewritten: ``RoomState.vanished``). Its
findings were "segment-unreadable", titled "File could not be read", and the banner and
audit dialog said the history "could not be read" and that the app keeps trying: words
for a storage that did not answer, not for someone removing or rewriting history. Such
a finding is a kind of its own, explained as what it is; the room is still not final
(no trust on first use, no pinning)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

from bucket_chat_desktop.gui.audit.dialog import AuditDialog
from bucket_chat_desktop.gui.audit.explanations import explain
from bucket_chat_desktop.gui.audit.view import AuditView
from bucket_chat_desktop.gui.controller import PARTIAL_READ
from bucket_chat_desktop.gui.main_window import banner_html
from bucket_chat_desktop.gui.models.rooms_model import RoomItem, RoomRoles, RoomsModel
from bucket_chat_desktop.protocol.audit import AuditResult, RoomLedger, Timeline
from bucket_chat_desktop.protocol.findings import Finding, Kind, Severity, vanished_only
from bucket_chat_desktop.sync.backfill import CHANGED_SAME_SIZE, LOST_HERE
from bucket_chat_desktop.sync.room_state import RoomState, unread_findings

ROOM = "falcon"
GONE = f"rooms/{ROOM}/logs/2026-01-01/messages_1_1_alice-a.jsonl"
CHANGED = f"rooms/{ROOM}/logs/2026-01-01/messages_2_2_bob-b.jsonl"


def _vanished_only() -> RoomState:
    room = RoomState(ROOM, RoomLedger(ROOM))
    room.vanished[GONE] = f"{LOST_HERE}no longer in storage: someone removed or moved it"
    room.vanished[CHANGED] = CHANGED_SAME_SIZE
    return room


def test_a_segment_gone_or_changed_in_storage_is_a_finding_of_its_own_kind() -> None:
    room = _vanished_only()
    assert room.partial  # not final: no trust on first use, no pinning
    findings = unread_findings(room)
    assert [(f.kind, f.path) for f in findings] == [
        (Kind.SEGMENT_VANISHED, GONE),
        (Kind.SEGMENT_VANISHED, CHANGED),
    ]
    assert all(f.severity is Severity.ERROR for f in findings)
    assert Kind.SEGMENT_VANISHED in PARTIAL_READ
    title = explain(Kind.SEGMENT_VANISHED).title.lower()
    assert "could not be read" not in title and "storage" in title
    banner = banner_html(findings)
    assert "could not be read" not in banner and "keeps trying" not in banner
    assert "removed or changed" in banner and "segment-vanished" in banner
    assert "no verdict is final" in banner


def test_the_audit_dialog_does_not_call_a_segment_gone_from_storage_unread(qtbot: Any) -> None:
    result = AuditResult(ROOM, Timeline.empty(), [], unread_findings(_vanished_only()), 3)
    dialog = AuditDialog()
    qtbot.addWidget(dialog)
    dialog.set_view(AuditView(ROOM, result, None, (), complete=True, partial=True))
    assert "Not completely read" in dialog.history.text()
    assert "could not be read" not in dialog.history.text()
    assert "no longer in storage as this device read" in dialog.history.text()
    assert "could not be read" not in dialog.checked.text()
    assert "Complete" not in dialog.history.text()


def test_the_room_list_says_removed_or_changed_not_could_not_be_read() -> None:
    """The room list's tooltip uses the banner's words for such a room, and the general
    words for a room where a read failed."""
    findings = unread_findings(_vanished_only())
    model = RoomsModel()
    model.add(RoomItem("s1/falcon", "Falcon", "Team folder"))
    model.add(RoomItem("s1/heron", "Heron", "Team folder"))
    model.update("s1/falcon", partial=True, vanished=vanished_only(findings), findings=2)
    failed = [Finding(Kind.SEGMENT_UNREADABLE, "timed out", GONE), *findings]
    model.update("s1/heron", partial=True, vanished=vanished_only(failed), findings=3)
    tips = {
        model.data(model.index(row), RoomRoles.Key): model.data(
            model.index(row), Qt.ItemDataRole.ToolTipRole
        )
        for row in range(model.rowCount())
    }
    assert "removed or changed in storage" in tips["s1/falcon"]
    assert "could not be read" not in tips["s1/falcon"]
    assert "could not be read completely" in tips["s1/heron"]
    assert "removed or changed" not in tips["s1/heron"]


def test_a_banner_for_metadata_only_says_the_messages_are_not_concerned() -> None:
    meta = [Finding(Kind.METADATA_INVALID, "bad signature", "rooms/falcon/metadata.json")]
    assert "not its messages" in banner_html(meta)
    mixed = [*meta, Finding(Kind.INVALID_SIGNATURE, "bad", GONE, 1)]
    words = banner_html(mixed)
    assert "not its messages" not in words and "could not be verified" in words
