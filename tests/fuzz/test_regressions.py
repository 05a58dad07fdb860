"""One plain regression per hostile class (``hostile.REGRESSION_ROOMS``) through the
protocol and the ``bucket-chat`` command; the same rooms go through the app in
``test_gui_fuzz.py``. Each is the smallest room that shows its class."""

from __future__ import annotations

from pathlib import Path

import pytest

from bucket_chat_desktop.protocol.audit import RoomLedger

from .hostile import REGRESSION_ROOMS, ROOM, write_room
from .test_cli_fuzz import check_room
from .test_protocol_fuzz import _check_accounted, _segments


@pytest.mark.parametrize("case", list(REGRESSION_ROOMS))
def test_protocol_keeps_or_reports_every_line(case: str) -> None:
    room = REGRESSION_ROOMS[case]()
    segments = _segments(room)
    ledger = RoomLedger(ROOM)
    ledger.add_segments(segments)
    _check_accounted(segments, ledger.audit())


@pytest.mark.parametrize("case", list(REGRESSION_ROOMS))
def test_cli_reads_the_room_cleanly(case: str, home: Path, tmp_path: Path) -> None:
    room = REGRESSION_ROOMS[case]()
    write_room(tmp_path / "store", room, tmp_path / "outside")
    check_room(tmp_path / "store", room)
