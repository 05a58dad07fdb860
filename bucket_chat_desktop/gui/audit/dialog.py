"""The audit dialog: the room's audit as ``bucket-chat verify`` reports it, for people.

It shows what the audit code decided and nothing else: counts per trust state, the room
metadata's signature, every finding with where it was found and what it means, and
whether older history is still loading. "Copy report" gives the same text as the
command line's ``verify``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QPointF,
    QRectF,
    QSize,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QGuiApplication,
    QIcon,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ...keys.identity import display_fingerprint
from ...protocol.audit import AuditResult, TrustState
from ...protocol.findings import Finding, Kind, Severity
from ...protocol.metadata import RoomMetadata, Signer, check_signer, signer_text
from ...protocol.room_state import key_bytes
from ...protocol.untrusted_text import (
    display_name_safe,
    html_escape,
    id_warning,
    one_line,
    shown_id,
    terminal_safe,
)
from ..safe import guard
from ..style import TRUST_COLORS, is_dark
from ..widgets.members_panel import trust_badge

Index = QModelIndex | QPersistentModelIndex

NOTICE_COLOR = "#4a7fc1"
TITLE_LIMIT = 200
SEVERITY_COLORS = {Severity.ERROR: TRUST_COLORS["invalid"], Severity.NOTICE: NOTICE_COLOR}


# -- what each finding means ------------------------------------------------------------------


class Explanation(NamedTuple):
    title: str
    meaning: str
    action: str


_TAMPER = (
    "Someone with write access to the storage (or a broken sync tool) changed the folder. "
    "Ask the people in the room whether anyone edited files by hand; if nobody did, treat "
    "it as tampering."
)

EXPLANATIONS: dict[Kind, Explanation] = {
    Kind.LINE_TOO_LONG: Explanation(
        "Line too long",
        "A line of this segment is longer than 256 KiB. No chat app writes such a line, so "
        "it was not read: it is damage, or an attempt to slow readers down.",
        "Nothing from that line is shown. " + _TAMPER,
    ),
    Kind.BAD_ENCODING: Explanation(
        "Not valid text",
        "A line is not valid UTF-8 text: the file was damaged on disk or in transfer, or "
        "edited by a program that is not a chat app.",
        "That line is skipped; the rest of the segment is read. Restore the file from a "
        "backup if you have one.",
    ),
    Kind.BAD_JSON: Explanation(
        "Unreadable line",
        "A line is not one valid JSON value, so it cannot be an event.",
        "That line is skipped. " + _TAMPER,
    ),
    Kind.TOO_DEEP: Explanation(
        "Too deeply nested",
        "A line nests objects or lists more than 16 levels deep, which no event needs.",
        "That line is skipped. " + _TAMPER,
    ),
    Kind.FLOAT: Explanation(
        "Fractional number",
        "Events may only hold whole numbers; a fraction, NaN or Infinity makes the signed "
        "form ambiguous, so a conforming app never writes one.",
        "That line is skipped. " + _TAMPER,
    ),
    Kind.BAD_SCHEMA: Explanation(
        "Malformed event",
        "A line is JSON but not a well-formed event: a required field is missing or has "
        "the wrong type.",
        "That line is skipped. If everyone uses an up-to-date app, "
        + _TAMPER[0].lower()
        + _TAMPER[1:],
    ),
    Kind.WRONG_ROOM: Explanation(
        "Event from another room",
        "An event names a different room than the folder it is stored in: it was copied "
        "here, perhaps to make it look as if it was said in this room.",
        "It is not shown here. Find out who copied files between rooms.",
    ),
    Kind.TRUNCATED: Explanation(
        "Cut-off last line",
        "The segment's last line is incomplete: a write was interrupted, or the file was "
        "copied while it was being written.",
        "If a sync tool is still copying, wait and open the room again. If it stays, the "
        "file is damaged and the cut-off message is lost.",
    ),
    Kind.SEGMENT_NAME_MISMATCH: Explanation(
        "File name does not match its contents",
        "A segment's name carries the time span of its events; this one's events are from "
        "another time. The file was renamed or its contents replaced.",
        "Its events are still checked one by one. " + _TAMPER,
    ),
    Kind.SEGMENT_TOO_LARGE: Explanation(
        "Segment too large",
        "A segment is larger than 64 MiB, far beyond anything an app writes, so it was not "
        "downloaded.",
        "Its contents, if any, are not shown. Find out where the file came from.",
    ),
    Kind.SEGMENT_ABANDONED: Explanation(
        "Segment mostly garbage",
        "A segment held more than 1,000 lines that are not events; the rest of it was not "
        "read, so the room's history is not complete.",
        "Its good lines before that point are shown. No app writes such a file: find out "
        "where it came from and remove it.",
    ),
    Kind.SEGMENT_UNREADABLE: Explanation(
        "File could not be read",
        "The storage listed a segment but would not return its contents.",
        "Check the storage (permissions, connection); the room is read again later.",
    ),
    Kind.UNEXPECTED_OBJECT: Explanation(
        "Stray file",
        "A file in the room's folder is not a message segment. It was ignored.",
        "Nothing to do. Remove it if you know where it came from.",
    ),
    Kind.EMPTY_SEGMENT: Explanation(
        "Empty segment",
        "A segment holds no events. Harmless, but no app writes empty segments.",
        "Nothing to do.",
    ),
    Kind.INVALID_SIGNATURE: Explanation(
        "Bad signature — message changed",
        "This event's signature does not match its contents: it was modified after its "
        "sender signed it, or it names a key that did not sign it. It is hidden, and the "
        "next event of the same device reports a gap.",
        "The original cannot be recovered from this copy. " + _TAMPER,
    ),
    Kind.SENDER_MISMATCH: Explanation(
        "Written in someone else's name",
        "A device key that belongs to one person signed an event claiming to come from "
        "another. The event is hidden.",
        "Find out who controls that key: it tried to speak for another member.",
    ),
    Kind.GAP: Explanation(
        "Missing link in the chain",
        "Every event names the hash of its device's previous event. This event's "
        "predecessor is not in the room: a segment was deleted or has not arrived yet, or "
        "an earlier event was modified (it then also fails its signature).",
        "If a sync tool is still copying, wait and open the room again. Otherwise messages "
        "before this one were removed or changed. " + _TAMPER,
    ),
    Kind.FORK: Explanation(
        "History forked",
        "Two events of one device follow the same predecessor. A device never does that on "
        "its own: its key was used on two machines at once, or a rewritten history was "
        "added next to the real one.",
        "Ask the sender whether they copied their key to another machine. If not, their "
        "key may be in someone else's hands.",
    ),
    Kind.REPLAY: Explanation(
        "Conflicting copies of one event",
        "The same event id is stored more than once with different contents. Only one copy "
        "is shown (one whose signature is good).",
        "Someone re-uploaded a changed version of an event. Compare the copies listed in "
        "the details.",
    ),
    Kind.KEY_CHANGED: Explanation(
        "New key nobody introduced",
        "This person now signs with a key that none of their earlier devices introduced. "
        "It may be a reinstall that lost the old key, or someone else writing under their "
        "name.",
        "Ask them — not in this chat — whether they set up a new device. Compare the "
        "fingerprint in Members and mark the device as verified if it matches.",
    ),
    Kind.KEY_CONFLICT: Explanation(
        "Two keys claim one person",
        "Two or more device keys sign as the same person and none of them introduced the "
        "others. One may be an impostor who backdated their messages to look first, so "
        "none of them is trusted.",
        "Ask the person — not in this chat — which device is theirs, compare its "
        "fingerprint in Members and mark it verified; the other keys then show as not theirs.",
    ),
    Kind.IMPERSONATION: Explanation(
        "Unsigned message under a signing person's name",
        "A message without a signature claims to be from someone whose devices sign every "
        "message. Anyone with access to the storage can write such a line.",
        "Do not believe it came from them. " + _TAMPER,
    ),
    Kind.TRUNCATED_CHAIN: Explanation(
        "Messages were removed from the end of a history",
        "Another member's device saw a message that is no longer in the room: the newest "
        "part of someone's history was deleted from the storage.",
        "Ask the author what they sent last. " + _TAMPER,
    ),
    Kind.UNREAD: Explanation(
        "History could not be read completely",
        "Part of the room could not be listed (the storage did not answer, or refused). "
        "What is shown was checked, but the verdict is not final until everything is read.",
        "The app tries again by itself. If it persists, check the storage connection.",
    ),
    Kind.METADATA_SIGNER_UNKNOWN: Explanation(
        "Room metadata signed by someone else",
        "metadata.json is signed, but not by a key of the person it names as the room's "
        "creator: someone else wrote the room's name and creator.",
        "Do not rely on the room name or creator shown. " + _TAMPER,
    ),
    Kind.MISSING_JOIN: Explanation(
        "Wrote before joining",
        "A device's first event is not a join. Other or older apps do this; it is no sign "
        "of tampering.",
        "Nothing to do.",
    ),
    Kind.METADATA_MISSING: Explanation(
        "No room metadata",
        "The room has no metadata.json, so its name and creator are unknown. The messages "
        "are checked all the same.",
        "Nothing to do, unless the room used to have metadata.",
    ),
    Kind.METADATA_UNSIGNED: Explanation(
        "Unsigned room metadata",
        "The room's name and creation details were written without a signature (by the "
        "reference app), so they cannot be checked. The messages are checked.",
        "Nothing to do.",
    ),
    Kind.METADATA_INVALID: Explanation(
        "Room metadata rejected",
        "metadata.json is malformed, too large, names another room, or its signature is "
        "bad: the room's name or creator may have been changed.",
        "Do not rely on the room name shown. Ask the room's creator. " + _TAMPER,
    ),
    Kind.BLOB_MISMATCH: Explanation(
        "Attachment does not match its message",
        "A file's bytes in storage differ from the size or SHA-256 that its signed message "
        "announces: the file was replaced or damaged after it was sent.",
        "The file is never shown or opened. Ask the sender to send it again. " + _TAMPER,
    ),
}


def explain(kind: Kind) -> Explanation:
    return EXPLANATIONS.get(kind) or Explanation(kind.value, "", "")


# -- the data shown -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditView:
    """One room's audit as shown: the engine's result plus the metadata findings, which
    the engine keeps apart and ``verify`` lists first."""

    room_id: str
    result: AuditResult
    metadata: RoomMetadata | None = None
    metadata_findings: Sequence[Finding] = ()
    complete: bool = True
    storage_name: str = ""
    confirmed_keys: frozenset[str] = field(default_factory=frozenset)

    @property
    def signer(self) -> tuple[Signer, list[Finding]]:
        """Who signed the metadata, as far as this audit knows (PROTOCOL.md section 10)."""
        if self.metadata is None:
            return Signer.UNSIGNED, []
        return check_signer(self.metadata, self.result.authorized)

    @property
    def findings(self) -> list[Finding]:
        return [*self.metadata_findings, *self.signer[1], *self.result.findings]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def notices(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.NOTICE]

    @property
    def clean(self) -> bool:
        return not self.errors

    @property
    def total_events(self) -> int:
        return len(self.result.timeline) + len(self.result.invalid)

    @property
    def title(self) -> str:
        """As ``verify`` prints it after "Room <id>: "."""
        meta = self.metadata
        if meta is None:
            return f"{self.room_id} (no metadata)"
        return f"{self.name} ({self.signer_phrase})"

    @property
    def signer_phrase(self) -> str:
        """Who signed the metadata (``signer_text``), with the creator id as it is shown:
        the check itself uses the real id."""
        if self.metadata is None:
            return ""
        shown = dataclasses.replace(
            self.metadata, creator_id=shown_id(self.metadata.creator_id or "?")
        )
        return signer_text(shown, self.signer[0])

    @property
    def name(self) -> str:
        """The room's name cleaned for display (it is read from storage)."""
        raw = self.metadata.name if self.metadata else None
        return display_name_safe(raw, TITLE_LIMIT) or self.room_id


