"""The GUI's controller: owns the chat client, the bridge, the models and the tasks, and
turns engine events into model updates and notifications. Widgets call its methods and
listen to its signals; it never touches a widget."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from .. import settings as settings_store
from ..keys import Identity
from ..protocol.attachments import safe_file_name
from ..protocol.audit import Assessed, AuditResult
from ..protocol.event import MEMBER, MESSAGE, Event
from ..protocol.findings import Finding, Kind, Severity
from ..protocol.mentions import mentions_in, mentions_me
from ..protocol.metadata import RoomMetadata, check_signer
from ..protocol.relations import Relations, own_reaction
from ..protocol.room_state import NO_NAMES, Names, Roster, membership_text
from ..protocol.unread import (
    UNREAD_CAP,
    ReadMarker,
    UnreadCount,
    is_unread_news,
    marker_for,
)
from ..settings import Settings, StorageSettings
from ..sync.client import ChatClient, RoomRef
from ..sync.events import EngineEvent, ShownEvent
from ..sync.room_objects import StorageRooms
from .bridge import EngineBridge
from .markdown import to_plain
from .models.rooms_model import RoomItem, RoomsModel
from .models.timeline_model import Pager, Reply, TimelineModel
from .room_preview import DELETED, as_shown, last_shown
from .tasks import TaskRunner

log = logging.getLogger("bucket_chat.gui")

# Findings that mean the room was not read whole: no verdict on it is final.
PARTIAL_READ = frozenset({Kind.UNREAD, Kind.SEGMENT_UNREADABLE})
MARKER_SAVE_MS = 10_000  # read markers that moved are saved this long after (and at quit)
DEFER_ROWS = 2_000  # a room not shown with a longer timeline is redrawn when shown
ROW_RUN_GAP = 32  # rows read by position (a thread's replies): nearer ones share a page


@dataclass(slots=True)
class _Behind:
    """The audit a room not shown was left behind on, and what was appended since."""

    result: AuditResult
    total: int
    newest: tuple[ShownEvent, ...]
    complete: bool
    appended: list[Assessed]
    relations: Relations | None = None  # of ``result``
    appended_relations: Relations | None = None  # of the newest result appended


def _runs(positions: list[int], gap: int) -> list[tuple[int, int]]:
    """Sorted ``positions`` as (start, stop) ranges: positions less than ``gap`` apart
    share one range (one page read instead of many)."""
    out: list[tuple[int, int]] = []
    for p in positions:
        if out and p - out[-1][1] < gap:
            out[-1] = (out[-1][0], p + 1)
        else:
            out.append((p, p + 1))
    return out


def _ref(key: str) -> RoomRef:
    storage_id, room_id = key.split("/", 1)
    return RoomRef(storage_id, room_id)


def _preview(ev: Event) -> str:
    """The room list's line for ``ev`` (a shown event, never a relation event; its
    latest text as ``room_preview.as_shown`` makes it)."""
    if ev.type == MEMBER:
        return f"{ev.sender_id} {membership_text(ev.content)}"
    msgtype = ev.content.get("msgtype")
    if msgtype in ("m.file", "m.image"):
        info = ev.content.get("info")
        name = info.get("name") if isinstance(info, dict) else None
        return f"📎 {safe_file_name(name if isinstance(name, str) else ev.body)}"
    return to_plain(ev.body or "")


def _arrived(old: AuditResult | None, total: int, newest: tuple[ShownEvent, ...]) -> list[Assessed]:
    """The rows a full re-audit brought after the newest row of the audit before it: new
    messages, counted unread and notified like appended ones (a newcomer's first message
    is audited in full, never appended). Nothing on a first read, nor when the row that
    was newest is not among the new audit's newest rows."""
    before = len(old.timeline) if old is not None else 0
    if old is None or not before or total <= before:
        return []
    last = old.timeline[before - 1].event.event_id
    at = next((i for i, s in enumerate(newest) if s.verdict.event.event_id == last), None)
    if at is None:
        return []
    return [
        s.verdict._replace(event=s.event) for s in newest[at + 1 :] if isinstance(s.event, Event)
    ]


