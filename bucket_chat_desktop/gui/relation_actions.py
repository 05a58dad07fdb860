"""Acting on messages: the hover action bar and context menu, the emoji picker, replying
and editing in the composer, deleting, previous versions and the thread panel.

``install(window, controller)`` is the only entry point. It uses the window's timeline,
composer, ``composer_extras`` and ``timeline_splitter`` and the controller's relations
(``Controller.relations``: the aggregates of the room's latest audit) and methods; it
writes nothing itself — every action is an event sent through the controller (the
outbox), and what the storage sends back is what the timeline shows.

Keyboard, on the timeline's current row (Shift+Tab from the composer reaches it; the
arrows move it): R reply, T reply in thread, E edit, Delete delete, Ctrl+C copy the text,
+ more reactions, the Menu key (or Shift+F10) the context menu, Escape back to the
composer. In an empty composer Up edits the last message of the user's.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import sqlite3
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    Qt,
    QTimer,
)
from PySide6.QtGui import QCursor, QGuiApplication, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QMenu, QWidget
from shiboken6 import isValid as alive

from ..protocol.attachments import message_text
from ..protocol.audit import Assessed, TrustState
from ..protocol.event import Event, Malformed
from ..protocol.relations import EDITABLE_MSGTYPES, Aggregate, Edit, Relations
from ..sync.publisher import UNSENT_HINT
from ..timestamps import change_copy, late_copy
from .controller import Controller
from .emoji_index import FREQUENT, lookup
from .main_window import MainWindow, TimelineView
from .models.timeline_model import Roles, Row, TimelineModel, kept_hold
from .safe import guard
from .widgets.emoji_picker import EmojiPicker
from .widgets.message_actions import (
    ComposerModeBar,
    DeleteDialog,
    DiscardDialog,
    HoverBar,
    Target,
    Version,
    VersionsDialog,
)
from .widgets.message_delegate import DAY_H
from .widgets.thread_panel import PANEL_WIDTH, ThreadPanel

log = logging.getLogger("bucket_chat.gui")

Index = QModelIndex | QPersistentModelIndex
MAX_THREAD_REPLIES = 500  # the newest replies a thread panel shows
REPEATED_ROOT = (
    "two devices used this message's id (see the room's audit): it has no thread, and "
    "replies to it are not sent"
)
NARROW = 760  # px: a timeline narrower than this gets a shorter hover bar


def _event_of(row: Row) -> Event:
    """A display-only event made of a timeline row (its signature is not checked here:
    the row's trust state is the audit's)."""
    room_id = row.event_id.split("::", 1)[0]
    return Event(
        {},
        b"",
        "",
        row.event_id,
        room_id,
        row.timestamp_ms,
        row.sender_id,
        row.type,
        None,
        None,
        "",
        row.sender_key or None,
        row.content,
    )


def _state(value: str) -> TrustState:
    """A trust state by its value; anything unknown counts as invalid."""
    try:
        return TrustState(value)
    except ValueError:
        return TrustState.INVALID


class RelationActions(QObject):
    def __init__(self, window: MainWindow, controller: Controller) -> None:
        super().__init__(window)
        self.window = window
        self.controller = controller
        self.timeline: TimelineView = window.timeline
        self.composer = window.composer
        self._hovered = QPersistentModelIndex()
        self._keyboard = False  # the bar follows the keyboard's row, not the mouse
        self._reply_target: Target | None = None
        self.picker: EmojiPicker | None = None
        self.delete_dialog: DeleteDialog | None = None
        self.discard_dialog: DiscardDialog | None = None
        self.versions_dialog: VersionsDialog | None = None
        self._versions_asked = 0
        self._watched: set[int] = set()  # models and selection models connected to

        # the hover bar
        self.bar = HoverBar(self.timeline.viewport())
        self.bar.reacted.connect(lambda char: self._act("react", char))
        self.bar.more_clicked.connect(lambda: self._act("pick"))
        self.bar.reply_clicked.connect(lambda: self._act("reply"))
        self.bar.thread_clicked.connect(lambda: self._act("thread"))
        self.bar.edit_clicked.connect(lambda: self._act("edit"))
        self.bar.delete_clicked.connect(lambda: self._act("delete"))
        self.bar.menu_clicked.connect(self._bar_menu)
        self.timeline.viewport().installEventFilter(self)
        self.timeline.installEventFilter(self)
        self.timeline.verticalScrollBar().valueChanged.connect(self._reposition)
        self.timeline.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.timeline.customContextMenuRequested.connect(self._context_menu)

        # composer modes
        self.mode_bar = ComposerModeBar()
        window.composer_extras.addWidget(self.mode_bar)
        self.mode_bar.cancelled.connect(self.composer.cancel_mode)
        self.composer.mode_changed.connect(self._on_mode_changed)
        self.composer.edit_last_requested.connect(self.edit_last)
        self.composer.refusal = self.refusal
        self.composer.refused.connect(lambda why: self.controller.error.emit("Not sent", why))
        # Shift+Tab from the composer goes straight to the messages (then the attach button)
        QWidget.setTabOrder(self.timeline, self.composer)

        # the thread panel
        self.thread_key = ""
        self._thread_rows: dict[str, tuple[int, Assessed]] = {}  # id -> (audit no., row)
        self._thread_asked = 0
        thread_view = TimelineView()
        # its rows' reaction chips act as the timeline's (the panel shows the open room's)
        thread_view.reaction_clicked.connect(window._on_reaction_clicked)
        self.thread_panel = ThreadPanel(controller.identity.public_key_b64, thread_view)
        self.thread_panel.hide()
        window.timeline_splitter.addWidget(self.thread_panel)
        self.thread_panel.close_requested.connect(self.close_thread)
        self.thread_panel.reply_written.connect(self._thread_reply)
        self.thread_panel.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.thread_panel.view.customContextMenuRequested.connect(self._thread_menu)
        requested = getattr(self.timeline, "threadRequested", None)  # the timeline's summary
        if requested is not None:
            requested.connect(self.open_thread)

        controller.current_changed.connect(self._on_current_changed)
        controller.relations_changed.connect(self._on_relations_changed)
        controller.kept_discarded.connect(self._on_kept_discarded)
        self._watch_model()
        window.relation_actions = self

    # -- what a row is --------------------------------------------------------------------

    def relations(self) -> Relations | None:
        known = self.controller.relations(self.controller.current)
        return known[1] if known is not None else None

    def aggregate(self, event_id: str) -> Aggregate | None:
        rel = self.relations()
        return rel.of(event_id) if rel is not None else None

    def target_at(self, index: Index) -> Target | None:
        """The message at ``index`` if something can be done with it: a message (not a
        membership line or another event), read back from storage (not a local echo),
        not deleted."""
        if not index.isValid() or index.data(Roles.Echo):
            return None
        kind = str(index.data(Roles.Kind) or "")
        if kind not in ("text", "file", "image"):
            return None
        event_id = str(index.data(Roles.EventId) or "")
        if "::" not in event_id:
            return None
        agg = self.aggregate(event_id)
        if agg is not None and agg.redacted is not None:
            return None
        sender = str(index.data(Roles.Sender) or "")
        # An edit or deletion applies only when its target's sender wrote it with this
        # device's key or another device key verified for them (PROTOCOL.md 18.4).
        mine = bool(index.data(Roles.Own)) or (
            sender == self.controller.identity.user_id
            and index.data(Roles.Trust) == TrustState.VERIFIED.value
        )
        content = index.data(Roles.Content)
        msgtype = content.get("msgtype", "m.text") if hasattr(content, "get") else None
        quoted = ""
        if kind in ("file", "image") and (agg is None or agg.latest is None):
            quoted = message_text(content)  # "📎 name", as its card and menu name the file
        return Target(
            event_id=event_id,
            sender_id=sender,
            name=str(index.data(Roles.DisplayName) or sender),
            text=str(index.data(Roles.Body) or ""),  # the latest edit's text
            quoted=quoted,
            kind=kind,
            can_edit=mine
            and kind == "text"
            and isinstance(msgtype, str)
            and msgtype in EDITABLE_MSGTYPES,
            can_delete=mine,
            edited=agg is not None and bool(agg.edits),
            trust=str(index.data(Roles.Trust) or TrustState.INVALID.value),
            warning=index.data(Roles.SenderWarning),
        )

    def target_of(self, event_id: str) -> Target | None:
        """The target of a shown row by its event id (the newest rows first)."""
        model = self.timeline.model()
        if model is None:
            return None
        for i in range(model.rowCount() - 1, -1, -1):
            index = model.index(i, 0)
            if index.data(Roles.EventId) == event_id:
                return self.target_at(index)
        return None

    # -- the hover bar --------------------------------------------------------------------------

    def _watch_model(self) -> None:
        model = self.timeline.model()
        selection = self.timeline.selectionModel()
        if selection is not None and id(selection) not in self._watched:
            self._watched.add(id(selection))
            selection.currentChanged.connect(self._on_current_row)
        if model is not None and id(model) not in self._watched:
            self._watched.add(id(model))
            for sig in (model.rowsInserted, model.rowsRemoved, model.modelReset):
                sig.connect(lambda *_: QTimer.singleShot(0, self._reposition))
            model.dataChanged.connect(lambda *_: self._retarget())

    def _on_current_row(self, current: Index, _previous: Index) -> None:
        if self.timeline.hasFocus():
            self._keyboard = True
            self._show_at(current)

    def _hover(self, pos: QPoint) -> None:
        self._keyboard = False
        self._show_at(self.timeline.indexAt(pos))

    def _show_at(self, index: Index, force: bool = False) -> None:
        if not force and index.isValid() and self.bar.isVisible() and self._hovered == index:
            self._place()  # the same row (the mouse moved within it): where it is now
            return
        target = self.target_at(index) if index.isValid() else None
        if target is None:
            self.bar.hide()
            self._hovered = QPersistentModelIndex()
            return
        self._hovered = QPersistentModelIndex(index)
        # a narrow timeline (a thread panel beside it) gets fewer quick reactions
        width = self.timeline.viewport().width()
        self.bar.set_target(target, 6 if width >= NARROW else 3 if width >= 560 else 0)
        self._place()
        self.bar.show()
        self.bar.raise_()

    def _hovered_index(self) -> QModelIndex:
        model = self.timeline.model()
        if model is None or not self._hovered.isValid():
            return QModelIndex()
        return model.index(self._hovered.row(), 0)

    def _place(self) -> None:
        index = self._hovered_index()
        if not index.isValid():
            self.bar.hide()
            return
        rect = self.timeline.visualRect(index)
        top = rect.top() + (DAY_H if index.data(Roles.DayBreak) else 0)
        viewport = self.timeline.viewport().rect()
        x = max(4, rect.right() - self.bar.width() - 14)
        y = max(2, top - self.bar.height() // 2 + 2)
        y = min(y, max(2, rect.bottom() - self.bar.height()), viewport.bottom() - self.bar.height())
        if rect.bottom() < 0 or rect.top() > viewport.bottom():
            self.bar.hide()
            return
        self.bar.move(x, y)

    def _reposition(self, *_args: Any) -> None:
        if not alive(self.timeline):
            return
        if self._keyboard:
            self._show_at(self.timeline.currentIndex())
        elif self.timeline.viewport().underMouse() or self.bar.underMouse():
            pos = self.timeline.viewport().mapFromGlobal(QCursor.pos())
            if self.bar.isVisible() and self.bar.geometry().contains(pos):
                self._place()  # the mouse is on the bar: it stays with its row
            else:
                self._hover(pos)
        elif self.bar.isVisible():
            self._place()

    def _retarget(self) -> None:
        """A row changed (an edit, a deletion): what the bar offers may have too."""
        if self.bar.isVisible():
            self._show_at(self._hovered_index(), force=True)

    def _maybe_hide(self) -> None:
        if self._keyboard or not alive(self.timeline):
            return
        pos = self.timeline.viewport().mapFromGlobal(QCursor.pos())
        if not self.bar.geometry().contains(pos) and not self._menu_open:
            self.bar.hide()

    _menu_open = False

    def _act(self, action: str, arg: str = "", target: Target | None = None) -> None:
        target = target or self.bar.target
        if target is None:
            return
        if action == "react":
            self.controller.quick_react(target.event_id, arg)
        elif action == "pick":
            self.pick_reaction(target)
        elif action == "reply":
            self.reply(target)
        elif action == "thread":
            rel = self.relations()
            root = rel.thread_root.get(target.event_id) if rel is not None else None
            self.open_thread(root or target.event_id)
        elif action == "edit":
            self.edit(target)
        elif action == "delete":
            self.delete(target)
        elif action == "copy":
            QGuiApplication.clipboard().setText(target.text)
        elif action == "versions":
            self.show_versions(target.event_id)

    # -- the context menu -------------------------------------------------------------------------

    def build_menu(self, target: Target, parent: QWidget, in_thread: bool = False) -> QMenu:
        """The message's menu; ``in_thread``: for a row of the thread panel (whose own
        composer replies there: no Reply entries)."""
        menu = QMenu(parent)
        react = menu.addMenu("React")
        for char in FREQUENT:
            entry = lookup(char)
            name = entry.name if entry is not None else ""
            mine = self.controller.own_reaction(self.controller.current, target.event_id, char)
            react.addAction(
                f"{char}  {name}{' ✓' if mine else ''}",
                functools.partial(self._act, "react", char, target),
            )
        react.addSeparator()
        react.addAction("More reactions…", lambda: self._act("pick", target=target))
        if not in_thread:
            reply = menu.addAction("Reply", lambda: self._act("reply", target=target))
            reply.setShortcut(QKeySequence("R"))
            thread = menu.addAction("Reply in thread", lambda: self._act("thread", target=target))
            thread.setShortcut(QKeySequence("T"))
        if target.can_edit:
            menu.addAction("Edit", lambda: self._act("edit", target=target)).setShortcut(
                QKeySequence("E")
            )
        copy = menu.addAction("Copy text", lambda: self._act("copy", target=target))
        copy.setShortcut(QKeySequence.StandardKey.Copy)
        copy.setEnabled(bool(target.text))
        if target.edited:
            menu.addAction("View previous versions…", lambda: self._act("versions", target=target))
        if target.can_delete:
            menu.addSeparator()
            menu.addAction("Delete…", lambda: self._act("delete", target=target)).setShortcut(
                QKeySequence.StandardKey.Delete
            )
        return menu

    def unsent_menu(self, index: Index, parent: QWidget) -> QMenu | None:
        """The menu of a row of this device's own not sent yet ("sending", "not sent", or
        kept unsigned: ``SendKept``), None for any other row: its text can be copied, and
        a message kept unsigned can be discarded ("Discard…"); nothing else applies to
        what no reader has. A message kept for a key this device no longer has says to
        copy it and send it again, or discard it (red team rt92)."""
        if not index.isValid() or not index.data(Roles.Echo):
            return None
        text = str(index.data(Roles.Body) or "")
        hold = kept_hold(str(index.data(Roles.EventId) or ""))
        if not text and hold is None:
            return None
        menu = QMenu(parent)
        copy = menu.addAction("Copy text", lambda: QGuiApplication.clipboard().setText(text))
        copy.setShortcut(QKeySequence.StandardKey.Copy)
        copy.setEnabled(bool(text))
        if hold is not None:
            # Kept unsigned (``SendKept``): nobody else has it, and one that will never
            # go out (its key replaced, too large to sign) stayed at every start. A
            # signed message ("sending", "not sent — click to retry") has no Discard: it
            # is a link of this device's chain, which the next message continues.
            menu.addSeparator()
            why = str(index.data(Roles.EchoError) or "")
            menu.addAction("Discard…", lambda: self.discard(hold, why))
        return menu

    def discard(self, hold: int, why: str) -> None:
        """Ask before kept send ``hold`` of the room shown is discarded (``DiscardDialog``:
        its text gone from this device for good, Copy text offered first); confirmed, the
        controller lets it go (``Controller.discard_kept``), only if it is still kept."""
        key = self.controller.current
        model = self.timeline.model()
        if not key or model is None:
            return
        prefix = f"kept-{hold}-"
        texts = [
            str(model.index(i, 0).data(Roles.Body) or "")
            for i in range(model.rowCount())
            if str(model.index(i, 0).data(Roles.EventId) or "").startswith(prefix)
            and model.index(i, 0).data(Roles.Echo)
        ]
        if not texts:
            return  # signed or let go meanwhile: its row is gone
        text = "\n\n".join(t for t in texts if t)
        why = why.removesuffix(f"; {UNSENT_HINT}")
        dialog = DiscardDialog(
            texts[0],
            why,
            len(texts) - 1,
            lambda: QGuiApplication.clipboard().setText(text),
            self.window,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.discard_dialog = dialog
        dialog.accepted.connect(lambda: self.controller.discard_kept(key, hold))
        dialog.finished.connect(lambda _r: setattr(self, "discard_dialog", None))
        dialog.open()

    def _on_kept_discarded(self, _key: str, said: str) -> None:
        self.window.statusBar().showMessage(said, 15000)

    def _popup(self, target: Target, global_pos: QPoint, in_thread: bool = False) -> None:
        self._open_menu(self.build_menu(target, self.window, in_thread), global_pos)

    def _open_menu(self, menu: QMenu, global_pos: QPoint) -> None:
        self.menu = menu
        self._menu_open = True
        self.menu.aboutToHide.connect(self._menu_closed)
        self.menu.popup(global_pos)

    def _menu_closed(self) -> None:
        self._menu_open = False
        QTimer.singleShot(0, self._maybe_hide)

    def _context_menu(self, pos: QPoint) -> None:
        index = self.timeline.indexAt(pos)
        target = self.target_at(index)
        where = self.timeline.viewport().mapToGlobal(pos)
        if target is not None:
            self._popup(target, where)
            return
        unsent = self.unsent_menu(index, self.window)
        if unsent is not None:
            self._open_menu(unsent, where)

    def _thread_menu(self, pos: QPoint) -> None:
        view = self.thread_panel.view
        target = self.target_at(view.indexAt(pos))
        if target is not None:
            self._popup(target, view.viewport().mapToGlobal(pos), in_thread=True)

    def _bar_menu(self) -> None:
        target = self.bar.target
        if target is not None:
            button = self.bar.more_menu_button
            self._popup(target, button.mapToGlobal(button.rect().bottomLeft()))

    # -- the actions ---------------------------------------------------------------------------

    def pick_reaction(self, target: Target) -> None:
        """The emoji picker, below the hover bar (or the row); the pick reacts."""
        picker = EmojiPicker(self.controller.settings.recent_emoji, self.window)
        picker.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        picker.picked.connect(lambda char: self._picked(target, picker, char))
        self.picker = picker
        anchor = self.bar if self.bar.isVisible() else self.timeline.viewport()
        picker.popup_at(anchor.mapToGlobal(anchor.rect().bottomRight()))

    def _picked(self, target: Target, picker: EmojiPicker, char: str) -> None:
        self.controller.settings.recent_emoji = list(picker.recent)
        self.controller.save_settings()
        if not self.controller.own_reaction(self.controller.current, target.event_id, char):
            self.controller.react(target.event_id, char)  # given already: nothing to add

    def refusal(self, event_id: str) -> str:
        """Why a reply to, or an edit of, ``event_id`` is not sent ("" when it can be):
        an id two devices signed takes neither (PROTOCOL.md section 18.1)."""
        rel = self.relations()
        if rel is None or event_id not in rel.repeated:
            return ""
        return (
            "two devices used this message's id (see the room's audit): replies to it, "
            "edits and its deletion are not sent"
        )

    def _refused(self, event_id: str, what: str) -> bool:
        why = self.refusal(event_id)
        if why:
            self.controller.error.emit(what, why)
        return bool(why)

    def reply(self, target: Target) -> None:
        if self._refused(target.event_id, "Replying"):
            return
        self._reply_target = target
        self.composer.start_reply(target.event_id)

    def edit(self, target: Target) -> None:
        if target.can_edit and not self._refused(target.event_id, "Editing"):
            self.composer.start_edit(target.event_id, target.text)

    def edit_last(self) -> None:
        """Up in an empty composer: edit the newest message of the user's shown."""
        model = self.timeline.model()
        if model is None:
            return
        for i in range(model.rowCount() - 1, -1, -1):
            index = model.index(i, 0)
            if (
                bool(index.data(Roles.Own))
                or index.data(Roles.Sender) == self.controller.identity.user_id
            ):
                target = self.target_at(index)
                if target is not None and target.can_edit:
                    self.timeline.scrollTo(index)
                    self.edit(target)
                    return
        self.window.statusBar().showMessage("No message of yours to edit here", 5000)

    def delete(self, target: Target) -> None:
        if not target.can_delete or self._refused(target.event_id, "Deleting"):
            return
        dialog = DeleteDialog(target, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.delete_dialog = dialog

        def confirmed() -> None:
            if self.composer.editing == target.event_id:
                self.composer.cancel_mode()
            self.controller.delete_event(target.event_id, dialog.reason)

        dialog.accepted.connect(confirmed)
        dialog.finished.connect(lambda _r: setattr(self, "delete_dialog", None))
        dialog.open()

    def _on_mode_changed(self) -> None:
        if self.composer.editing is not None:
            self.mode_bar.show_edit()
        elif self.composer.reply_to is not None:
            target = self._reply_target
            if target is None or target.event_id != self.composer.reply_to:
                target = self.target_of(self.composer.reply_to)
            self.mode_bar.show_reply(
                target.name if target else "a message",
                target.quoted or target.text if target else "",
                target.trust if target else "verified",
                sender_id=target.sender_id if target else "",
                warning=target.warning if target else None,
            )
        else:
            self.mode_bar.clear()
            self._reply_target = None

    # -- previous versions ----------------------------------------------------------------------

    def show_versions(self, event_id: str) -> None:
        """The original text and every applied edit of ``event_id``, with their times and
        trust states; the original is read from this device's index."""
        key = self.controller.current
        known = self.controller.relations(key)
        agg = known[1].of(event_id) if known is not None else None
        if known is None or agg is None or not agg.edits:
            self.window.statusBar().showMessage("This message was not edited", 5000)
            return
        target = self.target_of(event_id)
        dialog = self.versions_dialog
        if dialog is None:
            dialog = self.versions_dialog = VersionsDialog(
                target.name if target else "",
                self.window,
                sender_id=target.sender_id if target else "",
                warning=target.warning if target else None,
            )
            dialog.finished.connect(lambda _r: setattr(self, "versions_dialog", None))
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        edits = [
            Version(f"Edit {i}", e.timestamp_ms, e.state, e.body, self._late(key, e))
            for i, e in enumerate(agg.edits, start=1)
        ]
        original = Version("Original", 0, "", None)
        dialog.set_versions([original, *edits])
        dialog.show()
        dialog.raise_()
        self._versions_asked += 1
        asked = self._versions_asked
        self.controller.tasks.start(
            self._fill_original(key, event_id, asked, edits), "Reading the original text"
        )

    async def _fill_original(
        self, key: str, event_id: str, asked: int, edits: list[Version]
    ) -> None:
        """The dialog's "Original": ``event_id``'s row, read where the relations of the
        audit ``rows_at`` reads put it, and only if the row read there is that event (as
        the thread panel and a reply's quote check theirs). A position taken when the
        dialog opened could be another message's by the time it was read (a re-audit
        between: a backdated row placed before it, the whole history read), whose text
        and trust the dialog showed as this message's original. Else the original stays
        "not loaded yet"."""
        known = self.controller.relations(key)
        position = known[1].positions.get(event_id) if known is not None else None
        if position is None:
            return
        try:
            rows = await self.controller.rows_at(key, [position])
        except (RuntimeError, sqlite3.Error) as exc:  # its engine closed meanwhile
            log.warning("could not read the original of an edited message: %s", exc)
            return
        dialog = self.versions_dialog
        if dialog is None or asked != self._versions_asked:
            return
        shown = rows.get(position)
        if shown is None or shown.verdict.event.event_id != event_id:
            return
        ev = shown.event
        if isinstance(ev, Malformed):
            body = "(This device's cached copy of the original is damaged.)"
            state = TrustState.INVALID.value
        else:
            body = ev.body or ""
            state = shown.verdict.state.value
        # as its row says: the copy read there arrived long after its date
        copy = late_copy(event_id, shown.verdict.path, shown.verdict.line)
        late = self.controller.late_arrival(key, copy)
        note = late.note if late is not None else None
        original = Version("Original", shown.verdict.event.timestamp_ms, state, body, note)
        dialog.set_versions([original, *edits])

    def _late(self, key: str, edit: Edit) -> str | None:
        """What Previous versions says beside ``edit`` when this device saw it arrive long
        after its date (``Controller._note_late_changes``), by the copy applied."""
        copy = change_copy(edit.event_id, edit.path, edit.line)
        late = self.controller.late_arrival(key, copy) if copy is not None else None
        return late.note if late is not None else None

    # -- threads ----------------------------------------------------------------------------

    def open_thread(self, root_event_id: str) -> None:
        """Show the thread of ``root_event_id`` beside the timeline (a reply's own thread
        root is found first) and put the keyboard in its composer."""
        key = self.controller.current
        if not key or "::" not in root_event_id:
            return
        rel = self.relations()
        root = rel.thread_root.get(root_event_id, root_event_id) if rel else root_event_id
        if rel is not None and root in rel.repeated:  # which copy's thread: nobody can say
            self.controller.error.emit("Opening the thread", REPEATED_ROOT)
            return
        target = self.target_of(root)
        if self.thread_key != key:
            self._thread_rows.clear()
        self.thread_key = key
        self.thread_panel.start(
            root,
            target.name if target else "",
            sender_id=target.sender_id if target else "",
            warning=target.warning if target else None,
            trust=target.trust if target else "verified",
        )
        if not self.thread_panel.isVisible():
            self.thread_panel.show()
            total = sum(self.window.timeline_splitter.sizes())
            self.window.timeline_splitter.setSizes([max(200, total - PANEL_WIDTH), PANEL_WIDTH])
        self.refresh_thread()
        self.thread_panel.composer.setFocus()

    def close_thread(self) -> None:
        self.thread_panel.hide()
        self.thread_panel.root_id = ""
        self.thread_key = ""
        self._thread_rows.clear()
        self.composer.setFocus()

    def refresh_thread(self) -> None:
        """Read the thread's rows that are not held yet, then show them all."""
        if not self.thread_key or not self.thread_panel.root_id:
            return
        self._thread_asked += 1
        self.controller.tasks.start(
            self._load_thread(self.thread_key, self.thread_panel.root_id, self._thread_asked),
            "Reading the thread",
        )

    async def _load_thread(self, key: str, root: str, asked: int) -> None:
        known = self.controller.relations(key)
        if known is None:
            self.thread_panel.set_note("The room is still being read.")
            return
        result, rel = known
        if root in rel.repeated:
            # Another device signed a message under the root's id since the thread was
            # opened: it is no one thread any more (as ``open_thread`` refuses it), and
            # the panel showed "0 replies" with a composer whose replies were refused.
            if key == self.thread_key and root == self.thread_panel.root_id:
                self.close_thread()
                self.controller.error.emit("The thread", REPEATED_ROOT)
            return
        agg = rel.of(root)
        replies = list(agg.thread) if agg is not None else []
        ids = [root, *replies[-MAX_THREAD_REPLIES:]]
        audit = result.audit_number
        wanted = {
            rel.positions[eid]: eid
            for eid in ids
            if eid in rel.positions and self._thread_rows.get(eid, (-1,))[0] != audit
        }
        try:
            rows = await self.controller.rows_at(key, wanted)
        except (RuntimeError, sqlite3.Error) as exc:
            log.warning("could not read the thread's rows: %s", exc)
            return
        if (
            asked != self._thread_asked
            or key != self.thread_key
            or root != self.thread_panel.root_id
        ):
            return  # a newer look at the thread answers instead
        for position, shown in rows.items():
            ev = shown.event
            if isinstance(ev, Malformed) or ev.event_id != wanted.get(position):
                continue
            v = shown.verdict
            self._thread_rows[ev.event_id] = (
                audit,
                Assessed(ev, v.state, v.reason, v.path, v.line),
            )
        if root not in self._thread_rows:
            # A root nobody replied to yet is not among the relations' positions: it is
            # a row of the timeline shown (it was just clicked).
            model = self.timeline.model()
            if isinstance(model, TimelineModel):
                for i in range(model.rowCount() - 1, -1, -1):
                    r = model.row(i)
                    if r.event_id == root and not r.echo and r.trust:
                        path, _, line = r.location.rpartition(":")
                        number = int(line) if line.isdigit() else 0
                        item = Assessed(_event_of(r), _state(r.trust), r.reason, path, number)
                        self._thread_rows[root] = (audit, item)
                        break
        shown_rows = [
            self._as_shown(self._thread_rows[eid][1], root)
            for eid in ids
            if eid in self._thread_rows
        ]
        self.thread_panel.set_rows(
            shown_rows,
            len(replies),
            self.controller.names(key),
            self._panel_relations(rel, ids, root),
        )
        missing = len(ids) - len(shown_rows)
        if root not in self._thread_rows:
            self.thread_panel.set_note("The first message of this thread is not loaded yet.")
        elif missing:
            self.thread_panel.set_note(f"{missing:,} replies could not be read yet.")
        elif len(replies) <= MAX_THREAD_REPLIES:
            self.thread_panel.set_note("" if replies else "No replies yet: write the first one.")

    @staticmethod
    def _as_shown(item: Assessed, root: str) -> Assessed:
        """A thread row: a reply to the root quotes nothing (the root is the panel's
        first row). What relations say of it (edits, a deletion, reactions) the panel's
        model shows as the timeline does (``_panel_relations``)."""
        ev = item.event
        if ev.parent_event_id == root:
            item = item._replace(event=ev._replace(parent_event_id=None))
        return item

    @staticmethod
    def _panel_relations(rel: Relations, ids: list[str], root: str) -> Relations:
        """The room's relations of the rows the thread panel shows, for its model: each
        row then says it was edited (with its versions), deleted (with the reason) and
        who reacted, as its row in the timeline does. Rewriting the rows' text instead
        left an edited reply with nothing to say it had been edited. The root's own
        thread is the panel itself: not repeated on its first row."""
        aggregates: dict[str, Aggregate] = {}
        for eid in ids:
            agg = rel.of(eid)
            if agg is not None:
                aggregates[eid] = dataclasses.replace(agg, thread=()) if eid == root else agg
        return Relations(rel.room_id, aggregates)

    def _thread_reply(self, text: str) -> None:
        root = self.thread_panel.root_id
        if (
            root
            and self.thread_key == self.controller.current
            and not self._refused(root, "Not sent")
        ):
            self.controller.send_text(text, reply_to=root)
        else:  # not sent: the text stays where it was written
            self.thread_panel.composer.setPlainText(text)

    # -- the controller's signals ----------------------------------------------------------------

    def _on_current_changed(self, key: str) -> None:
        self.bar.hide()
        self._hovered = QPersistentModelIndex()
        self.composer.cancel_mode()  # a reply or an edit belongs to the room it began in
        if self.thread_key and self.thread_key != key:
            self.close_thread()
        self._watch_model()

    def _on_relations_changed(self, key: str) -> None:
        if key != self.controller.current:
            return
        if self.thread_panel.isVisible() and key == self.thread_key:
            self.refresh_thread()
        self._retarget()

    # -- events ------------------------------------------------------------------------------------

    @guard(False)
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if not alive(self.timeline):
            return False  # the window is being torn down: its children go first
        kind = event.type()
        if watched is self.timeline.viewport():
            if kind == QEvent.Type.MouseMove:
                self._hover(event.position().toPoint())  # type: ignore[attr-defined]
            elif kind == QEvent.Type.Leave:
                QTimer.singleShot(50, self._maybe_hide)
            elif kind == QEvent.Type.Resize:
                QTimer.singleShot(0, self._reposition)
        elif watched is self.timeline:
            if kind == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
                return self._key(event)
            if kind == QEvent.Type.FocusIn:
                self._focus_in()
            elif kind == QEvent.Type.FocusOut and self._keyboard and not self._menu_open:
                self._keyboard = False
                QTimer.singleShot(0, self._maybe_hide)
        return False

    def _focus_in(self) -> None:
        """Keyboard users land on the newest message when nothing is current yet."""
        model = self.timeline.model()
        if model is None or not model.rowCount():
            return
        if not self.timeline.currentIndex().isValid():
            self.timeline.setCurrentIndex(model.index(model.rowCount() - 1, 0))
        self._keyboard = True
        self._show_at(self.timeline.currentIndex())

    def _key(self, event: QKeyEvent) -> bool:
        """The shortcuts on the timeline's current row; True when one was used."""
        key = event.key()
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if key == Qt.Key.Key_Escape:
            self.bar.hide()
            self.composer.setFocus()
            return True
        target = self.target_at(self.timeline.currentIndex())
        if target is None:
            return False
        ctrl = Qt.KeyboardModifier.ControlModifier
        plain = mods in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier)
        if event.matches(QKeySequence.StandardKey.Copy):
            self._act("copy", target=target)
        elif key == Qt.Key.Key_Menu or (
            key == Qt.Key.Key_F10 and mods == Qt.KeyboardModifier.ShiftModifier
        ):
            rect = self.timeline.visualRect(self.timeline.currentIndex())
            self._popup(target, self.timeline.viewport().mapToGlobal(rect.center()))
        elif mods & ctrl:
            return False
        elif key == Qt.Key.Key_R and plain:
            self._act("reply", target=target)
        elif key == Qt.Key.Key_T and plain:
            self._act("thread", target=target)
        elif key == Qt.Key.Key_E and plain and target.can_edit:
            self._act("edit", target=target)
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and target.can_delete:
            self._act("delete", target=target)
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Colon):
            self._act("pick", target=target)
        else:
            return False
        return True


def install(window: MainWindow, controller: Controller) -> RelationActions:
    """Wire the message actions into ``window``."""
    return RelationActions(window, controller)
