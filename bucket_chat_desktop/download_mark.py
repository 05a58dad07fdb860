"""The system's "downloaded from the internet" mark on every file copied out of a room.

Anything a member sent is as hostile as a download: a copy handed to the desktop (the
app's Open and Save as…) or written by an export (``<name>_files/``, from the app and
``bucket-chat export``) carries the mark browsers put on downloads, so the system's own
warnings apply to it (SmartScreen, Office's Protected View, Gatekeeper). No Qt here:
the export writes its files without a GUI.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from .osfiles import open_fd
from .protocol.attachments import quarantine_attribute, zone_identifier

log = logging.getLogger("bucket_chat.files")

QUARANTINE_AGENT = "Bucket Chat"
PLATFORM = sys.platform  # which mark ``mark_as_downloaded`` writes (tests set "win32")

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def mark_as_downloaded(
    path: Path, *, platform: str | None = None, dir_fd: int | None = None
) -> bool:
    """Mark a received file the way browsers mark downloads; True when it was marked.

    Windows: the ``Zone.Identifier`` alternate data stream with ``ZoneId=3``
    (Mark-of-the-Web: SmartScreen, Office's Protected View, script hosts). macOS: the
    ``com.apple.quarantine`` extended attribute (Gatekeeper). No source URL is written:
    the storage's address stays on this machine. Linux desktops have no such mark that
    anything enforces, so nothing is written there. A file system without streams or
    attributes (FAT, some network shares) leaves the file unmarked, which is logged.

    ``dir_fd`` (POSIX): the open folder ``path.name`` is in; the file is then found
    relative to it, never by its path looked up again (``export.runner`` writes that
    way), and never through a link.
    """
    platform = platform or PLATFORM
    try:
        if platform == "win32":
            stream = f"{path.name if dir_fd is not None else path}:Zone.Identifier"
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW | _CLOEXEC
            fd = open_fd(stream, flags, 0o644, dir_fd=dir_fd)
            with os.fdopen(fd, "wb") as handle:
                handle.write(zone_identifier())
            return True
        if platform == "darwin":
            value = quarantine_attribute(QUARANTINE_AGENT, int(time.time()))
            fd = open_fd(
                path.name if dir_fd is not None else path,
                os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC,
                dir_fd=dir_fd,
            )
            try:
                _set_xattr_darwin(fd, "com.apple.quarantine", value)
            finally:
                os.close(fd)
            return True
    except OSError as exc:
        log.info("could not mark %s as downloaded: %s", path, exc)
    return False


def _set_xattr_darwin(fd: int, name: str, value: bytes) -> None:
    """``fsetxattr(2)`` on macOS, where Python's ``os`` has no xattr calls."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.fsetxattr(fd, name.encode(), value, len(value), 0, 0)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
