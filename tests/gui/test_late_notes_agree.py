"""The app and ``bucket-chat sync --follow`` say the same of the same hostile room
(red team rt98): Eve stores a message dated 50 minutes ahead (shown: within the hour),
then Alice's laptop sleeps 40 minutes while Mallory writes a message and edits an older
one on time. Neither is late news: both are dated after everything this device had read
of the room but Eve's row, whose date is her word. The app's rows said nothing, but
``sync --follow`` counted Eve's row as read and printed both as "sent or delivered long
after its date". Both now weigh a row's date against one rule
(``unread.seen_place``); the terminal's side here is ``LivePrinter`` fed the audits of
the very bytes the app read, at the app's clock."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey
from test_backdated_news import MALLORY, chain, store_segment, text
from test_late_edits_and_deletions import (  # noqa: F401 (fixtures)
    ASLEEP_S,
    Room,
    _sleep_then_wake,
    room,
)

from bucket_chat_desktop.cli.live import LivePrinter
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.protocol import relations
from bucket_chat_desktop.protocol.audit import AuditResult, RoomLedger
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE
from bucket_chat_desktop.protocol.relations import EDIT

EVE = ("eve@example.com", SigningKey(b"\x0e" * 32))
MIN = 60_000


def _audit(root: Path, leave_out: str = "") -> AuditResult:
    """Room "c" as stored under ``root`` (all of it but segment ``leave_out``), audited
    without a clock (nothing held back: Eve's row is within the hour anyway)."""
    ledger = RoomLedger("c")
    for path in sorted((root / "rooms" / "c").rglob("*.jsonl")):
        name = path.relative_to(root).as_posix()
        if name != leave_out:
            ledger.add_segment(name, path.read_bytes())
    return ledger.audit()


def _shown(desk: Any, event_id: str) -> bool:
    model = desk.model("c")
    ids = (model.index(i, 0).data(Roles.EventId) for i in range(model.rowCount()))
    return event_id in ids


@pytest.mark.parametrize("ahead_min", [50, 30])
def test_the_app_and_follow_agree_a_row_dated_ahead_makes_nothing_late(
    qtbot: Any,
    room: Room,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    ahead_min: int,
) -> None:
    """Eve's row 50 minutes ahead is still ahead at the wake-up (40 minutes on); one 30
    minutes ahead is due by then, but was not when read: neither is read (red team
    rt101: by the wake-up clock, both the app and the terminal noted both rows)."""
    now = int(time.time() * 1000)
    eve = chain(
        "c",
        EVE,
        [
            (now, MEMBER, {"membership": "join", "displayname": "Eve"}),
            (now + ahead_min * MIN, MESSAGE, text(f"from {ahead_min} minutes ahead")),
        ],
    )
    store_segment(room.root, EVE, eve)
    qtbot.waitUntil(lambda: _shown(room.desk, eve[1].event_id), timeout=30_000)
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
    path = store_segment(room.root, MALLORY, [message, edit])
    room.wait_body(qtbot, room.on_time.event_id, "fix")
    qtbot.waitUntil(lambda: _shown(room.desk, message.event_id), timeout=30_000)
    arrived_ms = int(time.time() * 1000) + ASLEEP_S * 1000  # the app's clock
    # the app: no note on the message, nor on the edited row
    assert room.row(message.event_id).data(Roles.Late) is None
    assert room.row(room.on_time.event_id).data(Roles.LateChange) is None
    noted = {e for e, _where in room.desk.controller.late_arrivals(room.desk.key("c"))}
    assert not noted & {message.event_id, edit.event_id}

    # sync --follow on the same bytes: the room as read before, then what arrived
    monkeypatch.setenv("COLUMNS", "100000")  # a note on one row, whole
    before, after = _audit(room.root, leave_out=path), _audit(room.root)
    rows = list(after.timeline)
    new = [r for r in rows if r.event.event_id in (message.event_id, edit.event_id)]
    assert len(new) == 2 and any(r.event.event_id == eve[1].event_id for r in before.timeline)
    said: list[str] = []
    printer = LivePrinter(said.append)
    # printed before the sleep, as the app read it (the members' clock: now)
    printer.opening(before, relations.build("c", list(before.timeline)), 0, now_ms=now)
    printer.arrived(new, rows, relations.build("c", rows), echo_own=True, now_ms=arrived_ms)
    assert any("written while Alice slept" in x for x in said), said
    assert any("edited a message: fix" in x for x in said), said
    assert not [x for x in said if "long after its date" in x], said  # as the app
