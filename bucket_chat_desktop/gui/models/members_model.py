"""The members of one room and their devices, as a list model.

Who is a member, which keys they use, what each device's state is and what everyone is
called are decided by ``protocol.room_state`` (the same fold and the same display-name
rule as the timeline and the command line), on the engine's state thread: the model takes
the ``Roster`` a ``RoomLoaded`` or ``EventsAppended`` carries (``set_state``) and never
folds a timeline on the GUI thread. It adds what only the window needs: the devices the
user confirmed out of band (their own action, not the room's), which member and device
are the user's own, and fingerprints to read aloud.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractListModel, QByteArray, QModelIndex, QPersistentModelIndex, Qt

from ...keys.identity import display_fingerprint, fingerprint_of
from ...protocol.room_state import (
    NO_ONE,
    Confirmed,
    DeviceRecord,
    DeviceState,
    MemberRecord,
    Roster,
    key_bytes,
    member_state,
)
from ...protocol.untrusted_text import html_escape, shown_id
from ..safe import guard

__all__ = ["Device", "DeviceState", "Member", "MembersModel", "key_bytes"]

Index = QModelIndex | QPersistentModelIndex


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
    own: bool = False  # this very device: the user's own id and key
    number: int = 1  # 1-based, in order of first appearance among the member's devices
    reason: str = ""  # the audit's sentence for the verdict on its newest event
    # Whose key a statement of this member named as theirs, when it is not theirs: "you"
    # (this device's key, on another member's card) or the other sender id it writes as
    # in the room (``DeviceRecord.speaks_for``); "" when nothing says it is another's.
    not_theirs: str = ""

    @staticmethod
    def of(user_id: str, record: DeviceRecord, own_user: str, own_key: str) -> Device:
        own_key_here = bool(own_key) and record.key == own_key
        own = own_key_here and bool(own_user) and user_id == own_user
        not_theirs = "you" if own_key_here and not own else record.speaks_for
        return Device(
            user_id,
            record.key,
            record.state,
            record.events,
            record.first_seen,
            record.last_seen,
            record.name,
            record.introduced_by,
            own,
            record.number,
            record.reason,
            not_theirs,
        )

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
        return (
            self.raw_key is not None
            and not self.own
            and not self.not_theirs
            and self.state is not DeviceState.CONFIRMED
        )


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    display_name: str  # the display name under the room-state rule, else the user id
    devices: tuple[Device, ...]  # the device in use first
    first_seen: int
    last_seen: int
    own: bool
    joined: bool
    id_warning: str | None = None  # the id may imitate another (RoomIds.warning)
    # keys their statements alone named past the cap (``MemberRecord.unlisted``)
    unlisted: int = 0

    @staticmethod
    def of(record: MemberRecord, own_user: str, own_key: str) -> Member:
        devices = sorted(
            (Device.of(record.user_id, d, own_user, own_key) for d in record.devices),
            key=lambda d: -d.last_seen,
        )
        return Member(
            record.user_id,
            record.shown_name,
            tuple(devices),
            record.first_seen,
            record.last_seen,
            bool(own_user) and record.user_id == own_user,
            record.joined,
            record.id_warning,
            record.unlisted,
        )

    @property
    def state(self) -> DeviceState:
        """Worst news first: any unintroduced key is what the user must see."""
        return member_state((d.state, d.signed) for d in self.devices)


class MembersModel(QAbstractListModel):
    """One row per member. Updates are inserts, removals and ``dataChanged``; a reset
    happens only when members are reordered (someone changed their display name)."""

    def __init__(self, own_user: str = "", own_key: str = "", parent: Any = None) -> None:
        super().__init__(parent)
        self.own_user = own_user
        self.own_key = own_key
        self._state = NO_ONE
        self._confirmed: Confirmed = frozenset()
        self._members: list[Member] = []
        # Each member as last made, with the record and confirmed keys it was made of:
        # a record the roster did not remake is not made again (``_publish``).
        self._made: dict[str, tuple[MemberRecord, frozenset[str], Member]] = {}
        self._made_for = (own_user, own_key)  # whose device they were made for

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

    def set_state(self, state: Roster | None) -> None:
        """The room's members as the engine's state thread made them for its latest
        audit (None: no room, or none read yet). Rows that did not change stay."""
        state = state if state is not None else NO_ONE
        if state is not self._state:
            self._state = state
            self._publish()

    def set_confirmed(self, pairs: Iterable[tuple[str, str]]) -> None:
        """The (sender id, key) pairs the user confirmed (``Index.user_verified_keys``)."""
        pairs = frozenset(pairs)
        if pairs != self._confirmed:
            self._confirmed = pairs
            self._publish()

    def confirm(self, sender_id: str, key: str) -> None:
        self.set_confirmed(self._confirmed | {(sender_id, key)})

    def _member_of(self, record: MemberRecord, mine: frozenset[str]) -> Member:
        """``Member.of`` the record with the user's confirmations applied; the one made
        before when the record and the confirmations of that member are the same."""
        made = self._made.get(record.user_id)
        if made is not None and made[0] is record and made[1] == mine:
            return made[2]
        made_of = record
        if mine:
            pairs = ((record.user_id, key) for key in mine)
            record = Roster(everyone=(record,)).members(pairs, everyone=True)[0]
        member = Member.of(record, self.own_user, self.own_key)
        self._made[made_of.user_id] = (made_of, mine, member)
        return member

    def _publish(self) -> None:
        """Only the members whose records the roster made anew (or whose confirmed keys
        changed) are made again and compared: with the panel open, a room where one key
        named 100,000 "devices" rebuilt and compared them all for each message that
        arrived, half a second on the GUI thread each (red team rt64)."""
        if self._made_for != (self.own_user, self.own_key):
            self._made, self._made_for = {}, (self.own_user, self.own_key)
        by_user: dict[str, set[str]] = {}
        for user, key in self._confirmed:
            by_user.setdefault(user, set()).add(key)
        new = [
            self._member_of(r, frozenset(by_user.get(r.user_id, ())))
            for r in self._state.everyone
            if r.present
        ]
        if len(self._made) > 2 * len(new) + 64:  # members gone from the roster
            keep_made = {m.user_id for m in new}
            self._made = {u: m for u, m in self._made.items() if u in keep_made}
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
        stayed = set(old_ids)  # once: built in the condition it was once per member
        if old_ids != [u for u in new_ids if u in stayed]:
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
            elif self._members[i] is not member and self._members[i] != member:
                self._members[i] = member
                self.dataChanged.emit(self.index(i), self.index(i))
