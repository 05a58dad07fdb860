"""Paints timeline rows: day separators, avatar + name + time + trust badge, the body as
safe rich text, membership lines, local-echo states and attachment cards; and what
relations say about a message (PROTOCOL.md section 18): the quote of the message a reply
answers, a deletion's placeholder, the "(edited)" marker, reaction chips and a thread
root's summary. ``regions`` says where each of those is, for painting, sizing, tooltips
and clicks alike (``hit``)."""

from __future__ import annotations

import re
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    Qt,
    QTimer,
    Signal,
)
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
from ...protocol.attachments import ATTACHMENT_MARK, announced_name
from ...protocol.mentions import MentionTargets, mentions_me
from ...protocol.room_state import NO_NAMES
from ...protocol.untrusted_text import (
    UNSEEN_CATEGORIES,
    display_name_safe,
    html_escape,
    one_line,
    shown_id,
)
from ..markdown import (
    BODY_STYLE,
    MAX_SHOWN_CHARS,
    MAX_SHOWN_LINES,
    Shown,
    body_html,
    cut_note,
    is_plain,
    plain_html,
    shown_part,
)
from ..models.timeline_model import (
    EARLIER_CHECK,
    MAX_CHIPS,
    ON_TRIAL,
    Chip,
    Deleted,
    Edited,
    Quote,
    Roles,
    ThreadSummary,
)
from ..safe import SafeDelegate, painter_state
from ..style import (
    ACCENT,
    NOT_FINAL,
    REPEATED_ID_NOTE,
    TRUST_COLORS,
    TRUST_LABELS,
    TRUST_SYMBOLS,
    WARNING_MARK,
    initials,
    is_dark,
    key_color,
    trust_label,
)
from .members_panel import paint_trust_badge

Index = QModelIndex | QPersistentModelIndex

AVATAR = 36
LEFT = 14 + AVATAR + 12
RIGHT = 18
DAY_H = 30
HEADER_H = 22
CACHE = 3000
# What one step of the GUI thread (one layout of the view, one turn of the loop) may lay
# out of rows' bodies, in characters: two bodies at the cap (MAX_SHOWN_CHARS). A body at the
# cap costs 40-90 ms to lay out (Devanagari conjuncts, red team rt103); a page of hostile
# rows laid out in one pass held the window 8-15 s. Rows past it in a layout get an
# estimated height and are measured in the next steps (``rows_estimated``).
STEP_CHARS = 2 * MAX_SHOWN_CHARS
# The laid-out bodies kept (``MessageDelegate._docs``), in characters: a document costs
# about 20 bytes a character, so ~40 MB at most (by count alone, 3,000 hostile bodies
# would have held over a gigabyte).
DOC_CACHE_CHARS = 2_000_000
# A plain body longer than this is laid out as a cached document, not drawn with
# ``QPainter.drawText``, which shapes its text again at every paint (20-65 ms a paint for
# a long body, on every hover and scroll frame: red team rt103).
DRAW_TEXT_CHARS = 1_000
BADGE = 16
GAP = 8
RICH_STEP = 24
QUOTE_H = 24
CHIP_H = 22
CHIP_GAP = 6
CHIP_KEY_W = 120  # a reaction's text is elided past this (64 characters fit no layout)
THREAD_H = 22
NOTE_H = 20
CAPTION_H = 18  # an image's name and size, under its picture
FILE_CARD = (360, 52)  # a file's card, at most (width, height)
IMAGE_BOX = (320, 240)  # an image row's picture, at most (width, height)
NO_SIZE_HEIGHT = 180  # an image row's picture when its message gives no usable w/h
IMAGE_CAPTION_W = FILE_CARD[0]  # as wide as a file card
ATTACHMENT_TOP = 2 + 4  # from a row's body_y down to its card or picture
REPEATED = f"{WARNING_MARK} {REPEATED_ID_NOTE}"
EDITED = "(edited)"
BODY_SLACK = 3  # pixels a body may paint above and below its lines (accents, descenders)
CLIP = Qt.ClipOperation.IntersectClip
NEW_H = 22  # the "New messages" line above the first unread message
NEW_COLOR = "#d64545"
# A message that mentions the user: gold, apart from the accent blue of the keyboard's
# current row and of a jump's target.
MENTION_COLOR = "#e0a800"


def _body_key(index: Index, font: QFont) -> tuple[str, str, str]:
    """What a laid-out body is cached by: the row's event id *and* the line it was read
    from (two stored lines may claim one id: each is laid out from its own text), the
    text's version (an edit's id: an edited message is laid out from its latest text)
    and the font (a size change in the settings lays everything out again)."""
    version = index.data(Roles.Version) or ""
    return (
        str(index.data(Roles.EventId)),
        f"{index.data(Roles.Location)}#{version}",
        font.key(),
    )


def _renamed(targets: MentionTargets, before: MentionTargets | None) -> bool:
    """Whether ``targets`` (a new roster's) name anyone otherwise than ``before``: what
    was kept of the rows' mentions for ``before`` goes then, not at every new roster."""
    if targets is before:
        return False
    return before is None or (targets.keys, targets.owners) != (before.keys, before.owners)