def report_text(view: AuditView) -> str:
    """The text ``bucket-chat verify`` prints for this audit (plus a line when older
    history is still loading)."""
    result = view.result
    counts = result.counts
    lines = [
        f"Room {view.room_id}: {view.title}",
        f"{view.total_events:,} events in {result.segments:,} segments",
    ]
    if not view.complete:
        lines.append("(still loading older history: this covers what was read so far)")
    lines.extend(f"  {state.value:12} {n:>8,}" for state, n in counts.items())
    findings = view.findings
    if findings:
        lines.append(f"Findings ({len(findings)}):")
        for f in findings:
            head = f"  {f.severity.value.upper():6} {f.kind.value:22} {terminal_safe(f.where())}"
            lines.append(f"{head}\n         {terminal_safe(f.message)}")
    if view.clean:
        extra = f" ({len(findings)} notice(s))" if findings else ""
        lines.append(f"CLEAN: every signature and chain checks out{extra}.")
    else:
        lines.append(f"NOT CLEAN: {len(view.errors)} finding(s) need attention.")
    return "\n".join(lines) + "\n"


def checked_text(view: AuditView) -> str:
    result = view.result
    signed = sum(1 for a in result.timeline if a.event.sender_key) + len(result.invalid)
    unsigned = len(result.timeline) - sum(1 for a in result.timeline if a.event.sender_key)
    parts = [
        f"Every signature ({signed:,}) checked with Ed25519; a message whose signature fails "
        "is never shown.",
        "Every chain link followed: each event names the SHA-256 hash of its device's "
        "previous one, so a removed, reordered or edited event breaks the chain.",
        "Every key matched against the keys pinned for its sender on this computer.",
        f"Every line of {result.segments:,} segment(s) parsed strictly.",
    ]
    if unsigned:
        parts.append(
            f"{unsigned:,} event(s) carry no key (an older app wrote them): they are shown "
            "as unverified."
        )
    return " ".join(parts)


