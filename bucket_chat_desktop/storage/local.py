"""A storage root on a local or synced folder (a network share, Dropbox, Syncthing).

Create-only writes go through a temp file in the same folder that is published with a
hard link (no-clobber by the OS), so readers never see half an object even if the writer
is killed mid-write. Blocking file calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import secrets
from pathlib import Path

from .base import (
    AlreadyExistsError,
    ObjectInfo,
    Storage,
    StorageError,
    StorageFullError,
    StorageNotFoundError,
    check_object_path,
)

log = logging.getLogger("bucket_chat.storage")

_NO_LINK = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}
TEMP_PREFIX = ".bc-tmp-"
PROBE_PREFIX = ".bucket-chat-probe/"


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = str(self.root)

    def _fs_path(self, path: str) -> Path:
        return self.root.joinpath(*check_object_path(path).split("/"))

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        return await asyncio.to_thread(self._put_if_absent, path, data)

    def _put_if_absent(self, path: str, data: bytes) -> bool:
        target = self._fs_path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error(exc, f"cannot create folder {target.parent}") from exc
        tmp = target.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            self._publish(tmp, target)
        except FileExistsError:
            return self._same_or_raise(target, data)
        except OSError as exc:
            raise self._error(exc, f"cannot write {target}") from exc
        finally:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:  # never fatal: the object is already published
                log.warning("could not remove temp file %s: %s", tmp, exc)
        _fsync_dir(target.parent)
        return True

    @staticmethod
    def _publish(tmp: Path, target: Path) -> None:
        try:
            os.link(tmp, target)
            return
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
        if os.name == "nt":  # Windows' rename never replaces an existing file
            os.rename(tmp, target)
            return
        # A folder without hard links (some FAT/SMB mounts): O_EXCL create, then copy.
        log.warning("folder %s has no hard links; publishing with O_EXCL", target.parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(tmp.read_bytes())
            while view:  # a full disk first gives a short write, then ENOSPC
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            target.unlink(missing_ok=True)  # ours (O_EXCL): never leave half an object
            raise
        os.close(fd)

    def _same_or_raise(self, target: Path, data: bytes) -> bool:
        try:
            existing = target.read_bytes()
        except OSError as exc:
            raise self._error(exc, f"cannot read {target}") from exc
        if existing == data:
            return False
        raise AlreadyExistsError(f"{target} already exists with other contents")

    async def get(self, path: str) -> bytes:
        return await asyncio.to_thread(self._get, path)

    def _get(self, path: str) -> bytes:
        target = self._fs_path(path)
        try:
            return target.read_bytes()
        except FileNotFoundError as exc:
            raise StorageNotFoundError(f"{target} does not exist") from exc
        except OSError as exc:
            raise self._error(exc, f"cannot read {target}") from exc

    async def exists(self, path: str) -> bool:
        return await asyncio.to_thread(self._exists, path)

    def _exists(self, path: str) -> bool:
        target = self._fs_path(path)
        try:
            return target.is_file()
        except OSError as exc:  # is_file() only swallows "not found"-like errors
            raise self._error(exc, f"cannot check {target}") from exc

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        try:
            return await asyncio.to_thread(self._list, prefix)
        except OSError as exc:  # an unreadable folder must not look like an empty one
            raise self._error(exc, f"cannot list {exc.filename or prefix}") from exc

    def _list(self, prefix: str) -> list[ObjectInfo]:
        base = self._fs_path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        out: list[ObjectInfo] = []
        rel_root = prefix.rstrip("/")
        for dirpath, dirnames, filenames in os.walk(base, onerror=_raise_unless_gone):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = os.path.relpath(dirpath, base).replace(os.sep, "/")
            for name in filenames:
                if name.startswith("."):
                    continue  # temp files, OS and sync-tool litter
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                full = f"{rel_root}/{rel}" if rel_root else rel
                try:
                    size = os.stat(os.path.join(dirpath, name)).st_size
                except OSError:
                    continue  # vanished between listing and stat
                out.append(ObjectInfo(full, size))
        out.sort(key=lambda i: i.path)
        return out

    async def list_dirs(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._list_dirs, prefix)

    def _list_dirs(self, prefix: str) -> list[str]:
        base = self._fs_path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        try:
            with os.scandir(base) as it:
                return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._error(exc, f"cannot list {base}") from exc

    async def remove_probe(self, path: str) -> None:
        if not path.startswith(PROBE_PREFIX):
            raise StorageError(f"refusing to delete {path!r}: only self-test probes are removed")
        target = self._fs_path(path)
        try:
            target.unlink()
            target.parent.rmdir()
        except OSError:
            pass

    def _error(self, exc: OSError, what: str) -> StorageError:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageFullError(f"{what}: the disk is full (free some space and retry)")
        if exc.errno in (errno.EACCES, errno.EPERM):
            return StorageError(f"{what}: permission denied")
        if exc.errno == errno.EROFS:
            return StorageError(f"{what}: the folder is read-only")
        return StorageError(f"{what}: {exc.strerror or exc}")


def _raise_unless_gone(exc: OSError) -> None:
    """``os.walk`` error handler: a missing (or vanished) folder lists as empty."""
    if not isinstance(exc, FileNotFoundError | NotADirectoryError):
        raise exc


def _fsync_dir(folder: Path) -> None:
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
