"""The main window: rooms on the left, the open room on the right."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..protocol.audit import TrustState
from ..protocol.findings import METADATA_KINDS, Finding, Kind, vanished_only
from ..protocol.room_state import others_as_note
from ..protocol.untrusted_text import html_escape, one_line, shown_id
from ..sync.client import NOT_OPENED, RoomRef
from ..sync.room_state import UNCHECKED_NOTE
from ..sync.watched import clock_text
from . import icons
from .audit.explanations import explain
from .controller import PARTIAL_READ, Controller
from .models.rooms_model import RoomRoles
from .models.timeline_model import Roles, TimelineModel
from .row_warmer import RowWarmer
from .safe import guard
from .style import TRUST_COLORS, WARNING_MARK
from .widgets.composer import Composer, local_files
from .widgets.elided_label import ElidedLabel, never_widens
from .widgets.message_delegate import MessageDelegate
from .widgets.room_delegate import RoomDelegate
from .widgets.room_dialogs import RoomDialog


def as_me_html(user_id: str, keys: int) -> str:
    """The banner's first news when ``keys`` device keys nobody trusts wrote as the user
    (``Controller.others_as_me``): what it means for their own messages."""
    headline, meaning = others_as_note(user_id, keys)
    return f"<b>⚠ {html_escape(headline)}</b> {html_escape(meaning)} Members lists the key."


def banner_html(errors: list[Finding]) -> str:
    """The room's warning: what kinds of problem its history has, in words and by their
    finding names (as ``verify`` prints them), worst news first — a partial read, because
    then no verdict shown is final."""
    kinds = list(dict.fromkeys(f.kind for f in errors))  # first appearance, no repeats
    named = "; ".join(f"{html_escape(explain(k).title)} ({html_escape(k.value)})" for k in kinds)
    n = len(errors)
    if vanished_only(errors):  # read, then removed or rewritten: no read failed
        return (
            "<b>⚠ Part of this room's history was removed or changed in storage after this "
            "device read it.</b> What was checked here is still shown; until the storage "
            "holds it as read again, nobody's key is trusted on first use and no verdict is "
            f"final. {n} problem{'s' if n != 1 else ''}: {named}."
        )
    if any(k in PARTIAL_READ for k in kinds):
        # Its safety listing keeps failing (``RoomState.unchecked``): since when, and why.
        unchecked = "".join(
            f" {html_escape(one_line(f.message[0].upper() + f.message[1:], 400))}."
            for f in errors
            if f.kind is Kind.UNREAD and f.message.startswith(UNCHECKED_NOTE)
        )
        return (
            "<b>⚠ This room's history could not be read completely.</b> Until it can, nobody's "
            "key is trusted on first use and no verdict is final; the app keeps trying. "
            f"{n} problem{'s' if n != 1 else ''}: {named}.{unchecked}"
        )
    if all(k in METADATA_KINDS for k in kinds):  # the room's name and creator only
        after = "It concerns the room's name and creator, not its messages."
    else:
        after = "Messages that could not be verified are marked or hidden."
    return f"<b>⚠ This room's history has {n} problem{'s' if n != 1 else ''}:</b> {named}. {after}"


class TimelineView(QListView):
    """The message list: pixel scrolling, stays at the bottom while at the bottom, loads
    older pages when scrolled to the top, and takes dropped files. Clicks on what
    relations painted on a message (``MessageDelegate.hit``): a reaction chip, a reply's
    quote (jumps to the message replied to, loading the page around it if needed, and
    flashes it), a thread summary (``threadRequested``)."""

    files_dropped = Signal(list)
    echo_clicked = Signal(str)  # event id of a failed local echo
    threadRequested = Signal(str)  # root event id (the name the issue gives it)
    reaction_clicked = Signal(str, str, bool)  # target event id, reaction text, add
    FLASH_MS = 1600

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Always on: every room's rows are laid out at one width, the one they are measured
        # ahead at (``row_warmer``). Shown only when needed, a room too short to scroll was
        # laid out wider than the others, and a switch measured every row again (rt103).
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setUniformItemSizes(False)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMouseTracking(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWordWrap(True)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.verticalScrollBar().setSingleStep(24)
        self._stick = True
        self._from_bottom: int | None = None  # kept while older rows go in above
        # The row at the top of the view and where it was, while rows go in above it
        # further down than the first (placed behind a row dated a little ahead).
        self._kept: tuple[Any, int] | None = None
        self.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self.verticalScrollBar().rangeChanged.connect(self._on_range)
        self.flash_id = ""  # the row a jump landed on, highlighted for a moment
        # and the line it was read from: an id two devices signed is two rows, one flashed
        self.flash_location = ""
        # The reaction chip chosen with Left/Right on the current row (Space toggles it):
        # (event id, chip number), painted with a focus ring.
        self.chip_focus: tuple[str, int] | None = None
        self._flash_timer = QTimer(self)
        self._flash_timer.setSingleShot(True)
        self._flash_timer.timeout.connect(self._end_flash)
        # Rows whose height changed (a reaction, an edit): laid out again once, with the
        # row at the top of the view kept where it was.
        self._anchor: tuple[Any, int] | None = None
        self._relayout = QTimer(self)
        self._relayout.setSingleShot(True)
        self._relayout.setInterval(0)
        self._relayout.timeout.connect(self._lay_out_again)

    @guard()
    def setModel(self, model: Any) -> None:
        old = self.model()
        if old is not None:
            old.rowsAboutToBeInserted.disconnect(self._on_rows_coming)
            old.rowsInserted.disconnect(self._on_rows)
            old.dataChanged.disconnect(self._on_data_changed)
        if model is not None:
            # Before the view's own slot (slots run in the order they were connected):
            # the list view may move its rows when it handles the change.
            model.dataChanged.connect(self._on_data_changed)
        super().setModel(model)
        if model is not None:
            model.rowsAboutToBeInserted.connect(self._on_rows_coming)
            model.rowsInserted.connect(self._on_rows)
        self._stick = True
        QTimer.singleShot(0, self.scrollToBottom)

    def _on_scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        model = self.model()
        at_bottom = value >= bar.maximum() - 8
        newer = isinstance(model, TimelineModel) and model.can_fetch_newer()
        self._stick = at_bottom and not newer
        if at_bottom and newer and isinstance(model, TimelineModel):
            model.fetch_newer()  # after a jump up: the rows below come page by page
        if (
            value <= bar.minimum() + 4
            and isinstance(model, TimelineModel)
            and model.can_fetch_older()
        ):
            # Older rows go in above now, or as soon as their page arrives.
            model.fetch_older()

    def _on_data_changed(self, first: Any, last: Any, roles: Any = ()) -> None:
        """A row's height may have changed (relations, a verdict): lay the rows out again
        (Qt's list view keeps the heights it measured), keeping the view still."""
        if roles and int(Roles.Layout) not in [int(r) for r in roles]:
            return
        if self._anchor is None and not self._stick:
            top = self.indexAt(QPoint(4, 4))
            if top.isValid():
                self._anchor = (QPersistentModelIndex(top), self.visualRect(top).top())
        self._relayout.start()

    def rows_estimated(self) -> None:
        """Rows of the last layout got an estimated height (their bodies would have cost
        the step more than ``STEP_CHARS``): lay the rows out again in a later turn, which
        measures the next of them, keeping the view still."""
        self._on_data_changed(None, None)

    def _lay_out_again(self) -> None:
        anchor, self._anchor = self._anchor, None
        delegate = self.itemDelegate()
        if isinstance(delegate, MessageDelegate):
            delegate.new_step()  # a turn of its own: a step's budget again
        self.doItemsLayout()
        if self._stick:
            self.scrollToBottom()
            return
        if anchor is not None and anchor[0].isValid():
            index = self.model().index(anchor[0].row(), 0)
            moved = self.visualRect(index).top() - anchor[1]
            bar = self.verticalScrollBar()
            bar.setValue(bar.value() + moved)

    def jump_to(
        self,
        event_id: str,
        shown_row: int | None = None,
        landed: Callable[[int], None] | None = None,
    ) -> bool:
        """Show the row of ``event_id`` (loading the page around it when it is not held),
        scroll it to the middle and flash it. False when it is not known. ``shown_row``:
        its shown-row number when the caller knows it (a search hit: any message, not
        only those the relations name). ``landed`` is told the row once it is shown (a
        page asked for is dropped when a newer audit comes first: then never)."""
        model = self.model()
        if not isinstance(model, TimelineModel):
            return False

        def land(row: int) -> None:
            self._land(row)
            if landed is not None:
                landed(row)

        if event_id in model.relations.repeated:
            # Shown once per device that signed it: only a caller that knows which
            # copy (a search hit's own row) can go there; a quote names neither.
            if shown_row is None:
                return False
            self._stick = False
            model.show_around(shown_row, land)
            return True
        row = model.locate(event_id)
        if row is not None:
            land(row)
            return True
        shown = model.shown_row_of(event_id) if shown_row is None else shown_row
        if shown is None:
            return False
        self._stick = False
        model.show_around(shown, land)
        return True

    def _land(self, row: int) -> None:
        model = self.model()
        if model is None or not 0 <= row < model.rowCount():
            return
        index = model.index(row, 0)
        self._stick = False
        self.executeDelayedItemsLayout()
        self.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        self.setCurrentIndex(index)
        self.flash_id = str(index.data(Roles.EventId))
        self.flash_location = str(index.data(Roles.Location))
        self._flash_timer.start(self.FLASH_MS)
        self.viewport().update()

    def _end_flash(self) -> None:
        self.flash_id = self.flash_location = ""
        self.viewport().update()

    def _on_range(self, _lo: int, hi: int) -> None:
        if self._stick:
            self.verticalScrollBar().setValue(hi)

    def _on_rows_coming(self, _parent: Any, first: int, _last: int) -> None:
        model = self.model()
        if self._stick or model is None or not model.rowCount():
            return
        if first == 0:
            bar = self.verticalScrollBar()
            self._from_bottom = bar.maximum() - bar.value()
            return
        top = self.indexAt(QPoint(4, 4))
        if top.isValid() and top.row() >= first:  # they go in above the rows in view
            self._kept = (QPersistentModelIndex(top), self.visualRect(top).top())

    def _on_rows(self, *_args: Any) -> None:
        if self._from_bottom is not None:
            # Older rows appeared above: keep the same message under the eye. Lay the new
            # rows out now, so the scroll range already includes them.
            from_bottom, self._from_bottom = self._from_bottom, None
            self.executeDelayedItemsLayout()
            bar = self.verticalScrollBar()
            bar.setValue(bar.maximum() - from_bottom)
        kept, self._kept = self._kept, None
        if kept is not None and kept[0].isValid():
            # Rows went in above the one under the eye: it stays where it was.
            self.executeDelayedItemsLayout()
            index = self.model().index(kept[0].row(), 0)
            bar = self.verticalScrollBar()
            bar.setValue(bar.value() + self.visualRect(index).top() - kept[1])
        if self._stick:
            QTimer.singleShot(0, self.scrollToBottom)

    @guard()
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_files(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    @guard()
    def dragMoveEvent(self, event: Any) -> None:
        if local_files(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    @guard()
    def dropEvent(self, event: QDropEvent) -> None:
        files = local_files(event.mimeData())
        if files:
            self.files_dropped.emit(files)
            event.acceptProposedAction()
        else:
            event.ignore()

    @guard()
    def keyPressEvent(self, event: Any) -> None:
        """Left/Right choose a reaction chip of the current row (Up/Down move between
        rows), Space or Enter toggle this user's reaction on it."""
        index = self.currentIndex()
        chips = index.data(Roles.Reactions) if index.isValid() else None
        key = event.key()
        if chips and key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            event_id = str(index.data(Roles.EventId))
            now = self.chip_focus[1] if self.chip_focus and self.chip_focus[0] == event_id else -1
            step = 1 if key == Qt.Key.Key_Right else -1
            now = len(chips) - 1 if now < 0 and step < 0 else now + step
            self.chip_focus = (event_id, max(0, min(len(chips) - 1, now)))
            self.viewport().update()
            event.accept()
            return
        if chips and key in (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            event_id = str(index.data(Roles.EventId))
            if self.chip_focus and self.chip_focus[0] == event_id:
                chip = chips[min(self.chip_focus[1], len(chips) - 1)]
                self.reaction_clicked.emit(event_id, chip.key, not chip.mine)
                event.accept()
                return
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            self.chip_focus = None
        super().keyPressEvent(event)

    @guard()
    def mouseReleaseEvent(self, event: Any) -> None:
        pos = event.position().toPoint()
        index = self.indexAt(pos)
        if index.isValid() and index.data(Roles.Echo) == "failed":
            self.echo_clicked.emit(str(index.data(Roles.EventId)))
        elif index.isValid() and event.button() == Qt.MouseButton.LeftButton:
            self._clicked(index, pos)
        super().mouseReleaseEvent(event)

    def _clicked(self, index: Any, pos: QPoint) -> None:
        delegate = self.itemDelegate()
        hit = getattr(delegate, "hit", None)
        if hit is None:
            return
        got = hit(index, self.visualRect(index), self.font(), pos)
        if got is None:
            return
        what, payload = got
        if what == "chip":
            self.reaction_clicked.emit(
                str(index.data(Roles.EventId)), payload.key, not payload.mine
            )
        elif what == "quote":
            self.jump_to(str(payload))
        elif what == "thread":
            self.threadRequested.emit(str(payload))


class MainWindow(QMainWindow):
    files_chosen = Signal(str, list)  # room key, paths (handled by the attachments feature)
    threadRequested = Signal(str)  # root event id of a thread (the timeline's)

    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self.controller = controller
        self.setWindowTitle("Bucket Chat")
        self.resize(1100, 720)
        self.setMinimumSize(QSize(720, 480))
        self.quitting = False
        self.tray: Any = None  # set by the tray feature
        # Features that add to a room's context menu: hook(menu, room key).
        self.room_menu_hooks: list[Callable[[QMenu, str], None]] = []
        self.notifier: Any = None
        self.relation_actions: Any = None  # set by the relation actions feature
        self.social: Any = None  # set by the social feature (mentions, unread line)

        splitter = QSplitter()
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self._build_sidebar())
        splitter.addWidget(self._build_room_area())
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([290, 810])
        self.setCentralWidget(splitter)
        # The rows of the rooms on screen in the list are measured before a switch to
        # them, a few per turn of the loop (docs/SCHEDULING.md).
        self.row_warmer = RowWarmer(controller, self.room_list, self.delegate, self)

        c = controller
        c.current_changed.connect(self._on_current_changed)
        c.room_audit_changed.connect(self._on_audit_changed)
        c.storage_status.connect(self._on_storage_status)
        c.error.connect(self._on_error)
        c.rooms.dataChanged.connect(lambda *_: self._update_header())
        self._build_actions()
        self._on_current_changed(c.current)

    # -- construction --------------------------------------------------------------------

    def _build_sidebar(self) -> QWidget:
        side = QWidget()
        side.setObjectName("sidebar")
        layout = QVBoxLayout(side)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        top = QHBoxLayout()
        top.setContentsMargins(14, 12, 10, 8)
        me = QLabel(f"<b>{html_escape(shown_id(self.controller.identity.user_id))}</b>")
        me.setTextFormat(Qt.TextFormat.RichText)
        me.setToolTip(
            f"Your device key fingerprint: {self.controller.identity.display_fingerprint}"
        )
        me.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top.addWidget(me, 1)
        self.add_button = QToolButton()
        self.add_button.setIcon(icons.plus())
        self.add_button.setIconSize(QSize(20, 20))
        self.add_button.setToolTip("New room, join a room, add a storage")
        self.add_button.setStyleSheet("QToolButton::menu-indicator { image: none; }")
        self.add_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.add_button)
        menu.addAction("New room…", self.new_room)
        menu.addAction("Join a room…", self.join_room)
        self.add_button.setMenu(menu)
        self.add_menu = menu
        top.addWidget(self.add_button)
        layout.addLayout(top)
        self.room_list = QListView()
        self.room_list.setModel(self.controller.rooms)
        self.room_list.setItemDelegate(RoomDelegate(self.room_list))
        self.room_list.setFrameShape(QFrame.Shape.NoFrame)
        self.room_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.room_list.setMouseTracking(True)
        self.room_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.room_list.customContextMenuRequested.connect(self._room_menu)
        self.room_list.selectionModel().currentChanged.connect(
            lambda cur, _prev: (
                self.controller.select_room(str(cur.data(RoomRoles.Key))) if cur.isValid() else None
            )
        )
        layout.addWidget(self.room_list, 1)
        self.status = QLabel()
        self.status.setTextFormat(Qt.TextFormat.RichText)  # storage messages escaped
        self.status.setWordWrap(True)
        self.status.setContentsMargins(14, 6, 14, 8)
        self.status.setObjectName("status")
        layout.addWidget(self.status)
        return side

    def _build_room_area(self) -> QWidget:
        self.stack = QStackedWidget()
        empty = QLabel(
            "<h2>Welcome to Bucket Chat</h2><p>Pick a room on the left, or use + to create "
            "one or join one by its id.</p><p>Every message is signed by its sender's device "
            "and checked on yours.</p>"
        )
        empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        empty.setWordWrap(True)
        self.stack.addWidget(empty)

        room = QWidget()
        layout = QVBoxLayout(room)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        header = QHBoxLayout()
        header.setContentsMargins(16, 10, 12, 10)
        header.setSpacing(8)
        titles = QVBoxLayout()
        # The name comes from storage (up to 200 characters): cut with "…" to the width
        # there is, never taking width from the room list; the whole name in its tooltip.
        self.room_title = ElidedLabel()
        self.room_title.setObjectName("roomTitle")
        title_font = self.room_title.font()
        title_font.setPointSize(15)
        title_font.setBold(True)
        self.room_title.setFont(title_font)
        self.room_subtitle = QLabel()
        self.room_subtitle.setObjectName("roomSubtitle")
        self.room_subtitle.setTextFormat(Qt.TextFormat.RichText)
        self.room_subtitle.setWordWrap(True)  # a room id has up to 128 characters
        never_widens(self.room_subtitle)
        titles.addWidget(self.room_title)
        titles.addWidget(self.room_subtitle)
        header.addLayout(titles, 1)
        self.members_button = QPushButton(icons.people(), "Members")
        self.audit_button = QPushButton(icons.shield(), "Audit")
        self.audit_button.setToolTip("Everything that was checked in this room, and every finding")
        header.addWidget(self.members_button)
        header.addWidget(self.audit_button)
        layout.addLayout(header)

        self.banner = QFrame()
        self.banner.setObjectName("banner")
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.setContentsMargins(16, 8, 12, 8)
        self.banner_text = QLabel()
        self.banner_text.setTextFormat(Qt.TextFormat.RichText)
        self.banner_text.setWordWrap(True)
        banner_layout.addWidget(self.banner_text, 1)
        self.banner_button = QPushButton("View audit")
        banner_layout.addWidget(self.banner_button)
        self.banner.hide()
        layout.addWidget(self.banner)

        self.offline_bar = QFrame()
        self.offline_bar.setObjectName("offline")
        offline_layout = QHBoxLayout(self.offline_bar)
        offline_layout.setContentsMargins(0, 0, 12, 0)
        self.offline = QLabel()
        self.offline.setTextFormat(Qt.TextFormat.PlainText)  # quotes storage errors
        self.offline.setWordWrap(True)
        self.offline.setContentsMargins(16, 6, 16, 6)
        offline_layout.addWidget(self.offline, 1)
        # A storage not opened is tried again by itself every few minutes; the user who
        # just unlocked the keyring or fixed the file need not wait for it.
        self.try_now = QPushButton("Try now")
        self.try_now.setToolTip("Try to open this storage again now")
        self.try_now.clicked.connect(self._try_now)
        self.try_now.hide()
        offline_layout.addWidget(self.try_now)
        self.offline_bar.hide()
        layout.addWidget(self.offline_bar)

        body = QHBoxLayout()
        body.setSpacing(0)
        self.timeline = TimelineView()
        self.delegate = MessageDelegate(self.timeline)
        self.timeline.setItemDelegate(self.delegate)
        # queued: laid out again once the layout that estimated them is over
        self.delegate.rows_estimated.connect(
            self.timeline.rows_estimated, Qt.ConnectionType.QueuedConnection
        )
        self.timeline.files_dropped.connect(self._on_files)
        self.timeline.echo_clicked.connect(lambda _eid: self.controller.retry_failed())
        self.timeline.threadRequested.connect(self.threadRequested)
        self.timeline.reaction_clicked.connect(self._on_reaction_clicked)
        # The timeline and, beside it, a thread's panel (added by the relation actions).
        self.timeline_splitter = QSplitter()
        self.timeline_splitter.setChildrenCollapsible(False)
        self.timeline_splitter.addWidget(self.timeline)
        body.addWidget(self.timeline_splitter, 1)
        self.side_panel = QStackedWidget()  # members panel (added by that feature)
        self.side_panel.hide()
        body.addWidget(self.side_panel)
        layout.addLayout(body, 1)

        # Bars above the composer (replying to / editing: the relation actions feature).
        self.composer_extras = QVBoxLayout()
        self.composer_extras.setContentsMargins(12, 0, 12, 0)
        self.composer_extras.setSpacing(0)
        layout.addLayout(self.composer_extras)

        bar = QHBoxLayout()
        bar.setContentsMargins(12, 8, 12, 12)
        self.attach_button = QToolButton()
        self.attach_button.setIcon(icons.paperclip())
        self.attach_button.setIconSize(QSize(22, 22))
        self.attach_button.setToolTip("Attach files")
        self.composer = Composer()
        self.composer.submitted.connect(self.controller.send_text)
        self.composer.reply_submitted.connect(self.controller.send_text)
        self.composer.edit_submitted.connect(self.controller.edit_message)
        self.composer.files_dropped.connect(self._on_files)
        self.send_button = QPushButton(icons.send(), "Send")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self._send_clicked)
        bar.addWidget(self.attach_button, 0, Qt.AlignmentFlag.AlignBottom)
        bar.addWidget(self.composer, 1)
        bar.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        layout.addLayout(bar)
        self.stack.addWidget(room)
        return self.stack

    def _build_actions(self) -> None:
        quit_action = QAction("Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.quit)
        self.addAction(quit_action)
        self.quit_action = quit_action

    # -- behaviour ---------------------------------------------------------------------------

    def _send_clicked(self) -> None:
        self.composer.submit()  # as Enter does: a message, a reply or an edit
        self.composer.setFocus()

    def _on_reaction_clicked(self, target_id: str, text: str, add: bool) -> None:
        (self.controller.react if add else self.controller.unreact)(target_id, text)

    def open_thread(self, root_event_id: str) -> None:
        """Show the thread of ``root_event_id`` in the panel beside the timeline."""
        if self.relation_actions is not None:
            self.relation_actions.open_thread(root_event_id)

    def show_versions(self, event_id: str) -> None:
        """Show every version of an edited message (the original and each edit)."""
        if self.relation_actions is not None:
            self.relation_actions.show_versions(event_id)

    def _on_files(self, paths: list[str]) -> None:
        if self.controller.current:
            self.files_chosen.emit(self.controller.current, paths)

    def new_room(self) -> None:
        dialog = RoomDialog(
            self.controller.settings,
            create=True,
            parent=self,
            lister=self.controller.list_storage_rooms,  # ids it holds are said at once
            tasks=self.controller.tasks,
        )
        if dialog.exec():
            storage_id, room_id, name = dialog.values
            self.controller.create_room(storage_id, room_id, name)

    def join_room(self) -> None:
        dialog = RoomDialog(
            self.controller.settings,
            create=False,
            parent=self,
            lister=self.controller.list_storage_rooms,  # every id (one listing)
            tasks=self.controller.tasks,
            joined=self.controller.rooms.named_rooms,
            summariser=self.controller.client.summarise_rooms,  # names, as rooms are shown
        )
        if dialog.exec():
            storage_id, room_id, _ = dialog.values
            key = f"{storage_id}/{room_id}"
            if self.controller.rooms.item(key) is not None:
                self.controller.select_room(key)  # in it already: no second join
            else:
                self.controller.join_room(storage_id, room_id)

    def _room_menu(self, pos: Any) -> None:
        index = self.room_list.indexAt(pos)
        if not index.isValid():
            return
        key = str(index.data(RoomRoles.Key))
        self.room_menu(key).exec(self.room_list.viewport().mapToGlobal(pos))

    def room_menu(self, key: str) -> QMenu:
        """A room's context menu; features add their actions (``room_menu_hooks``)."""
        menu = QMenu(self)
        for hook in self.room_menu_hooks:
            hook(menu, key)
        menu.addAction("Leave room", lambda: self._confirm_leave(key))
        return menu

    def _confirm_leave(self, key: str) -> None:
        item = self.controller.rooms.item(key)
        name = item.marked_name if item else key  # which of two alike: id, storage
        answer = QMessageBox.question(  # rich text, so the escaped name shows as written
            self,
            "Leave room",
            f"<p>Leave “{html_escape(name)}”? Its history stays in the storage.</p>",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.controller.leave_room(key)

    def _on_current_changed(self, key: str) -> None:
        if not key:
            self.stack.setCurrentIndex(0)
            return
        self.stack.setCurrentIndex(1)
        self.timeline.setModel(self.controller.timeline(key))
        row = self.controller.rooms.row_of(key)
        if row >= 0:
            index = self.controller.rooms.index(row)
            if self.room_list.currentIndex() != index:
                self.room_list.setCurrentIndex(index)
        self._update_header()
        self._on_audit_changed(key)
        storage_id = RoomRef.from_key(key).storage_id
        online, message = self.controller.storage_online(storage_id)
        self._on_storage_status(storage_id, online, message)
        self.composer.setFocus()

    def _update_header(self) -> None:
        key = self.controller.current
        item = self.controller.rooms.item(key) if key else None
        if item is None:
            return
        # a name that looks like another room's is marked (the line below says which
        # room it is: id and storage), and the tooltip says why
        mark = f"{WARNING_MARK} " if item.name_warning else ""
        self.room_title.set_full_text(f"{mark}{item.shown_name}")
        if item.name_warning:
            self.room_title.setToolTip(
                f"<p>{html_escape(item.shown_name)}</p><p>{WARNING_MARK} "
                f"{html_escape(item.name_warning)}</p>"
            )
        result = self.controller.result(key)
        parts = [f"{html_escape(item.room_id)} on {html_escape(one_line(item.storage_name))}"]
        if result is not None and self.controller.history_partial(key):
            # A count of "verified" events would read as a verdict; there is none yet.
            why = (
                "part of the history was removed or changed in storage"
                if self.controller.history_vanished(key)
                else "history not completely read"
            )
            parts.append(
                f"{len(result.timeline):,} events read · "
                f"<span style='color:{TRUST_COLORS['key-changed']}'>{why}: nothing is "
                "final</span>"
            )
        elif result is not None and not self.controller.timeline(key).complete:
            # Older history still loading: a key may be taken on trial (section 16).
            parts.append(
                f"{len(result.timeline):,} events read · "
                f"<span style='color:{TRUST_COLORS['unverified']}'>older history still "
                "loading: no verdict is final yet</span>"
            )
        elif result is not None:
            verified = result.counts[TrustState.VERIFIED]
            total = len(result.timeline)
            parts.append(f"{verified:,} of {total:,} events verified")
        held = result.held if result is not None else 0
        if held:  # not shown until their time comes: say so where the counts are
            parts.append(
                f"<span style='color:{TRUST_COLORS['unverified']}'>{held:,} held back: "
                "dated ahead</span>"
            )
        self.room_subtitle.setText(" · ".join(parts))
        self.room_subtitle.setToolTip(
            f"{held:,} event(s) dated more than an hour after this computer's clock are not "
            "shown until then; the Audit window lists them."
            if held
            else ""
        )

    def _on_audit_changed(self, key: str) -> None:
        if key != self.controller.current:
            return
        self._update_header()
        errors = self.controller.room_errors(key)
        as_me = self.controller.others_as_me(key)
        if not errors and not as_me:
            self.banner.hide()
            return
        news = [as_me_html(self.controller.identity.user_id, as_me)] if as_me else []
        if errors:
            news.append(banner_html(errors))
        self.banner_text.setText("<br>".join(news))
        self.banner.show()

    def _on_storage_status(self, storage_id: str, online: bool, message: str) -> None:
        """One line for every storage with a problem, by name: "not answering" (a hung
        connection, from the engine's watchdog) reads differently from offline (refused,
        failed); the line clears per storage as soon as that storage answers again."""
        problems = []
        for sid, msg in self.controller.offline_storages():
            name = one_line(self.controller.storage_name(sid), 80)
            if msg.startswith("not answering"):
                problems.append(f"{name} {one_line(msg, 300)}")
            else:
                problems.append(f"Offline — {name}: {one_line(msg, 300)}")
        # Polled instead of watched or notified: news comes later than it should, for as
        # long as it lasts (the status bar's message about it goes after 15 s).
        polled, whole = [], []
        for sid, folder, said, since in self.controller.feeds():
            name = one_line(self.controller.storage_name(sid), 80)
            how = "not watched" if folder else "push notifications off"
            polled.append(f"{name} polled since {clock_text(since)}, {how}")
            whole.append(f"{name}: {one_line(said, 300)}")
        line = (
            "<span style='color:#d9822b'>" + "; ".join(html_escape(p) for p in problems) + "</span>"
            if problems
            else "<span style='color:#2e9d5b'>●</span> All storages reachable"
        )
        if polled:
            line += " · <span style='color:#d9822b'>" + html_escape("; ".join(polled)) + "</span>"
        self.status.setText(line)
        # rich text, escaped: Qt takes a tip that looks like markup as rich text
        self.status.setToolTip("".join(f"<p>{html_escape(w)}</p>" for w in whole))
        key = self.controller.current
        if key and RoomRef.from_key(key).storage_id == storage_id:
            # only while a try waits: a fault met at start is not tried again by itself
            self.try_now.setVisible(
                not online
                and message.startswith(NOT_OPENED)
                and self.controller.reopening(storage_id)
            )
            self.try_now.setEnabled(True)
            self.offline_bar.setVisible(not online)
            if online:
                self.offline.hide()
            elif message.startswith("not answering"):
                name = one_line(self.controller.storage_name(storage_id), 80)
                self.offline.setText(
                    f"{name} is {one_line(message, 300)}. You can keep writing: messages "
                    "wait in your outbox and are sent when it answers again."
                )
                self.offline.show()
            elif message.startswith(NOT_OPENED):  # ``ChatClient.start``: no outbox either
                name = one_line(self.controller.storage_name(storage_id), 80)
                why = one_line(message.removeprefix(NOT_OPENED).strip(), 300)
                self.offline.setText(
                    f"{name} could not be opened: {why}. Nothing can be read from it or "
                    "sent to it until it can; it is tried again by itself every few minutes."
                )
                self.offline.show()
            else:
                self.offline.setText(
                    f"Offline: {one_line(message, 300)}. You can keep writing: messages wait "
                    "in your outbox and are sent when the storage is back."
                )
                self.offline.show()

    def _try_now(self) -> None:
        """Try again at once to open the shown room's storage (its status says how it
        went: the button is enabled again then)."""
        key = self.controller.current
        if not key:
            return
        if self.controller.reopen_storage(RoomRef.from_key(key).storage_id):
            self.try_now.setEnabled(False)
            self.statusBar().showMessage("Trying to open the storage again…", 15000)

    def _on_error(self, what: str, message: str) -> None:
        self.statusBar().showMessage(f"{one_line(what)}: {one_line(message, 300)}", 15000)

    @guard()
    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.ActivationChange:
            self.controller.set_window_active(self.isActiveWindow())
        super().changeEvent(event)

    @guard()
    def closeEvent(self, event: QCloseEvent) -> None:
        if (
            not self.quitting
            and self.tray is not None
            and self.tray.isVisible()
            and self.controller.settings.minimize_to_tray
        ):
            self.hide()
            event.ignore()
            return
        event.accept()
        self.quitting = True

    def quit(self) -> None:
        self.quitting = True
        self.close()

    @guard()
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # for features
        return super().eventFilter(watched, event)
