"""One running app per config folder: a second start brings the first one's window to the
front and ends.

Two instances on one settings file undid each other's changes: each held the settings it
loaded at start and saved them whole, so a room muted, joined or a storage added in one
was silently lost at the other's next save, at the latest when it quit (red team rt71).

- Who is first: a ``QLockFile`` (``instance.lock`` in the config folder). A lock left by
  an instance that crashed or was killed is stale (its process is gone, which Qt checks)
  and is taken over: it never blocks a start.
- The first instance listens on a ``QLocalServer`` whose name is made from its config
  folder (a Unix socket in the temporary folder, readable by this user only; a named
  pipe on Windows). A later start connects, asks it to show its window (``show``) and
  exits once it answered (``ok``). An instance that is quitting answers ``quitting``:
  the new start waits for it to end, then starts itself.
- One instance per *config folder*, not per user: ``BUCKET_CHAT_HOME`` (several devices on
  one machine, the tests) gives each folder its own instance.

The command line (``bucket-chat``) is not an instance: it never writes the settings file,
and the per-storage files it shares with the app are guarded by their own locks.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication, QWidget

from ..osfiles import ensure_private_dir

log = logging.getLogger("bucket_chat.app")

LOCK_NAME = "instance.lock"
ANSWER_WAIT_MS = 5000  # how long a new start waits for the running one to answer
GIVE_UP_AFTER = 20.0  # seconds a new start keeps trying (a quitting instance ending)
RETRY_PAUSE_MS = 100


def server_name(config_dir: Path) -> str:
    """The local server's name for ``config_dir`` (short: a Unix socket path is limited
    to about 100 bytes; the same for every spelling of the folder)."""
    try:
        where = str(config_dir.resolve())
    except OSError:
        where = str(config_dir.absolute())
    return "bucket-chat-" + hashlib.sha256(where.encode("utf-8")).hexdigest()[:24]


class AlreadyRunning(Exception):
    """Another instance holds the config folder and did not answer."""


class Instance(QObject):
    """This process is the config folder's instance: it holds the lock and answers later
    starts. ``window`` (once there is one) is what they bring to the front; before that,
    whatever top-level window is shown (the first-run wizard, a passphrase dialog)."""

    def __init__(self, lock: QLockFile, name: str) -> None:
        super().__init__()
        self._lock = lock
        self.name = name
        self.window: QWidget | None = None
        self.quitting: Callable[[], bool] = lambda: False
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._on_connection)
        if not self._server.listen(name):
            # the lock says no instance is running: a socket of that name is left over
            QLocalServer.removeServer(name)
            if not self._server.listen(name):
                log.warning(
                    "cannot listen for later starts (%s): they will say this instance "
                    "does not answer",
                    self._server.errorString(),
                )
        log.info("this is the running instance for its config folder (%s)", name)

    @property
    def listening(self) -> bool:
        return self._server.isListening()

    def _on_connection(self) -> None:
        while (sock := self._server.nextPendingConnection()) is not None:
            sock.readyRead.connect(lambda s=sock: self._on_request(s))
            sock.disconnected.connect(sock.deleteLater)
            if sock.bytesAvailable():
                self._on_request(sock)

    def _on_request(self, sock: QLocalSocket) -> None:
        if not sock.canReadLine():
            if sock.bytesAvailable() > 64:  # not one of ours
                sock.abort()
            return
        request = bytes(sock.readLine().data()).strip()
        if request != b"show":
            sock.abort()
            return
        if self.quitting():
            sock.write(b"quitting\n")
        else:
            log.info("another start of the app: bringing the window to the front")
            self.activate()
            sock.write(b"ok\n")
        sock.flush()
        sock.disconnectFromServer()

    def activate(self) -> None:
        window = self.window
        targets = (
            [window]
            if window is not None
            else [w for w in QApplication.topLevelWidgets() if w.isVisible()]
        )
        for widget in targets:
            if widget.isMinimized() or not widget.isVisible():
                widget.showNormal()
            widget.raise_()
            widget.activateWindow()

    def release(self) -> None:
        self._server.close()
        self._lock.unlock()


def claim(config_dir: Path) -> Instance | None:
    """Become the config folder's instance (returned), or have the running one show its
    window (None: this start should end). Raises `AlreadyRunning` when another instance
    holds the folder and does not answer within `GIVE_UP_AFTER` seconds."""
    ensure_private_dir(config_dir)
    lock = QLockFile(str(config_dir / LOCK_NAME))
    lock.setStaleLockTime(0)  # stale only when its process is gone, however long it ran
    name = server_name(config_dir)
    deadline = time.monotonic() + GIVE_UP_AFTER
    said = ""
    while True:
        if lock.tryLock(0):
            return Instance(lock, name)
        answer = _ask_to_show(name)
        if answer == "ok":
            log.info(
                "Bucket Chat is already running for %s: brought its window to the front", config_dir
            )
            return None
        if answer != said:
            said = answer
            log.info("the running instance for %s: %s", config_dir, answer or "no answer")
        if time.monotonic() >= deadline:
            info = lock.getLockInfo()  # (pid, host, app name); empty when unreadable
            pid = info[0] if isinstance(info, tuple) and info else "?"
            raise AlreadyRunning(
                f"Bucket Chat is already running for {config_dir} (process {pid}) but does "
                "not answer. If it hangs, end that process and start again."
            )
        lock.tryLock(RETRY_PAUSE_MS)  # a pause that ends early when the lock is let go
        if lock.isLocked():
            return Instance(lock, name)


def _ask_to_show(name: str) -> str:
    """Ask the instance listening on ``name`` to show its window: its answer ("ok",
    "quitting"), or "" when nobody answered."""
    sock = QLocalSocket()
    try:
        sock.connectToServer(name)
        if not sock.waitForConnected(ANSWER_WAIT_MS):
            return ""
        sock.write(b"show\n")
        if not sock.waitForBytesWritten(ANSWER_WAIT_MS):
            return ""
        while not sock.canReadLine():
            if not sock.waitForReadyRead(ANSWER_WAIT_MS):
                return ""
        return bytes(sock.readLine().data()).decode("ascii", "replace").strip()
    finally:
        sock.abort()
