"""The members panel (right of the timeline) and the "verify a device" dialog.

Each member is a card with their devices: fingerprint grouped for reading aloud, trust
state, first and last seen, and "Mark as verified…" for devices the user has not
confirmed. Confirming is the user's word, given after comparing the fingerprint out of
band; the panel only asks for it (``confirm_requested``) and never decides trust itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QPointF,
    QRect,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QHelpEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QSizePolicy,
    QStyle,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ... import timestamps
from ...protocol.untrusted_text import (
    display_name_safe,
    html_escape,
    id_warning,
    one_line,
    shown_id,
)
from ..models.members_model import Device, DeviceState, Member, MembersModel
from ..safe import SafeDelegate, guard
from ..style import ACCENT, TRUST_COLORS, TRUST_LABELS, initials, is_dark, key_color

Index = QModelIndex | QPersistentModelIndex
PANEL_WIDTH = 320
# Device rows one card shows: anyone can make thousands of keys claim a person (2,000 rows
# took 17 s and 700 MB to build, and a card is rebuilt on each of their messages).
MAX_DEVICE_ROWS = 30
CONFIRMED_COLOR = "#17744a"
STATE_COLORS = {
    DeviceState.CONFIRMED.value: CONFIRMED_COLOR,
    DeviceState.VERIFIED.value: TRUST_COLORS["verified"],
    DeviceState.UNVERIFIED.value: TRUST_COLORS["unverified"],
    DeviceState.KEY_CHANGED.value: TRUST_COLORS["key-changed"],
    DeviceState.DISPUTED.value: TRUST_COLORS["key-changed"],
    "invalid": TRUST_COLORS["invalid"],
}

DEVICE_STATE_HELP = {
    DeviceState.CONFIRMED: "You compared this device's fingerprint with its owner.",
    DeviceState.VERIFIED: (
        "Signatures and chain check out and the key is pinned for this person (first key "
        "seen, or introduced by one of their trusted devices). Compare fingerprints to be "
        "sure it is really them."
    ),
    DeviceState.UNVERIFIED: (
        "Could not be checked: written without a key (an older app), or its chain of "
        "messages is broken."
    ),
    DeviceState.KEY_CHANGED: (
        "A new key writes as this person and none of their earlier devices introduced it. "
        "It may be a new install, or someone else. Ask them before trusting it."
    ),
    DeviceState.DISPUTED: (
        "Two or more keys claim to be this person and none introduced the others. One may "
        "be an impostor who backdated their messages to look first, so none is trusted."
    ),
}

# What a device row says under its state when the state is bad news; a disputed member's
# card says DISPUTED_TEXT once, above the devices.
DISPUTED_ROW_TEXT = "Not trusted: other keys claim to be this person too."
DISPUTED_TEXT = (
    "Several keys claim to be this person and none introduced the others: none of them is "
    "trusted. Dates are each writer's own word, so the one that looks first proves "
    "nothing. Ask them — not in this chat — which device is theirs, compare its "
    "fingerprint, then mark it as verified."
)
CHANGED_TEXT = (
    "None of their earlier devices introduced this key. Ask them whether it is theirs "
    "before you trust it."
)
IMPERSONATION_TEXT = (
    "Written without a signature under the name of someone whose devices sign everything: "
    "these lines are not from any of their devices, someone else may have written them."
)

# The same, on the user's own card: a key that writes as the user is either another
# device of theirs or someone writing in their name, and only they can tell which, by
# comparing with what that device shows (never by asking "them").
OWN_DISPUTED_ROW_TEXT = "Not trusted: other keys claim to be you too."
OWN_DISPUTED_TEXT = (
    "Several keys claim to be you and none introduced the others: none of them is trusted. "
    "Dates are each writer's own word, so the one that looks first proves nothing. If you "
    "did not set up these devices, someone is writing in your name: tell the room's "
    "members another way than this chat."
)
OWN_CHANGED_TEXT = (
    "None of your devices introduced this key. Is it another device of yours? Compare its "
    "fingerprint with the one that device shows before you confirm it. If you did not just "
    "set up a device, someone is writing in your name."
)
OWN_CHANGED_HELP = (
    "A new key writes as you and none of your devices introduced it. It may be a device "
    "you set up, or someone writing in your name."
)
OWN_IMPERSONATION_TEXT = (
    "Written without a signature under your name, though your devices sign everything: "
    "these lines are not from any of your devices, someone else may have written them."
)


def not_theirs_text(device: Device) -> str:
    """What a row says of a key a member's statement named as theirs when it is another's
    (``Device.not_theirs``), or "" when nothing says so."""
    if device.not_theirs == "you":
        return (
            "Their statement names your key — this device's — as theirs. Public keys can "
            "be copied from any room: it gives them nothing, and it is not a device of theirs."
        )
    if device.not_theirs:
        return (
            f"Their statement names the key of {shown_id(device.not_theirs)} as theirs: that "
            "key writes as them in this room. It is not a device of theirs."
        )
    return ""


def device_label(device: Device) -> str:
    """The state as the row's pill says it. Unsigned lines under a signing person's name
    are not a changed key: they are not from any of their devices."""
    if device.not_theirs:
        return "Not theirs"
    if device.state is DeviceState.KEY_CHANGED and not device.signed:
        return "Not from them"
    return TRUST_LABELS[device.state]


def device_explanation(device: Device, yours: bool = False) -> str:
    """Why the device is not trusted, for the row (plain text), or "" when it is. Past the
    fixed sentences, it is the audit's own reason (e.g. part of the room was unreadable).
    ``yours``: it is on the user's own card, and says so in the user's words."""
    if device.not_theirs:
        return not_theirs_text(device)
    if device.state is DeviceState.DISPUTED:
        return OWN_DISPUTED_ROW_TEXT if yours else DISPUTED_ROW_TEXT
    if device.state is DeviceState.KEY_CHANGED:
        if yours:
            return OWN_CHANGED_TEXT if device.signed else OWN_IMPERSONATION_TEXT
        return CHANGED_TEXT if device.signed else IMPERSONATION_TEXT
    if device.state is DeviceState.UNVERIFIED and device.reason:
        reason = one_line(device.reason, 300)
        return reason[:1].upper() + reason[1:] + "."
    return ""


def device_tooltip(device: Device, yours: bool = False) -> str:
    """Rich text: the state's help, then the audit's reason (which may quote a sender id
    from storage, so escaped)."""
    help_text = DEVICE_STATE_HELP[device.state]
    if device.state is DeviceState.KEY_CHANGED:
        if not device.signed:
            help_text = OWN_IMPERSONATION_TEXT if yours else IMPERSONATION_TEXT
        elif yours:
            help_text = OWN_CHANGED_HELP
    if device.not_theirs:
        help_text = not_theirs_text(device)
    tip = f"<p>{html_escape(help_text)}</p>"
    if device.reason:
        tip += f"<p><small>Audit: {html_escape(one_line(device.reason, 300))}</small></p>"
    return tip


# -- badges -------------------------------------------------------------------------------


def _check(path: QPainterPath, x: float, y: float, s: float) -> None:
    """A check mark whose box starts at (x, y), ``s`` wide."""
    path.moveTo(x, y + 0.52 * s)
    path.lineTo(x + 0.36 * s, y + 0.86 * s)
    path.lineTo(x + s, y + 0.14 * s)


def paint_trust_badge(painter: QPainter, rect: QRect | QRectF, state: str) -> None:
    """A round trust badge: ✔ verified, double ✔ confirmed by the user, ! key changed,
    ? unverified, ✖ invalid. Drawn with paths, so it needs no emoji or symbol font."""
    r = QRectF(rect)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(STATE_COLORS.get(state, TRUST_COLORS[""])))
    painter.drawEllipse(r)
    s = r.width()
    pen = QPen(QColor("white"), max(1.3, s * 0.12))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    x, y = r.left(), r.top()
    if state == DeviceState.CONFIRMED.value:
        path = QPainterPath()
        _check(path, x + 0.16 * s, y + 0.30 * s, 0.42 * s)
        _check(path, x + 0.40 * s, y + 0.30 * s, 0.42 * s)
        painter.drawPath(path)
    elif state == DeviceState.VERIFIED.value:
        path = QPainterPath()
        _check(path, x + 0.27 * s, y + 0.28 * s, 0.46 * s)
        painter.drawPath(path)
    elif state == "invalid":
        a, b = 0.32 * s, 0.68 * s
        painter.drawLine(QPointF(x + a, y + a), QPointF(x + b, y + b))
        painter.drawLine(QPointF(x + b, y + a), QPointF(x + a, y + b))
    else:
        font = QFont(painter.font())
        font.setPixelSize(max(7, int(s * 0.72)))
        font.setBold(True)
        painter.setFont(font)
        warn = (DeviceState.KEY_CHANGED.value, DeviceState.DISPUTED.value)
        symbol = "!" if state in warn else "?"
        painter.drawText(r, Qt.AlignmentFlag.AlignCenter, symbol)
    painter.restore()


def trust_badge(state: str, size: int = 16, ratio: float = 2.0) -> QPixmap:
    pix = QPixmap(int(size * ratio), int(size * ratio))
    pix.setDevicePixelRatio(ratio)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    paint_trust_badge(painter, QRectF(0.5, 0.5, size - 1, size - 1), state)
    painter.end()
    return pix


def avatar(name: str, key: str, size: int = 36, ratio: float = 2.0) -> QPixmap:
    pix = QPixmap(int(size * ratio), int(size * ratio))
    pix.setDevicePixelRatio(ratio)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(key_color(key))
    p.drawEllipse(QRectF(0, 0, size, size))
    font = QFont()
    font.setBold(True)
    font.setPixelSize(int(size * 0.38))
    p.setFont(font)
    p.setPen(QColor("white"))
    p.drawText(QRectF(0, 0, size, size), Qt.AlignmentFlag.AlignCenter, initials(name))
    p.end()
    return pix


# -- helpers ------------------------------------------------------------------------------


def when(ts: int) -> str:
    return timestamps.members_when(ts)  # never raises, also past the year 9999


def fingerprint_lines(fingerprint: str) -> str:
    """Eight groups of four as two lines of four: easy to read out and compare."""
    groups = fingerprint.split()
    return "\n".join(" ".join(groups[i : i + 4]) for i in range(0, len(groups), 4))


def _mono(size_delta: float = 0.0) -> QFont:
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    if size_delta:
        font.setPointSizeF(max(6.0, font.pointSizeF() + size_delta))
    return font


def _muted() -> str:
    return "#9aa0a8" if is_dark() else "#6b717a"


def device_title(device: Device) -> str:
    if device.own:
        return "This device"
    if device.not_theirs == "you":
        return "Your key, not theirs"
    if device.not_theirs:
        return f"Key of {shown_id(device.not_theirs)}"
    if device.name:
        return device.name
    if not device.signed:
        return "No key (unsigned)"
    return f"Device {device.number}"


def state_color(state: str) -> str:
    """The state's colour for text on the panel's background (lighter when dark)."""
    if state == DeviceState.CONFIRMED.value and is_dark():
        return "#4cc38a"
    return STATE_COLORS.get(state, TRUST_COLORS[""])


# -- the panel ------------------------------------------------------------------------------


class DeviceRow(QFrame):
    confirm_clicked = Signal(object)  # Device

    def __init__(
        self, device: Device, parent: QWidget | None = None, *, yours: bool = False
    ) -> None:
        """``yours``: the row is on the user's own card (another device of theirs, or
        someone writing in their name)."""
        super().__init__(parent)
        self.device = device
        self.setObjectName("device")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(3)
        top = QHBoxLayout()
        top.setSpacing(6)
        badge = QLabel()
        shown_state = DeviceState.KEY_CHANGED if device.not_theirs else device.state
        badge.setPixmap(trust_badge(shown_state.value, 16))
        badge.setFixedSize(16, 16)
        top.addWidget(badge, 0, Qt.AlignmentFlag.AlignTop)
        title = QLabel(device_title(device))  # a device name comes from storage
        title.setTextFormat(Qt.TextFormat.PlainText)
        bold = QFont(title.font())
        bold.setBold(True)
        title.setFont(bold)
        self.title_label = title
        title.setWordWrap(True)  # "Key of <id>": the id in full, never cut at the card's edge
        top.addWidget(title, 1)
        self.state_label = QLabel(device_label(device))
        self.state_label.setObjectName("state")
        color = state_color(shown_state.value)
        self.state_label.setStyleSheet(
            f"color: {color}; border: 1px solid {color}; border-radius: 8px; padding: 0 6px;"
        )
        top.addWidget(self.state_label, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(top)
        self.setToolTip(device_tooltip(device, yours))
        if device.signed:
            fp = QLabel(fingerprint_lines(device.fingerprint) or "not a valid key")
            fp.setObjectName("fingerprint")
            fp.setFont(_mono())
            fp.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            fp.setToolTip(f"SHA-256 of the device key:\n{device.full_fingerprint}")
            layout.addWidget(fp)
            self.fingerprint_label = fp
        if device.not_theirs:
            seen = "Named by a statement of theirs"
        elif device.events:
            plural = "s" if device.events != 1 else ""
            seen = (
                f"First seen {when(device.first_seen)}<br>"
                f"Last seen {when(device.last_seen)} · {device.events:,} event{plural}"
            )
        else:
            seen = "Introduced; has not written yet"
        if device.introduced_by and not device.not_theirs:
            seen += "<br>Added by another of their devices"
        details = QLabel(seen)
        details.setObjectName("muted")
        details.setWordWrap(True)
        layout.addWidget(details)
        self.explanation: QLabel | None = None
        text = device_explanation(device, yours)
        if text:
            warning = QLabel(text)
            warning.setObjectName("explanation")
            warning.setTextFormat(Qt.TextFormat.PlainText)  # the audit's reason quotes ids
            warning.setWordWrap(True)
            warning.setStyleSheet(f"color: {color};")
            layout.addWidget(warning)
            self.explanation = warning
        self.confirm_button: QPushButton | None = None
        if device.can_confirm:
            button = QPushButton("Mark as verified…")
            button.setObjectName("confirm")
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.setToolTip(
                "Compare this fingerprint with the one your other device shows, then confirm it"
                if yours
                else "Compare this fingerprint with its owner, then confirm it"
            )
            button.clicked.connect(lambda: self.confirm_clicked.emit(self.device))
            row = QHBoxLayout()
            row.addWidget(button)
            row.addStretch(1)
            layout.addLayout(row)
            self.confirm_button = button


def shown_devices(devices: Sequence[Device]) -> list[Device]:
    """At most ``MAX_DEVICE_ROWS`` of ``devices``, in their order: this device and the
    ones the user confirmed first, then the verified, then the newest of the rest."""

    def rank(device: Device) -> int:
        if device.own:
            return 0
        if device.not_theirs:
            return 3
        return {DeviceState.CONFIRMED: 1, DeviceState.VERIFIED: 2}.get(device.state, 3)

    if len(devices) <= MAX_DEVICE_ROWS:
        return list(devices)
    best = sorted(range(len(devices)), key=lambda i: (rank(devices[i]), i))[:MAX_DEVICE_ROWS]
    return [devices[i] for i in sorted(best)]


class MemberCard(QFrame):
    confirm_requested = Signal(object)  # Device

    def __init__(self, member: Member, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.member = member
        self.setObjectName("member")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(8)
        head = QHBoxLayout()
        head.setSpacing(10)
        face = QLabel()
        key = member.devices[0].key if member.devices else member.user_id
        face.setPixmap(avatar(member.display_name, key or member.user_id, 36))
        face.setFixedSize(36, 36)
        head.addWidget(face, 0, Qt.AlignmentFlag.AlignTop)
        names = QVBoxLayout()
        names.setSpacing(0)
        # Names and ids come from storage: plain text only, the id always shown in full
        # (wrapped, never pushed away) with a warning when it may imitate someone else.
        named = member.display_name != member.user_id
        you = " (you)" if member.own else ""
        shown = display_name_safe(member.display_name) if named else shown_id(member.user_id)
        name = QLabel(shown + you)
        name.setObjectName("name")
        name.setTextFormat(Qt.TextFormat.PlainText)
        bold = QFont(name.font())
        bold.setBold(True)
        name.setFont(bold)
        names.addWidget(name)
        self.name_label = name
        user = QLabel(shown_id(member.user_id))
        user.setObjectName("muted")
        user.setTextFormat(Qt.TextFormat.PlainText)
        user.setWordWrap(True)
        user.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        user.setVisible(named)
        names.addWidget(user)
        self.id_label = user
        self.warning_label: QLabel | None = None
        if member.id_warning:
            warning = QLabel(f"⚠ {member.id_warning}")
            warning.setObjectName("idWarning")
            warning.setTextFormat(Qt.TextFormat.PlainText)
            warning.setWordWrap(True)
            warning.setStyleSheet(f"color: {TRUST_COLORS['key-changed']};")
            names.addWidget(warning)
            self.warning_label = warning
        if not member.joined:
            note = QLabel("wrote without joining")
            note.setObjectName("muted")
            names.addWidget(note)
        head.addLayout(names, 1)
        badge = QLabel()
        badge.setPixmap(trust_badge(member.state.value, 18))
        badge.setFixedSize(18, 18)
        badge.setToolTip(TRUST_LABELS[member.state])
        self.badge_label = badge
        head.addWidget(badge, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(head)
        self.dispute_label: QLabel | None = None
        if member.state is DeviceState.DISPUTED:
            dispute = QLabel(OWN_DISPUTED_TEXT if member.own else DISPUTED_TEXT)
            dispute.setObjectName("dispute")
            dispute.setTextFormat(Qt.TextFormat.PlainText)
            dispute.setWordWrap(True)
            dispute.setStyleSheet(f"color: {TRUST_COLORS['key-changed']};")
            layout.addWidget(dispute)
            self.dispute_label = dispute
        self.device_rows: list[DeviceRow] = []
        for device in shown_devices(member.devices):
            row = DeviceRow(device, yours=member.own)
            row.confirm_clicked.connect(self.confirm_requested)
            layout.addWidget(row)
            self.device_rows.append(row)
        self.more_label: QLabel | None = None
        hidden = len(member.devices) - len(self.device_rows)
        if hidden > 0:
            more = QLabel(
                f"{hidden:,} more device keys claim to be this person and are not listed "
                "here. To accept one of yours, compare it with 'bucket-chat show-key' on "
                "that device and use 'bucket-chat accept-device'."
            )
            more.setObjectName("muted")
            more.setWordWrap(True)
            layout.addWidget(more)
            self.more_label = more
        self.unlisted_label: QLabel | None = None
        if member.unlisted:
            unlisted = QLabel(
                f"…and {member.unlisted:,} more named by statements alone: none of those keys "
                "has written or accepted, so none is a device of theirs. Not listed."
            )
            unlisted.setObjectName("muted")
            unlisted.setWordWrap(True)
            layout.addWidget(unlisted)
            self.unlisted_label = unlisted


# Rows of cards built past each edge of what the list shows (scrolling a little finds them
# ready), and how far out built cards are kept before they are let go.
CARDS_AHEAD = 3
CARDS_KEPT = 20
CARD_MARGINS = (12, 5, 12, 5)  # around each card in its row: 10 px between two cards


def estimated_height(member: Member, learned: dict[int, int]) -> int:
    """A row's height before its card is built: what a built card with as many device
    rows measured, else a rough sum. Only the scroll bar's length depends on it."""
    shown = min(len(member.devices), MAX_DEVICE_ROWS)
    if shown in learned:
        return learned[shown]
    return 76 + 130 * shown + (60 if member.id_warning else 0)


