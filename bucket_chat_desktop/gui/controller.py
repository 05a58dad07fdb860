"""The GUI's controller: owns the chat client, the bridge, the models and the tasks, and
turns engine events into model updates and notifications. Widgets call its methods and
listen to its signals; it never touches a widget."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Collection, Coroutine, Iterable, Iterator, Mapping
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from .. import settings as settings_store
from ..keys import Identity
from ..protocol.attachments import is_file_message, message_text
from ..protocol.audit import Assessed, AuditResult, TrustState, provisional
from ..protocol.event import MEMBER, MESSAGE, Event
from ..protocol.findings import NOT_READ, Finding, Kind, Severity, vanished_only
from ..protocol.mentions import MentionTargets, mentions_in, mentions_me
from ..protocol.metadata import RoomMetadata, check_signer
from ..protocol.relations import EDIT, REDACTION, Relations, own_reaction
from ..protocol.room_state import (
    NO_NAMES,
    Confirmed,
    Names,
    Roster,
    membership_text,
    statement_claim,
)
from ..protocol.unread import (
    FUTURE_SLACK_MS,
    UNREAD_CAP,
    ReadMarker,
    UnreadCount,
    anchor_position,
    arrived,
    is_news_placed,
    is_unread_news,
    marker_for,
    placed_before,
    placed_by,
    position_of,
    seen_place,
)
from ..protocol.untrusted_text import one_line, shown_id, shown_id_ends
from ..settings import Settings, StorageSettings
from ..storage.base import StorageError
from ..sync.client import ChatClient, RoomRef, SearchHit
from ..sync.events import EngineEvent, SendKept, ShownEvent
from ..sync.outbox import Discard, HeldDiscard
from ..sync.room_objects import StorageRooms
from ..sync.selfcheck import TEST_NO_ANSWER
from ..sync.watched import NoAnswerError
from ..sync.writer import RoomError
from ..timestamps import LateArrival, LateCopy, late_among, late_copy
from .bridge import EngineBridge
from .markdown import to_plain
from .models.rooms_model import RoomItem, RoomsModel
from .models.timeline_model import Pager, Reply, TimelineModel
from .room_preview import DELETED, as_shown, last_shown, reassessed
from .room_session import Behind, RoomSession
from .style import NOT_FINAL, REPEATED_ID_NOTE, WARNING_MARK, trust_label
from .tasks import TaskRunner

log = logging.getLogger("bucket_chat.gui")

# What ``kept_discarded`` says of each outcome of a discard (``Outbox.discard_held``).
# A hold another send signed is SIGNED whichever send it was: the app's own (its retry
# once the room's read completes signs the older holds first) or the command line's.
DISCARD_SAID = {
    Discard.DISCARDED: "Discarded: the message is gone from this device.",
    Discard.SIGNED: (
        "Not discarded: it was sent meanwhile (by this app or another Bucket Chat program "
        "on this device), and it is shown as sending."
    ),
    Discard.GONE: (
        "Nothing was discarded: the message was no longer kept on this device (it was "
        "sent meanwhile, or discarded by another Bucket Chat program on this device)."
    ),
}
# ... of a discard that could not empty the outbox's log (``HeldDiscard.in_log``)
DISCARDED_IN_LOG = (
    "Discarded, but a copy of its text stays in the outbox's log file on this device "
    "until the app and the command line have both closed the outbox: another Bucket Chat "
    "program was reading it."
)
SENT_HERE_SAID = "Not discarded: this app sent it meanwhile, and it is shown as sending."
"""What a discard says when the app's own send signed the message first (``signed_here``)."""


def discard_said(answer: HeldDiscard) -> str:
    """The status line of a discard's answer: who sent it, when the app knows it did."""
    if answer.signed_here and answer.outcome is not Discard.DISCARDED:
        return SENT_HERE_SAID
    if answer.in_log and answer.outcome is Discard.DISCARDED:
        return DISCARDED_IN_LOG
    return DISCARD_SAID[answer.outcome]


# Findings that mean the room was not read whole (``RoomState.partial``): no verdict on it
# is final. A read that failed or was refused (a file over the size limit, an abandoned
# segment) or what was read here that storage no longer holds as read.
PARTIAL_READ = NOT_READ | {Kind.SEGMENT_VANISHED}
MARKER_SAVE_MS = 10_000  # read markers that moved are saved this long after (and at quit)
DEFER_ROWS = 2_000  # a room not shown with a longer timeline is redrawn when shown
ROW_RUN_GAP = 32  # rows read by position (a thread's replies): nearer ones share a page


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


def _sorts_before(
    result: AuditResult, event_id: str, other_id: str, known: Mapping[str, int]
) -> bool:
    """Whether ``event_id`` is shown before ``other_id`` in ``result`` (also when
    ``other_id`` is not shown any more). ``known``: positions already known (no walk)."""
    at = known.get(event_id)
    if at is None:
        at = position_of(result.timeline, event_id)
    other = position_of(result.timeline, other_id)
    return at is not None and (other is None or at < other)


def _preview(ev: Event, claim: str = "") -> str:
    """What ``ev`` says in a line (a shown event, never a relation event; its latest text
    as ``room_preview.as_shown`` makes it): a message's text, or a member event's notice
    ("<id> left the room"). A member event's sender id is spelled out (``shown_id``: a
    zero-width space is shown, not cleaned away); the room list marks it as a row does
    (``RoomItem.preview_warning``). ``claim``: what a statement naming a key not its
    sender's says (``statement_claim``), as its row does. A notification's text: its
    title names the sender."""
    if ev.type == MEMBER:
        return f"{shown_id(ev.sender_id)} {membership_text(ev.content, claim=claim)}"
    if is_file_message(ev.content):  # the room list cuts it in the middle
        return message_text(ev.content)
    return to_plain(ev.body or "")


def room_preview(ev: Event | None, names: Names, claim: str = "") -> tuple[str, str]:
    """The room list's text for ``ev`` (None: a message deleted) and who it says wrote
    it, apart: a message's text and its sender's name (the display name, else the id
    spelled out: ``shown_id``, as its row shows it), which the room list draws before
    the text, "Eve: …", as chat apps do; a notice of the app's own (a member event's, a
    deletion's) as ``_preview`` and ``DELETED`` say it, with no one (""), which the room
    list draws as a notice. A message's text can be anything ("carol@example.com left
    the room", "Message deleted"): without its sender's name it read as the notice it
    imitates (red team rt86). The two stay apart so that nothing has to tell them apart
    in the text again (red team rt89: a sender id that the text's cleaning changed no
    longer matched, and a member's message was drawn as the app's notice)."""
    if ev is None:
        return DELETED, ""
    if ev.type == MEMBER:
        return _preview(ev, claim), ""
    return _preview(ev), names.name(ev.sender_id) or shown_id(ev.sender_id)


class DoubtedElsewhere(Mapping[tuple[str, str], str]):
    """``Controller.doubted_elsewhere`` for one room: a view of its storage's doubts
    (one map per storage, changed in place: ``Controller._doubts_changed``, whose
    changes are signalled to the rooms they affect) without that room's own and
    without what the user confirmed. Looked up per row, per preview, per notification:
    building a map per look cost 41 ms at 100,000 doubted keys (rt50)."""

    def __init__(
        self,
        doubts: Mapping[tuple[str, str], list[tuple[str, str]]],
        own: str,
        confirmed: Confirmed,
    ) -> None:
        self._doubts, self._own, self._confirmed = doubts, own, confirmed

    def __getitem__(self, pair: tuple[str, str]) -> str:
        if pair not in self._confirmed:
            label = _first_other(self._doubts.get(pair, []), self._own)
            if label is not None:
                return label
        raise KeyError(pair)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return (pair for pair in self._doubts if pair in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DoubtedElsewhere):
            return NotImplemented
        # the same doubts (one live map per storage), for the same room and confirmations
        return (
            self._doubts is other._doubts
            and self._own == other._own
            and self._confirmed == other._confirmed
        )

    __hash__ = None  # type: ignore[assignment]


