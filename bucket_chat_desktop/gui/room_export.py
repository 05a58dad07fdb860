""" "Export room…": a room's verified timeline saved as an HTML page or JSONL.

``install(window, controller)`` adds the action to the window's main (+) menu (the room
shown) and to every room's context menu. The export itself is ``bucket_chat_desktop.export``
fed through the client's read path (``ChatClient.room_view`` and ``timeline_page``, blobs
through ``ChatClient.download_blob``): rendering and writing run in worker threads, the GUI
thread only shows progress. A progress dialog can cancel (nothing is left behind); a
notice says what was written, with "Open folder"; errors are shown as they are. A
cancel that comes while the finished page takes its name is too late: the notice says
the export finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QLabel,
    QMenu,
    QMessageBox,
    QProgressDialog,
    QWidget,
)

from ..export import ExportError
from ..export.runner import ExportSummary, export_room, files_dir_for, suggested_file_name
from ..export.snapshot import RoomSnapshot, snapshot_of
from ..protocol.attachments import FileInfo
from ..protocol.room_state import doubted_elsewhere_note
from ..protocol.untrusted_text import html_escape, one_line
from ..storage.base import StorageError
from ..sync.client import RoomRef
from ..sync.room_state import RoomView
from .controller import Controller

log = logging.getLogger("bucket_chat.gui")

FILTERS = {"HTML page (*.html)": "html", "JSON Lines, one event a line (*.jsonl)": "jsonl"}

# (suggested path, the room's shown name) -> (chosen path, format), None when cancelled
Chooser = Callable[[str, str], tuple[str, str] | None]


class RoomExport(QObject):
    """The "Export room…" actions and the one export running at a time."""

    def __init__(self, window: Any, controller: Controller) -> None:
        super().__init__(window)
        self.window = window
        self.controller = controller
        self.task: asyncio.Task[Any] | None = None
        self.progress: QProgressDialog | None = None
        self.notice: QMessageBox | None = None  # the last "done" or "failed" notice
        self.last: ExportSummary | None = None
        # Seams for tests (and a portal-based file chooser later).
        self.choose: Chooser = self._choose
        self.open_url: Callable[[QUrl], Any] = QDesktopServices.openUrl

        self.action = QAction("Export room…", window)
        self.action.setToolTip("Save this room's verified messages as an HTML page or JSONL")
        self.action.triggered.connect(lambda: self.start(self.controller.current))
        window.add_menu.addAction(self.action)
        window.room_menu_hooks.append(self._add_to_room_menu)
        controller.current_changed.connect(self._on_current_changed)
        self._on_current_changed(controller.current)

    def _on_current_changed(self, key: str) -> None:
        self.action.setEnabled(bool(key) and self.task is None)

    def _add_to_room_menu(self, menu: QMenu, key: str) -> None:
        action = menu.addAction("Export room…", lambda: self.start(key))
        action.setEnabled(self.task is None)

    # -- choosing ---------------------------------------------------------------------------

    def _choose(self, suggested: str, room_name: str) -> tuple[str, str] | None:
        """The save dialog, with the format's suffix as its default: a name typed without
        one ("Q4") is the ``Q4.html`` the dialog asks about before replacing it. The suffix
        was added after the dialog, which had asked about ``Q4`` (nothing there), and an
        existing ``Q4.html`` was replaced unasked."""
        where = Path(suggested)
        dialog = QFileDialog(self.window, f"Export “{room_name}”", str(where.parent))
        dialog.setNameFilters(list(FILTERS))
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        dialog.setDefaultSuffix("html")
        dialog.filterSelected.connect(lambda f: dialog.setDefaultSuffix(FILTERS.get(f, "html")))
        dialog.selectFile(where.name)
        try:
            if dialog.exec() != QDialog.DialogCode.Accepted or not dialog.selectedFiles():
                return None
            path, chosen = dialog.selectedFiles()[0], dialog.selectedNameFilter()
        finally:
            dialog.deleteLater()
        fmt = FILTERS.get(chosen) or ("jsonl" if path.lower().endswith(".jsonl") else "html")
        if not path.lower().endswith(f".{fmt}"):
            # A name with another suffix ("Q4.v2"), which the dialog leaves as it is, or a
            # dialog that ignores the default suffix: the file written is not the one the
            # dialog asked about, so ask here.
            path += f".{fmt}"
            if os.path.lexists(path) and not self._replace(Path(path)):
                return None
        return path, fmt

    def _replace(self, path: Path) -> bool:
        answer = QMessageBox.warning(
            self.window,
            "Export room",
            f"{path.name} already exists.\nDo you want to replace it?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _suggested(self, key: str) -> tuple[str, str]:
        item = self.controller.rooms.item(key)
        shown = item.shown_name if item is not None else RoomRef.from_key(key).room_id
        folder = Path.home() / "Documents"
        base = folder if folder.is_dir() else Path.home()
        return str(base / suggested_file_name(shown, "html")), shown

    # -- running ------------------------------------------------------------------------------

    def start(self, key: str) -> asyncio.Task[Any] | None:
        """Ask where to, then export room ``key`` in the background."""
        if not key or self.task is not None:
            return None
        suggested, shown = self._suggested(key)
        chosen = self.choose(suggested, shown)
        if chosen is None:
            return None
        path, fmt = chosen
        # The save dialog asked before replacing a file: a file chosen that exists now may
        # be replaced. One that did not is never replaced (created meanwhile: the export
        # fails). The attachments never replace anything (``export.runner``).
        force = os.path.lexists(path)
        self.progress = self._show_progress(shown)
        task = self.controller.tasks.start(
            self._export(key, Path(path), fmt, shown, self.progress, force),
            f"Exporting {one_line(shown, 80)}",
        )
        task.add_done_callback(self._finished)
        self.task = task
        self.action.setEnabled(False)  # one export at a time
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        """Whatever ended the export (done, failed, cancelled, even before it began)."""
        if task is not self.task:
            return
        self.task = None
        self._on_current_changed(self.controller.current)
        progress, self.progress = self.progress, None
        if progress is not None:
            progress.canceled.disconnect(self.cancel)
            progress.close()
            progress.deleteLater()
        if task.cancelled():
            self.controller.error.emit("Export", "cancelled: nothing was written")

    def _show_progress(self, shown: str) -> QProgressDialog:
        dialog = QProgressDialog(self.window)
        # Plain text: the room's name is anyone's (a QLabel guesses the format, and a name
        # holding markup was drawn as rich text in the app's own dialog).
        label = QLabel()
        label.setTextFormat(Qt.TextFormat.PlainText)
        dialog.setLabel(label)
        dialog.setLabelText(f"Exporting “{one_line(shown, 80)}”…")
        dialog.setCancelButtonText("Cancel")
        dialog.setRange(0, 0)
        dialog.setWindowTitle("Export room")
        # Not modal: a modal progress dialog's setValue spins Qt's event loop from inside
        # the asyncio callback that reports progress (re-entering qasync); and the app
        # stays usable while a big room is written.
        dialog.setWindowModality(Qt.WindowModality.NonModal)
        dialog.setMinimumDuration(300)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.canceled.connect(self.cancel)
        return dialog

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _export(
        self, key: str, path: Path, fmt: str, shown: str, progress: QProgressDialog, force: bool
    ) -> ExportSummary | None:
        ref = RoomRef.from_key(key)
        try:
            client = self.controller.client
            described = client.describe(ref.storage_id)
            view = await client.room_view(ref)
            if described is None or view is None or view.result is None:
                raise ExportError("this room has not been read yet: wait until it is shown")
            item = self.controller.rooms.item(key)
            name = item.storage_name if item is not None else ref.storage_id
            where = f"{name} ({described})"
            # what the rows say of messages that arrived long after their date: the app's
            # for this session, which the export keeps (red team rt83)
            late = self.controller.late_arrivals(key)
            snapshot = snapshot_of(view, where, self._doubted(key, view), late)
            result = view.result
            progress.setMaximum(max(1, snapshot.total))
            cache = getattr(getattr(self.window, "attachments", None), "cache", None)

            async def read_page(start: int, stop: int) -> Any:
                return await client.timeline_page(ref, result, start, stop, pinned=True)

            async def read_blob(info: FileInfo, event_id: str) -> bytes:
                return await client.download_blob(ref, info, cache=cache, event_id=event_id)

            def step(done: int, total: int) -> None:
                progress.setMaximum(max(1, total))
                progress.setValue(done)
                progress.setLabelText(
                    f"Exporting “{one_line(shown, 80)}”: {done:,} of {total:,} events"
                )

            summary = await export_room(
                snapshot, read_page, read_blob, fmt=fmt, path=path, force=force, progress=step
            )
        except (ExportError, StorageError, OSError, ValueError) as exc:
            log.warning("export of %s failed: %s", key, exc)
            self._tell(
                QMessageBox.Icon.Warning,
                "Export failed",
                f"<p>The room was not exported.</p><p>{html_escape(str(exc))}</p>",
                None,
            )
            return None
        self.last = summary
        self._done(summary, snapshot)
        return summary

    def _doubted(self, key: str, view: RoomView) -> dict[tuple[str, str], str]:
        """The sentence of the timeline's ⚠ for each key of the room that another room of
        its storage does not trust for its sender (``Controller.doubted_elsewhere``), by
        (sender id, key): marked wherever such a message appears (docs/SECURITY.md), the
        export included. Looked up for the room's own keys (its roster, made with the
        audit exported), not by a walk of every doubt of the storage."""
        doubts = self.controller.doubted_elsewhere(key)
        keys = view.roster.keys() if view.roster is not None else frozenset()
        return {
            pair: doubted_elsewhere_note(pair[0], where)
            for pair in keys
            if (where := doubts.get(pair)) is not None
        }

    def _done(self, summary: ExportSummary, snapshot: RoomSnapshot) -> None:
        clean = snapshot.clean
        lines = [
            f"<p>{summary.events:,} events written to <b>{html_escape(summary.path.name)}</b>.</p>"
        ]
        if summary.cancelled_late:
            lines.insert(
                0,
                "<p>The export finished: the cancel came after the page was written "
                "(over any file of its name), so it was kept whole, with its "
                "attachments.</p>",
            )
        if summary.files_dir is not None:
            lines.append(
                f"<p>{summary.copied:,} attachment(s) copied to "
                f"<b>{html_escape(summary.files_dir.name)}</b>, each checked against its "
                "signed hash.</p>"
            )
            usual = files_dir_for(summary.path)
            if summary.files_dir != usual:
                lines.append(
                    f"<p>{html_escape(usual.name)} already held other files: it was left as "
                    "it was.</p>"
                )
        if summary.not_copied:
            items = "".join(
                f"<li>{html_escape(name)}: {html_escape(why)}</li>"
                for name, why in summary.not_copied[:10]
            )
            more = len(summary.not_copied) - 10
            extra = f"<li>… and {more:,} more</li>" if more > 0 else ""
            lines.append(f"<p>Not copied:</p><ul>{items}{extra}</ul>")
        if summary.late:
            many = summary.late != 1
            lines.append(
                f"<p>{summary.late:,} message{'s' if many else ''} in it arrived long after "
                f"{'their' if many else 'its'} date: the export says so below "
                f"{'each' if many else 'it'}, as the timeline does.</p>"
            )
        if summary.late_changes:
            many = summary.late_changes != 1
            lines.append(
                f"<p>{summary.late_changes:,} edit{'s' if many else ''} or deletion"
                f"{'s' if many else ''} in it arrived long after "
                f"{'their' if many else 'its'} date: the export says so with "
                f"{'each one it shows' if many else 'it, if it shows it'}, as the "
                "timeline does.</p>"
            )
        if not clean:
            lines.append("<p>The room's audit has findings: the export lists them at the top.</p>")
        if snapshot.vanished:
            lines.append(
                "<p>Part of the history was removed or changed in storage after this device "
                "read it: the export says so.</p>"
            )
        elif not snapshot.complete:
            lines.append("<p>The history was not completely read: the export says so.</p>")
        icon = (
            QMessageBox.Icon.Information
            if clean and not summary.not_copied
            else (QMessageBox.Icon.Warning)
        )
        self._tell(icon, "Room exported", "".join(lines), summary.path.parent)

    def _tell(self, icon: QMessageBox.Icon, title: str, html: str, folder: Path | None) -> None:
        if self.notice is not None:  # one notice at a time: the newest replaces the last
            with contextlib.suppress(RuntimeError):  # closed by the user already (deleted)
                self.notice.close()
        box = QMessageBox(icon, title, html, QMessageBox.StandardButton.Close, self.window)
        box.setTextFormat(Qt.TextFormat.RichText)  # every string in it was escaped
        if folder is not None:
            button = box.addButton("Open folder", QMessageBox.ButtonRole.ActionRole)
            button.clicked.connect(lambda: self.open_url(QUrl.fromLocalFile(str(folder))))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.notice = box


def install(window: QWidget, controller: Controller) -> RoomExport:
    """Wire "Export room…" into ``window``; the feature lives as long as the window."""
    feature = RoomExport(window, controller)
    window.room_export = feature  # type: ignore[attr-defined]
    return feature