class MessageDelegate(SafeDelegate):
    """Stateless apart from a small cache of laid-out bodies (bodies never change).

    Painting and sizing go through ``SafeDelegate``: a row that fails is drawn as
    "This message could not be shown: <why>" and never takes the app down."""

    failure_text = "This message could not be shown"
    # The width or font the view lays rows out at changed: rows of rooms not shown that
    # were measured ahead are measured again (``gui/row_warmer.py``).
    sizing_changed = Signal()
    # Rows of a layout got an estimated height (``STEP_CHARS`` was spent): the view lays
    # its rows out again in a later turn, which measures the next of them.
    rows_estimated = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # The width, font key and font the view last laid rows out at (``sizing``).
        self._sizing: tuple[int, str, QFont] | None = None
        # a body's document, the part of the body it holds, why it holds it as plain
        # text (or ""), and whether because formatted it was wider than the row (``_doc``)
        self._docs: OrderedDict[tuple[str, str, str], tuple[QTextDocument, Shown, str, bool]] = (
            OrderedDict()
        )
        self._doc_chars = 0  # the characters of the documents in ``_docs``
        # Characters of bodies laid out (measured or shaped for a paint) since the start:
        # the work counted by the step's budget, the row warmer and the tests.
        self.laid_out = 0
        self._step_start: int | None = None  # ``laid_out`` when this step began
        self._exact = False  # measuring ahead: never an estimate
        self._estimated = False  # a row of this step was estimated
        self._heights: dict[tuple[str, str, str, int], BodyBox] = {}
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
        self._targets: _Targets | None = None  # for the timeline's ``names`` last asked
        self._mentioning: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._mentioning_targets: MentionTargets | None = None  # what it was told with
        # A body's mention spans by (event id, location, version, text), for the targets
        # they were found with: a paint or a hover never searches a body again (red team
        # rt67: two or three searches a paint of a hostile body held the window seconds).
        self._span_targets: MentionTargets | None = None
        self._span_cache: OrderedDict[tuple[str, str, str, str], list[tuple[int, int, str]]] = (
            OrderedDict()
        )

    # -- mentions ---------------------------------------------------------------------------

    def _mention_targets(self, index: Index) -> _Targets:
        """What "@" may name in this room (every member's id and display name, also of
        those who left: old mentions of them too), the user's own first: made once per
        ``names`` (immutable, ``Roster.names``: a new one is a new object) and user."""
        names = getattr(index.model(), "names", None)
        own = (self.own_user, *self.own_names)
        held = self._targets
        if held is None or held.names is not names or held.own != own:
            held = self._targets = _Targets(names, own)
        return held

    def _spans(self, index: Index, body: str) -> list[tuple[int, int, str]]:
        """Where the row's ``body`` mentions a member, and whom: searched once per row
        and text."""
        if "@" not in body:
            return []
        targets = self._mention_targets(index).plain()
        if _renamed(targets, self._span_targets):  # a new roster naming otherwise
            self._span_cache.clear()
        self._span_targets = targets
        key = (
            str(index.data(Roles.EventId)),
            str(index.data(Roles.Location)),
            str(index.data(Roles.Version) or ""),
            body,
        )
        spans = self._span_cache.get(key)
        if spans is None:
            spans = self._span_cache[key] = targets.spans(body)
            if len(self._span_cache) > CACHE:
                self._span_cache.popitem(last=False)
        else:
            self._span_cache.move_to_end(key)
        return spans

    def mentions_me(self, index: Index) -> bool:
        """Whether the row's message names the user (field or text): it gets an accent."""
        if not self.own_user or index.data(Roles.Kind) != "text":
            return False
        # by the room's targets, as the highlight reads them: "@Alice Cooper", another
        # member's name, is no mention of a user called "Alice" (red team rt81)
        targets = self._mention_targets(index).plain()
        if _renamed(targets, self._mentioning_targets):  # a new roster naming otherwise
            self._mentioning.clear()
        self._mentioning_targets = targets
        key = (str(index.data(Roles.EventId)), str(index.data(Roles.Location)))
        known = self._mentioning.get(key)
        if known is None:
            content = index.data(Roles.Content)
            known = isinstance(content, dict) and mentions_me(content, self.own_user, targets)
            self._mentioning[key] = known
            if len(self._mentioning) > 20 * CACHE:
                self._mentioning.popitem(last=False)
        return known

    def _html(self, index: Index, body: str) -> str:
        """The rich text of the body's shown part (``markdown.body_html``), with each
        ``@mention`` of a member highlighted (the user's own more strongly)."""
        html = body_html(body)[0]
        spans = self._spans(index, body)
        if not spans:
            return html
        targets = self._mention_targets(index)
        return _highlight(html, targets.escaped(), self.own_user, is_dark())

    # -- layout -----------------------------------------------------------------------------

    def _body_box(self, index: Index, width: int, font: QFont) -> BodyBox:
        """How the body is laid out at ``width`` (cached per width): drawn as plain text
        when it is a plain body that fits (``QPainter.drawText``: no document), else as its
        document; cut at ``max_body_h`` (``MAX_SHOWN_LINES`` lines of the body's font)
        with a line under it saying what is not shown (``BodyBox.note``)."""
        key = (*_body_key(index, font), width)
        box = self._heights.get(key)
        if box is not None:
            return box
        body = str(index.data(Roles.Body) or "")
        width = max(60, width)
        cap = max_body_h(font)
        box = None
        if is_plain(body) and not self._spans(index, body) and len(body) <= DRAW_TEXT_CHARS:
            part = shown_part(body)
            flags = int(Qt.TextFlag.TextWordWrap)
            self.laid_out += len(part.text)
            r = QFontMetrics(font).boundingRect(QRect(0, 0, width, 10**6), flags, part.text)
            # A word wider than the row is not broken by drawText (words after it would be
            # painted past the row's edge, unseen: red team rt86), nor is a body cut at
            # a line: those are laid out as a document, which does both.
            if r.width() <= width and r.height() <= cap:
                note = f"{part.note} {NOTE_SUFFIX}" if part.note else ""
                box = BodyBox(r.height(), r.height(), True, note)
        if box is None:
            doc, part, why = self._laid_out(index, _rich_width(width), font)
            shown, hidden = cut_at(doc, cap)
            said = [why] if why else []
            cut = cut_note(part.lines + hidden, part.chars)
            if cut:  # with how to have the whole message
                said += [cut, NOTE_SUFFIX]
            box = BodyBox(int(doc.size().height()), shown, False, " ".join(said))
        if box.note:  # under the lines shown, never among them
            box = box._replace(height=box.shown + _note_h(font, width, box.note))
        self._heights[key] = box
        if len(self._heights) > 20 * CACHE:
            self._heights.clear()
        return box

    def _body_height(self, index: Index, width: int, font: QFont) -> int:
        return self._body_box(index, width, font).height

    def _paint_body(
        self,
        painter: QPainter,
        index: Index,
        x: int,
        y: int,
        width: int,
        font: QFont,
        color: QColor,
        muted: QColor,
    ) -> int:
        box = self._body_box(index, width, font)
        width = max(60, width)
        # The body is drawn only inside its own area (a few pixels of slack for accents
        # above a first line): combining marks stacked on a letter would otherwise cover
        # the sender's name, id and badge above it (the row's own rectangle clips the
        # rest, ``SafeDelegate.paint``), and lines past the cut (``max_body_h``) are not
        # drawn over the note under them.
        with painter_state(painter):
            area = QRect(x, y, width, box.shown)
            below = 0 if box.note else BODY_SLACK
            painter.setClipRect(area.adjusted(-2, -BODY_SLACK, 2, below), CLIP)
            if box.plain:
                painter.setFont(font)
                painter.setPen(color)
                body = shown_part(str(index.data(Roles.Body) or "")).text
                self.laid_out += len(body)  # shaped again at each paint: short bodies only
                painter.drawText(area, int(Qt.TextFlag.TextWordWrap), body)
            else:
                doc = self._doc(index, _rich_width(width), font)
                painter.translate(x, y)
                ctx = QAbstractTextDocumentLayout.PaintContext()
                ctx.palette.setColor(ctx.palette.ColorRole.Text, color)
                doc.documentLayout().draw(painter, ctx)
        if box.note:  # what is not shown: under the lines shown, never in them
            with painter_state(painter):
                painter.setFont(_note_font(font))
                painter.setPen(muted)
                note = QRect(x, y + box.shown, width, box.height - box.shown)
                painter.drawText(note, int(Qt.TextFlag.TextWordWrap), box.note)
        return box.height

    def _doc(self, index: Index, width: int, font: QFont) -> QTextDocument:
        """The body's document laid out at ``width`` (``_laid_out``)."""
        return self._laid_out(index, width, font)[0]

    def _laid_out(self, index: Index, width: int, font: QFont) -> tuple[QTextDocument, Shown, str]:
        """The body's shown part laid out at ``width``, what of the body that is, and why
        it is shown as plain text ("" when it is not). One document per message, re-laid
        out when the width changes (parsing the HTML again at every width of a resize cost
        more than the layout); ``markdown.body_html`` bounds what one layout may cost. A
        formatted body wider than ``width`` (a table of many columns: its last ones would
        be painted past the row's edge, unseen) is laid out as plain text at that width
        (``WIDE_NOTE``), and formatted again at another width."""
        key = _body_key(index, font)
        held = self._docs.get(key)
        if held is not None:
            self._docs.move_to_end(key)
            doc, part, why, narrowed = held
            if doc.textWidth() == width:
                return doc, part, why
            if not narrowed:
                self.laid_out += len(part.text)
                doc.setTextWidth(width)
                if not _too_wide(doc, width):
                    return doc, part, why
            self._forget_doc(key)
        body = str(index.data(Roles.Body) or "")
        _, part, why = body_html(body)
        self.laid_out += len(part.text)
        doc = _new_doc(font, self._html(index, body), width)
        narrowed = _too_wide(doc, width)
        if narrowed:
            part, why = shown_part(body), WIDE_NOTE
            self.laid_out += len(part.text)
            doc = _new_doc(font, plain_html(part.text), width)
        self._docs[key] = (doc, part, why, narrowed)
        self._doc_chars += len(part.text)
        # bounded by count and by size; the newest is always kept (it is being used)
        while len(self._docs) > 1 and (
            len(self._docs) > CACHE or self._doc_chars > DOC_CACHE_CHARS
        ):
            self._forget_doc(next(iter(self._docs)))
        return doc, part, why

    def _forget_doc(self, key: tuple[str, str, str]) -> None:
        held = self._docs.pop(key, None)
        if held is not None:
            self._doc_chars -= len(held[1].text)

    def cached_doc_chars(self) -> int:
        """The characters of the laid-out bodies kept (at most ``DOC_CACHE_CHARS``, or
        one body past it)."""
        return self._doc_chars

    @staticmethod
    def _grouped(index: Index) -> bool:
        """Same sender as the row above, within a few minutes, same day: no header (the
        model's rule, ``TimelineModel._layout``)."""
        return bool(index.data(Roles.Layout)[4])

    def _image_h(self, index: Index) -> int:
        return image_box(index.data(Roles.Content))[1]

    def _shows_picture(self, index: Index) -> bool:
        """An image row is painted as its picture when a ``thumbnail_provider`` is set,
        else as a file card (in the room the picture leaves)."""
        return index.data(Roles.Kind) == "image" and self.thumbnail_provider is not None

    def attachment_rect(self, index: Index, rect: QRect, font: QFont) -> QRect | None:
        """Where the card or picture of a file or image row ``index`` is painted in
        ``rect`` (its row), None for any other row: what a click on the attachment
        means (``regions``, which painting uses too)."""
        return self.regions(index, rect, font).attachment

    def sizing(self) -> tuple[int, QFont] | None:
        """The width and font the view last laid rows out at (None before its first
        layout): a row measured at them (``measure_ahead``) is not measured again when
        the view lays it out."""
        return None if self._sizing is None else (self._sizing[0], self._sizing[2])

    def measure_ahead(self, index: Index) -> bool:
        """Measure the row ``index`` (of any timeline model) at the view's last width and
        font, as the view would lay it out: its size is then cached for a switch to its
        room. False when the view has laid nothing out yet."""
        if self._sizing is None:
            return False
        width, _, font = self._sizing
        option = QStyleOptionViewItem()
        option.rect = QRect(0, 0, width, 100)
        option.font = font
        self._exact = True
        try:
            self.sizeHint(option, index)
        finally:
            self._exact = False
        return True

    def ahead_cost(self, index: Index) -> int:
        """The characters ``measure_ahead`` would lay out for the row ``index`` (0 when its
        size or its body's height at the view's width is known): the row warmer bounds a
        turn by it."""
        if self._sizing is None:
            return 0
        width, font_key, font = self._sizing
        layout = index.data(Roles.Layout)
        known = self._sizes.get(layout[:2])
        if known is not None and known[0] == (
            layout,
            width,
            font_key,
            self._is_first_unread(index),
        ):
            return 0
        return self._body_cost(index, width, font)

    def _body_cost(self, index: Index, width: int, font: QFont) -> int:
        """What measuring the row's body at the row width ``width`` lays out, in
        characters: its shown part, or nothing when its height at that width is known."""
        if index.data(Roles.Kind) in ("member", "deleted", "file", "image"):
            return 0
        text_w = width - LEFT - RIGHT
        if (*_body_key(index, font), text_w) in self._heights:
            return 0
        return min(len(str(index.data(Roles.Body) or "")), MAX_SHOWN_CHARS)

    def new_step(self) -> None:
        """A new step of the GUI thread: ``STEP_CHARS`` may be laid out again."""
        self._step_start = None
        self._estimated = False

    def _over_budget(self, cost: int) -> bool:
        """Whether measuring a row costing ``cost`` would take this step past
        ``STEP_CHARS``; the first row a step measures always is measured."""
        if self._exact or cost == 0:
            return False
        if self._step_start is None:
            self._step_start = self.laid_out
            QTimer.singleShot(0, self.new_step)  # the step ends with this turn of the loop
        spent = self.laid_out - self._step_start
        return spent > 0 and spent + cost > STEP_CHARS

    def row_size(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        # Qt also asks a row or two without a width at each layout (an empty rectangle):
        # those are answered at the width rows are laid out at, not a fixed one — a row
        # measured at two widths was measured again at every layout, and rows measured
        # ahead would have been measured at a width no layout uses.
        width = option.rect.width()
        font_key = option.font.key()
        if width <= 0:
            width = self._sizing[0] if self._sizing is not None else 600
        elif self._sizing is None or self._sizing[:2] != (width, font_key):
            self._sizing = (width, font_key, QFont(option.font))
            self.sizing_changed.emit()
        layout = index.data(Roles.Layout)
        valid = (layout, width, font_key, self._is_first_unread(index))
        known = self._sizes.get(layout[:2])
        if known is not None and known[0] == valid:
            return QSize(known[1])
        if self._over_budget(self._body_cost(index, width, option.font)):
            # measured in a later step (the view lays its rows out again then)
            if not self._estimated:
                self._estimated = True
                self.rows_estimated.emit()
            return self._estimate(index, width, option.font, known)
        size = self._measure(option, index, width)
        self._sizes[layout[:2]] = (valid, QSize(size))
        if len(self._sizes) > 20 * CACHE:
            self._sizes.popitem(last=False)
        return size

    def _estimate(
        self, index: Index, width: int, font: QFont, known: tuple[Any, QSize] | None
    ) -> QSize:
        """A row's height guessed without laying its body out: the height it was measured
        at before (another width or font), else from its characters as if each took an
        average character's width, at most ``max_body_h``. Never cached as its size."""
        if known is not None:
            return QSize(width, known[1].height())
        body = str(index.data(Roles.Body) or "")
        fm = QFontMetrics(font)
        per_line = max(1, (width - LEFT - RIGHT) // max(1, fm.averageCharWidth()))
        chars = min(len(body), MAX_SHOWN_CHARS)
        lines = chars // per_line + 1 + body.count("\n", 0, chars)
        body_h = min(lines * fm.lineSpacing(), max_body_h(font))
        return QSize(width, 6 + DAY_H + HEADER_H + body_h + 2 * NOTE_H)

    def _is_first_unread(self, index: Index) -> bool:
        if not self.first_unread or index.data(Roles.EventId) != self.first_unread:
            return False
        # An id two devices signed is two rows: the line goes above one, the row the
        # "Jump to new messages" button goes to (``TimelineModel.locate``: the newest),
        # never also above a copy its signer dated anywhere in the history already read.
        model = index.model()
        relations = getattr(model, "relations", None)
        if relations is None or self.first_unread not in relations.repeated:
            return True
        locate = getattr(model, "locate", None)
        return locate is not None and locate(self.first_unread) == index.row()

    def _measure(self, option: QStyleOptionViewItem, index: Index, width: int) -> QSize:
        above = NEW_H if self._is_first_unread(index) else 0  # the "New messages" line
        h = 6 + above
        if index.data(Roles.DayBreak):
            h += DAY_H
        if index.data(Roles.Kind) == "member":
            return QSize(width, h + QFontMetrics(option.font).height() + 8)
        regions = self.regions(index, QRect(0, 0, width, 0), option.font)
        h = regions.bottom + (18 if index.data(Roles.Echo) else 0) + 4
        if not self._grouped(index):
            h = max(h, above + (DAY_H if index.data(Roles.DayBreak) else 0) + AVATAR + 14)
        return QSize(width, h)

    # -- relations: where each piece goes ---------------------------------------------------

    def regions(self, index: Index, rect: QRect, font: QFont) -> Regions:
        """Where a message's pieces go in ``rect`` (its row): the quote of a reply, the
        body (or a deletion's placeholder), the attachment, the "(edited)" marker and the
        reaction chips (wrapped over lines), the thread summary. Sizing, painting,
        tooltips and clicks all use this, so what is clicked is what was painted."""
        layout = index.data(Roles.Layout)
        width = rect.width() or 600
        left = rect.left() + LEFT
        text_w = width - LEFT - RIGHT
        y = rect.top() + 4
        if self._is_first_unread(index):
            y += NEW_H  # the "New messages" line
        if layout[3]:
            y += DAY_H
        if not layout[4]:
            y += HEADER_H
        kind = layout[2]
        quote = None
        if len(layout) > 8 and layout[8]:
            quote = QRect(left, y, text_w, QUOTE_H)
            y += QUOTE_H + 2
        body_y = y
        if kind == "deleted":
            y += _deleted_h(index, font)
        elif kind not in ("file", "image"):
            y += self._body_height(index, text_w, font)
        y += 2
        attachment = None
        if kind == "file" or (kind == "image" and not self._shows_picture(index)):
            top = body_y + ATTACHMENT_TOP
            attachment = QRect(left, top, min(FILE_CARD[0], text_w), FILE_CARD[1])
        elif kind == "image":
            w, h = image_box(index.data(Roles.Content))
            attachment = QRect(left, body_y + ATTACHMENT_TOP, w, h)
        if kind == "file":
            y += 64
        elif kind == "image":
            y += self._image_h(index) + 8 + CAPTION_H
        parts: list[tuple[str, Any, QRect]] = []
        edited = index.data(Roles.Edited) if len(layout) > 6 and layout[6] else None
        chips = index.data(Roles.Reactions) if len(layout) > 7 and layout[7][0] else ()
        if edited is not None or chips:
            small = _small(font)
            fm, chip_fm = QFontMetrics(small), QFontMetrics(font)
            items: list[tuple[str, Any, int]] = []
            if edited is not None:
                items.append(("edited", edited, fm.horizontalAdvance(EDITED) + 6))
            shown = chips if len(chips) <= MAX_CHIPS else chips[: MAX_CHIPS - 1]
            for chip in shown:
                items.append(("chip", chip, _chip_w(chip_fm, chip)))
            if len(chips) > len(shown):
                rest = chips[len(shown) :]
                items.append(("more", rest, chip_fm.horizontalAdvance(f"+{len(rest)}") + 16))
            x, line_y = left, y + 2
            for what, payload, w in items:
                w = min(w, text_w)
                if x > left and x + w > left + text_w:
                    x, line_y = left, line_y + CHIP_H + 4
                parts.append((what, payload, QRect(x, line_y, w, CHIP_H)))
                x += w + CHIP_GAP
            y = line_y + CHIP_H + 2
        thread = None
        if len(layout) > 9 and layout[9]:
            thread = QRect(left, y, min(text_w, 320), THREAD_H)
            y += THREAD_H + 2
        note = None
        lines = len(_note_lines(layout))
        if lines:
            # an id another device signed too, a message that arrived long after its date;
            # on a line of its own, an edit or a deletion of it that did
            note = QRect(left, y, text_w, NOTE_H * lines)
            y += NOTE_H * lines + 2
        return Regions(quote, body_y, tuple(parts), thread, y, note, attachment)

    def hit(self, index: Index, rect: QRect, font: QFont, pos: QPoint) -> tuple[str, Any] | None:
        """What a click at ``pos`` (view coordinates) on row ``rect`` lands on:
        ("chip", Chip), ("quote", parent event id), ("thread", root event id) or None."""
        if not index.isValid() or index.data(Roles.Kind) == "member" or index.data(Roles.Echo):
            return None
        regions = self.regions(index, rect, font)
        for what, payload, r in regions.parts:
            if what == "chip" and r.contains(pos):
                return ("chip", payload)
        if regions.quote is not None and regions.quote.contains(pos):
            quote = index.data(Roles.Quote)
            return ("quote", quote.parent_id) if quote is not None else None
        if regions.thread is not None and regions.thread.contains(pos):
            return ("thread", str(index.data(Roles.EventId)))
        return None

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
        flash = getattr(option.widget, "flash_id", None)
        if (  # the target of a jump (its own copy of an id two devices signed)
            flash
            and flash == index.data(Roles.EventId)
            and getattr(option.widget, "flash_location", "") in ("", index.data(Roles.Location))
        ):
            glow = QColor(ACCENT)
            glow.setAlpha(60)
            painter.fillRect(rect, glow)
        elif option.state & QStyle.StateFlag.State_MouseOver:
            hover = QColor(palette.color(palette.ColorRole.Highlight))
            hover.setAlpha(22)
            painter.fillRect(rect, hover)
        if option.state & QStyle.StateFlag.State_HasFocus:  # the keyboard's current row
            painter.fillRect(
                QRect(rect.left(), rect.top() + 2, 3, rect.height() - 4), QColor(ACCENT)
            )
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
                earlier=_not_final(index),
            )
        regions = self.regions(index, rect, option.font)
        if regions.quote is not None:
            self._paint_quote(painter, option, index.data(Roles.Quote), regions.quote, muted)
        y = regions.body_y
        text_w = rect.width() - LEFT - RIGHT
        kind = index.data(Roles.Kind)
        if kind == "deleted":
            y += self._paint_deleted(painter, option, index, rect.left() + LEFT, y, text_w, muted)
        elif kind not in ("file", "image"):  # the card names the file safely
            y += self._paint_body(
                painter, index, rect.left() + LEFT, y, text_w, option.font, text_color, muted
            )
        if regions.attachment is not None:
            self._paint_attachment(painter, option, index, rect, regions.attachment, muted)
        self._paint_parts(painter, option, regions, muted)
        focus = getattr(option.widget, "chip_focus", None)
        if focus and focus[0] == index.data(Roles.EventId):
            chips = [r for what, _, r in regions.parts if what == "chip"]
            if chips:
                painter.setPen(QPen(palette.color(palette.ColorRole.Highlight), 2))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                ring = chips[min(focus[1], len(chips) - 1)].adjusted(-2, -2, 1, 1)
                painter.drawRoundedRect(ring, CHIP_H // 2 + 2, CHIP_H // 2 + 2)
        if regions.thread is not None:
            self._paint_thread(painter, option, index.data(Roles.Thread), regions.thread)
        if regions.note is not None:
            small = _small(option.font)
            painter.setFont(small)
            painter.setPen(QColor(TRUST_COLORS["key-changed"]))
            sfm = QFontMetrics(small)
            for i, line in enumerate(note_texts(index)):
                box = QRect(
                    regions.note.left(),
                    regions.note.top() + i * NOTE_H,
                    regions.note.width(),
                    NOTE_H,
                )
                note = sfm.elidedText(line, Qt.TextElideMode.ElideRight, box.width())
                painter.drawText(box, int(Qt.AlignmentFlag.AlignVCenter), note)
        echo = index.data(Roles.Echo)
        if echo:
            y = regions.bottom
            small = QFont(option.font)
            small.setPointSizeF(max(7.0, option.font.pointSizeF() * 0.85))
            painter.setFont(small)
            painter.setPen(QColor(TRUST_COLORS["invalid"]) if echo == "failed" else muted)
            error = index.data(Roles.EchoError)
            if echo == "waiting":  # kept; the reason says it will be tried again
                reason = one_line(error, 600)
                label = reason[:1].upper() + reason[1:] if reason else "Not sent yet"
            else:
                label = "Sending…" if echo == "sending" else "Not sent — click to retry"
                if error:
                    label += f" ({one_line(error, 600)})"
            # Cut in the middle (a long error names a path, and its end says what is
            # wrong); the whole of it is in the row's tooltip (``tooltip_html``).
            width = max(40, rect.right() - rect.left() - LEFT - 8)
            label = QFontMetrics(small).elidedText(label, Qt.TextElideMode.ElideMiddle, width)
            painter.drawText(rect.left() + LEFT, y + 13, label)

    def _paint_quote(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        quote: Quote | None,
        r: QRect,
        muted: QColor,
    ) -> None:
        """The message replied to (``quote_layout``): pieces drawn apart, so no name can
        reorder the text around it."""
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(ACCENT))
        painter.drawRoundedRect(QRect(r.left(), r.top() + 3, 3, r.height() - 6), 1, 1)
        small = _small(option.font)
        flags = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for piece in self.quote_layout(quote, r, option.font):
            font = QFont(small)
            font.setBold(piece.bold)
            font.setItalic(piece.italic)
            painter.setFont(font)
            painter.setPen(QColor(piece.color) if piece.color else muted)
            ltr = int(Qt.TextFlag.TextForceLeftToRight) if piece.what == "id" else 0
            painter.drawText(piece.rect, flags | ltr, piece.text)

    @staticmethod
    def quote_layout(quote: Quote | None, r: QRect, font: QFont) -> tuple[QuotePiece, ...]:
        """What a reply's quote says and where: its sender as a row's header names them
        (the cleaned display name, the real id, the look-alike mark in the warning
        colour), the parent's trust when it is not verified (its symbol and in words),
        then the first line of its latest text; or why it is not shown. The id keeps
        room before the name, the text whatever the sender leaves."""
        small = _small(font)
        bold, italic = QFont(small), QFont(small)
        bold.setBold(True)
        italic.setItalic(True)
        fm, bfm, ifm = QFontMetrics(small), QFontMetrics(bold), QFontMetrics(italic)
        out: list[QuotePiece] = []
        x, right = r.left() + 10, r.right()

        def put(what: str, text: str, width: int, color: str = "", **style: bool) -> None:
            nonlocal x
            out.append(QuotePiece(what, text, QRect(x, r.top(), width, r.height()), color, **style))
            x += width

        put("arrow", "↩ ", fm.horizontalAdvance("↩ "))
        status = quote.status if quote is not None else "missing"
        if quote is None or (status != "ok" and not (status == "deleted" and quote.sender_id)):
            text = {
                "deleted": "deleted message",
                "elsewhere": "a message of another room (not shown)",
                "ambiguous": "the quoted message is ambiguous (two devices used its id)",
            }.get(status, "message not loaded yet")
            put("status", text, max(0, right - x), italic=True)
            return tuple(out)
        trust = "verified" if status == "deleted" else quote.trust
        color = TRUST_COLORS.get(trust, TRUST_COLORS["invalid"])
        if status == "deleted":
            put(
                "status",
                "deleted message of ",
                ifm.horizontalAdvance("deleted message of "),
                italic=True,
            )
        elif trust != "verified":  # the parent's mark, before its sender's name
            symbol = f"{TRUST_SYMBOLS.get(trust, TRUST_SYMBOLS['invalid'])} "
            put("trust-symbol", symbol, bfm.horizontalAdvance(symbol), color, bold=True)
        sender = quote.sender_id
        name = display_name_safe(quote.name) if quote.name and quote.name != sender else ""
        ident = shown_id(sender)
        word = "" if trust == "verified" else f"· {TRUST_LABELS.get(trust, trust).lower()}"
        mark_w = fm.horizontalAdvance(WARNING_MARK) + 6 if quote.warning else 0
        word_w = fm.horizontalAdvance(word) + 8 if word else 0
        edited = EDITED if status == "ok" and quote.edited else ""
        edited_w = ifm.horizontalAdvance(edited) + 8 if edited else 0
        avail = max(0, right - x - mark_w - word_w - edited_w)
        id_fm = fm if name else bfm
        id_w = min(id_fm.horizontalAdvance(ident) + 1, avail * (3 if name else 5) // 10)
        ident = id_fm.elidedText(ident, Qt.TextElideMode.ElideMiddle, id_w)
        if name:
            share = avail // 4 if status == "ok" else avail * 2 // 5  # no text to leave room for
            name = bfm.elidedText(name, Qt.TextElideMode.ElideRight, share)
            put("name", name, bfm.horizontalAdvance(name) + 1, ACCENT, bold=True)
            x += GAP
        put("id", ident, id_fm.horizontalAdvance(ident) + 1, "" if name else ACCENT, bold=not name)
        if quote.warning:
            x += 4
            put("mark", WARNING_MARK, mark_w - 4, TRUST_COLORS["key-changed"])
        if word:
            x += 6
            put("trust", word, word_w - 6, color)
        if edited:  # the text quoted is the latest: maybe not the one answered
            x += 8
            put("edited", edited, edited_w - 8, italic=True)
        if status == "ok":
            x += 8
            rest = max(0, right - x)
            put("text", fm.elidedText(quote.text, elide_mode(quote.text), rest), rest)
        return tuple(out)

    def _paint_deleted(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: Index,
        x: int,
        y: int,
        width: int,
        muted: QColor,
    ) -> int:
        """The placeholder of a deleted message: never its text; who took it back and
        when, the reason if any, and the deletion's trust state unless verified."""
        deleted: Deleted | None = index.data(Roles.Deleted)
        italic = QFont(option.font)
        italic.setItalic(True)
        fm = QFontMetrics(italic)
        line_h = fm.height() + 2
        flags = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        painter.setFont(italic)
        painter.setPen(muted)
        label = "🗑 Message deleted"
        w = fm.horizontalAdvance(label) + 1
        painter.drawText(QRect(x, y, min(w, width), line_h), flags, label)
        if deleted is None:
            return line_h
        small = _small(option.font)
        sfm = QFontMetrics(small)
        painter.setFont(small)
        cx = x + w + 8
        if deleted.state != "verified":
            mark = f"⚠ deletion {TRUST_LABELS.get(deleted.state, deleted.state).lower()}"
            mw = sfm.horizontalAdvance(mark) + 1
            painter.setPen(QColor(TRUST_COLORS.get(deleted.state, TRUST_COLORS["invalid"])))
            painter.drawText(QRect(cx, y, min(mw, max(0, x + width - cx)), line_h), flags, mark)
            cx += mw + 8
        painter.setPen(muted)
        when = f"· {timestamps.clock(deleted.timestamp_ms)}"
        painter.drawText(QRect(cx, y, max(0, x + width - cx), line_h), flags, when)
        if deleted.reason:
            reason = sfm.elidedText(
                f"Reason: {one_line(deleted.reason, 300)}", Qt.TextElideMode.ElideRight, width
            )
            painter.drawText(QRect(x, y + line_h, width, line_h), flags, reason)
        return _deleted_h(index, option.font)

    def _paint_parts(
        self, painter: QPainter, option: QStyleOptionViewItem, regions: Regions, muted: QColor
    ) -> None:
        """The "(edited)" marker and the reaction chips: the count after each text, this
        user's own highlighted, one with an unverified reactor outlined in the warning
        colour with a "!" badge, one with a reactor verified only on trial while older
        history loads with a ring badge (as such a row's verdict is drawn), one whose text
        looks like another chip's (written differently: "Yes", "Үes") with the look-alike
        mark ⚠ after its count."""
        small = _small(option.font)
        fm = QFontMetrics(option.font)  # reactions are read at the text's size
        palette = option.palette
        text = palette.color(palette.ColorRole.Text)
        flags = int(Qt.AlignmentFlag.AlignCenter)
        for what, payload, r in regions.parts:
            painter.setFont(small)
            if what == "edited":
                edited: Edited = payload
                painter.setPen(
                    muted
                    if edited.state == "verified"
                    else QColor(TRUST_COLORS.get(edited.state, TRUST_COLORS["invalid"]))
                )
                painter.drawText(r, int(Qt.AlignmentFlag.AlignVCenter), EDITED)
                continue
            fill = QColor(palette.color(palette.ColorRole.AlternateBase))
            border = QColor(muted)
            border.setAlpha(90)
            if what == "chip" and payload.mine:
                fill = QColor(ACCENT)
                fill.setAlpha(55)
                border = QColor(ACCENT)
            warn = what == "chip" and not payload.all_verified
            pen = QPen(QColor(TRUST_COLORS["key-changed"]) if warn else border, 1.5 if warn else 1)
            if warn:
                pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.setBrush(fill)
            painter.drawRoundedRect(r.adjusted(0, 0, -1, -1), CHIP_H // 2, CHIP_H // 2)
            painter.setPen(text)
            painter.setFont(option.font)
            if what == "more":
                painter.drawText(r, flags, f"+{len(payload)}")
                continue
            chip: Chip = payload
            key = fm.elidedText(chip.key, Qt.TextElideMode.ElideRight, CHIP_KEY_W)
            count = str(chip.number)
            count_w = fm.horizontalAdvance(count)
            badge = _badge_w(chip)
            alike_w = _alike_w(fm, chip)
            inner = r.adjusted(8, 0, -8 - badge - alike_w, 0)
            key_r = QRect(inner.left(), r.top(), max(0, inner.width() - count_w - 5), r.height())
            painter.drawText(key_r, int(Qt.AlignmentFlag.AlignVCenter), key)
            ltr = int(Qt.AlignmentFlag.AlignVCenter | Qt.TextFlag.TextForceLeftToRight)
            painter.drawText(
                QRect(inner.right() - count_w, r.top(), count_w + 1, r.height()), ltr, count
            )
            if alike_w:
                painter.setPen(QColor(TRUST_COLORS["key-changed"]))
                mark_r = QRect(inner.right() + 4, r.top(), alike_w - 3, r.height())
                painter.drawText(mark_r, ltr, WARNING_MARK)
            dot = QRect(r.right() - 8 - 12, r.top() + (CHIP_H - 12) // 2, 12, 12)
            if not warn and not chip.final:  # verified so far: not final, a ring
                self._paint_badge(painter, dot, "verified", earlier=True)
            if warn:
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(QColor(TRUST_COLORS["key-changed"]))
                painter.drawEllipse(dot)
                tiny = QFont(small)
                tiny.setPixelSize(9)
                tiny.setBold(True)
                painter.setFont(tiny)
                painter.setPen(QColor("white"))
                painter.drawText(dot, flags, "!")

    def _paint_thread(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        thread: ThreadSummary | None,
        r: QRect,
    ) -> None:
        if thread is None:
            return
        small = _small(option.font)
        small.setBold(True)
        painter.setFont(small)
        painter.setPen(QColor(ACCENT))
        painter.drawText(r, int(Qt.AlignmentFlag.AlignVCenter), thread_label(thread))

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
        self._paint_badge(painter, head.badge_rect, _badge(index), earlier=_not_final(index))

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
        self._paint_badge(painter, badge, _badge(index), earlier=_not_final(index))
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
        """``earlier``: the verdict is not final (``_not_final``); it is drawn as a ring,
        so it never looks like a final verdict of this session's."""
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
        box: QRect,
        muted: QColor,
    ) -> None:
        """The card or picture of a file or image row, in ``box`` (``Regions.attachment``:
        where clicks on it land too)."""
        content = index.data(Roles.Content) or {}
        info = _info(content)
        if self._shows_picture(index) and self.thumbnail_provider is not None:
            pix = self.thumbnail_provider(index)
            if pix is not None and not pix.isNull():
                painter.drawPixmap(box.topLeft(), pix)  # as large as the box (image_box)
                self._paint_caption(painter, index, rect, box.bottom() + 1 + 2, muted)
                return
            box = QRect(box.topLeft(), QSize(min(FILE_CARD[0], box.width()), FILE_CARD[1]))
        painter.setPen(muted)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(box, 6, 6)
        name = _file_name(index, content)  # as its menu, Open and Save name it
        size = info.get("size")
        painter.setPen(option.palette.color(option.palette.ColorRole.Text))
        name_box = box.adjusted(44, 6, -8, -26)
        # cut in the middle: the end of a long name ("….pdf.scr") is what the file is
        name = painter.fontMetrics().elidedText(
            name, Qt.TextElideMode.ElideMiddle, name_box.width()
        )
        painter.drawText(name_box, Qt.AlignmentFlag.AlignLeft, name)
        painter.setPen(muted)
        detail = _human_size(size) if isinstance(size, int) else ""
        painter.drawText(box.adjusted(44, 26, -8, -6), Qt.AlignmentFlag.AlignLeft, detail)
        painter.drawText(box.adjusted(10, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, "📄")

    def _paint_caption(
        self, painter: QPainter, index: Index, rect: QRect, y: int, muted: QColor
    ) -> None:
        """An image's name and size under its picture, as a file card names the file:
        the picture is its sender's to choose, the name is what Save and Open use."""
        content = index.data(Roles.Content) or {}
        size = _info(content).get("size")
        detail = f"  ·  {_human_size(size)}" if isinstance(size, int) else ""
        small = _small(painter.font())
        fm = QFontMetrics(small)
        box = QRect(rect.left() + LEFT, y, min(IMAGE_CAPTION_W, rect.width() - LEFT - RIGHT), 16)
        # cut in the middle: the end of a long name is what the file is
        name = fm.elidedText(
            _file_name(index, content),
            Qt.TextElideMode.ElideMiddle,
            max(0, box.width() - fm.horizontalAdvance(detail)),
        )
        with painter_state(painter):
            painter.setFont(small)
            painter.setPen(muted)
            align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
            painter.drawText(box, align, name + detail)

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
        text = self.part_tooltip(index, option.rect, option.font, event.pos())
        QToolTip.showText(event.globalPos() + QPoint(8, 8), text or tooltip_html(index), view)
        return True

    def part_tooltip(self, index: Index, rect: QRect, font: QFont, pos: QPoint) -> str | None:
        """The tooltip of a relation's piece under ``pos``: who reacted (display name,
        real id and trust state each), when a message was edited, what a quote is."""
        if index.data(Roles.Kind) == "member" or index.data(Roles.Echo):
            return None
        regions = self.regions(index, rect, font)
        for what, payload, r in regions.parts:
            if not r.contains(pos):
                continue
            if what == "edited":
                late = index.data(Roles.LateChange)
                warn = TRUST_COLORS["key-changed"]
                return edited_tooltip(payload) + (
                    f"<br><span style='color:{warn}'>{WARNING_MARK} {html_escape(late)}</span>"
                    if late
                    else ""
                )
            if what == "more":
                return more_tooltip(payload)
            return chip_tooltip(payload)
        if regions.quote is not None and regions.quote.contains(pos):
            return quote_tooltip(index.data(Roles.Quote))
        if regions.thread is not None and regions.thread.contains(pos):
            return "Open this thread"
        if regions.note is not None and regions.note.contains(pos):  # whole, never cut
            return "<br>".join(html_escape(line) for line in note_texts(index))
        return None


def _note_lines(layout: tuple[Any, ...]) -> list[bool]:
    """Which note lines a row's ``Roles.Layout`` asks for (``note_texts``)."""
    first = (len(layout) > 10 and bool(layout[10])) or (len(layout) > 11 and bool(layout[11]))
    second = len(layout) > 12 and bool(layout[12])
    return [x for x in (first, second) if x]


def note_texts(index: Index) -> list[str]:
    """The lines under a row, in the warning colour: that its id was signed by another
    device too and that it arrived long after its date (one line), that its latest edit
    or its deletion did (``Roles.LateChange``, a line of its own)."""
    late = index.data(Roles.Late)
    said = [REPEATED] if index.data(Roles.Repeated) else []
    said += [late] if late else []
    change = index.data(Roles.LateChange)
    return [x for x in (" · ".join(said), change or "") if x]


def elide_mode(text: str) -> Qt.TextElideMode:
    """A file's name ("📎 name", as every view says it) is cut in the middle, so its
    extension always shows; any other text at its end."""
    if text.startswith(ATTACHMENT_MARK):
        return Qt.TextElideMode.ElideMiddle
    return Qt.TextElideMode.ElideRight


def tooltip_html(index: Index) -> str:
    """The trust badge's tooltip: what was checked, who sent it (the real id, and why it
    may imitate another), where it was read. Every piece from storage is escaped."""
    trust = str(index.data(Roles.Trust))
    # a local echo is not checked yet: "Sending"
    label = trust_label(trust, signed=bool(index.data(Roles.SenderKey))) if trust else "Sending"
    if index.data(Roles.Confirmed):
        label += " · device confirmed by you"
    if index.data(Roles.Cached):  # not this session's verdict: the audit replaces it
        label += f" · {EARLIER_CHECK}"
    elif index.data(Roles.Provisional):
        label += f" · {ON_TRIAL}"
    sender = shown_id(str(index.data(Roles.Sender) or ""))
    warning = index.data(Roles.SenderWarning)
    warn = (
        f"<br><span style='color:{TRUST_COLORS['key-changed']}'>{WARNING_MARK} "
        f"{html_escape(warning)}</span>"
        if warning
        else ""
    )
    reason = one_line(index.data(Roles.TrustReason), 600)
    echo = index.data(Roles.Echo)
    error = index.data(Roles.EchoError)
    said = one_line(error, 600)
    unsent = (
        f"<br><span style='color:{TRUST_COLORS['invalid']}'>"
        + (
            html_escape(said[:1].upper() + said[1:])  # "waiting": the whole sentence
            if echo == "waiting"
            else f"{'Not sent' if echo == 'failed' else 'Not sent yet'}: {html_escape(said)}"
        )
        + "</span>"
        + (f"<br>{REFUSED_RETRY_NOTE}" if echo == "failed" else "")
        if echo and error
        else ""
    )
    return (
        f"<b>{html_escape(label)}</b><br>{html_escape(reason)}{unsent}"
        f"<br>Sender: {html_escape(sender)}{warn}"
        f"<br><small>{html_escape(shown_id(str(index.data(Roles.Location) or '')))}</small>"
    )


# the outbox tries a refused message again by itself (``outbox.REFUSED_RETRY``)
REFUSED_RETRY_NOTE = (
    "Tried again by itself after 10 minutes, then less often, at least hourly: it goes "
    "out once what refused it is fixed. Click to try now."
)


def quote_tooltip(quote: Quote | None) -> str:
    """A quote's tooltip: the parent's trust, and its sender as ``tooltip_html`` names a
    row's (the real id, why it may imitate another). Every piece from storage escaped."""
    trust = quote.trust if quote is not None and quote.status == "ok" else "verified"
    if trust != "verified":
        label = html_escape(TRUST_LABELS.get(trust, trust))
        head = f"Replying to a message that is <b>{label}</b>: click to show it"
    else:
        head = "Replying to an earlier message: click to show it"
    if quote is None or not quote.sender_id:
        return head
    sender = quote.sender_id
    name = display_name_safe(quote.name) if quote.name and quote.name != sender else ""
    ident = html_escape(shown_id(sender))
    lines = [head, f"Sender: {html_escape(name)} ({ident})" if name else f"Sender: {ident}"]
    if quote.warning:
        lines.append(
            f"<span style='color:{TRUST_COLORS['key-changed']}'>{WARNING_MARK} "
            f"{html_escape(quote.warning)}</span>"
        )
    if quote.status == "ok" and quote.edited:
        lines.append(
            "The message was edited: its latest text is quoted, which may not be the one "
            "this reply answered (click to show it and its earlier versions)"
        )
    return "<br>".join(lines)


def chip_tooltip(chip: Chip) -> str:
    """Who reacted so: each by display name and real id, with their trust state ("Not
    final yet" for one verified only on trial while older history loads, as the thread
    panel words such a root), and a look-alike id marked as a row's header marks it (why,
    on the line below)."""
    lines = [f"<b>{html_escape(chip.key)}</b> · {chip.number}"]
    if chip.lookalike:  # the code points, as the command line prints them
        lines.append(
            f"<span style='color:{TRUST_COLORS['key-changed']}'>{WARNING_MARK} {LOOKALIKE_CHIP}"
            "</span>"
        )
    spelled = spelled_key(chip.key, lookalike=chip.lookalike)
    if spelled:
        lines.append(f"<small>written as {spelled}</small>")
    warn = TRUST_COLORS["key-changed"]
    for name, sender, state, warning, final in chip.who[:50]:
        clean = display_name_safe(name) if name and name != sender else ""
        who = (
            f"{html_escape(clean)} ({html_escape(shown_id(sender))})"
            if clean
            else html_escape(shown_id(sender))
        )
        if final:
            label = TRUST_LABELS.get(state, state)
            color = TRUST_COLORS.get(state, TRUST_COLORS["invalid"])
        else:
            label, color = NOT_FINAL, TRUST_COLORS["unverified"]
        if warning:
            who += f" <span style='color:{warn}'>{WARNING_MARK}</span>"
        lines.append(f"{who} — <span style='color:{color}'>{html_escape(label)}</span>")
        if warning:
            lines.append(f"<small style='color:{warn}'>{html_escape(warning)}</small>")
    if len(chip.who) > 50:
        lines.append(f"and {len(chip.who) - 50:,} more")
    if not chip.all_verified:
        lines.append("⚠ not every reaction here is verified")
    if not chip.final:
        lines.append(f"{NOT_FINAL}: {CHIP_ON_TRIAL}")
    return "<br>".join(lines)


# What a chip's tooltip says of a reactor verified only on trial (``Chip.final``).
CHIP_ON_TRIAL = (
    "older history is still being read, and may show that a key here is not its "
    "sender's. Until then, such a reaction under your own id is not counted as yours"
)


LOOKALIKE_CHIP = "looks like another reaction here, written differently"


def spelled_key(key: str, *, lookalike: bool = False) -> str:
    """The code points of a reaction text that looks like another chip's (``lookalike``:
    "Yes" and "Үes", "👍" and "👍" + U+FE0E) or holds invisible parts (variation
    selectors, joiners, combining marks), else "": chips that look alike but count apart
    are told apart in their tooltips."""
    if not lookalike and not any(unicodedata.category(ch) in UNSEEN_CATEGORIES for ch in key):
        return ""
    return " ".join(f"U+{ord(ch):04X}" for ch in key)


MORE_IN_TOOLTIP = 40  # chips the "+n" chip's tooltip lists, one line each


def more_tooltip(chips: Sequence[Chip]) -> str:
    """The "+n" chip's tooltip: the first chips it stands for, one line each (text,
    count, a mark when not every reaction is verified), and how many more. A member can
    write tens of thousands of distinct reaction texts: each chip's full tooltip, all of
    them, made a 5 MB rich text that took Qt seconds to lay out under the mouse."""
    lines = []
    for chip in chips[:MORE_IN_TOOLTIP]:
        mark = "" if chip.all_verified else " ⚠ not all verified"
        if not chip.final:
            mark += f" · {NOT_FINAL.lower()}"
        if chip.lookalike:
            mark += f" {WARNING_MARK} {LOOKALIKE_CHIP}: {spelled_key(chip.key, lookalike=True)}"
        lines.append(f"<b>{html_escape(chip.key)}</b> · {chip.number}{mark}")
    rest = len(chips) - MORE_IN_TOOLTIP
    if rest > 0:
        lines.append(f"and {rest:,} more reaction{'s' if rest > 1 else ''}")
    return "<br>".join(lines)


def edited_tooltip(edited: Edited) -> str:
    times = "once" if edited.times == 1 else f"{edited.times} times"
    label = TRUST_LABELS.get(edited.state, edited.state)
    return (
        f"Edited {times}, last at {html_escape(timestamps.full(edited.timestamp_ms))}"
        f"<br>The latest edit is {html_escape(label.lower())}"
    )


def thread_label(thread: ThreadSummary) -> str:
    label = f"💬 {thread.replies:,} repl{'y' if thread.replies == 1 else 'ies'}"
    if thread.unread:
        label += f" · {thread.unread:,} unread"
    return label


@dataclass(frozen=True, slots=True)
class Regions:
    """Where a message's pieces are (``MessageDelegate.regions``)."""

    quote: QRect | None
    body_y: int
    # ("edited", Edited, rect), ("chip", Chip, rect), ("more", (Chip, ...), rect)
    parts: tuple[tuple[str, Any, QRect], ...]
    thread: QRect | None
    bottom: int
    # the line that says the row's id was signed by another device too (``REPEATED``)
    note: QRect | None = None
    # where a file's card or an image's picture is painted, and clicked
    attachment: QRect | None = None


def _file_name(index: Index, content: Any) -> str:
    """The row's file name made safe, as the model keeps it (``Roles.FileName``: once per
    row, red team rt69), else worked out from its content."""
    name = index.data(Roles.FileName)
    return name if isinstance(name, str) else announced_name(content)


def image_box(content: Any) -> tuple[int, int]:
    """The (width, height) an image row's picture takes: its message's ``info.w`` and
    ``info.h`` as sent, scaled down into ``IMAGE_BOX`` (never under 40 pixels high), or
    ``IMAGE_BOX[0]`` × ``NO_SIZE_HEIGHT`` without them. The row's layout, its thumbnail
    (``attachments.display_size``) and its click area all take this one size."""
    info = _info(content)
    w, h = info.get("w"), info.get("h")
    if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
        scale = min(1.0, IMAGE_BOX[0] / w, IMAGE_BOX[1] / h)
        return max(1, int(w * scale)), max(40, int(h * scale))
    return IMAGE_BOX[0], NO_SIZE_HEIGHT


def _small(font: QFont) -> QFont:
    small = QFont(font)
    small.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
    return small


def _chip_w(fm: QFontMetrics, chip: Chip) -> int:
    key = fm.elidedText(chip.key, Qt.TextElideMode.ElideRight, CHIP_KEY_W)
    count_w = fm.horizontalAdvance(str(chip.number))
    return fm.horizontalAdvance(key) + count_w + 21 + _badge_w(chip) + _alike_w(fm, chip)


def _badge_w(chip: Chip) -> int:
    """The room a chip's badge takes: "!" (a reactor not verified) or a ring (one only
    verified on trial while older history loads); none for a chip all verified, finally."""
    return 14 if not chip.all_verified or not chip.final else 0


def _alike_w(fm: QFontMetrics, chip: Chip) -> int:
    """The room the look-alike mark takes after a chip's count (none when not marked)."""
    return fm.horizontalAdvance(WARNING_MARK) + 4 if chip.lookalike else 0


def _deleted_h(index: Index, font: QFont) -> int:
    italic = QFont(font)
    italic.setItalic(True)
    line_h = QFontMetrics(italic).height() + 2
    deleted = index.data(Roles.Deleted)
    return line_h * (2 if deleted is not None and deleted.reason else 1)


@dataclass(frozen=True, slots=True)
class QuotePiece:
    """One piece of a reply's quote (``MessageDelegate.quote_layout``)."""

    what: str  # "arrow", "status", "trust-symbol", "name", "id", "mark", "trust", "text"
    text: str
    rect: QRect
    color: str = ""  # "": the muted text colour
    bold: bool = False
    italic: bool = False


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


WIDE_NOTE = "Shown as plain text: formatted, it is wider than the window."
NOTE_SUFFIX = "Copy text copies the whole message."


class BodyBox(NamedTuple):
    """How a row's body is laid out at one width (``MessageDelegate._body_box``)."""

    height: int  # the body's area: the lines shown and the note under them
    shown: int  # of it, the lines shown: nothing of the body is drawn below
    plain: bool  # drawn as plain text (``drawText``), not as its document
    note: str  # what of the body is not shown ("" when it is all shown)


def max_body_h(font: QFont) -> int:
    """How tall a row's body may be laid out: ``MAX_SHOWN_LINES`` lines of its font, in
    a plain body or a formatted one alike (one rule: a row must not be a screen-sized
    blank); the lines past it are cut and a note under them says how many."""
    return MAX_SHOWN_LINES * QFontMetrics(font).lineSpacing()


def cut_at(doc: QTextDocument, height: int) -> tuple[int, int]:
    """Where ``doc`` is cut to be at most ``height`` tall: (the height shown, the lines
    laid out past it). Cut under the last line that ends within ``height`` (lines side
    by side in a table are each a line)."""
    total = int(doc.size().height())
    if total <= height:
        return total, 0
    layout = doc.documentLayout()
    shown, hidden = 0, 0
    block = doc.begin()
    while block.isValid():
        top = layout.blockBoundingRect(block).top()
        lines = block.layout()
        for i in range(lines.lineCount()):
            line = lines.lineAt(i)
            bottom = top + line.y() + line.height()
            if bottom <= height:
                shown = max(shown, int(bottom + 0.999))
            else:
                hidden += 1
        block = block.next()
    return min(shown, height), hidden


def _note_font(font: QFont) -> QFont:
    note = QFont(font)
    note.setItalic(True)
    return note


def _note_h(font: QFont, width: int, note: str) -> int:
    flags = int(Qt.TextFlag.TextWordWrap)
    return (
        QFontMetrics(_note_font(font)).boundingRect(QRect(0, 0, width, 10**6), flags, note).height()
        + 2
    )


def _new_doc(font: QFont, html: str, width: int) -> QTextDocument:
    doc = QTextDocument()
    doc.setDefaultFont(font)
    doc.setDocumentMargin(0)
    doc.setDefaultStyleSheet(BODY_STYLE)
    doc.setHtml(html)
    doc.setTextWidth(width)
    return doc


def _too_wide(doc: QTextDocument, width: int) -> bool:
    """Whether ``doc``, laid out at ``width``, is wider: the rest of its lines would be
    painted past the row's edge, unseen."""
    return doc.size().width() > width + 2  # the clip's slack (``_paint_body``)


def _rich_width(width: int) -> int:
    """Formatted bodies are laid out at widths in steps of RICH_STEP pixels (never wider
    than the row): dragging the window's edge re-lays them out every few steps, not at
    every pixel."""
    return max(60, width - width % RICH_STEP)


def _not_final(index: Index) -> bool:
    """A verdict drawn as a ring: the index's, from an earlier check (the audit replaces
    it), or one taken on trial while older history loads (``Roles.Provisional``)."""
    return bool(index.data(Roles.Cached) or index.data(Roles.Provisional))


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
    tint = QColor(MENTION_COLOR)
    tint.setAlpha(34)
    painter.fillRect(rect, tint)
    painter.fillRect(QRect(rect.left(), rect.top(), 3, rect.height()), QColor(MENTION_COLOR))


def _highlight(html: str, targets: MentionTargets, own_user: str, dark: bool) -> str:
    """``html`` (rendered, escaped) with every ``@<member>`` in its text — never inside a
    tag or an attribute — wrapped in a highlighting span; ``targets`` are the members'
    ids and names escaped as the text is (``_Targets.escaped``), the user's own
    (``own_user``'s) more strongly."""
    color = "#8fb8ff" if dark else "#1f5fbf"
    own_bg = "#3a4a6a" if dark else "#dce8fb"
    out: list[str] = []
    parts = re.split(r"(<[^>]*>)", html)
    # the text between tags searched in one go: one bound on the work for the whole body
    texts = [p for p in parts if not p.startswith("<")]
    found = iter(targets.spans_each(texts))
    for part in parts:
        if part.startswith("<"):
            out.append(part)
            continue
        last = 0
        for start, end, whom in next(found):
            out.append(part[last:start])
            text = part[start:end]
            if own_user and whom == own_user:
                style = f"background-color:{own_bg}; color:{color}; font-weight:bold"
            else:
                style = f"color:{color}; font-weight:bold"
            out.append(f'<span style="{style}">{text}</span>')
            last = end
        out.append(part[last:])
    return "".join(out)


class _Targets:
    """A room's mention targets for one ``Names`` and user (``MentionTargets``, the
    user's own id and names first), made when first asked: plain for bodies, escaped for
    their rich text (each name escaped once, not for every message)."""

    def __init__(self, names: Any, own: tuple[str, ...]) -> None:
        self.names = names
        self.own = own  # (the user's id, the names they gave themself)
        self._plain: MentionTargets | None = None
        self._escaped: MentionTargets | None = None

    def own_names(self) -> tuple[str, ...]:
        """What the user is called here: their own names, and the room's name for them."""
        user, *given = self.own
        names = self.names if self.names is not None else NO_NAMES
        return names.called(user, given)

    def _make(self, escaped: bool) -> MentionTargets:
        names = self.names if self.names is not None else NO_NAMES
        return names.mention_targets(
            self.own[0], self.own_names(), html_escape if escaped else None
        )

    def plain(self) -> MentionTargets:
        if self._plain is None:
            self._plain = self._make(False)
        return self._plain

    def escaped(self) -> MentionTargets:
        if self._escaped is None:
            self._escaped = self._make(True)
        return self._escaped
