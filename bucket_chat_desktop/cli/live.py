"""What ``chat`` and ``sync --follow`` print as a room is read and as events arrive: the
same lines as ``history`` (``related.event_lines``: a deleted message says who deleted
it, never its text; an edited one shows its latest text; a reply quotes its parent),
relation events as one-line notices of what they did once applied, and every finding of
the room (its metadata's too) once, whatever order the audits list them in."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..protocol.audit import Assessed, AuditResult
from ..protocol.event import MESSAGE
from ..protocol.findings import Finding, Severity
from ..protocol.metadata import UNUSABLE_TITLE, check_signer, unusable
from ..protocol.relations import (
    EDIT,
    REACTION,
    REDACTION,
    TYPING,
    ReactionChip,
    Relations,
    applied,
)
from ..protocol.room_state import Roster
from ..protocol.unread import seen_place
from ..protocol.untrusted_text import RoomIds, terminal_safe
from ..storage.base import StorageError
from ..sync.room_state import RoomView
from ..timestamps import DELETION, THIS_EDIT, late_among
from . import format as fmt
from . import related


class LiveOutput:
    """Standard output of a command that runs on (``chat``, ``sync --follow``), written
    from the engine's listener as events arrive. Once its reader has gone (``| head``
    has its lines) the first failed write points standard output at the null device
    and calls ``closed``, once, which ends the command (promptly, and with the exit
    status it would have had), and nothing is written after. The engine logs and swallows what a
    listener raises (a listener's bug must not stop syncing): a ``BrokenPipeError``
    left to it was one traceback on stderr per event for as long as the room lived,
    and the command never ended (red team rt84)."""

    def __init__(self, closed: Callable[[], object]) -> None:
        self._closed = closed
        self.gone = False

    def write(self, text: str) -> None:
        if self.gone:
            return
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            self.gone = True
            fmt.silence_stdout()
            self._closed()

    def line(self, text: str) -> None:
        self.write(text + "\n")


def room_title_of(view: Any) -> str:
    """A room view's title as ``history``, ``verify`` and ``chat`` print it: the creator
    id checked against the room's senders (``fmt.room_title``)."""
    result, roster = view.result, view.roster
    if metadata_unusable(view):  # not "(no metadata)": it has some (red team rt52)
        return f"{view.room_id} ({UNUSABLE_TITLE})"
    return fmt.room_title(
        view.metadata,
        view.room_id,
        result.authorized if result is not None else None,
        roster.names.lookalikes if roster is not None else None,
    )


def metadata_unusable(view: Any) -> bool:
    """``protocol.metadata.unusable`` of a room view (an engine event has no metadata)."""
    findings = getattr(view, "metadata_findings", ())
    return unusable(view.room_id, getattr(view, "metadata", None), findings)


def not_read(room_id: str, view: RoomView | None) -> StorageError:
    """The error a command ends with when reading ``room_id`` gave no audit although no
    storage error said why: a fault of this program stopped the read (its type and text,
    escaped; the log above has the details)."""
    failure = view.failure if view is not None else ""
    if not failure:
        return StorageError(f"room {room_id!r} could not be read: the log above says why")
    return StorageError(
        f"room {room_id!r} could not be read: reading it stopped on a fault of this "
        f"program ({terminal_safe(failure)}); the log above has the details — please "
        "report it"
    )


def room_findings(view: Any) -> list[Finding]:
    """Every finding of a room as ``history`` and ``verify`` count them: its metadata's
    (a rewritten, unreadable or foreign-signed ``metadata.json``), the audit's and the
    forged or malformed relations'. ``view``: a ``RoomView``, or an engine event with
    the same fields (an append's has no metadata)."""
    result = view.result
    if result is None:
        return list(getattr(view, "metadata_findings", ()))
    meta = getattr(view, "metadata", None)
    signer = check_signer(meta, result.authorized)[1] if meta is not None else []
    rel = view.relations.findings if getattr(view, "relations", None) is not None else ()
    return [*getattr(view, "metadata_findings", ()), *signer, *result.findings, *rel]


def finding_key(f: Finding) -> tuple[str, str, str | None, int | None, str | None]:
    return (f.kind.value, f.message, f.path, f.line, f.event_id)


class _Counted:
    """What ``LivePrinter._notice`` looks a relation event up in, per target message and
    made once per batch of arrived rows (``LivePrinter.arrived``): one segment can hold
    tens of thousands of edits or reactions of one message, and a walk of them for each
    is quadratic work on the engine's listener."""

    __slots__ = ("chips", "edits")

    def __init__(self) -> None:
        self.chips: dict[str, dict[str, ReactionChip]] = {}  # reaction id -> its chip
        self.edits: dict[str, frozenset[str]] = {}  # the ids of the applied edits


class LivePrinter:
    """Lines for a room read on: ``opening`` once, then ``arrived`` for what is new,
    and ``findings`` with every audit (each finding said once). Output goes through
    ``say``; every string from storage is made terminal-safe."""

    def __init__(self, say: Callable[[str], object], own_key: str = "", own_user: str = "") -> None:
        self._out = say
        self.own_key = own_key
        self._own = ((own_user, own_key),) if own_key else ()
        # what a statement naming another's key says (``fmt.KeyClaims``): the room's
        # claims as of the last roster handed in
        self.claims = fmt.KeyClaims(own=self._own)
        self.ids = RoomIds()
        # (event id, path, line): an id signed by two devices is two rows (section 6)
        self.shown: set[tuple[str, str, int]] = set()
        # the room's rows as of the last audit printed (``opening``, ``arrived``), and
        # this device's clock when they were: how far they reach then, by the app's rule
        # (``unread.seen_place``), is what a row that arrives next is dated well before
        # to be noted late (``arrived``). A timeline is never changed once made; the next
        # audit's replaces it.
        self.read: Sequence[Assessed] | None = None
        self.read_ms = 0
        self.reported: set[tuple[str, str, str | None, int | None, str | None]] = set()

    def say(self, text: str) -> None:
        """A line out, cut into rows (``fmt.fit``): notices quote bodies, reasons and
        errors, and a terminal's wrap of them could begin a row that forges a line."""
        self._out(fmt.fit(text))

    def use_roster(self, roster: Roster | None) -> None:
        """The room's members and names as of the audit printed next (``KeyClaims``)."""
        if roster is not None and roster.names.claims is not self.claims.claims:
            self.claims = fmt.KeyClaims(roster.names.claims, self._own)

    def opening(
        self,
        result: AuditResult,
        rel: Relations,
        limit: int | None,
        roster: Roster | None = None,
        now_ms: int | None = None,
    ) -> None:
        """The room as ``history`` shows it (its newest ``limit`` messages, or all), read
        at ``now_ms`` (this device's clock; now when not given). Only the rows printed
        are made: a row made per event to list senders, copies and the latest date took
        about a second at 1,000,000 events each."""
        self.use_roster(roster)
        timeline = result.timeline
        self.ids.update(timeline.sender_ids())
        for position in related.shown_positions(rel, len(timeline), limit):
            line = related.event_lines(timeline[position], timeline, rel, self.ids, self.claims)
            self.say(line)
        self.shown.update(timeline.copy_keys())
        self.read = timeline
        self.read_ms = int(time.time() * 1000) if now_ms is None else now_ms

    def arrived(
        self,
        items: Iterable[Assessed],
        timeline: Sequence[Assessed],
        rel: Relations | None,
        *,
        echo_own: bool,
        roster: Roster | None = None,
        now_ms: int | None = None,
        read_ms: int | None = None,
    ) -> None:
        """Rows new since the last call: messages as ``history`` prints them, relation
        events as what they did (only when applied: a forged one is a finding).
        ``timeline``: the audit's whole timeline, which ``rel`` was made of. A message
        dated long before it arrived (``now_ms``, this device's clock: a member's next
        message dated weeks back, an outbox sent long after) and before rows read already
        is followed by the line the app's row shows ("Arrived …, dated …",
        ``timestamps.late_note``): printed now, it would pass for one written now (red
        team rt79). So is an applied edit or deletion, with its own line ("This edit
        arrived …", "The deletion arrived …"). "Read already" is what the audit printed
        before this one held, by the app's rule (``unread.seen_place``): not a row placed
        past this device's clock when that audit was printed, which is its writer's word
        (red team rt98), however late the next rows come (red team rt101). ``read_ms``:
        when the engine read ``timeline``'s rows from storage (``RoomLoaded.read_ms``;
        None: at ``now_ms``), which is what the next rows are weighed by: a re-audit of
        the rows held, printed after a wake-up, read nothing then."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        latest = seen_place(self.read, self.read_ms)
        self.read, self.read_ms = timeline, now if read_ms is None else read_ms
        self.use_roster(roster)
        counted = _Counted()  # per target, indexed once per batch (``_notice``)
        for item in items:
            self.ids.add(item.event.sender_id)
            copy = (item.event.event_id, item.path, item.line)
            if copy in self.shown:
                continue
            self.shown.add(copy)
            ev = item.event
            if ev.type == TYPING:  # read and ignored (PROTOCOL.md 18.6), not printed
                continue
            if not echo_own and self.own_key and ev.sender_key == self.own_key:
                continue
            if rel is None:
                self.say(fmt.event_line(item, self.ids, self.claims))
            elif ev.type in (EDIT, REACTION, REDACTION):
                line = self._notice(item, timeline, rel, counted)
                if line is not None:
                    self.say(line)
                    # an edit or a deletion dated long before it came, by the same rule:
                    # printed now, it would pass for one made then (the app's row says it)
                    late = late_among(ev.timestamp_ms, now, latest) if ev.type != REACTION else None
                    if late is not None:
                        change = THIS_EDIT if ev.type == EDIT else DELETION
                        self.say(f"    ({late.change_note(change)})")
                continue
            else:
                self.say(related.event_lines(item, timeline, rel, self.ids, self.claims))
            late = late_among(ev.timestamp_ms, now, latest) if ev.type == MESSAGE else None
            if late is not None:  # dated among rows read, and long before it came
                self.say(f"    ({late.note})")

    def findings(self, found: Sequence[Finding]) -> None:
        for f in found:
            key = finding_key(f)
            if f.severity is not Severity.ERROR or key in self.reported:
                continue
            self.reported.add(key)
            self.say(fmt.finding_said(f))

    def _notice(
        self,
        item: Assessed,
        timeline: Sequence[Assessed],
        rel: Relations,
        counted: _Counted,
    ) -> str | None:
        """What an applied edit, deletion or reaction did, in one line; None when it was
        not applied (forged, malformed, or its target not read yet)."""
        ev = item.event
        content = ev.content
        field = {EDIT: "replaces", REDACTION: "redacts", REACTION: "relates_to"}[ev.type]
        target = content.get(field)
        if ev.event_id in rel.repeated:
            # another key signed something under its id: judged as this copy, on the
            # message it names (``edit_of`` holds no such id: whose copy would it be?)
            if not applied(rel, ev):
                return None
        elif ev.type == EDIT:
            # an edit of an edit applies to the message: ``edit_of`` names it (applied only)
            target = rel.edit_of.get(ev.event_id)
        if not isinstance(target, str) or (agg := rel.of(target)) is None:
            return None
        who = fmt.shown_id(ev.sender_id, self.ids)
        head = f"{fmt.local_time(ev.timestamp_ms)}  {who}  {fmt.BADGES[item.state]}  * "
        if ev.type == EDIT:
            # Whether it is among the target's applied edits: looked up in an index made
            # once per batch, as the reactions' chips are (one segment of 16,000 edits of
            # one message, each found by walking the edits, took 9 s to print: red team
            # rt101).
            edits = counted.edits.get(target)
            if edits is None:
                edits = counted.edits[target] = frozenset(e.event_id for e in agg.edits)
            if agg.redacted is not None or ev.event_id not in edits:
                return None
            latest = agg.latest
            if latest is None or latest.event_id != ev.event_id:
                return f"{head}edited a message (a later edit is shown)"
            body = terminal_safe(latest.body.strip().split("\n", 1)[0], limit=fmt.BODY_LIMIT)
            return f"{head}edited a message: {body}"
        if ev.type == REDACTION:
            red = agg.redacted
            if red is None or red.event_id != ev.event_id:
                return None
            reason = (
                f" (reason: {terminal_safe(red.reason, limit=related.REASON_LIMIT)})"
                if red.reason
                else ""
            )
            return f"{head}{self._taken_back(target, timeline, rel)}{reason}"
        if agg.redacted is not None:
            return None
        # Which chip counted it: every reaction of the target indexed once per batch (a
        # member's one segment of 20,000 reactions to one message, each looked up by
        # walking the chips, took ~100 s to print: quadratic).
        chips = counted.chips.get(target)
        if chips is None:
            chips = counted.chips[target] = {
                event_id: chip
                for chip in agg.reactions
                for reactor in chip.reactors
                for event_id in reactor.event_ids
            }
        chip = chips.get(ev.event_id)
        if chip is None:
            return None
        what = self._what(target, timeline, rel)
        text = related.key_text(chip.key)
        if any(ch.isspace() for ch in chip.key):
            # a text of words, quoted: "✅ to alice@example.com: I agree" is its reaction
            # text, not part of the sentence
            text = f'"{text}"'
        return f"{head}reacted {text} to {what}"

    @staticmethod
    def _taken_back(target: str, timeline: Sequence[Assessed], rel: Relations) -> str:
        """What a redaction deleted, by its target's type: a message, one of its edits
        (the message then reads as before that edit) or a reaction."""
        position = rel.positions.get(target)
        kind = timeline[position].event.type if position is not None else MESSAGE
        if kind == REACTION:
            return "took back a reaction"
        if kind == EDIT:
            return "took back an edit of a message"
        return "deleted a message" if kind == MESSAGE else "deleted an event"

    def _what(self, target: str, timeline: Sequence[Assessed], rel: Relations) -> str:
        """A reacted-to message: its sender and first line, as a reply quotes it."""
        position = rel.positions.get(target)
        if position is None or timeline[position].event.event_id != target:
            return "a message"
        if timeline[position].event.type != MESSAGE:
            return f"an event of {fmt.shown_id(timeline[position].event.sender_id, self.ids)}"
        return related.quote(target, timeline, rel, self.ids)
