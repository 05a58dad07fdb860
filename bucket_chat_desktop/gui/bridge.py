"""Turns the sync engines' plain event dataclasses into Qt signals.

Engines call ``deliver`` on the asyncio loop, which under qasync *is* the Qt main thread,
so the signals are emitted on the GUI thread and slots may touch widgets directly.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ..keys.identity import display_fingerprint
from ..protocol.event import valid_key_text
from ..protocol.untrusted_text import one_line
from ..sync.events import (
    ChangeFeedStatus,
    EngineEvent,
    EventsAppended,
    IntroductionOffered,
    OutboxChanged,
    OutboxSetAside,
    RoomDiscovered,
    RoomLoaded,
    SendKept,
    SharedKeyQueued,
    StorageStatus,
    WarmTimeline,
)


class EngineBridge(QObject):
    timeline_warmed = Signal(str, object, int)  # room key, rows, total
    # room key, AuditResult, complete, RoomMetadata | None, tuple of its findings,
    # the audit's row count and its newest rows (tuple of ShownEvent), and the rows that
    # arrived since the audit before wherever placed (``RoomLoaded.arrived``)
    room_loaded = Signal(str, object, bool, object, object, int, object, object)
    events_appended = Signal(str, object, object)  # room key, [Assessed], AuditResult
    # room key, [Assessed], AuditResult, the timeline position they went to: events placed
    # before the newest rows (behind one dated a little ahead: ``EventsAppended.at``),
    # the rows from there on moved down. Its own signal, so slots of appends keep their
    # shape (and none takes a placement for an append at the end). Last, whether they
    # arrived (``EventsAppended.arrived``: new words, not history, wherever placed).
    events_placed = Signal(str, object, object, int, bool)
    # room key, AuditResult, the Relations of that result (PROTOCOL.md section 18; None:
    # none made), emitted just before the room_loaded or events_appended that carries the
    # result. Its own signal, so slots of the two above keep their shape.
    relations_arrived = Signal(str, object, object)
    # room key, the Roster of the result (members, devices, display names: made on the
    # engine's state thread; None: none made), emitted just before relations_arrived.
    state_arrived = Signal(str, object)
    # room key, when the engine read from storage what the result of the next
    # room_loaded / events_appended / events_placed holds (``RoomLoaded.read_ms``: an int
    # past 32 bits), emitted first of them all. Its own signal, as the two above.
    read_arrived = Signal(str, object)
    room_discovered = Signal(str, str)  # storage id, room id
    outbox_changed = Signal(str, object, str, str)  # room key, [Event], state, error
    send_kept = Signal(str, object)  # room key, SendKept (a send kept before it is signed)
    storage_status_changed = Signal(str, bool, str)  # storage id, online, message
    warning_raised = Signal(str, str)  # storage id, message
    # storage id, whether about a local folder's watch (else a bucket's queue), what was
    # said ("" when news arrives as it should again): a folder polled because it could not
    # be watched, a bucket polled because its notification queue failed
    feed_changed = Signal(str, bool, str)

    def deliver(self, storage_id: str, event: EngineEvent) -> None:
        if isinstance(event, EventsAppended):
            key = f"{storage_id}/{event.room_id}"
            self.read_arrived.emit(key, event.read_ms)
            self.state_arrived.emit(key, event.roster)
            self.relations_arrived.emit(key, event.result, event.relations)
            if event.at is None:
                self.events_appended.emit(key, event.items, event.result)
            else:
                self.events_placed.emit(key, event.items, event.result, event.at, event.arrived)
        elif isinstance(event, RoomLoaded):
            key = f"{storage_id}/{event.room_id}"
            self.read_arrived.emit(key, event.read_ms)
            self.state_arrived.emit(key, event.roster)
            self.relations_arrived.emit(key, event.result, event.relations)
            self.room_loaded.emit(
                key,
                event.result,
                event.complete,
                event.metadata,
                event.metadata_findings,
                event.total,
                event.newest,
                event.arrived,
            )
        elif isinstance(event, WarmTimeline):
            self.timeline_warmed.emit(f"{storage_id}/{event.room_id}", event.rows, event.total)
        elif isinstance(event, OutboxChanged):
            self.outbox_changed.emit(
                f"{storage_id}/{event.room_id}", event.events, event.state, event.error or ""
            )
        elif isinstance(event, SendKept):
            self.send_kept.emit(f"{storage_id}/{event.room_id}", event)
        elif isinstance(event, RoomDiscovered):
            self.room_discovered.emit(storage_id, event.room_id)
        elif isinstance(event, StorageStatus):
            self.storage_status_changed.emit(storage_id, event.online, event.message)
        elif isinstance(event, OutboxSetAside):
            self.warning_raised.emit(storage_id, one_line(event.message, 600))
        elif isinstance(event, ChangeFeedStatus):  # the status bar, when it changes
            state = "" if event.active or event.folder else "push notifications are off: "
            said = f"{state}{one_line(event.message, 300)}"
            self.warning_raised.emit(storage_id, said)
            self.feed_changed.emit(storage_id, event.folder, "" if event.active else said)
        elif isinstance(event, IntroductionOffered):
            keys = event.introducers
            who = (
                f"a device key ({_fingerprint(keys[0])}) says it"
                if len(keys) == 1
                else f"{len(keys):,} device keys (first {_fingerprint(keys[0])}) say they"
            )
            # The key writes as the user: another device of theirs, or someone writing in
            # their name. Only they can tell, by comparing with that device's key card.
            self.warning_raised.emit(
                storage_id,
                f"{who} added this device in {one_line(event.room_id, 40)}; nothing was "
                "accepted. Yours? Compare on your card in Members. If not, someone writes "
                "as you",
            )
        elif isinstance(event, SharedKeyQueued):
            self.warning_raised.emit(
                storage_id,
                f"{event.waiting:,} message(s) waiting to be sent in "
                f"{one_line(event.room_id, 40)} were written before another device using "
                "your key wrote there: once sent, everyone sees your key's chain fork and "
                "both devices' messages unverified. Give each device its own key (see "
                "'Several devices' in the README)",
            )


def _fingerprint(key_text: str) -> str:
    raw = valid_key_text(key_text)
    return display_fingerprint(raw)[:19] + " …" if raw is not None else "not a valid key"
