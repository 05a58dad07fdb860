"""The outbox: nothing the user sends is lost, nothing is delivered twice.

A message is signed and committed to a local SQLite file (synchronous, WAL) before
``enqueue`` returns. A publisher later groups what is waiting into a segment, and from the
moment a segment's bytes and name are fixed (``take_batch``) every retry writes exactly
those bytes under exactly that name. A retry after an unknown outcome (a lost reply, a
SIGKILL between "written" and "acknowledged") therefore meets its own identical object
and counts as delivered; only if *another* writer's segment holds the name is the next
name (``-r1``, ``-r2``…) chosen, and that choice is committed before the next attempt.

The device's chain head lives here too, so two processes of one device (the app and a
script) never fork its chain: every enqueue runs in an IMMEDIATE transaction. The head is
moved forward, never back, when the device reads events of its key that continue it
(another device with the same key: ``follow_head``, ``Publisher.follow_read``).

This file is not a cache: deleting it loses undelivered messages. It lives next to, not
inside, the index. A damaged one is never overwritten nor deleted (``open_outbox``): it
is set aside as ``<name>.broken-<time>``, what can still be read from it is kept, and the
caller says where the copy is. The heads it held are then asked of the storage: a send
with no head reads the room first (``Publisher._local_head``), so a new outbox never
forks the chain.

A send that must wait for that read (a first send in a room still being read over a slow
link) is kept here first, unsigned (``hold``), so what the user typed survives a quit or a
crash meanwhile; it is signed and queued once the head is known, through the one path
every send takes (``enqueue(held=...)``), by that send or by the next start's
(``Publisher.resume_held``); any send signs the older holds of its room and key first, in
its own transaction, so they go out in the order typed and each is signed once; what
a hold became when another send (another process's) signed it is noted (``replaced``)
for the send that kept it, which shows it as queued rather than refused. A hold the
person lets go (``discard_held``: one that can never be signed, or waits for a key this
device no longer has) is taken off only while it is still a hold: what another send
signed meanwhile is never discarded.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from ..index.db import database_opening, secure_database_file
from ..osfiles import move_aside
from ..protocol.canonical import b64encode
from ..protocol.chain import Draft, continue_chain
from ..protocol.event import Event, Malformed, parse_line
from ..protocol.ids import client_id_for
from ..protocol.segment import MAX_SEGMENT_BYTES, encode_segment, path_for

log = logging.getLogger("bucket_chat.sync")

# Seconds before a refused segment (an error only someone can fix, outside this app) is
# tried again by itself, by its count of tries; then every hour. One write an hour costs
# nothing, and the user need not notice the fix and click "Not sent — click to retry"
# (red team rt57: a file planted where a day's folder must be, moved away).
REFUSED_RETRY = (600.0, 1200.0, 2400.0, 3600.0)

REPLACED_KEPT = 86400.0
"""Seconds the events a hold was signed as by another send are kept for the send that
kept it (``Outbox.replaced``): that send waits seconds, not days."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS heads (
    room_id TEXT NOT NULL,
    sender_key TEXT NOT NULL,
    line TEXT,                      -- the device's newest event in the room; NULL: none yet
    PRIMARY KEY (room_id, sender_key)
);
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id TEXT NOT NULL,
    sender_key TEXT NOT NULL,
    client_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    line TEXT NOT NULL,
    created REAL NOT NULL,
    segment_id INTEGER
);
CREATE INDEX IF NOT EXISTS pending_room ON pending (room_id, sender_key, segment_id);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    path TEXT NOT NULL,
    data BLOB NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'assigned',   -- assigned -> published -> (deleted)
    tries INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    permanent INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS held (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id TEXT NOT NULL,
    sender_key TEXT NOT NULL,
    user_id TEXT NOT NULL,
    displayname TEXT,
    drafts TEXT NOT NULL,           -- JSON [[type, content(, parent)], ...]: not signed yet
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS replaced (
    seq INTEGER PRIMARY KEY,        -- a hold (``held.seq``) another send signed first
    room_id TEXT NOT NULL,
    lines TEXT NOT NULL,            -- JSON [line, ...]: the events it was signed as
    signed REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS names (
    spec TEXT PRIMARY KEY,          -- the storage as the user wrote it (``Storage.url``)
    identity TEXT NOT NULL,         -- what it named when this outbox last opened it
    place TEXT,                     -- a folder's resolved path then (NULL: not a folder)
    seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS witness_queue (
    room_id TEXT NOT NULL,
    sender_key TEXT NOT NULL,       -- this device's key, whose witnesses left the chain out
    chain_key TEXT NOT NULL,        -- the chain left out
    turn INTEGER NOT NULL,          -- the send that first found it unnamed (by this outbox)
    PRIMARY KEY (room_id, sender_key, chain_key)
);
"""


@dataclass(frozen=True, slots=True)
class OutSegment:
    id: int
    room_id: str
    client_id: str
    path: str
    data: bytes
    attempt: int
    state: str
    tries: int
    last_error: str | None
    event_ids: tuple[str, ...]

    def events(self) -> list[Event]:
        room = self.room_id
        out: list[Event] = []
        for line in self.data.splitlines():
            parsed = parse_line(line, room)
            if isinstance(parsed, Malformed):  # our own bytes: cannot happen
                raise ValueError(f"outbox segment {self.id} holds a bad line: {parsed.reason}")
            out.append(parsed)
        return out


@dataclass(frozen=True, slots=True)
class HeldSend:
    """A send taken from the user and kept, not signed yet: it waits for this device's
    chain head in the room (``Outbox.hold``)."""

    seq: int
    room_id: str
    sender_key: str
    user_id: str
    displayname: str | None
    drafts: tuple[Draft, ...]
    created: float = 0.0  # when it was kept (typed), seconds since the epoch


# How long a statement waits for another program of this device holding the outbox.
BUSY_WAIT_MS = 30_000
# How long a discard waits to empty the write-ahead log (``Outbox._empty_log``): a reader
# elsewhere is what it waits for, and the person is told, not kept waiting long.
EMPTY_LOG_WAIT_MS = 2_000


class Discard(enum.Enum):
    """What ``Outbox.discard_held`` found."""

    DISCARDED = "discarded"  # it was still kept: taken off, its text gone (see ``in_log``)
    SIGNED = "signed"  # another send signed it first: it is queued, nothing was discarded
    GONE = "gone"  # not kept (no such hold, or not of that room): nothing was discarded


@dataclass(frozen=True, slots=True)
class HeldDiscard:
    """``Outbox.discard_held``'s answer: what it found (``outcome``), the hold it took
    off (DISCARDED: what was typed, for the caller to show once more), and, for SIGNED,
    the events another send signed it as (``replaced``; empty when that note was let go)."""

    outcome: Discard
    hold: HeldSend | None = None
    signed: tuple[Event, ...] = ()
    # DISCARDED, but a copy of its text stays in the outbox's write-ahead log
    # (``outbox.sqlite-wal``): another program of this device was reading the outbox, and
    # the log could not be emptied. Emptied when the last program using it closes it.
    in_log: bool = False
    # SIGNED or GONE: a send of the engine that asked signed it (``Publisher.discard_held``
    # knows its own; the outbox cannot tell one process's sends from another's).
    signed_here: bool = False


@dataclass(frozen=True, slots=True)
class PendingMessage:
    room_id: str
    event_id: str
    line: str
    state: str  # "queued" (not in a segment yet), "sending", "sent" (marker left), "failed"
    error: str | None

    def event(self) -> Event | None:
        """The message as an event (None: the line does not parse, so it is not this
        device's own bytes: nothing to show or reuse)."""
        parsed = parse_line(self.line.encode("ascii", "replace"), self.room_id)
        return None if isinstance(parsed, Malformed) else parsed


class Outbox:
    def __init__(self, path: Path | None, *, opening_held: bool = False) -> None:
        """``opening_held``: the caller holds ``path``'s opening lock (``open_outbox``)."""
        self.path = path
        if path is not None:
            # every message in clear text: the user's only
            secure_database_file(path, opening_held=opening_held)
        self._log_kept = False  # a discard left a copy in the write-ahead log
        self._db = sqlite3.connect(
            path if path is not None else ":memory:",
            timeout=BUSY_WAIT_MS / 1000,
            isolation_level=None,  # explicit BEGIN IMMEDIATE / COMMIT
            check_same_thread=False,
        )
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            if path is not None:
                _check_whole(self._db)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        if self._log_kept:  # a discard's text in the log: emptied if no one else reads
            self._empty_log()
        self._db.close()

    def _empty_log(self) -> bool:
        """Copy the write-ahead log back into the file and cut it to nothing (a TRUNCATE
        checkpoint), so that nothing deleted (``secure_delete``) stays in its older frames:
        a discarded message's text did, in ``outbox.sqlite-wal``, for as long as the outbox
        was open (red team rt97). It waits at most ``EMPTY_LOG_WAIT_MS`` for another
        program of this device (the app, a command) to finish a read or a write of the
        outbox; False when it could not be emptied then. In memory: nothing to empty."""
        if self.path is None:
            return True
        db = self._db
        db.execute(f"PRAGMA busy_timeout = {EMPTY_LOG_WAIT_MS}")
        try:
            busy, _frames, _copied = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.OperationalError:  # locked past the wait
            busy = 1
        finally:
            db.execute(f"PRAGMA busy_timeout = {BUSY_WAIT_MS}")
        self._log_kept = busy != 0
        return not self._log_kept

    def note_name(self, spec: str, identity: str, place: str | None) -> None:
        """Record that the storage written ``spec`` is, now, ``identity`` (a folder at
        ``place``): when ``spec`` later names another folder (the data moved, a link
        re-pointed, a drive mounted elsewhere), this outbox follows it
        (``device_files``)."""
        self._db.execute(
            "INSERT OR REPLACE INTO names (spec, identity, place, seen) VALUES (?, ?, ?, ?)",
            (spec, identity, place, time.time()),
        )

    # -- the witness's queue ----------------------------------------------------------------

    def witness_queue(self, room_id: str, sender_key: str) -> dict[str, int]:
        """The chains that the witnesses of ``sender_key`` in the room left out, each with
        the turn of the send that first found it unnamed (``Publisher._witness``; kept by
        ``enqueue``): here so that a restart, and the next ``bucket-chat send``, keep
        their places (red team rt101: a queue in memory began empty at each start)."""
        rows = self._db.execute(
            "SELECT chain_key, turn FROM witness_queue WHERE room_id = ? AND sender_key = ?",
            (room_id, sender_key),
        )
        # a column holds what was put in it, whatever its type (a salvaged copy)
        return {k: t for k, t in rows if isinstance(k, str) and isinstance(t, int)}

    # -- chain heads ------------------------------------------------------------------------

    def has_head(self, room_id: str, sender_key: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM heads WHERE room_id = ? AND sender_key = ?", (room_id, sender_key)
        ).fetchone()
        return row is not None

    def has_chain(self, room_id: str, sender_key: str) -> bool:
        """Whether this device's chain in the room has an event (its head is known here
        and is not "nothing written yet")."""
        row = self._db.execute(
            "SELECT 1 FROM heads WHERE room_id = ? AND sender_key = ? AND line IS NOT NULL",
            (room_id, sender_key),
        ).fetchone()
        return row is not None

    def knows_room(self, room_id: str) -> bool:
        """Whether this device ever queued anything for the room (then it exists)."""
        row = self._db.execute("SELECT 1 FROM heads WHERE room_id = ? LIMIT 1", (room_id,))
        return row.fetchone() is not None

    def seed_head(self, room_id: str, sender_key: str, head: Event | None) -> None:
        """Record the head found in storage, unless another process recorded one first."""
        line = head.line().decode("ascii").rstrip("\n") if head is not None else None
        self._db.execute(
            "INSERT OR IGNORE INTO heads VALUES (?, ?, ?)", (room_id, sender_key, line)
        )

    def heads_in(self, room_id: str) -> list[tuple[str, Event | None]]:
        """Each key this outbox keeps a head for in the room, with that head (None:
        nothing written yet)."""
        return [
            (key, _parse_own(line, room_id) if line else None)
            for key, line in self._db.execute(
                "SELECT sender_key, line FROM heads WHERE room_id = ?", (room_id,)
            )
        ]

    def unsent(self, room_id: str, sender_key: str) -> list[Event]:
        """This device's events in the room not stored yet (queued, or in a segment not
        written), oldest first: signed on the head they were queued on."""
        return [
            _parse_own(line, room_id)
            for (line,) in self._db.execute(
                "SELECT p.line FROM pending p LEFT JOIN segments s ON s.id = p.segment_id "
                "WHERE p.room_id = ? AND p.sender_key = ? "
                "AND (s.state IS NULL OR s.state = 'assigned') ORDER BY p.seq",
                (room_id, sender_key),
            )
        ]

    def follow_head(self, room_id: str, sender_key: str, old: Event | None, new: Event) -> bool:
        """Move the head from ``old`` to ``new``, an event of this key that continues it
        as this device read it from storage (another device holding the same key wrote
        after it: ``Publisher.follow_read``). Only if the head is still ``old``: another
        process of this device may have queued on it meanwhile. True when moved."""
        old_line = old.line().decode("ascii").rstrip("\n") if old is not None else None
        cur = self._db.execute(
            "UPDATE heads SET line = ? WHERE room_id = ? AND sender_key = ? AND line IS ?",
            (new.line().decode("ascii").rstrip("\n"), room_id, sender_key, old_line),
        )
        return cur.rowcount == 1

    # -- sends held for their chain head -----------------------------------------------------

    def hold(
        self,
        room_id: str,
        sender_key: str,
        user_id: str,
        displayname: str | None,
        drafts: Sequence[Draft],
    ) -> int:
        """Keep ``drafts`` durably before they can be signed: this device does not know
        yet where its chain continues in the room (a first send, the room still being
        read). ``enqueue(held=...)`` signs them and takes them off in one transaction,
        so a send is held or queued, never both nor neither. Returns the hold's number."""
        text = json.dumps([list(d) for d in drafts], ensure_ascii=False)
        cur = self._db.execute(
            "INSERT INTO held (room_id, sender_key, user_id, displayname, drafts, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (room_id, sender_key, user_id, displayname, text, time.time()),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def held(self) -> list[HeldSend]:
        """Every send held, oldest first (``hold``)."""
        out = []
        for seq, room, key, user, name, text, created in self._db.execute(
            "SELECT seq, room_id, sender_key, user_id, displayname, drafts, created FROM held "
            "ORDER BY seq"
        ):
            drafts = tuple(_draft(d) for d in json.loads(text))
            out.append(HeldSend(seq, room, key, user, name, drafts, float(created)))
        return out

    def drop_held(self, seq: int) -> bool:
        """Let a hold go: its send was refused before anything was queued (and said).
        False when it was gone already: another send signed it first (``replaced``
        tells as what), and the refusal is not so."""
        return self._db.execute("DELETE FROM held WHERE seq = ?", (seq,)).rowcount == 1

    def is_held(self, seq: int) -> bool:
        """Whether hold ``seq`` is still kept (not signed by any send yet)."""
        return self._db.execute("SELECT 1 FROM held WHERE seq = ?", (seq,)).fetchone() is not None

    def replaced(self, seq: int) -> tuple[Event, ...] | None:
        """The events hold ``seq`` was signed as by a send that signed it first
        (``enqueue``: the older holds of its room and key), possibly in another process
        of this device (the command line); None when no send did so. Kept until
        ``forget_replaced`` (the app has shown them), or ``REPLACED_KEPT`` seconds."""
        row = self._db.execute(
            "SELECT room_id, lines FROM replaced WHERE seq = ?", (seq,)
        ).fetchone()
        if row is None:
            return None
        return tuple(_parse_own(line, row[0]) for line in json.loads(row[1]))

    def forget_replaced(self, seq: int) -> None:
        """The app has shown what hold ``seq`` was signed as (``replaced``)."""
        self._db.execute("DELETE FROM replaced WHERE seq = ?", (seq,))

    def discard_held(self, seq: int, room_id: str | None = None) -> HeldDiscard:
        """Let hold ``seq`` go for good, because the person asked (a kept send that can
        never be signed: too large once its chain link is added, its key replaced), in
        one transaction and only while it is still a hold: a hold another send signed
        meanwhile (any process of this device: ``enqueue`` takes it off in its own
        transaction) is never touched, and the answer says so, with the events it was
        signed as (SIGNED). ``room_id``: only a hold of that room (the row the person
        chose). Nothing signed is ever discarded: signed events are the chain's, and
        the next one links to them.

        The row's text is overwritten in the file (``secure_delete``) and the write-ahead
        log, which still holds the text as it was written when kept, is copied back and
        emptied (``_empty_log``): the outbox is the only copy of what was typed, and "gone"
        means gone. When another program of this device is reading the outbox meanwhile,
        the log cannot be emptied: the answer says so (``in_log``) rather than "gone"."""
        db = self._db
        db.execute("PRAGMA secure_delete = ON")
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT seq, room_id, sender_key, user_id, displayname, drafts, created "
                "FROM held WHERE seq = ?",
                (seq,),
            ).fetchone()
            if row is not None and room_id in (None, row[1]):
                db.execute("DELETE FROM held WHERE seq = ?", (seq,))
                db.execute("COMMIT")
                try:
                    drafts = tuple(_draft(d) for d in json.loads(row[5]))
                except (ValueError, TypeError):
                    drafts = ()  # unreadable: let go all the same
                hold = HeldSend(row[0], row[1], row[2], row[3], row[4], drafts, float(row[6]))
                return HeldDiscard(Discard.DISCARDED, hold, in_log=not self._empty_log())
            noted = None
            if row is None:
                noted = db.execute(
                    "SELECT room_id, lines FROM replaced WHERE seq = ?", (seq,)
                ).fetchone()
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if noted is not None and room_id in (None, noted[0]):
            signed = tuple(_parse_own(line, noted[0]) for line in json.loads(noted[1]))
            return HeldDiscard(Discard.SIGNED, signed=signed)
        return HeldDiscard(Discard.GONE)

    # -- enqueue ------------------------------------------------------------------------------

    def enqueue(
        self,
        *,
        room_id: str,
        user_id: str,
        signing_key: SigningKey,
        drafts: Sequence[Draft],
        clock: Callable[[], int],
        unique: Callable[[], str],
        displayname: str | None = None,
        witness: Mapping[str, str] | None = None,
        held: int | None = None,
        drained: list[int] | None = None,
        refused: list[tuple[int, str, Sequence[Draft]]] | None = None,
        older: list[Event] | None = None,
        witness_queue: Mapping[str, int] | None = None,
    ) -> list[Event]:
        """Sign ``drafts`` (type, content) as the next events of this device's chain and
        commit them durably. A join comes first if the device never wrote in the room.
        ``seed_head`` must have been called for this room and key. ``held``: the hold
        these drafts were kept under (``hold``), taken off in the same transaction; when
        it is gone already (queued by another process of this device), nothing is
        queued and the answer is empty.

        Every older hold of this room, key and user (all of them when ``held`` is None)
        is signed first, oldest first, in the same transaction: the order the person
        typed is the order signed, whichever send learns the head first (red team rt90:
        a send typed later, or a hold resumed later, overtook an older hold for good).
        The holds signed so are appended to ``drained``; their events come first in the
        answer, and are appended to ``older``. An older hold that cannot be signed
        (``ValueError``) is passed over and stays kept, appended to ``refused`` with the
        reason: it never blocks the room. ``witness_queue`` (not None) replaces the
        key's queue in the room (``witness_queue``) with the events whose witness left
        those chains out: never apart from them, and without another write to disk."""
        key_text = b64encode(bytes(signing_key.verify_key))
        client_id = client_id_for(user_id, bytes(signing_key.verify_key))
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT line FROM heads WHERE room_id = ? AND sender_key = ?",
                (room_id, key_text),
            ).fetchone()
            if row is None:
                raise RuntimeError("seed_head() first: the device's chain head is unknown")
            if held is not None:
                cur = db.execute("DELETE FROM held WHERE seq = ?", (held,))
                if cur.rowcount != 1:
                    db.execute("ROLLBACK")
                    return []
            head = _parse_own(row[0], room_id) if row[0] else None
            # The older holds, then this send: (hold, displayname, drafts) each.
            batches: list[tuple[int | None, str | None, Sequence[Draft]]] = []
            for seq, name, text in db.execute(
                "SELECT seq, displayname, drafts FROM held WHERE room_id = ? AND "
                "sender_key = ? AND user_id = ? AND seq < ? ORDER BY seq",
                (room_id, key_text, user_id, held if held is not None else 2**63 - 1),
            ).fetchall():
                batches.append((seq, name, [_draft(d) for d in json.loads(text)]))
            batches.append((None, displayname, drafts))
            events: list[Event] = []
            for seq, name, batch in batches:
                join: dict[str, Any] = {"membership": "join"}
                if name:
                    join["displayname"] = name
                try:
                    signed = continue_chain(
                        head,
                        batch,
                        room_id=room_id,
                        sender_id=user_id,
                        signing_key=signing_key,
                        timestamp_ms=clock(),
                        unique=unique,
                        join=join,
                        witness=witness if not events else None,
                    )
                except ValueError as exc:
                    if seq is None:
                        raise  # this send's own drafts: refused, nothing queued
                    # An older hold that can never be signed (kept by an older version:
                    # too large, too dense, not text) stays kept for the person to see,
                    # and no longer stands before the room's later sends (review a).
                    if refused is not None:
                        refused.append((seq, str(exc), batch))
                    continue
                if seq is not None:
                    # Taken off by this transaction only (a second process meets
                    # rowcount 0 for the one it was given, and queues nothing); what
                    # it became is noted for the send that kept it (``replaced``).
                    db.execute("DELETE FROM held WHERE seq = ?", (seq,))
                    lines = [ev.line().decode("ascii").rstrip("\n") for ev in signed]
                    db.execute(
                        "INSERT OR REPLACE INTO replaced (seq, room_id, lines, signed) "
                        "VALUES (?, ?, ?, ?)",
                        (seq, room_id, json.dumps(lines), time.time()),
                    )
                events.extend(signed)
                head = signed[-1] if signed else head
                if seq is not None and drained is not None:
                    drained.append(seq)
                if seq is not None and older is not None:
                    older.extend(signed)
            now = time.time()
            db.execute("DELETE FROM replaced WHERE signed < ?", (now - REPLACED_KEPT,))
            for ev in events:
                line = ev.line().decode("ascii").rstrip("\n")
                db.execute(
                    "INSERT INTO pending (room_id, sender_key, client_id, event_id, line, created)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (room_id, key_text, client_id, ev.event_id, line, now),
                )
            head = events[-1] if events else head
            assert head is not None
            db.execute(
                "UPDATE heads SET line = ? WHERE room_id = ? AND sender_key = ?",
                (head.line().decode("ascii").rstrip("\n"), room_id, key_text),
            )
            if witness_queue is not None and events:  # with the witness that named the rest
                db.execute(
                    "DELETE FROM witness_queue WHERE room_id = ? AND sender_key = ?",
                    (room_id, key_text),
                )
                db.executemany(
                    "INSERT INTO witness_queue VALUES (?, ?, ?, ?)",
                    [(room_id, key_text, chain, turn) for chain, turn in witness_queue.items()],
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return events

    # -- publishing ---------------------------------------------------------------------------

    def waiting_groups(self, older_than: float) -> list[tuple[str, str]]:
        """(room, key) groups with messages not yet in a segment, the oldest queued before
        ``older_than`` (the batching window)."""
        return [
            (r, k)
            for r, k in self._db.execute(
                "SELECT room_id, sender_key FROM pending WHERE segment_id IS NULL "
                "GROUP BY room_id, sender_key HAVING MIN(created) <= ?",
                (older_than,),
            )
        ]

    def take_batch(
        self,
        room_id: str,
        sender_key: str,
        max_events: int = 500,
        max_bytes: int = MAX_SEGMENT_BYTES,
    ) -> int | None:
        """Fix the bytes and name of a segment holding what waits; returns its id. The
        segment stays within ``max_bytes``, the size readers accept (what is left waits
        for the next segment): 500 long messages queued offline made one segment of up to
        128 MB, which every reader refuses unread."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute(
                "SELECT seq, client_id, line FROM pending WHERE room_id = ? AND sender_key = ? "
                "AND segment_id IS NULL ORDER BY seq LIMIT ?",
                (room_id, sender_key, max_events),
            ).fetchall()
            if not rows:
                db.execute("COMMIT")
                return None
            size = 0
            for n, (_, _, line) in enumerate(rows):
                size += len(line) + 1  # ASCII, and the newline
                if size > max_bytes and n > 0:
                    rows = rows[:n]
                    break
            events = [_parse_own(line, room_id) for _, _, line in rows]
            client_id = rows[0][1]
            data = encode_segment(events)
            cur = db.execute(
                "INSERT INTO segments (room_id, client_id, path, data) VALUES (?, ?, ?, ?)",
                (room_id, client_id, path_for(events, client_id), data),
            )
            seg_id = cur.lastrowid
            db.executemany(
                "UPDATE pending SET segment_id = ? WHERE seq = ?", [(seg_id, s) for s, _, _ in rows]
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        assert seg_id is not None
        return seg_id

    def due(self, now: float) -> list[OutSegment]:
        """Segments to (re)try now, oldest first.

        A segment waits while an older one of its chain (same room and device) is not
        stored and not due: a chain is written in its order. Readers would otherwise see
        a later segment without the one its first event links to — a gap in this
        device's chain (a ``truncated-chain`` finding at everyone's) for as long as the
        older one backs off, or for good if it failed for a reason the user must fix.
        A refused one (``permanent``) is due again when its slow back-off ends
        (``REFUSED_RETRY``), or at once when the user asks (``retry_now``)."""
        sql = (
            "SELECT id FROM segments s WHERE s.next_try <= :now"
            " AND NOT EXISTS (SELECT 1 FROM segments o WHERE o.room_id = s.room_id"
            " AND o.client_id = s.client_id AND o.id < s.id AND o.state = 'assigned'"
            " AND o.next_try > :now) ORDER BY id"
        )
        ids = [i for (i,) in self._db.execute(sql, {"now": now})]
        return [s for s in (self.segment(i) for i in ids) if s is not None]

    def parked_before(self, seg_id: int) -> str | None:
        """The error of an older segment of ``seg_id``'s chain not stored that only the
        user can fix (``seg_id`` waits for it: ``due``); None when there is none."""
        row = self._db.execute(
            "SELECT o.last_error FROM segments o JOIN segments s ON s.id = ? "
            "WHERE o.room_id = s.room_id AND o.client_id = s.client_id AND o.id < s.id "
            "AND o.state = 'assigned' AND o.permanent = 1 ORDER BY o.id LIMIT 1",
            (seg_id,),
        ).fetchone()
        return None if row is None else str(row[0] or "not sent")

    def waiting_behind(self, seg_id: int) -> list[OutSegment]:
        """The later segments of ``seg_id``'s chain (room and device) not stored yet:
        those that wait for it (``due``), oldest first."""
        ids = [
            i
            for (i,) in self._db.execute(
                "SELECT s.id FROM segments s JOIN segments o ON o.id = ? "
                "WHERE s.room_id = o.room_id AND s.client_id = o.client_id AND s.id > o.id "
                "AND s.state = 'assigned' ORDER BY s.id",
                (seg_id,),
            )
        ]
        return [s for s in (self.segment(i) for i in ids) if s is not None]

    def segment(self, seg_id: int) -> OutSegment | None:
        row = self._db.execute(
            "SELECT id, room_id, client_id, path, data, attempt, state, tries, last_error "
            "FROM segments WHERE id = ?",
            (seg_id,),
        ).fetchone()
        if row is None:
            return None
        event_ids = tuple(
            e
            for (e,) in self._db.execute(
                "SELECT event_id FROM pending WHERE segment_id = ? ORDER BY seq", (seg_id,)
            )
        )
        sid, room, client, path, data, attempt, state, tries, error = row
        return OutSegment(sid, room, client, path, data, attempt, state, tries, error, event_ids)

    def rename(self, seg_id: int, attempt: int) -> str:
        """Another writer's segment holds our name: commit the next name before retrying."""
        seg = self.segment(seg_id)
        assert seg is not None
        path = path_for(seg.events(), seg.client_id, attempt)
        self._db.execute(
            "UPDATE segments SET attempt = ?, path = ? WHERE id = ?", (attempt, path, seg_id)
        )
        return path

    def mark_written(self, seg_id: int) -> None:
        """The segment is in storage; only its activity marker is left to write."""
        self._db.execute(
            "UPDATE segments SET state = 'published', tries = 0, next_try = 0, last_error = NULL,"
            " permanent = 0 WHERE id = ?",
            (seg_id,),
        )

    def mark_done(self, seg_id: int) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM pending WHERE segment_id = ?", (seg_id,))
        db.execute("DELETE FROM segments WHERE id = ?", (seg_id,))
        db.execute("COMMIT")

    def mark_failed(self, seg_id: int, error: str, *, transient: bool, now: float) -> float:
        """Record a failed try; returns the time of the next one: exponential back-off up
        to a minute for a passing failure; for a refusal (the user or whoever keeps the
        storage must fix something: a permission, a file planted where a folder must
        be), ``REFUSED_RETRY``: the message goes out by itself once that is fixed."""
        row = self._db.execute("SELECT tries FROM segments WHERE id = ?", (seg_id,)).fetchone()
        tries = int(row[0] if row else 0) + 1
        if transient:
            delay: float = min(60.0, 0.5 * 2.0 ** min(tries, 10))
        else:
            delay = REFUSED_RETRY[min(tries, len(REFUSED_RETRY)) - 1]
        self._db.execute(
            "UPDATE segments SET tries = ?, next_try = ?, last_error = ?, permanent = ? "
            "WHERE id = ?",
            (tries, now + delay, error, 0 if transient else 1, seg_id),
        )
        return now + delay

    def retry_now(self) -> None:
        """The user asked to retry (or the network came back): everything is due."""
        self._db.execute("UPDATE segments SET next_try = 0, permanent = 0")

    # -- what the UI shows ----------------------------------------------------------------------

    def pending(self, room_id: str | None = None) -> list[PendingMessage]:
        """Every message not yet sent, oldest first, with its state. A message whose
        segment waits for an older one of its chain that failed (``due``) shows that
        one's error; "failed" too when only the user can fix it: it goes when that does."""
        sql = (
            "SELECT p.room_id, p.event_id, p.line, s.state,"
            " COALESCE(s.last_error, (SELECT o.last_error FROM segments o"
            " WHERE o.room_id = s.room_id AND o.client_id = s.client_id AND o.id < s.id"
            " AND o.state = 'assigned' AND o.last_error IS NOT NULL ORDER BY o.id LIMIT 1)),"
            " s.permanent OR EXISTS (SELECT 1 FROM segments o"
            " WHERE o.room_id = s.room_id AND o.client_id = s.client_id AND o.id < s.id"
            " AND o.state = 'assigned' AND o.permanent = 1) "
            "FROM pending p LEFT JOIN segments s ON s.id = p.segment_id"
        )
        args: tuple[str, ...] = ()
        if room_id is not None:
            sql += " WHERE p.room_id = ?"
            args = (room_id,)
        out = []
        for room, event_id, line, state, error, permanent in self._db.execute(
            sql + " ORDER BY p.seq", args
        ):
            if state is None:
                shown = "queued"
            elif state == "published":
                shown = "sent"
            else:  # a transient error is retried by itself: still "sending" (with the error)
                shown = "failed" if permanent else "sending"
            out.append(PendingMessage(room, event_id, line, shown, error))
        return out

    def is_empty(self) -> bool:
        return self._db.execute("SELECT 1 FROM pending LIMIT 1").fetchone() is None


def _draft(value: Any) -> Draft:
    """One draft of a hold, as ``hold`` wrote it."""
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise ValueError("the outbox holds an unreadable draft")
    if len(value) == 2:
        return (str(value[0]), dict(value[1]))
    return (str(value[0]), dict(value[1]), value[2])


def _parse_own(line: str, room_id: str) -> Event:
    parsed = parse_line(line.encode("ascii"), room_id)
    if isinstance(parsed, Malformed):
        raise ValueError(f"the outbox holds an unreadable event: {parsed.reason}")
    return parsed


_COLUMNS = {
    "heads": "room_id, sender_key, line",
    "pending": "seq, room_id, sender_key, client_id, event_id, line, created, segment_id",
    "segments": "id, room_id, client_id, path, data, attempt, state, tries, next_try, "
    "last_error, permanent",
    "held": "seq, room_id, sender_key, user_id, displayname, drafts, created",
    "replaced": "seq, room_id, lines, signed",
    "witness_queue": "room_id, sender_key, chain_key, turn",
}
# tables an outbox of an older version may lack (made when opened)
_SINCE = {"held", "replaced", "witness_queue"}
_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


class DamagedOutboxError(sqlite3.DatabaseError):
    """The file is an SQLite database, but not a whole outbox (a table without the
    columns this version writes, pages that do not check)."""


def _check_whole(db: sqlite3.Connection) -> None:
    """Raise ``DamagedOutboxError`` unless every table has its columns and the file's
    pages check (``quick_check``: the outbox holds what waits, a few pages)."""
    try:
        for table, columns in _COLUMNS.items():
            db.execute(f"SELECT {columns} FROM {table} LIMIT 0")
    except sqlite3.OperationalError as exc:  # "no such column"
        raise DamagedOutboxError(f"not an outbox of this version: {exc}") from exc
    verdict = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
    if verdict != ["ok"]:
        raise DamagedOutboxError("; ".join(str(v) for v in verdict))


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the file is damaged (not a database, malformed, not an
    outbox), not that it is busy: a file locked by another process, or one being made
    by it, is never set aside (it is whole)."""
    if isinstance(exc, DamagedOutboxError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _DAMAGE_CODES
    return type(exc) is sqlite3.DatabaseError


def aside_name(name: str, why: str) -> str:
    """``<name>.<why>-<time>``: the name a file set aside takes (UTC, to the second)."""
    return f"{name}.{why}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


@dataclass(frozen=True, slots=True)
class OutboxSetAside:
    """``open_outbox`` found the outbox damaged and set it aside as ``copy``."""

    storage: str  # the storage as a person reads it (``Storage.describe``)
    reason: str
    copy: Path
    kept: int | None  # messages read back from it and queued again; None: none readable

    def __str__(self) -> str:
        said = (
            f"this device's outbox for {self.storage} was damaged ({self.reason}); the "
            f"damaged file is kept as {self.copy}; "
        )
        if self.kept:
            return said + f"the {self.kept} message(s) waiting in it were read back and stay queued"
        if self.kept == 0:
            return said + "nothing was waiting in it; a new outbox is used"
        return said + (
            "what was waiting in it could not be read back and was not sent (it is in "
            "that copy); a new outbox is used"
        )


def open_outbox(path: Path, storage: str) -> tuple[Outbox, OutboxSetAside | None]:
    """The outbox at ``path``. A damaged file (``is_damage``) is set aside, never
    overwritten or deleted (``<name>.broken-<time>``, with its write-ahead log), a new
    outbox takes its place, and what the old one held is copied into it when all of it
    can still be read (``_salvage``: heads, messages and segments together, or nothing:
    a part of a chain would fork it). The second value says what was done (None: the
    file was whole). Errors that are not damage (busy, locked) are raised.

    The check, the set-aside and the new file are made under the file's opening lock
    (``database_opening``, as the index's), the file checked again once the lock is
    held: two processes of this device (the app and a script) finding it damaged at
    once set it aside once. Without the lock the second moved the first's new, whole
    outbox aside under its open connection (what the first queued then went into a
    ``.broken-…`` file nothing opens, and the two held two heads of one chain), or
    failed with FileNotFoundError finding the file already moved (red team rt76)."""
    try:
        return Outbox(path), None
    except sqlite3.Error as exc:
        if not is_damage(exc):
            raise
    with database_opening(path, "outbox"):
        try:  # another process may have set it aside and made a new one meanwhile
            return Outbox(path, opening_held=True), None
        except sqlite3.Error as exc:
            if not is_damage(exc):
                raise
            reason = str(exc) or type(exc).__name__
        copy = path.with_name(aside_name(path.name, "broken"))
        n = 0
        while True:
            try:
                move_aside(path, copy)
                break
            except FileExistsError:
                n += 1
                copy = path.with_name(aside_name(path.name, "broken") + f"-{n}")
            except FileNotFoundError:
                # Set aside by another process after all (a file system on which the
                # lock cannot be taken): its new outbox, or a new one, is the outbox.
                return Outbox(path, opening_held=True), None
        for extra in ("-wal", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                move_aside(Path(f"{path}{extra}"), Path(f"{copy}{extra}"))
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}-shm").unlink()
        box = Outbox(path, opening_held=True)
        try:
            kept = _salvage(copy, box)
        except BaseException:
            box.close()
            raise
    log.info("outbox %s was damaged (%s): set aside as %s", path, reason, copy)
    return box, OutboxSetAside(storage, reason, copy, kept)


def _salvage(copy: Path, box: Outbox) -> int | None:
    """Copy every row of the damaged outbox ``copy`` into the new, empty ``box``: the
    messages waiting in it (then queued again), or None when any of it cannot be read.
    The copy is only read, never written."""
    try:
        src = sqlite3.connect(f"{copy.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        present = {name for (name,) in src.execute("SELECT name FROM sqlite_master")}
        rows = {
            table: src.execute(f"SELECT {columns} FROM {table}").fetchall()
            if table in present or table not in _SINCE
            else []
            for table, columns in _COLUMNS.items()
        }
    except sqlite3.Error:
        return None
    finally:
        src.close()
    try:
        for room, _key, line in rows["heads"]:
            if line is not None:
                _parse_own(line, room)
        for _seq, room, _key, _client, _eid, line, *_ in rows["pending"]:
            _parse_own(line, room)
        for *_, text, _created in rows["held"]:
            for draft in json.loads(text):
                _draft(draft)
        for _seq, room, lines, _signed in rows["replaced"]:
            for line in json.loads(lines):
                _parse_own(line, room)
    except (ValueError, TypeError):
        return None  # lines that are not this device's own events: nothing is taken
    db = box._db
    db.execute("BEGIN IMMEDIATE")
    try:
        for table, columns in _COLUMNS.items():
            marks = ", ".join("?" * len(columns.split(", ")))
            db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows[table])
    except sqlite3.Error:
        db.execute("ROLLBACK")  # rows this version cannot take: nothing is taken
        return None
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return len(rows["pending"]) + len(rows["held"])
