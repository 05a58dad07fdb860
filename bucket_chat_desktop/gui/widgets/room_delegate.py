"""Paints a room in the room list: name, last message, time, unread badge, warnings."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import QStyle, QStyleOptionViewItem

from ... import timestamps
from ...protocol.unread import unread_label
from ..models.rooms_model import RoomRoles
from ..safe import SafeDelegate
from ..style import ACCENT, TRUST_COLORS, WARNING_MARK, initials, key_color
from .message_delegate import elide_mode

Index = QModelIndex | QPersistentModelIndex
ROW_H = 58


class RoomDelegate(SafeDelegate):
    failure_text = "This room could not be shown"

    def row_size(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        # No width of its own: the list gives each row the viewport's width. The width of
        # the option was the viewport's before a resize, and kept the rows that wide: a
        # narrowed window scrolled the room list sideways, its times cut off.
        return QSize(1, ROW_H)

    def paint_row(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        # SafeDelegate.paint saves the painter before and restores it after.
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = option.rect
        palette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            bg = QColor(ACCENT)
            bg.setAlpha(60)
            painter.fillRect(rect, bg)
        elif option.state & QStyle.StateFlag.State_MouseOver:
            bg = QColor(palette.color(palette.ColorRole.Highlight))
            bg.setAlpha(20)
            painter.fillRect(rect, bg)
        name = str(index.data(RoomRoles.Name))
        key = str(index.data(RoomRoles.Key))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(key_color(key))
        avatar = QRect(rect.left() + 10, rect.top() + 11, 36, 36)
        painter.drawRoundedRect(avatar, 9, 9)
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(QColor("white"))
        painter.drawText(avatar, Qt.AlignmentFlag.AlignCenter, initials(name))

        unread = int(index.data(RoomRoles.Unread) or 0)
        text = palette.color(palette.ColorRole.Text)
        muted = QColor(text)
        muted.setAlpha(140)
        left = rect.left() + 56
        right = rect.right() - 10
        fm = QFontMetrics(bold)
        when = timestamps.room_list_when(index.data(RoomRoles.LastTs) or 0)
        painter.setFont(option.font)
        painter.setPen(muted)
        when_w = painter.fontMetrics().horizontalAdvance(when)
        painter.drawText(QRect(right - when_w, rect.top() + 10, when_w, 20), 0, when)
        name_font = bold if unread else QFont(option.font)
        painter.setFont(name_font)
        painter.setPen(text)
        title_w = right - when_w - 8 - left
        findings = int(index.data(RoomRoles.Findings) or 0)
        if findings:
            title_w -= 20
        name_fm = QFontMetrics(name_font)
        x = left
        if index.data(RoomRoles.NameWarning):
            # its name looks like another room's: marked, and its id and storage beside
            # it (the other one reads the same); each has half the width when both do not fit
            mark = f"{WARNING_MARK} "
            mark_w = name_fm.horizontalAdvance(mark)
            painter.setPen(QColor(TRUST_COLORS["key-changed"]))
            painter.drawText(QRect(x, rect.top() + 9, mark_w, 20), 0, mark)
            x, title_w = x + mark_w, max(0, title_w - mark_w)
            place = f" · {index.data(RoomRoles.Place) or ''}"
            name_w = max(title_w // 2, title_w - QFontMetrics(option.font).horizontalAdvance(place))
            if name_fm.horizontalAdvance(name) <= name_w:
                title = name  # whole (eliding at its own width may cut its last letter)
            else:
                title = name_fm.elidedText(name, Qt.TextElideMode.ElideRight, name_w)
            painter.setPen(text)
            painter.drawText(QRect(x, rect.top() + 9, name_w, 20), 0, title)
            painter.setFont(option.font)
            painter.setPen(muted)
            x += name_fm.horizontalAdvance(title)
            place_w = max(0, title_w - name_fm.horizontalAdvance(title))
            place = painter.fontMetrics().elidedText(place, Qt.TextElideMode.ElideRight, place_w)
            painter.drawText(QRect(x, rect.top() + 9, place_w, 20), 0, place)
            end = x + painter.fontMetrics().horizontalAdvance(place)
            painter.setFont(name_font)
        else:
            title = name_fm.elidedText(name, Qt.TextElideMode.ElideRight, title_w)
            painter.drawText(QRect(left, rect.top() + 9, title_w, 20), 0, title)
            end = left + name_fm.horizontalAdvance(title)
        if findings:
            x = end + 6
            painter.setPen(QColor(TRUST_COLORS["key-changed"]))
            painter.drawText(QRect(x, rect.top() + 9, 18, 20), 0, "⚠")
        painter.setFont(option.font)
        painter.setPen(muted)
        badge_w = 0
        if unread:
            label = unread_label(unread)
            badge_w = max(22, fm.horizontalAdvance(label) + 12)
            badge = QRect(right - badge_w, rect.top() + 31, badge_w, 18)
            painter.setPen(Qt.PenStyle.NoPen)
            muted_room = bool(index.data(RoomRoles.Muted))
            painter.setBrush(QColor("#8a8f98" if muted_room else ACCENT))
            painter.drawRoundedRect(badge, 9, 9)
            painter.setPen(QColor("white"))
            small = QFont(option.font)
            small.setBold(True)
            small.setPointSizeF(max(7.0, option.font.pointSizeF() * 0.85))
            painter.setFont(small)
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, label)
            painter.setFont(option.font)
            painter.setPen(muted)
        width = right - left - badge_w - 6
        x = left
        if index.data(RoomRoles.PreviewWarning):  # its sender's id, marked as on their row
            mark_w = painter.fontMetrics().horizontalAdvance(f"{WARNING_MARK} ")
            painter.setPen(QColor(TRUST_COLORS["key-changed"]))
            painter.drawText(QRect(x, rect.top() + 31, mark_w, 20), 0, f"{WARNING_MARK} ")
            painter.setPen(muted)
            x, width = x + mark_w, max(0, width - mark_w)
        self._paint_preview(painter, option, index, QRect(x, rect.top() + 31, width, 20), muted)

    def _paint_preview(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: Index,
        area: QRect,
        muted: QColor,
    ) -> None:
        """The room's last line: a message as "<sender>: <text>", the sender's name in the
        text's colour; a notice of the app's own (a member event's, a deletion's) in
        italics, with no sender (``RoomItem.preview_sender``): no message's text can pass
        for one (red team rt86: "carol@example.com left the room"). Which it is comes from
        the model, the sender apart from the text, never from the text (red team rt89)."""
        said = str(index.data(RoomRoles.PreviewText) or "")
        sender = str(index.data(RoomRoles.PreviewSender) or "")
        head, text = (f"{sender}: ", said) if sender else ("", said)
        x, width = area.left(), area.width()
        fm = painter.fontMetrics()
        if not index.data(RoomRoles.Online):
            offline = "offline · " if said else "offline"
            painter.drawText(QRect(x, area.top(), width, area.height()), 0, offline)
            x, width = (
                x + fm.horizontalAdvance(offline),
                max(0, width - fm.horizontalAdvance(offline)),
            )
        if head:  # at most half the line: the message's words show too
            shown = head
            if fm.horizontalAdvance(head) > width // 2:
                shown = fm.elidedText(head, Qt.TextElideMode.ElideRight, width // 2)
            painter.setPen(option.palette.color(option.palette.ColorRole.Text))
            painter.drawText(QRect(x, area.top(), width, area.height()), 0, shown)
            painter.setPen(muted)
            x, width = x + fm.horizontalAdvance(shown), max(0, width - fm.horizontalAdvance(shown))
        elif said:
            notice = QFont(option.font)
            notice.setItalic(True)
            painter.setFont(notice)
            fm = painter.fontMetrics()
        # a file's name ("📎 name") is cut in the middle, so its extension shows
        elided = fm.elidedText(text.replace("\n", " "), elide_mode(text), width)
        painter.drawText(QRect(x, area.top(), width, area.height()), 0, elided)
