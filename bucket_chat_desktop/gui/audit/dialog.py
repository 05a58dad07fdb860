"""The audit dialog: the room's audit as ``bucket-chat verify`` reports it, for people.

It shows what the audit code decided and nothing else: counts per trust state, the room
metadata's signature, every finding with where it was found and what it means, and
whether older history is still loading. "Copy report" gives the same text as the
command line's ``verify``. The data is `view.AuditView`, the table's model is
`findings_model.FindingsModel`, the words are in `explanations`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QPointF,
    QSize,
    Qt,
)
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
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
from ...protocol.audit import TrustState
from ...protocol.findings import Finding, Kind, Severity, vanished_only
from ...protocol.metadata import Signer, unusable
from ...protocol.room_state import key_bytes
from ...protocol.untrusted_text import (
    html_escape,
    isolate,
    one_line,
    spell_marks,
    terminal_safe,
)
from ..safe import guard
from ..style import TRUST_COLORS, TRUST_LABELS, is_dark
from ..widgets.elided_label import never_widens
from ..widgets.members_panel import trust_badge
from .explanations import explain
from .findings_model import (
    NOTICE_COLOR,
    SEVERITY_COLORS,
    Column,
    FindingRoles,
    FindingsModel,
    Index,
)
from .view import AuditView, checked_text, report_text

LRM = "\u200e"  # LEFT-TO-RIGHT MARK: a line that starts with a name still reads left to right


def _text(value: str) -> str:
    """Text read from storage (an object's name, an event id, a finding's words about
    them) for the finding's description: terminal-safe, no stack of combining marks over
    the explanation above it, escaped."""
    return html_escape(spell_marks(terminal_safe(value)))


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
        never_widens(self.subtitle)  # a 200-character name, a 128-character room id
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
                TRUST_LABELS["verified"],
                "Signature good, chain link intact, key authorized for its sender",
            ),
            TrustState.UNVERIFIED: _Tile(
                "unverified",
                TRUST_LABELS["unverified"],
                "No key (older app), or signature good but the chain is broken there",
            ),
            TrustState.KEY_CHANGED: _Tile(
                "key-changed",
                TRUST_LABELS["key-changed"],
                "Signature good, but no trusted device of the sender introduced the key",
            ),
            TrustState.INVALID: _Tile(
                "invalid",
                f"{TRUST_LABELS['invalid']} (hidden)",
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
        never_widens(self.metadata_label)  # the room's name and its creator's id
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

        # The model filters and sorts its rows itself (keys made once per finding): no
        # proxy comparing 100,000 findings through ``data`` on a click (red team rt68).
        self.model = FindingsModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
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
            # the name isolated: its right-to-left letters cannot reorder the room id and
            # the counts after it; the line starts left-to-right (Qt takes a paragraph's
            # direction from its first strong letter, inside an isolate too)
            f"{LRM}{html_escape(isolate(view.name))} · {html_escape(view.room_id)}"
            f"{html_escape(where)} · "
            f"{view.total_events:,} events in {result.segments:,} segments"
        )
        self.setWindowTitle(f"Audit — {view.name}")
        if view.partial:
            self.history.setText(
                f"<span style='color:{TRUST_COLORS['invalid']}'>●</span> <b>Not completely "
                "read</b> — part of the history "
                + (
                    "is no longer in storage as this device read it"
                    if vanished_only(result.findings)
                    else "could not be read"
                )
                + " (the findings say what); no verdict is final until it is."
            )
        elif view.complete:
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
        # The same findings change nothing, new ones are inserted in their places: the
        # selection stays on its finding (and is looked for only if the rows were made
        # again), the table is not sorted again (red team rt68).
        self.model.set_findings(view.findings)
        self.table.setVisible(bool(total))
        self._select(selected)  # a refresh keeps the finding being read
        self.checked.setText("<b>What was checked.</b> " + html_escape(checked_text(view)))

    def _metadata_html(self, view: AuditView) -> str:
        meta = view.metadata
        ok = TRUST_COLORS["verified"]
        warn = TRUST_COLORS["key-changed"]
        if meta is None:
            invalid = any(f.kind is Kind.METADATA_INVALID for f in view.metadata_findings)
            if invalid:
                what = "metadata.json was rejected (see findings)"
            elif unusable(view.room_id, meta, view.metadata_findings):  # refused, changing
                what = "metadata.json could not be read (see findings)"
            else:
                what = "this room has no metadata.json"
            return f"<b>Room metadata:</b> <span style='color:{warn}'>{what}</span>."
        name = html_escape(isolate(view.name))
        created = _created(meta.created_at)
        signer = view.signer[0]
        if meta.signed:
            color = ok if signer is Signer.CONFIRMED else warn
            mark = "✔ " if signer is Signer.CONFIRMED else ""
            phrase = html_escape(view.signer_phrase)
            state = f"<span style='color:{color}'>{mark}{phrase}</span>"
            lookalike = view.creator_warning
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
            what = (
                html_escape(view.signer_phrase)  # forged or damaged, and why
                if signer is Signer.BAD_SIGNATURE
                else "unsigned (written without a signature)"
            )
            state = f"<span style='color:{warn}'>{what}: name not proven</span>"
            fp = ""
        when = f" · created {created}" if created else ""
        if any(f.kind is Kind.METADATA_CHANGED for f in view.metadata_findings):
            # what is shown is the metadata read first; the storage holds other now
            fp += (
                f"<br><span style='color:{warn}'>⚠ metadata.json was rewritten or removed "
                "since this device read it: the name and creator shown are those read "
                "first (see findings).</span>"
            )
        return f"<b>Room metadata:</b> “{name}” — {state}{when}{fp}"

    def _selected(self) -> Finding | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        found = index.sibling(index.row(), 0).data(FindingRoles.Finding)
        return found if isinstance(found, Finding) else None

    def _on_filter(self, *_args: Any) -> None:
        self.model.set_severity(self.filter.currentData() or "")
        self._select(None)

    def _select(self, finding: Finding | None) -> None:
        """Select and show ``finding`` if the table shows it, else the first row."""
        current = self.table.currentIndex()
        if finding is not None and current.isValid() and self._selected() == finding:
            row = current.row()  # still on it (the rows were not made again)
        else:
            row = self.model.row_of(finding) if finding is not None else -1
            if row < 0 and self.model.rowCount():
                row = 0
        if row < 0:
            self._show(QModelIndex())
            return
        self.table.selectRow(row)
        self._show(self.model.index(row, 0))

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
            f"<b>Where:</b> <code>{_text(f.path)}</code>"
            + (f", line <b>{f.line}</b>" if f.line is not None else "")
            if f.path
            else "<b>Where:</b> the room as a whole"
        )
        event = f"<br><b>Event:</b> <code>{_text(f.event_id)}</code>" if f.event_id else ""
        self.detail.setHtml(
            f"<p><span style='color:{color}'><b>{severity}</b></span> · "
            f"<b>{html_escape(info.title)}</b> <span style='color:{self._muted}'>({f.kind.value})"
            f"</span></p>"
            f"<p>{html_escape(info.meaning)}</p>"
            f"<p><b>What to do:</b> {html_escape(info.action)}</p>"
            f"<p style='color:{self._muted}'>{where}{event}<br><b>Audit says:</b> "
            f"{_text(f.message)}</p>"
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
