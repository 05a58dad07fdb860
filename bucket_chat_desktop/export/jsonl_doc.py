"""The JSONL export: a header line, then one line per event as read, with its verdict.

Every line is one JSON object (ASCII only: no reader can be fooled by a bidi control
in a body). See docs/EXPORT.md for the fields. A deleted message's content is withheld
(its sender took it back; the original stays in the storage, write-once), so that line
no longer verifies against its signature, and it says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, BinaryIO

from .. import __version__
from ..protocol.event import MESSAGE, Event, Malformed
from ..protocol.relations import (
    EDIT,
    MAX_EDIT_HOPS,
    REACTION,
    REDACTION,
    TARGET_FIELD,
    TYPING,
    Aggregate,
    Edit,
    Redacted,
    applied,
    applied_ids,
    target_of,
)
from ..sync.events import ShownEvent
from ..timestamps import LateArrival
from .snapshot import REPEATED_ID, RoomSnapshot

FORMAT = "bucket-chat-export"
VERSION = 1
RELATION_KINDS = {REACTION: "reaction", EDIT: "edit", REDACTION: "redaction"}


def _deleted_edits(snapshot: RoomSnapshot) -> frozenset[str]:
    """The edits whose text was taken back: the edit was deleted, or the message it
    edits (through edits of edits) was. Their new text is the deleted message's text."""
    rel = snapshot.relations
    deleted = {k for k, agg in rel.aggregates.items() if agg.redacted is not None}
    if not deleted:
        return frozenset()
    timeline = snapshot.result.timeline
    # Each edit row as itself: two copies of one id (another key signed one under it,
    # PROTOCOL.md 18.1) each name their own message, and one kept by id stood for both
    # (a deleted message's edit text was then exported through the other copy).
    edits: list[tuple[str, str | None]] = []
    replaces: dict[str, str | None] = {}  # what an edit names, for edits of edits
    for position in rel.hidden:
        ev = timeline[position].event
        if ev.type == EDIT:
            edits.append((ev.event_id, target_of(ev)))
            if ev.event_id not in rel.repeated:
                replaces[ev.event_id] = target_of(ev)
    out: set[str] = set()
    for edit_id, named in edits:
        if edit_id in deleted:
            out.add(edit_id)
            continue
        current = named
        for _ in range(MAX_EDIT_HOPS):
            if current is None:
                break
            if current in deleted:
                out.add(edit_id)
                break
            current = replaces.get(current)
    return frozenset(out)


WITHHELD = (
    "deleted by its sender: the content is left out of this export (the original stays "
    "in the storage), so this line's signature cannot be checked again"
)


def late_json(late: LateArrival) -> dict[str, Any]:
    """``arrived_late``: when this device first read it, and the app's sentence."""
    return {"arrived_ms": late.arrived_ms, "note": late.note_with_zone()}


def relations_json(agg: Aggregate, snapshot: RoomSnapshot | None = None) -> dict[str, Any]:
    """A message's ``relations``. ``snapshot``: the one exported, whose ``late`` says which
    edit or deletion the app saw arrive long after its date (its ``arrived_late``)."""
    out: dict[str, Any] = {}

    def late(change: Edit | Redacted, entry: dict[str, Any]) -> dict[str, Any]:
        came = snapshot.late_change(change) if snapshot is not None else None
        return {**entry, "arrived_late": late_json(came)} if came is not None else entry

    if agg.redacted is not None:
        r = agg.redacted
        out["redacted"] = late(
            r,
            {
                "by_event_id": r.event_id,
                "timestamp_ms": r.timestamp_ms,
                "trust": r.state,
                "reason": r.reason,
            },
        )
    if agg.edits:
        out["edits"] = [
            late(
                e,
                {
                    "event_id": e.event_id,
                    "timestamp_ms": e.timestamp_ms,
                    "trust": e.state,
                    "body": e.body,
                    "msgtype": e.msgtype,
                },
            )
            for e in agg.edits
        ]
    if agg.reactions:
        out["reactions"] = [
            {
                "reaction": chip.key,
                "count": chip.count,
                "trust": chip.state,
                # verified only on trial while older history loads (an export made in
                # the app mid-read): "verified" but not final, as a row's reason says
                "provisional": not chip.final,
                "senders": [
                    {
                        "sender_id": r.sender_id,
                        "trust": r.state,
                        "provisional": r.provisional,
                        "event_ids": list(r.event_ids),
                    }
                    for r in chip.reactors
                ],
            }
            for chip in agg.reactions
        ]
    if agg.thread:
        out["thread"] = list(agg.thread)
    return out


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


