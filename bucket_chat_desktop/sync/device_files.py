"""This device's files for a storage — its index and its outbox — named after the
storage's identity (``Storage.identity``), never after the way it was written.

The outbox keeps this device's chain heads: two processes of the device (the app and a
script) continue one chain because they open one outbox file. Named after the folder as
typed, the same folder reached as ``store``, ``link-to-store`` or ``../x/store`` had
three outboxes, three heads, and the device forked its own chain, which every reader
reports as equivocation (red team rt71). A folder's identity is its resolved path
(``storage.local.folder_identity``).

Files named by an earlier version after the spelling (``storage.url``) are taken over
under the identity's name when it has none yet (``_adopt``): nothing queued in them is
lost. When the identity's file exists already, an earlier outbox of this spelling that
holds nothing undelivered is set aside; one that still holds messages is left where it
is and said (those messages were signed onto a chain this device has continued since:
sending them now would fork it).

Blocking (file system, SQLite): called on a thread, never the event loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
from pathlib import Path

from ..index import index_path_for
from ..osfiles import move_aside
from ..storage.base import Storage
from .outbox import aside_name

log = logging.getLogger("bucket_chat.sync")


def outbox_path_for(data_dir: Path, storage_id: str) -> Path:
    """The outbox file of the storage whose identity is ``storage_id``."""
    digest = hashlib.sha256(storage_id.encode("utf-8")).hexdigest()[:20]
    return data_dir / "outbox" / f"{digest}.sqlite3"


_COMPANIONS = ("-wal", "-shm", "-journal")


def index_file(data_dir: Path, storage: Storage) -> Path:
    """This device's index of ``storage`` (an earlier version's file taken over)."""
    path = index_path_for(data_dir, storage.identity)
    legacy = index_path_for(data_dir, storage.url)
    if legacy != path:
        _adopt(path, legacy, "index")
    return path


def outbox_file(data_dir: Path, storage: Storage) -> Path:
    """This device's outbox of ``storage`` (an earlier version's file taken over)."""
    path = outbox_path_for(data_dir, storage.identity)
    legacy = outbox_path_for(data_dir, storage.url)
    if legacy != path and not _adopt(path, legacy, "outbox") and legacy.exists():
        _retire_outbox(legacy, storage)
    return path


def _adopt(path: Path, legacy: Path, what: str) -> bool:
    """Move ``legacy`` (with what its write-ahead log holds) to ``path`` if ``path`` does
    not exist; True when it did. Never overwrites: of two processes doing it at once,
    one moves the file and the other finds it moved."""
    if path.exists() or not legacy.is_file():
        return False
    _fold_log(legacy)
    try:
        move_aside(legacy, path)
    except FileNotFoundError:
        return False  # another process moved it meanwhile
    except FileExistsError:
        return False  # another process made or moved the file meanwhile
    for extra in _COMPANIONS:
        with contextlib.suppress(FileNotFoundError):
            Path(f"{legacy}{extra}").unlink()
    log.info(
        "this device's %s file %s is now %s (named after the storage's identity)",
        what,
        legacy.name,
        path.name,
    )
    return True


def _fold_log(path: Path) -> None:
    """Write what the write-ahead log of the SQLite file ``path`` holds into the file, so
    that the file alone holds everything (it is then moved without its log). A file
    that cannot be opened is moved as it is (the outbox's open sets it aside)."""
    try:  # never created here: a file another process moved meanwhile stays gone
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=30)
    except sqlite3.Error:
        return
    try:
        with contextlib.suppress(sqlite3.Error):
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def _retire_outbox(legacy: Path, storage: Storage) -> None:
    """An earlier version's outbox of this spelling, next to the identity's own."""
    try:
        db = sqlite3.connect(f"{legacy.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            waiting = db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return  # not an outbox we can read: left as it is
    if waiting:
        log.warning(
            "an outbox of an earlier version for %s (%s) holds %d undelivered event(s) "
            "queued under another way of writing the storage's folder; it is kept as it "
            "is and not sent (sending them now would fork this device's chain)",
            storage.describe(),
            legacy,
            waiting,
        )
        return
    _fold_log(legacy)
    with contextlib.suppress(OSError):
        move_aside(legacy, legacy.with_name(aside_name(legacy.name, "superseded")))
        for extra in _COMPANIONS:
            with contextlib.suppress(FileNotFoundError):
                Path(f"{legacy}{extra}").unlink()
