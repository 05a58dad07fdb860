"""The real ``bucket-chat-desktop`` process with a damaged settings file.

- One storage entry with ``"rooms": null`` (a sync tool's merge, a hand edit): the app
  exited 1 at start with a TypeError and a crash report, until the file was mended by
  hand. Now it starts, the other storage's room opens, and a notice names what was left
  out and where the file as it was is kept.
- A file that is not JSON: the app started from defaults with a log line only, and the
  first save replaced the file. Now the notice says so before the first-run wizard, and
  the file is kept as ``settings.json.broken-<date>-<time>``.

A driver in the subprocess reads the notice, saves a picture of it (``$SHOTS``), closes
it and quits the app as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from desk import settings_for
from test_app_flows import store  # noqa: F401 - fixtures
from test_safe_mode import desktop_env

from bucket_chat_desktop import settings as settings_store

SHOTS = Path(os.environ.get("BUCKET_CHAT_SHOTS", "/tmp/fix63b"))

DRIVER = r"""
import os, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

qapp = QApplication(sys.argv[:1])
from bucket_chat_desktop import app
from bucket_chat_desktop.gui.main_window import MainWindow
from bucket_chat_desktop.gui.setup.wizard import SetupWizard

shots = os.environ["SHOTS"]
seen = []

def shown(kind):
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, kind) and w.isVisible()]

def step():
    notices = [w for w in shown(QMessageBox) if w.objectName() == "settingsNotice"]
    if notices and not seen:
        box = notices[0]
        seen.append(box)
        print("NOTICE", box.windowTitle(), "|", box.text().replace("\n", " "), flush=True)
        print("MAIN WINDOW UP", bool(shown(MainWindow)), flush=True)
        box.grab().save(os.path.join(shots, os.environ["SHOT"]))
        box.accept()
    if seen and shown(MainWindow):
        window = shown(MainWindow)[0]
        print("ROOMS", sorted(window.controller.settings.room_keys()), flush=True)
        window.quit()
        return
    if seen and shown(SetupWizard):
        print("WIZARD", flush=True)
        shown(SetupWizard)[0].reject()
        return
    QTimer.singleShot(50, step)

QTimer.singleShot(0, step)
status = app.main(["-v"])
print("main returned", status, flush=True)
sys.exit(status)
"""


def _run(home: Path, shot: str) -> subprocess.CompletedProcess[str]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    env = desktop_env(home)
    env.update(SHOTS=str(SHOTS), SHOT=shot)
    try:
        return subprocess.run(
            [sys.executable, "-c", DRIVER],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=90,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the app did not finish; stdout:\n{exc.stdout!r}") from exc


def test_a_storage_entry_with_null_rooms_neither_stops_the_app_nor_goes_unsaid(
    tmp_path: Path,
    store: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    qtbot: Any,
) -> None:
    home = tmp_path / "desktop-home"
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(home))
    settings = settings_for(store, ["falcon"])
    document = settings.to_json()
    document["storages"].append(
        {"spec": str(tmp_path / "elsewhere"), "name": "Elsewhere", "rooms": None}
    )
    path = settings_store.settings_path()
    path.parent.mkdir(parents=True)
    original = json.dumps(document, indent=2)
    path.write_text(original, "utf-8")

    proc = _run(home, "settings-dropped.png")
    out = proc.stdout.splitlines()
    assert proc.returncode == 0 and out[-1] == "main returned 0", proc.stdout + proc.stderr
    notice = next(line for line in out if line.startswith("NOTICE"))
    assert "Part of your settings was left out" in notice
    assert "storage &quot;Elsewhere&quot;: rooms is null, not a list" in notice
    kept = sorted(path.parent.glob("settings.json.broken-*"))
    assert len(kept) == 1 and kept[0].read_text("utf-8") == original
    assert str(kept[0]) in notice
    assert "MAIN WINDOW UP True" in out
    assert f"ROOMS ['{settings.storages[0].id}/falcon']" in out
    assert "Traceback" not in proc.stderr


def test_a_settings_file_that_is_not_json_is_kept_aside_and_said_before_the_wizard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, qtbot: Any
) -> None:
    home = tmp_path / "desktop-home"
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(home))
    path = settings_store.settings_path()
    path.parent.mkdir(parents=True)
    original = json.dumps({"user_id": "alice@example.com", "storages": []}, indent=2) + "\n}"
    path.write_text(original, "utf-8")

    proc = _run(home, "settings-unreadable.png")
    out = proc.stdout.splitlines()
    assert out[-1] == "main returned 0", proc.stdout + proc.stderr
    notice = next(line for line in out if line.startswith("NOTICE"))
    assert "Your settings could not be read" in notice and "not valid JSON" in notice
    assert "WIZARD" in out  # after the notice, not instead of it
    kept = sorted(path.parent.glob("settings.json.broken-*"))
    assert len(kept) == 1 and kept[0].read_text("utf-8") == original
    assert str(kept[0]) in notice
