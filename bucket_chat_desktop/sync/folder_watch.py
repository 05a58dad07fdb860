"""The watch on a local storage's folder: which new segment files to read at once.

Why not watchdog's recursive watch on Linux (rt51): it walks the whole of ``rooms/``
with ``os.walk``, on the caller's thread when it starts and on its own thread whenever a
folder appears, and that walk

- follows a link at the top of a walk: a member who made a folder and swapped it for a
  link to ``/`` before the walk reached it had every folder of the disk watched (54,000
  watches, 291 MB). Its ``follow_symlink=False`` leaves alone links *below* the top of a
  walk only, and no option covers the top;
- recurses once per level (Python 3.11's ``os.walk``): a tree 1,400 folders deep raised
  RecursionError out of the engine's start, and no storage after it opened;
- enters every folder, junk as much as a day of history, and one on a mount that stopped
  answering for good: the window froze at every start.

So on Linux the app watches what it reads and nothing else: ``rooms/``, each
``rooms/<room>/``, its ``logs/`` and each day folder in it: four levels whatever lies
below, each name checked as the paths that are read are (a room id, ``logs``, a date).
Each folder is opened from its parent with ``O_NOFOLLOW`` and watched through that open
descriptor (``/proc/self/fd/N``): a link swapped in at any moment is refused by the
kernel, never walked, and the watch lands on the very folder that was checked.

Everything runs on one daemon thread of the watch's own: setting up (which may wait for
ever on a mount that does not answer) and reading the kernel's events. The caller hears
through callbacks, called on that thread, and never joins a thread that may be stuck.
Elsewhere (macOS's FSEvents and Windows' ReadDirectoryChangesW watch a tree themselves,
without walking it) watchdog's observer is used, started on such a thread too.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import select
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..osfiles import open_fd
from ..protocol.ids import is_day_folder, is_valid_room_id

log = logging.getLogger("bucket_chat.sync")

Named = Callable[[str], None]
"""Called with a segment file's path below the root (``rooms/<room>/logs/<day>/x.jsonl``)."""
Done = Callable[[BaseException | None], None]
"""``ready``: the watch is set up (None) or could not be (why). ``ended``: it stopped
reading (why) without being asked to."""

# inotify(7)
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_FROM = 0x00000040
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_DELETE_SELF = 0x00000400
_IN_MOVE_SELF = 0x00000800
_IN_Q_OVERFLOW = 0x00004000
_IN_IGNORED = 0x00008000
_IN_ONLYDIR = 0x01000000
_IN_ISDIR = 0x40000000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name, NUL-padded

_FOLDER_MASK = _IN_CREATE | _IN_MOVED_TO | _IN_MOVED_FROM | _IN_ONLYDIR
_DAY_MASK = _FOLDER_MASK | _IN_CLOSE_WRITE
_ROOMS_MASK = _FOLDER_MASK | _IN_MOVE_SELF | _IN_DELETE_SELF
_FILE_NEWS = _IN_CREATE | _IN_MOVED_TO | _IN_CLOSE_WRITE  # not a file moved away
DEPTH = 4
"""Folders watched below the root: ``rooms/``, ``<room>/``, ``logs/``, ``<day>/``."""

_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | _O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0) | _O_CLOEXEC


class NotWatchable(Exception):
    """Why the folder cannot be watched, in words for the person (``watch_problem``)."""


def _wanted(parts: tuple[str, ...], name: str) -> bool:
    """Whether the folder ``name`` in the watched folder ``parts`` is one segments are
    read from (or lead to): any other is never entered."""
    level = len(parts)
    if level == 1:
        return is_valid_room_id(name)
    if level == 2:
        return name == "logs"
    if level == 3:
        return is_day_folder(name)
    return False


