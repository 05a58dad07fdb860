"""Messages a full audit hands on as arrived that sort before the read marker are kept
with it (``Controller._note_unseen``), found in one walk of the room: a member who dates
tens of thousands of rows a few minutes ahead keeps every arrival far from the newest
row, and a walk per arrival (up to 400 of them) held the GUI thread 2.5 s a time in a
room of 100,000 rows."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from PySide6.QtCore import QTimer

from bucket_chat_desktop.gui.controller import Controller
from bucket_chat_desktop.protocol.audit import Timeline
from bucket_chat_desktop.settings import Settings
from tests.unit.protocol._support import ROOM, T0, alice, bob, ledger, seg


def test_arrivals_before_the_marker_are_found_in_one_walk(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = alice(), bob()
    hers = [a.join(T0), *(a.say(T0 + 1 + 2 * i, f"a{i}") for i in range(200))]
    his = [b.join(T0 + 2), *(b.say(T0 + 2 + 2 * i, f"b{i}") for i in range(200))]
    result = ledger(seg(hers, "a"), seg(his, "b")).audit()
    rows = result.timeline
    key = f"s/{ROOM}"
    settings = Settings()
    marker = rows[300].event
    settings.set_read_marker(key, marker.event_id, marker.timestamp_ms)
    incoming = [rows[i] for i in range(100, 400, 3) if rows[i].event.sender_id == b.sender_id]
    walks: list[str] = []
    real_rows_by_id, real_position_of = Timeline.rows_by_id, Timeline.position_of

    def counted_rows_by_id(self: Timeline, wanted: Any, start: int = 0) -> Any:
        walks.append("rows_by_id")
        return real_rows_by_id(self, wanted, start)

    def counted_position_of(self: Timeline, event_id: str) -> int | None:
        walks.append("position_of")
        return real_position_of(self, event_id)

    monkeypatch.setattr(Timeline, "rows_by_id", counted_rows_by_id)
    monkeypatch.setattr(Timeline, "position_of", counted_position_of)
    timer = QTimer()
    timer.setInterval(60_000)
    stand_in = SimpleNamespace(settings=settings, _save_markers=timer)
    Controller._note_unseen(stand_in, key, result, incoming)  # type: ignore[arg-type]
    assert len(walks) == 1  # was one walk per arrival, and one for the marker
    expected = [r.event.event_id for r in incoming if rows.position_of(r.event.event_id) < 300]
    assert expected and len(expected) < len(incoming)
    assert settings.unseen_before_marker(key) == tuple(expected)
    assert timer.isActive()  # saved soon
    timer.stop()