# -- findings table ---------------------------------------------------------------------------


class FindingRoles(enum.IntEnum):
    Severity = Qt.ItemDataRole.UserRole + 1
    Kind = enum.auto()
    Finding = enum.auto()


class Column(enum.IntEnum):
    SEVERITY = 0
    KIND = 1
    EXPLANATION = 2
    WHERE = 3
    EVENT = 4


HEADERS = {
    Column.SEVERITY: "Severity",
    Column.KIND: "Kind",
    Column.EXPLANATION: "What it means",
    Column.WHERE: "Where (object : line)",
    Column.EVENT: "Event id",
}


def _dot(color: str) -> QIcon:
    pix = QPixmap(20, 20)
    pix.setDevicePixelRatio(2.0)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(color))
    p.drawEllipse(QRectF(1.5, 1.5, 7, 7))
    p.end()
    return QIcon(pix)


class FindingsModel(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._findings: list[Finding] = []
        self._icons = {s: _dot(c) for s, c in SEVERITY_COLORS.items()}

    def set_findings(self, findings: Sequence[Finding]) -> None:
        self.beginResetModel()
        self._findings = list(findings)
        self.endResetModel()

    def finding(self, row: int) -> Finding:
        return self._findings[row]

    @guard(0)
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._findings)

    @guard(0)
    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(Column)

    @guard(None)
    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(Column)
        ):
            return HEADERS[Column(section)]
        return None

    @guard(None)
    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._findings):
            return None
        f = self._findings[index.row()]
        col = index.column()
        if role == FindingRoles.Severity:
            return f.severity.value
        if role == FindingRoles.Kind:
            return f.kind.value
        if role == FindingRoles.Finding:
            return f
        if role == Qt.ItemDataRole.DisplayRole:
            match col:
                case Column.SEVERITY:
                    return "Error" if f.severity is Severity.ERROR else "Notice"
                case Column.KIND:
                    return f.kind.value
                case Column.EXPLANATION:
                    return explain(f.kind).title
                case Column.WHERE:
                    return terminal_safe(f.where())
                case Column.EVENT:
                    return terminal_safe(f.event_id or "—")
        if role == Qt.ItemDataRole.ToolTipRole:  # rich text (Qt guesses): escaped
            if col == Column.WHERE:
                return f"<p>{html_escape(terminal_safe(f.where()))}</p>"
            if col == Column.EVENT:
                return (
                    f"<p>{html_escape(terminal_safe(f.event_id or ''))}</p>" if f.event_id else ""
                )
            return explain(f.kind).meaning
        if role == Qt.ItemDataRole.DecorationRole and col == Column.SEVERITY:
            return self._icons[f.severity]
        if role == Qt.ItemDataRole.FontRole and col == Column.SEVERITY:
            font = QFont()
            font.setBold(f.severity is Severity.ERROR)
            return font
        return None


