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

A storage's identity changes when the folder a spelling names changes: the data moved
and the link to it re-pointed, the synced folder moved to another disk, a drive mounted
as ``/media/u/DRIVE1`` instead of ``DRIVE``. The files then follow the storage as the
user wrote it (``_follow``): each outbox records the spellings it was opened under and
what each named (``Outbox.note_name``); a storage opened under an identity that has no
outbox yet takes over (renames, with its index) the outbox recorded under the same
spelling for another folder, when that folder is gone (missing or empty). Named after
the resolved path alone, such an outbox was silently left behind with its queued
messages and chain heads, and when the folder came back it delivered them on places of
the chain the device had used since: a fork (red team rt76). When the other folder is
still there, the spelling now names another storage: its outbox stays with it (its
heads are the heads of *that* storage's rooms; here the chain continues from what this
storage holds), and messages waiting in it are said, never dropped silently.

Blocking (file system, SQLite): called on a thread, never the event loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
from pathlib import Path

from ..index import index_path_for
from ..index.db import database_opening
from ..osfiles import move_aside
from ..storage.base import Storage
from .outbox import Outbox, OutboxSetAside, aside_name, open_outbox

log = logging.getLogger("bucket_chat.sync")


def outbox_path_for(data_dir: Path, storage_id: str) -> Path:
    """The outbox file of the storage whose identity is ``storage_id``."""
    digest = hashlib.sha256(storage_id.encode("utf-8")).hexdigest()[:20]
    return data_dir / "outbox" / f"{digest}.sqlite3"


_COMPANIONS = ("-wal", "-shm", "-journal")


def index_file(data_dir: Path, storage: Storage) -> Path:
    """This device's index of ``storage`` (an earlier version's file taken over; the
    files of the folder this spelling named before followed: ``_follow``)."""
    path = index_path_for(data_dir, storage.identity)
    for legacy in {index_path_for(data_dir, name) for name in _earlier_names(storage)}:
        if legacy != path:
            _adopt(path, legacy, "index")
    if not path.exists():
        _follow(data_dir, storage)
    return path


def outbox_file(data_dir: Path, storage: Storage) -> Path:
    """This device's outbox of ``storage`` (an earlier version's file taken over; the
    outbox of the folder this spelling named before followed: ``_follow``)."""
    path = outbox_path_for(data_dir, storage.identity)
    for legacy in {outbox_path_for(data_dir, name) for name in _earlier_names(storage)}:
        if legacy != path and not _adopt(path, legacy, "outbox") and legacy.exists():
            _retire_outbox(legacy, storage)
    if not path.exists():
        _follow(data_dir, storage)
    return path


def _earlier_names(storage: Storage) -> list[str]:
    """What earlier versions named this device's files of ``storage`` after: the spelling
    (before rt71), and a folder's resolved path with its case as written (before rt76
    folded case on every system that ignores it, Linux's case-insensitive volumes
    included)."""
    place = _place(storage)
    return [storage.url] if place is None else [storage.url, place]


def open_device_outbox(data_dir: Path, storage: Storage) -> tuple[Outbox, OutboxSetAside | None]:
    """This device's outbox of ``storage`` opened (``outbox_file``, ``open_outbox``), the
    spelling used and what it names recorded in it (``Outbox.note_name``)."""
    box, set_aside = open_outbox(outbox_file(data_dir, storage), storage.describe())
    try:
        box.note_name(storage.url, storage.identity, _place(storage))
    except sqlite3.Error as exc:  # busy past the timeout: only following a move needs it
        log.warning("could not record %s in its outbox: %s", storage.describe(), exc)
    return box, set_aside


def _place(storage: Storage) -> str | None:
    """The folder ``storage`` is, resolved, its case as on disk (None: not a folder)."""
    if "://" in storage.url or not os.path.isabs(storage.url):
        return None
    real = os.path.realpath(storage.url)
    return real if os.path.isdir(real) else None


def _gone(place: str | None) -> bool:
    """Whether the folder a storage was at is gone: missing, or an empty folder (a
    drive's mount point left behind, the drive mounted elsewhere)."""
    if place is None:
        return False
    try:
        with os.scandir(place) as entries:
            return next(entries, None) is None
    except FileNotFoundError:
        return True
    except NotADirectoryError:
        return True
    except OSError:
        return False  # there, but not readable now: not taken over


def _same_folder(place: str | None, here: str) -> bool:
    """Whether the folder a storage was at is the folder it is at now (its identity
    named differently: a version that names it otherwise)."""
    try:
        return place is not None and os.path.samefile(place, here)
    except OSError:
        return False


def _follow(data_dir: Path, storage: Storage) -> None:
    """The storage written ``storage.url`` has no outbox under its identity: take over
    the one recorded under the same spelling for a folder that is gone (the data moved;
    its queue and chain heads with it, and its index), and say when one recorded so is
    left where it is with messages waiting in it. Under the new file's opening lock, so
    that two processes doing it at once take it over once (the other finds it there)."""
    new = outbox_path_for(data_dir, storage.identity)
    here = _place(storage)
    folder = data_dir / "outbox"
    if here is None or not folder.is_dir():
        return  # a cloud storage's identity is its URL; a folder not there has nothing
    with database_opening(new, "outbox"):
        if new.exists():
            return
        found = [
            (seen, path, identity, place, waiting)
            for path in folder.glob("*.sqlite3")
            if path != new
            for identity, place, seen, waiting in _recorded(path, storage.url)
            if identity != storage.identity and outbox_path_for(data_dir, identity) == path
        ]
        taken = False  # the one last seen under this spelling is taken
        for _seen, path, identity, place, waiting in sorted(found, reverse=True):
            if not taken and (_gone(place) or _same_folder(place, here)):
                taken = _take_over(data_dir, path, new, storage, identity, waiting)
                if taken or new.exists():
                    continue
            if waiting:
                log.warning(
                    "this device's outbox %s holds %d undelivered event(s) queued when %s "
                    "named the folder %s; it now names %s, another folder, so they are not "
                    "sent there (that would continue chains of another storage's rooms): "
                    "they wait until %s is opened again",
                    path,
                    waiting,
                    storage.url,
                    place or identity,
                    here,
                    place or identity,
                )


def _recorded(path: Path, spec: str) -> list[tuple[str, str | None, float, int]]:
    """What the outbox at ``path`` recorded ``spec`` naming (identity, place, when),
    with how many events wait in it; nothing when it cannot be read (an earlier
    version's file, a damaged one)."""
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return []
    try:
        rows = db.execute(
            "SELECT identity, place, seen FROM names WHERE spec = ?", (spec,)
        ).fetchall()
        if not rows:
            return []
        waiting = db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
    except sqlite3.Error:
        return []
    finally:
        db.close()
    return [(identity, place, seen, waiting) for identity, place, seen in rows]


def _take_over(
    data_dir: Path, old: Path, new: Path, storage: Storage, identity: str, waiting: int
) -> bool:
    """Move the outbox ``old`` (of the folder ``identity``, gone) to ``new``, and that
    folder's index to the storage's, unless it has one."""
    if not _adopt(new, old, "outbox"):
        return False  # another process moved it, or made the new one, meanwhile
    log.warning(
        "the storage %s is now the folder %s (it was %s, not there any more): this "
        "device's outbox follows it, with its %d undelivered event(s) and chain heads "
        "(%s is now %s)",
        storage.url,
        storage.identity,
        identity,
        waiting,
        old.name,
        new.name,
    )
    _adopt(index_path_for(data_dir, storage.identity), index_path_for(data_dir, identity), "index")
    return True


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
