"""The attachments feature: send files and images, show image thumbnails, open and save
received files — verified against their signed hash first, always.

``install(window, controller)`` wires it into an existing ``MainWindow`` through the
window's hooks (``files_chosen``, ``composer.image_pasted``, ``attach_button``,
``delegate.thumbnail_provider``) and an event filter on the timeline's viewport; it
edits no other module.

- Dropped, pasted or picked files are uploaded one at a time, in the order given, each
  with a row in a strip above the composer (progress, Cancel; refusals and errors stay
  in the row, in red, with the reason). When a blob is stored, the message is sent.
- Image rows are painted from the thumbnail embedded in the signed event (never from the
  blob), cached per event within ``THUMB_CACHE_BYTES`` of pixels; a row with no usable
  thumbnail gets a placeholder shared by every row of its size.
- A click on a file card or image (or a double-click on its row) opens a menu: Open
  (download into the cache, verify, hand the verified copy to the desktop) or Save as…
  (a verified copy where the user says). A blob that does not match its message is
  never opened or saved: the row says so in red.
- Programs, scripts, installers, shortcuts, macro documents and active web content
  (``is_risky_to_open``) are only saved, never opened by a click. Every copy handed
  out (opened or saved) carries the platform's "downloaded from the internet" mark
  (``download_mark.mark_as_downloaded``, which the export uses too), so the desktop's
  own warnings apply to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
import logging
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QBuffer,
    QByteArray,
    QEvent,
    QIODevice,
    QObject,
    QPoint,
    QRect,
    QSize,
    Qt,
    QUrl,
)
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QDragEnterEvent,
    QFont,
    QImage,
    QImageReader,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPixmap,
)
from PySide6.QtWidgets import QBoxLayout, QFileDialog, QLabel, QMenu, QWidget

from ..download_mark import mark_as_downloaded
from ..protocol.attachments import (
    FileInfo,
    active_content,
    parse_file_content,
    safe_file_name,
)
from ..storage.base import StorageError
from ..sync import blobs
from ..sync.client import RoomRef
from .controller import Controller
from .models.timeline_model import Roles
from .safe import guard
from .style import ACCENT
from .widgets.attachment_strip import AttachmentStrip, TransferRow
from .widgets.composer import local_files
from .widgets.message_delegate import MessageDelegate, image_box

log = logging.getLogger("bucket_chat.gui")

MB = 1024 * 1024
MIN_DOWNLOAD_LIMIT = 256 * MB
"""Received files up to this size (or the send limit, if larger) are downloaded on
request; larger announcements are refused before any byte is fetched."""
THUMB_CACHE_BYTES = 64 * MB
"""The pixels painted thumbnails and placeholders may hold (width × height × depth):
the least recently painted go first. About fifty full-size pictures on a 2× screen; a
screenful is a few. Red team rt69: a cache of 300 entries, whatever their size, held
352 MiB at 2× for 300 tiny messages of no picture at all."""
NO_PICTURE_ROWS = 4096
"""Rows remembered to have no usable thumbnail (a few dozen bytes each), so that
painting them again neither parses nor decodes anything."""
STAGES = {
    blobs.READING: "Reading",
    blobs.PREVIEW: "Making a preview…",
    blobs.UPLOADING: "Uploading…",
    blobs.DONE: "Sending…",
}

Index = Any  # QModelIndex | QPersistentModelIndex


def passing(exc: BaseException) -> bool:
    """Whether a transfer that failed with ``exc`` may work on a later try: the storage
    did not answer, was busy, or its answer was cut off (``StorageError.transient``)."""
    return isinstance(exc, StorageError) and exc.transient


def display_size(content: Mapping[str, Any] | None) -> tuple[int, int]:
    """Where an image row's picture goes: the box the delegate reserves for it
    (``message_delegate.image_box``, the one size its layout and clicks take), so the
    pixmap fills exactly the space laid out for it."""
    return image_box(content)


def decode_thumbnail(data: bytes, fmt: str) -> QImage | None:
    """Decode an untrusted thumbnail, refusing anything but a small JPEG or PNG."""
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    reader = QImageReader(buffer, fmt.encode("ascii"))
    size = reader.size()
    if not size.isValid() or size.width() > 1024 or size.height() > 1024:
        return None
    image = reader.read()
    return None if image.isNull() else image


def pixmap_bytes(pix: QPixmap) -> int:
    """The bytes a pixmap's pixels take."""
    return pix.width() * pix.height() * pix.depth() // 8


