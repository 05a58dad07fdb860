"""The Qt binding itself must not corrupt reference counts.

PySide6 6.12.0 decrefs the arguments of signals and the results of Python slots: after a
few thousand emits the interpreter aborts ("bool_dealloc" / "none_dealloc"). A chat app
emits that many signals in minutes, so this runs in a subprocess and must exit cleanly.
"""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QCheckBox
app = QApplication([])
class O(QObject):
    flag = Signal(str, bool, str)
o = O(); got = []
o.flag.connect(lambda a, b, c: got.append(b))
box = QCheckBox(); box.toggled.connect(lambda b: None)
for i in range(20000):
    o.flag.emit("x", i % 2 == 0, "y")
    box.setChecked(i % 2 == 0)
print("ok", len(got))
"""


def test_signals_with_bool_arguments_do_not_corrupt_the_interpreter() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok 20000"