class FolderWatch:
    """Watches a local storage's room folders (Linux: inotify) on a daemon thread of its
    own (see the module's docstring). ``named`` gets each segment file created, moved in
    or closed after writing in a day folder; ``ready`` is called once the watch is set
    up or could not be; ``ended`` if reading stopped without ``stop``. All on that thread."""

    def __init__(self, root: Path, named: Named, ready: Done, ended: Done) -> None:
        self.root = root
        self._named, self._ready, self._ended = named, ready, ended
        self._paths: dict[int, tuple[str, ...]] = {}  # watch descriptor -> folder's parts
        # and back, with each watched folder's watched sub-folders: a folder moved away
        # forgets its own watches only, by look-up (rt53: a scan of every watch for each
        # rename of any folder, 60,000 watches, cost 10 ms of CPU a rename)
        self._wd_of: dict[tuple[str, ...], int] = {}
        self._kids: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        self._inotify = -1
        self._libc: Any = None
        self._lock = threading.Lock()
        self._stopped = False
        self._wake_r = self._wake_w = -1  # made on the thread: a full table fails there
        self._full_told = False
        self._thread = threading.Thread(target=self._run, name="bc-folder-watch", daemon=True)
        # Monotonic time since when the thread sets up or handles a batch of events, None
        # while it waits for the kernel: one held there long (a new folder on a mount that
        # stopped answering) watches nothing meanwhile (``held``).
        self.busy_since: float | None = None

    @property
    def watches(self) -> int:
        """Folders watched now (tests, the log)."""
        return len(self._paths)

    def start(self) -> None:
        self.busy_since = time.monotonic()
        self._thread.start()

    def held(self, longer_than: float) -> bool:
        """Whether setting up, or handling what the kernel said, has taken longer than
        ``longer_than`` seconds so far (then the watch tells nothing: poll)."""
        since = self.busy_since
        return since is not None and time.monotonic() - since > longer_than

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop reading. Never waits: the thread may be held by a folder that does not
        answer; it closes what it opened if it ever comes back."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            if self._wake_w >= 0:
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, b"x")

    def join(self, timeout: float) -> None:
        """Wait for the thread at most ``timeout`` seconds (blocking: on a worker thread)."""
        self._thread.join(timeout)

    # -- on the watch's thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            try:
                self._set_up()
            except BaseException as exc:  # whatever it is, the folder is polled instead
                self._ready(exc)
                return
            self.busy_since = None
            if self._stopped:
                return
            self._ready(None)
            try:
                self._read()
            except BaseException as exc:  # told to the poller, which polls instead
                self._ended(exc)
        finally:
            self._close()

    def _set_up(self) -> None:
        if not os.path.isdir("/proc/self/fd"):
            raise NotWatchable("/proc is not mounted, so folders cannot be watched safely")
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        self._libc = libc
        fd = libc.inotify_init1(os.O_NONBLOCK | _O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self._inotify = fd
        wake = os.pipe()
        with self._lock:
            self._wake_r, self._wake_w = wake
        # Made if missing, as a write would: a storage added before anything was in it.
        self.root.mkdir(parents=True, exist_ok=True)
        root = open_fd(self.root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir("rooms", dir_fd=root)
            try:
                rooms = open_fd("rooms", _DIR_FLAGS, dir_fd=root)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise NotWatchable(
                        "its rooms folder is a link or a file; links are never followed"
                    ) from exc
                raise
        finally:
            os.close(root)
        self._walk(rooms, ("rooms",), report=False)

    def _walk(self, fd: int, parts: tuple[str, ...], *, report: bool) -> None:
        """Watch the folder open at ``fd`` (``parts`` below the root) and the folders the
        app reads below it; closes ``fd``. At most ``DEPTH`` calls deep, however deep
        the tree. ``report``: a day folder made or moved in after the watch started has
        its segment files named (written before its watch was added)."""
        try:
            if self._stopped or not self._watch(fd, parts):
                return
            if len(parts) == DEPTH:
                if report:
                    with os.scandir(fd) as entries:
                        found = [e.name for e in entries if not e.is_dir(follow_symlinks=False)]
                    for name in found:
                        if name.endswith(".jsonl"):
                            self._named("/".join((*parts, name)))
                return
            with os.scandir(fd) as entries:
                # d_type, no stat: a folder on a mount is entered only if the app reads it
                names = [
                    e.name
                    for e in entries
                    if e.is_dir(follow_symlinks=False) and _wanted(parts, e.name)
                ]
            for name in names:
                child = self._open(fd, name, parts)
                if child is not None:
                    self._walk(child, (*parts, name), report=report)
        finally:
            os.close(fd)

    def _open(self, fd: int, name: str, parts: tuple[str, ...]) -> int | None:
        """The folder ``name`` in the one open at ``fd``, never through a link; None when
        it is gone, a link or a file now (swapped since it was listed), or unreadable."""
        try:
            return open_fd(name, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            log.debug("not watching %s: %s", "/".join((*parts, name)), exc)
            return None

    def _watch(self, fd: int, parts: tuple[str, ...]) -> bool:
        """Add a watch on the folder open at ``fd``: through the descriptor, so the kernel
        watches the folder that was opened, not what its path names by now."""
        if len(parts) == 1:
            mask = _ROOMS_MASK
        else:
            mask = _DAY_MASK if len(parts) == DEPTH else _FOLDER_MASK
        wd = self._libc.inotify_add_watch(self._inotify, f"/proc/self/fd/{fd}".encode(), mask)
        if wd < 0:
            err = ctypes.get_errno()
            if len(parts) == 1:
                raise OSError(err, os.strerror(err))
            if err in (errno.ENOSPC, errno.ENOMEM) and not self._full_told:
                self._full_told = True  # once: every folder after it fails alike
                log.warning(
                    "%s is not watched (%s): the system's limit of watched folders "
                    "(fs.inotify.max_user_watches); its news comes from the listings",
                    "/".join(parts),
                    os.strerror(err),
                )
            return False
        self._paths[wd] = parts
        self._wd_of[parts] = wd
        self._kids.setdefault(parts[:-1], set()).add(parts)
        return True

    def _unlist(self, wd: int, parts: tuple[str, ...]) -> None:
        """``wd`` (the watch of ``parts``) is gone: out of the look-ups."""
        self._paths.pop(wd, None)
        if self._wd_of.get(parts) == wd:
            del self._wd_of[parts]
            kids = self._kids.get(parts[:-1])
            if kids is not None:
                kids.discard(parts)

    def _read(self) -> None:
        poll = select.poll()
        poll.register(self._inotify, select.POLLIN)
        poll.register(self._wake_r, select.POLLIN)
        while not self._stopped:
            poll.poll()
            if self._stopped:
                return
            try:
                data = os.read(self._inotify, 64 * 1024)
            except BlockingIOError:
                continue
            self.busy_since = time.monotonic()
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                name = os.fsdecode(data[offset : offset + length].rstrip(b"\0"))
                offset += length
                self._event(wd, mask, name)
            self.busy_since = None

    def _event(self, wd: int, mask: int, name: str) -> None:
        if mask & _IN_Q_OVERFLOW:
            # Changes were lost, folders made meanwhile among them: this watch no longer
            # knows what to watch (rt53: a day folder made then was never watched). It
            # ends; the folder is polled, and the person told why.
            raise NotWatchable("the system dropped changes, too many at once")
        parts = self._paths.get(wd)
        if parts is None:
            return
        if mask & _IN_IGNORED:  # its folder was removed (or moved away: ``_forget``)
            self._unlist(wd, parts)
            if len(parts) == 1:
                raise NotWatchable("its rooms folder was removed")
            return
        if mask & (_IN_MOVE_SELF | _IN_DELETE_SELF):  # only rooms/ asks for these
            raise NotWatchable("its rooms folder was moved or removed")
        if not name:
            return
        if mask & _IN_ISDIR:
            if mask & _IN_MOVED_FROM:
                self._forget((*parts, name))
            elif mask & (_IN_CREATE | _IN_MOVED_TO) and _wanted(parts, name):
                self._reach((*parts, name))
            return
        if mask & _FILE_NEWS and len(parts) == DEPTH and name.endswith(".jsonl"):
            self._named("/".join((*parts, name)))

    def _reach(self, parts: tuple[str, ...]) -> None:
        """Watch a folder made or moved in since: opened from the root down, each step
        without following a link (its parent may have been swapped meanwhile too)."""
        try:
            fd: int | None = open_fd(self.root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        except OSError as exc:
            log.debug("not watching %s: %s", "/".join(parts), exc)
            return
        for i, part in enumerate(parts):
            assert fd is not None
            child = self._open(fd, part, parts[:i])
            os.close(fd)
            if child is None:
                return
            fd = child
        assert fd is not None
        self._walk(fd, parts, report=True)

    def _forget(self, prefix: tuple[str, ...]) -> None:
        """A folder moved away: its watches and those below it go (moved back, or
        elsewhere inside, it is watched again from its new name). Nothing for a folder
        that was not watched (junk renamed back and forth)."""
        todo = [prefix] if prefix in self._wd_of else []
        while todo:
            parts = todo.pop()
            todo.extend(self._kids.pop(parts, ()))
            wd = self._wd_of.get(parts)
            if wd is not None:
                self._unlist(wd, parts)
                self._libc.inotify_rm_watch(self._inotify, wd)

    def _close(self) -> None:
        with self._lock:
            self._stopped = True
            for fd in (self._inotify, self._wake_r, self._wake_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._inotify = self._wake_r = self._wake_w = -1
            self._paths.clear()
            self._wd_of.clear()
            self._kids.clear()


class ObserverWatch:
    """Elsewhere than Linux: watchdog's observer on ``rooms/`` (FSEvents and
    ReadDirectoryChangesW watch a tree without walking it), started on a daemon thread,
    with ``FolderWatch``'s interface."""

    def __init__(self, root: Path, named: Named, ready: Done, ended: Done) -> None:
        self.root = root
        self._named, self._ready = named, ready
        self._lock = threading.Lock()
        self._stopped = False
        self._observer: Any = None
        self._thread = threading.Thread(target=self._run, name="bc-folder-watch", daemon=True)
        self.busy_since: float | None = None

    def start(self) -> None:
        self.busy_since = time.monotonic()
        self._thread.start()

    def held(self, longer_than: float) -> bool:
        since = self.busy_since
        return since is not None and time.monotonic() - since > longer_than

    def alive(self) -> bool:
        observer = self._observer
        return observer is not None and bool(observer.is_alive())

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            observer = self._observer
        if observer is not None:
            observer.stop()

    def join(self, timeout: float) -> None:
        observer = self._observer
        if observer is not None:
            observer.join(timeout)

    def _run(self) -> None:
        try:
            observer = self._start()
        except BaseException as exc:  # whatever it is, the folder is polled instead
            self._ready(exc)
            return
        with self._lock:
            stopped = self._stopped
            self._observer = None if stopped else observer
        if stopped:
            observer.stop()
            return
        self.busy_since = None
        self._ready(None)

    def _start(self) -> Any:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        root, named = self.root, self._named

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type not in ("created", "moved", "closed"):
                    return
                name = os.fsdecode(getattr(event, "dest_path", "") or event.src_path)
                if name.endswith(".jsonl"):
                    with contextlib.suppress(ValueError):
                        named(os.path.relpath(name, root).replace(os.sep, "/"))

        rooms = root / "rooms"
        with contextlib.suppress(OSError):  # a link or file there: checked just below
            rooms.mkdir(parents=True, exist_ok=True)
        if rooms.is_symlink() or not rooms.is_dir():
            raise NotWatchable("its rooms folder is a link or a file; links are never followed")
        observer = Observer()
        observer.daemon = True
        observer.schedule(Handler(), str(rooms), recursive=True)
        try:
            observer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                observer.stop()
            raise
        return observer


Watch = FolderWatch | ObserverWatch


def new_watch(root: Path, named: Named, ready: Done, ended: Done) -> Watch:
    """The watch for this platform, not started."""
    kind = FolderWatch if sys.platform.startswith("linux") else ObserverWatch
    return kind(root, named, ready, ended)
