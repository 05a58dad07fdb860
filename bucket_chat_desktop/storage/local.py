"""A storage root on a local or synced folder (a network share, Dropbox, Syncthing).

Create-only writes go through a temp file in the same folder that is published with a
hard link (no-clobber by the OS), so readers never see half an object even if the writer
is killed mid-write. Blocking file calls run in a worker thread.

Anyone who can write to the folder may be hostile, so below the root nothing is taken on
trust:

- Every folder on the way to an object is opened one component at a time without
  following links (``O_NOFOLLOW | O_DIRECTORY`` relative to its parent's descriptor where
  the OS has ``*at`` calls; an ``lstat`` check of each component elsewhere). A symbolic
  link (or Windows junction) below the root raises ``NotRegularFileError`` naming it, so
  nothing is read from or written to outside the storage. The root itself may be a link:
  the user chose it.
- Reads open the object with ``O_NOFOLLOW | O_NONBLOCK``, check with ``fstat`` that it
  is a regular file (a FIFO would block for ever, a device could be endless) and read at
  most the caller's cap plus one byte.
- Listings never descend into linked folders; links, FIFOs, sockets and devices are
  listed with ``ObjectInfo.special`` set so that callers report them.

A folder may sit on a share or mount that stops answering (an sshfs or SMB mount, or a
member's own FUSE mount inside the shared folder): a call into it then blocks its thread
until the mount comes back, which may be never. Every call runs on the storage's own
daemon threads (``_Workers``) within a deadline, past which it is "no answer" like a
cloud storage's; a thread stuck in such a call is left behind, never waited for, so a
command still ends (Python waits at exit for every thread of ``asyncio.to_thread``'s
pool: red team rt51's ``verify`` never ended, nor after Ctrl-C).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import logging
import os
import queue
import secrets
import stat
import sys
import threading
import time
import unicodedata
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from ..osfiles import fsync_dir, kind_of, open_fd, read_capped, reparse_tag
from .base import (
    DEFAULT_MAX_READ,
    TAKEN_BUT_MISSING_TRIES,
    AlreadyExistsError,
    Level,
    NotRegularFileError,
    ObjectInfo,
    ObjectTooLargeError,
    Storage,
    StorageError,
    StorageFullError,
    StorageNotFoundError,
    StorageOfflineError,
    check_object_path,
    level_first,
    level_of,
    shown_object_name,
    taken_but_missing,
    utf8_text,
)

log = logging.getLogger("bucket_chat.storage")

# EINVAL: what Windows reports for FAT/exFAT volumes and many network shares.
_NO_LINK = {
    errno.EPERM,
    errno.ENOTSUP,
    errno.EOPNOTSUPP,
    errno.EXDEV,
    errno.EMLINK,
    errno.ENOSYS,
    errno.EINVAL,
}
TEMP_PREFIX = ".bc-tmp-"
PROBE_PREFIX = ".bucket-chat-probe/"

MAX_LIST_DEPTH = 12
"""Listings do not descend further (objects sit at most 4 folders deep): a hostile
nesting of thousands of folders is reported as one entry, not walked."""
READ_TIMEOUT = 120.0
"""Seconds a single local call (a read, a listing, a check) may take, and a write besides
the time its bytes take at ``WRITE_BYTES_PER_S``: a hung network share must not hang the
app."""
WRITE_BYTES_PER_S = 64 * 1024
"""The slowest share a write is given time for (as a cloud write's deadline assumes)."""
WORKERS = 8
"""Threads for one local storage's file calls: calls stuck on a hung mount hold at most
these; the next calls wait their turn within their own deadline. Each storage has its
own (rt53: one set for every folder, filled by one room's hung mount, left every other
storage's reads and its outbox's writes without an answer until the app restarted)."""

HUNG_HINT = "is the folder on a network share or a mount that stopped answering?"

MAX_ABANDONED = 32
"""Threads of one local storage stuck in calls it gave up on that are replaced by new
ones (``_Workers.abandon``); past this, stuck threads take the places of working ones."""

IDLE_SECONDS = 30.0
"""A storage's thread with nothing to do for this long ends (a storage opened for one
command leaves none behind)."""

T = TypeVar("T")


class _Workers:
    """A few daemon threads that run file calls: ``asyncio.to_thread``'s threads are
    waited for when Python exits, so one call stuck on a hung mount kept a command from
    ending for ever. A thread here is started when a call finds none idle (up to
    ``size``) and ends once idle for ``IDLE_SECONDS``."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._jobs: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]]]
        self._forked()

    def _forked(self) -> None:
        """A new start, also in a forked child: it has none of its parent's threads, and
        counting them as idle left its calls waiting for ever."""
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()
        # calls given up on while a thread is still stuck in them, by their key
        # (``LocalStorage._within``): the call and when it began
        self.stuck: dict[tuple[str, str], tuple[concurrent.futures.Future[Any], float]] = {}
        # the calls whose threads were let go (``abandon``): not counted in ``size``
        self._abandoned: set[concurrent.futures.Future[Any]] = set()
        self._threads = 0
        self._idle = 0

    def submit(self, call: Callable[[], T]) -> concurrent.futures.Future[T]:
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((done, call))
        with self._lock:
            start = self._idle == 0 and self._threads < self._size
            if start:
                self._threads += 1
        if start:
            # not "bc-…": no engine's (they serve every folder and outlive each, as
            # asyncio's own pool's threads do)
            name = f"local-folder-{self._threads}"
            threading.Thread(target=self._work, name=name, daemon=True).start()
        return done

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            try:
                job = self._jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    self._idle -= 1
                    if self._jobs.empty():  # else a call came as it timed out: take it
                        self._threads -= 1
                        return
                continue
            with self._lock:
                self._idle -= 1
            self._run(*job)
            with self._lock:
                let_go = job[0] in self._abandoned
                self._abandoned.discard(job[0])
            # Nothing of the job stays referenced by this thread while it waits: its
            # future's callbacks hold the caller's event loop (in the app, Qt's). Held
            # until the thread ended, 30 s later, they became garbage then and were
            # collected on whichever thread ran the collector next, where a Qt object
            # cannot be destroyed: a crash in a later test ("Timers cannot be stopped
            # from another thread", ``gui/collector.py``).
            del job
            if let_go:
                return  # another thread took its place meanwhile

    def abandon(self, running: concurrent.futures.Future[Any]) -> None:
        """``running`` is stuck (its caller gave up on it): its thread no longer counts
        in ``size``, so the next call may start another in its place, up to
        ``MAX_ABANDONED`` at a time; it ends once the call returns, if it ever does."""
        with self._lock:
            if running.done() or len(self._abandoned) >= MAX_ABANDONED:
                return  # its thread is coming back; or too many let go already
            self._abandoned.add(running)
            self._threads -= 1

    @staticmethod
    def _run(done: concurrent.futures.Future[Any], call: Callable[[], Any]) -> None:
        if not done.set_running_or_notify_cancel():
            return  # given up on before it began (its deadline passed)
        try:
            done.set_result(call())
        except BaseException as exc:  # handed to the caller, as a thread pool does
            done.set_exception(exc)


Key = tuple[str, str]
"""Which calls wait on a stuck one (``LocalStorage._within``): ("into", folder) for calls
on objects, ("walk" or "level", prefix) for listings."""


def _into(path: str) -> Key:
    """The key of a call on the object ``path``: its folder. Objects are named by a
    moment (activity markers) or chosen by a member: calls into one folder wait on its
    first stuck one, whatever the name ("" for the storage's own folder)."""
    return ("into", path.rpartition("/")[0])


def _listing(kind: str, prefix: str) -> Key:
    """The key of a listing: the listing itself. A listing reads every entry's details,
    so a mount among them holds it where a write beside the mount goes through (red team
    rt58: keyed by folder, a stuck listing of a day refused every message into it)."""
    return (kind, prefix)


_EVERY_WORKERS: weakref.WeakSet[_Workers] = weakref.WeakSet()


def _forked() -> None:
    for workers in list(_EVERY_WORKERS):
        workers._forked()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forked)
WRITE_SETTLE = 2.0
"""Seconds after a file's last change within which its writer may still be at it
(``written_lately``): a segment is written in one go, in milliseconds."""

_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_NOCTTY = getattr(os, "O_NOCTTY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Descriptor-relative calls make the "no links below the root" check race-free.
_AT_CALLS = (
    bool(_O_NOFOLLOW and _O_DIRECTORY)
    and {
        os.open,
        os.mkdir,
        os.link,
        os.unlink,
        os.stat,
        os.rmdir,
    }
    <= os.supports_dir_fd
)

Folder = int | Path
"""An opened folder: a descriptor (POSIX, race-free) or a checked path (elsewhere)."""


def folder_identity(root: str | os.PathLike[str]) -> str:
    """One folder, one name: ``root`` with links and ``..`` resolved (``realpath``; a part
    that does not exist yet is kept as written), and its case folded where the file system
    ignores case (Windows always; elsewhere when the volume does: ``_ignores_case``). The
    same folder written as ``store``, ``link-to-store``, ``../x/store`` or ``STORE`` has
    one identity (``Storage.identity``).

    Every macOS volume ignores how a name's accents are encoded, whatever its case mode,
    and so do most others that ignore case outside Windows (ext4 ``casefold``): ``Café``
    typed (NFC, one code point for the ``é``) and the same folder picked in a file
    dialog or made by the Finder (NFD, ``e`` and a combining accent) are one folder, and
    had two identities, two outboxes, and the device forked its own chain (red team
    rt93). There the path is NFC-normalised as well (``realpath`` keeps the form as
    written). NTFS keeps the two forms apart, and so does a Linux folder that minds
    case: two folders, two storages. A FAT drive or an NTFS share seen from Linux or a
    Mac ignores case but not the form; two folders there whose names differ only in
    how an accent is encoded would share one identity (nothing makes such a pair but a
    program that means to)."""
    real = os.path.realpath(Path(root).expanduser())
    if os.name == "nt":
        return os.path.normcase(real)
    if _ignores_case(real):
        return unicodedata.normalize("NFC", real).lower()
    if sys.platform == "darwin":
        return unicodedata.normalize("NFC", real)
    return real


_IGNORES_CASE: dict[tuple[str, int], bool] = {}
"""``_ignores_case``'s answers, per folder probed and its volume (``st_dev``)."""


def _ignores_case(path: str) -> bool:
    """Whether the volume of ``path`` (its nearest existing folder) ignores case: the
    same folder is found under the name with its case changed. Asked of the disk on
    every system, not decided by the platform: on Linux an SMB/CIFS share, a FAT/exFAT
    drive or an ext4 ``casefold`` folder ignores case too, and ``/mnt/share/Chat`` and
    ``/mnt/share/chat`` were two identities, two outboxes, and a fork of this device's
    own chain (red team rt76). Cached per folder (a storage is opened often)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    while probe != probe.parent and probe.name.lower() == probe.name.upper():
        probe = probe.parent  # a name with no letters says nothing
    other = probe.with_name(probe.name.swapcase()) if probe != probe.parent else probe
    if other == probe:
        return False
    try:
        key = (str(probe), os.stat(probe).st_dev)
    except OSError:
        return False
    known = _IGNORES_CASE.get(key)
    if known is not None:
        return known
    try:
        found = os.path.samefile(probe, other)
    except OSError:
        found = False
    _IGNORES_CASE[key] = found
    return found


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = str(self.root)
        self._identity = folder_identity(self.root)
        self._workers = _Workers(WORKERS)
        _EVERY_WORKERS.add(self._workers)

    @property
    def identity(self) -> str:
        """The folder resolved (``folder_identity``), as when this storage was opened."""
        return self._identity

    async def _within(self, call: Callable[[], T], what: str, key: Key, extra: float = 0.0) -> T:
        """``call`` on the folder's threads, within ``READ_TIMEOUT`` (and ``extra``
        seconds): else "no answer", a passing failure, as for a cloud storage that does
        not answer. ``what`` says what the call does (for the message); ``key`` which
        calls wait on it once it is stuck (``_into``: any into the same folder;
        ``_listing``: the same listing): while it is, they are not started (``_hung``)."""
        stuck = self._workers.stuck.get(key)
        if stuck is not None:
            kind, where = key
            if kind != "into":
                earlier = "the same listing"
            elif not where:
                earlier = "a call into the storage's folder"
            else:
                earlier = f"a call into {where}/"
            raise StorageOfflineError(
                f"{what}: no answer ({earlier}, made {time.monotonic() - stuck[1]:.0f} s "
                f"ago, has had none yet; {HUNG_HINT})"
            )
        seconds = READ_TIMEOUT + extra
        running = self._workers.submit(call)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(running), seconds)
        except TimeoutError as exc:
            if running.running():  # begun and stuck: else it never began (cancelled)
                self._hung(key, running, time.monotonic() - seconds)
            raise StorageOfflineError(
                f"{what}: no answer within {seconds:.0f} s ({HUNG_HINT})"
            ) from exc

    def _hung(self, key: Key, running: concurrent.futures.Future[Any], since: float) -> None:
        """Keep the calls of ``key`` from taking another thread until ``running`` ends,
        and let its thread go (another may start in its place). Each round of polling
        into a hung mount left one more thread stuck on the same listing; and a write
        named by its moment (an activity marker, tried again under a new name) is never
        the same call twice (rt56): once all ``WORKERS`` were stuck, every room of the
        storage had "no answer" until the app restarted (rt53)."""
        entry, stuck = (running, since), self._workers.stuck
        stuck[key] = entry
        self._workers.abandon(running)

        def ended(_: concurrent.futures.Future[Any]) -> None:  # on the thread, once unstuck
            if stuck.get(key) is entry:
                del stuck[key]

        running.add_done_callback(ended)

    def _fs_path(self, path: str) -> Path:
        return self.root.joinpath(*check_object_path(path).split("/"))

    # -- safe folder walking -------------------------------------------------------------------

    def _refuse(self, rel: str, kind: str, doing: str) -> NotRegularFileError:
        if kind == "file" and doing == "cannot write":
            # said with what it takes (red team rt57: one file planted where a day's
            # folder must be refused every message dated that day, for good)
            message = (
                f"cannot create folder {self.root / rel}: a file has that name (put there "
                "by someone who can write to the folder?); nothing can be written there "
                "until that file is moved away"
            )
        elif kind == "file":
            message = f"{doing} under {self.root / rel}: {rel} is a file, not a folder"
        else:
            message = (
                f"{doing} under {self.root / rel}: {rel} is a {kind}, not a folder; links "
                "and special files inside the storage are never followed"
            )
        return NotRegularFileError(message, path=rel, kind=kind)

    def _lstat_in(self, folder: Folder, name: str) -> os.stat_result:
        if isinstance(folder, int):
            return os.stat(name, dir_fd=folder, follow_symlinks=False)
        return os.lstat(folder / name)

    @contextmanager
    def _folder(self, parts: list[str], *, create: bool, doing: str) -> Iterator[Folder | None]:
        """The folder ``root/parts...`` opened without following links below the root.

        Yields None when it does not exist (and ``create`` is false). Raises
        ``NotRegularFileError`` when a component is a link or not a folder.
        """
        folder: Folder
        if _AT_CALLS:
            try:
                fd = open_fd(self.root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
            except FileNotFoundError:
                if not create:
                    yield None
                    return
                self.root.mkdir(parents=True, exist_ok=True)
                fd = open_fd(self.root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
            try:
                for i, part in enumerate(parts):
                    child = self._step(fd, part, parts[: i + 1], create=create, doing=doing)
                    if child is None:
                        yield None
                        return
                    os.close(fd)
                    fd = child
                yield fd
            finally:
                os.close(fd)
            return
        folder = self.root
        if not folder.is_dir():
            if not create:
                yield None
                return
            folder.mkdir(parents=True, exist_ok=True)
        for i, part in enumerate(parts):
            rel = "/".join(parts[: i + 1])
            try:
                st = os.lstat(folder / part)
            except FileNotFoundError:
                if not create:
                    yield None
                    return
                with suppress(FileExistsError):
                    os.mkdir(folder / part)
                st = os.lstat(folder / part)
            kind = kind_of(st.st_mode, reparse_tag(st))
            if kind is not None or not stat.S_ISDIR(st.st_mode):
                raise self._refuse(rel, kind or "file", doing)
            folder = folder / part
        yield folder

    def _step(self, fd: int, part: str, done: list[str], *, create: bool, doing: str) -> int | None:
        flags = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
        for _ in range(2):
            try:
                return open_fd(part, flags, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    return None
                with suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise
                try:
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # vanished between the two calls: try once more
                raise self._refuse("/".join(done), kind_of(st.st_mode) or "file", doing) from exc
        return open_fd(part, flags, dir_fd=fd)

    @staticmethod
    def _open_in(folder: Folder, name: str, flags: int, mode: int = 0o644) -> int:
        if isinstance(folder, int):
            return open_fd(name, flags | _O_CLOEXEC, mode, dir_fd=folder)
        return open_fd(folder / name, flags, mode)

    @staticmethod
    def _unlink_in(folder: Folder, name: str) -> None:
        if isinstance(folder, int):
            os.unlink(name, dir_fd=folder)
        else:
            os.unlink(folder / name)

    # -- writing -----------------------------------------------------------------------------

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        return await self._within(
            lambda: self._put_if_absent(path, data),
            f"cannot write {self._fs_path(path)}",
            _into(path),
            len(data) / WRITE_BYTES_PER_S,
        )

    def _put_if_absent(self, path: str, data: bytes) -> bool:
        # The name taken, then nothing there to read (something deletes what is
        # written): written again a few times, then a passing error, never "already
        # exists" (red team rt95, the cloud services' shape: ``TakenButMissingError``).
        for _ in range(TAKEN_BUT_MISSING_TRIES):
            created = self._put_once(path, data)
            if created is not None:
                return created
            log.warning("%s was there, then gone: writing it again", self._fs_path(path))
        raise taken_but_missing(str(self._fs_path(path)), TAKEN_BUT_MISSING_TRIES)

    def _put_once(self, path: str, data: bytes) -> bool | None:
        parts = check_object_path(path).split("/")
        target = self._fs_path(path)
        try:
            with self._folder(parts[:-1], create=True, doing="cannot write") as folder:
                assert folder is not None
                return self._put_in(folder, parts[-1], path, target, data)
        except StorageError:
            raise
        except OSError as exc:
            raise self._error(exc, f"cannot write {target}") from exc

    def _put_in(
        self, folder: Folder, name: str, path: str, target: Path, data: bytes
    ) -> bool | None:
        tmp = f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY
        try:
            fd = self._open_in(folder, tmp, flags, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            self._publish(folder, tmp, name, data)
        except FileExistsError:
            return self._same_or_raise(path, target, data)
        except OSError as exc:
            raise self._error(exc, f"cannot write {target}") from exc
        finally:
            try:
                self._unlink_in(folder, tmp)
            except FileNotFoundError:
                pass
            except OSError as exc:  # never fatal: the object is already published
                log.warning("could not remove temp file %s: %s", tmp, exc)
        fsync_dir(folder)
        return True

    def _publish(self, folder: Folder, tmp: str, name: str, data: bytes) -> None:
        try:
            if isinstance(folder, int):
                os.link(tmp, name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
            else:
                os.link(folder / tmp, folder / name)
            return
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
        if os.name == "nt" and isinstance(folder, Path):  # rename never replaces there
            os.rename(folder / tmp, folder / name)
            return
        log.warning("folder %s has no hard links; publishing with O_EXCL", folder)
        self._write_exclusive(folder, name, data)

    @classmethod
    def _write_exclusive(cls, folder: Folder, name: str, data: bytes) -> None:
        """Publish without hard links (some FAT/SMB mounts): O_EXCL create, then write.
        ``O_CREAT | O_EXCL`` never follows a link that occupies the name; a failed write
        removes the partial object (it is ours)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY
        fd = cls._open_in(folder, name, flags, 0o644)
        try:
            view = memoryview(data)
            while view:  # a full disk first gives a short write, then ENOSPC
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with suppress(OSError):
                cls._unlink_in(folder, name)
            raise
        os.close(fd)

    def _same_or_raise(self, path: str, target: Path, data: bytes) -> bool | None:
        """The name is taken: False when it holds these very bytes (a retry meeting its
        own earlier write), else ``AlreadyExistsError`` and the caller picks another
        name. Anything there that cannot be compared is not these bytes: a FIFO, a link,
        a folder (red team rt57: "a folder has that name" was a final error, and the
        message failed for good), a file larger than ``data`` or one that may not be
        read. None when nothing is there any more (``_put_if_absent`` writes again).
        Only a passing failure of the read is raised as it is (tried again)."""
        try:
            existing = self._get(path, len(data))
        except StorageNotFoundError:
            return None
        except NotRegularFileError as exc:
            raise AlreadyExistsError(
                f"{target} is occupied by a {exc.kind}", compared=False
            ) from exc
        except ObjectTooLargeError as exc:
            raise AlreadyExistsError(f"{target} already exists with other contents") from exc
        except StorageError as exc:
            if exc.transient:
                raise
            raise AlreadyExistsError(
                f"{target} is taken by an object this write cannot compare with its own: {exc}",
                compared=False,
            ) from exc
        if existing == data:
            return False
        raise AlreadyExistsError(f"{target} already exists with other contents")

    # -- reading -----------------------------------------------------------------------------

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        return await self._within(
            lambda: self._get(path, max_bytes),
            f"cannot read {self._fs_path(path)}",
            _into(path),
        )

    def _get(self, path: str, max_bytes: int) -> bytes:
        parts = check_object_path(path).split("/")
        target = self._fs_path(path)
        try:
            with self._folder(parts[:-1], create=False, doing="cannot read") as folder:
                if folder is None:
                    raise StorageNotFoundError(f"{target} does not exist")
                return self._read_in(folder, parts[-1], path, target, max_bytes)
        except FileNotFoundError as exc:
            raise StorageNotFoundError(f"{target} does not exist") from exc
        except NotRegularFileError as exc:
            if exc.kind == "file":  # a plain object where a folder would be: no such object
                raise StorageNotFoundError(f"{target} does not exist") from exc
            raise
        except StorageError:
            raise
        except OSError as exc:
            raise self._error(exc, f"cannot read {target}") from exc

    def _read_in(self, folder: Folder, name: str, path: str, target: Path, cap: int) -> bytes:
        # lstat first: a device is never even opened (opening some has side effects).
        before = self._lstat_in(folder, name)
        self._check_regular(before, path, target)
        flags = os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_NOCTTY | _O_BINARY
        try:
            fd = self._open_in(folder, name, flags)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._not_regular(path, target, "symbolic link") from exc
            raise
        try:
            st = os.fstat(fd)  # what was opened, not what the name pointed to before
            self._check_regular(st, path, target)
            if st.st_size > cap:
                raise self._too_large(path, target, st.st_size, cap)
            data = read_capped(fd, cap)
        finally:
            os.close(fd)
        if len(data) > cap:  # the file grew after fstat
            raise self._too_large(path, target, len(data), cap)
        return data

    def _check_regular(self, st: os.stat_result, path: str, target: Path) -> None:
        kind = kind_of(st.st_mode, reparse_tag(st))
        if kind is None and stat.S_ISDIR(st.st_mode):
            kind = "folder"
        if kind is not None:
            raise self._not_regular(path, target, kind)

    @staticmethod
    def _not_regular(path: str, target: Path, kind: str) -> NotRegularFileError:
        return NotRegularFileError(
            f"cannot read {target}: not a regular file: {kind} (not read)", path=path, kind=kind
        )

    @staticmethod
    def _too_large(path: str, target: Path, size: int, cap: int) -> ObjectTooLargeError:
        return ObjectTooLargeError(
            f"cannot read {target}: it holds more than {cap:,} bytes"
            + (f" ({size:,})" if size > cap + 1 else "")
            + "; not read",
            path=path,
            limit=cap,
        )

    async def written_lately(self, path: str) -> bool:
        return await self._within(
            lambda: self._written_lately(path),
            f"cannot check {self._fs_path(path)}",
            _into(path),
        )

    def _written_lately(self, path: str) -> bool:
        """Changed less than ``WRITE_SETTLE`` seconds ago (either way: a clock set back,
        or a date set ahead by a planter, is no reason to wait long; ``read_segment``
        bounds the wait too). Anything that cannot be checked: no."""
        parts = check_object_path(path).split("/")
        try:
            with self._folder(parts[:-1], create=False, doing="cannot check") as folder:
                if folder is None:
                    return False
                st = self._lstat_in(folder, parts[-1])
        except (OSError, StorageError):
            return False
        return stat.S_ISREG(st.st_mode) and abs(time.time() - st.st_mtime) < WRITE_SETTLE

    async def spelled_as_stored(self, path: str) -> bool:
        """Whether ``path``'s folder holds an entry named exactly as ``path`` ends (see
        ``Storage.spelled_as_stored``). Asked of the folder's entries on every volume,
        not only where the volume is known to fold names: a case-folding ext4 folder, a
        share, can sit below a root that does not. An ASCII name (every name this app
        writes) in a folder that tells its cases apart is answered by two ``stat`` calls;
        otherwise one pass over the folder's names (no ``stat`` of each) — so a member's
        junk names in a day folder cost a hinted read nothing on such a volume. Done only
        for a name no listing gave."""
        return await self._within(
            lambda: self._spelled_as_stored(path),
            f"cannot check {self._fs_path(path)}",
            _into(path),
        )

    def _spelled_as_stored(self, path: str) -> bool:
        parts = check_object_path(path).split("/")
        name = parts[-1]
        try:
            with self._folder(parts[:-1], create=False, doing="cannot check") as folder:
                if folder is None:
                    return False
                minds_case = self._minds_case(folder, name)
                if minds_case is not None:
                    return minds_case
                with os.scandir(folder) as entries:
                    return any(entry.name == name for entry in entries)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except NotRegularFileError as exc:
            if exc.kind == "file":  # a plain object where a folder would be: no such object
                return False
            raise
        except OSError as exc:
            raise self._error(exc, f"cannot check {self._fs_path(path)}") from exc

    def _minds_case(self, folder: Folder, name: str) -> bool | None:
        """Whether ``folder`` holds an entry spelled exactly ``name``, when two ``stat``
        calls can tell: an ASCII name (no accent a volume could decompose) whose other
        case the folder does not open — the folder tells cases apart, so ``name`` opens
        only an entry of exactly that spelling. None when the folder opens the other
        case too (it folds case, or a member planted that spelling: the caller reads the
        folder's names)."""
        other = name.swapcase()
        if not name.isascii() or other == name:
            return None
        try:
            self._lstat_in(folder, other)
        except FileNotFoundError:
            pass
        else:
            return None
        try:
            self._lstat_in(folder, name)
        except FileNotFoundError:
            return False
        return True

    async def exists(self, path: str) -> bool:
        return await self._within(
            lambda: self._exists(path), f"cannot check {self._fs_path(path)}", _into(path)
        )

    def _exists(self, path: str) -> bool:
        """Whether something that is not a folder occupies ``path`` (a FIFO counts: the
        name is taken, and reading it says why it cannot be read)."""
        parts = check_object_path(path).split("/")
        target = self._fs_path(path)
        try:
            with self._folder(parts[:-1], create=False, doing="cannot check") as folder:
                if folder is None:
                    return False
                st = self._lstat_in(folder, parts[-1])
        except FileNotFoundError:
            return False
        except NotRegularFileError as exc:
            return exc.kind != "file"  # a link on the way: taken; reading it says why
        except OSError as exc:
            raise self._error(exc, f"cannot check {target}") from exc
        return not stat.S_ISDIR(st.st_mode)

    # -- listing -----------------------------------------------------------------------------

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        try:
            return await self._within(
                lambda: self._list(prefix),
                f"cannot list {prefix or '/'}",
                _listing("walk", prefix),
            )
        except StorageError:
            raise
        except OSError as exc:  # an unreadable folder must not look like an empty one
            raise self._error(exc, f"cannot list {exc.filename or prefix}") from exc

    def _list(self, prefix: str) -> list[ObjectInfo]:
        rel_root = prefix.rstrip("/") if prefix.strip("/") else ""
        start = check_object_path(rel_root).split("/") if rel_root else []
        out: list[ObjectInfo] = []
        pending = [start]
        while pending:
            parts = pending.pop()
            try:
                with self._folder(parts, create=False, doing="cannot list") as folder:
                    if folder is None:
                        continue  # missing (or vanished): lists as empty
                    out.extend(self._scan(folder, parts, pending))
            except NotRegularFileError as exc:
                if exc.kind == "file":  # a plain object where a folder would be: empty
                    continue
                if parts is start:
                    # The folder asked for is a link (or one on its way): not followed,
                    # and not an empty folder either: a day of history swapped for a
                    # link cannot be listed, as a folder nobody may read cannot.
                    raise
                # A folder found by the scan swapped for a link since: named, not followed.
                out.append(ObjectInfo(exc.path, 0, special=exc.kind))
            except NotADirectoryError:
                continue
            except OSError as exc:  # named in full: relative to its folder, it was "x"
                raise self._error(exc, f"cannot list {self.root.joinpath(*parts)}") from exc
        out.sort(key=lambda i: i.path)
        return out

    def _scan(self, folder: Folder, parts: list[str], pending: list[list[str]]) -> list[ObjectInfo]:
        found: list[ObjectInfo] = []
        rel_dir = "/".join(parts)
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue  # temp files, OS and sync-tool litter
                if not utf8_text(name):
                    # Object names are UTF-8 text; bytes that are not cannot be named,
                    # stored or shown as they are: reported under an escaped name.
                    shown = shown_object_name(name)
                    shown = f"{rel_dir}/{shown}" if rel_dir else shown
                    found.append(ObjectInfo(shown, 0, special="name that is not UTF-8"))
                    continue
                # A backslash: no object path holds one, so such a file is never read; it
                # is shown escaped, never as the shown name of the one above.
                shown = shown_object_name(name) if "\\" in name else name
                rel = f"{rel_dir}/{shown}" if rel_dir else shown
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # vanished between listing and stat
                kind = kind_of(st.st_mode, reparse_tag(st))
                if kind is None and stat.S_ISDIR(st.st_mode) and len(parts) >= MAX_LIST_DEPTH:
                    found.append(ObjectInfo(rel, 0, special="folder nested too deep"))
                elif kind is None and stat.S_ISDIR(st.st_mode):
                    pending.append([*parts, name])
                elif kind is None:
                    found.append(ObjectInfo(rel, st.st_size))
                else:
                    found.append(ObjectInfo(rel, 0, special=kind))
        return found

    async def list_level(self, prefix: str) -> Level:
        return await self._within(
            lambda: self._list_level(prefix),
            f"cannot list {prefix or '/'}",
            _listing("level", prefix),
        )

    async def list_first(
        self, prefix: str, after: str | None, most: int
    ) -> tuple[list[ObjectInfo], bool]:
        """The whole listing after ``after``, cut to its first ``most`` objects: listing
        a folder costs no request."""
        items = await self.list_after(prefix, after)
        most = max(most, 0)
        return items[:most], len(items) > most

    async def list_level_first(self, prefix: str, most: int) -> Level:
        """The whole level, cut to its first ``most`` names (``level_first``): listing a
        folder costs no request."""
        return level_first(await self.list_level(prefix), most)

    def _list_level(self, prefix: str) -> Level:
        rel = prefix.rstrip("/") if prefix.strip("/") else ""
        parts = check_object_path(rel).split("/") if rel else []
        try:
            with self._folder(parts, create=False, doing="cannot list") as folder:
                if folder is None:
                    return Level([], [])
                names: list[str] = []
                files: list[str] = []
                with os.scandir(folder) as entries:
                    for e in entries:
                        if e.name.startswith("."):
                            continue
                        if not utf8_text(e.name):  # shown escaped (``level_of``): no folder
                            files.append(e.name)
                            continue
                        try:
                            st = e.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        kind = kind_of(st.st_mode, reparse_tag(st))
                        if kind is None and not stat.S_ISDIR(st.st_mode):
                            files.append(e.name)
                        else:
                            # A folder; or a link (or FIFO, ...) named, not followed:
                            # listing what is under it reports the link itself, so that
                            # the audit names it. Left out, a day folder swapped for a
                            # link was a day with nothing in it, and a new device verified
                            # the room clean. A name no path can be is an object's.
                            names.append(e.name)
                return level_of(names, files)
        except NotRegularFileError as exc:
            if exc.kind != "file":
                # A link (or FIFO, ...) where the folder is: not followed, and not
                # an empty folder either. Listed as empty, a room whose logs/ folder
                # was swapped for a link read as a room with no history, verified clean.
                raise
            return Level([], [])  # a plain file where a folder would be: nothing in it
        except (FileNotFoundError, NotADirectoryError):
            return Level([], [])
        except OSError as exc:
            raise self._error(exc, f"cannot list {self.root / rel}") from exc

    async def remove_probe(self, path: str) -> None:
        if not path.startswith(PROBE_PREFIX):
            raise StorageError(f"refusing to delete {path!r}: only self-test probes are removed")
        await self._within(lambda: self._remove_probe(path), f"cannot remove {path}", _into(path))

    def _remove_probe(self, path: str) -> None:
        parts = check_object_path(path).split("/")
        try:
            with self._folder(parts[:-1], create=False, doing="cannot remove") as folder:
                if folder is None:
                    return
                self._unlink_in(folder, parts[-1])
            self._fs_path(path).parent.rmdir()
        except (OSError, StorageError):
            pass

    def _error(self, exc: OSError, what: str) -> StorageError:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageFullError(f"{what}: the disk is full (free some space and retry)")
        if exc.errno in (errno.EACCES, errno.EPERM):
            return StorageError(f"{what}: permission denied")
        if exc.errno == errno.EROFS:
            return StorageError(f"{what}: the folder is read-only")
        return StorageError(f"{what}: {exc.strerror or exc}")
