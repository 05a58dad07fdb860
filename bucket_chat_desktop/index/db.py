"""One SQLite database per storage: a cache, never the truth.

Deleting it costs a resync from storage and nothing else: messages not yet delivered live
in the outbox (a separate file), and everything here is re-derived from storage. A
database that cannot be opened or migrated is moved aside and rebuilt.

Events are stored as their raw JSON line together with the signature verdict, so a room
is rebuilt without checking signatures again; the last audit's timeline (display order
and trust states, each with the hash of the event it judged: a line rewritten since is not
under it) is stored too, so the newest screen of a room is one indexed query.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, ParamSpec, TypeVar

from ..osfiles import LockTimeout, ensure_private_dir, exclusive_lock, open_fd
from ..protocol.attachments import message_text
from ..protocol.audit import (
    Assessed,
    AuditResult,
    PreparedSegment,
    Timeline,
    TrustState,
    is_slim_copy,
)
from ..protocol.event import Event, Malformed, parse_line
from ..protocol.findings import Finding, Kind
from .search import Query, SearchHit, SearchPage, build_query, make_snippet, search_text

log = logging.getLogger("bucket_chat.index")
P = ParamSpec("P")
R = TypeVar("R")

SCHEMA_VERSION = 8

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
    # Full-text search (``search.py`` says what is indexed and why trigrams). A document's
    # id is its ordering key (``_doc_key``: newest largest), so a common word's newest
    # hits are read first and the search stops at its limit. The FTS table holds only the
    # index; the text is in ``search_docs`` (an external-content table kept in step by the
    # triggers). Text is indexed after its segment is cached, not with it (``index_text``:
    # trigram indexing costs about as much as everything else a cold read does per event):
    # ``search_pending`` lists the segments whose text is not indexed yet — here, every
    # segment cached before search existed.
    2: """
    CREATE TABLE search_docs (
        id INTEGER PRIMARY KEY,
        room_id TEXT NOT NULL,
        path TEXT NOT NULL,
        line INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        source_id TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX search_docs_place ON search_docs (room_id, path);
    CREATE VIRTUAL TABLE search_fts USING fts5 (
        body, content = 'search_docs', content_rowid = 'id', tokenize = 'trigram'
    );
    CREATE TRIGGER search_docs_added AFTER INSERT ON search_docs BEGIN
        INSERT INTO search_fts (rowid, body) VALUES (new.id, new.body);
    END;
    CREATE TRIGGER search_docs_removed AFTER DELETE ON search_docs BEGIN
        INSERT INTO search_fts (search_fts, rowid, body) VALUES ('delete', old.id, old.body);
    END;
    CREATE TABLE search_pending (
        room_id TEXT NOT NULL,
        path TEXT NOT NULL,
        PRIMARY KEY (room_id, path)
    );
    INSERT OR IGNORE INTO search_pending SELECT room_id, path FROM segments;
    CREATE INDEX timeline_event ON timeline (room_id, event_id);
    """,
    # A search hit whose copy the last audit refused for all its good signature (signed
    # by one member's key under another's name): found by its place among the findings.
    3: """
    CREATE INDEX findings_place ON findings (room_id, path, line);
    """,
    # A saved verdict belongs to one exact event, not to a place: the hash of the event
    # it judged (a line rewritten in the storage since, with a good signature by another
    # key under the same event id, is another event). Rows saved before have none ('',
    # which no event has): they are shown as not checked yet until the room's next
    # audit is saved (``NOT_CHECKED``).
    4: """
    ALTER TABLE timeline ADD COLUMN hash TEXT NOT NULL DEFAULT '';
    """,
    # segments.etag holds content tags (``content_tags``). What versions before them
    # kept there is the service's ETag as a listing gave it, unchecked: a hostile one
    # could look like a content tag ("md5:…") and be compared with the bytes read again,
    # a false "changed in storage". Dropped: the next listing of each day gives them.
    5: """
    UPDATE segments SET etag = NULL;
    """,
    # The first room metadata this device used (``metadata.kept_form``): metadata is
    # written once, so any other read later is reported (``metadata-changed``) and this
    # one is kept. Rooms read before have none: the next metadata read is kept.
    6: """
    ALTER TABLE rooms ADD COLUMN metadata BLOB;
    """,
    # Trust on first use is a room's (``room_id``): a key first seen in one room decided
    # who spoke for that id in every room of the storage, so a member who wrote as
    # alice@… in a room of their own, read first, was trusted as alice where she writes
    # and her own key was the one "changed". The keys a person confirmed and this
    # device's own key stay storage-wide (``room_id`` ''). Pins of the old kind name no
    # room: dropped, each room pins again at its next whole read (a sender it cannot
    # decide is a ``key-conflict`` until then, never an impostor trusted).
    7: """
    CREATE TABLE pins_by_room (
        sender_id TEXT NOT NULL,
        sender_key TEXT NOT NULL,
        source TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        room_id TEXT NOT NULL,
        PRIMARY KEY (sender_id, sender_key, room_id)
    );
    INSERT INTO pins_by_room
        SELECT sender_id, sender_key, source, first_seen, '' FROM pins WHERE source != 'tofu';
    DROP TABLE pins;
    ALTER TABLE pins_by_room RENAME TO pins;
    CREATE INDEX pins_room ON pins (room_id);
    """,
    # The last saved audit's rules, as two facts: ``history_complete`` (a pass read the
    # whole history: the final rules) and ``history_partial`` (part of it could not be
    # read: no trust on first use). Before, only "complete and not partial" was saved, so
    # a complete but partial read came back as not complete and a room rebuilt from it
    # was judged by the provisional rules, which take keys on first use: an impostor the
    # read showed as key-changed was shown verified (red team rt78). A row saved as not
    # complete cannot say which it was: partial, so it is never taken as whole (and the
    # rebuild's check against the saved verdicts, ``Index.saved_below_verified``, catches
    # a verdict warmer than the one saved).
    8: """
    ALTER TABLE rooms ADD COLUMN history_partial INTEGER NOT NULL DEFAULT 1;
    UPDATE rooms SET history_partial = 0 WHERE history_complete = 1;
    """,
}


_POSIX = os.name == "posix"


OPEN_WAIT = 120.0  # seconds one opener waits for another to finish creating or migrating
BUSY_TIMEOUT = 30.0  # seconds a statement waits for another connection's write


class IndexBusy(sqlite3.OperationalError):
    """The index could not be opened because other processes kept it busy (creating or
    migrating it, or writing) for longer than the bounded wait: nothing is wrong with the
    file, and it is left where it is."""


def opening_lock_path(path: Path) -> Path:
    """The lock file beside an SQLite file (``<name>.lock``): held while a process
    creates, checks or migrates it (`database_opening`)."""
    return path.with_name(f"{path.name}.lock")


@contextlib.contextmanager
def database_opening(path: Path, what: str = "database file") -> Iterator[None]:
    """Hold ``path``'s opening lock for the block: processes that open one SQLite file
    (the app, ``bucket-chat`` commands, several at once) create, check and migrate it one
    after the other. Without it, one process read schema version 0 while the other was
    creating the tables, met "table ... already exists", took the other's healthy new file
    for a broken one and moved it aside under the other's open connection (red team
    rt71). Waits at most `OPEN_WAIT` seconds, then raises `IndexBusy`."""
    try:
        with exclusive_lock(
            opening_lock_path(path),
            timeout=OPEN_WAIT,
            waiting=f"waiting for another program to finish opening the {what} {path}",
        ):
            yield
    except LockTimeout as exc:
        raise IndexBusy(
            f"the {what} {path} is busy: another Bucket Chat program (the app or a "
            f"bucket-chat command) has been opening it for over {OPEN_WAIT:g} seconds; "
            "try again when it has finished"
        ) from exc


def secure_database_file(path: Path, *, opening_held: bool = False) -> None:
    """Make an SQLite file private before SQLite opens it, and a new one a WAL database,
    under the file's opening lock (`database_opening`; ``opening_held``: the caller
    holds it already)."""
    with contextlib.nullcontext() if opening_held else database_opening(path):
        _make_private(path)
        _start_wal(path)


def _start_wal(path: Path) -> None:
    """Make a new (missing or empty) SQLite file a WAL database. Called under the opening
    lock: switching the journal mode takes an exclusive lock that SQLite does not wait for
    while another connection is switching too, and two processes creating one outbox at
    once failed with "database is locked" (2 of 200, red team rt71). Once the file is in
    WAL mode (kept in its header), every later switch to WAL is a no-op."""
    try:
        if path.stat().st_size > 0:
            return
    except FileNotFoundError:
        pass
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def _make_private(path: Path) -> None:
    """The index and the outbox hold every message in clear text. The file is created
    0600 (SQLite gives its -wal, -shm and -journal files the database file's mode) and
    files left 0644 by older versions are fixed, companions included. Links are not
    followed."""
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


# What a failed open says about the file. Corrupt or not a database (or an unexpected
# schema: "already exists", "no such table" are SQLITE_ERROR): the file is set aside and
# rebuilt. Busy, locked, out of space, unreadable, read-only...: the file is fine or
# moving it helps nothing; the error goes to the caller and the file stays.
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_ENVIRONMENT_ERRORS = {
    3,  # PERM
    _SQLITE_BUSY,
    _SQLITE_LOCKED,
    7,  # NOMEM
    8,  # READONLY
    9,  # INTERRUPT
    10,  # IOERR
    13,  # FULL
    14,  # CANTOPEN
    15,  # PROTOCOL
    23,  # AUTH
}


def _sets_aside(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is None or (code & 0xFF) not in _ENVIRONMENT_ERRORS


def index_path_for(data_dir: Path, storage_url: str) -> Path:
    digest = hashlib.sha256(storage_url.encode("utf-8")).hexdigest()[:20]
    return data_dir / "index" / f"{digest}.sqlite3"


class IndexedEvent(NamedTuple):
    """An event to cache: its raw line and its signature verdict (written, never read
    back in this form: what comes back is a ``CachedEvent``). A named tuple: a cold read
    makes one per event, and a frozen dataclass cost four times as much to build."""

    path: str
    line: int
    event_id: str
    timestamp_ms: int
    raw: str
    sig_ok: bool | None
    sig_why: str


@dataclass(frozen=True, slots=True)
class CachedEvent:
    """A cached event as it came back through the protocol parser: ``event`` is either a
    valid ``Event`` or a ``Malformed`` that says why the cached row is not one any more
    (the index is a local file another program can edit). There is no raw line to parse
    a second way."""

    path: str
    line: int
    event: Event | Malformed
    sig_ok: bool | None
    sig_why: str


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """A row of the last audit's cached timeline. ``state`` and ``reason`` are that
    audit's verdict as this device stored it, not a fresh one."""

    pos: int
    event: Event | Malformed
    state: TrustState
    reason: str
    path: str
    line: int


# What a saved verdict says of a line that is not the event it judged (``Index.newest``,
# ``Index.search``): the place was rewritten since (a damaged row), or the verdict was
# saved before verdicts named their event (not checked yet).
REWRITTEN = (
    "this line changed since this device's last check of the room: it is not the event "
    "that check judged here (another event under the same id: the storage rewrote it); "
    "it is checked again"
)
NOT_CHECKED = (
    "not checked yet: this device's last check of the room was saved by an earlier "
    "version that did not note which exact event it judged"
)


def _saved_verdict_stands(judged: str, event_hash: str, state: object) -> str:
    """How a saved verdict (``state``, naming the event ``judged`` by its hash) stands to
    the event now at its place: ``"kept"`` (it judged this event; or it was saved before
    verdicts named their event and is not "verified": such a verdict never makes the
    line look better), ``"unnoted"`` (a "verified" saved before verdicts named their
    event: not checked yet) or ``"rewritten"`` (another event stands there now). The
    cached first paint and search both ask this."""
    if judged == event_hash:
        return "kept"
    if judged:
        return "rewritten"
    return "unnoted" if state == TrustState.VERIFIED.value else "kept"


_ADD_TIMELINE = (
    "INSERT OR REPLACE INTO timeline (room_id, pos, event_id, path, line, state, reason, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _timeline_rows(
    room_id: str, start: int, items: Iterable[Assessed]
) -> Iterator[tuple[str, int, str, str, int, str, str, str]]:
    """Timeline rows for positions ``start``…, each with the hash of the event judged.
    A whole ``Timeline`` (an audit saved) is read by column, no row made
    (``Timeline.verdict_rows``)."""
    if isinstance(items, Timeline):
        for pos, (event_id, path, line, state, reason, event_hash) in enumerate(
            items.verdict_rows(), start
        ):
            yield (room_id, pos, event_id, path, line, state.value, reason, event_hash)
        return
    for pos, a in enumerate(items, start):
        ev = a.event
        yield (room_id, pos, ev.event_id, a.path, a.line, a.state.value, a.reason, ev.hash)


SEARCH_DEADLINE = 2.0  # seconds a search may run before it gives up
TEXT_BATCH = 1000  # events whose text ``index_text`` indexes in one go (about 40 ms)
# Bytes of stored event lines one ``index_text`` call reads at most (past its first
# line): trigram indexing of text with many distinct trigrams costs about 0.5 µs a
# character, so this is about 0.15 s at worst. A member's one segment of 64 bodies of
# 250,000 random characters (16 MB) was one call of 6-11 s on the state thread, and a
# send waited behind it (red team rt61); such a segment is now indexed a piece at a time.
TEXT_BYTES = 256 * 1024
# where a segment indexed in pieces goes on (``cursors``): [room id, path, next line]
TEXT_RESUME = "search_text_resume"
LOG_DAMAGED = 20  # damaged rows logged one by one per read; the rest are counted


def _reenter(
    raw: object, room_id: str, event_id: object, timestamp_ms: object
) -> Event | Malformed:
    """The one way a cached row becomes an event again: the protocol parser, then a check
    that the line is the one its columns describe. ``raw`` is read as a BLOB, so a row
    holding bad UTF-8, a number or nothing at all is a ``Malformed``, not an exception."""
    if not isinstance(raw, bytes):
        return Malformed(
            Kind.BAD_SCHEMA,
            f"the cached row holds {type(raw).__name__} where its JSON line belongs",
        )
    parsed = parse_line(raw, room_id)
    if isinstance(parsed, Malformed):
        return Malformed(parsed.kind, f"the cached line no longer parses: {parsed.reason}")
    if parsed.event_id != event_id or parsed.timestamp_ms != timestamp_ms:
        return Malformed(
            Kind.BAD_SCHEMA,
            "the cached line is not the event its row names (the index was changed "
            "outside this app)",
            parsed.event_id,
        )
    return parsed


def _finding(
    kind: object, message: object, path: object, line: object, event_id: object
) -> Finding | None:
    """A cached finding, or None when its row is not one this app wrote."""
    try:
        known = Kind(str(kind))
    except ValueError:
        return None
    return Finding(
        known,
        str(message),
        path if isinstance(path, str) else None,
        line if type(line) is int else None,
        event_id if isinstance(event_id, str) else None,
    )


class _DamageLog:
    """Logs damaged cached rows specifically, without letting a hostile file flood the log."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0

    def note(self, where: str, reason: str) -> None:
        self.count += 1
        if self.count <= LOG_DAMAGED:
            log.warning("index: %s %s is damaged and is not used: %s", self.what, where, reason)

    def close(self) -> None:
        if self.count > LOG_DAMAGED:
            log.warning(
                "index: %d more damaged rows of %s not listed", self.count - LOG_DAMAGED, self.what
            )


_DOC_TIME_BITS = 42  # milliseconds since 1970 up to the year 2109; later ones share the top
_DOC_SLOT_BITS = 20  # documents a millisecond can hold: their keys differ in these bits
_ADD_DOC = (
    "INSERT OR IGNORE INTO search_docs (id, room_id, path, line, event_id, source_id, body) "
    "VALUES ((SELECT COALESCE(MAX(id) + 1, :key) FROM search_docs WHERE id BETWEEN :key "
    f"AND :key + {(1 << _DOC_SLOT_BITS) - 1}), :room, :path, :line, :event, :source, :body)"
)


def _doc_key(timestamp_ms: int) -> int:
    """The first search key of a millisecond: keys sort like the events' times (clamped to
    1970..2109: a hostile time moves its own message in the results, nothing else), and
    each millisecond has room for 2**20 documents (the next free one is taken)."""
    ts = min(max(timestamp_ms, 0), (1 << _DOC_TIME_BITS) - 1)
    return ts << _DOC_SLOT_BITS


def _doc(room_id: str, path: str, line: int, event: Event) -> dict[str, object] | None:
    found = search_text(event)
    if found is None:
        return None
    target, body = found
    return {
        "key": _doc_key(event.timestamp_ms),
        "room": room_id,
        "path": path,
        "line": line,
        "event": target,
        "source": event.event_id,
        "body": body,
    }


def _where(path: object, line: object) -> str:
    return f"{str(path)[:200]}:{str(line)[:20]}"


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
        # Segments may wait for their text to be indexed (``index_text``): a hint read
        # without the lock by whoever schedules that work, True until a pass finds none.
        self.text_pending = True

    @contextlib.contextmanager
    def _released(self) -> Iterator[None]:
        """Inside a locked method: let other threads use the connection while this one
        does pure computation on rows it already fetched (no SQL in the block)."""
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()

    @classmethod
    def open(cls, path: Path | None, storage_url: str = "") -> Index:
        """Open (creating or migrating) the index; a broken file is moved aside. Creating,
        checking and migrating happen under the file's opening lock, so a file another
        process is creating is never judged (`database_opening`); a busy file is never
        moved aside (`IndexBusy` after a bounded wait)."""
        if path is None:
            return cls._open_conn(sqlite3.connect(":memory:", check_same_thread=False), None, "")
        with database_opening(path, "index"):
            try:
                secure_database_file(path, opening_held=True)
                return cls._open_conn(cls._connect(path), path, storage_url)
            except sqlite3.DatabaseError as exc:
                if not _sets_aside(exc):
                    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
                    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
                        raise IndexBusy(
                            f"the index {path} is busy: another Bucket Chat program (the "
                            f"app or a bucket-chat command) kept it locked for over "
                            f"{BUSY_TIMEOUT:g} seconds; try again when it has finished"
                        ) from exc
                    raise
                broken = path.with_name(f"{path.name}.broken-{int(time.time())}")
                log.warning("index %s is unusable (%s); moved to %s and rebuilt", path, exc, broken)
                path.replace(broken)
                for extra in ("-wal", "-shm"):
                    Path(f"{path}{extra}").unlink(missing_ok=True)
                secure_database_file(path, opening_held=True)
                return cls._open_conn(cls._connect(path), path, storage_url)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        return sqlite3.connect(path, check_same_thread=False, timeout=BUSY_TIMEOUT)

    @classmethod
    def open_reader(cls, path: Path) -> Index:
        """A second, read-only connection to an index another ``Index`` has opened (and
        migrated): WAL lets it read while the writer writes, and it sees only committed
        transactions, never half of one. Its methods that write fail (``query_only``)."""
        conn = sqlite3.connect(path, check_same_thread=False, timeout=BUSY_TIMEOUT)
        try:
            conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error:
            conn.close()
            raise
        return cls(conn, path)

    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """Reads in the block see one moment of the database (one read transaction), also
        while another connection writes: for a reader (``open_reader``), never a writer."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield
            finally:
                self._db.execute("COMMIT")

    read_snapshot.takes_index_lock = True  # type: ignore[attr-defined]  # held for the block

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
                with conn:  # each step whole or not at all
                    conn.executescript("BEGIN;\n" + _MIGRATIONS[target])
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
    def content_tags(self, room_id: str) -> dict[str, str]:
        """The content tag kept for each cached segment that has one (``etag`` column:
        ``storage.tag_of_bytes``, or a listing's tag learnt later; what caches before
        content tags kept there is dropped by migration 5)."""
        rows = self._db.execute(
            "SELECT path, etag FROM segments WHERE room_id = ? AND etag IS NOT NULL", (room_id,)
        )
        return dict(rows.fetchall())

    @_locked
    def set_content_tags(self, room_id: str, tags: Mapping[str, str]) -> None:
        """Keep content tags learnt after cached segments were read (``content_tags``)."""
        with self._db:
            self._db.executemany(
                "UPDATE segments SET etag = ? WHERE room_id = ? AND path = ?",
                [(tag, room_id, path) for path, tag in tags.items()],
            )

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
        with self._db:  # an IndexedEvent's fields are the events table's, in order
            rows = [(room_id, *e) for e in events]
            self._write_segment(room_id, path, size, etag, rows, findings)

    @_locked
    def add_prepared(
        self, room_id: str, segments: Sequence[tuple[str, int, str | None, PreparedSegment]]
    ) -> None:
        """Cache segments as read and verified — (path, size, etag, prepared) each — in one
        transaction: a reader sees all of them or none (a back-fill's slice of a few
        segments; one commit instead of one per segment). Each event's row is built here
        from the prepared segment at once (its line as stored, its verdict), with no
        ``IndexedEvent`` in between: this is a cold read's per-event path."""
        with self._db:
            for path, size, etag, prepared in segments:
                decoded = prepared.decoded
                self._write_segment(
                    room_id,
                    path,
                    size,
                    etag,
                    [
                        (
                            room_id,
                            loc.path,
                            loc.line,
                            loc.event.event_id,
                            loc.event.timestamp_ms,
                            raw.decode("utf-8"),
                            ok,
                            why,
                        )
                        for loc, raw, (ok, why) in zip(
                            decoded.events, decoded.lines, prepared.verdicts, strict=True
                        )
                    ],
                    decoded.findings,
                )

    def _write_segment(
        self,
        room_id: str,
        path: str,
        size: int,
        etag: str | None,
        rows: list[tuple[str, str, int, str, int, str, bool | None, str]],
        findings: Sequence[Finding],
    ) -> None:
        """Inside the caller's transaction: replace a segment's rows; its old searchable
        text goes, the new is indexed later (``index_text``). A verdict binds as SQLite's
        integer 1/0 (a ``bool`` is an ``int``) or NULL."""
        self._db.execute(
            "INSERT OR REPLACE INTO segments VALUES (?, ?, ?, ?, ?)",
            (room_id, path, size, etag, int(time.time())),
        )
        self._db.execute("DELETE FROM events WHERE room_id = ? AND path = ?", (room_id, path))
        self._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self._drop_text(room_id, path)
        self._db.execute("INSERT OR IGNORE INTO search_pending VALUES (?, ?)", (room_id, path))
        self.text_pending = True
        self._db.execute(
            "DELETE FROM segment_findings WHERE room_id = ? AND path = ?", (room_id, path)
        )
        if findings:
            self._db.executemany(
                "INSERT INTO segment_findings VALUES (?, ?, ?, ?, ?, ?)",
                [(room_id, path, f.kind.value, f.message, f.line, f.event_id) for f in findings],
            )

    @_locked
    def segment_paths(self, room_id: str) -> list[str]:
        """The paths of a room's cached segments, in order (for ``room_segments`` in
        batches: a large room is never all in memory at once)."""
        try:
            rows = self._db.execute(
                "SELECT path FROM segments WHERE room_id = ? ORDER BY path", (room_id,)
            ).fetchall()
        except sqlite3.OperationalError as exc:
            log.warning("index: room %r cannot be read back (%s); it is read again", room_id, exc)
            return []
        return [p for (p,) in rows if isinstance(p, str)]

    @_locked
    def room_segments(
        self, room_id: str, paths: Sequence[str] | None = None
    ) -> list[tuple[str, list[CachedEvent], list[Finding]]]:
        """The cached segments of a room (all, or those of ``paths``) with their events
        (re-entered through the parser: see ``CachedEvent``) and findings, in path order.
        A row SQLite itself cannot hand back (text that is not UTF-8) makes what was asked
        for uncached: it is read again."""
        damaged = _DamageLog(f"room {room_id[:200]!r}")
        try:
            return self._room_segments(room_id, damaged, paths)
        except sqlite3.OperationalError as exc:
            log.warning("index: room %r cannot be read back (%s); it is read again", room_id, exc)
            return []
        finally:
            damaged.close()

    def _room_segments(
        self, room_id: str, damaged: _DamageLog, only: Sequence[str] | None
    ) -> list[tuple[str, list[CachedEvent], list[Finding]]]:
        where, args = "room_id = ?", [room_id]
        if only is not None:
            where += f" AND path IN ({', '.join('?' * len(only))})"
            args.extend(only)
        findings: dict[str, list[Finding]] = {}
        for path, kind, message, line, event_id in self._db.execute(
            f"SELECT path, kind, message, line, event_id FROM segment_findings WHERE {where}",
            args,
        ):
            finding = _finding(kind, message, path, line, event_id)
            if finding is None:
                damaged.note(_where(path, line), f"finding of unknown kind {str(kind)[:40]!r}")
                continue
            findings.setdefault(path, []).append(finding)
        rows = self._db.execute(
            "SELECT path, line, event_id, timestamp_ms, CAST(raw AS BLOB), sig_ok, sig_why "
            f"FROM events WHERE {where} ORDER BY path, line",
            args,
        ).fetchall()
        paths = self._db.execute(
            f"SELECT path FROM segments WHERE {where} ORDER BY path", args
        ).fetchall()
        events: dict[str, list[CachedEvent]] = {}
        with self._released():  # parsing a large room takes a while: no SQL in here
            for path, line, event_id, ts, raw, sig_ok, sig_why in rows:
                ev = _reenter(raw, room_id, event_id, ts)
                if not (isinstance(path, str) and type(line) is int and isinstance(sig_why, str)):
                    ev = Malformed(Kind.BAD_SCHEMA, "the cached row's columns have the wrong types")
                if isinstance(ev, Malformed):
                    damaged.note(_where(path, line), ev.reason)
                ok = sig_ok if sig_ok is None else sig_ok == 1
                events.setdefault(str(path), []).append(
                    CachedEvent(str(path), line if type(line) is int else -1, ev, ok, str(sig_why))
                )
        return [(path, events.get(path, []), findings.get(path, [])) for (path,) in paths]

    # -- audits --------------------------------------------------------------------------------

    @_locked
    def save_audit(
        self,
        room_id: str,
        result: AuditResult,
        *,
        history_complete: bool,
        history_partial: bool,
    ) -> None:
        """Replace the room's cached timeline and findings with ``result``, and say by which
        rules it was made: ``history_complete`` (the final rules: a pass read through the
        whole history) and ``history_partial`` (part of it could not be read: nobody
        trusted on first use). A room rebuilt from the index is audited by the same."""
        with self._db:
            self._db.execute("DELETE FROM timeline WHERE room_id = ?", (room_id,))
            self._db.executemany(_ADD_TIMELINE, _timeline_rows(room_id, 0, result.timeline))
            self._db.execute("DELETE FROM findings WHERE room_id = ?", (room_id,))
            self._db.executemany(
                "INSERT INTO findings VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (room_id, f.kind.value, f.message, f.path, f.line, f.event_id)
                    for f in result.findings
                ],
            )
            last = result.timeline[-1].event if result.timeline else None
            if last is not None and is_slim_copy(last) and result.timeline:
                # A ledger that keeps no bodies: the preview comes from the cached line.
                item = result.timeline[-1]
                (whole,) = self.events_at(room_id, [(item.path, item.line)])
                if isinstance(whole, Event) and whole.hash == last.hash:
                    last = whole
            self._db.execute(
                "INSERT INTO rooms (room_id, last_ts, last_preview, errors, history_complete, "
                "history_partial) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (room_id) DO UPDATE SET "
                "last_ts = MAX(rooms.last_ts, excluded.last_ts), "
                "last_preview = excluded.last_preview, "
                "errors = excluded.errors, history_complete = excluded.history_complete, "
                "history_partial = excluded.history_partial",
                (
                    room_id,
                    # where the newest row is placed, not its own date: a member's next
                    # row dated 1970 is shown after their last one (red team rt79)
                    result.timeline.place_at(len(result.timeline) - 1) if last else 0,
                    message_text(last.content)[:200] if last else None,
                    len(result.errors),
                    int(history_complete),
                    int(history_partial),
                ),
            )

    @_locked
    def append_timeline(self, room_id: str, start: int, items: Sequence[Assessed]) -> None:
        """Append assessed events at positions ``start``… after an incremental audit."""
        with self._db:
            self._db.executemany(_ADD_TIMELINE, _timeline_rows(room_id, start, items))

    @_locked
    def insert_timeline(self, room_id: str, at: int, items: Sequence[Assessed]) -> None:
        """Place assessed events at positions ``at``… and move the rows from ``at`` on
        after them (``RoomLedger.try_place``: a few hundred rows at most), in one
        transaction: a reader sees the old order or the new one."""
        k = len(items)
        if not k:
            return
        with self._db:
            # Through negative positions: moved in place, one row could take the
            # position of another not moved yet (the key is (room_id, pos)).
            self._db.execute(
                "UPDATE timeline SET pos = -(pos + ?) - 1 WHERE room_id = ? AND pos >= ?",
                (k, room_id, at),
            )
            self._db.execute(
                "UPDATE timeline SET pos = -pos - 1 WHERE room_id = ? AND pos < 0", (room_id,)
            )
            self._db.executemany(_ADD_TIMELINE, _timeline_rows(room_id, at, items))

    @_locked
    def newest(self, room_id: str, limit: int, before: int | None = None) -> list[TimelineRow]:
        """The newest ``limit`` cached rows before position ``before``, oldest first. Each
        event re-enters through the parser; a damaged row comes back as a ``Malformed``
        (shown as such), and rows SQLite cannot hand back at all give an empty list. A
        saved verdict is handed out only with the very event it judged (same hash): a line
        rewritten since is a damaged row; a row saved without a hash (an older version's)
        is at best "unverified", not checked yet."""
        bound = before if before is not None else 2**62
        damaged = _DamageLog(f"timeline of room {room_id[:200]!r}")
        try:
            rows = self._db.execute(
                "SELECT t.pos, CAST(e.raw AS BLOB), t.state, t.reason, t.path, t.line, "
                "t.event_id, e.event_id, e.timestamp_ms, e.sig_ok, t.hash FROM timeline t "
                "JOIN events e ON e.room_id = t.room_id AND e.path = t.path AND e.line = t.line "
                "WHERE t.room_id = ? AND t.pos < ? ORDER BY t.pos DESC LIMIT ?",
                (room_id, bound, limit),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            log.warning("index: the timeline of room %r cannot be read (%s)", room_id, exc)
            return []
        out = []
        for pos, raw, state, reason, path, line, event_id, e_id, ts, sig_ok, judged in reversed(
            rows
        ):
            # The timeline and the events table must both name the line's event.
            ev = _reenter(raw, room_id, event_id if event_id == e_id else None, ts)
            if sig_ok == 0 and isinstance(ev, Event):
                # A line read since the timeline was saved (a segment rewritten), whose
                # signature failed: never shown under the verdict of what stood there.
                ev = Malformed(Kind.INVALID_SIGNATURE, "its signature failed on this device")
            try:
                trust = TrustState(state)
            except ValueError:
                trust = TrustState.INVALID
                ev = Malformed(Kind.BAD_SCHEMA, f"unknown cached trust state {str(state)[:40]!r}")
            stands = _saved_verdict_stands(judged, ev.hash, state) if isinstance(ev, Event) else ""
            if stands == "unnoted":
                trust, reason = TrustState.UNVERIFIED, NOT_CHECKED
            elif stands == "rewritten":  # however good its own signature
                ev = Malformed(Kind.REPLAY, REWRITTEN, ev.event_id)
            if not (isinstance(reason, str) and isinstance(path, str) and type(line) is int):
                ev = Malformed(Kind.BAD_SCHEMA, "the cached row's columns have the wrong types")
            if isinstance(ev, Malformed):
                damaged.note(_where(path, line), ev.reason)
                trust = TrustState.INVALID
            out.append(
                TimelineRow(
                    pos,
                    ev,
                    trust,
                    str(reason)[:2000],
                    str(path),
                    line if type(line) is int else -1,
                )
            )
        damaged.close()
        return out

    @_locked
    def events_at(self, room_id: str, places: Sequence[tuple[str, int]]) -> list[Event | Malformed]:
        """The cached events at ``places`` ((path, line) pairs), each re-entered through
        the parser; a place with no row, or one that does not parse, is a ``Malformed``.
        This is how the app reads message bodies its audit does not keep in memory: the
        caller checks that each is the event its audit judged (same hash)."""
        wanted: dict[str, list[int]] = {}
        for path, line in places:
            wanted.setdefault(path, []).append(line)
        found: dict[tuple[str, int], tuple[object, object, object]] = {}
        try:
            for path, lines in wanted.items():
                for start in range(0, len(lines), 500):
                    part = lines[start : start + 500]
                    marks = ", ".join("?" * len(part))
                    for line, raw, event_id, ts in self._db.execute(
                        "SELECT line, CAST(raw AS BLOB), event_id, timestamp_ms FROM events "
                        f"WHERE room_id = ? AND path = ? AND line IN ({marks})",
                        (room_id, path, *part),
                    ):
                        if type(line) is int:
                            found[(path, line)] = (raw, event_id, ts)
        except sqlite3.OperationalError as exc:
            log.warning("index: events of room %r cannot be read (%s)", room_id, exc)
        missing = Malformed(Kind.BAD_SCHEMA, "this device's cache no longer holds the line")
        with self._released():  # parsing: no SQL in here
            out: list[Event | Malformed] = []
            for place in places:
                got = found.get(place)
                out.append(missing if got is None else _reenter(got[0], room_id, *got[1:]))
        return out

    @_locked
    def timeline_is(self, room_id: str, items: Sequence[Assessed]) -> bool:
        """Whether the saved timeline is exactly ``items`` (each row's event, place and
        verdict, as ``save_audit`` writes them): then rows appended to ``items``' audit
        can be written at their positions. One read of the room's rows, a batch at a time
        (a million rows are never all in memory), no parsing: about half a save (0.2 s
        at 100,000 rows, ``benchmarks/timeline_save_bench.py``)."""
        expected = _timeline_rows(room_id, 0, items)
        try:
            if self.timeline_length(room_id) != len(items):
                return False
            saved = self._db.execute(
                "SELECT room_id, pos, event_id, path, line, state, reason, hash FROM timeline "
                "WHERE room_id = ? ORDER BY pos",
                (room_id,),
            )
            while batch := saved.fetchmany(5000):
                if batch != list(itertools.islice(expected, len(batch))):
                    return False
        except sqlite3.OperationalError as exc:
            log.warning("index: the timeline of room %r cannot be read (%s)", room_id, exc)
            return False
        return next(expected, None) is None

    @_locked
    def saved_below_verified(self, room_id: str) -> dict[str, TrustState] | None:
        """The saved timeline's verdicts other than "verified", by the hash of the event
        each judged (rows saved before verdicts named their event are left out): what a
        room rebuilt from the index must not judge better (``keeper.warmer_than_saved``).
        An unknown state counts as "invalid". None when the rows cannot be read: then
        nothing says the rebuild is not warmer than the saved read."""
        try:
            rows = self._db.execute(
                "SELECT hash, state FROM timeline WHERE room_id = ? AND state != ? AND hash != ''",
                (room_id, TrustState.VERIFIED.value),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            log.warning("index: the timeline of room %r cannot be read (%s)", room_id, exc)
            return None
        out: dict[str, TrustState] = {}
        for judged, state in rows:
            try:
                trust = TrustState(state)
            except ValueError:
                trust = TrustState.INVALID
            out[str(judged)] = trust
        return out

    @_locked
    def timeline_length(self, room_id: str) -> int:
        row = self._db.execute(
            "SELECT COALESCE(MAX(pos) + 1, 0) FROM timeline WHERE room_id = ?", (room_id,)
        ).fetchone()
        return int(row[0])

    @_locked
    def findings(self, room_id: str) -> list[Finding]:
        rows = self._db.execute(
            "SELECT kind, message, path, line, event_id FROM findings WHERE room_id = ?",
            (room_id,),
        )
        return [f for f in (_finding(*row) for row in rows) if f is not None]

    # -- search (``search.py``) ------------------------------------------------------------------

    @_locked
    def index_text(self, max_events: int = TEXT_BATCH, max_bytes: int = TEXT_BYTES) -> int:
        """Index the searchable text of cached segments not indexed yet, a few segments
        at a time (whole segments up to about ``max_events`` events, and never more than
        ``max_bytes`` of stored lines past the first), in one transaction. A segment
        larger than that is indexed in pieces, one a call, going on from the line
        ``TEXT_RESUME`` names. Returns the
        segments done or begun (0: nothing was waiting). Each line re-enters through the
        parser; a damaged row is left out."""
        try:
            return self._index_text(max_events, max_bytes)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                # the other program (the app, or ``bucket-chat search``) held the file
                # past the wait: nothing was indexed, and what waits still does
                log.info("index: search text not indexed this time (%s)", exc)
                return 0
            log.warning("index: message text cannot be indexed for search (%s)", exc)
            self.text_pending = False
            return 0
        except sqlite3.DatabaseError as exc:  # a damaged file: search says so when asked
            log.warning("index: message text cannot be indexed for search (%s)", exc)
            self.text_pending = False
            return 0

    def _index_text(self, max_events: int, max_bytes: int) -> int:
        """``index_text``'s work, in one IMMEDIATE transaction: the list of what waits,
        the resume cursor and the rows are read under the write lock, so two programs
        sharing the index (the app, ``bucket-chat search``) never index one piece twice,
        nor find their read snapshot stale when they write (red team rt62)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            waiting = self._db.execute(
                "SELECT rowid, room_id, path FROM search_pending ORDER BY rowid LIMIT 64"
            ).fetchall()
            if not waiting:
                self.text_pending = False
                return 0
            resume = self._text_resume()
            done = events = size = 0
            for rowid, room_id, path in waiting:
                if done and (events >= max_events or size >= max_bytes):
                    break
                start = 0
                if resume is not None and resume[:2] == (room_id, path):
                    start = resume[2]  # its first lines are indexed
                else:
                    self._drop_text(room_id, path)
                rows = self._db.execute(
                    "SELECT line, event_id, timestamp_ms, CAST(raw AS BLOB) FROM events "
                    "WHERE room_id = ? AND path = ? AND line >= ? ORDER BY line",
                    (room_id, path, start),
                )
                docs = []
                stopped_at = None
                for line, event_id, ts, raw in rows:
                    if events and size >= max_bytes:
                        stopped_at = line
                        break
                    events += 1
                    size += len(raw) if isinstance(raw, bytes) else 0
                    if not (isinstance(room_id, str) and type(line) is int):
                        continue
                    ev = _reenter(raw, room_id, event_id, ts)
                    if isinstance(ev, Event) and (d := _doc(room_id, path, line, ev)):
                        docs.append(d)
                self._db.executemany(_ADD_DOC, docs)
                if stopped_at is not None and type(stopped_at) is int:
                    self._set_text_resume(room_id, path, stopped_at)
                    return done + 1  # the rest of it next time
                if resume is not None and resume[:2] == (room_id, path):
                    self._db.execute("DELETE FROM cursors WHERE name = ?", (TEXT_RESUME,))
                # By its rowid: a row another program put there (a NULL, a number)
                # goes too, instead of being looked at again forever.
                self._db.execute("DELETE FROM search_pending WHERE rowid = ?", (rowid,))
                done += 1
        return done

    def _text_resume(self) -> tuple[str, str, int] | None:
        """The segment ``index_text`` indexed part of, and the line it goes on from."""
        row = self._db.execute("SELECT value FROM cursors WHERE name = ?", (TEXT_RESUME,))
        found = row.fetchone()
        try:
            room_id, path, line = json.loads(found[0]) if found is not None else (0, 0, 0)
        except (TypeError, ValueError):
            return None  # another program's value: the segment is indexed from its start
        if isinstance(room_id, str) and isinstance(path, str) and type(line) is int:
            return room_id, path, line
        return None

    def _set_text_resume(self, room_id: str, path: str, line: int) -> None:
        value = json.dumps([room_id, path, line])
        self._db.execute(
            "INSERT INTO cursors VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = ?",
            (TEXT_RESUME, value, value),
        )

    def _drop_text(self, room_id: object, path: object) -> None:
        """Inside the caller's transaction: remove a segment's searchable text. The FTS
        index must be told the exact text it indexed; if another program changed the
        stored text behind its back, SQLite calls the file malformed: the index is
        rebuilt from the stored text (consistent again) and the removal done then, so a
        damaged search index never stops a segment from being cached."""
        drop = "DELETE FROM search_docs WHERE room_id = ? AND path = ?"
        resume = self._text_resume()
        if resume is not None and resume[:2] == (room_id, path):
            # its text is indexed again from its first line (new rows, or a fresh start)
            self._db.execute("DELETE FROM cursors WHERE name = ?", (TEXT_RESUME,))
        self._db.execute("SAVEPOINT drop_text")
        try:
            self._db.execute(drop, (room_id, path))
        except sqlite3.DatabaseError as exc:
            self._db.execute("ROLLBACK TO drop_text")
            log.warning("index: the search index is damaged (%s); it is rebuilt", exc)
            self._db.execute("INSERT INTO search_fts (search_fts) VALUES ('rebuild')")
            self._db.execute(drop, (room_id, path))
        finally:
            self._db.execute("RELEASE drop_text")

    @_locked
    def text_backlog(self) -> int:
        """Cached segments whose text is not searchable yet."""
        try:
            return int(self._db.execute("SELECT COUNT(*) FROM search_pending").fetchone()[0])
        except sqlite3.DatabaseError:
            return 0

    @_locked
    def search(
        self,
        query: str | Query,
        *,
        room_id: str | None = None,
        limit: int = 50,
        before: int | None = None,
        deadline: float = SEARCH_DEADLINE,
    ) -> SearchPage:
        """The newest messages whose text holds every term of ``query`` (in ``room_id``
        only, if given; older than the key ``before``, to page on). Never raises: a
        query that finds nothing, runs past ``deadline`` seconds or meets a damaged
        database gives a page that says so. Each hit's event re-enters through the
        parser and must still hold the text that was found; a hit whose event failed
        its signature check is left out (forged text is never shown as found), and so is
        one whose event id the last audit shows at another copy (a replay, PROTOCOL.md
        section 6: the text of a copy not shown is not a message of the room)."""
        q = query if isinstance(query, Query) else build_query(query)
        if q.empty or limit <= 0:
            return SearchPage((), query_cut=q.cut)
        where: list[str] = []
        args: dict[str, object] = {"n": limit + 1}
        if room_id is not None:
            where.append("d.room_id = :room")
            args["room"] = room_id
        for i, pattern in enumerate(q.likes):
            where.append(f"d.body LIKE :like{i} ESCAPE '\\'")
            args[f"like{i}"] = pattern
        if q.match:
            args["match"] = q.match
            if before is not None:
                where.append("search_fts.rowid < :before")
                args["before"] = before
            sql = (
                "SELECT d.id, d.room_id, d.path, d.line, d.event_id, d.source_id, d.body "
                "FROM search_fts JOIN search_docs d ON d.id = search_fts.rowid "
                f"WHERE search_fts MATCH :match {''.join(' AND ' + w for w in where)} "
                "ORDER BY search_fts.rowid DESC LIMIT :n"
            )
        else:  # only terms too short for trigrams: the newest documents, scanned
            if before is not None:
                where.append("d.id < :before")
                args["before"] = before
            sql = (
                "SELECT d.id, d.room_id, d.path, d.line, d.event_id, d.source_id, d.body "
                f"FROM search_docs d WHERE {' AND '.join(where) or '1'} "
                "ORDER BY d.id DESC LIMIT :n"
            )
        stop_at = time.monotonic() + deadline
        self._db.set_progress_handler(lambda: time.monotonic() > stop_at, 1000)
        try:
            rows = self._db.execute(sql, args).fetchall()
            hits = [h for h in (self._hit(row, q) for row in rows[:limit]) if h is not None]
        except sqlite3.OperationalError as exc:
            if time.monotonic() > stop_at:
                log.warning("search: gave up after %.1f s", deadline)
                return SearchPage((), error="the search took too long", query_cut=q.cut)
            log.warning("search: the index cannot be searched (%s)", exc)
            return SearchPage((), error=f"the index cannot be searched: {exc}", query_cut=q.cut)
        except sqlite3.DatabaseError as exc:
            log.warning("search: the index cannot be searched (%s)", exc)
            return SearchPage((), error=f"the index cannot be searched: {exc}", query_cut=q.cut)
        finally:
            self._db.set_progress_handler(None, 0)
        backlog = self.text_backlog()
        last = rows[limit - 1][0] if len(rows) > limit else None
        # a key that is no integer (a damaged row) cannot be read on from: it ends there
        next_before = last if type(last) is int else None
        return SearchPage(tuple(hits), next_before is not None, None, q.cut, backlog, next_before)

    def _hit(self, row: Sequence[object], q: Query) -> SearchHit | None:
        key, room_id, path, line, event_id, source_id, body = row
        if not (
            type(key) is int
            and isinstance(room_id, str)
            and isinstance(path, str)
            and type(line) is int
            and isinstance(event_id, str)
            and isinstance(source_id, str)
            and isinstance(body, str)
        ):
            log.warning("search: a damaged row of the search index is not used")
            return None
        cached = self._db.execute(
            "SELECT CAST(raw AS BLOB), event_id, timestamp_ms, sig_ok FROM events "
            "WHERE room_id = ? AND path = ? AND line = ?",
            (room_id, path, line),
        ).fetchone()
        if cached is None:
            return None
        raw, cached_id, ts, sig_ok = cached
        ev = _reenter(raw, room_id, source_id if cached_id == source_id else None, ts)
        if isinstance(ev, Malformed) or search_text(ev) != (event_id, body):
            log.warning("search: %s no longer holds the text indexed for it", _where(path, line))
            return None
        if sig_ok == 0:
            # Its signature failed: not a message anyone sent, whatever the last audit
            # said of this place (a segment rewritten since, not audited again yet).
            return None
        # The verdict of this very copy: a replay's other copies (another body under the
        # same event id, a forged one among them) are not shown, so their text finds
        # nothing; looked up by id alone, it was found under the shown copy's "verified".
        shown = self._db.execute(
            "SELECT state, reason, path, line, hash FROM timeline "
            "WHERE room_id = ? AND event_id = ?",
            (room_id, source_id),
        ).fetchall()
        verdict = next(((s, r, h) for s, r, p, n, h in shown if p == path and n == line), None)
        if verdict is None and shown:
            return None  # the last check shows another copy of this event id
        trust: TrustState | None = None
        reason = "not in this device's last check of the room yet"
        if verdict is not None:
            state, said, judged = verdict
            stands = _saved_verdict_stands(judged, ev.hash, state)
            if stands == "rewritten":
                reason = f"not checked yet: {REWRITTEN}"
            elif stands == "unnoted":
                reason = NOT_CHECKED
            else:
                try:
                    trust, reason = TrustState(state), str(said)[:2000]
                except ValueError:
                    trust, reason = TrustState.INVALID, "unknown cached trust state"
        elif self._db.execute(
            "SELECT 1 FROM findings WHERE room_id = ? AND path = ? AND line = ? AND kind = ?",
            (room_id, path, line, Kind.SENDER_MISMATCH.value),
        ).fetchone():
            return None  # a good signature by a key that is not the named sender's
        return SearchHit(
            room_id,
            event_id,
            source_id,
            ev.sender_id,
            ev.timestamp_ms,
            trust,
            reason,
            make_snippet(body, q.terms),
            path,
            line,
            key,
            sender_key=ev.sender_key or "",
        )

    # -- rooms ---------------------------------------------------------------------------------

    @_locked
    def set_room_info(
        self, room_id: str, name: str | None, signed: bool, metadata: bytes | None = None
    ) -> None:
        """The room's name as shown, and ``metadata`` (``metadata.kept_form``) if none
        is kept yet: the first kept stays (``kept_metadata``)."""
        with self._db:
            self._db.execute(
                "INSERT INTO rooms (room_id, name, signed, metadata) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (room_id) DO UPDATE SET "
                "name = excluded.name, signed = excluded.signed, "
                "metadata = COALESCE(rooms.metadata, excluded.metadata)",
                (room_id, name, int(signed), metadata),
            )

    @_locked
    def kept_metadata(self, room_id: str) -> bytes | None:
        """The first room metadata this device used for ``room_id``, or None."""
        row = self._db.execute(
            "SELECT metadata FROM rooms WHERE room_id = ?", (room_id,)
        ).fetchone()
        value = row[0] if row is not None else None
        return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else None

    _ROOM_COLUMNS = (
        "room_id",
        "name",
        "signed",
        "last_ts",
        "last_preview",
        "errors",
        "history_complete",
        "history_partial",
    )

    @_locked
    def rooms(self) -> list[dict[str, object]]:
        cols = self._ROOM_COLUMNS
        return [
            dict(zip(cols, row, strict=True))
            for row in self._db.execute(f"SELECT {', '.join(cols)} FROM rooms ORDER BY room_id")
        ]

    @_locked
    def room(self, room_id: str) -> dict[str, object] | None:
        """One row of ``rooms()``, or None when the index knows nothing of the room."""
        cols = self._ROOM_COLUMNS
        row = self._db.execute(
            f"SELECT {', '.join(cols)} FROM rooms WHERE room_id = ?", (room_id,)
        ).fetchone()
        return dict(zip(cols, row, strict=True)) if row is not None else None

    # -- trust pins ------------------------------------------------------------------------------

    @_locked
    def pins(self, room_id: str) -> dict[str, set[str]]:
        """The keys pinned for the audits of ``room_id``: that room's trust on first use,
        and the storage-wide pins (keys the person confirmed, this device's own)."""
        out: dict[str, set[str]] = {}
        rows = self._db.execute(
            "SELECT sender_id, sender_key FROM pins WHERE room_id IN ('', ?)", (room_id,)
        )
        for sender, key in rows:
            out.setdefault(sender, set()).add(key)
        return out

    @_locked
    def add_pins(
        self, pairs: Iterable[tuple[str, str]], source: str = "tofu", room_id: str = ""
    ) -> None:
        """Pin keys: trust on first use (``tofu``) for the room it was read in, which
        must be named; other sources (``own``) for every room."""
        if (source == "tofu") != bool(room_id):
            raise ValueError("trust on first use is pinned for one room, and only it")
        now = int(time.time())
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO pins VALUES (?, ?, ?, ?, ?)",
                [(s, k, source, now, room_id) for s, k in pairs],
            )

    @_locked
    def user_verified_keys(self, source: str = "user") -> set[tuple[str, str]]:
        """What the person confirmed: (sender id, key) pairs, for every room; with
        ``source="own"`` this device's own keys (``add_pins``) instead."""
        return set(
            self._db.execute("SELECT sender_id, sender_key FROM pins WHERE source = ?", (source,))
        )

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
                "INSERT INTO pins VALUES (?, ?, 'user', ?, '') "
                "ON CONFLICT (sender_id, sender_key, room_id) DO UPDATE SET source = 'user'",
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
