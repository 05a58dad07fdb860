"""What a Qt test leaves dies on the GUI thread, before the next test starts.

Until a test's tear-down is over pytest keeps its fixture values and the log records of
its phases; a record of ``log.exception`` keeps a traceback, and through its frames the
test's windows, controllers and qasync loops. They became garbage only after the GUI
collector's fixture had stopped, and the next full collection destroyed them on whatever
thread ran it: in the suite, fsspec's I/O thread during a later test without Qt, which
failed on Qt's "QObject::~QObject: Timers cannot be stopped from another thread" (and
could crash). ``tests/conftest.py``'s ``pytest_runtest_protocol`` collects once pytest
let go. The two tests run in order in a pytest of their own: the second one collects on
another thread and checks where the first one's Qt object died."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_a_qt_object_kept_by_a_logged_traceback_dies_on_the_gui_thread() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-p",
            "no:xdist",
            "-o",
            "python_files=pair_*.py",
            str(HERE / "sequences" / "pair_qt_garbage.py"),
        ],
        cwd=HERE.parents[1],
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "2 passed" in run.stdout, run.stdout[-4000:]
