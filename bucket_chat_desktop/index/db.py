"""One SQLite database per storage: a cache, never the truth.

Deleting it costs a resync from storage and nothing else: messages not yet delivered live
in the outbox (a separate file), and everything here is re-derived from storage. A
database that cannot be opened or migrated is moved aside and rebuilt.

Events are stored as their raw JSON line together with the signature verdict, so a room
is rebuilt without checking signatures again; the last audit's timeline (display order
and trust states) is stored too, so the newest screen of a room is one indexed query.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

from ..osfiles import open_fd
from ..protocol.audit import Assessed, AuditResult, TrustState
from ..protocol.findings import Finding, Kind

log = logging.getLogger("bucket_chat.index")
P = ParamSpec("P")
R = TypeVar("R")

SCHEMA_VERSION = 1

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE segments (
        room_id TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT,
        read_at INTEGER NOT NULL,
        PRIMARY KEY (room_id, path)
    );
    CREATE TABLE events (
        room_id TEXT NOT NULL,
        path TEXT NOT NULL,
        line INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        raw TEXT NOT NULL,
        sig_ok INTEGER,
        sig_why TEXT NOT NULL,
        PRIMARY KEY (room_id, path, line)
    );
    CREATE TABLE segment_findings (
        room_id TEXT NOT NULL,
        path TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        line INTEGER,
        event_id TEXT
    );
    CREATE INDEX segment_findings_room ON segment_findings (room_id, path);
    CREATE TABLE timeline (
        room_id TEXT NOT NULL,
        pos INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        path TEXT NOT NULL,
        line INTEGER NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (room_id, pos)
    );
    CREATE TABLE findings (
        room_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        path TEXT,
        line INTEGER,
        event_id TEXT
    );
    CREATE INDEX findings_room ON findings (room_id);
    CREATE TABLE rooms (
        room_id TEXT PRIMARY KEY,
        name TEXT,
        signed INTEGER NOT NULL DEFAULT 0,
        last_ts INTEGER NOT NULL DEFAULT 0,
        last_preview TEXT,
        errors INTEGER NOT NULL DEFAULT 0,
        history_complete INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE pins (
        sender_id TEXT NOT NULL,
        sender_key TEXT NOT NULL,
        source TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        PRIMARY KEY (sender_id, sender_key)
    );
    CREATE TABLE cursors (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
}


_POSIX = os.name == "posix"


def ensure_private_dir(folder: Path) -> None:
    """Create ``folder`` (and parents) and make it the user's own (0700; a folder that
    already existed with looser modes is fixed). Windows keeps its inherited ACLs."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _POSIX:
        with contextlib.suppress(OSError):  # not ours (a shared parent): leave it be
            os.chmod(folder, 0o700)


def secure_database_file(path: Path) -> None:
    """Make an SQLite file private before SQLite opens it: the index and the outbox hold
    every message in clear text. The file is created 0600 (SQLite gives its -wal, -shm
    and -journal files the database file's mode) and files left 0644 by older versions
    are fixed, companions included. Links are not followed."""
    ensure_private_dir(path.parent)
    if not _POSIX:
        return
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = open_fd(path, flags, 0o600)
    except OSError as exc:  # a link or a read-only file: SQLite says what it thinks
        log.warning("could not make %s private: %s", path, exc)
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for extra in ("-wal", "-shm", "-journal"):
        companion = Path(f"{path}{extra}")
        try:
            if stat.S_ISREG(os.lstat(companion).st_mode):
                os.chmod(companion, 0o600)
        except FileNotFoundError:
            continue


def index_path_for(data_dir: Path, storage_url: str) -> Path:
    digest = hashlib.sha256(storage_url.encode("utf-8")).hexdigest()[:20]
    return data_dir / "index" / f"{digest}.sqlite3"


@dataclass(frozen=True, slots=True)
class IndexedEvent:
    """An event as cached: its raw line and its signature verdict."""

    path: str
    line: int
    event_id: str
    timestamp_ms: int
    raw: str
    sig_ok: bool | None
    sig_why: str


@dataclass(frozen=True, slots=True)
class TimelineRow:
    pos: int
    raw: str
    state: TrustState
    reason: str
    path: str
    line: int


