"""The one door to ``os.open``, the one atomic file write and the one private folder.

Binary descriptors. On Windows, ``os.open`` without ``O_BINARY`` gives a text-mode
descriptor: ``os.write`` and a file object made with ``os.fdopen(fd, "wb")`` both turn each
``\\n`` byte into ``\\r\\n`` (and reads turn it back, and stop at a ``\\x1a`` byte). A blob
written that way fails its SHA-256 check and a segment changes its bytes. POSIX has no text
mode, so nothing shows on Linux or macOS: a test (tests/unit/test_osfiles.py) reads the
package's source and refuses any ``os.open`` call outside this module.

Files opened by name (``open(path, "wb")``, ``Path.write_bytes``, ``tempfile.mkstemp``)
are binary at the descriptor already; Python adds ``O_BINARY`` itself there.

Atomic writes. Every file the app owns (settings, storage profiles, key files, the public
identity index, crash markers, cached and saved attachments, key backups) is written by
`write_atomic`: readers see the old file or the whole new one, never half of it, and a
link planted at the final name is replaced, never written through. A test
(tests/unit/test_one_helper.py) refuses ``os.replace`` and ``os.fsync`` of a written file
anywhere else in the package except the local object store, whose create-only publish is
its own protocol (``storage/local.py``).

Small reads of files others may have shaped. `read_regular_file` reads a file a user
picked or the app found in a folder (a key backup, a key file) without ever blocking on
a FIFO, opening a device or swallowing a huge file whole; the local object store reads
its objects the same way, relative to its folders (``storage/local.py``). A file picked
to attach is opened the same way (`open_regular`) and read in pieces by its caller, and
refused when it belongs to the kernel's own trees (`system_tree`: ``/proc``...).

A lock between processes. `exclusive_lock` holds a lock file beside a file several
processes create (the per-storage SQLite files: the app and ``bucket-chat`` commands open
them at once): ``flock`` on POSIX, ``msvcrt.locking`` on Windows, both let go by the
operating system when the holder dies, so a crashed process never leaves it held.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
try:
    import msvcrt
except ImportError:  # POSIX
    msvcrt = None  # type: ignore[assignment]

_log = logging.getLogger("bucket_chat.files")

BINARY: int = getattr(os, "O_BINARY", 0)
"""``os.O_BINARY`` on Windows, 0 elsewhere."""

_POSIX = os.name == "posix"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOCTTY = getattr(os, "O_NOCTTY", 0)
# Windows: symbolic links and junctions (mount points) lead elsewhere; other reparse
# points (OneDrive/Dropbox "files on demand" placeholders, dedup) are ordinary files.
_LINK_TAGS = {
    getattr(stat, "IO_REPARSE_TAG_SYMLINK", 0xA000000C),
    getattr(stat, "IO_REPARSE_TAG_MOUNT_POINT", 0xA0000003),
}
# On Windows a replace fails while another process (a virus scanner, the search indexer, a
# sync client) holds the target open without delete sharing; it lets go within moments.
_WINDOWS_REPLACE_TRIES = 10
_WINDOWS_REPLACE_PAUSE = 0.05  # seconds, times the try number


def open_fd(
    path: str | os.PathLike[str],
    flags: int,
    mode: int = 0o777,
    *,
    dir_fd: int | None = None,
) -> int:
    """``os.open`` with ``O_BINARY`` added to ``flags`` (see the module's docstring)."""
    return os.open(path, flags | BINARY, mode, dir_fd=dir_fd)


def kind_of(mode: int, reparse_tag: int = 0) -> str | None:
    """What a non-regular, non-folder entry is (None for a regular file or a folder)."""
    if stat.S_ISLNK(mode) or reparse_tag in _LINK_TAGS:
        return "symbolic link"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"


def reparse_tag(st: os.stat_result) -> int:
    """The Windows reparse tag of an ``lstat`` result (0 elsewhere)."""
    return int(getattr(st, "st_reparse_tag", 0))


class SpecialFileError(OSError):
    """`read_regular_file`: the path is not a regular file (``kind`` says what it is:
    "FIFO", "character device", "folder", "symbolic link" when one appeared meanwhile...).
    Nothing was read from it."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path} is not a regular file ({kind})")
        self.path = path
        self.kind = kind


class FileTooLargeError(OSError):
    """`read_regular_file`: the file holds more than the bytes allowed; ``size`` is what
    it holds as far as was seen (at least ``cap + 1``)."""

    def __init__(self, path: str, size: int, cap: int) -> None:
        super().__init__(f"{path} holds more than {cap:,} bytes")
        self.path = path
        self.size = size
        self.cap = cap


def read_capped(fd: int, cap: int) -> bytes:
    """What the open file ``fd`` holds from where it stands, at most ``cap + 1`` bytes:
    one more than allowed tells "too large" from "exactly ``cap``"."""
    chunks: list[bytes] = []
    left = cap + 1
    while left > 0:
        chunk = os.read(fd, min(left, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_regular_file(path: str | os.PathLike[str], cap: int) -> bytes:
    """The bytes of the regular file at ``path``, which must hold at most ``cap``.

    For a file a user picked or a folder the app reads may hold anything: a link in
    ``path`` is resolved once (a user's own link to their file is fine), then what it
    names is looked at without being opened (a device is never opened: opening some has
    effects), opened without following a link (one swapped in meanwhile is refused),
    with ``O_NONBLOCK`` (a FIFO put there meanwhile never blocks the open) and checked
    again with ``fstat``. At most ``cap + 1`` bytes are ever read.

    Raises `SpecialFileError` (a FIFO, a device, a socket, a folder),
    `FileTooLargeError`, or the `OSError` of the failed call (`FileNotFoundError` ...).
    """
    fd, real, st = open_regular(path)
    try:
        if st.st_size > cap:
            raise FileTooLargeError(real, st.st_size, cap)
        data = read_capped(fd, cap)
    finally:
        os.close(fd)
    if len(data) > cap:  # it grew after fstat
        raise FileTooLargeError(real, len(data), cap)
    return data


def open_regular(path: str | os.PathLike[str]) -> tuple[int, str, os.stat_result]:
    """Open the regular file at ``path`` for reading as `read_regular_file` does (a link
    in ``path`` resolved once, a device never opened, a FIFO or a link swapped in after
    the look refused without blocking); returns the descriptor (blocking again: the
    caller reads it and closes it), the resolved path and the ``fstat`` of what was opened.

    Raises `SpecialFileError` or the `OSError` of the failed call.
    """
    real = os.path.realpath(path)
    before = os.stat(real, follow_symlinks=False)
    _check_regular(real, before)
    try:
        fd = open_fd(real, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _NOCTTY | _CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link swapped in after the look
            raise SpecialFileError(real, "symbolic link") from exc
        raise
    try:
        st = os.fstat(fd)  # what was opened, not what the name was a moment ago
        _check_regular(real, st)
        if fcntl is not None and _NONBLOCK:  # a regular file: reads may block again
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd, real, st


SYSTEM_TREES = ("/proc", "/sys", "/dev")
"""Where the kernel shows itself as files (POSIX): procfs, sysfs, device nodes. Their
"regular files" are not documents: ``/proc/self/environ`` says it holds 0 bytes and
reads as the process's environment (its secrets included)."""


def system_tree(real: str, st: os.stat_result) -> str | None:
    """The tree of `SYSTEM_TREES` that the file ``real`` (a resolved path) with the
    ``fstat`` result ``st`` belongs to, else None: by its path, or by its file system
    (the same device as the tree's own mount, whatever path led there: a folder in the
    path swapped for a link after it was resolved). A tree that is no mount of its own
    (``/proc`` an ordinary folder) is told by its path only. None on Windows."""
    if not _POSIX:
        return None
    for top in SYSTEM_TREES:
        if real == top or real.startswith(top + "/"):
            return top
    try:
        root_dev = os.stat("/").st_dev
    except OSError:
        root_dev = None
    for top in SYSTEM_TREES:
        try:
            dev = os.stat(top).st_dev
        except OSError:
            continue
        if dev != root_dev and st.st_dev == dev:
            return top
    return None


def _check_regular(path: str, st: os.stat_result) -> None:
    kind = kind_of(st.st_mode, reparse_tag(st))
    if kind is None and stat.S_ISDIR(st.st_mode):
        kind = "folder"
    if kind is not None:
        raise SpecialFileError(path, kind)


def ensure_private_dir(folder: Path) -> None:
    """Create ``folder`` (and parents) and make it the user's own (0700; a folder that
    already existed with looser modes is fixed). Windows keeps its inherited ACLs."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _POSIX:
        with contextlib.suppress(OSError):  # not ours (a shared parent): leave it be
            os.chmod(folder, 0o700)


def move_aside(path: Path, target: Path) -> None:
    """Move ``path`` to ``target`` without ever overwriting a file there: a hard link,
    then the old name removed (`FileExistsError` if ``target`` exists); on a file system
    without hard links, a rename checked just before (a file created at ``target`` in
    between could still be replaced there)."""
    try:
        os.link(path, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:
        if target.exists() or target.is_symlink():
            raise FileExistsError(f"{target} exists") from None
        os.rename(path, target)
        return
    path.unlink()


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The bytes go to a new temporary file in the same folder (created exclusively, never
    through a link, flushed to disk), which then takes the final name: with a replace
    when ``overwrite`` is true (a link at ``path`` is replaced, not followed), otherwise
    with a hard link, which fails with `FileExistsError` if ``path`` exists, so two
    writers can never both believe they created the file. The folder is synced after.

    ``mode``: a private mode (no group or other bits, the default 0600: keys, secrets,
    settings, the user's messages) is set exactly whatever the umask; a wider one (0644 for
    an attachment saved where the user chose) is left to the umask, as any program would.
    The folder must exist. Raises `OSError` (the temporary file is gone then).
    """
    with atomic_output(path, mode=mode, overwrite=overwrite, buffering=-1) as handle:
        handle.write(data)


@contextlib.contextmanager
def atomic_output(
    path: Path, *, mode: int = 0o600, overwrite: bool = True, buffering: int = 1 << 20
) -> Iterator[BinaryIO]:
    """``write_atomic`` for output too large to hold in memory (a room's export), and the
    body of ``write_atomic`` itself: the caller writes to the yielded file a piece at a
    time; when the block ends without an exception the file is flushed to disk and takes
    the final name as ``write_atomic`` describes (``overwrite`` false: `FileExistsError`
    if ``path`` exists).
    On an exception (a cancel included) the temporary file is removed and ``path`` is
    left as it was. ``buffering``: the file's buffer (-1: Python's default, for one write).
    """
    folder = path.parent
    # Its name within 255 bytes whatever the final one's script: cut to 200 characters,
    # a name of 85 CJK characters (255 bytes) made a temporary name of 273 bytes, and
    # no file of that name could be written (an attachment, an export).
    base = path.name.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore")
    temp = folder / f".{base}.{secrets.token_hex(6)}.tmp"
    fd = open_fd(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb", buffering=buffering) as handle:
            if _POSIX and not mode & 0o077:
                os.fchmod(handle.fileno(), mode)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            _replace(temp, path)
        else:
            _publish_new(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    fsync_dir(folder)


DIR_FDS = _POSIX and {os.open, os.link, os.unlink, os.stat} <= os.supports_dir_fd
"""Whether files can be made and removed relative to an open folder (POSIX): nothing is
looked up by its path again, so a folder swapped for a link meanwhile cannot redirect
a write or a removal."""


def open_folder(folder: Path) -> int:
    """An open descriptor of ``folder`` itself, never through a link (``DIR_FDS``)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
    return os.open(folder, flags)


def write_new_at(dir_fd: int, name: str, data: bytes, *, mode: int = 0o644) -> os.stat_result:
    """``write_atomic(..., overwrite=False)`` for ``name`` in the open folder ``dir_fd``:
    a new temporary file there, flushed, then linked to ``name`` (``FileExistsError``
    when it exists), all relative to ``dir_fd``. Returns what ``name`` is then."""
    base = name.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore")
    temp = f".{base}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode,
                 dir_fd=dir_fd)  # fmt: skip
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _publish_new(temp, name, dir_fd)
        made = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
    fsync_dir(dir_fd)  # a folder that cannot be synced is no failure (the data was)
    return made


def _replace(temp: Path, path: Path) -> None:
    if _POSIX:
        os.replace(temp, path)
        return
    for attempt in range(1, _WINDOWS_REPLACE_TRIES + 1):
        try:
            os.replace(temp, path)
            return
        except PermissionError:
            if attempt == _WINDOWS_REPLACE_TRIES:
                raise
            time.sleep(_WINDOWS_REPLACE_PAUSE * attempt)


def _publish_new(temp: str | Path, path: str | Path, dir_fd: int | None = None) -> None:
    """``temp`` takes the new name ``path`` (both in the folder ``dir_fd`` when given);
    ``FileExistsError`` when ``path`` exists."""
    try:
        os.link(temp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except FileExistsError:
        raise
    except OSError:
        # A file system without hard links (FAT, many SMB shares): check, then rename.
        try:
            os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            pass  # not there (as ``os.path.lexists`` says of any failure)
        else:
            raise FileExistsError(path) from None
        if dir_fd is None:
            _replace(Path(temp), Path(path))
        else:
            os.rename(temp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def sync_output(fd: int) -> None:
    """Sync what was written to ``fd``, an output the user pointed at a file (standard
    output redirected to one: ``bucket-chat outbox discard 3 > saved.txt``, whose text
    must be on disk before the message it holds is discarded). Not for the app's own
    files: those are ``write_atomic``'s."""
    os.fsync(fd)


def fsync_dir(folder: Path | int) -> None:
    """Make a new name in ``folder`` (a path, or an open descriptor of it) durable. POSIX
    only (Windows has no directory handles to sync); a folder that cannot be synced is
    left as it is: the data itself was synced already."""
    if not _POSIX:
        return
    if isinstance(folder, int):
        with contextlib.suppress(OSError):
            os.fsync(folder)
        return
    try:
        fd = open_fd(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LockTimeout(OSError):
    """`exclusive_lock` waited its whole bound: another process still holds the lock."""


LOCK_POLL = 0.05  # seconds between tries while another process holds a lock
LOCK_WARN_AFTER = 3.0  # seconds of waiting after which the wait is logged as a warning


def _try_lock(fd: int) -> bool:
    """Take the lock on ``fd`` without waiting: True if taken, False if another process
    holds it. Raises OSError when the file system cannot lock at all."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        elif msvcrt is not None:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # byte 0; beyond the end is allowed
        return True
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, errno.EDEADLK):
            return False
        raise


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        elif msvcrt is not None:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


@contextlib.contextmanager
def exclusive_lock(lock_path: Path, *, timeout: float, waiting: str = "") -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created, 0600, and left in place: removing
    a lock file races with the next holder; its folder is made private) for the block.
    Waits at most ``timeout`` seconds for another holder, logging ``waiting`` when it has
    to wait (a warning after `LOCK_WARN_AFTER` seconds), then raises `LockTimeout`. The
    lock is the open file's, not the process's: two threads (or two opens in one thread)
    exclude each other like two processes. A file system that cannot lock (some network
    mounts) gives the block without the lock, logged."""
    ensure_private_dir(lock_path.parent)
    fd = open_fd(lock_path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o600)
    try:
        locked = False
        start = time.monotonic()
        told = 0  # 1: said that it waits (info), 2: said that it still waits (warning)
        while not locked:
            try:
                locked = _try_lock(fd)
            except OSError as exc:
                _log.warning("cannot lock %s (%s); going on without the lock", lock_path, exc)
                break
            if locked:
                break
            waited = time.monotonic() - start
            said = waiting or f"waiting for another process to let go of {lock_path}"
            if told == 0:  # usually a matter of milliseconds: not worth a warning
                told = 1
                _log.info("%s", said)
            elif told == 1 and waited >= LOCK_WARN_AFTER:
                told = 2
                _log.warning("still %s", said)
            if waited >= timeout:
                raise LockTimeout(
                    errno.EAGAIN,
                    f"another process held {lock_path} for over {timeout:g} seconds",
                    str(lock_path),
                )
            time.sleep(LOCK_POLL)
        try:
            yield
        finally:
            if locked:
                _unlock(fd)
    finally:
        os.close(fd)