# -- the dialog ------------------------------------------------------------------------------


def _shield(color: str, mark: str, size: int = 52) -> QPixmap:
    """A filled shield with ✔ (clean), ! (problems) or … (loading)."""
    ratio = 2.0
    pix = QPixmap(int(size * ratio), int(size * ratio))
    pix.setDevicePixelRatio(ratio)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = size / 48
    p.scale(s, s)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(color))
    path = QPainterPath()
    path.moveTo(24, 3)
    path.lineTo(41, 9)
    path.cubicTo(41, 28, 35, 39, 24, 45)
    path.cubicTo(13, 39, 7, 28, 7, 9)
    path.closeSubpath()
    p.drawPath(path)
    pen = QPen(QColor("white"), 4.2)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    p.setPen(pen)
    if mark == "check":
        p.drawPolyline([QPointF(16, 24), QPointF(22, 30), QPointF(32, 18)])
    elif mark == "alert":
        p.drawLine(QPointF(24, 14), QPointF(24, 27))
        p.drawPoint(QPointF(24, 34))
    else:
        for x in (16, 24, 32):
            p.drawPoint(QPointF(x, 24))
    p.end()
    return pix


class _Tile(QFrame):
    """One trust state's count."""

    def __init__(self, state: str, label: str, help_text: str) -> None:
        super().__init__()
        self.setObjectName("tile")
        self.setToolTip(help_text)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 10)
        layout.setSpacing(2)
        top = QHBoxLayout()
        top.setSpacing(6)
        badge = QLabel()
        badge.setPixmap(trust_badge(state, 14))
        badge.setFixedSize(14, 14)
        top.addWidget(badge)
        name = QLabel(label)
        name.setObjectName("tileLabel")
        top.addWidget(name, 1)
        layout.addLayout(top)
        self.number = QLabel("0")
        self.number.setObjectName("tileNumber")
        self.number.setStyleSheet(f"color: {TRUST_COLORS.get(state, '#8a8f98')};")
        layout.addWidget(self.number)

    def set_count(self, n: int) -> None:
        self.number.setText(f"{n:,}")


