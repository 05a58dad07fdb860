"""What the room list's preview and a notification may say about a room's newest rows
once relations exist (PROTOCOL.md section 18).

Reactions, edits, redactions and typing notices are never rows of their own: they are not
a room's "last message", they are not unread messages and they do not notify like one.
Their content is not a message body either: a writer MAY add fields (section 18), so a
hostile one can put a ``body`` on a reaction or a forged edit, and nothing of it may reach
the preview or the tray. The preview instead follows its message: the latest applied edit's
text, and once the message is deleted, no text of it at all.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..protocol.audit import Assessed, Timeline
from ..protocol.event import Event
from ..protocol.relations import HIDDEN_TYPES, Relations
from ..sync.events import ShownEvent

DELETED = "Message deleted"


def is_message_row(ev: Event) -> bool:
    """Whether ``ev`` is shown as a row of its own (a message, a member event...)."""
    return ev.type not in HIDDEN_TYPES


def last_shown(rows: Iterable[ShownEvent | Assessed]) -> Assessed | None:
    """The newest of ``rows`` (oldest first) that is a row of its own, with its body and
    its verdict (the preview marks a row that is not verified, as the row is marked);
    None when there is none, or when that row's body is not at hand (a damaged cached
    line): then the preview keeps what it said."""
    for row in reversed(list(rows)):
        verdict = row.verdict if isinstance(row, ShownEvent) else row
        if verdict.event.type in HIDDEN_TYPES:
            continue
        ev = row.event
        if not isinstance(ev, Event) or not is_message_row(ev):
            return None
        return verdict._replace(event=ev)
    return None


def reassessed(timeline: Timeline, row: Assessed) -> Assessed:
    """``row`` (a preview's: with its body) with the verdict ``timeline`` gives the copy it
    is, or as it was when that copy is not shown there: a later audit may settle what an
    earlier one took on trial while older history loaded."""
    at = timeline.position_of_copy(row.event.event_id, row.path, row.line)
    if at is None:
        return row
    now = timeline[at]
    return row._replace(state=now.state, reason=now.reason)


def as_shown(ev: Event, relations: Relations | None) -> Event | None:
    """``ev`` as relations have it: None once it is deleted, with its latest applied
    edit's text as its body once edited (so the preview makes plain text of it the same
    way), else ``ev`` itself."""
    agg = relations.of(ev.event_id) if relations is not None else None
    if agg is None:
        return ev
    if agg.redacted is not None:
        return None
    latest = agg.latest
    if latest is None:
        return ev
    return ev._replace(content={**ev.content, "body": latest.body})
