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

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from desk import settings_for
from PySide6.QtCore import QDir
from PySide6.QtNetwork import QLocalServer
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


# -- the local server's socket, out of other users' reach (red team rt76) ------------------

_SQUATTER = """
import os, socket, sys
where = sys.argv[1]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(where)
os.chmod(where, 0o777)
srv.listen(4)
print("listening", flush=True)
while True:
    conn, _ = srv.accept()
    with conn:
        got = conn.recv(64)
        conn.sendall(b"ok\\n")
        print("asked", got, flush=True)
"""


def _public_name(config: Path) -> Path:
    """Where the socket was before rt76: a name anyone could predict, in the shared
    temporary folder."""
    return Path(QDir.tempPath(), single_instance._tag(config))


def _squat(where: Path) -> subprocess.Popen[str]:
    """Another user's socket at ``where``, answering every request "ok" (a process of
    its own: the asking start blocks this one's threads)."""
    where.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SQUATTER, str(where)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
    return proc


def _asked(squatter: subprocess.Popen[str], where: Path) -> str:
    squatter.kill()
    out, _ = squatter.communicate()
    where.unlink(missing_ok=True)
    return out


needs_unix_sockets = pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets")


@needs_unix_sockets
def test_a_start_never_believes_a_socket_it_cannot_trust(
    qtbot: Any, qapp: QApplication, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt76: the running instance's socket was ``bucket-chat-<hash>`` in the
    shared ``/tmp``, a name anyone could predict; another local user made it first. The
    user's instance could not listen (it cannot remove another user's file from the
    sticky ``/tmp``: emulated, the test runs as one user), and every later start was
    answered "ok" by the other user's socket and ended with status 0, no window. A start
    now asks only sockets in folders of the user's own: with the instance not listening
    it says that the instance does not answer (a window, in the app), and the running
    instance itself still started."""
    config = paths.config_dir()
    where = _public_name(config)
    squatter = _squat(where)
    monkeypatch.setattr(QLocalServer, "removeServer", staticmethod(lambda _name: False))
    monkeypatch.setattr(QLocalServer, "listen", lambda self, _name: False)
    monkeypatch.setattr(single_instance, "GIVE_UP_AFTER", 0.2)
    instance = single_instance.claim(config)
    assert instance is not None and not instance.listening  # the app starts all the same
    window = QWidget()
    qtbot.addWidget(window)
    instance.window = window
    try:
        with pytest.raises(single_instance.AlreadyRunning):
            single_instance.claim(config)  # the user starts the app again
    finally:
        instance.release()
        asked = _asked(squatter, where)
    assert "asked" not in asked


_ANOTHER_START = """
import sys
from pathlib import Path
from PySide6.QtWidgets import QApplication
from bucket_chat_desktop.gui import single_instance
app = QApplication([])
print("ended" if single_instance.claim(Path(sys.argv[1])) is None else "instance", flush=True)
"""


def _another_start(qtbot: Any, config: Path) -> str:
    """A start of the app in another process (this one's instance answers meanwhile):
    "ended" when the running instance answered it."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _ANOTHER_START, str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(single_instance.__file__).parents[2],
    )
    try:
        qtbot.waitUntil(lambda: proc.poll() is not None, timeout=60_000)
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return out.strip()


@needs_unix_sockets
def test_the_running_instance_listens_where_no_other_user_can(
    qtbot: Any, qapp: QApplication, home: Path
) -> None:
    """Red team rt76: with another user's socket at the old public name, the running
    instance listens in a folder of the user's own, and a later start is answered by it
    (the window shown), never by the other socket."""
    config = paths.config_dir()
    where = _public_name(config)
    squatter = _squat(where)
    instance = single_instance.claim(config)
    assert instance is not None and instance.listening
    assert single_instance._own_private_dir(Path(instance.name).parent)
    window = QWidget()
    qtbot.addWidget(window)
    instance.window = window
    try:
        assert not window.isVisible()
        assert _another_start(qtbot, config) == "ended"
        assert window.isVisible()
    finally:
        instance.release()
        asked = _asked(squatter, where)
    assert "asked" not in asked


@needs_unix_sockets
def test_the_socket_folder_is_the_users_own_and_a_long_config_path_falls_back(
    qtbot: Any, qapp: QApplication, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runtime folder others may enter, or a link, and a temporary folder of that name
    made by someone else (here: open to all) are never used; a config folder too deep
    for a socket's ~100-byte path falls back to the user's own folder in the temporary
    folder, and a later start finds the instance there."""
    loose = tmp_path / "runtime"
    loose.mkdir()
    loose.chmod(0o755)
    (tmp_path / "link").symlink_to(loose, target_is_directory=True)
    shared_tmp = Path(tempfile.mkdtemp(prefix="bc-"))  # short: tmp_path is long already
    try:
        taken = shared_tmp / f"bucket-chat-{os.geteuid()}"
        taken.mkdir()
        taken.chmod(0o777)  # made by another user for the user: not trusted
        monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
        monkeypatch.setenv("TMPDIR", str(shared_tmp))  # for the other start
        config = tmp_path / ("deep-" * 20) / "config"
        for runtime in (loose, tmp_path / "link"):
            monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
            assert single_instance.server_names(config) == []
        taken.rmdir()
        names = single_instance.server_names(config)
        assert names == [str(taken / single_instance._tag(config))]
        assert single_instance._own_private_dir(taken)
        instance = single_instance.claim(config)
        assert instance is not None and instance.listening and instance.name == names[0]
        window = QWidget()
        qtbot.addWidget(window)
        instance.window = window
        try:
            assert _another_start(qtbot, config) == "ended"
            assert window.isVisible()
        finally:
            instance.release()
        private = shared_tmp / "run"  # a runtime folder that is the user's own
        private.mkdir(mode=0o700)
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(private))
        tag = single_instance._tag(config)
        assert single_instance.server_names(config)[0] == str(private / tag)
    finally:
        shutil.rmtree(shared_tmp, ignore_errors=True)
