"""The storage interface the sync engine and the CLI talk to.

Paths are relative POSIX object names such as ``rooms/r/logs/2025-01-01/messages_…jsonl``.
Objects are written once and never modified: ``put_if_absent`` is the only write.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass


class StorageError(Exception):
    """A storage failure, with a one-line message a user can act on.

    ``transient`` says whether retrying later can succeed without the user doing anything
    (network down, throttled, disk full being cleaned up) — the outbox retries those and
    reports the others.
    """

    transient = False


class StorageNotFoundError(StorageError):
    """The object (or the bucket/container/folder) does not exist."""


class StorageFullError(StorageError):
    transient = True


class StorageOfflineError(StorageError):
    """The service cannot be reached (DNS, connection refused, timeout)."""

    transient = True


class StorageThrottledError(StorageError):
    transient = True


class StorageAuthError(StorageError):
    """Credentials are missing, wrong or expired."""


class StoragePermissionError(StorageError):
    """The credentials work but may not do this (read, list or write)."""


class AlreadyExistsError(StorageError):
    """A create-only write met an existing object with other contents."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    path: str
    size: int
    etag: str | None = None


def check_object_path(path: str) -> str:
    """Refuse object names that could escape the store or confuse a file system."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise StorageError(f"refusing unsafe object path {path!r}")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"refusing unsafe object path {path!r}")
    return path


class Storage(abc.ABC):
    """One storage root (a folder, or a bucket and prefix)."""

    url: str

    @abc.abstractmethod
    async def put_if_absent(self, path: str, data: bytes) -> bool:
        """Create ``path`` with ``data`` unless it exists.

        Returns True when this call created it, False when an object with exactly the same
        bytes was already there (a retry meeting its own write). Raises
        ``AlreadyExistsError`` when different bytes are there.
        """

    @abc.abstractmethod
    async def get(self, path: str) -> bytes:
        """The object's bytes; ``StorageNotFoundError`` if there is none."""

    @abc.abstractmethod
    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        """Every object under ``prefix`` (recursively), sorted by path."""

    @abc.abstractmethod
    async def list_dirs(self, prefix: str) -> list[str]:
        """The immediate child "folders" of ``prefix`` (names only), sorted."""

    async def list_after(self, prefix: str, after: str | None) -> list[ObjectInfo]:
        """Objects under ``prefix`` whose path sorts after ``after``."""
        items = await self.list_objects(prefix)
        return items if after is None else [i for i in items if i.path > after]

    @abc.abstractmethod
    async def exists(self, path: str) -> bool: ...

    async def remove_probe(self, path: str) -> None:
        """Remove an object written by a self-test under ``.bucket-chat-probe/``.

        Nothing else is ever deleted. Stores that cannot delete keep the tiny probe.
        """
        return None

    async def close(self) -> None:
        return None

    def describe(self) -> str:
        return self.url
