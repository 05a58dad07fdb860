"""Where a key of this device has written, as this device knows it, and a backup of a key
before ``setup-keys --force`` replaces it (red team rt72).

A key that wrote in a room cannot be replaced by a new one: readers take a second key
for the same user id, which no key of theirs introduced, for someone else writing as them
(PROTOCOL.md section 7: a key-conflict, every message of that user shown key-changed),
and once the old key is deleted nothing can introduce the new one. What this device
knows of its key's writing is in its outboxes (the head of the key's chain per room, what
waits to be sent) and its indexes (the events it read, with their signatures checked),
one of each per storage, under ``data_dir()``."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ..keys import KeysError, KeyStore
from ..keys.identity import Identity
from ..keys.passphrase import DefaultPassphraseProvider
from ..keys.store import EncryptedFileStore, export_backup, key_file_name
from ..osfiles import ensure_private_dir, read_regular_file, write_atomic

MAX_BACKUP_BYTES = 64 * 1024


class KeyUseUnknown(Exception):
    """A file that says where the key wrote could not be read: nothing is replaced."""


@contextlib.contextmanager
def _db(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        yield db
    finally:
        db.close()


def _storage_url(index_file: Path) -> str:
    """The storage an index (or the outbox of the same name) belongs to, as its URL."""
    if not index_file.is_file():
        return ""
    try:
        with _db(index_file) as db:
            row = db.execute("SELECT value FROM cursors WHERE name = 'storage_url'").fetchone()
    except sqlite3.Error:
        return ""
    return str(row[0]) if row else ""


def rooms_written_by(data_dir: Path, key_text: str) -> list[tuple[str, str]]:
    """``(storage URL or "", room id)`` of every room this device knows ``key_text`` wrote
    in (or has something it signed waiting to be sent), sorted. What the app keeps for it
    to sign, unsigned, is not writing: ``kept_sends`` counts that. Raises
    ``KeyUseUnknown`` when one of the files cannot be read: then it is not known."""
    found: set[tuple[str, str]] = set()
    needle = f'"sender_key":"{key_text}"'
    queries = {
        "outbox": (
            "SELECT room_id FROM heads WHERE sender_key = ? AND line IS NOT NULL "
            "UNION SELECT room_id FROM pending WHERE sender_key = ?",
            (key_text, key_text),
        ),
        # A good signature by this key: its event, whoever's device wrote it. The text
        # search only picks candidates: a member's own event may quote the key anywhere
        # in its content (red team rt74), so the event's own field is what counts.
        "index": (
            "SELECT room_id, raw FROM events WHERE sig_ok = 1 AND instr(raw, ?) > 0",
            (needle,),
        ),
    }
    for folder, (query, params) in queries.items():
        for path in _files(data_dir, folder):
            try:
                with _db(path) as db:
                    rows = db.execute(query, params)
                    if folder == "index":
                        rooms = [str(r[0]) for r in rows if _signed_by(r[1], key_text)]
                    else:
                        rooms = [str(r[0]) for r in rows]
            except sqlite3.Error as exc:
                raise KeyUseUnknown(f"cannot read {path}: {exc}") from exc
            if rooms:
                url = _storage_url(data_dir / "index" / path.name)
                found.update((url, room) for room in rooms)
    return sorted(found)


def kept_sends(data_dir: Path, key_text: str) -> list[tuple[str, str, int]]:
    """``(storage URL or "", room id, how many)`` of the sends the app keeps in this
    device's outboxes, unsigned, for ``key_text`` to sign (``Outbox.hold``: typed while
    the room was still being read, and the app quit before they could be signed),
    sorted. Only that key signs them, and the outbox is the only copy of what was typed.
    Raises ``KeyUseUnknown`` when an outbox cannot be read."""
    return _count_held(data_dir, "sender_key = ?", (key_text,))


def kept_for_other_keys(data_dir: Path, user_id: str, key_text: str) -> list[tuple[str, str, int]]:
    """As ``kept_sends``, those typed as ``user_id`` for a key other than ``key_text``
    (the key now: they wait for one that was replaced, or lost with its key store, and
    nothing on this device signs them unless it comes back)."""
    return _count_held(data_dir, "user_id = ? AND sender_key != ?", (user_id, key_text))


def _count_held(data_dir: Path, where: str, params: tuple[str, ...]) -> list[tuple[str, str, int]]:
    counted: dict[tuple[str, str], int] = {}
    for path in _files(data_dir, "outbox"):
        try:
            with _db(path) as db:
                table = db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'held'"
                ).fetchone()
                if table is None:
                    continue  # an outbox of a version that kept no sends
                rows = db.execute(
                    f"SELECT room_id, COUNT(*) FROM held WHERE {where} GROUP BY room_id", params
                ).fetchall()
        except sqlite3.Error as exc:
            raise KeyUseUnknown(f"cannot read {path}: {exc}") from exc
        url = _storage_url(data_dir / "index" / path.name)
        for room, n in rows:
            counted[(url, str(room))] = counted.get((url, str(room)), 0) + int(n)
    return sorted((url, room, n) for (url, room), n in counted.items())


def _files(data_dir: Path, folder: str) -> list[Path]:
    try:
        return sorted((data_dir / folder).glob("*.sqlite3"))
    except OSError as exc:
        raise KeyUseUnknown(f"cannot list {data_dir / folder}: {exc}") from exc


def _signed_by(raw: object, key_text: str) -> bool:
    """Whether the stored line ``raw`` is an event whose own ``sender_key`` is
    ``key_text`` (not one that quotes it in its content)."""
    try:
        doc = json.loads(raw) if isinstance(raw, str) else None
    except (ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and doc.get("sender_key") == key_text


def keep_backup(store: KeyStore, identity: Identity, key_dir: Path) -> tuple[Path, str]:
    """Write the key of ``identity`` to a new backup file in ``key_dir`` before it is
    replaced: ``(path, which passphrase opens it)``. A key file is copied as it is (its
    passphrase); a key in the keyring is encrypted under a passphrase asked for now (or
    ``BUCKET_CHAT_PASSPHRASE``). Raises ``KeysError`` when it cannot be written: then the
    key must not be deleted."""
    user_id = identity.user_id
    if isinstance(store, EncryptedFileStore):
        source = store.path_for(user_id)
        try:
            data = read_regular_file(source, MAX_BACKUP_BYTES)
        except OSError as exc:
            raise KeysError(f"Cannot read the key file {source} to back it up: {exc}") from exc
        opens = "the passphrase of the key file it was"
        key_dir = store.directory
    else:
        passphrase = DefaultPassphraseProvider()(user_id, True)
        data = export_backup(identity, passphrase)
        opens = "the passphrase just chosen"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = key_dir / f"{key_file_name(user_id)}.replaced-{stamp}-{identity.short_fingerprint}"
    try:
        ensure_private_dir(key_dir)
        write_atomic(path, data, overwrite=False)
    except OSError as exc:
        raise KeysError(f"Cannot write a backup of the old key to {path}: {exc}") from exc
    return path, opens
