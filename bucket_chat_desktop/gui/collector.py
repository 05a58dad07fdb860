"""The cyclic garbage collector runs on the GUI thread only (``protocol.heap``).

CPython runs a due collection on whichever thread allocates at that moment. The app has
several that allocate a lot — fsspec's I/O thread parsing a bucket's answers, the
engine's state thread — and a Qt object in a reference cycle (a closed dialog, a window's
event loop) collected on one of them is destroyed off its own thread: Qt cannot stop its
timers there ("QObject::~QObject: Timers cannot be stopped from another thread") and may
later fire one at freed memory. So the automatic collector is off while this runs, and a
timer on the GUI thread runs the collection that is due (``heap.collect_due``).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QElapsedTimer, QObject, QTimer

from ..protocol import heap

INTERVAL_MS = 50
"""How often the GUI thread looks whether a collection is due: a young generation grows
by what 50 ms allocate: usually a few milliseconds to scan, 5-30 ms while a million-event
room's audit runs beside it (``benchmarks/gui_bench.py``)."""

FULL_EVERY_MS = 10_000
"""The least time between two full collections, on top of CPython's own rule (kept by
``heap.collect_due``: a quarter more old objects than the last full one left). A full
collection of a heap that is not frozen (``heap.settle``) scans everything: 0.2 s and
more with a million-event room open."""


class GuiThreadCollector(QObject):
    """While started, garbage is collected on this object's thread (the GUI thread)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(self._collect)
        self._since_full = QElapsedTimer()
        self._since_full.start()

    def _collect(self) -> None:
        full = self._since_full.elapsed() >= FULL_EVERY_MS
        if heap.collect_due(full=full) == 2:
            self._since_full.restart()

    @property
    def started(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        if not self._timer.isActive():
            heap.collect_by_hand()
            self._timer.start()

    def stop(self) -> None:
        """Collect everything collectable here once more and hand collecting back to
        CPython, which may then collect on any thread: a Qt object dropped in a cycle
        before this (a test's window, closed by its teardown) dies here, not later on a
        thread that happens to allocate."""
        if self._timer.isActive():
            self._timer.stop()
            gc.collect()
            heap.collect_automatically()
