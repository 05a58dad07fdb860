"""The GUI fuzz runs the app as users run it: garbage collected on the GUI thread only.

The app turns CPython's automatic collector off and collects from a timer on its GUI
thread (``GuiThreadCollector``), so a Qt object in a reference cycle never dies on a
thread that allocates (the engine's state thread, fsspec's I/O thread). The fuzzing
``qloop`` ran without it: such an object died on whichever thread allocated."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

from qt_loops import TimedCycle


def test_a_qt_cycle_dies_on_the_gui_thread_while_a_thread_allocates(qtbot: Any, qloop: Any) -> None:
    gc.collect()
    died_on: list[bool] = []
    cycle = TimedCycle(died_on)
    ref = weakref.ref(cycle)
    del cycle
    kept: list[dict[str, int]] = []

    def parse() -> None:  # what parsing a bucket's answer does to the collector's counts
        kept.extend({"key": i} for i in range(20 * gc.get_threshold()[0]))

    worker = threading.Thread(target=parse)
    worker.start()
    worker.join(30)
    qtbot.waitUntil(lambda: ref() is None, timeout=5_000)
    assert died_on == [True]