def _locked(method: Callable[P, R]) -> Callable[P, R]:
    """Serialise every use of the shared connection: the engine's worker thread and the GUI
    thread both use the index, and a Python sqlite3 connection must not be used by two
    threads at once (it can crash the interpreter, and one thread's statements land in
    the other's transaction)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with args[0]._lock:  # type: ignore[attr-defined]
            return method(*args, **kwargs)

    wrapper.takes_index_lock = True  # type: ignore[attr-defined]  # checked by a test
    return wrapper


class Index:
    """Synchronous on purpose: the engine runs it on its worker thread (SQLite is quick but
    the UI thread must never wait on disk); every method is serialised by a lock."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self._db = conn
        self.path = path
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: Path | None, storage_url: str = "") -> Index:
        """Open (creating or migrating) the index; a broken file is moved aside."""
        if path is None:
            return cls._open_conn(sqlite3.connect(":memory:", check_same_thread=False), None, "")
        secure_database_file(path)
        try:
            return cls._open_conn(
                sqlite3.connect(path, check_same_thread=False, timeout=30), path, storage_url
            )
        except sqlite3.DatabaseError as exc:
            broken = path.with_name(f"{path.name}.broken-{int(time.time())}")
            log.warning("index %s is unusable (%s); moved to %s and rebuilt", path, exc, broken)
            path.replace(broken)
            for extra in ("-wal", "-shm"):
                Path(f"{path}{extra}").unlink(missing_ok=True)
            secure_database_file(path)
            return cls._open_conn(
                sqlite3.connect(path, check_same_thread=False, timeout=30), path, storage_url
            )

    @classmethod
    def _open_conn(cls, conn: sqlite3.Connection, path: Path | None, url: str) -> Index:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"index schema {version} is newer than this app's {SCHEMA_VERSION}"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                with conn:
                    conn.executescript(_MIGRATIONS[target])
                    conn.execute(f"PRAGMA user_version = {target}")
            if url:
                with conn:
                    conn.execute(
                        "INSERT OR IGNORE INTO cursors (name, value) VALUES ('storage_url', ?)",
                        (url,),
                    )
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return cls(conn, path)

    @_locked
    def close(self) -> None:
        self._db.close()

    # -- segments and events --------------------------------------------------------------

    @_locked
    def known_segments(self, room_id: str) -> dict[str, int]:
        rows = self._db.execute("SELECT path, size FROM segments WHERE room_id = ?", (room_id,))
        return dict(rows.fetchall())

    @_locked
    def add_segment(
        self,
        room_id: str,
        path: str,
        size: int,
        etag: str | None,
        events: Sequence[IndexedEvent],
        findings: Sequence[Finding],
    ) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO segments VALUES (?, ?, ?, ?, ?)",
                (room_id, path, size, etag, int(time.time())),
            )
            self._db.execute("DELETE FROM events WHERE room_id = ? AND path = ?", (room_id, path))
            self._db.executemany(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        room_id,
                        e.path,
                        e.line,
                        e.event_id,
                        e.timestamp_ms,
                        e.raw,
                        None if e.sig_ok is None else int(e.sig_ok),
                        e.sig_why,
                    )
                    for e in events
                ],
            )
            self._db.execute(
                "DELETE FROM segment_findings WHERE room_id = ? AND path = ?", (room_id, path)
            )
            self._db.executemany(
                "INSERT INTO segment_findings VALUES (?, ?, ?, ?, ?, ?)",
                [(room_id, path, f.kind.value, f.message, f.line, f.event_id) for f in findings],
            )

    @_locked
    def room_segments(self, room_id: str) -> list[tuple[str, list[IndexedEvent], list[Finding]]]:
        """Every cached segment of a room with its events and findings, in path order."""
        findings: dict[str, list[Finding]] = {}
        for path, kind, message, line, event_id in self._db.execute(
            "SELECT path, kind, message, line, event_id FROM segment_findings WHERE room_id = ?",
            (room_id,),
        ):
            findings.setdefault(path, []).append(Finding(Kind(kind), message, path, line, event_id))
        events: dict[str, list[IndexedEvent]] = {}
        for path, line, event_id, ts, raw, sig_ok, sig_why in self._db.execute(
            "SELECT path, line, event_id, timestamp_ms, raw, sig_ok, sig_why FROM events "
            "WHERE room_id = ? ORDER BY path, line",
            (room_id,),
        ):
            ok = None if sig_ok is None else bool(sig_ok)
            events.setdefault(path, []).append(
                IndexedEvent(path, line, event_id, ts, raw, ok, sig_why)
            )
        return [
            (path, events.get(path, []), findings.get(path, []))
            for (path,) in self._db.execute(
                "SELECT path FROM segments WHERE room_id = ? ORDER BY path", (room_id,)
            )
        ]

    # -- audits --------------------------------------------------------------------------------

    @_locked
    def save_audit(self, room_id: str, result: AuditResult, *, history_complete: bool) -> None:
        """Replace the room's cached timeline and findings with ``result``."""
        with self._db:
            self._db.execute("DELETE FROM timeline WHERE room_id = ?", (room_id,))
            self._db.executemany(
                "INSERT INTO timeline VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (room_id, pos, a.event.event_id, a.path, a.line, a.state.value, a.reason)
                    for pos, a in enumerate(result.timeline)
                ],
            )
            self._db.execute("DELETE FROM findings WHERE room_id = ?", (room_id,))
            self._db.executemany(
                "INSERT INTO findings VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (room_id, f.kind.value, f.message, f.path, f.line, f.event_id)
                    for f in result.findings
                ],
            )
            last = result.timeline[-1].event if result.timeline else None
            self._db.execute(
                "INSERT INTO rooms (room_id, last_ts, last_preview, errors, history_complete) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id) DO UPDATE SET "
                "last_ts = excluded.last_ts, last_preview = excluded.last_preview, "
                "errors = excluded.errors, history_complete = excluded.history_complete",
                (
                    room_id,
                    last.timestamp_ms if last else 0,
                    (last.body or "")[:200] if last else None,
                    len(result.errors),
                    int(history_complete),
                ),
            )

    @_locked
    def append_timeline(self, room_id: str, start: int, items: Sequence[Assessed]) -> None:
        """Append assessed events at positions ``start``… after an incremental audit."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO timeline VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (room_id, start + i, a.event.event_id, a.path, a.line, a.state.value, a.reason)
                    for i, a in enumerate(items)
                ],
            )

    @_locked
    def newest(self, room_id: str, limit: int, before: int | None = None) -> list[TimelineRow]:
        """The newest ``limit`` cached rows before position ``before``, oldest first."""
        bound = before if before is not None else 2**62
        rows = self._db.execute(
            "SELECT t.pos, e.raw, t.state, t.reason, t.path, t.line FROM timeline t "
            "JOIN events e ON e.room_id = t.room_id AND e.path = t.path AND e.line = t.line "
            "WHERE t.room_id = ? AND t.pos < ? ORDER BY t.pos DESC LIMIT ?",
            (room_id, bound, limit),
        ).fetchall()
        return [
            TimelineRow(pos, raw, TrustState(state), reason, path, line)
            for pos, raw, state, reason, path, line in reversed(rows)
        ]

    @_locked
    def timeline_length(self, room_id: str) -> int:
        row = self._db.execute(
            "SELECT COALESCE(MAX(pos) + 1, 0) FROM timeline WHERE room_id = ?", (room_id,)
        ).fetchone()
        return int(row[0])

    @_locked
    def findings(self, room_id: str) -> list[Finding]:
        return [
            Finding(Kind(kind), message, path, line, event_id)
            for kind, message, path, line, event_id in self._db.execute(
                "SELECT kind, message, path, line, event_id FROM findings WHERE room_id = ?",
                (room_id,),
            )
        ]

    # -- rooms ---------------------------------------------------------------------------------

    @_locked
    def set_room_info(self, room_id: str, name: str | None, signed: bool) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO rooms (room_id, name, signed) VALUES (?, ?, ?) "
                "ON CONFLICT (room_id) DO UPDATE SET "
                "name = excluded.name, signed = excluded.signed",
                (room_id, name, int(signed)),
            )

    @_locked
    def rooms(self) -> list[dict[str, object]]:
        cols = (
            "room_id",
            "name",
            "signed",
            "last_ts",
            "last_preview",
            "errors",
            "history_complete",
        )
        return [
            dict(zip(cols, row, strict=True))
            for row in self._db.execute(f"SELECT {', '.join(cols)} FROM rooms ORDER BY room_id")
        ]

    # -- trust pins ------------------------------------------------------------------------------

    @_locked
    def pins(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for sender, key in self._db.execute("SELECT sender_id, sender_key FROM pins"):
            out.setdefault(sender, set()).add(key)
        return out

    @_locked
    def add_pins(self, pairs: Iterable[tuple[str, str]], source: str = "tofu") -> None:
        now = int(time.time())
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO pins VALUES (?, ?, ?, ?)",
                [(s, k, source, now) for s, k in pairs],
            )

    @_locked
    def user_verified_keys(self) -> set[str]:
        return {k for (k,) in self._db.execute("SELECT sender_key FROM pins WHERE source = 'user'")}

    @_locked
    def confirmed_keys(self, sender_id: str) -> set[str]:
        """The keys the person confirmed (compared fingerprints) as ``sender_id``'s."""
        return {
            k
            for (k,) in self._db.execute(
                "SELECT sender_key FROM pins WHERE source = 'user' AND sender_id = ?",
                (sender_id,),
            )
        }

    @_locked
    def mark_verified(self, sender_id: str, sender_key: str) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO pins VALUES (?, ?, 'user', ?) ON CONFLICT (sender_id, sender_key) "
                "DO UPDATE SET source = 'user'",
                (sender_id, sender_key, int(time.time())),
            )

    # -- cursors ---------------------------------------------------------------------------------

    @_locked
    def cursor(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    @_locked
    def set_cursor(self, name: str, value: str) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO cursors VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = ?",
                (name, value, value),
            )

    @_locked
    def cursors(self, prefix: str) -> Mapping[str, str]:
        return dict(
            self._db.execute(
                "SELECT name, value FROM cursors WHERE name >= ? AND name < ?",
                (prefix, prefix + "\uffff"),
            ).fetchall()
        )
