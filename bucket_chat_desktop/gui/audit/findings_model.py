"""The findings table's model: one row per finding, columns for severity, kind, meaning,
where it was found and the event id. Everything shown was read from storage: the text
columns go through ``terminal_safe`` and rich tooltips through ``html_escape``.

The model filters (by severity) and sorts (by a column's text) its rows itself, with a
key made once per finding and column: a storage can hold 100,000 findings (red team rt68),
and a ``QSortFilterProxyModel`` compared them through ``data`` (a call into Python per
comparison, ~17 s for one click on a header). A refresh with the same findings changes
nothing; findings added at the end are inserted in their places.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Iterable, Sequence
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


def _text(column: Column, f: Finding) -> str:
    """What the column shows for ``f`` (``data``'s display role)."""
    match column:
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


def _sort_key(column: Column) -> Callable[[Finding], bytes]:
    """The column's text as Qt compares two texts (``QString::compare``: by UTF-16 code
    unit, case-sensitive), which is how the table sorted them through a proxy."""
    return lambda f: _text(column, f).encode("utf-16-be", "surrogatepass")


INSERT_ONE_BY_ONE = 64  # more findings added at once than this: one layout change


class FindingsModel(QAbstractTableModel):
    """The findings as reported (``set_findings``), shown filtered by severity
    (``set_severity``) and sorted by one column's text (``sort``; -1: as reported). Ties
    keep the reported order, in both orders (as the proxy showed them after a refresh)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._findings: list[Finding] = []  # as reported
        self._rows: list[int] = []  # what is shown: indexes into _findings
        self._severity = ""  # "" (all) or a Severity's value
        self._column = -1  # sorted by this column's text; -1: as reported
        self._order = Qt.SortOrder.AscendingOrder
        self._keys: dict[int, list[bytes]] = {}  # column -> each finding's sort key
        self._icons = {s: _dot(c) for s, c in SEVERITY_COLORS.items()}

    # -- feeding it ----------------------------------------------------------------------------

    def set_findings(self, findings: Sequence[Finding]) -> None:
        """Show these findings. The same as shown (a refresh while messages arrive):
        nothing changes; the same followed by more (an audit that found more): the new
        ones are inserted in their places; anything else: the rows are made again. The
        comparisons are by identity first (``list.__eq__``), so a refresh costs no call
        into Python per finding when the audit kept its findings."""
        new = list(findings)
        old = self._findings
        if len(new) >= len(old) and new[: len(old)] == old:
            if len(new) > len(old):
                self._append(new[len(old) :])
            return
        self.beginResetModel()
        self._findings = new
        self._keys.clear()
        self._rows = self._arranged(range(len(new)))
        self.endResetModel()

    def _append(self, added: list[Finding]) -> None:
        start = len(self._findings)
        self._findings.extend(added)
        for column, keys in self._keys.items():
            keys.extend(map(_sort_key(Column(column)), added))
        shown = self._filtered(range(start, len(self._findings)))
        if not shown:
            return
        if self._column >= 0 and len(shown) <= INSERT_ONE_BY_ONE:
            for i in shown:  # each in its place among the sorted rows
                at = self._place(i)
                self.beginInsertRows(QModelIndex(), at, at)
                self._rows.insert(at, i)
                self.endInsertRows()
            return
        at = len(self._rows)  # as reported, they come last
        self.beginInsertRows(QModelIndex(), at, at + len(shown) - 1)
        self._rows.extend(shown)
        self.endInsertRows()
        if self._column >= 0:  # many at once: one sort by the keys, not one insert each
            self._relayout(self._arranged(self._rows))

    def set_severity(self, severity: str) -> None:
        """Show only findings of this severity (a ``Severity`` value), or all ("")."""
        if severity == self._severity:
            return
        self._severity = severity
        self.beginResetModel()  # a proxy's new filter was a reset of its rows too
        self._rows = self._arranged(range(len(self._findings)))
        self.endResetModel()

    @guard()
    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort the rows by ``column``'s text (the view's header asks); -1: as reported."""
        if not 0 <= column < len(Column):
            column, order = -1, Qt.SortOrder.AscendingOrder
        if (column, order) == (self._column, self._order):
            return
        self._column, self._order = column, order
        self._relayout(self._arranged(self._rows))

    # -- reading it ----------------------------------------------------------------------------

    def row_of(self, finding: Finding) -> int:
        """The row showing ``finding`` (the first of equal ones), or -1. Walks the lists
        in C (``list.index``: identity first), never through ``data``."""
        rows: list[int] = []
        at = -1
        while True:
            try:
                at = self._findings.index(finding, at + 1)
            except ValueError:
                return min(rows, default=-1)
            if self._shows(self._findings[at]):
                rows.append(self._rows.index(at))

    # -- arranging rows ------------------------------------------------------------------------

    def _shows(self, f: Finding) -> bool:
        return not self._severity or f.severity.value == self._severity

    def _filtered(self, indexes: Iterable[int]) -> list[int]:
        """``indexes`` (into the findings) of the findings the filter shows."""
        if not self._severity:
            return list(indexes)
        findings = self._findings
        wanted = Severity(self._severity)
        return [i for i in indexes if findings[i].severity is wanted]

    def _arranged(self, indexes: Iterable[int]) -> list[int]:
        """``indexes`` (into the findings) filtered, and sorted as asked."""
        rows = self._filtered(indexes)
        if self._column < 0:
            rows.sort()
            return rows
        keys = self._column_keys()
        rows.sort()  # ties in the reported order: sort is stable, reverse too
        rows.sort(key=keys.__getitem__, reverse=self._order == Qt.SortOrder.DescendingOrder)
        return rows

    def _column_keys(self) -> list[bytes]:
        keys = self._keys.get(self._column)
        if keys is None:
            keys = self._keys[self._column] = list(
                map(_sort_key(Column(self._column)), self._findings)
            )
        return keys

    def _place(self, i: int) -> int:
        """Where finding ``i`` (after every shown one in the reported order) goes among
        the sorted rows: after the rows it ties with."""
        keys = self._column_keys()
        key = keys[i]
        rows = self._rows
        before = operator.gt if self._order == Qt.SortOrder.DescendingOrder else operator.lt
        lo, hi = 0, len(rows)
        while lo < hi:
            mid = (lo + hi) // 2
            if before(key, keys[rows[mid]]):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _relayout(self, rows: list[int]) -> None:
        """Show the same rows in another order: a layout change that keeps the selection
        and the current row on their findings (persistent indexes)."""
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        new = [
            self.index(rows.index(self._rows[i.row()]), i.column())
            if 0 <= i.row() < len(self._rows)
            else QModelIndex()
            for i in old
        ]
        self._rows = rows
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    def finding(self, row: int) -> Finding:
        return self._findings[self._rows[row]]

    @guard(0)
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

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
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        f = self._findings[self._rows[index.row()]]
        col = index.column()
        if role == FindingRoles.Severity:
            return f.severity.value
        if role == FindingRoles.Kind:
            return f.kind.value
        if role == FindingRoles.Finding:
            return f
        if role == Qt.ItemDataRole.DisplayRole:
            return _text(Column(col), f) if 0 <= col < len(Column) else None
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
