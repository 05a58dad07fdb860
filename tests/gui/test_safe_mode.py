"""After a crash the app leaves a report, and the next start opens no room (safe mode).

- The real ``bucket-chat-desktop`` process, started on a room, is crashed from outside
  with SIGSEGV (a native crash as Qt or shiboken would have it): faulthandler's report is
  in ``<data dir>/crash/``, and the next start of the real program says it is in safe
  mode. ``--safe-mode`` asks for it by hand.
- In-process, offscreen: ``app.run`` in safe mode opens no room although the settings name
  the last one, shows a notice with the report's path, and a room chosen from the list
  opens as usual.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from desk import Desk, settings_for
from PySide6.QtWidgets import QApplication, QMessageBox
from test_app_flows import store  # noqa: F401 - fixtures

from bucket_chat_desktop import app as app_module
from bucket_chat_desktop import paths
from bucket_chat_desktop import settings as settings_store
from bucket_chat_desktop.crashes import LastRun
from bucket_chat_desktop.gui.main_window import MainWindow


def desktop_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        BUCKET_CHAT_HOME=str(home),
        BUCKET_CHAT_KEY_STORE="file",
        BUCKET_CHAT_PASSPHRASE="the desktop's passphrase",
    )
    env.pop("BUCKET_CHAT_STORAGE", None)
    return env


def start_desktop(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "bucket_chat_desktop", "-v", *args],
        env=desktop_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Stderr:
    """A process's stderr read on a thread, so waiting for a line has a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        stream = proc.stderr
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(x) for x in stream], daemon=True).start()

    def wait_for(self, text: str, limit: float = 60) -> str:
        deadline = time.monotonic() + limit
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} never came; stderr:\n{''.join(self.seen)}")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


def test_a_crashed_app_leaves_a_report_and_starts_next_in_safe_mode(
    tmp_path: Path,
    store: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "desktop-home"
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(home))
    settings_store.save(settings_for(store, ["falcon", "general"]))
    crash_dir = paths.crash_dir()

    first = start_desktop(home)
    try:
        # the app is up and opening the room, then the process dies natively
        line = Stderr(first).wait_for("started;")
        assert line.rstrip().endswith("/falcon")
        assert list(crash_dir.glob("running-*.json"))
        first.send_signal(signal.SIGSEGV)
        first.communicate(timeout=60)
        assert first.returncode == -signal.SIGSEGV
    finally:
        stop(first)
    reports = list(crash_dir.glob("crash-*.log"))
    assert len(reports) == 1
    assert "Fatal Python error: Segmentation fault" in reports[0].read_text()

    second = start_desktop(home)
    try:
        err = Stderr(second)
        assert "did not end cleanly" in err.wait_for("safe mode")
        assert err.wait_for("started;").rstrip().endswith("no room")
    finally:
        stop(second)

    # a start after a clean-looking run, asked for safe mode by hand
    for marker in crash_dir.glob("running-*.json"):
        marker.unlink()
    third = start_desktop(home, "--safe-mode")
    try:
        Stderr(third).wait_for("safe mode")
    finally:
        stop(third)


def test_safe_mode_opens_no_room_and_says_where_the_report_is(
    qtbot: Any,
    qloop: Any,
    home: Path,
    qapp: QApplication,
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = settings_for(store, ["falcon", "general"])
    assert settings.last_room.endswith("/falcon")
    report = paths.crash_dir() / "crash-20261203-221500-4242.log"
    report.parent.mkdir(parents=True)
    report.write_text("Bucket Chat crash report\nFatal Python error: Segmentation fault\n")
    task = asyncio.ensure_future(
        app_module.run(
            qapp, settings, start_minimized=False, last_run=LastRun(clean=False, report=report)
        )
    )

    def window() -> MainWindow | None:
        return next(
            (
                w
                for w in QApplication.topLevelWidgets()
                if isinstance(w, MainWindow) and w.controller.settings is settings
            ),
            None,
        )

    qtbot.waitUntil(lambda: window() is not None, timeout=15_000)
    win = window()
    assert win is not None
    desk = Desk(qtbot, settings, win, task)
    try:
        notice = win.findChild(QMessageBox, "safeModeNotice")
        assert notice is not None and notice.isVisible() and not notice.isModal()
        assert "did not close properly" in notice.text()
        assert str(report) in notice.text()
        # every room is read in the background, none is opened
        desk.wait_loaded("falcon")
        desk.wait_loaded("general")
        assert desk.controller.current == ""
        assert settings.last_room == ""
        assert win.timeline.model() is None or win.timeline.model().rowCount() == 0
        win.grab().save(str(tmp_path / "safe-mode.png"))
        notice.grab().save(str(tmp_path / "safe-mode-notice.png"))
        notice.accept()

        desk.select("falcon")  # the room list works as usual
        desk.wait_row("falcon", "Checking it now.")
        assert settings.last_room == desk.key("falcon")
    finally:
        assert desk.quit() == 0
        win.deleteLater()


def test_the_safe_mode_flag_is_offered() -> None:
    args = app_module.build_parser().parse_args(["--safe-mode"])
    assert args.safe_mode is True