class _CardSlot(QWidget):
    """One row's widget in the list: the member's card with the row's margins around it."""

    def __init__(self, card: MemberCard) -> None:
        super().__init__()
        self.card = card
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(*CARD_MARGINS)
        self._layout.addWidget(card)

    def fit(self, row_width: int, card_width: int) -> int:
        """Make the card ``card_width`` wide in a row ``row_width`` wide (the scroll bar
        takes the right margin, as it did in the panel's scroll area); its height then."""
        left, top, right, bottom = CARD_MARGINS
        right = max(0, min(right, row_width - left - card_width))
        if self._layout.contentsMargins().right() != right:
            self._layout.setContentsMargins(left, top, right, bottom)
        self.ensurePolished()
        if self.hasHeightForWidth():
            return max(1, self.heightForWidth(row_width))
        return max(1, self.sizeHint().height())


class _CardDelegate(SafeDelegate):
    """A row is as tall as its member's card (``MembersPanel.row_height``); the card
    itself is a widget over the row, so the row paints only the keyboard's place: a ring
    around the current member's card while the list has the focus."""

    failure_text = "This member could not be shown"

    def __init__(self, panel: MembersPanel) -> None:
        super().__init__(panel)
        self._panel = panel

    def row_size(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        # No width of its own: the list gives each row the viewport's width.
        return QSize(1, self._panel.row_height(index.row()))

    def paint_row(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        state = option.state
        if not (state & QStyle.StateFlag.State_HasFocus or state & QStyle.StateFlag.State_Selected):
            return
        left, top, right, bottom = CARD_MARGINS
        ring = QRectF(option.rect.adjusted(left - 3, top - 3, 3 - right, 3 - bottom))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        color = QColor(ACCENT)
        if not state & QStyle.StateFlag.State_HasFocus:
            color.setAlpha(110)
        painter.setPen(QPen(color, 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(ring.adjusted(1, 1, -1, -1), 12, 12)

    def row_help(
        self,
        event: QHelpEvent,
        view: QAbstractItemView,
        option: QStyleOptionViewItem,
        index: Index,
    ) -> bool:
        return False  # the card's own widgets say what they are; the gaps say nothing


class _MembersList(QListView):
    """The list of members: rows as tall as their cards, scrolled by pixels. It tells the
    panel whenever its rows were laid out again, so the cards can be put over their rows
    and those in view made.

    A row whose data changed is only repainted: ``QListView`` lays every row out again
    for it, asking each member's height in Python (5,037 calls, 45-50 ms a message at
    5,000 members). The panel lays the rows out itself when a card's height changed
    (``MembersPanel._on_data_changed``)."""

    laid_out = Signal()

    @guard()
    def updateGeometries(self) -> None:
        super().updateGeometries()
        self.laid_out.emit()

    @guard()
    def dataChanged(self, top_left: Index, bottom_right: Index, roles: Sequence[int] = ()) -> None:
        QAbstractItemView.dataChanged(self, top_left, bottom_right, roles)


class MembersPanel(QFrame):
    """Shows a ``MembersModel`` as a list with one card per member. Only the members in
    view (and a few rows past each edge) have a card built: a room of 5,000 members built
    5,000 cards when Members opened, 34 s and 2.6 GB on the GUI thread, and all of them
    again for each member who joined or left (red team rt80). A member who comes, goes or
    changes changes their own row; rows are measured from their cards once built.

    The cards are children of the list's viewport that the panel puts over their rows,
    not Qt's index widgets: setting an index widget lays every row out again (asking each
    member's height, in Python), for each card made while scrolling."""

    confirm_requested = Signal(object)  # Device
    close_requested = Signal()

    def __init__(self, model: MembersModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.setObjectName("membersPanel")
        self.setFixedWidth(PANEL_WIDTH)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        head = QHBoxLayout()
        head.setContentsMargins(16, 12, 8, 4)
        self.title = QLabel()
        self.title.setObjectName("panelTitle")
        head.addWidget(self.title, 1)
        close = QToolButton()
        close.setText("✕")
        close.setObjectName("close")
        close.setToolTip("Hide members")
        close.setCursor(Qt.CursorShape.PointingHandCursor)
        close.clicked.connect(self.close_requested)
        head.addWidget(close)
        layout.addLayout(head)
        hint = QLabel(
            "Compare a device's fingerprint with its owner in person or on a call, "
            "then mark it as verified."
        )
        hint.setObjectName("muted")
        hint.setWordWrap(True)
        hint.setContentsMargins(16, 0, 16, 8)
        layout.addWidget(hint)
        self.empty_label = QLabel("Nobody has joined yet, or the room is still loading.")
        self.empty_label.setObjectName("muted")
        self.empty_label.setWordWrap(True)
        self.empty_label.setContentsMargins(16, 4, 16, 8)
        layout.addWidget(self.empty_label)
        # user id -> (its row, the slot holding its card); only rows near the view
        self._slots: dict[str, tuple[QPersistentModelIndex, _CardSlot]] = {}
        # user id -> (the member measured, the width, the row's height)
        self._measured: dict[str, tuple[Member, int, int]] = {}
        self._learned: dict[int, int] = {}  # device rows shown -> a card's height
        self._pending = False
        view = _MembersList()
        view.setObjectName("members")
        view.setFrameShape(QFrame.Shape.NoFrame)
        view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        view.verticalScrollBar().setSingleStep(24)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setUniformItemSizes(False)
        view.setMouseTracking(False)
        self.delegate = _CardDelegate(self)
        view.setItemDelegate(self.delegate)
        view.setModel(model)
        view.laid_out.connect(self._on_laid_out)
        view.verticalScrollBar().valueChanged.connect(self._on_laid_out)
        self.view = view
        layout.addWidget(view, 1)
        model.modelReset.connect(self._on_reset)
        model.rowsAboutToBeRemoved.connect(self._on_rows_leaving)
        for sig in (model.rowsInserted, model.rowsRemoved, model.layoutChanged):
            sig.connect(self._on_count)
        model.dataChanged.connect(self._on_data_changed)
        self._apply_style()
        self._on_count()

    def _apply_style(self) -> None:
        dark = is_dark()
        card = "#20242a" if dark else "#ffffff"
        device = "#272c33" if dark else "#f6f7f9"
        border = "#343a42" if dark else "#e1e4e8"
        panel = "#1a1d22" if dark else "#f1f3f6"
        self.setStyleSheet(
            f"""
            QFrame#membersPanel {{ background: {panel}; border-left: 1px solid {border}; }}
            QLabel#panelTitle {{ font-size: 13pt; font-weight: bold; }}
            QLabel#muted {{ color: {_muted()}; }}
            QFrame#member {{ background: {card}; border: 1px solid {border};
                             border-radius: 10px; }}
            QFrame#device {{ background: {device}; border: none; border-radius: 8px; }}
            QFrame#member QLabel {{ background: transparent; border: none; }}
            QPushButton#confirm {{ padding: 3px 10px; border-radius: 6px; font-weight: bold;
                                   border: 1px solid {CONFIRMED_COLOR};
                                   color: {CONFIRMED_COLOR if not dark else "#5fd39a"};
                                   background: transparent; }}
            QPushButton#confirm:hover {{ background: rgba(23, 116, 74, 0.12); }}
            QToolButton#close {{ font-size: 11pt; color: {_muted()}; border: none;
                                 padding: 2px 8px; border-radius: 6px; }}
            QToolButton#close:hover {{ background: {border}; }}
            QListView#members {{ background: transparent; border: none; }}
            QScrollBar:vertical {{ background: transparent; width: 10px; margin: 2px; }}
            QScrollBar::handle:vertical {{ background: {border}; border-radius: 3px;
                                           min-height: 32px; }}
            QScrollBar::handle:vertical:hover {{ background: {_muted()}; }}
            QScrollBar::add-line:vertical, QScrollBar::sub-line:vertical {{ height: 0; }}
            QScrollBar::add-page:vertical, QScrollBar::sub-page:vertical {{
                background: transparent; }}
            """
        )

    # -- what the list asks -------------------------------------------------------------

    def row_height(self, row: int) -> int:
        """The row's height: its card's as measured at the list's width, else an estimate
        (no card is built to answer: the list asks this of every row when it lays out)."""
        member = self.model.member(row)
        measured = self._measured.get(member.user_id)
        if measured is not None and measured[0] is member and measured[1] == self._card_width():
            return measured[2]
        return estimated_height(member, self._learned)

    def _card_width(self) -> int:
        """As wide as the list less the margins, whether its scroll bar shows or not."""
        left, _top, right, _bottom = CARD_MARGINS
        return self.view.width() - left - right

    # -- the model changed ----------------------------------------------------------------

    def _on_count(self, *_args: Any) -> None:
        count = self.model.rowCount()
        self.title.setText(f"Members <span style='color:{_muted()}'>{count}</span>")
        self.empty_label.setVisible(count == 0)
        self._later()

    def _on_reset(self) -> None:
        """Members were reordered: every card is let go, those in view made again; the
        heights of members no longer listed are forgotten (one model serves every room)."""
        for user_id in list(self._slots):
            self._drop(user_id)
        if self._measured:
            listed = {m.user_id for m in self.model.members}
            self._measured = {u: m for u, m in self._measured.items() if u in listed}
        self._on_count()

    def _on_rows_leaving(self, _parent: Any, first: int, last: int) -> None:
        for user_id, (index, _slot) in list(self._slots.items()):
            if first <= index.row() <= last:
                self._drop(user_id)
        if self._measured:
            for row in range(first, min(last + 1, self.model.rowCount())):
                self._measured.pop(self.model.member(row).user_id, None)

    def _on_laid_out(self, *_args: Any) -> None:
        self._place()
        self._later()

    def _on_data_changed(self, top: Any, bottom: Any, *_args: Any) -> None:
        """Someone's devices or counts changed (a message arrived): only their card is
        made again, and the rows laid out again only if its height changed. With the
        panel closed the card is let go instead (made when the panel opens)."""
        shown = self.view.isVisible()
        grown = above = 0
        for row in range(top.row(), bottom.row() + 1):
            if not 0 <= row < self.model.rowCount():
                continue
            member = self.model.member(row)
            measured = self._measured.get(member.user_id)
            if measured is not None and measured[0] is not member:
                del self._measured[member.user_id]  # of the member as they were
            held = self._slots.get(member.user_id)
            if held is None or held[1].card.member == member:
                continue
            if not shown:
                self._drop(member.user_id)
                continue
            (before,) = self._laid_out(range(row, row + 1))
            y = self.view.visualRect(self.model.index(row)).top()
            self._build(row)
            change = self.row_height(row) - before
            if change:
                grown += 1
                above += change if y + before <= 0 else 0  # above the view
        if grown:
            self._lay_out(above)
        self._later()

    def _laid_out(self, rows: range) -> list[int]:
        """The heights ``rows`` were laid out at. ``visualRect`` gives a row's place as
        laid out but asks its height anew (of the delegate, so of ``row_height``): the
        next row's top tells how tall it was laid out."""
        view, count = self.view, self.model.rowCount()
        tops = [view.visualRect(self.model.index(row)).top() for row in rows]
        if rows.stop < count:
            tops.append(view.visualRect(self.model.index(rows.stop)).top())
        else:  # the end of the last row: the list's height, in the viewport's terms
            tops.append(view.contentsSize().height() - view.verticalScrollBar().value())
        return [bottom - top for top, bottom in itertools.pairwise(tops)]

    def _lay_out(self, above: int) -> None:
        """Lay every row out again (each is asked its height: only when one changed); the
        rows in view stay where they were when rows ``above`` them grew by that much."""
        bar = self.view.verticalScrollBar()
        value = bar.value()
        self.view.doItemsLayout()
        if above:
            bar.setValue(value + above)

    def _later(self, *_args: Any) -> None:
        if not self._pending:
            self._pending = True
            QTimer.singleShot(0, self._flush)

    # -- cards ----------------------------------------------------------------------------

    def _build(self, row: int) -> MemberCard:
        """Make the row's card (again) and put it over the row; measured at once."""
        member = self.model.member(row)
        self._drop(member.user_id)
        card = MemberCard(member)
        card.confirm_requested.connect(self.confirm_requested)
        slot = _CardSlot(card)
        slot.setParent(self.view.viewport())
        index = self.model.index(row)
        self._slots[member.user_id] = (QPersistentModelIndex(index), slot)
        self._measure(member, slot)
        slot.setGeometry(self.view.visualRect(index))
        slot.show()
        return card

    def _drop(self, user_id: str) -> None:
        held = self._slots.pop(user_id, None)
        if held is not None:
            held[1].hide()
            held[1].deleteLater()

    def _place(self) -> None:
        """Put each card over its row (the rows were laid out or scrolled)."""
        for index, slot in self._slots.values():
            if index.isValid():
                slot.setGeometry(self.view.visualRect(self.model.index(index.row())))

    def _measure(self, member: Member, slot: _CardSlot) -> None:
        """Note the card's height at the list's width (``row_height`` answers it)."""
        width = self._card_width()
        height = slot.fit(self.view.viewport().width(), width)
        self._measured[member.user_id] = (member, width, height)
        self._learned[min(len(member.devices), MAX_DEVICE_ROWS)] = height

    def _rows_in_view(self) -> range:
        view = self.view
        count = self.model.rowCount()
        if not count:
            return range(0)
        top = view.indexAt(QPoint(1, 0))
        first = top.row() if top.isValid() else 0
        height = view.viewport().height()
        last = first
        while last + 1 < count:
            rect = view.visualRect(self.model.index(last + 1))
            if rect.isEmpty() or rect.top() >= height:
                break
            last += 1
        return range(first, last + 1)

    def _flush(self) -> None:
        """Build the cards of the rows in view (and a few past them), measure them, let go
        of cards far away; lay the rows out again if a height changed."""
        self._pending = False
        count = self.model.rowCount()
        if not count or not self.view.isVisible():
            return
        self.view.executeDelayedItemsLayout()  # where the rows are now, not before
        shown = self._rows_in_view()
        build = range(max(0, shown.start - CARDS_AHEAD), min(count, shown.stop + CARDS_AHEAD))
        keep = range(max(0, shown.start - CARDS_KEPT), min(count, shown.stop + CARDS_KEPT))
        for user_id, (index, _slot) in list(self._slots.items()):
            if index.row() not in keep:
                self._drop(user_id)
        changed = above = 0
        laid_out = self._laid_out(build)
        for row, before in zip(build, laid_out, strict=True):
            member = self.model.member(row)
            held = self._slots.get(member.user_id)
            if held is None or held[1].card.member != member:
                self._build(row)
            else:
                self._measure(member, held[1])
            grown = self.row_height(row) - before
            if grown:
                changed += 1
                above += grown if row < shown.start else 0
        if changed:
            self._lay_out(above)

    @property
    def cards(self) -> list[MemberCard]:
        """The cards built now, in row order: those in view and a few around them."""
        held = sorted((index.row(), slot.card) for index, slot in self._slots.values())
        return [card for _row, card in held]

    def card(self, row: int) -> MemberCard:
        """The card of ``row``, built if it is not (in view or not)."""
        held = self._slots.get(self.model.member(row).user_id)
        if held is not None and held[1].card.member == self.model.member(row):
            return held[1].card
        return self._build(row)

    def show_member(self, row: int) -> None:
        """Scroll the list to the top of ``row``'s card and make it current."""
        index = self.model.index(row)
        self.view.setCurrentIndex(index)
        self.view.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtTop)

    @guard()
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._later()

    @guard()
    def sizeHint(self) -> QSize:
        return QSize(PANEL_WIDTH, 600)


class VerifyDeviceDialog(QDialog):
    """Asks the user to compare a device's fingerprint out of band before confirming it.

    ``yours``: the key writes as the user. It is then another device of theirs or someone
    writing in their name; the dialog says so, sends them to their other device's key card
    (not to "them"), warns that confirming accepts the key's introduction of this device
    (signed by it, trusted by every reader), and "Not mine" is the default button."""

    disowned = Signal()  # "Not mine" (own keys only); the dialog is rejected as well

    def __init__(
        self,
        device: Device,
        display_name: str,
        parent: QWidget | None = None,
        *,
        yours: bool = False,
    ) -> None:
        super().__init__(parent)
        self.device = device
        self.yours = yours
        plain = display_name_safe(display_name) or shown_id(device.sender_id)
        who = html_escape(plain)
        title_text = "Is this another device of yours?" if yours else f"Is this really {who}?"
        self.setWindowTitle(title_text if yours else f"Verify {plain}'s device")
        self.setMinimumWidth(500)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 20, 22, 16)
        layout.setSpacing(12)
        head = QHBoxLayout()
        head.setSpacing(12)
        badge = QLabel()
        badge.setPixmap(trust_badge(DeviceState.CONFIRMED.value, 40))
        badge.setFixedSize(40, 40)
        head.addWidget(badge, 0, Qt.AlignmentFlag.AlignTop)
        title = QLabel(
            f"<span style='font-size:14pt'><b>{title_text}</b></span><br>"
            f"<span style='color:{_muted()}'>{html_escape(shown_id(device.sender_id))}</span>"
        )
        title.setTextFormat(Qt.TextFormat.RichText)
        title.setWordWrap(True)
        head.addWidget(title, 1)
        self.title_label = title
        layout.addLayout(head)
        intro = QLabel(
            "This key writes as you. Compare the fingerprint below with the one "
            "<b>your other device</b> shows: in Bucket Chat there, point at your name at the "
            "top left (its key card); on the command line, <code>bucket-chat show-key</code> "
            "prints it. Never go by what a message in a room says."
            if yours
            else f"Contact {who} <b>another way than this chat</b> — in person, or on a phone "
            "or video call where you recognise them — and ask them to read out their "
            "device's fingerprint. In Bucket Chat they find it by pointing at their name at "
            "the top left; on the command line, <code>bucket-chat show-key</code> prints it."
        )
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(intro)
        lookalike = id_warning(device.sender_id)
        if lookalike:
            note = QLabel(f"⚠ {lookalike}")
            note.setTextFormat(Qt.TextFormat.PlainText)
            note.setWordWrap(True)
            note.setStyleSheet(f"color: {STATE_COLORS[DeviceState.KEY_CHANGED.value]};")
            layout.addWidget(note)
        box = QFrame()
        box.setObjectName("fingerprintBox")
        border = "#3a3f47" if is_dark() else "#d5d9df"
        bg = "#17191d" if is_dark() else "#f6f7f9"
        box.setStyleSheet(
            f"QFrame#fingerprintBox {{ background: {bg}; border: 1px solid {border};"
            " border-radius: 10px; }"
        )
        box_layout = QVBoxLayout(box)
        box_layout.setContentsMargins(16, 12, 16, 12)
        self.fingerprint = QLabel(fingerprint_lines(device.fingerprint))
        self.fingerprint.setFont(_mono(5))
        self.fingerprint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.fingerprint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box_layout.addWidget(self.fingerprint)
        layout.addWidget(box)
        self.warning_label: QLabel | None = None
        if yours:
            others = (
                "Other keys also claim to be you, and none introduced the others. "
                if device.state is DeviceState.DISPUTED
                else ""
            )
            warn = QLabel(
                f"<b>Careful:</b> {others}confirming makes this device <b>accept that key's "
                "introduction</b>: your next message in a room where it says it added this "
                "device signs the acceptance, and from then on everyone there trusts that "
                "key as you — its messages, earlier ones too, show as yours and verified."
                "<br><b>If you did not just set up another device, someone is writing in "
                "your name:</b> do not confirm it; tell the room's members another way than "
                "this chat."
            )
            warn.setWordWrap(True)
            warn.setTextFormat(Qt.TextFormat.RichText)
            warn.setStyleSheet(f"color: {STATE_COLORS[DeviceState.KEY_CHANGED.value]};")
            layout.addWidget(warn)
            self.warning_label = warn
        elif device.state in (DeviceState.KEY_CHANGED, DeviceState.DISPUTED):
            warn = QLabel(
                f"<b>Careful:</b> another key also claims to be {who}, and neither introduced "
                "the other: one of them may be an impostor. Confirm this one only if they "
                "tell you these exact digits; the other keys then show as not theirs."
                if device.state is DeviceState.DISPUTED
                else f"<b>Careful:</b> none of {who}'s earlier devices introduced this key. "
                "It may be their new install — or someone else. Confirm it only if they tell "
                "you these exact digits."
            )
            warn.setWordWrap(True)
            warn.setTextFormat(Qt.TextFormat.RichText)  # holds an escaped name
            warn.setStyleSheet(f"color: {STATE_COLORS[DeviceState.KEY_CHANGED.value]};")
            layout.addWidget(warn)
            self.warning_label = warn
        steps = QLabel(
            "Compare every group with your other device. <b>Only if all of them match</b>, "
            "confirm it. If anything differs, or you have no other device, choose "
            "<b>Not mine</b>."
            if yours
            else "Compare every group. <b>Only if all of them match</b>, mark the device as "
            "verified: its messages then show a double check. If anything differs, do not "
            f"mark it — someone else may be writing as {who}; tell them."
        )
        steps.setWordWrap(True)
        steps.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(steps)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.confirm_button = QPushButton(
            "Mine — all digits match" if yours else "They match — mark as verified"
        )
        self.cancel_button = QPushButton("Not mine" if yours else "Cancel")
        # Enter must not confirm by accident: no default button at all, or for a key that
        # writes as the user, the safe "Not mine".
        for button in (self.confirm_button, self.cancel_button):
            button.setAutoDefault(False)
            button.setDefault(False)
            buttons.addWidget(button)
        if yours:
            self.cancel_button.setAutoDefault(True)
            self.cancel_button.setDefault(True)
            self.cancel_button.clicked.connect(self.disowned)
        if not yours:  # a key that writes as you: confirming is never drawn as the way on
            self.confirm_button.setStyleSheet(
                f"QPushButton {{ background: {CONFIRMED_COLOR}; color: white; border: none;"
                " font-weight: bold; padding: 6px 14px; border-radius: 6px; }"
            )
        self.confirm_button.clicked.connect(self.accept)
        self.cancel_button.clicked.connect(self.reject)
        layout.addLayout(buttons)
        self.cancel_button.setFocus()
