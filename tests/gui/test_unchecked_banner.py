"""A room whose safety listing keeps failing (red team rt77: a member overfills its
``logs/``, a provider refuses the one prefix): the room's banner says since when its
history could not be checked and why, not only "could not be read completely"."""

from __future__ import annotations

import time

from bucket_chat_desktop.gui.main_window import banner_html
from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.sync.room_state import UNCHECKED_NOTE, RoomState, unread_findings

ROOM = "falcon"
WHY = "cannot list rooms/falcon/logs/: more than 200,000 objects <b>in one folder</b>"


def test_the_banner_says_since_when_and_why_the_history_could_not_be_checked() -> None:
    room = RoomState(ROOM, RoomLedger(ROOM))
    assert not room.partial
    since = time.mktime((2026, 3, 4, 5, 6, 0, 0, 0, -1))
    room.unchecked = (since, WHY)
    assert room.partial and not room.worth_reading_again  # listed again, not read again
    findings = unread_findings(room)
    assert [(f.kind, f.path) for f in findings] == [(Kind.UNREAD, f"rooms/{ROOM}/logs/")]
    assert findings[0].message.startswith(f"{UNCHECKED_NOTE}2026-03-04 05:06 ")
    banner = banner_html(findings)
    assert "could not be read completely" in banner and "no verdict is final" in banner
    assert "Its history could not be checked since 2026-03-04 05:06" in banner
    assert "more than 200,000 objects &lt;b&gt;in one folder&lt;/b&gt;" in banner  # escaped
    # another room's listing that failed says nothing of the kind
    other = RoomState("owl", RoomLedger("owl"))
    other.unlisted["rooms/owl/logs/2026-01-01/"] = "permission denied"
    assert "checked since" not in banner_html(unread_findings(other))
