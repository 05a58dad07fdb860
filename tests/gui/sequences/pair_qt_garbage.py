"""Run in this order, in one process, by ``tests/gui/test_qt_garbage_between_tests.py``
(not collected by the suite itself: its file name is not a test file's)."""

from __future__ import annotations

import gc
import logging
import threading
from typing import Any

from qt_loops import TimedCycle

DIED_ON: list[bool] = []


def _fails_with(window: Any) -> None:
    raise RuntimeError("the storage stopped answering")


def test_a_qt_test_logs_a_failure_with_a_window_in_its_traceback(qtbot: Any) -> None:
    window = TimedCycle(DIED_ON)  # a Qt object with a running timer, in a cycle
    try:
        _fails_with(window)
    except RuntimeError:  # what the app does with a failed task: logged, with its traceback
        logging.getLogger("bucket_chat.test").exception("opening the room failed")
    del window


def test_then_a_test_without_qt_collects_on_another_thread() -> None:
    worker = threading.Thread(target=gc.collect)  # as fsspec's I/O thread may, allocating
    worker.start()
    worker.join(30)
    assert DIED_ON == [True]  # it died on the GUI thread, between the two tests
