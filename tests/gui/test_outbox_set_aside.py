"""Red team rt71: a damaged outbox made the app attach nothing of the storage and say
nothing (a traceback in the log only). The client now attaches it with a new outbox and
says where the damaged copy is (``OutboxSetAside``); the window shows it in its status
bar, as it shows a failing notification queue."""

from __future__ import annotations

from typing import Any

import pytest

from bucket_chat_desktop.gui.bridge import EngineBridge
from bucket_chat_desktop.sync.events import OutboxSetAside

pytestmark = pytest.mark.usefixtures("qloop", "home")


def test_a_damaged_outbox_is_said_in_the_status_bar(qtbot: Any) -> None:
    bridge = EngineBridge()
    said: list[tuple[str, str]] = []
    bridge.warning_raised.connect(lambda sid, text: said.append((sid, text)))
    message = (
        "this device's outbox for /srv/chat was damaged (file is not a database); the "
        "damaged file is kept as /home/a/.local/share/x/outbox/abc.sqlite3.broken-"
        "20260101T000000Z; what was waiting in it could not be read back and was not "
        "sent (it is in that copy); a new outbox is used"
    )
    bridge.deliver("work", OutboxSetAside(message))
    assert said == [("work", message)]