class JsonlWriter:
    def __init__(
        self, snapshot: RoomSnapshot, out: BinaryIO, *, exported_at: float | None = None
    ) -> None:
        self.snap = snapshot
        self.out = out
        self.exported_at = time.time() if exported_at is None else exported_at
        self.rel = snapshot.relations
        self._applied = applied_ids(snapshot.relations)
        self._deleted_edits = _deleted_edits(snapshot)
        self.written = 0
        self.damaged = 0
        self.late = 0  # message lines with ``arrived_late`` (``RoomSnapshot.late``)
        self.late_changes = 0  # edit and deletion lines with ``arrived_late``

    def header(self) -> dict[str, Any]:
        s = self.snap
        return {
            "format": FORMAT,
            "version": VERSION,
            "generator": f"bucket-chat {__version__}",
            "room_id": s.room_id,
            "room_name": s.name,
            "storage": s.storage,
            "exported_at_ms": int(self.exported_at * 1000),
            "complete": s.complete,
            "events": s.total,
            "counts": s.counts,
            "verdict": "clean" if s.clean else "findings",
            "finding_kinds": {k: n for k, _, n in s.finding_kinds()},
            "findings": [f.as_dict() for f in s.findings],
        }

    def begin(self) -> None:
        self.out.write(_dump(self.header()))

    def end(self) -> None:
        self.out.flush()

    def page(self, start: int, rows: Sequence[ShownEvent], _attachments: object = None) -> None:
        for offset, row in enumerate(rows):
            line = self._line(start + offset, row)
            if line is not None:  # written one by one: a page is never one string
                self.out.write(_dump(line))

    def _line(self, position: int, row: ShownEvent) -> dict[str, Any] | None:
        verdict = row.verdict
        ev = row.event
        trust: dict[str, str] = {"state": str(verdict.state), "reason": verdict.reason}
        if isinstance(ev, Malformed):
            self.written += 1
            self.damaged += 1
            return {
                "position": position,
                "event_id": verdict.event.event_id,
                "event": None,
                "damaged": ev.reason,
                "trust": trust,
            }
        if ev.type == TYPING:
            return None  # never written here, read and ignored (PROTOCOL.md section 18)
        self.written += 1
        doubt = self.snap.doubt(ev.sender_id, ev.sender_key)
        if doubt:  # this room trusts the key; another room of the storage does not
            trust["doubted_elsewhere"] = doubt
        line: dict[str, Any] = {"position": position, "event": _raw(ev), "trust": trust}
        kind = RELATION_KINDS.get(ev.type)
        if kind is not None:
            target = ev.content.get(TARGET_FIELD[ev.type])
            line["relation"] = {
                "kind": kind,
                "target": target if isinstance(target, str) else None,
                "applied": applied(self.rel, ev, self._applied),
            }
            if isinstance(target, str) and target in self.rel.repeated:  # the HTML's words
                line["repeated_id"] = REPEATED_ID
            if ev.event_id in self._deleted_edits:  # it holds a text its sender took back
                content = {k: v for k, v in ev.content.items() if k == "replaces"}
                line["event"] = {**line["event"], "content": content}
                line["content_withheld"] = WITHHELD
            came = (
                self.snap.late_of(ev.event_id, verdict.path, verdict.line)
                if ev.type in (EDIT, REDACTION)
                else None
            )
            if came is not None:  # an edit or deletion the app saw arrive late, by copy
                self.late_changes += 1
                line["arrived_late"] = late_json(came)
            return line
        if ev.type == MESSAGE and ev.event_id in self.rel.repeated:
            # as the HTML's row says: this copy's edits, deletion and reactions, even
            # those made before the other copy appeared, no longer apply (PROTOCOL.md
            # 18.1); its first text is the one exported. Without it the row read as a
            # plain verified message and the edit's line as any ignored (forged) edit.
            line["repeated_id"] = REPEATED_ID
        agg = self.rel.of(ev.event_id)
        if agg is not None:
            line["relations"] = relations_json(agg, self.snap)
            line["shown_trust"] = agg.state(str(verdict.state))
            if agg.redacted is not None:
                line["event"] = {**line["event"], "content": {}}
                line["content_withheld"] = WITHHELD
        thread_root = self.rel.thread_root.get(ev.event_id)
        if thread_root is not None:
            line["thread_root"] = thread_root
        late = (
            self.snap.late_of(ev.event_id, verdict.path, verdict.line)
            if ev.type == MESSAGE
            else None
        )
        if late is not None:  # as the app's row (and the HTML) say it
            self.late += 1
            line["arrived_late"] = late_json(late)
        return line


def _raw(ev: Event) -> dict[str, Any]:
    return dict(ev.raw)
