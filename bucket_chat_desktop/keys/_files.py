"""Atomic, private file writes for key files and the public identity index."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from ..osfiles import open_fd

_POSIX = os.name == "posix"


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) and make it readable by its owner only."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _POSIX:
        os.chmod(directory, 0o700)


def write_file_atomically(path: Path, data: bytes, *, overwrite: bool, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The data goes to a temporary file in the same folder (created with ``mode``, flushed
    to disk) which then takes the final name: with ``os.replace`` when ``overwrite`` is
    true, otherwise with ``os.link``, which fails with `FileExistsError` if ``path``
    exists - so two writers can never both believe they created the file.
    """
    directory = path.parent
    temp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = open_fd(temp, flags, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            if _POSIX:
                os.fchmod(handle.fileno(), mode)  # whatever the umask
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temp, path)
        else:
            _publish_new(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    _fsync_dir(directory)


def _publish_new(temp: Path, path: Path) -> None:
    try:
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError:
        # A file system without hard links: fall back to check-then-rename.
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(temp, path)


def _fsync_dir(directory: Path) -> None:
    if not _POSIX:
        return
    try:
        fd = open_fd(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
