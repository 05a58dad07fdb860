"""Garbage with Qt objects in it is collected on the GUI thread, whoever allocates.

CPython collects on whichever thread allocates when a collection is due. The app has
threads that allocate a lot (fsspec's I/O thread parsing a bucket's answers, the
engine's state thread); a Qt object in a reference cycle collected on one of them is
destroyed off its thread: "QObject::~QObject: Timers cannot be stopped from another
thread", then, at times, a crash. It happened in this suite once bucket requests moved to
fsspec's I/O thread. pytest-qt fails a test on any Qt warning, so the first test fails
with the collector stopped (the second checks that this is so)."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

from qt_loops import TimedCycle

from bucket_chat_desktop.gui.collector import GuiThreadCollector


def _allocate_on_a_thread() -> list[dict[str, int]]:
    """What parsing a bucket's answer does to the collector's counts, on another thread:
    many new containers, kept (returned: the caller drops them when done)."""
    kept: list[dict[str, int]] = []

    def parse() -> None:
        kept.extend({"key": i} for i in range(20 * gc.get_threshold()[0]))

    worker = threading.Thread(target=parse)
    worker.start()
    worker.join(30)
    return kept


def _drop_a_cycle() -> tuple[weakref.ref[TimedCycle], list[bool]]:
    died_on: list[bool] = []
    cycle = TimedCycle(died_on)
    ref = weakref.ref(cycle)
    del cycle
    return ref, died_on


def test_a_qt_cycle_dropped_while_a_thread_allocates_dies_on_the_gui_thread(
    qtbot: Any, _collect_on_the_gui_thread: GuiThreadCollector
) -> None:
    assert _collect_on_the_gui_thread.started and not gc.isenabled()
    gc.collect()
    ref, died_on = _drop_a_cycle()
    parsed = _allocate_on_a_thread()
    assert ref() is not None  # the worker's allocations collected nothing
    qtbot.waitUntil(lambda: ref() is None, timeout=5_000)  # the GUI thread's timer did
    assert died_on == [True]
    del parsed


def test_without_it_a_thread_that_allocates_collects_the_qt_cycle_itself(
    qtbot: Any, _collect_on_the_gui_thread: GuiThreadCollector
) -> None:
    """The hazard the collector exists for, shown without Qt's warning: the object is
    destroyed on the allocating thread."""
    _collect_on_the_gui_thread.stop()
    assert gc.isenabled()
    gc.collect()
    died_on: list[bool] = []

    class Plain:  # no Qt timer: its death off the GUI thread is harmless, and seen
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            died_on.append(threading.current_thread() is threading.main_thread())

    Plain()
    parsed = _allocate_on_a_thread()
    assert died_on == [False]
    del parsed


def test_a_qt_cycle_dropped_before_the_collector_stops_dies_when_it_stops(
    qtbot: Any, _collect_on_the_gui_thread: GuiThreadCollector
) -> None:
    """A test's teardown drops its windows just before the collector stops; the next test
    in the worker (one without Qt: nothing runs the timer) allocates on fsspec's I/O
    thread. Stopping collects them here, on the GUI thread."""
    gc.collect()
    ref, died_on = _drop_a_cycle()
    _collect_on_the_gui_thread.stop()
    assert ref() is None and died_on == [True]
    assert gc.isenabled()