def not_verified(row: Assessed) -> str:
    """What a row's badge calls its verdict when it is not verified ("Key changed", "Not
    from them", "Unverified", "Invalid"), "" when it is: the words of ``trust_label``, so a
    notification and the room list's preview say what the row says. A row verified only
    on trial while older history loads is "Not final yet" (its badge is a ring)."""
    if provisional(row):
        return NOT_FINAL
    if row.state is TrustState.VERIFIED:
        return ""
    return trust_label(row.state.value, signed=row.event.sender_key is not None)


def _arrived(
    old: AuditResult | None,
    result: AuditResult,
    newest: tuple[ShownEvent, ...],
    now_ms: int,
    since_ms: int,
    first_seen: bool = False,
    late: tuple[tuple[int, ShownEvent], ...] = (),
    read_ms: int | None = None,
) -> list[Assessed]:
    """``unread.arrived`` for a ``RoomLoaded``: the rows among ``newest`` come with their
    bodies (read from the index with the audit), the others as the audit holds them;
    ``late``: the rows the engine says arrived (``RoomLoaded.arrived``), with bodies;
    ``read_ms``: this device's clock when ``old`` was read (``RoomSession.read_ms``)."""
    bodies = {
        (s.verdict.path, s.verdict.line): s.verdict._replace(event=s.event)
        for s in newest
        if isinstance(s.event, Event)
    }
    old_rows = old.timeline if old is not None else None
    came = [(i, s.verdict._replace(event=s.event)) for i, s in late if isinstance(s.event, Event)]
    return arrived(
        old_rows,
        result.timeline,
        bodies,
        now_ms,
        since_ms,
        first_seen=first_seen,
        late=came,
        read_ms=read_ms,
    )


def _first_other(entries: list[tuple[str, str]], key: str) -> str | None:
    """The label of the first doubting room among ``entries`` that is not ``key``: what
    ``DoubtedElsewhere`` says for that room."""
    return next((label for k, label in entries if k != key), None)


def _ahead(result: AuditResult, now_ms: int) -> int:
    """How many of ``result``'s newest rows are placed past this device's clock (with
    ``FUTURE_SLACK_MS``): shown, but not news yet, nor the room's last message."""
    return len(result.timeline) - placed_by(result.timeline, now_ms + FUTURE_SLACK_MS)


def _seen_place(room: RoomSession | None) -> int | None:
    """How far this device had read the room when its audit was the one before new rows
    came (``unread.seen_place``, by the clock of that read: the rule ``bucket-chat sync
    --follow`` follows too); None when it had read none of it. That read is the engine's
    from storage (``RoomLoaded.read_ms``), not the audit's delivery: a re-audit of rows
    held, told after a wake-up, read nothing then."""
    if room is None or room.result is None:
        return None
    return seen_place(room.result.timeline, room.read_ms)


