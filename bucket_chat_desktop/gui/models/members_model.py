"""The members of one room and their devices, derived from the room's audit.

Who is a member and which keys they use is read from the audited timeline only (never
from raw storage): a member is a sender whose last trusted membership event is a join
(or who wrote without ever joining, as rooms of the reference implementation do), a
device is a distinct ``sender_key`` of theirs, and a device's state comes from the trust
states the audit gave its events. Display names come from verified joins only, like the
timeline's.

``Roster`` folds events in display order; the audit's incremental appends continue the
fold, so a new message costs O(1) here, not a walk over the whole history.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractListModel, QByteArray, QModelIndex, QPersistentModelIndex, Qt

from ...keys.identity import display_fingerprint, fingerprint_of
from ...protocol.audit import DEVICE_ADD_FIELD, Assessed, AuditResult, TrustState
from ...protocol.event import MEMBER
from ...protocol.findings import Kind
from ...protocol.untrusted_text import RoomIds, display_name_safe, html_escape, shown_id
from ..safe import guard

Index = QModelIndex | QPersistentModelIndex

# Membership changes that take a sender out of the member list.
_GONE = {"leave", "ban", "kick"}
NAME_LIMIT = 64


class DeviceState(enum.StrEnum):
    """How far a device key is trusted, strongest first."""

    CONFIRMED = "confirmed"  # the user compared its fingerprint out of band
    VERIFIED = "verified"  # pinned: first key seen, or introduced by a trusted device
    UNVERIFIED = "unverified"  # unsigned, or every event of it has a broken chain
    KEY_CHANGED = "key-changed"  # nothing trusted introduced this key
    DISPUTED = "disputed"  # several keys claim this person, none trusted (key-conflict)


DEVICE_STATE_LABELS = {
    DeviceState.CONFIRMED: "Confirmed by you",
    DeviceState.VERIFIED: "Verified",
    DeviceState.UNVERIFIED: "Unverified",
    DeviceState.KEY_CHANGED: "Key changed",
    DeviceState.DISPUTED: "Disputed",
}


class MemberRoles(enum.IntEnum):
    UserId = Qt.ItemDataRole.UserRole + 1
    DisplayName = enum.auto()
    State = enum.auto()  # DeviceState value summarising the member's devices
    Devices = enum.auto()  # list[Device], newest first
    DeviceCount = enum.auto()
    FirstSeen = enum.auto()  # timestamp_ms
    LastSeen = enum.auto()  # timestamp_ms
    Own = enum.auto()  # the signed-in user
    Joined = enum.auto()  # False: wrote without a join (reference implementation)
    IdWarning = enum.auto()  # why the user id may imitate another member's, or None


@dataclass(frozen=True, slots=True)
class Device:
    """One device key of a member, as the audit saw it."""

    sender_id: str
    key: str  # standard base64 of the public key; "" for unsigned events
    state: DeviceState
    events: int
    first_seen: int  # timestamp_ms; 0 when the device has not written yet
    last_seen: int
    name: str = ""  # from the statement that introduced it ("device_name"), if any
    introduced_by: str = ""  # the key whose statement introduced it
    own: bool = False  # this very device
    number: int = 1  # 1-based, in order of first appearance among the member's devices
    reason: str = ""  # the audit's sentence for the verdict on its newest event

    @property
    def signed(self) -> bool:
        return bool(self.key)

    @property
    def raw_key(self) -> bytes | None:
        return key_bytes(self.key)

    @property
    def fingerprint(self) -> str:
        """Grouped for reading aloud, as ``bucket-chat show-key`` prints it; "" if none."""
        raw = self.raw_key
        return display_fingerprint(raw) if raw is not None else ""

    @property
    def full_fingerprint(self) -> str:
        raw = self.raw_key
        return fingerprint_of(raw) if raw is not None else ""

    @property
    def can_confirm(self) -> bool:
        """Whether "Mark as verified…" makes sense for it."""
        return self.raw_key is not None and not self.own and self.state is not DeviceState.CONFIRMED


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    display_name: str
    devices: tuple[Device, ...]
    first_seen: int
    last_seen: int
    own: bool
    joined: bool
    id_warning: str | None = None  # the id may imitate another (RoomIds.warning)

    @property
    def state(self) -> DeviceState:
        """Worst news first: any unintroduced key is what the user must see."""
        states = {d.state for d in self.devices}
        if DeviceState.DISPUTED in states:
            return DeviceState.DISPUTED
        if DeviceState.KEY_CHANGED in states:
            return DeviceState.KEY_CHANGED
        signed = [d for d in self.devices if d.signed]
        if signed and all(d.state is DeviceState.CONFIRMED for d in signed):
            return DeviceState.CONFIRMED
        if states & {DeviceState.VERIFIED, DeviceState.CONFIRMED}:
            return DeviceState.VERIFIED
        return DeviceState.UNVERIFIED


def conflicted_senders(result: AuditResult) -> frozenset[str]:
    """The sender ids of the audit's ``key-conflict`` findings (each names the event it
    was found at). Conflicts are decided by full audits only, so appends never change it."""
    at = {
        (f.event_id, f.path, f.line)
        for f in result.findings
        if f.kind is Kind.KEY_CONFLICT and f.event_id
    }
    if not at:
        return frozenset()
    return frozenset(
        a.event.sender_id for a in result.timeline if (a.event.event_id, a.path, a.line) in at
    )


def key_bytes(key: str) -> bytes | None:
    """The 32 raw bytes of a ``sender_key``, or None when it is not one."""
    if not key:
        return None
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


@dataclass(slots=True)
class _DeviceStats:
    events: int = 0
    first_seen: int = 0
    last_seen: int = 0
    last_state: TrustState | None = None
    last_reason: str = ""
    ever_verified: bool = False
    name: str = ""
    introduced_by: str = ""
    order: int = 0  # first appearance, for a stable device order


@dataclass(slots=True)
class _SenderStats:
    first_seen: int = 0
    last_seen: int = 0
    membership: str = ""  # last trusted membership ("" = never said)
    joined: bool = False
    name: str = ""
    devices: dict[str, _DeviceStats] = field(default_factory=dict)


class Roster:
    """The member fold over an audited timeline, in display order."""

    def __init__(self, own_user: str = "", own_key: str = "") -> None:
        self.own_user = own_user
        self.own_key = own_key
        self._senders: dict[str, _SenderStats] = {}
        self._seen: set[str] = set()
        self._order = 0
        self._ids = RoomIds()
        # Senders the audit found in a key conflict (its key-conflict findings): their
        # keys are "disputed", not merely "changed".
        self.disputed: frozenset[str] = frozenset()

    def clear(self) -> None:
        self._senders.clear()
        self._seen.clear()
        self._order = 0
        self._ids = RoomIds()
        self.disputed = frozenset()

    def add(self, items: Iterable[Assessed]) -> None:
        for item in items:
            self._add(item)

    def _device(self, sender: _SenderStats, key: str) -> _DeviceStats:
        stats = sender.devices.get(key)
        if stats is None:
            self._order += 1
            stats = sender.devices[key] = _DeviceStats(order=self._order)
        return stats

    def _add(self, item: Assessed) -> None:
        ev = item.event
        if item.state is TrustState.INVALID:  # never shown, never counted
            return
        # The engine extends a result's timeline in place, so an append may carry events
        # a fold of that same result already saw.
        if ev.event_id in self._seen:
            return
        self._seen.add(ev.event_id)
        sender = self._senders.get(ev.sender_id)
        if sender is None:
            sender = self._senders[ev.sender_id] = _SenderStats(first_seen=ev.timestamp_ms)
            self._ids.add(ev.sender_id)
        ts = ev.timestamp_ms
        sender.first_seen = min(sender.first_seen, ts)
        sender.last_seen = max(sender.last_seen, ts)
        device = self._device(sender, ev.sender_key or "")
        if device.events == 0:
            device.first_seen = ts
        device.events += 1
        device.first_seen = min(device.first_seen, ts)
        device.last_seen = max(device.last_seen, ts)
        device.last_state = item.state
        device.last_reason = item.reason
        device.ever_verified |= item.state is TrustState.VERIFIED
        if ev.type != MEMBER:
            return
        membership = ev.content.get("membership")
        if not isinstance(membership, str):
            return
        if membership == "join":
            # Any shown join lists the sender: an unintroduced key joining is exactly
            # what the user must be able to see (its device is then "key changed").
            sender.joined = True
            sender.membership = "join"
        elif item.state is not TrustState.KEY_CHANGED:
            # A key nobody introduced must not be able to make someone look gone.
            sender.membership = membership
        if item.state is not TrustState.VERIFIED or membership != "join":
            return
        name = display_name_safe(ev.content.get("displayname"), NAME_LIMIT)
        if name:
            sender.name = name
        added = ev.content.get(DEVICE_ADD_FIELD)
        if isinstance(added, str) and added and added != ev.sender_key:
            new = self._device(sender, added)
            new.introduced_by = ev.sender_key or ""
            device_name = display_name_safe(ev.content.get("device_name"), NAME_LIMIT)
            if device_name:
                new.name = device_name
            # Its state comes from its own events only: a statement authorizes nothing
            # until the new key accepts it (section 7), and anyone verified can name any
            # key, another person's real one included.
            if new.events == 0:
                new.last_reason = (
                    "named by a statement of another device of theirs; this key has not "
                    "written yet, so it has not accepted"
                )

    def members(self, confirmed: set[str] | frozenset[str] = frozenset()) -> list[Member]:
        """Current members sorted by display name; ``confirmed`` are the keys the user
        verified out of band."""
        out: list[Member] = []
        for user_id, sender in self._senders.items():
            if sender.membership in _GONE:
                continue
            devices = [
                self._make_device(user_id, key, stats, confirmed, n)
                for n, (key, stats) in enumerate(
                    sorted(sender.devices.items(), key=lambda kv: kv[1].order), 1
                )
            ]
            devices.sort(key=lambda d: -d.last_seen)  # the device in use first
            out.append(
                Member(
                    user_id,
                    sender.name or user_id,
                    tuple(devices),
                    sender.first_seen,
                    sender.last_seen,
                    bool(self.own_user) and user_id == self.own_user,
                    sender.joined,
                    self._ids.warning(user_id, sender.name),
                )
            )
        out.sort(key=lambda m: (m.display_name.casefold(), m.user_id))
        return out

    def _make_device(
        self,
        user_id: str,
        key: str,
        stats: _DeviceStats,
        confirmed: set[str] | frozenset[str],
        number: int,
    ) -> Device:
        if key and key in confirmed:
            state = DeviceState.CONFIRMED
        elif stats.last_state is TrustState.KEY_CHANGED:
            disputed = bool(key) and user_id in self.disputed
            state = DeviceState.DISPUTED if disputed else DeviceState.KEY_CHANGED
        elif stats.ever_verified:
            state = DeviceState.VERIFIED
        else:
            state = DeviceState.UNVERIFIED
        return Device(
            user_id,
            key,
            state,
            stats.events,
            stats.first_seen,
            stats.last_seen,
            stats.name,
            stats.introduced_by,
            bool(self.own_key) and key == self.own_key,
            number,
            stats.last_reason,
        )


class MembersModel(QAbstractListModel):
    """One row per member. Updates are inserts, removals and ``dataChanged``; a reset
    happens only when members are reordered (someone changed their display name)."""

    def __init__(self, own_user: str = "", own_key: str = "", parent: Any = None) -> None:
        super().__init__(parent)
        self._roster = Roster(own_user, own_key)
        self._confirmed: frozenset[str] = frozenset()
        self._members: list[Member] = []

    # -- Qt model API ---------------------------------------------------------------------

    @guard(0)
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._members)

    @guard()
    def roleNames(self) -> dict[int, QByteArray]:
        return {int(r): QByteArray(r.name.encode()) for r in MemberRoles}

    @guard(None)
    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._members):
            return None
        m = self._members[index.row()]
        match role:
            case Qt.ItemDataRole.DisplayRole | MemberRoles.DisplayName:
                return m.display_name
            case MemberRoles.UserId:
                return m.user_id
            case Qt.ItemDataRole.ToolTipRole:  # rich text, escaped: ids come from storage
                warning = f"<br>⚠ {html_escape(m.id_warning)}" if m.id_warning else ""
                return f"<b>{html_escape(shown_id(m.user_id))}</b>{warning}"
            case MemberRoles.IdWarning:
                return m.id_warning
            case MemberRoles.State:
                return m.state.value
            case MemberRoles.Devices:
                return list(m.devices)
            case MemberRoles.DeviceCount:
                return len(m.devices)
            case MemberRoles.FirstSeen:
                return m.first_seen
            case MemberRoles.LastSeen:
                return m.last_seen
            case MemberRoles.Own:
                return m.own
            case MemberRoles.Joined:
                return m.joined
        return None

    # -- feeding it -----------------------------------------------------------------------

    @property
    def members(self) -> list[Member]:
        return list(self._members)

    def member(self, row: int) -> Member:
        return self._members[row]

    def row_of(self, user_id: str) -> int:
        return next((i for i, m in enumerate(self._members) if m.user_id == user_id), -1)

    def set_result(self, result: AuditResult | None) -> None:
        """A full (re)audit: fold the whole timeline again."""
        self._roster.clear()
        if result is not None:
            self._roster.add(result.timeline)
            self._roster.disputed = conflicted_senders(result)
        self._publish()

    def append(self, items: Sequence[Assessed]) -> None:
        """Events the audit appended after everything shown."""
        self._roster.add(items)
        self._publish()

    def set_confirmed(self, keys: Iterable[str]) -> None:
        """The keys the user confirmed (``Index.user_verified_keys``)."""
        keys = frozenset(keys)
        if keys != self._confirmed:
            self._confirmed = keys
            self._publish()

    def confirm(self, key: str) -> None:
        self.set_confirmed(self._confirmed | {key})

    def _publish(self) -> None:
        new = self._roster.members(self._confirmed)
        new_ids = [m.user_id for m in new]
        keep = set(new_ids)
        # 1. members who left
        for i in range(len(self._members) - 1, -1, -1):
            if self._members[i].user_id not in keep:
                self.beginRemoveRows(QModelIndex(), i, i)
                del self._members[i]
                self.endRemoveRows()
        # 2. what is left must already be in the new order, else start over
        old_ids = [m.user_id for m in self._members]
        if old_ids != [u for u in new_ids if u in set(old_ids)]:
            self.beginResetModel()
            self._members = new
            self.endResetModel()
            return
        # 3. newcomers in place, then refresh rows whose contents changed
        for i, member in enumerate(new):
            if i >= len(self._members) or self._members[i].user_id != member.user_id:
                self.beginInsertRows(QModelIndex(), i, i)
                self._members.insert(i, member)
                self.endInsertRows()
            elif self._members[i] != member:
                self._members[i] = member
                self.dataChanged.emit(self.index(i), self.index(i))
