"""What the GUI and the GUI-fuzz tests share about Qt on several threads (importable from
every test folder, as ``waiting`` is): ending a test's qasync loop, stopping a test's GUI
collector once pytest let go of the test, and a Qt object that must die on the GUI
thread."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QThread


def end_qloop(loop: Any, qapp: Any, qtbot: Any, *, warn: bool = True) -> None:
    """End a test's ``qasync.QEventLoop(qapp, already_running=True)``: cancel its tasks
    (waiting 5 s for them; ``warn`` says so of those that outlive it) and close it."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        try:
            qtbot.waitUntil(lambda: all(t.done() for t in pending), timeout=5000)
        except Exception:  # a task that ignores cancellation must not hide the result
            if warn:
                warnings.warn(
                    f"{sum(not t.done() for t in pending)} task(s) outlived the test",
                    RuntimeWarning,
                    stacklevel=2,
                )
    # A loop made with already_running=True counts as running; close() refuses a
    # running loop, and stop() would quit the QApplication. Mark it stopped instead.
    loop._QEventLoop__is_running = False
    with contextlib.suppress(RuntimeError, TypeError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qapp.aboutToQuit.disconnect(loop._after_run_forever)
    loop.close()
    asyncio.events._set_running_loop(None)
    asyncio.set_event_loop(None)
    # Not collected here: the fixture and pytest still hold the loop. It and its Qt timers
    # are collected on the GUI thread once pytest lets go (``tests/conftest.py``).


def delete_what_was_left() -> None:
    """End of a Qt test: delete now, on the GUI thread, what it handed to ``deleteLater``
    (an app's window at its quit). In a test no event loop runs those deletions:
    pytest-qt never calls ``exec()``, and ``processEvents`` leaves them to the loop that
    posted them: a window left so lived on, with its timers, until its Python side was
    collected, on whichever thread that ran."""
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


_STOP_AFTER_THE_TEST: list[Any] = []


def stop_after_the_test(collector: Any) -> None:
    """A test's ``GuiThreadCollector``, at the end of its fixture: stopped by
    ``stop_collectors_left`` once pytest let go of the test (``tests/conftest.py``), not
    here. Its ``stop()`` runs a full collection, and the hook has to run one of its own
    then anyway (for what pytest kept of the test until its tear-down was over); one
    full collection of the worker's heap instead of two after each Qt test (each
    100-300 ms after a test whose app read a room: the read's pause hands the frozen
    heap back to the collector). Until then the collector is still started: CPython's
    automatic collector stays off, so nothing is collected on another thread in between."""
    _STOP_AFTER_THE_TEST.append(collector)


def stop_collectors_left() -> bool:
    """Stop, here on the GUI thread, each collector ``stop_after_the_test`` was given
    (each ``stop()`` collects everything collectable, then hands collecting back to
    CPython) and delete it. Whether there was any."""
    left = bool(_STOP_AFTER_THE_TEST)
    while _STOP_AFTER_THE_TEST:
        collector = _STOP_AFTER_THE_TEST.pop()
        collector.stop()
        collector.deleteLater()
    return left


class TimedCycle(QObject):
    """A Qt object with a running timer, kept only by a reference cycle of its own;
    ``died_on`` gets whether it was destroyed on its own (the GUI) thread."""

    def __init__(self, died_on: list[bool]) -> None:
        super().__init__()
        self.me = self
        self.startTimer(60_000)
        self.died_on = died_on

    def __del__(self) -> None:
        self.died_on.append(QThread.currentThread() is self.thread())
