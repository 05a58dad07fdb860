"""A per-device, per-room lock so two local processes never fork one device's chain."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Iterator

from .. import paths


@contextlib.contextmanager
def device_lock(client_id: str, room_id: str) -> Iterator[None]:
    folder = paths.data_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(f"{client_id}\0{room_id}".encode()).hexdigest()[:32]
    fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock on every OS
