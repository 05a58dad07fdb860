"""Paints timeline rows: day separators, avatar + name + time + trust badge, the body as
safe rich text, membership lines, local-echo states and attachment cards."""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QEvent, QModelIndex, QPersistentModelIndex, QPoint, QRect, QSize, Qt
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QColor,
    QFont,
    QFontMetrics,
    QHelpEvent,
    QPainter,
    QPen,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QStyle,
    QStyleOptionViewItem,
    QToolTip,
    QWidget,
)

from ... import timestamps
from ...protocol.attachments import safe_file_name
from ...protocol.mentions import mention_spans, mentions_me
from ...protocol.untrusted_text import display_name_safe, html_escape, one_line, shown_id
from ..markdown import is_plain, shown_text, to_html
from ..models.timeline_model import EARLIER_CHECK, TRUST_LABELS, Roles
from ..safe import SafeDelegate
from ..style import ACCENT, TRUST_COLORS, TRUST_SYMBOLS, initials, is_dark, key_color
from .members_panel import paint_trust_badge

Index = QModelIndex | QPersistentModelIndex

AVATAR = 36
LEFT = 14 + AVATAR + 12
RIGHT = 18
DAY_H = 30
HEADER_H = 22
CACHE = 3000
BADGE = 16
GAP = 8
WARNING_MARK = "⚠"
RICH_STEP = 24
NEW_H = 22  # the "New messages" line above the first unread message
NEW_COLOR = "#d64545"


def _body_key(index: Index, font: QFont) -> tuple[str, str, str]:
    """What a laid-out body is cached by: the row's event id *and* the line it was read
    from (two stored lines may claim one id: each is laid out from its own text), and the
    font (a size change in the settings lays everything out again)."""
    return (str(index.data(Roles.EventId)), str(index.data(Roles.Location)), font.key())


