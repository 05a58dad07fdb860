"""Red team rt72 (after its fix): messages this device had queued on a place of its
key's chain that another device using the same key (a restored key backup) has written
on since fork the chain once delivered. The command line's log said so; the app said
nothing. The engine tells it (``SharedKeyQueued``) and the window's status bar says it,
with the room's id on one line."""

from __future__ import annotations

from typing import Any

import pytest

from bucket_chat_desktop.gui.bridge import EngineBridge
from bucket_chat_desktop.sync.events import SharedKeyQueued

pytestmark = pytest.mark.usefixtures("qloop", "home")


def test_messages_queued_before_another_device_with_the_key_wrote_are_said(
    qtbot: Any,
) -> None:
    bridge = EngineBridge()
    said: list[tuple[str, str]] = []
    bridge.warning_raised.connect(lambda sid, text: said.append((sid, text)))
    bridge.deliver("work", SharedKeyQueued("payroll\n\u202eevil", 2))
    [(sid, text)] = said
    assert sid == "work"
    assert text.startswith("2 message(s) waiting to be sent in payroll")
    assert "\n" not in text and "\u202e" not in text
    assert "fork" in text and "its own key" in text