class Controller(QObject):
    notify = Signal(str, str, str)  # room key, title, text
    error = Signal(str, str)  # what, message
    current_changed = Signal(str)  # room key ("" for none)
    room_audit_changed = Signal(str)  # room key: its findings changed
    storage_status = Signal(str, bool, str)  # storage id, online, message
    unread_changed = Signal(int)
    relations_changed = Signal(str)  # room key: ``relations[key]`` is new
    # room key, id of its first event that arrived unread ("" for none): the room was
    # just shown to the user (opened, or its window came to the front)
    unread_seen = Signal(str, str)

    def __init__(
        self, settings: Settings, identity: Identity, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.identity = identity
        self.tasks = TaskRunner(self)
        self.tasks.failed.connect(self.error)
        self.bridge = EngineBridge(self)
        self.client = ChatClient(settings, identity.user_id, identity.signing_key, self._deliver)
        self.rooms = RoomsModel(self)
        self.timelines: dict[str, TimelineModel] = {}
        # A large room's new audit that arrived while another room was shown: its model
        # is brought up to date when the room is shown (``_catch_up``), not while the
        # person reads elsewhere. key -> (audit, complete, items appended since).
        self._behind: dict[str, _Behind] = {}
        self.results: dict[str, AuditResult] = {}
        # room key -> the relations of the result the next room_loaded / events_appended
        # carries (the bridge says so just before)
        self._arriving: dict[str, Relations | None] = {}
        # The newest shown event of each room (with its body): the room list's preview,
        # redone when an edit or a deletion of it arrives later.
        self._previewed: dict[str, Event] = {}
        # room key -> its metadata and what is wrong with it, as the last RoomLoaded said
        self.metadata: dict[str, tuple[RoomMetadata | None, tuple[Finding, ...]]] = {}
        self.current = ""
        self.window_active = True
        self.online: dict[str, tuple[bool, str]] = {}
        # room key -> (the audit result, its relations): positions in the relations are
        # positions in that result's timeline (``rows_at`` reads rows by them)
        self.relations: dict[str, tuple[AuditResult, Relations]] = {}
        # room key -> its members, devices and display names as the engine's state thread
        # made them for the latest result (the GUI thread never folds a timeline)
        self.rosters: dict[str, Roster] = {}
        self.first_unread: dict[str, str] = {}  # room key -> its first unread event's id
        # Rooms whose unread messages after the read marker were counted (or whose marker
        # was first set) this session: once per room, on its first audit with rows.
        self._marked: set[str] = set()
        # Rooms not yet left after being shown this session: a message written before the
        # app started that is fetched while the room is shown (the first poll comes after
        # the first audit, which the index answers) still gets the "New messages" line.
        self._started_ms = int(time.time() * 1000)
        self._catching_up: set[str] = set()
        self._save_markers = QTimer(self)
        self._save_markers.setSingleShot(True)
        self._save_markers.setInterval(MARKER_SAVE_MS)
        self._save_markers.timeout.connect(self.save_settings)
        b = self.bridge
        b.timeline_warmed.connect(self._on_timeline_warmed)
        b.state_arrived.connect(self._on_state_arrived)
        b.relations_arrived.connect(self._on_relations_arrived)
        b.room_loaded.connect(self._on_room_loaded)
        b.events_appended.connect(self._on_events_appended)
        b.outbox_changed.connect(self._on_outbox_changed)
        b.storage_status_changed.connect(self._on_storage_status_changed)
        b.warning_raised.connect(self._on_warning)
        b.room_discovered.connect(lambda sid, rid: log.info("room %s appeared on %s", rid, sid))
        for ref in self.client.rooms():
            self._add_room_item(ref)
            self._catching_up.add(ref.key)

    # -- lifecycle -----------------------------------------------------------------------------

    def _deliver(self, storage_id: str, event: EngineEvent) -> None:
        self.bridge.deliver(storage_id, event)

    def start(self) -> None:
        self.tasks.start(self._start(), "Connecting to your storages")

    async def _start(self) -> None:
        await self.client.start()
        for key in self.rooms.room_keys():
            # the names this device's index knows (read off the GUI thread); a room's
            # RoomLoaded brings its metadata later
            name = await self.client.room_name(_ref(key))
            if name:
                self.rooms.update(key, name=name)
        if self.settings.last_room and self.rooms.item(self.settings.last_room):
            self.select_room(self.settings.last_room)

    async def shutdown(self) -> None:
        self._save_markers.stop()
        await self.tasks.shutdown()
        await self.client.close()
        self.save_settings()

    def save_settings(self) -> None:
        try:
            settings_store.save(self.settings)
        except OSError as exc:
            self.error.emit("Saving settings", str(exc))

    # -- rooms ------------------------------------------------------------------------------

    def storage_name(self, storage_id: str) -> str:
        entry = self.settings.storage(storage_id)
        return entry.name if entry else storage_id

    def _add_room_item(self, ref: RoomRef) -> None:
        muted = ref.key in self.settings.muted_rooms
        self.rooms.add(
            RoomItem(ref.key, ref.room_id, self.storage_name(ref.storage_id), muted=muted)
        )

    def timeline(self, key: str) -> TimelineModel:
        model = self.timelines.get(key)
        if model is None:
            model = self.timelines[key] = TimelineModel(self.identity.public_key_b64, self)
            model.own_user = self.identity.user_id
        return model

    def _catch_up(self, key: str) -> None:
        """Apply the audit a room not shown was left behind on (see ``_behind``)."""
        behind = self._behind.pop(key, None)
        if behind is not None:
            self._show_audit(
                key, behind.result, behind.total, behind.newest, behind.complete, behind.relations
            )
            # what is shown already is skipped
            self.timeline(key).append(behind.appended, behind.appended_relations)

    def _show_audit(
        self,
        key: str,
        result: AuditResult,
        total: int,
        newest: tuple[ShownEvent, ...],
        complete: bool,
        relations: Relations | None = None,
    ) -> None:
        self.timeline(key).set_audit(
            total, newest, complete, self.names(key), self._pager(key, result), relations
        )

    def select_room(self, key: str) -> None:
        if key == self.current or self.rooms.item(key) is None:
            return
        self._catching_up.discard(self.current)  # shown, then left: what came was seen
        self.current = key
        self._catch_up(key)
        self.settings.last_room = key
        if self.window_active:
            self._mark_read(key)
        self.rooms.update(key, unread=0)
        self.unread_changed.emit(self.rooms.total_unread())
        self.current_changed.emit(key)
        self.unread_seen.emit(key, self.first_unread.pop(key, ""))
        ref = _ref(key)
        self.client.focus(ref)
        if self.client.is_attached(ref.storage_id):
            self.tasks.start(self.client.open_room(ref), f"Opening {ref.room_id}")

    def create_room(self, storage_id: str, room_id: str, name: str) -> None:
        async def run() -> None:
            ref = await self.client.create_room(storage_id, room_id, name)
            self._add_room_item(ref)
            self.rooms.update(ref.key, name=name or room_id)
            self.save_settings()
            self.select_room(ref.key)

        self.tasks.start(run(), f"Creating room {room_id}")

    def join_room(self, storage_id: str, room_id: str) -> None:
        async def run() -> None:
            ref = await self.client.join_room(storage_id, room_id)
            self._add_room_item(ref)
            name = await self.client.room_name(ref)
            if name:
                self.rooms.update(ref.key, name=name)
            self.save_settings()
            self.select_room(ref.key)

        self.tasks.start(run(), f"Joining room {room_id}")

    def leave_room(self, key: str) -> None:
        async def run() -> None:
            await self.client.leave_room(_ref(key))
            self.rooms.remove(key)
            self.first_unread.pop(key, None)
            self.settings.read_markers.pop(key, None)
            self._marked.discard(key)
            self.timelines.pop(key, None)
            self._previewed.pop(key, None)
            self._behind.pop(key, None)
            self.relations.pop(key, None)
            self.rosters.pop(key, None)
            if self.current == key:
                self.current = ""
                self.current_changed.emit("")
            self.save_settings()

        self.tasks.start(run(), "Leaving the room")

    def send_text(self, text: str, reply_to: str | None = None) -> None:
        """Send ``text`` in the room shown; ``reply_to``: the event it answers (a reply,
        in that event's thread)."""
        if not self.current:
            return
        ref = _ref(self.current)
        what = "Sending your reply" if reply_to else "Sending your message"
        # the mentioned ids go in a field too (PROTOCOL.md 19)
        mentioned = mentions_in(text, self.members(self.current))
        send = self.client.send_text(ref, text, reply_to=reply_to, mentions=mentioned)
        self.tasks.start(send, what)

    # -- relations (replies, reactions, edits, deletions: PROTOCOL.md section 18) ----------
    # Each goes through the outbox like a message; a refusal (ValueError: a bad reaction
    # text, a blank edit, a target of another room) is shown through ``error``.

    def react(self, event_id: str, text: str) -> None:
        if self.current:
            self.tasks.start(self.client.react(_ref(self.current), event_id, text), "Reacting")

    def unreact(self, event_id: str, text: str) -> None:
        if self.current:
            ref = _ref(self.current)
            self.tasks.start(self.client.unreact(ref, event_id, text), "Taking back your reaction")

    def own_reaction(self, key: str, event_id: str, text: str) -> bool:
        """Whether this user's reaction ``text`` on ``event_id`` is among the room's
        relations as last received."""
        known = self.relations.get(key)
        agg = known[1].of(event_id) if known is not None else None
        for chip in agg.reactions if agg is not None else ():
            # one planted under this user's id by another key is not theirs (PROTOCOL 18.3)
            if chip.key == text.strip() and own_reaction(chip, self.identity.user_id):
                return True
        return False

    def quick_react(self, event_id: str, text: str) -> None:
        """Add this reaction, or take it back when it is there already (a redaction of
        each of this user's reactions with that text)."""
        if self.current and self.own_reaction(self.current, event_id, text):
            self.unreact(event_id, text)
        else:
            self.react(event_id, text)

    def edit_message(self, event_id: str, text: str) -> None:
        if self.current:
            ref = _ref(self.current)
            self.tasks.start(self.client.edit_message(ref, event_id, text), "Saving your edit")

    def delete_event(self, event_id: str, reason: str | None = None) -> None:
        if self.current:
            ref = _ref(self.current)
            self.tasks.start(
                self.client.delete_event(ref, event_id, reason), "Deleting the message"
            )

    async def rows_at(self, key: str, positions: Iterable[int]) -> dict[int, ShownEvent]:
        """The rows (with bodies) at these positions of the room's audit that its
        relations are of, read by the client on the engine's worker: runs of near
        positions are read as one page. Positions whose audit was replaced meanwhile are
        missing from the answer (its successor's relations follow)."""
        known = self.relations.get(key)
        if known is None:
            return {}
        result = known[0]
        wanted = {p for p in positions if 0 <= p < len(result.timeline)}
        out: dict[int, ShownEvent] = {}
        ref = _ref(key)
        for start, stop in _runs(sorted(wanted), ROW_RUN_GAP):
            rows = await self.client.timeline_page(ref, result, start, stop)
            if rows is None:
                break
            out.update((start + i, row) for i, row in enumerate(rows) if start + i in wanted)
        return out

    async def list_storage_rooms(self, storage_id: str) -> StorageRooms:
        """The rooms a storage holds (``ChatClient.storage_rooms``: a value, never a
        storage error), for the join dialog."""
        return await self.client.storage_rooms(storage_id)

    def members(self, key: str) -> list[tuple[str, str]]:
        """(user id, display name or "") of the room's members as its timeline knows
        them (everyone who wrote, but those who left), first seen first: what "@"
        completes."""
        return self.names(key).members()

    def names(self, key: str) -> Names:
        """The room's display names and sender ids (``Roster.names``) as last received."""
        roster = self.rosters.get(key)
        return roster.names if roster is not None else NO_NAMES

    def set_notify_level(self, key: str, level: str) -> None:
        """ "all", "mentions" or "none" (muted) for one room; saved at once."""
        self.settings.set_notify_level(key, level)
        self.rooms.update(key, muted=level == "none")
        self.unread_changed.emit(self.rooms.total_unread())
        self.save_settings()

    def _mentions_me(self, key: str, ev: Event) -> bool:
        own = self.identity.user_id
        names = (self.settings.displayname, self.names(key).name(own))
        return mentions_me(ev.content, own, names)

    def _notification_title(self, key: str, ev: Event, room: str) -> str:
        """Who wrote, by display name with the real id beside it, and where."""
        name = self.names(key).name(ev.sender_id)
        who = f"{name} ({ev.sender_id})" if name and name != ev.sender_id else ev.sender_id
        return f"{who} in {room}"

    def send_content(self, key: str, content: dict[str, Any]) -> None:
        self.tasks.start(self.client.send_content(_ref(key), content), "Sending")

    def reaudit(self, key: str) -> None:
        """Audit a room again, e.g. after the user confirmed a device (new pins)."""
        self.tasks.start(self.client.reaudit(_ref(key)), "Checking the room again")

    def retry_failed(self) -> None:
        self.client.retry_failed()

    def set_window_active(self, active: bool) -> None:
        self.window_active = active
        # Engines poll buckets often only while someone looks (they start believing
        # nobody does: a window that never comes to the front costs little).
        self.client.set_window_focused(active)
        if active and self.current:
            self._mark_read(self.current)
            self.rooms.update(self.current, unread=0)
            self.unread_changed.emit(self.rooms.total_unread())
            if self.current in self.first_unread:
                self.unread_seen.emit(self.current, self.first_unread.pop(self.current))
            self.client.focus(_ref(self.current))

    def add_storage(self, entry: StorageSettings) -> None:
        async def run() -> None:
            if self.settings.storage(entry.id) is None:
                self.settings.storages.append(entry)
            await self.client.attach(entry)
            self.save_settings()

        self.tasks.start(run(), f"Adding storage {entry.name}")

    # -- engine events ----------------------------------------------------------------------

    def _on_timeline_warmed(self, key: str, rows: Any, total: int) -> None:
        self.timeline(key).show_cached(rows)

    def _on_room_loaded(
        self,
        key: str,
        result: AuditResult,
        complete: bool,
        metadata: RoomMetadata | None,
        metadata_findings: tuple[Finding, ...],
        total: int,
        newest: tuple[ShownEvent, ...],
    ) -> None:
        arrived = _arrived(self.results.get(key), total, newest)
        marker = self.settings.read_marker(key)  # as before this audit is shown
        self.results[key] = result
        self.metadata[key] = (metadata, metadata_findings)
        if metadata is not None and metadata.name:
            self.rooms.update(key, name=metadata.name)
        relations = self._arriving.pop(key, None)
        if key != self.current and total > DEFER_ROWS:
            # Rebuilding a long timeline's model is work on the GUI thread: not now, for a
            # room nobody looks at, but when it is shown.
            self._behind[key] = _Behind(result, total, newest, complete, [], relations)
        else:
            self._behind.pop(key, None)
            self._show_audit(key, result, total, newest, complete, relations)
        self._refresh_item(key, result, arrived, last_shown(newest))
        joined = self.rooms.item(key) is not None  # not an audit of a room just left
        if joined and key not in self._marked and len(result.timeline):
            self._marked.add(key)
            if marker is None:  # a room seen for the first time: nothing of it is news yet
                self._mark_read(key)
            else:
                self._count_after_marker(key, result, relations, ReadMarker(*marker))
        self.room_audit_changed.emit(key)

    # -- read markers (the newest event seen in each room: unread counts survive a restart) --

    def _mark_read(self, key: str) -> None:
        """The room is shown to the person: its newest row is seen. Saved soon after."""
        result = self.results.get(key)
        if result is None or not len(result.timeline) or self.rooms.item(key) is None:
            return
        # the newest row not dated in the future: a hostile far-future row as the marker
        # would hide every message that arrives later (``unread.marker_for``)
        seen = marker_for(result.timeline, int(time.time() * 1000))
        if seen is None:
            return
        moved = self.settings.set_read_marker(key, seen.event_id, seen.timestamp_ms)
        if moved and not self._save_markers.isActive():
            self._save_markers.start()

    def _count_after_marker(
        self, key: str, result: AuditResult, relations: Relations | None, marker: ReadMarker
    ) -> None:
        """Count, on the engine's state thread, the unread messages of the room's first
        audit this session after the marker saved before: what arrived while the app was
        closed. The room list shows them, the "New messages" line goes above the first."""
        own = self.identity.public_key_b64

        async def run() -> None:
            answer = await self.client.count_unread(_ref(key), result, relations, marker, own)
            if answer is not None and answer.count:
                self._apply_unread(key, marker, answer)

        self.tasks.start(run(), "Counting unread messages")

    def _apply_unread(self, key: str, marker: ReadMarker, answer: UnreadCount) -> None:
        item = self.rooms.item(key)
        if item is None:  # left meanwhile
            return
        if key == self.current and self.window_active:
            self._catching_up.discard(key)
            self.unread_seen.emit(key, answer.first)  # shown: read now, the line says where
            return
        if self.settings.read_marker(key) != (marker.event_id, marker.timestamp_ms):
            return  # shown since the count was asked for: those messages were seen
        # what arrived since that audit was counted already (``_refresh_item``): on top
        self.first_unread[key] = answer.first
        self.rooms.update(key, unread=min(UNREAD_CAP, item.unread + answer.count))
        self.unread_changed.emit(self.rooms.total_unread())

    def _line_for_the_away(self, key: str, incoming: list[Assessed]) -> None:
        """New messages fetched while the room is shown that were written before the app
        started (while it was closed) arrived unread: the line goes above the first of
        them. Once per room and session, and only until the room is left."""
        if key not in self._catching_up:
            return
        # by the writer's clock: one running ahead misses the line (as before), one behind
        # draws it above a message written just after the start (no harm)
        away = next((a for a in incoming if a.event.timestamp_ms < self._started_ms), None)
        if away is not None:
            self._catching_up.discard(key)
            self.unread_seen.emit(key, away.event.event_id)

    def _pager(self, key: str, result: AuditResult) -> Pager:
        """Pages of ``result`` for the room's timeline, read by the client on the
        engine's worker (the GUI never reads the index or the engine's rooms itself)."""
        ref = _ref(key)

        def pager(start: int, stop: int, reply: Reply) -> None:
            async def run() -> None:
                reply(await self.client.timeline_page(ref, result, start, stop))

            self.tasks.start(run(), "Reading older messages")

        return pager

    def _on_events_appended(self, key: str, items: list[Assessed], result: AuditResult) -> None:
        self.results[key] = result
        relations = self._arriving.pop(key, None)
        behind = self._behind.get(key)
        if behind is not None:
            behind.appended.extend(items)
            if relations is not None:
                behind.appended_relations = relations
        else:
            self.timeline(key).append(items, relations, self.names(key))
        self._refresh_item(key, result, items, last_shown(items))
        # the first rows came appended to an empty audit: counted as they came, a count
        # after the marker on a later audit would count them twice
        self._marked.add(key)

    def _on_state_arrived(self, key: str, roster: Roster | None) -> None:
        """The room state of the result the next room_loaded / events_appended carries."""
        if roster is not None:
            self.rosters[key] = roster

    def _on_relations_arrived(
        self, key: str, result: AuditResult, relations: Relations | None
    ) -> None:
        """The relations of ``result``, just before the room_loaded / events_appended that
        carries it: the timeline model takes them with that result (``_arriving``), the
        relation actions (thread panel, versions) read ``relations[key]``."""
        self._arriving[key] = relations
        if relations is not None:
            self.relations[key] = (result, relations)
            self.relations_changed.emit(key)

    def _refresh_item(
        self, key: str, result: AuditResult, new: list[Assessed], last: Event | None
    ) -> None:
        """``last``: the newest shown event with its body (a slim audit's events have
        none); None when only relation events came (reactions, edits, deletions): the
        preview stays, redone with the room's relations in case they are about it."""
        item = self.rooms.item(key)
        if item is None:
            return
        changes: dict[str, Any] = {
            "findings": len(self.room_errors(key)),
            "partial": self.history_partial(key),
        }
        got = self.relations.get(key)
        rel = got[1] if got else None
        if last is not None and last.type not in (MESSAGE, MEMBER):
            last = None  # another shown type is no room's news either
        if last is not None:
            self._previewed[key] = last
            changes.update(last_ts=last.timestamp_ms)
        shown = last or self._previewed.get(key)
        if shown is not None:  # an edit or deletion of the previewed message changes it
            current = as_shown(shown, rel)
            changes.update(preview=DELETED if current is None else _preview(current))
        own = self.identity.public_key_b64
        # Messages only: a join, a reaction, an edit, a deletion or a typing notice is not
        # unread news (room_preview says why), nor is a message that arrives deleted
        # already (its deletion was read first): its text is shown nowhere. The count
        # after a restart uses the same rule (``_count_after_marker``).
        incoming = [a for a in new if is_unread_news(a.event, own, rel)]
        focused = key == self.current and self.window_active
        if focused:
            self._mark_read(key)
            self._line_for_the_away(key, incoming)
        if incoming and not focused:
            if not item.unread or key not in self.first_unread:
                self.first_unread[key] = incoming[0].event.event_id
            changes["unread"] = min(UNREAD_CAP, item.unread + len(incoming))
            level = self.settings.notify_level(key)
            if not item.muted and level != "none" and self.settings.notifications:
                events = [a.event for a in incoming]
                if level == "mentions":
                    events = [e for e in events if self._mentions_me(key, e)]
                if events:
                    ev = events[-1]
                    title = self._notification_title(key, ev, item.shown_name)
                    self.notify.emit(key, title, _preview(as_shown(ev, rel) or ev))
        self.rooms.update(key, **changes)
        if incoming and not focused:
            self.unread_changed.emit(self.rooms.total_unread())

    def room_errors(self, key: str) -> list[Finding]:
        """Every error-level finding about a room, as ``verify`` lists them: its metadata's
        (including who signed it, checked against the audit's keys), then its audit's."""
        result = self.results.get(key)
        errors = list(result.errors) if result else []
        if key in self.metadata:
            metadata, findings = self.metadata[key]
            meta = [f for f in findings if f.severity is Severity.ERROR]
            if metadata is not None and result is not None:
                meta += check_signer(metadata, result.authorized)[1]
            errors = meta + errors
        return errors

    def history_partial(self, key: str) -> bool:
        """Whether part of the room could not be listed or read: its verdicts are then not
        final (PROTOCOL.md section 16), whatever else the audit says."""
        result = self.results.get(key)  # these are audit findings, never metadata ones
        return result is not None and any(f.kind in PARTIAL_READ for f in result.findings)

    def _on_outbox_changed(self, key: str, events: list[Event], state: str, error: str) -> None:
        self.timeline(key).set_echo(events, state, error)

    def _on_warning(self, storage_id: str, message: str) -> None:
        entry = self.settings.storage(storage_id)
        self.error.emit(entry.name if entry is not None else storage_id, message)

    def _on_storage_status_changed(self, storage_id: str, online: bool, message: str) -> None:
        self.online[storage_id] = (online, message)
        self.rooms.set_storage_online(storage_id, online)
        self.storage_status.emit(storage_id, online, message)
