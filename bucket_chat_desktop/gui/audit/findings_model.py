"""The findings table's model: one row per finding, columns for severity, kind, meaning,
where it was found and the event id. Everything shown was read from storage: the text
columns go through ``terminal_safe`` and rich tooltips through ``html_escape``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QRectF,
    Qt,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QIcon,
    QPainter,
    QPixmap,
)

from ...protocol.findings import Finding, Severity
from ...protocol.untrusted_text import (
    html_escape,
    terminal_safe,
)
from ..safe import guard
from ..style import TRUST_COLORS
from .explanations import explain

Index = QModelIndex | QPersistentModelIndex

NOTICE_COLOR = "#4a7fc1"
SEVERITY_COLORS = {Severity.ERROR: TRUST_COLORS["invalid"], Severity.NOTICE: NOTICE_COLOR}


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
