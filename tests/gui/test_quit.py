"""An application quit always quits, also with a tray and minimise-to-tray on.

The real ``bucket-chat-desktop`` runs as a subprocess with its own ``qasync`` loop (as it
does for a user), so ``run_until_complete`` is the real one. Offscreen there is no system
tray; the driver makes Qt report one (``isSystemTrayAvailable``) and the icon shown
(``isVisible``), which is all the close handler asks. Then, with the window up:

1. the window is closed as the close button does: it hides to the tray, the app stays;
2. ``QApplication.quit()`` is called twice (Cmd+Q and the macOS app menu's Quit, a logout,
   and the tray menu all arrive as this Quit event): the app must shut down in order and
   exit 0, with no "Event loop stopped before Future completed".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from desk import settings_for
from test_app_flows import store  # noqa: F401 - fixtures
from test_safe_mode import desktop_env

from bucket_chat_desktop import settings as settings_store

DRIVER = r"""
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

QSystemTrayIcon.isSystemTrayAvailable = staticmethod(lambda: True)
QSystemTrayIcon.isVisible = lambda self: True
qapp = QApplication(sys.argv[:1])

from bucket_chat_desktop import app
from bucket_chat_desktop.gui.main_window import MainWindow

def windows():
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]

def when_up():
    shown = [w for w in windows() if w.isVisible()]
    if not shown:
        QTimer.singleShot(50, when_up)
        return
    window = shown[0]
    print("tray:", window.tray is not None, window.controller.settings.minimize_to_tray, flush=True)
    window.close()
    print("after close: visible", window.isVisible(), "quitting", window.quitting, flush=True)
    QTimer.singleShot(200, quit_twice)

def quit_twice():
    QApplication.quit()
    QApplication.quit()
    print("quit sent", flush=True)

QTimer.singleShot(0, when_up)
status = app.main(["-v"])
print("main returned", status, flush=True)
sys.exit(status)
"""


def test_an_application_quit_exits_cleanly_with_minimise_to_tray_on(
    tmp_path: Path,
    store: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    qtbot: Any,
) -> None:
    home = tmp_path / "desktop-home"
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(home))
    settings = settings_for(store, ["falcon"])
    assert settings.minimize_to_tray  # the default
    settings_store.save(settings)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", DRIVER],
            env=desktop_env(home),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=90,  # a quit that is refused leaves the app running
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the app did not quit; stdout:\n{exc.stdout!r}") from exc
    out = proc.stdout.splitlines()
    assert out[:2] == ["tray: True True", "after close: visible False quitting False"], proc.stderr
    assert "quit sent" in out
    assert out[-1] == "main returned 0", proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "stopped before Future" not in proc.stderr
    assert "the application was asked to quit" in proc.stderr
