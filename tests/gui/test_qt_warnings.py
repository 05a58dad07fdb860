"""A Qt warning fails the test that caused it, in every test of the suite.

The rule is pytest-qt's ``qt_log_level_fail = "WARNING"`` in pyproject.toml, with the few
messages of the offscreen platform listed by exact text in ``qt_log_ignore``. This runs a
small test file under the project's own configuration to show the rule holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CASES = """
from PySide6.QtGui import QFont
from PySide6.QtCore import qWarning


def test_a_real_qt_warning(qapp):
    QFont().setPointSize(0)  # Qt: "QFont::setPointSize: Point size <= 0 (0), ..."


def test_an_offscreen_limitation(qapp):
    qWarning("This plugin does not support raise()")


def test_a_warning_that_only_starts_like_one(qapp):
    qWarning("This plugin does not support raise() and something else went wrong")


def test_quiet(qapp):
    pass
"""


def test_a_qt_warning_fails_the_test_under_the_project_configuration(tmp_path: Path) -> None:
    (tmp_path / "test_cases.py").write_text(CASES)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:cacheprovider",
            "-q",
            "-rfE",
            str(tmp_path / "test_cases.py"),
        ],
        cwd=tmp_path,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout
    assert "FAILED test_cases.py::test_a_real_qt_warning" in out, out
    assert "FAILED test_cases.py::test_a_warning_that_only_starts_like_one" in out, out
    assert "2 failed, 2 passed" in out, out