class Controller(QObject):
    # room key, title, text, the room's name as the list marks it, whether it mentions
    # the user, who wrote it (an opaque key: the sender id and the key that signed, so
    # an impostor under a member's id is not that member; the tray gathers a burst into
    # one notification and ranks its mentions by sender: ``tray.Notifier``)
    notify = Signal(str, str, str, str, bool, str)
    error = Signal(str, str)  # what, message
    current_changed = Signal(str)  # room key ("" for none)
    room_forgotten = Signal(str)  # room key: left, or its storage removed (``forget_room``)
    room_audit_changed = Signal(str)  # room key: its findings changed
    storage_status = Signal(str, bool, str)  # storage id, online, message
    unread_changed = Signal(int)
    relations_changed = Signal(str)  # room key: ``relations(key)`` is new
    # room key, id of its first event that arrived unread ("" for none): the room was
    # just shown to the user (opened, or its window came to the front)
    unread_seen = Signal(str, str)
    # room key, what became of a message kept unsent that the person discarded (a
    # sentence for the status bar: ``discard_kept``)
    kept_discarded = Signal(str, str)

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
        # room key -> everything held of that room (``room_session``): one record, made
        # with its list row and dropped whole when it is left
        self._rooms: dict[str, RoomSession] = {}
        self._no_room: TimelineModel | None = None  # what ``timeline`` gives for a room left
        self.current = ""
        self.window_active = True
        self._online: dict[str, tuple[bool, str]] = {}  # storage id -> (online, message)
        # storage id -> the keys the user confirmed there (``set_confirmed``), and what its
        # rooms doubt (``_doubts_of``, made again when a room's doubts change)
        self.confirmed: dict[str, Confirmed] = {}
        self._doubts: dict[str, dict[tuple[str, str], list[tuple[str, str]]]] = {}
        # storage id -> (a folder?, what was said, wall-clock time it began) while its
        # news is polled (``feeds``)
        self._feeds: dict[str, tuple[bool, str, float]] = {}
        # when this session started: what was written before it arrived unread
        # (``_line_for_the_away``)
        self._started_ms = int(time.time() * 1000)
        self._save_markers = QTimer(self)
        self._save_markers.setSingleShot(True)
        self._save_markers.setInterval(MARKER_SAVE_MS)
        self._save_markers.timeout.connect(self.save_settings)
        b = self.bridge
        b.timeline_warmed.connect(self._on_timeline_warmed)
        b.read_arrived.connect(self._on_read_arrived)
        b.state_arrived.connect(self._on_state_arrived)
        b.relations_arrived.connect(self._on_relations_arrived)
        b.room_loaded.connect(self._on_room_loaded)
        b.events_appended.connect(self._on_events_appended)
        b.events_placed.connect(self._on_events_placed)
        b.outbox_changed.connect(self._on_outbox_changed)
        b.send_kept.connect(self._on_send_kept)
        b.storage_status_changed.connect(self._on_storage_status_changed)
        b.warning_raised.connect(self._on_warning)
        b.feed_changed.connect(self._on_feed_changed)
        b.room_discovered.connect(lambda sid, rid: log.info("room %s appeared on %s", rid, sid))
        for ref in self.client.rooms():
            self.list_room(ref)
            room = self._rooms[ref.key]
            room.catching_up = True
            room.since_ms = self._started_ms

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
            name = await self.client.room_name(RoomRef.from_key(key))
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

    def list_room(self, ref: RoomRef) -> None:
        """Show a room the user is in in the room list, and hold its record (the one way
        a room gets either: joined at start, created, or joined)."""
        muted = ref.key in self.settings.muted_rooms
        self._rooms.setdefault(ref.key, RoomSession(ref))
        self.rooms.add(
            RoomItem(ref.key, ref.room_id, self.storage_name(ref.storage_id), muted=muted)
        )

    # -- what is known of a room (None, or empty, for a room not joined or left) ---------

    def result(self, key: str) -> AuditResult | None:
        """The room's latest audit as received."""
        room = self._rooms.get(key)
        return room.result if room is not None else None

    def relations(self, key: str) -> tuple[AuditResult, Relations] | None:
        """The room's latest relations, with the audit they are of (their positions are
        positions in that audit's timeline)."""
        room = self._rooms.get(key)
        return room.relations if room is not None else None

    def roster(self, key: str) -> Roster | None:
        """The room's members, devices and display names as last received."""
        room = self._rooms.get(key)
        return room.roster if room is not None else None

    def timeline(self, key: str) -> TimelineModel:
        """The room's timeline model, made when first asked for. A room not joined (or
        left) gets one empty model that nothing feeds."""
        room = self._rooms.get(key)
        if room is None:
            if self._no_room is None:
                self._no_room = self._new_timeline()
            return self._no_room
        if room.timeline is None:
            room.timeline = self._new_timeline()
            room.timeline.set_doubted(self.doubted_elsewhere(key))
        return room.timeline

    def made_timeline(self, key: str) -> TimelineModel | None:
        """The room's timeline model if one was made (``timeline`` makes one): for what
        looks at rooms without feeding them (``RowWarmer``)."""
        room = self._rooms.get(key)
        return room.timeline if room is not None else None

    def _new_timeline(self) -> TimelineModel:
        model = TimelineModel(self.identity.public_key_b64, self)
        model.own_user = self.identity.user_id
        return model

    def timelines(self) -> Iterator[tuple[RoomRef, TimelineModel]]:
        """The timeline models made so far, with the room each shows."""
        for room in self._rooms.values():
            if room.timeline is not None:
                yield room.ref, room.timeline

    def storage_online(self, storage_id: str) -> tuple[bool, str]:
        """(online, why not) as the storage last said; online until it says otherwise."""
        return self._online.get(storage_id, (True, ""))

    def offline_storages(self) -> list[tuple[str, str]]:
        """(storage id, why) of each storage that last said it is offline or hung."""
        return [(sid, message) for sid, (ok, message) in self._online.items() if not ok]

    def feeds(self) -> list[tuple[str, bool, str, float]]:
        """(storage id, whether a folder, what was said, since when: wall-clock seconds)
        of each storage whose news does not arrive the way it should and is polled
        instead: a local folder that could not be watched (a full inotify table), a bucket
        whose notification queue failed. Kept until that storage says otherwise, unlike
        the status bar's message (15 s); a new message on the way (another failure) keeps
        the time it began."""
        return [(sid, folder, said, since) for sid, (folder, said, since) in self._feeds.items()]

    def _catch_up(self, room: RoomSession) -> None:
        """Apply the audit a room not shown was left behind on (see ``Behind``)."""
        behind, room.behind = room.behind, None
        if behind is not None:
            self._show_audit(
                room, behind.result, behind.total, behind.newest, behind.complete, behind.relations
            )
            # what is shown already is skipped
            self.timeline(room.ref.key).append(behind.appended, behind.appended_relations)

    def _show_audit(
        self,
        room: RoomSession,
        result: AuditResult,
        total: int,
        newest: tuple[ShownEvent, ...],
        complete: bool,
        relations: Relations | None = None,
    ) -> None:
        key = room.ref.key
        self.timeline(key).set_audit(
            total, newest, complete, self.names(key), self._pager(room.ref, result), relations
        )

    def select_room(self, key: str) -> None:
        room = self._rooms.get(key)
        if key == self.current or room is None or self.rooms.item(key) is None:
            return
        shown = self._rooms.get(self.current)
        if shown is not None:
            shown.catching_up = False  # shown, then left: what came was seen
        self.current = key
        self._catch_up(room)
        self.settings.last_room = key
        self.current_changed.emit(key)
        self._seen(room)
        if self.client.is_attached(room.ref.storage_id):
            self.tasks.start(self.client.open_room(room.ref), f"Opening {room.ref.room_id}")

    def _seen(self, room: RoomSession) -> None:
        """The room is now in front of the person (opened, or its window came to the
        front): what it shows is read, its unread count goes, the "New messages" line
        goes above the first message that arrived unread, its storage is polled first."""
        key = room.ref.key
        if self.window_active:
            self._mark_read(key)
        self.rooms.update(key, unread=0)
        self.unread_changed.emit(self.rooms.total_unread())
        first, room.first_unread = room.first_unread, ""
        if first:
            self.unread_seen.emit(key, first)
        self.client.focus(room.ref)

    def create_room(self, storage_id: str, room_id: str, name: str) -> None:
        async def run() -> None:
            making = self.client.create_room(storage_id, room_id, name)
            ref = await self._enter(
                RoomRef(storage_id, room_id),
                self._within(
                    storage_id,
                    making,
                    "the room may have been made all the same: try again (a room this "
                    "device made is then opened)",
                ),
            )
            self.rooms.update(ref.key, name=name or room_id)
            self.save_settings()
            self.select_room(ref.key)

        self.tasks.start(run(), f"Creating room {room_id}")

    def join_room(self, storage_id: str, room_id: str) -> None:
        async def run() -> None:
            joining = self.client.join_room(storage_id, room_id)
            ref = await self._enter(
                RoomRef(storage_id, room_id),
                self._within(storage_id, joining, "nothing was joined: try again"),
            )
            name = await self.client.room_name(ref)
            if name:
                self.rooms.update(ref.key, name=name)
            self.save_settings()
            self.select_room(ref.key)

        self.tasks.start(run(), f"Joining room {room_id}")

    async def _within(
        self, storage_id: str, step: Coroutine[Any, Any, RoomRef], then: str
    ) -> RoomRef:
        """``step`` (a create or a join), given up once a request of it has had no
        answer for ``TEST_NO_ANSWER`` seconds, as the connection test and the wizard
        give up: a person waits for it. It waited for the storage's own timeout times
        its retries (90 s by default) on a storage that stopped answering. ``then``
        says what the person can do."""
        try:
            return await self.client.within(storage_id, step, TEST_NO_ANSWER)
        except NoAnswerError as exc:
            raise StorageError(f"{exc}; {then}") from exc
        except StorageError as exc:
            if not exc.transient:
                raise
            # an answer cut off, a busy service: the step may have been done all the
            # same, as when none came (red team rt52)
            raise StorageError(f"{exc}; {then}") from exc

    async def _enter(self, ref: RoomRef, entering: Awaitable[RoomRef]) -> RoomRef:
        """Create or join a room: its record is held while that runs (the engine may
        report its first audit before ``entering`` returns), dropped if it fails. A
        step that ends after its storage was removed in Settings (its last job was
        done as the engine closed) lists nothing: the room of a storage gone came
        back to the list, with a record nothing would ever drop."""
        fresh = ref.key not in self._rooms
        if fresh:
            self._rooms[ref.key] = RoomSession(ref)
        try:
            entered = await entering
            if self.settings.storage(entered.storage_id) is None:
                raise RoomError(
                    f"{one_line(entered.room_id, 60)} is not in your rooms: its storage "
                    "was removed meanwhile (add the storage again and join the room to "
                    "open it)"
                )
        except BaseException:
            if fresh and self.rooms.item(ref.key) is None:
                self._rooms.pop(ref.key, None)
            raise
        self.list_room(entered)
        return entered

    def leave_room(self, key: str) -> None:
        async def run() -> None:
            await self.client.leave_room(RoomRef.from_key(key))
            self.settings.forget_read_marker(key)
            self.forget_room(key)
            self.save_settings()

        self.tasks.start(run(), "Leaving the room")

    def forget_room(self, key: str) -> None:
        """Drop all that is held of a room left (or of a storage removed): its list row
        and its record, so engine events still on their way about it change nothing;
        no room is shown when it was the one shown."""
        self.rooms.remove(key)
        gone = self._rooms.pop(key, None)
        if gone is not None and gone.doubted:  # its doubts go with it (rt50)
            was, gone.doubted = gone.doubted, frozenset()
            self._doubts_changed(gone, was)
        if self.current == key:
            self.current = ""
            self.current_changed.emit("")
        self.room_forgotten.emit(key)

    def forget_storage(self, storage_id: str, name: str) -> None:
        """Drop all that is held of a storage removed (taken out of the settings first):
        its rooms (``forget_room``: listed, or being created or joined) and what it last
        said of itself, so the status line stops naming it, and detach it from the
        client at once, its engine stopping in a task. What that engine says on its way
        out never arrives (``ChatClient.detach``), even when the storage is added again
        under the same id before it stopped."""
        prefix = f"{storage_id}/"
        for key in {*self.rooms.room_keys(), *self._rooms}:
            if key.startswith(prefix):
                self.forget_room(key)
        fed = self._feeds.pop(storage_id, None) is not None
        if self._online.pop(storage_id, None) is not None or fed:
            self.storage_status.emit(storage_id, True, "")  # the line is drawn again
        self.tasks.start(self.client.detach(storage_id), f"Removing storage {name}")

    def send_text(self, text: str, reply_to: str | None = None) -> None:
        """Send ``text`` in the room shown; ``reply_to``: the event it answers (a reply,
        in that event's thread)."""
        if not self.current:
            return
        ref = RoomRef.from_key(self.current)
        what = "Sending your reply" if reply_to else "Sending your message"
        # the mentioned ids go in a field too (PROTOCOL.md 19)
        mentioned = mentions_in(text, self.mention_targets(self.current))
        send = self.client.send_text(ref, text, reply_to=reply_to, mentions=mentioned)
        self.tasks.start(send, what)

    # -- relations (replies, reactions, edits, deletions: PROTOCOL.md section 18) ----------
    # Each goes through the outbox like a message; a refusal (ValueError: a bad reaction
    # text, a blank edit, a target of another room) is shown through ``error``.

    def react(self, event_id: str, text: str) -> None:
        if self.current:
            self.tasks.start(
                self.client.react(RoomRef.from_key(self.current), event_id, text), "Reacting"
            )

    def unreact(self, event_id: str, text: str) -> None:
        if self.current:
            ref = RoomRef.from_key(self.current)
            self.tasks.start(self.client.unreact(ref, event_id, text), "Taking back your reaction")

    def own_reaction(self, key: str, event_id: str, text: str) -> bool:
        """Whether this user's reaction ``text`` on ``event_id`` is among the room's
        relations as last received."""
        known = self.relations(key)
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
            ref = RoomRef.from_key(self.current)
            self.tasks.start(self.client.edit_message(ref, event_id, text), "Saving your edit")

    def delete_event(self, event_id: str, reason: str | None = None) -> None:
        if self.current:
            ref = RoomRef.from_key(self.current)
            self.tasks.start(
                self.client.delete_event(ref, event_id, reason), "Deleting the message"
            )

    def discard_kept(self, key: str, seq: int) -> None:
        """Let the message kept unsent as hold ``seq`` in room ``key`` go for good (its
        row's "Discard…", confirmed), through the client on the engine's outbox thread:
        only while it is still kept unsigned. Its rows go (or, signed meanwhile by another
        program of this device, show it sending: ``SendKept``, ``OutboxChanged``), and
        ``kept_discarded`` says which."""
        ref = RoomRef.from_key(key)

        async def run() -> None:
            answer = await self.client.discard_kept(ref.storage_id, seq, ref.room_id)
            self.kept_discarded.emit(key, discard_said(answer))

        self.tasks.start(run(), "Discarding the message")

    async def rows_at(self, key: str, positions: Iterable[int]) -> dict[int, ShownEvent]:
        """The rows (with bodies) at these positions of the room's audit that its
        relations are of, read by the client on the engine's worker: runs of near
        positions are read as one page. Positions whose audit was replaced meanwhile are
        missing from the answer (its successor's relations follow)."""
        known = self.relations(key)
        if known is None:
            return {}
        result = known[0]
        wanted = {p for p in positions if 0 <= p < len(result.timeline)}
        out: dict[int, ShownEvent] = {}
        ref = RoomRef.from_key(key)
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

    def mention_targets(self, key: str) -> MentionTargets:
        """Whom "@..." names among the room's members (``Names.mention_targets``: every id
        and display name, however many, a name two members go by naming neither)."""
        return self.names(key).mention_targets()

    def _claim(self, key: str, ev: Event) -> str:
        """What a statement naming this device's key, or a key that writes as another id,
        says instead of "added a device" (``statement_claim``, as its timeline row)."""
        if ev.type != MEMBER:
            return ""
        me = self.identity
        claims = self.names(key).claims
        return statement_claim(ev.sender_id, ev.content, claims, me.user_id, me.public_key_b64)

    def names(self, key: str) -> Names:
        """The room's display names and sender ids (``Roster.names``) as last received."""
        roster = self.roster(key)
        return roster.names if roster is not None else NO_NAMES

    def set_notify_level(self, key: str, level: str) -> None:
        """ "all", "mentions" or "none" (muted) for one room; saved at once."""
        self.settings.set_notify_level(key, level)
        self.rooms.update(key, muted=level == "none")
        self.unread_changed.emit(self.rooms.total_unread())
        self.save_settings()

    def _mentions_me(self, key: str, ev: Event) -> bool:
        """Whether ``ev`` mentions the user (the "mentions" level, a notification's
        accent): by the room's targets, the reading the timeline highlights, so
        "@Alice Cooper", another member's name, is no mention of a user called "Alice"
        (red team rt81)."""
        return mentions_me(ev.content, self.identity.user_id, self._mention_reading(key))

    def _mention_reading(self, key: str) -> MentionTargets:
        """The room's "@" targets as the timeline's delegate reads them, the user's own id
        and names theirs first (``Names.mention_targets``, made once per roster)."""
        names = self.names(key)
        own = self.identity.user_id
        return names.mention_targets(own, names.called(own, (self.settings.displayname,)))

    def _notification_title(self, key: str, row: Assessed, room: str) -> str:
        """Who wrote, by display name with the real id beside it (spelled out, and
        shortened in its middle: the tray cuts a long title at its end), after the
        look-alike mark ⚠ when it may imitate another, and where. A message that is not
        verified says so first, in its badge's words ("⚠ Key changed: "): an impostor's
        message under a member's id and name is marked on its row, and its notification
        read exactly as one of theirs."""
        ev = row.event
        names = self.names(key)
        name = names.name(ev.sender_id)
        ident = shown_id_ends(ev.sender_id)  # the title is cut: both ends of the id stay
        who = f"{name} ({ident})" if name and name != ev.sender_id else ident
        elsewhere = self.doubted_key(key, ev.sender_id, ev.sender_key)
        mark = f"{WARNING_MARK} " if names.warning(ev.sender_id) or elsewhere else ""
        doubt = not_verified(row)
        trust = f"{WARNING_MARK} {doubt}: " if doubt else ""
        return f"{trust}{mark}{who} in {room}"

    def send_content(self, key: str, content: dict[str, Any]) -> None:
        self.tasks.start(self.client.send_content(RoomRef.from_key(key), content), "Sending")

    def reaudit(self, key: str) -> None:
        """Audit a room again, e.g. after the user confirmed a device (new pins)."""
        self.tasks.start(self.client.reaudit(RoomRef.from_key(key)), "Checking the room again")

    def retry_failed(self) -> None:
        self.client.retry_failed()

    def reopening(self, storage_id: str) -> bool:
        """Whether a try to open a storage not opened waits (``ChatClient.reopening``)."""
        return self.client.reopening(storage_id)

    def reopen_storage(self, storage_id: str) -> bool:
        """Try now to open a storage that could not be opened (``ChatClient.reopen_now``):
        False when no try waits for it."""
        return self.client.reopen_now(storage_id)

    def set_window_active(self, active: bool) -> None:
        self.window_active = active
        # Engines poll buckets often only while someone looks (they start believing
        # nobody does: a window that never comes to the front costs little).
        self.client.set_window_focused(active)
        room = self._rooms.get(self.current) if active else None
        if room is not None:
            self._seen(room)

    def add_storage(self, entry: StorageSettings) -> None:
        async def run() -> None:
            if self.settings.storage(entry.id) is None:
                self.settings.storages.append(entry)
            await self.client.attach(entry)
            self.save_settings()

        self.tasks.start(run(), f"Adding storage {entry.name}")

    # -- engine events ----------------------------------------------------------------------

    def _on_timeline_warmed(self, key: str, rows: Any, total: int) -> None:
        if key in self._rooms:
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
        late: tuple[tuple[int, ShownEvent], ...] = (),
    ) -> None:
        room = self._rooms.get(key)
        if room is None:
            return  # a room left: nothing of it is kept
        now_ms = int(time.time() * 1000)
        # what was read before by the clock of that read, as for the late notes below
        arrived = _arrived(
            room.result, result, newest, now_ms, room.since_ms, room.first_seen, late, room.read_ms
        )
        # where the rows that arrived far above the newest are: no walk to find them
        known = {s.verdict.event.event_id: i for i, s in late}
        # what was read before, by the clock of that read (a row dated ahead then is not
        # read yet, however late this audit comes: red team rt101)
        old = room.result.timeline if room.result else None
        anchor = anchor_position(old, result.timeline, room.read_ms) if late else None
        among = {e for e, i in known.items() if anchor is not None and i < anchor}
        seen = _seen_place(room)
        marker = self.settings.read_marker(key)  # as before this audit is shown
        room.read(result)
        room.metadata, room.metadata_findings = metadata, metadata_findings
        if metadata is not None and metadata.name:
            named = self._doubt_label(room) if room.doubted else ""
            self.rooms.update(key, name=metadata.name)
            if room.doubted and self._doubt_label(room) != named:
                self._doubts_changed(room, room.doubted)  # its rows elsewhere name it
        relations = room.take_arriving()
        if key != self.current and total > DEFER_ROWS:
            # Rebuilding a long timeline's model is work on the GUI thread: not now, for a
            # room nobody looks at, but when it is shown.
            room.behind = Behind(result, total, newest, complete, [], relations)
        else:
            room.behind = None
            self._show_audit(room, result, total, newest, complete, relations)
        # the preview: the newest row not placed ahead of this device's clock, as for the
        # arrivals (a row dated years ahead would be the room's last message for good)
        shown = newest[: max(0, len(newest) - _ahead(result, now_ms))]
        self._refresh_item(
            room,
            result,
            arrived,
            last_shown(shown),
            placed=True,
            known=known,
            late=among,
            seen=seen,
        )
        joined = self.rooms.item(key) is not None  # not a room still being joined
        if joined and not room.marked and len(result.timeline):
            room.marked = True
            if marker is None:  # a room seen for the first time: nothing of it is news yet
                room.first_seen = True  # nor what its first screen lacked (``arrived``)
                self._mark_read(key)
            else:
                read = ReadMarker(*marker, self.settings.unseen_before_marker(key))
                self._count_after_marker(key, result, relations, read)
        elif room.first_seen and (item := self.rooms.item(key)) is not None and not item.unread:
            # Nothing unread: what this audit adds is history (``arrived``'s
            # ``first_seen``) or not news. The marker follows, or a restart would count
            # a late segment's old messages after the first screen's marker.
            self._mark_read(key)
        self.room_audit_changed.emit(key)

    # -- read markers (the newest event seen in each room: unread counts survive a restart) --

    def _mark_read(self, key: str) -> None:
        """The room is shown to the person: its newest row is seen. Saved soon after."""
        result = self.result(key)
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

    def _note_unseen(
        self,
        key: str,
        result: AuditResult,
        incoming: list[Assessed],
        known: Mapping[str, int] | None = None,
    ) -> None:
        """Unread messages that sort before the room's read marker: counted here as they
        arrive, but a count after a restart starts after the marker, so the settings keep
        them with it (``ReadMarker.unseen``) until the room is shown. Rows placed that way
        are near the newest (behind rows dated a little ahead, or read after a newer one):
        they are looked for from the newest back, all in one walk; those whose place is
        ``known`` (a row that arrived far above the newest) are not looked for."""
        marker = self.settings.read_marker(key)
        if marker is None:
            return
        # One walk for all of them (``placed_before``); none when the marker is not shown
        # (the count after a restart goes by the marker's date then).
        ids = [a.event.event_id for a in incoming]
        before = placed_before(result.timeline, marker[0], ids, known)
        noted = self.settings.note_unseen_before_marker(key, before)
        if noted and not self._save_markers.isActive():
            self._save_markers.start()

    def _count_after_marker(
        self, key: str, result: AuditResult, relations: Relations | None, marker: ReadMarker
    ) -> None:
        """Count, on the engine's state thread, the unread messages of the room's first
        audit this session after the marker saved before: what arrived while the app was
        closed. The room list shows them, the "New messages" line goes above the first."""
        own = self.identity.public_key_b64

        async def run() -> None:
            ref = RoomRef.from_key(key)
            answer = await self.client.count_unread(ref, result, relations, marker, own)
            if answer is not None and answer.count:
                self._apply_unread(key, marker, answer)

        self.tasks.start(run(), "Counting unread messages")

    def _apply_unread(self, key: str, marker: ReadMarker, answer: UnreadCount) -> None:
        item = self.rooms.item(key)
        room = self._rooms.get(key)
        if item is None or room is None:  # left meanwhile
            return
        if key == self.current and self.window_active:
            room.catching_up = False
            self.unread_seen.emit(key, answer.first)  # shown: read now, the line says where
            return
        if self.settings.read_marker(key) != (marker.event_id, marker.timestamp_ms):
            return  # shown since the count was asked for: those messages were seen
        # what arrived since that audit was counted already (``_refresh_item``): on top
        room.first_unread = answer.first
        self.rooms.update(key, unread=min(UNREAD_CAP, item.unread + answer.count))
        self.unread_changed.emit(self.rooms.total_unread())

    def _line_for_the_away(self, room: RoomSession, incoming: list[Assessed]) -> None:
        """New messages fetched while the room is shown that were written before the app
        started (while it was closed) arrived unread: the line goes above the first of
        them. Once per room and session, and only until the room is left."""
        if not room.catching_up:
            return
        # by the writer's clock: one running ahead misses the line (as before), one behind
        # draws it above a message written just after the start (no harm)
        away = next((a for a in incoming if a.event.timestamp_ms < self._started_ms), None)
        if away is not None:
            room.catching_up = False
            self.unread_seen.emit(room.ref.key, away.event.event_id)

    def _pager(self, ref: RoomRef, result: AuditResult) -> Pager:
        """Pages of ``result`` for the room's timeline, read by the client on the
        engine's worker (the GUI never reads the index or the engine's rooms itself)."""

        def pager(start: int, stop: int, reply: Reply) -> None:
            async def run() -> None:
                rows = None
                try:
                    rows = await self.client.timeline_page(ref, result, start, stop)
                finally:  # a page that failed is answered too: the model may ask again
                    reply(rows)

            self.tasks.start(run(), "Reading older messages")

        return pager

    def _read_so_far(self, key: str) -> int | None:
        """How far this device had read room ``key`` (``_seen_place``), before rows that
        came are added to its audit."""
        return _seen_place(self._rooms.get(key))

    def _adding_to(
        self, key: str, result: AuditResult
    ) -> tuple[RoomSession, Relations | None] | None:
        """The record that rows arriving with ``result`` are added to, made that audit's,
        and the relations that came with it; None when there is none to add to: a room
        left (nothing of it is kept), or a record that never got an audit of its room
        (the engine's came before the record was made: a room joined again while the
        engine still read it). Rows added alone would show as the whole room there: the
        engine is asked for the audit whole (a ``RoomLoaded``), which brings them too."""
        room = self._rooms.get(key)
        if room is None:
            return None
        if room.result is None:
            self.reaudit(room.ref.key)
            return None
        room.read(result)
        return room, room.take_arriving()

    def _on_events_appended(self, key: str, items: list[Assessed], result: AuditResult) -> None:
        seen = self._read_so_far(key)
        adding = self._adding_to(key, result)
        if adding is None:
            return
        room, relations = adding
        behind = room.behind
        if behind is not None:
            behind.appended.extend(items)
            if relations is not None:
                behind.appended_relations = relations
        else:
            self.timeline(key).append(items, relations, self.names(key))
        # rows placed ahead of this device's clock are shown, not news yet (``_arrived``)
        news = items[: max(0, len(items) - _ahead(result, int(time.time() * 1000)))]
        if room.first_seen:  # nor, in a room first seen this session, what is older
            start = len(result.timeline) - len(items)  # appended: the newest rows
            news = news[max(0, placed_by(result.timeline, room.since_ms - 1) - start) :]
        self._refresh_item(room, result, news, last_shown(news), seen=seen)
        # the first rows came appended to an empty audit: counted as they came, a count
        # after the marker on a later audit would count them twice
        room.marked = True

    def _on_events_placed(
        self, key: str, items: list[Assessed], result: AuditResult, at: int, came: bool = False
    ) -> None:
        """New rows placed at timeline position ``at``, before the newest ones (behind a
        row dated a little ahead, which sorts last until its date): the rows from there on
        moved down, and ``result`` is a new audit. Inserted into the model where they go;
        a model that cannot take them there (a page in the middle shown, a re-audit still
        being merged) is given the audit anew, its newest rows paged in. ``came``: they
        arrived (``EventsAppended.arrived``). News by the rule of a full re-audit's
        (``unread.is_news_placed``): how many rows lie between does not decide."""
        seen = self._read_so_far(key)
        adding = self._adding_to(key, result)
        if adding is None:
            return
        room, relations = adding
        total = len(result.timeline)
        behind = room.behind
        if behind is not None:  # its rows were appended at the end: now from this audit
            room.behind = Behind(result, total, (), behind.complete, [], relations)
        else:
            model = self.timeline(key)
            pager = self._pager(room.ref, result)
            if not model.place(at, items, relations, self.names(key), pager):
                self._show_audit(room, result, total, (), model.complete, relations)
        # news: those placed by this device's clock (with its slack), as for appends, and
        # by the rule a full re-audit's rows follow (history read late is not)
        now_ms = int(time.time() * 1000)
        rows = result.timeline
        shown = placed_by(rows, now_ms + FUTURE_SLACK_MS)
        news = [
            a
            for i, a in enumerate(items, at)
            if is_news_placed(rows.place_at(i), now_ms, room.since_ms, came, room.first_seen)
        ]
        known = {a.event.event_id: i for i, a in enumerate(items, at)}
        # The preview is the newest row not placed ahead, as after a full audit: a row
        # that moved down when one is (the placed rows are older), which it shows already.
        self._refresh_item(
            room,
            result,
            news,
            last_shown(items[: max(0, shown - at)]) if shown <= at + len(items) else None,
            placed=True,
            known=known,
            late=known.keys(),
            seen=seen,
        )
        room.marked = True

    def _on_read_arrived(self, key: str, read_ms: int) -> None:
        """When the engine read from storage what the next room_loaded / events_appended
        carries (``RoomLoaded.read_ms``): ``RoomSession.read`` takes it with the result."""
        room = self._rooms.get(key)
        if room is not None:
            room.arriving_read_ms = read_ms

    def _on_state_arrived(self, key: str, roster: Roster | None) -> None:
        """The room state of the result the next room_loaded / events_appended carries."""
        room = self._rooms.get(key)
        if room is not None and roster is not None:
            room.roster = roster
            doubted = roster.doubted_keys()
            if doubted != room.doubted:
                was, room.doubted = room.doubted, doubted
                self._doubts_changed(room, was)

    def doubted_elsewhere(self, key: str) -> DoubtedElsewhere:
        """(sender id, key) -> another room of the same storage that does not trust that
        key for that sender (``Roster.doubted_keys``), by name and id; the keys the user
        confirmed for that sender are doubted nowhere. Trust on first use is a room's
        own: an impostor's key that is "key changed" for Carol where she writes is her
        only key, and verified, in a room the impostor made. Like a key conflict in one
        room, it is said of both sides: a member who makes Carol's real key "key changed"
        in a room of their own makes it carry the warning elsewhere (denial of trust)."""
        ref = RoomRef.from_key(key)
        doubts = self._doubts.get(ref.storage_id)
        if doubts is None:
            doubts = self._doubts[ref.storage_id] = self._doubts_of(ref.storage_id)
        return DoubtedElsewhere(doubts, key, self.confirmed.get(ref.storage_id, frozenset()))

    def _doubts_of(self, storage_id: str) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """(sender id, key) -> [(room key, "'name' (room id)")] of the storage's rooms
        that doubt that key for that sender. Made once per storage, then kept up to date
        room by room (``_doubts_changed``): the views handed out read through it."""
        out: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for room in self._rooms.values():
            if room.ref.storage_id != storage_id or not room.doubted:
                continue
            label = self._doubt_label(room)
            for pair in room.doubted:
                out.setdefault(pair, []).append((room.ref.key, label))
        return out

    def _doubt_label(self, room: RoomSession) -> str:
        """How a room that doubts a key is named on the rows it warns about elsewhere."""
        item = self.rooms.item(room.ref.key)
        name = one_line(item.shown_name, 40) if item is not None else ""
        room_id = room.ref.room_id
        return f"{name!r} ({room_id})" if name and name != room_id else repr(room_id)

    def _doubts_changed(self, room: RoomSession, was: frozenset[tuple[str, str]]) -> None:
        """``room`` doubted ``was`` and doubts ``room.doubted`` now (or is named
        otherwise): its storage's doubt map is changed in place for those pairs only, and
        only the rooms whose view of one of them reads otherwise now are told: their rows
        signed so, and their preview when signed so. A burst of doubts over N rooms (an
        impostor's key in each) redid every room's previews and "every row changed" at
        each room's change, N² of each (red team rt75); a room's change now costs work
        for the rooms it affects."""
        storage_id, key = room.ref.storage_id, room.ref.key
        doubts = self._doubts.get(storage_id)
        if doubts is None:
            return  # not read yet: made from the rooms as they are when first read
        now = room.doubted
        label = self._doubt_label(room) if now else ""
        # the pairs whose entry changes: added, removed, and relabelled (a name learnt)
        pairs = set(was ^ now)
        pairs.update(p for p in now & was if (key, label) not in doubts.get(p, ()))
        if not pairs:
            return
        before = {pair: list(doubts.get(pair, ())) for pair in pairs}
        for pair in pairs:
            entries = [e for e in doubts.get(pair, ()) if e[0] != key]
            if pair in now:
                # kept where it was when only relabelled, last when new
                at = next((i for i, e in enumerate(before[pair]) if e[0] == key), len(entries))
                entries.insert(at, (key, label))
            if entries:
                doubts[pair] = entries
            else:
                doubts.pop(pair, None)
        changed: dict[str, set[tuple[str, str]]] = {}
        for pair in pairs:
            old, new = before[pair], doubts.get(pair, [])
            if (old[:1] or None) != (new[:1] or None):
                # the label most rooms see changed: every room of the storage may read it
                keys: Iterable[str] = (
                    k for k, r in self._rooms.items() if r.ref.storage_id == storage_id
                )
            else:  # only the first doubting room's own view (the second entry) may change
                keys = [old[0][0]] if old else []
            for k in keys:
                if _first_other(old, k) != _first_other(new, k):
                    changed.setdefault(k, set()).add(pair)
        for k, affected in changed.items():
            other = self._rooms.get(k)
            if other is None:
                continue
            if other.timeline is not None:
                other.timeline.doubts_changed(affected)
            shown = other.previewed
            signed = (shown.event.sender_id, shown.event.sender_key) if shown else None
            if shown is not None and signed in affected and self.rooms.item(k) is not None:
                self.rooms.update(k, preview_warning=self._preview_warning(k, shown))

    def doubted_key(self, key: str, sender_id: str, sender_key: str | None) -> str | None:
        """The other room of ``key``'s storage that does not trust ``sender_key`` for
        ``sender_id`` (``doubted_elsewhere``), or None: for a preview, a notification, a
        search result."""
        if not sender_key:
            return None
        return self.doubted_elsewhere(key).get((sender_id, sender_key))

    def set_confirmed(self, storage_id: str, keys: Confirmed) -> None:
        """The (sender id, key) pairs the user confirmed in a storage (the features read
        them from its index): a confirmed key carries no warning from another room."""
        if self.confirmed.get(storage_id) != keys:
            self.confirmed[storage_id] = keys
            self._push_doubts(storage_id)

    def _push_doubts(self, storage_id: str) -> None:
        """The storage's rooms learn what the user now confirmed there (no doubt from
        another room is said of a confirmed key): their timelines' rows, and their
        previews (``_preview_warning``). A change of one room's doubts tells only the
        rooms it affects (``_doubts_changed``)."""
        for ref, model in self.timelines():
            if ref.storage_id == storage_id:
                model.set_doubted(self.doubted_elsewhere(ref.key))
        for room in self._rooms.values():
            shown = room.previewed
            if room.ref.storage_id == storage_id and shown is not None:
                key = room.ref.key
                if self.rooms.item(key) is not None:
                    self.rooms.update(key, preview_warning=self._preview_warning(key, shown))

    def _on_relations_arrived(
        self, key: str, result: AuditResult, relations: Relations | None
    ) -> None:
        """The relations of ``result``, just before the room_loaded / events_appended that
        carries it: the timeline model takes them with that result (``arriving``), the
        relation actions (thread panel, versions) read ``relations(key)``."""
        room = self._rooms.get(key)
        if room is None:
            return
        room.arriving = relations
        if relations is not None:
            room.relations = (result, relations)
            self.relations_changed.emit(key)

    def _refresh_item(
        self,
        room: RoomSession,
        result: AuditResult,
        new: list[Assessed],
        last: Assessed | None,
        *,
        placed: bool = False,
        known: Mapping[str, int] | None = None,
        late: Collection[str] | None = None,
        seen: int | None = None,
    ) -> None:
        """``last``: the newest shown event with its body (a slim audit's events have
        none) and its verdict; None when only relation events came (reactions, edits,
        deletions): the preview stays, redone with the room's relations in case they are
        about it.
        ``placed``: ``new`` may sort before rows already there (not only appended);
        ``known``: where some of them are (no walk to find them); ``late``: the ids of
        those placed among rows seen already (``_note_late``); ``seen``: how far this
        device had read the room before ``new`` came (``_seen_place``)."""
        key = room.ref.key
        item = self.rooms.item(key)
        if item is None:
            return
        changes: dict[str, Any] = {
            "findings": len(self.room_errors(key)),
            "partial": self.history_partial(key),
            "vanished": self.history_vanished(key),
        }
        rel = room.relations[1] if room.relations else None
        if last is not None and last.event.type not in (MESSAGE, MEMBER):
            last = None  # another shown type is no room's news either
        if last is not None:
            room.previewed = last
            # When the room was last active: where its newest row not ahead of this clock
            # is placed, not that row's own date (a member's next row dated 1970 is placed
            # after their last one, and dated the room back to 1970: red team rt79), and
            # never before the time shown already.
            timeline = result.timeline
            placed_at = seen_place(timeline, int(time.time() * 1000))
            if placed_at is None:
                placed_at = last.event.timestamp_ms
            changes.update(last_ts=max(item.last_ts, placed_at))
        elif room.previewed is not None:
            # the preview stays, with this audit's verdict on it: a row verified on trial
            # kept "Not final yet" after the final audit when that audit's newest rows held
            # no message (only reactions, say), until the next message (red team rt49)
            room.previewed = reassessed(result.timeline, room.previewed)
        shown = last or room.previewed
        if shown is not None:  # an edit or deletion of the previewed message changes it
            current = as_shown(shown.event, rel)
            claim = "" if current is None else self._claim(key, current)
            preview, sender = room_preview(current, self.names(key), claim)
            changes.update(
                preview_text=preview,
                preview_sender=sender,
                preview_warning=self._preview_warning(key, shown),
            )
        own = self.identity.public_key_b64
        # Messages only: a join, a reaction, an edit, a deletion or a typing notice is not
        # unread news (room_preview says why), nor is a message that arrives deleted
        # already (its deletion was read first): its text is shown nowhere. The count
        # after a restart uses the same rule (``_count_after_marker``).
        incoming = [a for a in new if is_unread_news(a.event, own, rel)]
        if late is not None:
            self._note_late(room, [a for a in incoming if a.event.event_id in late], seen)
        self._note_late_changes(room, new, seen)
        focused = key == self.current and self.window_active
        if focused:
            self._mark_read(key)
            self._line_for_the_away(room, incoming)
        if incoming and not focused:
            if placed:
                self._note_unseen(key, result, incoming, known)
            first = incoming[0].event.event_id
            if not item.unread or not room.first_unread:
                room.first_unread = first
            elif placed and _sorts_before(result, first, room.first_unread, known or {}):
                # placed above the first unread message (behind a row dated ahead, or
                # read after a newer one): the line goes above it, not below it
                room.first_unread = first
            changes["unread"] = min(UNREAD_CAP, item.unread + len(incoming))
            level = self.settings.notify_level(key)
            if not item.muted and level != "none" and self.settings.notifications:
                rows = incoming
                if level == "mentions":
                    rows = [a for a in rows if self._mentions_me(key, a.event)]
                if rows:
                    row = rows[-1]
                    ev = row.event
                    # a name like another room's: marked, with its id and storage
                    title = self._notification_title(key, row, item.marked_name)
                    text = _preview(as_shown(ev, rel) or ev)
                    mention = level == "mentions" or self._mentions_me(key, ev)
                    sender = f"{ev.sender_id}\n{ev.sender_key or ''}"
                    self.notify.emit(key, title, text, item.marked_name, mention, sender)
        self.rooms.update(key, **changes)
        if incoming and not focused:
            self.unread_changed.emit(self.rooms.total_unread())

    def _note_late(self, room: RoomSession, incoming: list[Assessed], seen: int | None) -> None:
        """New messages placed among rows seen already and dated long before they arrived
        (``timestamps.late_among``): a member's next message dated weeks back is news,
        but shown weeks up among older rows; its row says when it arrived and that its
        date is earlier (red team rt79). Only when also dated long before what this
        device had read of the room (``seen``: ``_seen_place``), the rule of edits and
        deletions (``_note_late_changes``) and of ``bucket-chat sync --follow``: a
        message placed among those rows only because one of them was dated ahead when
        read (written on time during a sleep, sorted before that row) is not late news
        (red team rt101). Noted of the copy that arrived, not of its id: another
        member's message under the same id, read on time, is not late (red team rt89)."""
        now_ms = int(time.time() * 1000)
        notes = {
            late_copy(a.event.event_id, a.path, a.line): late
            for a in incoming
            if (late := late_among(a.event.timestamp_ms, now_ms, seen)) is not None
        }
        if notes:
            self.timeline(room.ref.key).note_late(notes)

    def _note_late_changes(self, room: RoomSession, new: list[Assessed], seen: int | None) -> None:
        """Edits and deletions that arrived long after their date and are dated before
        what this device had read of the room (``seen``: ``_seen_place``), by the rule
        ``bucket-chat sync --follow`` follows (``timestamps.late_among``), noted by the
        copy that arrived as ``_note_late`` notes messages. ``new``: the rows that
        arrived as new words, by the rules that make a message news (not history read
        late, nor a room's first screen, nor placed past this device's clock). Wherever
        such a row is placed, what it changes is a message's row, most often one seen
        long ago: a member's edit stored today under a date weeks back showed "(edited)"
        and its false date in Previous versions as if seen then. Its date, not its place,
        is what Previous versions shows, so a backdated edit written after a fresh
        message (and placed after it) is noted all the same. One dated after what was
        read is not, however late this device read it: after a sleep or an outage an
        edit made on time was said "long after its date" while the message written with
        it was not (red team rt97). Not this device's own (as its messages are not
        news): what it sent late, its person knows."""
        own = self.identity.public_key_b64
        now_ms = int(time.time() * 1000)
        notes = {
            late_copy(a.event.event_id, a.path, a.line): late
            for a in new
            if a.event.type in (EDIT, REDACTION)
            and a.event.sender_key != own
            and (late := late_among(a.event.timestamp_ms, now_ms, seen)) is not None
        }
        if notes:
            self.timeline(room.ref.key).note_late(notes)

    def late_arrivals(self, key: str) -> dict[LateCopy, LateArrival]:
        """The messages, edits and deletions of room ``key`` noted this session as
        arrived long after their date (``_note_late``, ``_note_late_changes``), by copy
        (``late_copy``): a copy, for what leaves the app (an export) to say what their
        rows say. No timeline model is made for it."""
        room = self._rooms.get(key)
        model = room.timeline if room is not None else None
        return model.late_arrivals() if model is not None else {}

    def late_arrival_of_hit(self, key: str, hit: SearchHit) -> LateArrival | None:
        """What a search result of room ``key`` says of a late arrival: what its message's
        row says, the note of the message's own copy (``_note_late``). A hit found
        through an edit's text names the edit's copy (its ``path`` and ``line``), whose
        own note is the edit's (``late_change_of_hit``). The message's copy is then the
        one the room's relations place under its id; looked up by the edit's, a late
        message edited once lost its mark in search while its row kept it (red team
        rt92)."""
        room = self._rooms.get(key)
        model = room.timeline if room is not None else None
        if model is None:
            return None
        if not hit.edited:
            return model.late_arrival(late_copy(hit.event_id, hit.path, hit.line))
        copy = self._message_copy(key, hit.event_id)
        return model.late_arrival(late_copy(hit.event_id, *copy)) if copy is not None else None

    def late_change_of_hit(self, key: str, hit: SearchHit) -> LateArrival | None:
        """The late arrival of the edit a search result of room ``key`` was found through
        (``_note_late_changes``: its copy, the hit's ``path`` and ``line``), as Previous
        versions says it beside that edit; None for a hit of a message's own text."""
        if not hit.edited:
            return None
        return self.late_arrival(key, late_copy(hit.source_id, hit.path, hit.line))

    def late_arrival(self, key: str, copy: LateCopy) -> LateArrival | None:
        """The late arrival noted of one copy of room ``key`` (a message, an edit or a
        deletion), or None."""
        room = self._rooms.get(key)
        model = room.timeline if room is not None else None
        return model.late_arrival(copy) if model is not None else None

    def _message_copy(self, key: str, event_id: str) -> tuple[str, int] | None:
        """Where the row of ``event_id`` was read (path, line), as the room's latest
        relations place it; None when they do not, or when the id is shown more than once
        (such an id takes no edits, so no hit found through an edit names it)."""
        known = self.relations(key)
        if known is None:
            return None
        result, rel = known
        position = rel.positions.get(event_id)
        if position is None or event_id in rel.repeated or position >= len(result.timeline):
            return None
        row = result.timeline[position]
        return (row.path, row.line) if row.event.event_id == event_id else None

    def _preview_warning(self, key: str, row: Assessed) -> str:
        """Why the room list marks its preview (⚠), or "": the row is not verified (in
        its badge's words, as the notification says it), and its sender's name or id,
        shown in the preview (a member event's id, a message's name), may imitate
        another."""
        warnings = []
        doubt = not_verified(row)
        if doubt:
            warnings.append(f"The last message is not verified: {doubt}")
        elsewhere = self.doubted_key(key, row.event.sender_id, row.event.sender_key)
        if elsewhere is not None:
            warnings.append(
                f"The key that signed it is not trusted for this sender in the room {elsewhere}"
            )
        result = self.result(key)
        if result is not None and row.event.event_id in result.timeline.repeated:
            # as its row says: its sender's edits and deletion of it are not applied
            warnings.append(REPEATED_ID_NOTE)
        warnings.append(self.names(key).warning(row.event.sender_id) or "")
        return "; ".join(w for w in warnings if w)

    def room_errors(self, key: str) -> list[Finding]:
        """Every error-level finding about a room, as ``verify`` lists them: its metadata's
        (including who signed it, checked against the audit's keys), then its audit's."""
        room = self._rooms.get(key)
        if room is None:
            return []
        result = room.result
        errors = list(result.errors) if result else []
        meta = [f for f in room.metadata_findings if f.severity is Severity.ERROR]
        if room.metadata is not None and result is not None:
            meta += check_signer(room.metadata, result.authorized)[1]
        return meta + errors

    def others_as_me(self, key: str) -> int:
        """How many device keys other than this device's wrote as this user in the room
        and are trusted by nobody here (``Roster.others_as``): an impostor, or a device of
        the user's own never introduced. The members panel lists them."""
        roster = self.roster(key)
        if roster is None:
            return 0
        return len(roster.others_as(self.identity.user_id, self.identity.public_key_b64))

    def history_partial(self, key: str) -> bool:
        """Whether part of the room could not be listed or read: its verdicts are then not
        final (PROTOCOL.md section 16), whatever else the audit says."""
        result = self.result(key)  # these are audit findings, never metadata ones
        return result is not None and any(f.kind in PARTIAL_READ for f in result.findings)

    def history_vanished(self, key: str) -> bool:
        """Whether the history is partial only because segments read and checked here are
        no longer in storage as read (removed or rewritten), not because a read failed."""
        result = self.result(key)
        return result is not None and vanished_only(result.findings)

    def _on_outbox_changed(self, key: str, events: list[Event], state: str, error: str) -> None:
        if key in self._rooms:
            self.timeline(key).set_echo(events, state, error)

    def _on_send_kept(self, key: str, kept: SendKept) -> None:
        if key in self._rooms:
            self.timeline(key).set_kept(kept)

    def _on_warning(self, storage_id: str, message: str) -> None:
        entry = self.settings.storage(storage_id)
        self.error.emit(entry.name if entry is not None else storage_id, message)

    def _on_feed_changed(self, storage_id: str, folder: bool, said: str) -> None:
        if self.settings.storage(storage_id) is None:
            return  # a storage removed: nothing of it is kept
        if said:
            was = self._feeds.get(storage_id)
            since = was[2] if was is not None else time.time()
            self._feeds[storage_id] = (folder, said, since)
        elif self._feeds.pop(storage_id, None) is None:
            return
        self.storage_status.emit(storage_id, *self.storage_online(storage_id))

    def _on_storage_status_changed(self, storage_id: str, online: bool, message: str) -> None:
        if self.settings.storage(storage_id) is None:
            return  # a storage removed: nothing of it is kept
        self._online[storage_id] = (online, message)
        self.rooms.set_storage_online(storage_id, online)
        self.storage_status.emit(storage_id, online, message)
