"""What the GUI's controller holds of one room the user is in, as one record.

One ``RoomSession`` per room in ``Controller`` (keyed by the room's key), made when the
room joins the list (or while it is being created or joined: its first audit may come
before that call returns) and dropped whole when the room is left or its storage
removed. An engine event about a room that has no record is about a room left: it is
dropped with one look-up, and nothing of that room comes back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..protocol.audit import Assessed, AuditResult
from ..protocol.findings import Finding
from ..protocol.metadata import RoomMetadata
from ..protocol.relations import Relations
from ..protocol.room_state import Roster
from ..sync.client import RoomRef
from ..sync.events import ShownEvent
from .models.timeline_model import TimelineModel


@dataclass(slots=True)
class Behind:
    """The audit a room not shown was left behind on, and what was appended since."""

    result: AuditResult
    total: int
    newest: tuple[ShownEvent, ...]
    complete: bool
    appended: list[Assessed]
    relations: Relations | None = None  # of ``result``
    appended_relations: Relations | None = None  # of the newest result appended


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class RoomSession:
    """One room's state in the controller this session (see the module's docstring)."""

    ref: RoomRef
    timeline: TimelineModel | None = None  # made when first asked for
    result: AuditResult | None = None  # the latest audit received
    # This device's clock when the engine read from storage what ``result`` holds
    # (``RoomLoaded.read_ms``, set by ``read``): how far it had read the room is weighed
    # by it, not by the clock of the rows that come next, nor of the delivery: a row
    # dated ahead when read is not read yet after a sleep (``unread.seen_place``, red
    # team rt101), even when a re-audit of the rows held comes after the wake-up.
    read_ms: int = 0
    # ``read_ms`` of the result the next room_loaded / events_appended carries (the
    # bridge says so just before: ``read_arrived``)
    arriving_read_ms: int = 0
    # its metadata and what is wrong with it, as the last RoomLoaded said
    metadata: RoomMetadata | None = None
    metadata_findings: tuple[Finding, ...] = ()
    # (the audit result, its relations): positions in the relations are positions in
    # that result's timeline (``Controller.rows_at`` reads rows by them)
    relations: tuple[AuditResult, Relations] | None = None
    # the relations of the result the next room_loaded / events_appended carries (the
    # bridge says so just before)
    arriving: Relations | None = None
    # A large room's new audit that arrived while another room was shown: its model is
    # brought up to date when the room is shown, not while the person reads elsewhere.
    behind: Behind | None = None
    # The newest shown event (with its body) and its verdict: the room list's preview,
    # redone when an edit or a deletion of it arrives later.
    previewed: Assessed | None = None
    # members, devices and display names as the engine's state thread made them for the
    # latest result (the GUI thread never folds a timeline)
    roster: Roster | None = None
    # ``Roster.doubted_keys`` of ``roster``: the keys this room does not trust for their
    # senders (the other rooms of its storage say so of rows signed with them)
    doubted: frozenset[tuple[str, str]] = frozenset()
    first_unread: str = ""  # its first unread event's id, "" for none
    # Its unread messages after the read marker were counted (or its marker first set)
    # this session: once, on its first audit with rows.
    marked: bool = False
    # Seen for the first time this session (no read marker before it): its first audit
    # was marked read whole, and nothing of it placed before ``since_ms`` is news later
    # either (``unread.arrived``'s ``first_seen``): a segment of that first screen read
    # late (left behind, held by a slow or hostile provider) is history (red team rt75).
    first_seen: bool = False
    # Not yet left after being shown this session: a message written before the app
    # started that is fetched while the room is shown (the first poll comes after the
    # first audit, which the index answers) still gets the "New messages" line.
    catching_up: bool = False

    # When the record was made (the session's start, or the room's joining): a full
    # re-audit's rows that were not there before and are placed from then on are new
    # messages even when they sort before the newest row (``controller._arrived``).
    since_ms: int = field(default_factory=_now_ms)

    def read(self, result: AuditResult) -> None:
        """``result`` is the room's audit now, read from storage at ``arriving_read_ms``."""
        self.result, self.read_ms = result, self.arriving_read_ms

    def take_arriving(self) -> Relations | None:
        """The relations announced for the result now arriving (once)."""
        relations, self.arriving = self.arriving, None
        return relations
