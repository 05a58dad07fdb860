"""One running app per config folder.

Red team rt71 (F5): two instances of the app for one user (nothing stopped a second one
from starting) each held the settings they loaded at start and wrote them whole
(``Controller.save_settings`` -> ``settings.save``): a room muted, joined or a storage
added in one was undone by the other's next save, at the latest when it quit. Now a
second start brings the running instance's window to the front and ends before it loads
(or saves) anything; a lock left by a crashed instance does not block a start, and two
config folders (``BUCKET_CHAT_HOME``) each have their own instance.

The real ``bucket-chat-desktop`` process, offscreen, is started as the user would."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from desk import settings_for
from PySide6.QtWidgets import QApplication, QWidget
from test_app_flows import store  # noqa: F401 - fixtures
from test_safe_mode import Stderr, start_desktop, stop

from bucket_chat_desktop import paths
from bucket_chat_desktop import settings as settings_store
from bucket_chat_desktop.gui import single_instance


def _second_start(home: Path) -> subprocess.CompletedProcess[str]:
    """Start the app again in ``home``, wait for that process to end on its own."""
    proc = start_desktop(home)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_second_start_raises_the_running_instance_and_changes_nothing(
    tmp_path: Path,
    store: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "desktop-home"
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(home))
    settings_store.save(settings_for(store, ["falcon", "general"]))
    first = start_desktop(home)
    try:
        first_err = Stderr(first)
        first_err.wait_for("started;")
        saved = paths.config_dir().joinpath("settings.json").read_bytes()
        markers = sorted(paths.crash_dir().glob("running-*.json"))

        second = _second_start(home)
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stderr, second.stderr
        assert "started;" not in second.stderr  # no second controller, no second window
        # the running instance was asked, and brought its window to the front
        first_err.wait_for("bringing the window to the front")
        assert first.poll() is None
        # the second start loaded and saved nothing, and left no crash marker of its own
        assert paths.config_dir().joinpath("settings.json").read_bytes() == saved
        assert sorted(paths.crash_dir().glob("running-*.json")) == markers
    finally:
        stop(first)


def test_a_second_start_shows_a_window_hidden_in_the_tray(
    qtbot: Any, qapp: QApplication, home: Path
) -> None:
    """This test process is the running instance (its window hidden, as in the tray); a
    real second start of the app shows it and ends."""
    instance = single_instance.claim(paths.config_dir())
    assert instance is not None
    window = QWidget()
    qtbot.addWidget(window)
    instance.window = window
    try:
        assert not window.isVisible()
        proc = start_desktop(home)
        try:
            qtbot.waitUntil(lambda: proc.poll() is not None, timeout=60_000)
            _, err = proc.communicate()
        finally:
            stop(proc)
        assert proc.returncode == 0, err
        assert window.isVisible(), err
    finally:
        instance.release()


def test_a_lock_left_by_a_crashed_instance_does_not_block_the_next_start(
    tmp_path: Path,
    store: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "desktop-home"
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(home))
    settings_store.save(settings_for(store, ["falcon"]))
    first = start_desktop(home)
    try:
        Stderr(first).wait_for("started;")
        assert (paths.config_dir() / single_instance.LOCK_NAME).exists()
        first.send_signal(signal.SIGKILL)  # no clean exit: the lock file stays behind
        first.communicate(timeout=60)
    finally:
        stop(first)
    assert (paths.config_dir() / single_instance.LOCK_NAME).exists()
    again = start_desktop(home)
    try:
        err = Stderr(again)
        err.wait_for("this is the running instance")
        err.wait_for("started;")
    finally:
        stop(again)


def test_each_config_folder_has_its_own_instance(
    tmp_path: Path,
    store: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two devices simulated on one machine (two ``BUCKET_CHAT_HOME`` folders) run at once."""
    procs = []
    try:
        for name in ("one", "two"):
            home = tmp_path / name
            monkeypatch.setenv("BUCKET_CHAT_HOME", str(home))
            settings_store.save(settings_for(store, ["falcon"]))
            procs.append(start_desktop(home))
        for proc in procs:
            Stderr(proc).wait_for("started;")
        assert all(proc.poll() is None for proc in procs)
    finally:
        for proc in procs:
            stop(proc)


def test_a_running_instance_that_does_not_answer_is_said_in_a_window(
    qtbot: Any, qapp: QApplication, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second start whose running instance holds the lock but never answers (hung)
    ended with a line on standard error only: started from a desktop menu, the user saw
    nothing happen. It now says so in a window too (and still ends, status 1)."""
    from PySide6.QtCore import QLockFile, QTimer
    from PySide6.QtWidgets import QMessageBox

    from bucket_chat_desktop import app

    paths.config_dir().mkdir(parents=True, exist_ok=True)
    hung = QLockFile(str(paths.config_dir() / single_instance.LOCK_NAME))
    assert hung.tryLock(0)  # held, and no server listens: it never answers
    monkeypatch.setattr(single_instance, "GIVE_UP_AFTER", 0.2)
    said: list[str] = []

    def answer_the_box() -> None:
        boxes = [w for w in qapp.topLevelWidgets() if isinstance(w, QMessageBox)]
        if not boxes or not boxes[0].isVisible():
            QTimer.singleShot(50, answer_the_box)
            return
        said.append(boxes[0].text())
        boxes[0].close()

    QTimer.singleShot(50, answer_the_box)
    try:
        assert app._claim_instance() == 1
    finally:
        hung.unlock()
    assert said and "already running" in said[0] and "does not answer" in said[0], said
