"""How ``history`` shows relations (PROTOCOL.md section 18) on a terminal and in JSON.

Replies quote their parent (sender and first line), an edited message shows its latest
text marked "(edited)", a deleted one says who deleted it and why but never its text,
reactions are counted under the message (a chip with an unverified reactor says so), a
thread root counts its replies. The relation events themselves are not shown as lines.

The trust badge of a shown message is the worst of its own state and the states of what
changed it (applied edits, the deletion): an edit from an unverified key cannot make a
verified message look verified. Every string from storage goes through ``terminal_safe``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from typing import Any

from ..protocol.attachments import message_text
from ..protocol.audit import Assessed, TrustState
from ..protocol.event import MESSAGE
from ..protocol.relations import (
    HIDDEN_TYPES,
    Aggregate,
    ReactionChip,
    Relations,
)
from ..protocol.untrusted_text import RoomIds, lookalike_texts, terminal_safe
from . import format as fmt

QUOTE_LIMIT = 80  # characters of a quoted parent's first line
REASON_LIMIT = 200
CHIPS_SHOWN = 20  # reaction chips printed under one message
MAX_SPELLED = 16  # code points spelled out of a chip that looks like another
NOT_LOADED = "(message not loaded)"
EDITED = "(edited)"
DELETED = "(deleted message)"
# A parent whose id is shown more than once (two devices signed events under it): the
# rules quote neither copy (PROTOCOL.md 18.1).
AMBIGUOUS = "(the quoted message is ambiguous: two devices used its id)"


def shown_positions(rel: Relations, total: int, limit: int | None) -> Iterator[int]:
    """Timeline positions of the rows shown as messages, oldest first; with ``limit``
    only the newest ``limit`` of them (relation events do not count)."""
    shown = rel.shown_count(total)
    first = 0 if limit is None else max(0, shown - limit)
    if first >= shown:
        return
    hidden = rel.hidden
    position = rel.position_of(first)
    i = bisect_right(hidden, position)
    while position < total:
        if i < len(hidden) and hidden[i] == position:
            i += 1
        else:
            yield position
        position += 1


def _state(item: Assessed, agg: Aggregate | None) -> TrustState:
    return item.state if agg is None else TrustState(agg.shown_state(item.state.value))


REPEATED = f"({fmt.REPEATED_ID})"


def _first_line(text: str) -> str:
    line = text.strip().split("\n", 1)[0]
    return terminal_safe(line, limit=QUOTE_LIMIT)


def shown_body(item: Assessed, agg: Aggregate | None) -> str | None:
    """The text a client following the protocol shows: the latest applied edit, the
    original text (``message_text``: a file message's is its name, never its body), or
    None for a deleted event (or one without a text body)."""
    if agg is not None and agg.redacted is not None:
        return None
    if agg is not None and agg.latest is not None:
        return agg.latest.body
    if item.event.type != MESSAGE:
        return item.event.body
    return message_text(item.event.content)


def quote(parent_id: str, timeline: Sequence[Assessed], rel: Relations, ids: RoomIds) -> str:
    """A reply's quote of its parent: sender and first line (its latest text, marked
    "(edited)" when it is an edit's)."""
    if parent_id in rel.repeated:
        return AMBIGUOUS
    position = rel.positions.get(parent_id)
    if position is None:
        return NOT_LOADED
    parent = timeline[position]
    if parent.event.event_id != parent_id:  # positions are of this timeline; be sure
        return NOT_LOADED
    agg = rel.of(parent_id)
    if agg is not None and agg.redacted is not None:
        return DELETED
    who = fmt.shown_id(parent.event.sender_id, ids)
    state = _state(parent, agg)
    if state is not TrustState.VERIFIED:  # an impostor's words quoted under a real name
        who += f" {fmt.BADGES[state]}"
    if agg is not None and agg.latest is not None:
        # the latest text is quoted: maybe not the one the reply answered (a question
        # can be changed after it was answered)
        who += f" {EDITED}"
    body = shown_body(parent, agg)
    if parent.event.type == MESSAGE and body is not None:
        text = _first_line(body)
    else:
        text = fmt.describe_event(parent).split("\n", 1)[0]
    return f"{who}: {text}"


def key_text(key: str) -> str:
    """A reaction text for a terminal."""
    return "\u200d".join(terminal_safe(part, limit=64) for part in key.split("\u200d"))


def chip_text(chip: ReactionChip) -> str:
    """``👍 2``; ``👍 2 [1 UNVERIFIED]`` when some reactors are not verified, ``[1 NOT FINAL
    YET]`` when some are verified only on trial while older history loads (as the app
    says it; what this command prints is read whole, so only a caller that prints an
    audit made while loading meets one). A zero-width joiner (emoji sequences) is kept;
    every other control was refused by ``reaction_key`` and would be escaped here anyway."""
    text = f"{key_text(chip.key)} {chip.count}"
    doubtful = sum(1 for r in chip.reactors if r.state != TrustState.VERIFIED.value)
    if doubtful:
        text += f" [{doubtful} UNVERIFIED]"
    if not chip.final:
        text += f" [{sum(1 for r in chip.reactors if r.provisional)} NOT FINAL YET]"
    return text


def chips_line(chips: Sequence[ReactionChip]) -> str:
    """The first ``CHIPS_SHOWN`` chips and how many more: a member can write thousands of
    distinct reaction texts under one message, which would print as one endless line.
    Chips that look alike ("👍", "👍" + U+FE0F, "👍" + a joiner, "Yes" and "Үes": each
    counted apart, so one member can show several "👍 1"; ``lookalike_texts``, the rule
    the desktop app marks chips by) are followed by their code points."""
    shown = chips[:CHIPS_SHOWN]
    alike = lookalike_texts(c.key for c in shown)
    line = "  ".join(
        chip_text(c)
        + (
            f" [{' '.join(f'U+{ord(ch):04X}' for ch in c.key[:MAX_SPELLED])}]"
            if c.key in alike
            else ""
        )
        for c in shown
    )
    more = len(chips) - CHIPS_SHOWN
    if more > 0:
        line += f"  … and {more:,} more reaction{'s' if more > 1 else ''} (--json lists them)"
    return line


def event_lines(
    item: Assessed,
    timeline: Sequence[Assessed],
    rel: Relations,
    ids: RoomIds,
    claims: fmt.KeyClaims = fmt.NO_CLAIMS,
) -> str:
    """One shown event, with what its relations say (several lines, indented).
    ``claims``: what a statement naming another's key says instead of "added a device"."""
    ev = item.event
    agg = rel.of(ev.event_id)
    head = f"{fmt.local_time(ev.timestamp_ms)}  {fmt.shown_id(ev.sender_id, ids)}  "
    head += f"{fmt.BADGES[_state(item, agg)]}  "
    lines: list[str] = []
    parent = _reply_parent(ev.parent_event_id, rel, timeline, ev.event_id)
    if parent is not None:
        lines.append(f"> {quote(parent, timeline, rel, ids)}")
    if agg is not None and agg.redacted is not None:
        red = agg.redacted
        text = f"(message deleted by {fmt.shown_id(ev.sender_id, ids)}"
        if red.reason:
            text += f"; reason: {terminal_safe(red.reason, limit=REASON_LIMIT)}"
        lines.append(text + ")")
    elif agg is not None and agg.latest is not None:
        lines.append(f"{fmt.body_text(agg.latest.body)} {EDITED}")
    elif ev.type == MESSAGE:  # indented below with the rest
        lines.append(fmt.body_text(message_text(ev.content)))
    else:
        lines.append(fmt.describe_event(item, claims))  # one line
    if ev.type == MESSAGE and ev.event_id in rel.repeated:
        # a replay (PROTOCOL.md 18.1): even the edits and deletion made before it stop
        # applying, so this is its sender's first text
        lines.append(REPEATED)
    if agg is not None:
        if agg.reactions and agg.redacted is None:
            lines.append(chips_line(agg.reactions))
        if agg.thread:
            n = len(agg.thread)
            lines.append(f"[{n} repl{'y' if n == 1 else 'ies'} in thread]")
    text = "\n".join(lines)
    # printed through ``fmt.out`` or ``LivePrinter.say``, which cut it into rows (a
    # body padded to a terminal's width would begin a row of its own: ``fmt.fit``)
    return head + text.replace("\n", "\n" + " " * 4)


def named_senders(item: Assessed, timeline: Sequence[Assessed], rel: Relations) -> list[str]:
    """The sender ids ``event_lines`` prints for ``item``: its own, and its quoted
    parent's (whose look-alike mark needs its reason listed as much as a row's)."""
    ev = item.event
    out = [ev.sender_id]
    parent = _reply_parent(ev.parent_event_id, rel, timeline, ev.event_id)
    position = rel.positions.get(parent) if parent is not None else None
    agg = rel.of(parent) if parent is not None else None
    deleted = agg is not None and agg.redacted is not None  # quoted without its sender
    if position is not None and timeline[position].event.event_id == parent and not deleted:
        out.append(timeline[position].event.sender_id)
    return out


def _reply_parent(
    parent: str | None, rel: Relations, timeline: Sequence[Assessed], own_id: str
) -> str | None:
    """The parent a reply quotes: one of this room that is not a relation event (a
    cross-room parent, a reaction, edit or deletion as parent, or the reply itself, is
    a finding)."""
    if parent is None or parent == own_id or not parent.startswith(rel.room_id + "::"):
        return None
    position = rel.positions.get(parent)
    if position is not None and timeline[position].event.type in HIDDEN_TYPES:
        return None
    return parent


def relations_json(item: Assessed, timeline: Sequence[Assessed], rel: Relations) -> dict[str, Any]:
    """What ``history --json`` adds to a shown event."""
    ev = item.event
    agg = rel.of(ev.event_id)
    edited = None
    if agg is not None and agg.latest is not None and agg.redacted is None:
        edited = {
            "body": agg.latest.body,
            "msgtype": agg.latest.msgtype,
            "state": agg.state(item.state.value),
            "edits": [
                {"event_id": e.event_id, "timestamp_ms": e.timestamp_ms, "state": e.state}
                for e in agg.edits
            ],
        }
    redacted = None
    if agg is not None and agg.redacted is not None:
        red = agg.redacted
        redacted = {
            "event_id": red.event_id,
            "timestamp_ms": red.timestamp_ms,
            "reason": red.reason,
            "state": red.state,
        }
    # A reactor verified only on trial while older history loads says "verified" as a
    # final one does: ``provisional`` tells them apart (the text's "[1 NOT FINAL YET]"),
    # as a row's ``reason`` does for a message. A script counting verified reactions
    # would otherwise count an impostor's under a member's id as theirs.
    reactions = [
        {
            "key": chip.key,
            "count": chip.count,
            "state": chip.state,
            "provisional": not chip.final,
            "senders": [
                {
                    "sender_id": r.sender_id,
                    "state": r.state,
                    "provisional": r.provisional,
                    "event_ids": list(r.event_ids),
                }
                for r in chip.reactors
            ],
        }
        for chip in (agg.reactions if agg is not None and agg.redacted is None else ())
    ]
    return {
        "reply_to": _reply_parent(ev.parent_event_id, rel, timeline, ev.event_id),
        "thread_root": rel.thread_root.get(ev.event_id),
        "thread_replies": len(agg.thread) if agg is not None else 0,
        "body": shown_body(item, agg),
        "original_body": ev.body,
        "shown_trust": _state(item, agg).value,
        "edited": edited,
        "redacted": redacted,
        "reactions": reactions,
    }