class AuditDialog(QDialog):
    """Non-modal; ``set_view`` refreshes it in place when a new audit arrives."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Room audit")
        self.setObjectName("auditDialog")
        self.resize(940, 700)
        self.view: AuditView | None = None
        dark = is_dark()
        self._muted = "#9aa0a8" if dark else "#6b717a"
        card = "#20242a" if dark else "#ffffff"
        border = "#343a42" if dark else "#e1e4e8"
        self.setStyleSheet(
            f"""
            QFrame#tile, QFrame#card {{ background: {card}; border: 1px solid {border};
                                        border-radius: 10px; }}
            QFrame#tile QLabel, QFrame#card QLabel {{ border: none; background: transparent; }}
            QLabel#tileLabel {{ color: {self._muted}; }}
            QLabel#tileNumber {{ font-size: 18pt; font-weight: bold; }}
            QLabel#muted {{ color: {self._muted}; }}
            QLabel#headline {{ font-size: 16pt; font-weight: bold; }}
            QLabel#section {{ font-weight: bold; font-size: 11pt; }}
            QTableView {{ border: 1px solid {border}; border-radius: 8px; }}
            QTextBrowser {{ border: 1px solid {border}; border-radius: 8px;
                            background: {card}; padding: 6px; }}
            """
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 18, 22, 16)
        layout.setSpacing(12)

        head = QHBoxLayout()
        head.setSpacing(14)
        self.icon = QLabel()
        self.icon.setFixedSize(52, 52)
        head.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        titles = QVBoxLayout()
        titles.setSpacing(2)
        self.headline = QLabel()
        self.headline.setObjectName("headline")
        self.subtitle = QLabel()
        self.subtitle.setTextFormat(Qt.TextFormat.RichText)  # holds escaped names
        self.subtitle.setObjectName("muted")
        self.subtitle.setWordWrap(True)
        self.history = QLabel()
        self.history.setWordWrap(True)
        titles.addWidget(self.headline)
        titles.addWidget(self.subtitle)
        titles.addWidget(self.history)
        head.addLayout(titles, 1)
        layout.addLayout(head)

        tiles = QHBoxLayout()
        tiles.setSpacing(10)
        self.tiles = {
            TrustState.VERIFIED: _Tile(
                "verified",
                "Verified",
                "Signature good, chain link intact, key authorized for its sender",
            ),
            TrustState.UNVERIFIED: _Tile(
                "unverified",
                "Unverified",
                "No key (older app), or signature good but the chain is broken there",
            ),
            TrustState.KEY_CHANGED: _Tile(
                "key-changed",
                "Key changed",
                "Signature good, but no trusted device of the sender introduced the key",
            ),
            TrustState.INVALID: _Tile(
                "invalid",
                "Invalid (hidden)",
                "Bad signature or written in someone else's name: never shown",
            ),
        }
        for tile in self.tiles.values():
            tiles.addWidget(tile, 1)
        layout.addLayout(tiles)

        meta = QFrame()
        meta.setObjectName("card")
        meta_layout = QHBoxLayout(meta)
        meta_layout.setContentsMargins(14, 10, 14, 10)
        self.metadata_label = QLabel()
        self.metadata_label.setWordWrap(True)
        self.metadata_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        meta_layout.addWidget(self.metadata_label)
        layout.addWidget(meta)

        bar = QHBoxLayout()
        self.findings_title = QLabel()
        self.findings_title.setObjectName("section")
        bar.addWidget(self.findings_title)
        bar.addStretch(1)
        show = QLabel("Show")
        show.setObjectName("muted")
        bar.addWidget(show)
        self.filter = QComboBox()
        self.filter.currentIndexChanged.connect(self._on_filter)
        bar.addWidget(self.filter)
        layout.addLayout(bar)

        self.model = FindingsModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterRole(FindingRoles.Severity)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # as reported
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(28)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(Column.WHERE, QHeaderView.ResizeMode.Stretch)
        for col, width in (
            (Column.SEVERITY, 84),
            (Column.KIND, 150),
            (Column.EXPLANATION, 220),
            (Column.EVENT, 150),
        ):
            self.table.setColumnWidth(col, width)
        self.table.selectionModel().currentRowChanged.connect(self._on_current)
        self.detail = QTextBrowser()
        self.detail.setOpenLinks(False)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.detail)
        splitter.setChildrenCollapsible(False)
        splitter.setSizes([170, 200])
        layout.addWidget(splitter, 1)

        self.checked = QLabel()
        self.checked.setObjectName("muted")
        self.checked.setWordWrap(True)
        layout.addWidget(self.checked)

        buttons = QHBoxLayout()
        self.copied = QLabel()
        self.copied.setObjectName("muted")
        buttons.addWidget(self.copied, 1)
        self.copy_button = QPushButton("Copy report")
        self.copy_button.setToolTip("The same text as 'bucket-chat verify' prints")
        self.copy_button.clicked.connect(self.copy_report)
        self.close_button = QPushButton("Close")
        self.close_button.setDefault(True)
        self.close_button.clicked.connect(self.close)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)

    @guard()
    def sizeHint(self) -> QSize:
        return QSize(940, 700)

    # -- content -------------------------------------------------------------------------------

    def set_view(self, view: AuditView) -> None:
        self.view = view
        result = view.result
        errors, notices = len(view.errors), len(view.notices)
        if errors:
            color, mark = TRUST_COLORS["invalid"], "alert"
            word = "problem" if errors == 1 else "problems"
            headline = f"{errors} {word} in this room's history"
        elif not view.complete:
            color, mark = NOTICE_COLOR, "busy"
            headline = "No problems so far"
        else:
            color, mark = TRUST_COLORS["verified"], "check"
            headline = "History verified"
        self.icon.setPixmap(_shield(color, mark))
        self.headline.setText(headline)
        where = f" on {one_line(view.storage_name)}" if view.storage_name else ""
        self.subtitle.setText(
            f"{html_escape(view.name)} · {html_escape(view.room_id)}{html_escape(where)} · "
            f"{view.total_events:,} events in {result.segments:,} segments"
        )
        self.setWindowTitle(f"Audit — {view.name}")
        if view.complete:
            self.history.setText(
                f"<span style='color:{TRUST_COLORS['verified']}'>●</span> Complete: the whole "
                "history was read and checked."
            )
        else:
            pending = (
                f" {result.pending_gaps:,} chain link(s) wait for older events."
                if result.pending_gaps
                else ""
            )
            self.history.setText(
                f"<span style='color:{NOTICE_COLOR}'>●</span> <b>Still loading older "
                f"history</b> — this covers what was read so far.{pending}"
            )
        for state, n in result.counts.items():
            self.tiles[state].set_count(n)
        self.metadata_label.setText(self._metadata_html(view))
        total = len(view.findings)
        self.findings_title.setText(
            f"Findings <span style='color:{self._muted}; font-weight:normal'>{total}</span>"
        )
        keep = self.filter.currentData()
        self.filter.blockSignals(True)
        self.filter.clear()
        self.filter.addItem(f"All ({total})", "")
        self.filter.addItem(f"Errors ({errors})", Severity.ERROR.value)
        self.filter.addItem(f"Notices ({notices})", Severity.NOTICE.value)
        found = self.filter.findData(keep or "")
        self.filter.setCurrentIndex(max(0, found))
        self.filter.blockSignals(False)
        selected = self._selected()
        self.model.set_findings(view.findings)
        self.table.setVisible(bool(total))
        self._on_filter()
        if selected is not None:  # a refresh keeps the finding being read
            for row in range(self.proxy.rowCount()):
                if self.proxy.index(row, 0).data(FindingRoles.Finding) == selected:
                    self.table.selectRow(row)
                    break
        self.checked.setText("<b>What was checked.</b> " + html_escape(checked_text(view)))

    def _metadata_html(self, view: AuditView) -> str:
        meta = view.metadata
        ok = TRUST_COLORS["verified"]
        warn = TRUST_COLORS["key-changed"]
        if meta is None:
            invalid = any(f.kind is Kind.METADATA_INVALID for f in view.metadata_findings)
            what = (
                "metadata.json was rejected (see findings)"
                if invalid
                else "this room has no metadata.json"
            )
            return f"<b>Room metadata:</b> <span style='color:{warn}'>{what}</span>."
        name = html_escape(view.name)
        created = _created(meta.created_at)
        signer = view.signer[0]
        if meta.signed:
            color = ok if signer is Signer.CONFIRMED else warn
            mark = "✔ " if signer is Signer.CONFIRMED else ""
            phrase = html_escape(view.signer_phrase)
            state = f"<span style='color:{color}'>{mark}{phrase}</span>"
            lookalike = id_warning(meta.creator_id or "")
            if lookalike:
                state += f" <span style='color:{warn}'>⚠ {html_escape(lookalike)}</span>"
            fp = ""
            raw = key_bytes(meta.creator_key or "")
            if raw is not None:
                fp = (
                    f"<br><span style='color:{self._muted}'>creator's key "
                    f"<code>{display_fingerprint(raw)}</code></span>"
                )
        else:
            bad = any(f.kind is Kind.METADATA_INVALID for f in view.metadata_findings)
            reason = "bad signature" if bad else "written without a signature"
            state = f"<span style='color:{warn}'>unsigned ({reason}): name not proven</span>"
            fp = ""
        when = f" · created {created}" if created else ""
        return f"<b>Room metadata:</b> “{name}” — {state}{when}{fp}"

    def _selected(self) -> Finding | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        found = index.sibling(index.row(), 0).data(FindingRoles.Finding)
        return found if isinstance(found, Finding) else None

    def _on_filter(self, *_args: Any) -> None:
        severity = self.filter.currentData() or ""
        self.proxy.setFilterFixedString(severity)
        if self.proxy.rowCount():
            self.table.selectRow(0)
            self._show(self.proxy.index(0, 0))
        else:
            self._show(QModelIndex())

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._show(current)

    def _show(self, index: Index) -> None:
        if not index.isValid():
            view = self.view
            if view is not None and not view.findings:
                ok = TRUST_COLORS["verified"]
                self.detail.setHtml(
                    f"<p style='font-size:13pt; color:{ok}'><b>✔ No findings</b></p>"
                    "<p>Nothing in this room's folder contradicts its history: every "
                    "segment parsed, every signature is good, every chain is unbroken.</p>"
                    f"<p style='color:{self._muted}'>Verified means the messages are exactly "
                    "what their senders' devices signed. To be sure a device really is the "
                    "person it claims to be, compare its fingerprint in Members.</p>"
                )
            else:
                self.detail.setHtml(f"<p style='color:{self._muted}'>Nothing of this kind.</p>")
            return
        f: Finding = index.sibling(index.row(), 0).data(FindingRoles.Finding)
        info = explain(f.kind)
        color = SEVERITY_COLORS[f.severity]
        severity = "Error" if f.severity is Severity.ERROR else "Notice"
        where = (
            f"<b>Where:</b> <code>{html_escape(terminal_safe(f.path))}</code>"
            + (f", line <b>{f.line}</b>" if f.line is not None else "")
            if f.path
            else "<b>Where:</b> the room as a whole"
        )
        event = (
            f"<br><b>Event:</b> <code>{html_escape(terminal_safe(f.event_id))}</code>"
            if f.event_id
            else ""
        )
        self.detail.setHtml(
            f"<p><span style='color:{color}'><b>{severity}</b></span> · "
            f"<b>{html_escape(info.title)}</b> <span style='color:{self._muted}'>({f.kind.value})"
            f"</span></p>"
            f"<p>{html_escape(info.meaning)}</p>"
            f"<p><b>What to do:</b> {html_escape(info.action)}</p>"
            f"<p style='color:{self._muted}'>{where}{event}<br><b>Audit says:</b> "
            f"{html_escape(terminal_safe(f.message))}</p>"
        )

    def copy_report(self) -> None:
        if self.view is None:
            return
        QGuiApplication.clipboard().setText(report_text(self.view))
        self.copied.setText("Report copied to the clipboard.")


def _created(value: str | None) -> str:
    if not value:
        return ""
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return html_escape(value)
    return moment.strftime("%d %b %Y")
