"""One running app per config folder: a second start brings the first one's window to the
front and ends.

Two instances on one settings file undid each other's changes: each held the settings it
loaded at start and saved them whole, so a room muted, joined or a storage added in one
was silently lost at the other's next save, at the latest when it quit (red team rt71).

- Who is first: a ``QLockFile`` (``instance.lock`` in the config folder). A lock left by
  an instance that crashed or was killed is stale (its process is gone, which Qt checks)
  and is taken over: it never blocks a start.
- The first instance listens on a ``QLocalServer`` (``server_names``): a Unix socket in
  a folder only this user can use (``$XDG_RUNTIME_DIR``, else ``run/`` in the config
  folder, else a folder of the user's own in the temporary folder: each checked to be a
  real folder, the user's, mode 0700, before it is used); a named pipe restricted to the
  user on Windows. A later start connects, asks it to show its window (``show``) and
  exits once it answered (``ok``). An instance that is quitting answers ``quitting``:
  the new start waits for it to end, then starts itself. The socket was a predictable
  name in the shared ``/tmp``: another local user could make it first, the user's app
  could then not listen, and every later start was answered ``ok`` by that user's
  socket and ended with no window (red team rt76). A start asks no socket outside such
  a folder; an instance that cannot listen runs on (logged), and later starts then say
  that it does not answer.
- One instance per *config folder*, not per user: ``BUCKET_CHAT_HOME`` (several devices on
  one machine, the tests) gives each folder its own instance.

The command line (``bucket-chat``) is not an instance: it never writes the settings file,
and the per-storage files it shares with the app are guarded by their own locks.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import sys
import tempfile
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


SOCKET_PATH_LIMIT = 100
"""Bytes a Unix socket's path may have (``sun_path``: 108 on Linux, 104 on macOS)."""


def _tag(config_dir: Path) -> str:
    """The config folder's part of the server's name (the same for every spelling)."""
    try:
        where = str(config_dir.resolve())
    except OSError:
        where = str(config_dir.absolute())
    return "bucket-chat-" + hashlib.sha256(where.encode("utf-8")).hexdigest()[:24]


def _own_private_dir(folder: Path) -> bool:
    """Whether ``folder`` is a folder (not a link to one) of this user's, which no one
    else may enter or write (mode 0700 or stricter)."""
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and not info.st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    )


def server_names(config_dir: Path) -> list[str]:
    """Where the config folder's instance listens, best first: full socket paths in
    folders only this user can use and short enough for a socket (at most
    `SOCKET_PATH_LIMIT` bytes; a long config path falls back to the next), or, on
    Windows, a pipe name (the server restricts the pipe to the user). Empty: nowhere
    trusted (the instance runs without a server)."""
    tag = _tag(config_dir)
    if sys.platform == "win32":
        return [tag]
    found: list[Path] = []
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime) and _own_private_dir(Path(runtime)):
        found.append(Path(runtime, tag))
    run = config_dir / "run"
    with contextlib.suppress(OSError):  # never through a link: checked below
        run.mkdir(mode=0o700)
    if _own_private_dir(run):
        found.append(run / "instance.sock")
    mine = Path(tempfile.gettempdir(), f"bucket-chat-{os.geteuid()}")
    with contextlib.suppress(OSError):  # there already (checked below), or cannot be
        mine.mkdir(mode=0o700)
    if _own_private_dir(mine):
        found.append(mine / tag)
    return [str(p) for p in found if len(os.fsencode(p)) <= SOCKET_PATH_LIMIT]


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
        if sys.platform == "win32":  # elsewhere the socket's folder is the user's own
            self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._on_connection)
        if not name:
            log.warning(
                "no folder of this user's own to listen in for later starts (tried "
                "$XDG_RUNTIME_DIR, the config folder and the temporary folder): they "
                "will say this instance does not answer"
            )
        elif not self._server.listen(name):
            # the lock says no instance is running: a socket of that name is left over
            QLocalServer.removeServer(name)
            if not self._server.listen(name):
                log.warning(
                    "cannot listen for later starts at %s (%s): they will say this "
                    "instance does not answer",
                    name,
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
    names = server_names(config_dir)
    name = names[0] if names else ""
    deadline = time.monotonic() + GIVE_UP_AFTER
    said = ""
    while True:
        if lock.tryLock(0):
            return Instance(lock, name)
        answer = next((a for a in map(_ask_to_show, names) if a), "")
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