class PixmapCache:
    """Pixmaps by key, bounded by the bytes of their pixels (``limit``): the least
    recently used go first (the newest is kept whatever its size)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._items: OrderedDict[Hashable, QPixmap] = OrderedDict()

    def get(self, key: Hashable) -> QPixmap | None:
        pix = self._items.get(key)
        if pix is not None:
            self._items.move_to_end(key)
        return pix

    def put(self, key: Hashable, pix: QPixmap) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.held -= pixmap_bytes(old)
        self._items[key] = pix
        self.held += pixmap_bytes(pix)
        while self.held > self.limit and len(self._items) > 1:
            _, gone = self._items.popitem(last=False)
            self.held -= pixmap_bytes(gone)

    def clear(self) -> None:
        self._items.clear()
        self.held = 0

    def values(self) -> Iterator[QPixmap]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)


class AttachmentsFeature(QObject):
    def __init__(
        self, window: Any, controller: Controller, *, cache: blobs.BlobCache | None = None
    ) -> None:
        super().__init__(window)
        self.window = window
        self.controller = controller
        self.cache = cache or blobs.BlobCache()
        self.strip = AttachmentStrip()
        # Painted pictures by (event id, thumbnail digest, pixel ratio), and the shared
        # placeholders by ("placeholder", width, height, pixel ratio, kind).
        self._thumbs = PixmapCache(THUMB_CACHE_BYTES)
        # Rows with no usable picture -> the key of the placeholder they show.
        self._no_picture: OrderedDict[tuple[str, str, int], tuple[Any, ...]] = OrderedDict()
        self._queue = asyncio.Lock()
        # Failed uploads that offer "Try again": their rows -> the room each was for.
        self._retryable: dict[TransferRow, str] = {}
        # Uploads queued or running: their rows -> (room, cancel, task), so that leaving
        # the room stops them (they sent into the room left, after the leave).
        self._uploading: dict[TransferRow, tuple[str, asyncio.Event, asyncio.Task[Any]]] = {}
        self._gone: set[str] = set()  # rooms left, or being left: nothing is sent there
        # Once the leave is queued (what is sent before it is the room's), not before: a
        # leave that fails leaves the room and its uploads as they were.
        controller.room_forgotten.connect(self._on_room_forgotten)
        self.mismatches: list[blobs.BlobMismatchError] = []
        # Blobs (by SHA-256) whose verified bytes run code whatever their name says
        # (``active_content``): what they are. Their menu offers only "Save as…".
        self.save_only: dict[str, str] = {}
        self.last_menu: QMenu | None = None
        # Seams for tests (and a future portal-based file chooser).
        self.open_url: Callable[[QUrl], Any] = QDesktopServices.openUrl
        self.choose_files: Callable[[], list[str]] = self._choose_files
        self.choose_save_path: Callable[[FileInfo], str | None] = self._choose_save_path

        self._place_strip()
        window.files_chosen.connect(self.attach_files)
        window.composer.image_pasted.connect(self._on_image_pasted)
        window.attach_button.clicked.connect(self._on_attach_clicked)
        window.delegate.thumbnail_provider = self.thumbnail_for
        self.view = window.timeline
        viewport = self.view.viewport()
        viewport.setMouseTracking(True)  # hover cursor over cards
        viewport.installEventFilter(self)
        self.drop_hint = QLabel(viewport)
        self.drop_hint.setObjectName("dropHint")
        self.drop_hint.setTextFormat(Qt.TextFormat.PlainText)  # names the room
        self.drop_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.drop_hint.setStyleSheet(
            f"QLabel#dropHint {{ background: rgba(58, 123, 213, 28); color: {ACCENT};"
            f" border: 2px dashed {ACCENT}; border-radius: 12px; font-size: 14pt; }}"
        )
        self.drop_hint.hide()

    def _place_strip(self) -> None:
        """Put the strip right above the composer's row of the room area."""
        parent = self.window.composer.parentWidget()
        layout = parent.layout() if parent is not None else None
        if isinstance(layout, QBoxLayout):
            for i in range(layout.count()):
                item = layout.itemAt(i)
                child = item.layout() if item is not None else None
                if child is not None and child.indexOf(self.window.composer) >= 0:
                    layout.insertWidget(i, self.strip)
                    return
        log.warning("attachments: composer row not found; the transfer strip is not shown")

    # -- limits ---------------------------------------------------------------------------------

    @property
    def limit_bytes(self) -> int:
        return max(1, int(self.controller.settings.attachment_limit_mb)) * MB

    @property
    def download_limit(self) -> int:
        return max(self.limit_bytes, MIN_DOWNLOAD_LIMIT)

    # -- sending --------------------------------------------------------------------------------

    def _on_attach_clicked(self) -> None:
        key = self.controller.current
        if not key:
            return
        paths = self.choose_files()
        if paths:
            self.attach_files(key, paths)

    def _choose_files(self) -> list[str]:
        paths, _ = QFileDialog.getOpenFileNames(self.window, "Attach files")
        return list(paths)

    def attach_files(
        self,
        key: str,
        paths: list[str],
        *,
        names: list[str] | None = None,
        retry: bool = True,
    ) -> list[asyncio.Task[Any]]:
        """Upload ``paths`` to room ``key`` in order, sending one message per file. An
        upload the storage did not take (offline, too slow) offers "Try again" unless
        ``retry`` is False (a file that is gone by then: a pasted image's)."""
        tasks = []
        self._gone.discard(key)  # attached to anew: a room joined again
        for i, path in enumerate(paths):
            name = names[i] if names else None
            shown = safe_file_name(name or Path(path).name)
            item = self.controller.rooms.item(key)
            row = self.strip.add_row(
                shown, "Waiting…", item.marked_name if item is not None else ""
            )
            cancel = asyncio.Event()
            coro = self._upload(key, Path(path), row, cancel, name, retry)
            task = self.controller.tasks.start(coro, f"Attaching {shown}")
            self._uploading[row] = (key, cancel, task)
            task.add_done_callback(functools.partial(self._upload_ended, row=row))
            row.cancel_requested.connect(
                lambda t=task, c=cancel, r=row: self._cancel_upload(t, c, r)
            )
            tasks.append(task)
        return tasks

    def _retry(self, key: str, path: Path, row: TransferRow, name: str | None) -> None:
        """A failed upload's "Try again": its row goes, and the file is read and sent
        anew (after any upload still queued: one at a time, in order)."""
        if self._retryable.pop(row, None) != key or row not in self.strip.rows:
            return  # tried again already, or its room was left meanwhile
        self.strip.remove_row(row)
        self.attach_files(key, [str(path)], names=[name] if name is not None else None)

    def _upload_ended(self, task: asyncio.Task[Any], *, row: TransferRow) -> None:
        """An upload's task ended; cancelled before it first ran (a leave or a Cancel in
        the same turn as the drop), ``_upload`` never removed its row."""
        self._uploading.pop(row, None)
        if task.cancelled() and not row.failed:
            self.strip.remove_row(row)

    def _on_room_forgotten(self, key: str) -> None:
        """A room left (or its storage removed): its uploads queued or running stop, and
        its failed ones can no longer be tried again — either sent the file into the room
        left, after the leave."""
        self._gone.add(key)
        for row, (room, cancel, task) in list(self._uploading.items()):
            if room == key:
                self._cancel_upload(task, cancel, row)
        for row, room in list(self._retryable.items()):
            if room == key:
                del self._retryable[row]
                row.set_error(f"{row.error} — not sent: you left the room", retry=False)

    @staticmethod
    def _cancel_upload(task: asyncio.Task[Any], cancel: asyncio.Event, row: TransferRow) -> None:
        """Still queued: drop it at once. Running: let ``upload`` stop at a safe point."""
        cancel.set()
        if not row.started:
            task.cancel()

    def _on_image_pasted(self, image: QImage) -> None:
        key = self.controller.current
        if key and not image.isNull():
            self.controller.tasks.start(self._send_pasted(key, image.copy()), "Pasting an image")

    async def _send_pasted(self, key: str, image: QImage) -> None:
        folder = Path(tempfile.mkdtemp(prefix="bucket-chat-paste-"))
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H.%M.%S")
        path = folder / f"Pasted image {stamp}.png"
        try:
            saved = await asyncio.to_thread(_save_png, image, path)
            if not saved:
                row = self.strip.add_row(path.name, "")
                row.set_error("The pasted image could not be converted to PNG")
                return
            tasks = self.attach_files(key, [str(path)], retry=False)  # the file goes below
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)

    async def _upload(
        self,
        key: str,
        path: Path,
        row: TransferRow,
        cancel: asyncio.Event,
        name: str | None,
        retry: bool = True,
    ) -> None:
        try:
            async with self._queue:
                row.started = True
                # What is read and sent under the picked name, when a link leads elsewhere.
                link = await asyncio.to_thread(blobs.link_note, path)
                via = f" ({link})" if link else ""

                def progress(done: int, total: int) -> None:
                    row.set_progress(done, total)
                    if total:
                        row.set_status(
                            f"Reading {done * 100 // total}% of {blobs.human_size(total)}{via}"
                        )

                def stage(what: str) -> None:
                    if what != blobs.READING:
                        row.set_status(STAGES.get(what, what) + via)
                        row.set_busy()

                content = await self.controller.client.upload_blob(
                    RoomRef.from_key(key),
                    path,
                    limit_bytes=self.limit_bytes,
                    progress=progress,
                    cancel=cancel,
                    stage=stage,
                    name=name,
                    cache=self.cache,
                )
            if key in self._gone:  # left while it was stored
                row.set_error(
                    "Not sent: you left the room (the file may remain in the storage, unreferenced)"
                )
                return
            self.controller.send_content(key, content)
            self.strip.remove_row(row)
        except blobs.UploadCancelledError as exc:
            log.info("upload of %s cancelled: %s", path.name, exc)
            self.strip.remove_row(row)
        except asyncio.CancelledError:
            self.strip.remove_row(row)
            raise
        except (blobs.BlobError, StorageError, OSError, ValueError) as exc:
            log.warning("could not attach %s: %s", path.name, exc)
            # A passing failure (no answer, too slow, busy, an answer cut off: red team
            # rt52) may do on a later try; a refusal would only be refused again.
            retry = retry and passing(exc) and key not in self._gone  # not into a room left
            row.set_error(str(exc), retry=retry)
            if retry:
                self._retryable[row] = key
                row.retry_requested.connect(lambda: self._retry(key, path, row, name))
                row.dismissed.connect(lambda: self._retryable.pop(row, None))
        except Exception as exc:
            log.exception("attaching %s failed", path.name)
            row.set_error(f"Unexpected error ({type(exc).__name__}): {exc}")
        finally:
            self._uploading.pop(row, None)

    # -- thumbnails -----------------------------------------------------------------------------

    def thumbnail_for(self, index: Index) -> QPixmap | None:
        """The picture for an image row: its embedded thumbnail, or a placeholder shared
        by the rows of its size that have none (the row's caption names its file)."""
        content = index.data(Roles.Content)
        if not isinstance(content, Mapping):
            return None
        info = content.get("info")
        thumb_text = info.get("thumbnail") if isinstance(info, Mapping) else None
        dpr = round(self._dpr() * 100)
        key = (
            str(index.data(Roles.EventId)),
            hashlib.sha256(str(thumb_text).encode("utf-8", "replace")).hexdigest()[:16],
            dpr,
        )
        pix = self._thumbs.get(key)
        if pix is not None:
            return pix
        shared = self._no_picture.get(key)
        if shared is not None:
            self._no_picture.move_to_end(key)
            return self._placeholder(shared)
        parsed = parse_file_content(content)
        image = None
        if isinstance(parsed, FileInfo) and parsed.thumbnail and parsed.thumbnail_format:
            image = decode_thumbnail(parsed.thumbnail, parsed.thumbnail_format)
        width, height = display_size(content)
        if image is not None:
            pix = self._render_thumbnail(image, width, height)
            self._thumbs.put(key, pix)
            return pix
        shared = ("placeholder", width, height, dpr, isinstance(parsed, FileInfo))
        self._no_picture[key] = shared
        if len(self._no_picture) > NO_PICTURE_ROWS:
            self._no_picture.popitem(last=False)
        return self._placeholder(shared)

    def _dpr(self) -> float:
        return float(self.view.devicePixelRatioF()) or 1.0

    def _canvas(self, width: int, height: int) -> tuple[QPixmap, QPainter]:
        """A transparent pixmap of the box at the view's pixel ratio, and a painter on
        it clipped to the box's rounded corners."""
        dpr = self._dpr()
        pix = QPixmap(QSize(round(width * dpr), round(height * dpr)))
        pix.setDevicePixelRatio(dpr)
        pix.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pix)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        clip = QPainterPath()
        clip.addRoundedRect(0, 0, width, height, 8, 8)
        painter.setClipPath(clip)
        return pix, painter

    def _render_thumbnail(self, image: QImage, width: int, height: int) -> QPixmap:
        """``image`` scaled into the box, centred."""
        dpr = self._dpr()
        pix, painter = self._canvas(width, height)
        scaled = image.scaled(
            round(width * dpr),
            round(height * dpr),
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        scaled.setDevicePixelRatio(dpr)
        w = scaled.width() / dpr
        h = scaled.height() / dpr
        painter.drawImage(QPoint(round((width - w) / 2), round((height - h) / 2)), scaled)
        painter.end()
        return pix

    def _placeholder(self, key: tuple[Any, ...]) -> QPixmap:
        """The placeholder of a box (``key``: its width, height, pixel ratio and whether
        the attachment is usable), one pixmap however many rows show it (red team rt69:
        one per row, each as large as a picture)."""
        pix = self._thumbs.get(key)
        if pix is not None:
            return pix
        _, width, height, _, usable = key
        pix, painter = self._canvas(width, height)
        painter.fillRect(QRect(0, 0, width, height), QColor(128, 128, 128, 40))
        painter.setPen(QColor(128, 128, 128))
        painter.setFont(QFont(self.view.font()))
        text = "No preview available" if usable else "Unusable attachment\nNo preview available"
        painter.drawText(
            QRect(8, 0, width - 16, height),
            Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
            text,
        )
        painter.end()
        self._thumbs.put(key, pix)
        return pix

    # -- clicks ---------------------------------------------------------------------------------

    def card_rect(self, index: Index) -> QRect | None:
        """Where the delegate painted the file card or image of ``index``, in viewport
        coordinates: the rectangle its painting uses (``MessageDelegate.attachment_rect``).
        Worked out from the bottom of the row, it was a line of reaction chips (or a
        thread summary, a repeated-id note) too low: a click on the chips opened the
        file's menu, one on the top of the picture nothing (red team rt56)."""
        if index.data(Roles.Kind) not in ("file", "image"):
            return None
        delegate: MessageDelegate = self.window.delegate
        return delegate.attachment_rect(index, self.view.visualRect(index), self.view.font())

    def _show_drop_hint(self, event: QDragEnterEvent) -> None:
        item = self.controller.rooms.item(self.controller.current)
        files = local_files(event.mimeData())
        if item is None or not files:
            return
        what = "this file" if len(files) == 1 else f"these {len(files)} files"
        self.drop_hint.setText(f"Drop to send {what} to {item.marked_name}")
        self.drop_hint.setGeometry(self.view.viewport().rect().adjusted(12, 12, -12, -12))
        self.drop_hint.raise_()
        self.drop_hint.show()

    @guard()
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.DragEnter and isinstance(event, QDragEnterEvent):
            self._show_drop_hint(event)
        elif kind in (QEvent.Type.DragLeave, QEvent.Type.Drop):
            self.drop_hint.hide()
        elif kind == QEvent.Type.MouseMove and isinstance(event, QMouseEvent):
            self._hover(event.position().toPoint())
        elif (
            kind in (QEvent.Type.MouseButtonRelease, QEvent.Type.MouseButtonDblClick)
            and isinstance(event, QMouseEvent)
            and event.button() == Qt.MouseButton.LeftButton
        ):
            pos = event.position().toPoint()
            index = self.view.indexAt(pos)
            card = self.card_rect(index) if index.isValid() else None
            on_card = card is not None and card.contains(pos)
            # A click on the card, or a double-click elsewhere on the row (not both: a
            # double-click on the card already opened the menu at its first release).
            if card is not None and on_card != (kind == QEvent.Type.MouseButtonDblClick):
                self.show_menu(index, self.view.viewport().mapToGlobal(pos))
        return False

    def _hover(self, pos: QPoint) -> None:
        index = self.view.indexAt(pos)
        card = self.card_rect(index) if index.isValid() else None
        viewport: QWidget = self.view.viewport()
        if card is not None and card.contains(pos):
            viewport.setCursor(Qt.CursorShape.PointingHandCursor)
        else:
            viewport.unsetCursor()

    def show_menu(self, index: Index, global_pos: QPoint) -> QMenu | None:
        key = self.controller.current
        content = index.data(Roles.Content)
        info = parse_file_content(content)
        event_id = str(index.data(Roles.EventId))
        menu = QMenu(self.view)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if isinstance(info, str):
            title = menu.addAction(f"This attachment cannot be used: {info}")
            title.setEnabled(False)
        else:
            title = menu.addAction(f"{info.name} · {blobs.human_size(info.size)}")
            title.setEnabled(False)
            menu.addSeparator()
            open_action = menu.addAction("Open")
            if info.risky_to_open:
                open_action.setText("Open (this kind of file can run code: save it instead)")
                open_action.setEnabled(False)
            elif info.sha256 in self.save_only:
                what = self.save_only[info.sha256]
                open_action.setText(f"Open (its contents are {what}: save it instead)")
                open_action.setEnabled(False)
            open_action.triggered.connect(
                lambda _checked=False: self.open_attachment(key, event_id, info)
            )
            save_action = menu.addAction("Save as…")
            save_action.triggered.connect(
                lambda _checked=False: self.save_attachment(key, event_id, info)
            )
        self.last_menu = menu
        menu.popup(global_pos)
        return menu

    # -- receiving ------------------------------------------------------------------------------

    def open_attachment(self, key: str, event_id: str, info: FileInfo) -> asyncio.Task[Any]:
        return self._transfer(key, event_id, info, None)

    def save_attachment(
        self, key: str, event_id: str, info: FileInfo, dest: str | None = None
    ) -> asyncio.Task[Any] | None:
        dest = dest or self.choose_save_path(info)
        if not dest:
            return None
        return self._transfer(key, event_id, info, Path(dest))

    def _choose_save_path(self, info: FileInfo) -> str | None:
        folder = Path.home() / "Downloads"
        start = str((folder if folder.is_dir() else Path.home()) / info.name)
        path, _ = QFileDialog.getSaveFileName(self.window, "Save attachment", start)
        return path or None

    def _fetch_again(
        self, key: str, event_id: str, info: FileInfo, dest: Path | None, row: TransferRow
    ) -> None:
        """A failed download's "Try again": its row goes, and it is fetched anew (once,
        however often the button was pressed)."""
        if row not in self.strip.rows:
            return
        self.strip.remove_row(row)
        self._transfer(key, event_id, info, dest)

    def _transfer(
        self, key: str, event_id: str, info: FileInfo, dest: Path | None
    ) -> asyncio.Task[Any]:
        row = self.strip.add_row(info.name, "Downloading…" if dest is None else "Saving…")
        row.started = True
        row.set_busy()  # the Storage interface reads whole objects: no byte count
        coro = self._download(key, event_id, info, dest, row)
        task = self.controller.tasks.start(coro, f"Downloading {info.name}")
        row.cancel_requested.connect(task.cancel)
        return task

    async def _download(
        self, key: str, event_id: str, info: FileInfo, dest: Path | None, row: TransferRow
    ) -> Path | None:
        try:
            if dest is None and info.risky_to_open:  # the menu disables it; check anyway
                raise blobs.BlobError(f"{info.name} can run code when opened: save it instead")
            data = await self.controller.client.download_blob(
                RoomRef.from_key(key),
                info,
                dest,
                cache=self.cache,
                max_bytes=self.download_limit,
                event_id=event_id,
            )
            if dest is None:
                # The name said nothing that runs code; the bytes may, and a desktop that
                # picks the handler by content (GIO for a name without a known
                # extension, file(1) for any) would run them.
                what = active_content(data, info.name)
                if what is not None:
                    self.save_only[info.sha256] = what
                    raise blobs.BlobError(
                        f"{info.name} was not opened: its contents are {what}, whatever "
                        "its name says, and opening it could run code: save it instead"
                    )
                row.set_status("Opening…")
                path = await asyncio.to_thread(self.cache.open_copy, info, data)
                await asyncio.to_thread(mark_as_downloaded, path)
                self.open_url(QUrl.fromLocalFile(str(path)))
            else:
                path = dest
                await asyncio.to_thread(mark_as_downloaded, path)
            self.strip.remove_row(row)
            return path
        except blobs.BlobMismatchError as exc:
            self.mismatches.append(exc)
            verb = "Not opened" if dest is None else "Not saved"
            row.set_error(f"{verb}: {exc.problem}. {exc.conclusion}.")
        except asyncio.CancelledError:
            self.strip.remove_row(row)
            raise
        except (blobs.BlobError, StorageError, OSError, ValueError) as exc:
            log.warning("could not fetch %s: %s", info.name, exc)
            row.set_error(str(exc), retry=passing(exc))
            if passing(exc):
                row.retry_requested.connect(
                    lambda: self._fetch_again(key, event_id, info, dest, row)
                )
        except Exception as exc:
            log.exception("downloading %s failed", info.name)
            row.set_error(f"Unexpected error ({type(exc).__name__}): {exc}")
        return None

    def shutdown(self) -> None:
        """Nothing to close: transfers are the controller's tasks, cancelled with it."""
        with contextlib.suppress(RuntimeError):
            self.view.viewport().removeEventFilter(self)


def _save_png(image: QImage, path: Path) -> bool:
    """QImage is reentrant: saving a private copy in a worker thread is safe."""
    return bool(image.save(str(path)))  # the format follows the ".png" suffix


def install(window: Any, controller: Controller) -> AttachmentsFeature:
    """Wire attachments into ``window``; the feature lives as long as the window."""
    feature = AttachmentsFeature(window, controller)
    window.attachments = feature
    return feature