class MessageDelegate(SafeDelegate):
    """Stateless apart from a small cache of laid-out bodies (bodies never change).

    Painting and sizing go through ``SafeDelegate``: a row that fails is drawn as
    "This message could not be shown: <why>" and never takes the app down."""

    failure_text = "This message could not be shown"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._docs: OrderedDict[tuple[str, str, str], QTextDocument] = OrderedDict()
        self._heights: dict[tuple[str, str, str, int], int] = {}
        # Row sizes by (event id, location): a switch back to a room lays out its rows
        # again (the view asks every row's size), and under a back-fill's load that took
        # the GUI thread 100-160 ms for 300 rows. Valid while the row's layout, the width
        # and the font are what they were measured with.
        self._sizes: OrderedDict[tuple[str, str], tuple[Any, QSize]] = OrderedDict()
        self.thumbnail_provider: Any = None  # set by the attachments feature
        # Set by the social feature (``gui/social.py``): the user, whose mentions give a
        # row an accent, and the event the "New messages" line is drawn above.
        self.own_user = ""
        self.own_names: tuple[str, ...] = ()  # what the user calls themself (settings)
        self.first_unread = ""
        self._targets: tuple[Any, tuple[str, ...], tuple[str, ...]] | None = None
        self._mentioning: OrderedDict[tuple[str, str], bool] = OrderedDict()

    # -- mentions ---------------------------------------------------------------------------

    def _mention_targets(self, index: Index) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(every member's id and display name, the user's own): what "@" may name in
        this room, from the timeline's display names (cached while they stay the same)."""
        names = getattr(index.model(), "names", None)
        if names is None:
            return (), ()
        size = names.size
        if self._targets is None or self._targets[0] != (id(names), size):
            members = names.members()
            targets = tuple(t for uid, name in members for t in (uid, name) if t)
            own = (self.own_user, *self.own_names, names.name(self.own_user))
            own = tuple(dict.fromkeys(t for t in own if t))
            targets = tuple(dict.fromkeys(targets + own))
            self._targets = ((id(names), size), targets, own)
        return self._targets[1], self._targets[2]

    def _spans(self, index: Index, body: str) -> list[tuple[int, int]]:
        if "@" not in body:
            return []
        return mention_spans(body, self._mention_targets(index)[0])

    def mentions_me(self, index: Index) -> bool:
        """Whether the row's message names the user (field or text): it gets an accent."""
        if not self.own_user or index.data(Roles.Kind) != "text":
            return False
        key = (str(index.data(Roles.EventId)), str(index.data(Roles.Location)))
        known = self._mentioning.get(key)
        if known is None:
            content = index.data(Roles.Content)
            own = self._mention_targets(index)[1]
            known = isinstance(content, dict) and mentions_me(content, self.own_user, own[1:])
            self._mentioning[key] = known
            if len(self._mentioning) > 20 * CACHE:
                self._mentioning.popitem(last=False)
        return known

    def _html(self, index: Index, body: str) -> str:
        """The body's rich text, with each ``@mention`` of a member highlighted (the
        user's own more strongly)."""
        html = to_html(body)
        spans = self._spans(index, body)
        if not spans:
            return html
        targets, own = self._mention_targets(index)
        return _highlight(html, targets, own, is_dark())

    # -- layout -----------------------------------------------------------------------------

    def _body_height(self, index: Index, width: int, font: QFont) -> int:
        body = str(index.data(Roles.Body) or "")
        if is_plain(body) and not self._spans(index, body):
            body = shown_text(body)
            key = (*_body_key(index, font), width)
            h = self._heights.get(key)
            if h is None:
                flags = int(Qt.TextFlag.TextWordWrap)
                h = (
                    QFontMetrics(font)
                    .boundingRect(QRect(0, 0, max(60, width), 10**6), flags, body)
                    .height()
                )
                self._heights[key] = h
                if len(self._heights) > 20 * CACHE:
                    self._heights.clear()
            return h
        width = _rich_width(width)
        key = (*_body_key(index, font), width)
        h = self._heights.get(key)
        if h is None:  # a scroll bar coming and going alternates two widths: no re-layout
            h = self._heights[key] = int(self._doc(index, width, font).size().height())
        return h

    def _paint_body(
        self,
        painter: QPainter,
        index: Index,
        x: int,
        y: int,
        width: int,
        font: QFont,
        color: QColor,
    ) -> int:
        body = str(index.data(Roles.Body) or "")
        if is_plain(body) and not self._spans(index, body):
            body = shown_text(body)
            h = self._body_height(index, width, font)
            painter.setFont(font)
            painter.setPen(color)
            painter.drawText(QRect(x, y, max(60, width), h), int(Qt.TextFlag.TextWordWrap), body)
            return h
        doc = self._doc(index, _rich_width(width), font)
        painter.translate(x, y)
        ctx = QAbstractTextDocumentLayout.PaintContext()
        ctx.palette.setColor(ctx.palette.ColorRole.Text, color)
        doc.documentLayout().draw(painter, ctx)
        painter.translate(-x, -y)
        return int(doc.size().height())

    def _doc(self, index: Index, width: int, font: QFont) -> QTextDocument:
        """The body laid out at ``width``. One document per message, re-laid out when the
        width changes (parsing the HTML again at every width of a resize cost more than
        the layout); ``markdown.to_html`` bounds what one layout may cost."""
        key = _body_key(index, font)
        doc = self._docs.get(key)
        if doc is not None:
            self._docs.move_to_end(key)
            if doc.textWidth() != width:
                doc.setTextWidth(width)
            return doc
        doc = QTextDocument()
        doc.setDefaultFont(font)
        doc.setDocumentMargin(0)
        doc.setDefaultStyleSheet(
            "a { color: #3a7bd5; } code, pre { font-family: monospace; }"
            " p { margin: 0; } blockquote { color: #777; }"
        )
        doc.setHtml(self._html(index, str(index.data(Roles.Body) or "")))
        doc.setTextWidth(width)
        self._docs[key] = doc
        if len(self._docs) > CACHE:
            self._docs.popitem(last=False)
        return doc

    @staticmethod
    def _grouped(index: Index) -> bool:
        """Same sender as the row above, within a few minutes, same day: no header (the
        model's rule, ``TimelineModel._layout``)."""
        return bool(index.data(Roles.Layout)[4])

    def _extra_h(self, index: Index) -> int:
        kind = index.data(Roles.Kind)
        h = 0
        if kind in ("file", "image"):
            h += 64 if kind == "file" else self._image_h(index) + 8
        if index.data(Roles.Echo):
            h += 18
        return h

    def _image_h(self, index: Index) -> int:
        info = _info(index.data(Roles.Content))
        w, h = info.get("w"), info.get("h")
        if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
            scale = min(1.0, 320 / w, 240 / h)
            return max(40, int(h * scale))
        return 180

    def row_size(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        width = option.rect.width() or 600
        layout = index.data(Roles.Layout)
        valid = (layout, width, option.font.key(), self._is_first_unread(index))
        known = self._sizes.get(layout[:2])
        if known is not None and known[0] == valid:
            return QSize(known[1])
        size = self._measure(option, index, width)
        self._sizes[layout[:2]] = (valid, QSize(size))
        if len(self._sizes) > 20 * CACHE:
            self._sizes.popitem(last=False)
        return size

    def _is_first_unread(self, index: Index) -> bool:
        return bool(self.first_unread) and index.data(Roles.EventId) == self.first_unread

    def _measure(self, option: QStyleOptionViewItem, index: Index, width: int) -> QSize:
        h = 6 + (NEW_H if self._is_first_unread(index) else 0)
        if index.data(Roles.DayBreak):
            h += DAY_H
        if index.data(Roles.Kind) == "member":
            return QSize(width, h + QFontMetrics(option.font).height() + 8)
        if not self._grouped(index):
            h += HEADER_H
        text_w = width - LEFT - RIGHT
        attachment = index.data(Roles.Kind) in ("file", "image")
        body_h = 0 if attachment else self._body_height(index, text_w, option.font)
        h += body_h + self._extra_h(index) + 4
        if not self._grouped(index):
            h = max(h, (DAY_H if index.data(Roles.DayBreak) else 0) + AVATAR + 14)
        return QSize(width, h)

    # -- painting ---------------------------------------------------------------------------

    def paint_row(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        # SafeDelegate.paint saves the painter before and restores it after.
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRect(option.rect)
        dark = is_dark()
        palette = option.palette
        text_color = palette.color(palette.ColorRole.Text)
        muted = QColor(text_color)
        muted.setAlpha(150)
        if option.state & QStyle.StateFlag.State_MouseOver:
            hover = QColor(palette.color(palette.ColorRole.Highlight))
            hover.setAlpha(22)
            painter.fillRect(rect, hover)
        y = rect.top() + 4
        if self._is_first_unread(index):
            _paint_new_line(painter, rect, y, option.font)
            y += NEW_H
        if index.data(Roles.DayBreak):
            self._paint_day(painter, rect, y, index.data(Roles.Timestamp), muted)
            y += DAY_H
        if index.data(Roles.Kind) != "member" and self.mentions_me(index):
            accent = QRect(rect.left(), y - 2, rect.width(), rect.bottom() - y + 3)
            _paint_mention_accent(painter, accent)
        if index.data(Roles.Kind) == "member":
            self._paint_member(
                painter, option, index, QRect(rect.left(), y, rect.width(), 20), muted
            )
            return
        grouped = self._grouped(index)
        if not grouped:
            self._paint_header(painter, option, index, y, muted, dark)
            y += HEADER_H
        elif index.data(Roles.Trust) != "verified":
            self._paint_badge(
                painter,
                QRect(rect.left() + 24, y + 1, 14, 14),
                str(index.data(Roles.Trust)),
                earlier=bool(index.data(Roles.Cached)),
            )
        text_w = rect.width() - LEFT - RIGHT
        if index.data(Roles.Kind) not in ("file", "image"):  # the card names the file safely
            y += self._paint_body(
                painter, index, rect.left() + LEFT, y, text_w, option.font, text_color
            )
        y += 2
        kind = index.data(Roles.Kind)
        if kind in ("file", "image"):
            y = self._paint_attachment(painter, option, index, rect, y, muted)
        echo = index.data(Roles.Echo)
        if echo:
            small = QFont(option.font)
            small.setPointSizeF(max(7.0, option.font.pointSizeF() * 0.85))
            painter.setFont(small)
            painter.setPen(QColor(TRUST_COLORS["invalid"]) if echo == "failed" else muted)
            label = "Sending…" if echo == "sending" else "Not sent — click to retry"
            error = index.data(Roles.EchoError)
            if error:
                label += f" ({error})"
            painter.drawText(rect.left() + LEFT, y + 13, label)

    def header_layout(self, option: QStyleOptionViewItem, index: Index, y: int) -> Header:
        """Where a message's header pieces go. The sender id, the look-alike mark, the
        time and the trust badge get their room first; the display name (already cleaned
        of invisible padding) is elided into what is left, so no name can push the id or
        the badge out of the row."""
        rect = option.rect
        sender = str(index.data(Roles.Sender) or "")
        raw_name = index.data(Roles.DisplayName)
        name = display_name_safe(raw_name) if raw_name and raw_name != sender else ""
        ident = shown_id(sender)
        warning = index.data(Roles.SenderWarning)
        bold = QFont(option.font)
        bold.setBold(True)
        fm, nfm = QFontMetrics(bold), QFontMetrics(option.font)
        when = timestamps.clock(index.data(Roles.Timestamp))
        left, right = rect.left() + LEFT, rect.right() - RIGHT
        h = fm.height() + 2
        top = y + 2
        time_w = nfm.horizontalAdvance(when)
        mark_w = nfm.horizontalAdvance(WARNING_MARK) + 6 if warning else 0
        avail = max(0, right - left - (time_w + 8) - BADGE - mark_w)
        id_font = option.font if name else bold
        id_full = QFontMetrics(id_font).horizontalAdvance(ident) + 1
        if name:
            name_full = fm.horizontalAdvance(name) + 1
            id_w = min(id_full, max(avail * 2 // 5, avail - name_full - GAP))
            name_w = max(0, min(name_full, avail - id_w - GAP))
        else:
            id_w, name_w = min(id_full, avail), 0
        # Rects fit the elided texts, so nothing leaves a gap before the mark or the time.
        id_metrics = QFontMetrics(id_font)
        ident = id_metrics.elidedText(ident, Qt.TextElideMode.ElideMiddle, id_w)
        id_w = min(id_w, id_metrics.horizontalAdvance(ident) + 1)
        name = fm.elidedText(name, Qt.TextElideMode.ElideRight, name_w) if name else ""
        name_w = min(name_w, fm.horizontalAdvance(name) + 1) if name else 0
        x = left
        name_rect = QRect(x, top, name_w, h)
        if name:
            x += name_w + GAP
        id_rect = QRect(x, top, id_w, h)
        x += id_w + 6
        mark_rect = QRect(x, top, mark_w, h)
        x += mark_w
        time_rect = QRect(x, top, time_w, h)
        x += time_w + 8
        return Header(
            name=name,
            ident=ident,
            warning=str(warning) if warning else "",
            when=when,
            name_rect=name_rect,
            id_rect=id_rect,
            mark_rect=mark_rect,
            time_rect=time_rect,
            badge_rect=QRect(x, y + 3, BADGE, BADGE),
        )

    def _paint_header(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: Index,
        y: int,
        muted: QColor,
        dark: bool,
    ) -> None:
        rect = option.rect
        sender = str(index.data(Roles.Sender) or "")
        key = str(index.data(Roles.SenderKey) or sender)
        head = self.header_layout(option, index, y)
        avatar = QRect(rect.left() + 14, y + 2, AVATAR, AVATAR)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(key_color(key, False))
        painter.drawEllipse(avatar)
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(QColor("white"))
        painter.drawText(avatar, Qt.AlignmentFlag.AlignCenter, initials(head.name or sender))
        # Each piece is its own paragraph, drawn left to right: right-to-left letters in a
        # name or id can only reorder themselves, never the pieces around them.
        flags = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        ltr = flags | int(Qt.TextFlag.TextForceLeftToRight)
        painter.setPen(key_color(key, dark))
        if head.name:
            painter.drawText(head.name_rect, flags, head.name)
            painter.setFont(option.font)
            painter.setPen(muted)
        painter.drawText(head.id_rect, ltr, head.ident)
        painter.setFont(option.font)
        if head.warning:
            painter.setPen(QColor(TRUST_COLORS["key-changed"]))
            painter.drawText(head.mark_rect, flags, WARNING_MARK)
        painter.setPen(muted)
        painter.drawText(head.time_rect, ltr, head.when)
        self._paint_badge(
            painter, head.badge_rect, _badge(index), earlier=bool(index.data(Roles.Cached))
        )

    def _paint_day(self, painter: QPainter, rect: QRect, y: int, ts: int, muted: QColor) -> None:
        label = timestamps.day_label(ts)
        fm = painter.fontMetrics()
        w = fm.horizontalAdvance(label) + 24
        mid = rect.left() + rect.width() // 2
        line_y = y + DAY_H // 2
        painter.setPen(muted)
        painter.drawLine(rect.left() + 16, line_y, mid - w // 2, line_y)
        painter.drawLine(mid + w // 2, line_y, rect.right() - 16, line_y)
        painter.drawText(QRect(mid - w // 2, y, w, DAY_H), Qt.AlignmentFlag.AlignCenter, label)

    def _paint_member(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: Index,
        rect: QRect,
        muted: QColor,
    ) -> None:
        italic = QFont(option.font)
        italic.setItalic(True)
        painter.setFont(italic)
        painter.setPen(muted)
        fm = QFontMetrics(italic)
        when = timestamps.clock(index.data(Roles.Timestamp))
        sender = str(index.data(Roles.Sender) or "")
        raw_name = index.data(Roles.DisplayName)
        name = display_name_safe(raw_name) if raw_name and raw_name != sender else ""
        ident = shown_id(sender)
        warning = index.data(Roles.SenderWarning)
        rest = f"{one_line(index.data(Roles.Body), 120)} · {when}"
        badge = QRect(rect.left() + LEFT - 22, rect.top() + 2, 14, 14)
        self._paint_badge(painter, badge, _badge(index), earlier=bool(index.data(Roles.Cached)))
        painter.setFont(italic)
        # Name, id (and mark), then what happened: drawn as separate pieces, the id always
        # with at least 40% of the width, so neither a name nor bidi text can hide it.
        flags = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        ltr = flags | int(Qt.TextFlag.TextForceLeftToRight)
        x, right = rect.left() + LEFT, rect.right() - RIGHT
        avail = max(0, right - x)
        label = f"({ident})" if name else ident
        mark_w = fm.horizontalAdvance(WARNING_MARK) + 6 if warning else 0
        id_w = min(fm.horizontalAdvance(label) + 1, max(0, avail * 2 // 5 - mark_w))
        if name:
            name = fm.elidedText(name, Qt.TextElideMode.ElideRight, max(0, avail * 3 // 10))
            name_w = fm.horizontalAdvance(name) + 1
            painter.setPen(muted)
            painter.drawText(QRect(x, rect.top(), name_w, rect.height()), flags, name)
            x += name_w + 4
        label = fm.elidedText(label, Qt.TextElideMode.ElideMiddle, id_w)
        id_w = fm.horizontalAdvance(label) + 1
        painter.setPen(muted)
        painter.drawText(QRect(x, rect.top(), id_w, rect.height()), ltr, label)
        x += id_w + 4
        if warning:
            painter.setPen(QColor(TRUST_COLORS["key-changed"]))
            painter.drawText(QRect(x, rect.top(), mark_w, rect.height()), flags, WARNING_MARK)
            x += mark_w
        painter.setPen(muted)
        rest_w = max(0, right - x)
        painter.drawText(
            QRect(x, rect.top(), rest_w, rect.height()),
            flags,
            fm.elidedText(rest, Qt.TextElideMode.ElideRight, rest_w),
        )

    @staticmethod
    def _paint_badge(painter: QPainter, rect: QRect, trust: str, *, earlier: bool) -> None:
        """``earlier``: the verdict is the index's, from an earlier check; it is drawn as a
        ring, so it never looks like this session's verdict (the audit replaces it)."""
        shown = "verified" if trust == "confirmed" else trust
        color = QColor(TRUST_COLORS.get(shown, "#8a8f98"))
        font = painter.font()
        if earlier:
            painter.setPen(QPen(color, 1.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(rect.adjusted(1, 1, -1, -1))
            small = QFont(font)
            small.setPixelSize(max(7, rect.height() - 6))
            painter.setFont(small)
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, TRUST_SYMBOLS.get(shown, "?"))
            painter.setFont(font)
            return
        if trust == "confirmed":  # the user compared the key: a double check
            paint_trust_badge(painter, rect, trust)
            return
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawEllipse(rect)
        painter.setPen(QColor("white"))
        small = QFont(font)
        small.setPixelSize(max(8, rect.height() - 5))
        small.setBold(True)
        painter.setFont(small)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, TRUST_SYMBOLS.get(trust, "?"))
        painter.setFont(font)

    def _paint_attachment(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: Index,
        rect: QRect,
        y: int,
        muted: QColor,
    ) -> int:
        content = index.data(Roles.Content) or {}
        info = _info(content)
        if index.data(Roles.Kind) == "image" and self.thumbnail_provider is not None:
            pix = self.thumbnail_provider(index)
            if pix is not None and not pix.isNull():
                painter.drawPixmap(rect.left() + LEFT, y + 4, pix)
                return y + self._image_h(index) + 8
        box = QRect(rect.left() + LEFT, y + 4, min(360, rect.width() - LEFT - RIGHT), 52)
        painter.setPen(muted)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(box, 6, 6)
        name = safe_file_name(info.get("name") or content.get("body"))
        size = info.get("size")
        painter.setPen(option.palette.color(option.palette.ColorRole.Text))
        painter.drawText(box.adjusted(44, 6, -8, -26), Qt.AlignmentFlag.AlignLeft, name)
        painter.setPen(muted)
        detail = _human_size(size) if isinstance(size, int) else ""
        painter.drawText(box.adjusted(44, 26, -8, -6), Qt.AlignmentFlag.AlignLeft, detail)
        painter.drawText(box.adjusted(10, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, "📄")
        return y + 60

    # -- tooltips: the trust badge says what was checked --------------------------------------

    def row_help(
        self,
        event: QHelpEvent,
        view: QAbstractItemView,
        option: QStyleOptionViewItem,
        index: Index,
    ) -> bool:
        if event is None or event.type() != QEvent.Type.ToolTip or not index.isValid():
            return super().row_help(event, view, option, index)
        QToolTip.showText(event.globalPos() + QPoint(8, 8), tooltip_html(index), view)
        return True


def tooltip_html(index: Index) -> str:
    """The trust badge's tooltip: what was checked, who sent it (the real id, and why it
    may imitate another), where it was read. Every piece from storage is escaped."""
    trust = str(index.data(Roles.Trust))
    label = TRUST_LABELS.get(trust, trust)
    if trust == "key-changed" and not index.data(Roles.SenderKey):
        label = "Not from them"  # unsigned under a signing person's name: no key changed
    if index.data(Roles.Confirmed):
        label += " · device confirmed by you"
    if index.data(Roles.Cached):  # not this session's verdict: the audit replaces it
        label += f" · {EARLIER_CHECK}"
    sender = shown_id(str(index.data(Roles.Sender) or ""))
    warning = index.data(Roles.SenderWarning)
    warn = (
        f"<br><span style='color:{TRUST_COLORS['key-changed']}'>{WARNING_MARK} "
        f"{html_escape(warning)}</span>"
        if warning
        else ""
    )
    reason = one_line(index.data(Roles.TrustReason), 600)
    return (
        f"<b>{html_escape(label)}</b><br>{html_escape(reason)}"
        f"<br>Sender: {html_escape(sender)}{warn}"
        f"<br><small>{html_escape(shown_id(str(index.data(Roles.Location) or '')))}</small>"
    )


@dataclass(frozen=True, slots=True)
class Header:
    """A message header's texts and where they are painted (``header_layout``)."""

    name: str
    ident: str
    warning: str
    when: str
    name_rect: QRect
    id_rect: QRect
    mark_rect: QRect
    time_rect: QRect
    badge_rect: QRect


def _rich_width(width: int) -> int:
    """Formatted bodies are laid out at widths in steps of RICH_STEP pixels (never wider
    than the row): dragging the window's edge re-lays them out every few steps, not at
    every pixel."""
    return max(60, width - width % RICH_STEP)


def _badge(index: Index) -> str:
    return "confirmed" if index.data(Roles.Confirmed) else str(index.data(Roles.Trust))


def _info(content: Any) -> dict[str, Any]:
    """``content["info"]`` if it is an object: content is signed but still untrusted."""
    info = content.get("info") if isinstance(content, dict) else None
    return info if isinstance(info, dict) else {}


def _human_size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"


def _paint_new_line(painter: QPainter, rect: QRect, y: int, font: QFont) -> None:
    """The "New messages" line: a red rule with its label at the right end."""
    small = QFont(font)
    small.setBold(True)
    small.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
    label = "New messages"
    w = QFontMetrics(small).horizontalAdvance(label) + 16
    line_y = y + NEW_H // 2
    color = QColor(NEW_COLOR)
    painter.setPen(QPen(color, 1))
    painter.drawLine(rect.left() + 16, line_y, rect.right() - RIGHT - w, line_y)
    painter.setFont(small)
    painter.drawText(
        QRect(rect.right() - RIGHT - w, y, w, NEW_H),
        int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
        label,
    )
    painter.setFont(font)


def _paint_mention_accent(painter: QPainter, rect: QRect) -> None:
    """A message that mentions the user: a tinted row with a bar at its left edge."""
    tint = QColor(ACCENT)
    tint.setAlpha(28)
    painter.fillRect(rect, tint)
    painter.fillRect(QRect(rect.left(), rect.top(), 3, rect.height()), QColor(ACCENT))


def _highlight(html: str, targets: tuple[str, ...], own: tuple[str, ...], dark: bool) -> str:
    """``html`` (rendered, escaped) with every ``@<member>`` in its text — never inside a
    tag or an attribute — wrapped in a highlighting span."""
    escaped = tuple(html_escape(t) for t in targets)
    mine = {html_escape(t).casefold() for t in own}
    color = "#8fb8ff" if dark else "#1f5fbf"
    own_bg = "#3a4a6a" if dark else "#dce8fb"
    out: list[str] = []
    for part in re.split(r"(<[^>]*>)", html):
        if part.startswith("<"):
            out.append(part)
            continue
        last = 0
        for start, end in mention_spans(part, escaped):
            out.append(part[last:start])
            text = part[start:end]
            if text[1:].casefold() in mine:
                style = f"background-color:{own_bg}; color:{color}; font-weight:bold"
            else:
                style = f"color:{color}; font-weight:bold"
            out.append(f'<span style="{style}">{text}</span>')
            last = end
        out.append(part[last:])
    return "".join(out)
