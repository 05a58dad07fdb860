"""Red team rt99 (fixed by fix99a): one member's false witness was shown as a fact of
tampering.

Mallory, a member, signs one message whose ``witness`` names Alice's real key and a hash
she made up (PROTOCOL.md section 6.1: "a false claim costs a writer nothing"). Alice is
honest and nothing was removed. The audit reports ``truncated-chain`` (an ERROR) and its
message names Mallory as who claimed it, as docs/SECURITY.md "False witness" promises —
but what the user reads first says otherwise: the room's banner "This room's history has
1 problem: Messages were removed from the end of a history", and the audit dialog's
explanation "the newest part of someone's history was deleted from the storage … if
nobody did, treat it as tampering". Nothing tells the user it is one member's
unverifiable claim (the ``dated-before-witness`` explanation does: "It is only that
member's claim"); the user is told as fact that history was deleted and that Alice's
messages are missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import shot

from bucket_chat_desktop.gui.audit.dialog import AuditDialog
from bucket_chat_desktop.gui.audit.view import AuditView
from bucket_chat_desktop.gui.main_window import banner_html
from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.protocol.findings import Kind
from tests.unit.protocol._support import ROOM, T0, Device, alice, seg

MADE_UP = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="  # base64 of 32 bytes, no event's


def _room_with_a_false_witness() -> tuple[RoomLedger, Any]:
    honest, mallory = alice(), Device("mallory@example.com", 20)
    segments = [
        seg([honest.join(T0), honest.say(T0 + 1, "hello")], "alice"),
        seg(
            [
                mallory.join(T0 + 2),
                mallory.say(T0 + 3, "hi all", witness={honest.public: MADE_UP}),
            ],
            "mallory",
        ),
    ]
    ledger = RoomLedger(ROOM, keep_bodies=False)  # the app's ledger
    for path, data in segments:
        ledger.add_segment(path, data)
    return ledger, ledger.audit({}, complete=True)


def test_a_false_witness_is_not_shown_as_a_fact_of_deleted_history(
    qtbot: Any, tmp_path: Path
) -> None:
    _, result = _room_with_a_false_witness()
    truncated = [f for f in result.findings if f.kind is Kind.TRUNCATED_CHAIN]
    assert len(truncated) == 1 and "mallory@example.com" in truncated[0].message
    # Alice's whole history is there and verified
    assert [a.event.sender_id for a in result.timeline].count("alice@example.com") == 2

    banner = banner_html(result.errors)
    dialog = AuditDialog()
    qtbot.addWidget(dialog)
    dialog.set_view(AuditView(ROOM, result, None, (), complete=True, partial=False))
    detail = dialog.detail.toPlainText()
    assert "truncated-chain" in detail
    # What the user reads as the finding's headline and meaning must say it is a claim
    # of the member named (as the dated-before-witness explanation does), not a fact.
    assert "claim" in banner.lower() or "mallory" in banner.lower(), banner
    meaning = detail.split("What to do:")[0]
    assert "claim" in meaning.lower(), detail
    # ... and what it says to do asks both: the author and the member who claims it
    action = detail.split("What to do:")[1].lower()
    assert "author" in action and "member named" in action, detail
    # ``bucket-chat verify`` prints the finding's message: a claim there too
    assert "claim is false" in truncated[0].message, truncated[0].message
    shot(dialog, "false_witness_audit", tmp_path)
