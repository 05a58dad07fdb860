"""Review rev1, point 6: one clock for "what was read" in the handler of a full audit.

Eve stores a message dated 30 minutes ahead: shown, not news yet, and never the read
marker (``unread.marker_for``). Alice's laptop sleeps 40 minutes; Mallory writes a
message and edits an older one (a full audit). The late notes and the anchor of late
rows took what was read by the clock of that read (``RoomSession.read_ms``, red team
rt101), but the audit's arrivals (``unread.arrived``: unread counts, notifications) took
it by the wake-up clock: Eve's row, never read, was the newest row "read", and the live
count said one message fewer than the same app counts after a restart (rows after the
read marker, by the same clock), with no notification of Eve's message, now due."""

from __future__ import annotations

import time
import types
from collections.abc import Callable
from typing import Any

import pytest
from nacl.signing import SigningKey
from test_backdated_news import MALLORY, chain, store_segment, text
from test_late_edits_and_deletions import (  # noqa: F401 (fixtures)
    Room,
    _sleep_then_wake,
    room,
)

from bucket_chat_desktop import settings as settings_store
from bucket_chat_desktop.gui import controller as controller_module
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE
from bucket_chat_desktop.protocol.relations import EDIT
from bucket_chat_desktop.sync import engine as engine_module

EVE = ("eve@example.com", SigningKey(b"\x0e" * 32))
MIN = 60_000


def _shown(desk: Any, event_id: str) -> bool:
    model = desk.model("c")
    ids = (model.index(i, 0).data(Roles.EventId) for i in range(model.rowCount()))
    return event_id in ids


def test_after_a_sleep_the_live_unread_count_is_the_count_after_a_restart(
    qtbot: Any,
    room: Room,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    launch: Callable[..., Any],
) -> None:
    desk = room.desk
    now = int(time.time() * 1000)
    eve = chain(
        "c",
        EVE,
        [
            (now, MEMBER, {"membership": "join", "displayname": "Eve"}),
            (now + 30 * MIN, MESSAGE, text("from 30 minutes ahead")),
        ],
    )
    store_segment(room.root, EVE, eve)
    qtbot.waitUntil(lambda: _shown(desk, eve[1].event_id), timeout=30_000)
    desk.select("a")  # room c is read elsewhere: what comes to it is counted
    before = desk.item("c").unread
    assert before == 0
    notes: list[str] = []
    desk.controller.notify.connect(lambda key, title, body, *rest: notes.append(body))
    _sleep_then_wake(monkeypatch)
    written = int(time.time() * 1000)  # the members' clock; the app's reads 40 min more
    message, edit = chain(
        "c",
        MALLORY,
        [
            (written, MESSAGE, text("written while Alice slept")),
            (written + 1, EDIT, {"replaces": room.on_time.event_id, "new_content": text("fix")}),
        ],
        prev=room.last.hash,
    )
    store_segment(room.root, MALLORY, [message, edit])
    qtbot.waitUntil(lambda: _shown(desk, message.event_id), timeout=30_000)
    qtbot.waitUntil(lambda: desk.item("c").unread > before, timeout=15_000)
    live = desk.item("c").unread - before
    assert desk.quit() == 0
    # the whole app's clock 40 minutes on, as the controller's: the engine counts the
    # unread rows after the read marker on a restart (``SyncEngine.count_unread``)
    woken = vars(time).copy()
    woken["time"] = controller_module.time.time
    monkeypatch.setattr(engine_module, "time", types.SimpleNamespace(**woken))
    again = launch(settings_store.load())
    again.wait_loaded("a", "c")
    # counted off the window's thread after the first audit (``count_unread``)
    qtbot.waitUntil(lambda: again.item("c").unread > 0, timeout=15_000)
    assert live == again.item("c").unread == 2, (live, again.item("c").unread, notes)
    assert notes[-1] == "from 30 minutes ahead"
