"""The attachments feature in the real window: a real Controller and MainWindow on a
temporary local storage, real drops, pastes and clicks, offscreen.

Screenshots go to ``$BUCKET_CHAT_SHOTS`` when set (else the test's temp folder)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from desk import preview_line
from nacl.signing import SigningKey
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, QRect, QSize, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QPainter,
)
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QStyleOptionViewItem
from test_models import Recording

from bucket_chat_desktop import download_mark
from bucket_chat_desktop.gui import attachments as attachments_module
from bucket_chat_desktop.gui import theme
from bucket_chat_desktop.gui.attachments import (
    THUMB_CACHE_BYTES,
    AttachmentsFeature,
    install,
    pixmap_bytes,
)
from bucket_chat_desktop.gui.controller import Controller
from bucket_chat_desktop.gui.main_window import MainWindow
from bucket_chat_desktop.gui.models.timeline_model import Roles, Row
from bucket_chat_desktop.gui.widgets.message_delegate import FILE_CARD
from bucket_chat_desktop.keys import load_or_create_identity, open_key_store
from bucket_chat_desktop.protocol import attachments as protocol_attachments
from bucket_chat_desktop.protocol.attachments import (
    MAX_THUMBNAIL_READ_BYTES,
    blob_path,
    file_content,
)
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.relations import REACTION
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, StorageOfflineError
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "design"
ALICE = "alice@example.com"
MB = 1024 * 1024

pytestmark = pytest.mark.usefixtures("qt_garbage_on_main_thread")

# -- fixtures -----------------------------------------------------------------------------


@dataclass
class Chat:
    qtbot: Any
    store: Path
    storage_id: str
    controller: Controller
    window: MainWindow
    feature: AttachmentsFeature
    shots: Path

    @property
    def key(self) -> str:
        return f"{self.storage_id}/{ROOM}"

    @property
    def storage(self) -> LocalStorage:
        storage = self.controller.client._storages[self.storage_id].storage
        assert isinstance(storage, LocalStorage)
        return storage

    def rows(self) -> list[Row]:
        model = self.controller.timeline(self.key)
        return [model.row(i) for i in range(model.rowCount())]

    def confirmed(self, kind: str) -> list[Row]:
        return [r for r in self.rows() if r.kind == kind and not r.echo]

    def wait_for(self, kind: str, count: int = 1, timeout: int = 15000) -> list[Row]:
        self.qtbot.waitUntil(lambda: len(self.confirmed(kind)) >= count, timeout=timeout)
        return self.confirmed(kind)

    def index_of(self, event_id: str) -> Any:
        model = self.controller.timeline(self.key)
        for i in range(model.rowCount()):
            if model.row(i).event_id == event_id:
                return model.index(i)
        raise AssertionError(f"{event_id} is not in the timeline")

    def blobs(self) -> list[str]:
        folder = self.store / "rooms" / ROOM / "blobs"
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []

    def settle(self) -> None:
        self.window.timeline.doItemsLayout()
        self.window.timeline.scrollToBottom()
        self.qtbot.wait(150)

    def shot(self, name: str) -> QImage:
        self.settle()
        path = self.shots / name
        self.window.grab().save(str(path))
        return QImage(str(path))


@pytest.fixture
def chat(qtbot: Any, qloop: Any, home: Path, tmp_path: Path, qapp: QApplication) -> Iterator[Chat]:
    """Alice's real Controller + MainWindow on a temp local store (``home`` of conftest
    gives the isolated BUCKET_CHAT_HOME and file key store), in a room where Bob asked
    for files."""
    theme.apply(qapp, "light")
    store = tmp_path / "store"
    identity, _ = load_or_create_identity(open_key_store(user_id=ALICE), ALICE, create=True)
    storage = LocalStorage(store)
    alice = RoomWriter(storage, ROOM, ALICE, identity.signing_key, displayname="Alice")
    wait_for(qtbot, alice.create_room("Design review", "2026-01-05T09:00:00.000Z"))
    bob = RoomWriter(storage, ROOM, "bob@example.com", SigningKey(b"\x02" * 32), displayname="Bob")
    wait_for(qtbot, bob.send([Draft.text("Can you send the mock-ups and the spec?")]))
    entry = StorageSettings(str(store), "Team share", [ROOM])
    settings = Settings(user_id=ALICE, displayname="Alice", storages=[entry])
    settings.last_room = f"{entry.id}/{ROOM}"
    controller = Controller(settings, identity)
    window = MainWindow(controller)
    window.resize(1000, 760)
    feature = install(window, controller)
    window.show()
    controller.start()
    shots = Path(os.environ.get("BUCKET_CHAT_SHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    c = Chat(qtbot, store, entry.id, controller, window, feature, shots)
    qtbot.waitUntil(lambda: len(c.confirmed("text")) >= 1, timeout=15000)
    yield c
    wait_for(qtbot, controller.shutdown())
    window.quitting = True
    window.close()


# -- helpers ------------------------------------------------------------------------------


def image_file(path: Path, size: tuple[int, int] = (640, 480)) -> Path:
    img = Image.new("RGB", size, (30, 30, 220))
    w, h = size
    img.paste((220, 40, 40), (0, 0, w // 2, h))
    img.paste((250, 200, 40), (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
    img.save(path)
    return path


def drop(widget: Any, paths: list[Path]) -> bool:
    """A real drag enter + drop of local files, as a file manager sends them."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(widget.rect().center())
    enter = QDragEnterEvent(
        pos.toPoint(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(
        pos,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, event)
    return event.isAccepted()


def color_near(color: QColor, rgb: tuple[int, int, int], tolerance: int = 60) -> bool:
    return all(
        abs(a - b) <= tolerance
        for a, b in zip((color.red(), color.green(), color.blue()), rgb, strict=True)
    )


# -- sending --------------------------------------------------------------------------------


def test_files_dropped_on_the_timeline_become_blobs_and_messages(
    chat: Chat, tmp_path: Path
) -> None:
    spec = tmp_path / "spec v2.pdf"
    spec.write_bytes(b"%PDF-1.7\n" + os.urandom(200_000))
    mock = image_file(tmp_path / "mock-up.png")
    assert drop(chat.window.timeline.viewport(), [spec, mock])

    files = chat.wait_for("file")
    images = chat.wait_for("image")
    spec_sha = hashlib.sha256(spec.read_bytes()).hexdigest()
    mock_sha = hashlib.sha256(mock.read_bytes()).hexdigest()
    assert chat.blobs() == sorted([spec_sha, mock_sha])
    assert (chat.store / blob_path(ROOM, spec_sha)).read_bytes() == spec.read_bytes()
    f, i = files[-1], images[-1]
    assert f.content["info"] == {
        "name": "spec v2.pdf",
        "size": spec.stat().st_size,
        "mimetype": "application/pdf",
        "sha256": spec_sha,
    }
    assert f.body == "📎 spec v2.pdf" and f.trust == "verified"  # what the row says
    assert i.content["msgtype"] == "m.image" and i.trust == "verified"
    assert (i.content["info"]["w"], i.content["info"]["h"]) == (640, 480)
    assert chat.rows().index(f) < chat.rows().index(i)  # sent in the order dropped
    chat.qtbot.waitUntil(lambda: not chat.feature.strip.rows)
    assert chat.controller.result(chat.key).clean

    # the thumbnail is painted from the event: red left, blue right, yellow centre
    image = chat.shot("attachments-sent.png")
    card = chat.feature.card_rect(chat.index_of(i.event_id))
    assert card is not None and card.width() == 320 and card.height() == 240
    origin = chat.window.timeline.viewport().mapTo(chat.window, QPoint(0, 0))
    card.translate(origin)
    dpr = image.devicePixelRatio() or 1

    def px(x: int, y: int) -> QColor:
        return image.pixelColor(int(x * dpr), int(y * dpr))

    assert color_near(px(card.left() + 20, card.top() + 20), (220, 40, 40))
    assert color_near(px(card.right() - 20, card.top() + 20), (30, 30, 220))
    assert color_near(px(card.center().x(), card.center().y()), (250, 200, 40))


def bob_sends(chat: Chat, data: bytes, name: str, **image: Any) -> str:
    """Bob (any member) stores ``data`` as a blob and signs a message announcing it."""
    sha = hashlib.sha256(data).hexdigest()
    target = chat.store / blob_path(ROOM, sha)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    content = file_content(name, len(data), "image/jpeg", sha, **image)
    bob = RoomWriter(chat.storage, ROOM, "bob@example.com", SigningKey(b"\x02" * 32))
    ev = wait_for(chat.qtbot, bob.send([Draft(MESSAGE, content)]))[1][-1]
    chat.qtbot.waitUntil(lambda: any(r.event_id == ev.event_id for r in chat.rows()))
    return ev.event_id


def painted_texts(chat: Chat, event_id: str) -> list[str]:
    """The texts the window's own delegate draws for a row."""
    index = chat.index_of(event_id)
    view = chat.window.timeline
    option = QStyleOptionViewItem()
    option.initFrom(view)
    option.rect = view.visualRect(index)
    option.rect.moveTop(0)
    option.font = view.font()
    image = QImage(option.rect.width(), option.rect.height(), QImage.Format.Format_ARGB32)
    painter = Recording(image)
    chat.window.delegate.paint(painter, option, index)
    painter.end()
    return painter.texts


def test_a_picture_is_named_under_it_and_a_program_is_never_a_picture(
    chat: Chat, tmp_path: Path
) -> None:
    """Red team rt55: an image row was its sender's thumbnail alone — a beach for
    "holiday.jpg.exe", with nothing naming the file until its menu was opened. Every
    picture is named under it (what Save and Open use), and an image message whose
    name runs code is a file card, without its picture."""
    photo = image_file(tmp_path / "beach.png", (400, 300))
    thumb = base64.b64encode(photo.read_bytes()).decode("ascii")
    shown = bob_sends(
        chat,
        b"\xff\xd8\xff" + b"\x00" * 300,
        "beach.jpg",
        width=400,
        height=300,
        thumbnail_b64=thumb,
    )
    program = bob_sends(
        chat,
        b"MZ\x90\x00" + b"\x00" * 200,
        "holiday.jpg.exe",
        width=400,
        height=300,
        thumbnail_b64=thumb,
    )
    chat.settle()
    rows = {r.event_id: r for r in chat.rows()}
    assert rows[shown].kind == "image" and rows[program].kind == "file"
    assert any(t.startswith("beach.jpg") and "bytes" in t for t in painted_texts(chat, shown))
    assert "holiday.jpg.exe" in painted_texts(chat, program)  # the card names it
    menu = chat.feature.show_menu(chat.index_of(program), QPoint(0, 0))
    assert menu is not None
    texts = [a.text() for a in menu.actions()]
    assert any(t.startswith("Open (this kind of file can run code") for t in texts)
    card = chat.feature.card_rect(chat.index_of(program))
    assert card is not None and (card.width(), card.height()) == FILE_CARD
    picture = chat.feature.card_rect(chat.index_of(shown))
    assert picture is not None and (picture.width(), picture.height()) == (400 * 240 // 300, 240)
    chat.shot("attachments-named-pictures.png")


class Shapes(QPainter):  # paints as usual, and keeps where pictures and cards went
    def __init__(self, device: QImage) -> None:
        super().__init__(device)
        self.pictures: list[QRect] = []
        self.boxes: list[QRect] = []

    def drawPixmap(self, *args: Any) -> None:
        if len(args) == 2 and isinstance(args[0], QPoint):
            pix = args[1]
            dpr = pix.devicePixelRatio() or 1
            size = QSize(round(pix.width() / dpr), round(pix.height() / dpr))
            self.pictures.append(QRect(args[0], size))
        super().drawPixmap(*args)

    def drawRoundedRect(self, *args: Any) -> None:
        self.boxes.append(QRect(args[0]))
        super().drawRoundedRect(*args)


def painted_attachment(chat: Chat, event_id: str) -> QRect:
    """Where the window's own delegate paints a row's picture or file card, in viewport
    coordinates, as its painting calls say (not as its layout says)."""
    index = chat.index_of(event_id)
    view = chat.window.timeline
    row = view.visualRect(index)
    option = QStyleOptionViewItem()
    option.initFrom(view)
    option.rect = QRect(row)
    option.font = view.font()
    image = QImage(row.right() + 1, row.bottom() + 1, QImage.Format.Format_ARGB32)
    painter = Shapes(image)
    chat.window.delegate.paint(painter, option, index)
    painter.end()
    cards = [b for b in painter.boxes if (b.width(), b.height()) == FILE_CARD]
    [painted] = painter.pictures or cards
    return painted


def react(chat: Chat, event_id: str, count: int) -> None:
    """``count`` members react to ``event_id``, each with their own long text: chips
    over several lines."""
    for i in range(count):
        key = SigningKey(bytes([10 + i]) * 32)
        w = RoomWriter(chat.storage, ROOM, f"member{i}@example.com", key)
        draft = Draft(REACTION, {"relates_to": event_id, "reaction": f"reaction number {i}"})
        wait_for(chat.qtbot, w.send([draft]))
    chat.qtbot.waitUntil(
        lambda: len(chat.index_of(event_id).data(Roles.Reactions) or ()) >= count, timeout=30000
    )


@pytest.mark.parametrize(("name", "kind"), [("beach.jpg", "image"), ("beach.jpg.exe", "file")])
@pytest.mark.parametrize("below", ["chips", "thread", "both"])
def test_the_click_area_of_a_card_is_where_it_is_painted(
    chat: Chat, tmp_path: Path, name: str, kind: str, below: str
) -> None:
    """Red team rt56: the click area of a picture or a file card was worked out from the
    bottom of its row, as if nothing were painted under it; reaction chips, a thread
    summary or a repeated-id note are. With a line of chips it was 26 pixels low (the
    top of the picture opened nothing), and a click on a chip under it opened the
    file's menu too. It is now the rectangle the painting uses."""
    photo = image_file(tmp_path / "beach.png", (400, 300))
    thumb = base64.b64encode(photo.read_bytes()).decode("ascii")
    ev = bob_sends(
        chat, b"\xff\xd8\xff" + b"\x00" * 300, name, width=400, height=300, thumbnail_b64=thumb
    )
    if below in ("chips", "both"):
        react(chat, ev, 14)
    if below in ("thread", "both"):
        bob = RoomWriter(chat.storage, ROOM, "bob@example.com", SigningKey(b"\x02" * 32))
        wait_for(chat.qtbot, bob.send([Draft.text("and the sunset one?", parent=ev)]))
        chat.qtbot.waitUntil(lambda: chat.index_of(ev).data(Roles.Thread) is not None)
    chat.settle()
    index = chat.index_of(ev)
    view = chat.window.timeline
    bar = view.verticalScrollBar()
    bar.setValue(bar.value() + view.visualRect(index).top())  # the whole row in view
    chat.qtbot.wait(100)
    assert view.viewport().rect().contains(view.visualRect(index))
    assert index.data(Roles.Kind) == kind
    card = chat.feature.card_rect(index)
    assert card is not None
    assert card == painted_attachment(chat, ev)
    regions = chat.window.delegate.regions(index, view.visualRect(index), view.font())
    under = [r for _, _, r in regions.parts] + [r for r in (regions.thread,) if r is not None]
    assert len({r.top() for r in under}) >= (1 if below == "thread" else 2)  # lines of them
    assert not [r for r in under if r.intersects(card)]

    shown: list[Any] = []
    chat.feature.show_menu = lambda i, _pos: shown.append(i.data(Roles.EventId))  # type: ignore[method-assign]
    viewport = view.viewport()
    left = Qt.MouseButton.LeftButton
    QTest.mouseClick(viewport, left, Qt.KeyboardModifier.NoModifier, card.topLeft() + QPoint(20, 3))
    assert shown == [ev]  # the top of the picture (the card) opens its menu
    QTest.mouseMove(viewport, card.topLeft() + QPoint(20, 3))
    assert viewport.cursor().shape() == Qt.CursorShape.PointingHandCursor
    for r in under:  # what is under the card is not the card
        QTest.mouseMove(viewport, r.center())
        assert viewport.cursor().shape() != Qt.CursorShape.PointingHandCursor
    QTest.mouseClick(viewport, left, Qt.KeyboardModifier.NoModifier, under[-1].center())
    assert shown == [ev]
    image = chat.window.grab().toImage()  # as it is now (``shot`` scrolls)
    image.save(str(chat.shots / f"attachments-click-area-{kind}-{below}.png"))
    if kind == "image":  # the picture's own pixels are where the click area says
        origin = viewport.mapTo(chat.window, QPoint(0, 0))
        dpr = image.devicePixelRatio() or 1

        def px(x: int, y: int) -> QColor:
            return image.pixelColor(int((origin.x() + x) * dpr), int((origin.y() + y) * dpr))

        assert color_near(px(card.left() + 20, card.top() + 2), (220, 40, 40))
        assert color_near(px(card.left() + 20, card.bottom() - 2), (220, 40, 40))
        assert not color_near(px(card.left() + 20, card.bottom() + 30), (220, 40, 40))


def test_the_click_area_of_a_card_in_an_echo_row_is_where_it_is_painted(chat: Chat) -> None:
    """A file this device failed to send is its card over a "Not sent" line: the card's
    click area is where it is painted, above that line (red team rt56: one layout for
    both, whatever follows the card)."""
    data = b"%PDF-1.7 minutes\n"
    content = file_content("minutes.pdf", len(data), "application/pdf", "a" * 64)
    alice = RoomWriter(chat.storage, ROOM, "carol@example.com", SigningKey(b"\x05" * 32))
    wait_for(chat.qtbot, alice.load_head())
    [*_, ev] = alice.prepare([Draft(MESSAGE, content)])
    chat.controller.timeline(chat.key).set_echo([ev], "failed", "no network")
    chat.settle()
    index = chat.index_of(ev.event_id)
    assert index.data(Roles.Echo) == "failed" and index.data(Roles.Kind) == "file"
    card = chat.feature.card_rect(index)
    assert card is not None and card == painted_attachment(chat, ev.event_id)
    view = chat.window.timeline
    regions = chat.window.delegate.regions(index, view.visualRect(index), view.font())
    assert card.bottom() < regions.bottom  # the "Not sent" line is under the card


def test_dragging_files_over_the_timeline_says_where_they_go(chat: Chat, tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("a")
    b.write_text("b")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(a)), QUrl.fromLocalFile(str(b))])
    viewport = chat.window.timeline.viewport()
    enter = QDragEnterEvent(
        viewport.rect().center(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(viewport, enter)
    assert enter.isAccepted()
    hint = chat.feature.drop_hint
    assert hint.isVisible() and hint.text() == "Drop to send these 2 files to Design review"
    chat.shot("attachments-drag.png")
    QApplication.sendEvent(viewport, QDragLeaveEvent())
    assert not hint.isVisible()
    assert chat.blobs() == []


def test_a_file_dropped_on_the_composer_is_sent(chat: Chat, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("meeting notes\n")
    assert drop(chat.window.composer.viewport(), [notes])
    row = chat.wait_for("file")[-1]
    assert row.content["info"]["mimetype"] == "text/plain"
    assert chat.window.composer.toPlainText() == ""  # the path was not pasted as text


def test_a_pasted_image_is_sent_as_an_image(chat: Chat) -> None:
    img = QImage(200, 100, QImage.Format.Format_RGB32)
    img.fill(QColor(40, 160, 90))
    QGuiApplication.clipboard().setImage(img)
    chat.window.composer.setFocus()
    chat.window.composer.paste()
    row = chat.wait_for("image")[-1]
    info = row.content["info"]
    assert info["name"].startswith("Pasted image ") and info["name"].endswith(".png")
    assert (info["w"], info["h"], info["mimetype"]) == (200, 100, "image/png")
    assert chat.blobs() == [info["sha256"]]
    pix = chat.feature.thumbnail_for(chat.index_of(row.event_id))
    assert pix is not None and not pix.isNull()
    assert color_near(pix.toImage().pixelColor(100, 50), (40, 160, 90), 20)


def test_the_attach_button_uploads_the_chosen_files(chat: Chat, tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x,y\n1,2\n")
    b.write_text("x,y\n3,4\n")
    chat.feature.choose_files = lambda: [str(a), str(b)]
    QTest.mouseClick(chat.window.attach_button, Qt.MouseButton.LeftButton)
    rows = chat.wait_for("file", 2)
    assert [r.body for r in rows[-2:]] == ["📎 a.csv", "📎 b.csv"]


def test_a_file_over_the_limit_is_refused_with_the_reason(chat: Chat, tmp_path: Path) -> None:
    chat.controller.settings.attachment_limit_mb = 1
    big = tmp_path / "photo.raw"
    big.write_bytes(b"\0" * (3 * MB))
    chat.window.files_chosen.emit(chat.key, [str(big)])
    chat.qtbot.waitUntil(lambda: bool(chat.feature.strip.errors()))
    assert chat.feature.strip.errors() == ["photo.raw is 3 MB; the limit is 1 MB (Settings)"]
    chat.shot("attachments-refused.png")
    # Uploads run one at a time, in order: once a later, small file is in the room, anything
    # the refused one could have stored or sent would already be there.
    small = tmp_path / "note.txt"
    small.write_text("fits")
    chat.window.files_chosen.emit(chat.key, [str(small)])
    assert [r.body for r in chat.wait_for("file")] == ["📎 note.txt"]
    assert len(chat.blobs()) == 1
    row = chat.feature.strip.rows[0]
    QTest.mouseClick(row.button, Qt.MouseButton.LeftButton)  # Dismiss
    assert chat.feature.strip.rows == [] and chat.feature.strip.isHidden()


class SlowStorage(LocalStorage):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.puts = 0

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        self.puts += 1
        await asyncio.sleep(30)
        return await super().put_if_absent(path, data)


def test_cancel_in_the_strip_stops_the_upload_and_the_queue(chat: Chat, tmp_path: Path) -> None:
    slow = SlowStorage(chat.store)
    chat.controller.client._storages[chat.storage_id].storage = slow
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    first.write_bytes(b"1" * 1000)
    second.write_bytes(b"2" * 1000)
    chat.window.files_chosen.emit(chat.key, [str(first), str(second)])
    strip = chat.feature.strip
    chat.qtbot.waitUntil(lambda: strip.rows and strip.rows[0].status_label.text() == "Uploading…")
    assert strip.rows[1].status_label.text() == "Waiting…"
    chat.shot("attachments-uploading.png")
    QTest.mouseClick(strip.rows[1].button, Qt.MouseButton.LeftButton)  # still queued
    chat.qtbot.waitUntil(lambda: len(strip.rows) == 1)
    QTest.mouseClick(strip.rows[0].button, Qt.MouseButton.LeftButton)  # uploading
    chat.qtbot.waitUntil(lambda: not strip.rows)  # long before the 30 s write would end
    assert slow.puts == 1 and chat.confirmed("file") == []
    # Uploads run one at a time, in order: a third file, sent once the storage answers
    # again, reaches the room after whatever the cancelled two could still have sent.
    chat.controller.client._storages[chat.storage_id].storage = LocalStorage(chat.store)
    third = tmp_path / "third.bin"
    third.write_bytes(b"3" * 1000)
    chat.window.files_chosen.emit(chat.key, [str(third)])
    assert [r.body for r in chat.wait_for("file")] == ["📎 third.bin"]
    assert slow.puts == 1


def test_the_row_of_a_picked_link_says_where_it_leads(chat: Chat, tmp_path: Path) -> None:
    """Red team rt65: what is read and sent under the picked name is what a link leads
    to; the row says so while the file goes (a user's own link is fine)."""
    slow = SlowStorage(chat.store)
    chat.controller.client._storages[chat.storage_id].storage = slow
    (tmp_path / "report-v7.pdf").write_bytes(b"%PDF-1.7 version 7")
    picked = tmp_path / "report.pdf"
    picked.symlink_to("report-v7.pdf")
    chat.window.files_chosen.emit(chat.key, [str(picked)])
    strip = chat.feature.strip
    chat.qtbot.waitUntil(lambda: strip.rows and "Uploading" in strip.rows[0].status_label.text())
    real = os.path.realpath(tmp_path / "report-v7.pdf")
    assert strip.rows[0].status_label.text() == f"Uploading… (a link to {real})"
    QTest.mouseClick(strip.rows[0].button, Qt.MouseButton.LeftButton)
    chat.qtbot.waitUntil(lambda: not strip.rows)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="procfs")
def test_a_picked_link_to_the_apps_environment_is_refused_and_named(
    chat: Chat, tmp_path: Path
) -> None:
    """Red team rt65: "invoice.pdf" linked to ``/proc/self/environ`` sent the app's
    environment (cloud secrets) to the room as "invoice.pdf"; it is refused, naming
    where the link leads, and nothing is stored."""
    picked = tmp_path / "invoice.pdf"
    picked.symlink_to("/proc/self/environ")
    chat.window.files_chosen.emit(chat.key, [str(picked)])
    chat.qtbot.waitUntil(lambda: bool(chat.feature.strip.errors()))
    assert chat.feature.strip.errors() == [
        f"invoice.pdf is not a regular file (a link to /proc/{os.getpid()}/environ: a file "
        "the system shows in /proc, not a document); nothing was sent"
    ]
    assert chat.blobs() == []


def test_many_files_scroll_in_a_strip_of_bounded_height(chat: Chat, tmp_path: Path) -> None:
    chat.controller.client._storages[chat.storage_id].storage = SlowStorage(chat.store)
    paths = []
    for i in range(9):
        path = tmp_path / f"scan-{i:02d}.pdf"
        path.write_bytes(b"%PDF" + bytes([i]) * 100)
        paths.append(str(path))
    chat.window.files_chosen.emit(chat.key, paths)
    strip = chat.feature.strip
    chat.qtbot.waitUntil(lambda: strip.rows[0].status_label.text() == "Uploading…")
    assert len(strip.rows) == 9
    row_h = strip.rows[0].sizeHint().height()
    assert strip.height() < 5 * row_h
    assert strip.verticalScrollBar().maximum() > 0
    assert chat.window.timeline.height() > 300
    chat.shot("attachments-many.png")


# -- receiving ------------------------------------------------------------------------------


def click_card(chat: Chat, row: Row) -> dict[str, Any]:
    """Click the row's file card or image; return the menu's actions by text."""
    chat.settle()
    card = chat.feature.card_rect(chat.index_of(row.event_id))
    assert card is not None
    QTest.mouseClick(
        chat.window.timeline.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        card.center(),
    )
    chat.qtbot.waitUntil(lambda: chat.feature.last_menu is not None)
    menu = chat.feature.last_menu
    assert menu is not None and menu.isVisible()
    return {a.text(): a for a in menu.actions() if a.text()}


def send_and_click(chat: Chat, path: Path, kind: str) -> tuple[Row, dict[str, Any]]:
    chat.window.files_chosen.emit(chat.key, [str(path)])
    row = chat.wait_for(kind)[-1]
    return row, click_card(chat, row)


def test_open_and_save_hand_out_verified_copies(chat: Chat, tmp_path: Path) -> None:
    opened: list[QUrl] = []
    chat.feature.open_url = opened.append
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 quarterly numbers")
    row, actions = send_and_click(chat, report, "file")
    assert set(actions) >= {"Open", "Save as…"}
    menu = chat.feature.last_menu
    assert menu is not None
    menu.grab().save(str(chat.shots / "attachments-menu.png"))
    actions["Open"].trigger()
    chat.qtbot.waitUntil(lambda: bool(opened))
    local = Path(opened[0].toLocalFile())
    assert local.name == "report.pdf" and local.read_bytes() == report.read_bytes()
    assert not os.access(local, os.X_OK)
    dest = tmp_path / "saved" / "copy.pdf"
    dest.parent.mkdir()
    chat.feature.choose_save_path = lambda info: str(dest)
    menu = chat.feature.show_menu(chat.index_of(row.event_id), QPoint(0, 0))
    assert menu is not None
    next(a for a in menu.actions() if a.text() == "Save as…").trigger()
    chat.qtbot.waitUntil(dest.exists)
    assert dest.read_bytes() == report.read_bytes()
    assert chat.feature.strip.errors() == []


def test_a_tampered_blob_is_reported_and_never_opened(chat: Chat, tmp_path: Path) -> None:
    opened: list[QUrl] = []
    chat.feature.open_url = opened.append
    photo = image_file(tmp_path / "whiteboard.png", (400, 300))
    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    chat.window.files_chosen.emit(chat.key, [str(photo)])
    [row] = chat.wait_for("image")
    # someone with write access to the bucket swaps the bytes; the cache of this
    # device is cleared too, so the bytes come from the storage
    blob = chat.store / blob_path(ROOM, sha)
    blob.write_bytes(image_file(tmp_path / "evil.png", (400, 300)).read_bytes()[:-1] + b"!")
    chat.feature.cache.path_for(sha).unlink()
    actions = click_card(chat, row)
    actions["Open"].trigger()
    chat.qtbot.waitUntil(lambda: bool(chat.feature.strip.errors()))
    [error] = chat.feature.strip.errors()
    assert error.startswith("Not opened: the stored file")
    assert error.endswith("The file in the storage was changed or damaged.")
    assert opened == []
    assert [m.path for m in chat.feature.mismatches] == [blob_path(ROOM, sha)]
    assert not chat.feature.cache.path_for(sha).exists()
    assert not list((chat.feature.cache.root / "named").glob("*/whiteboard.png"))
    chat.shot("attachments-tampered.png")


def test_a_message_that_lies_about_a_files_size_keeps_this_devices_copy(
    chat: Chat, tmp_path: Path
) -> None:
    """Red team rt55: Bob names Alice's file by its SHA-256 with another size. Opening
    his message deleted this device's verified copy as "damaged" (the only copy, once
    the storage dropped it) and blamed the storage. His message is what does not match."""
    opened: list[QUrl] = []
    chat.feature.open_url = opened.append
    report = tmp_path / "contract.pdf"
    report.write_bytes(b"%PDF-1.4 the signed contract\n" * 40)
    _row, actions = send_and_click(chat, report, "file")
    sha = hashlib.sha256(report.read_bytes()).hexdigest()
    assert chat.feature.cache.path_for(sha).exists()  # kept by the upload
    (chat.store / blob_path(ROOM, sha)).unlink()  # the provider drops the blob
    size = len(report.read_bytes()) + 1
    lie = file_content("contract-v2.pdf", size, "application/pdf", sha)
    bob = RoomWriter(chat.storage, ROOM, "bob@example.com", SigningKey(b"\x02" * 32))
    lying = wait_for(chat.qtbot, bob.send([Draft(MESSAGE, lie)]))[1][-1]
    chat.qtbot.waitUntil(lambda: any(r.event_id == lying.event_id for r in chat.rows()))
    menu = chat.feature.show_menu(chat.index_of(lying.event_id), QPoint(0, 0))
    assert menu is not None
    next(a for a in menu.actions() if a.text() == "Open").trigger()
    chat.qtbot.waitUntil(lambda: bool(chat.feature.strip.errors()))
    [error] = chat.feature.strip.errors()
    assert error == (
        f"Not opened: the signed message says {size:,} bytes, but the file of its SHA-256 has "
        f"{size - 1:,} (this device keeps its copy). The signed message does not describe "
        "the file it names."
    )
    assert opened == [] and chat.feature.cache.path_for(sha).exists()
    actions["Open"].trigger()  # Alice's own message still opens her file
    chat.qtbot.waitUntil(lambda: bool(opened))
    assert Path(opened[0].toLocalFile()).read_bytes() == report.read_bytes()


def test_a_message_that_understates_a_files_size_blames_neither(chat: Chat, tmp_path: Path) -> None:
    """Red team rt56: Bob names Alice's file by its SHA-256 with a SMALLER size, on a
    device without a copy. The read, capped at his size, is refused as too large, and
    the app said the storage's file was "changed or damaged". Unread, nothing says which
    is wrong: the stored object and his message disagree."""
    opened: list[QUrl] = []
    chat.feature.open_url = opened.append
    report = tmp_path / "contract.pdf"
    report.write_bytes(b"%PDF-1.4 the signed contract\n" * 40)
    send_and_click(chat, report, "file")
    sha = hashlib.sha256(report.read_bytes()).hexdigest()
    chat.feature.cache.path_for(sha).unlink()  # another device: no copy of its own
    lie = file_content("contract-v2.pdf", len(report.read_bytes()) - 1, "application/pdf", sha)
    bob = RoomWriter(chat.storage, ROOM, "bob@example.com", SigningKey(b"\x02" * 32))
    lying = wait_for(chat.qtbot, bob.send([Draft(MESSAGE, lie)]))[1][-1]
    chat.qtbot.waitUntil(lambda: any(r.event_id == lying.event_id for r in chat.rows()))
    menu = chat.feature.show_menu(chat.index_of(lying.event_id), QPoint(0, 0))
    assert menu is not None
    next(a for a in menu.actions() if a.text() == "Open").trigger()
    chat.qtbot.waitUntil(lambda: bool(chat.feature.strip.errors()))
    [error] = chat.feature.strip.errors()
    assert error == (
        "Not opened: the stored object is larger than the announced 1.1 KB. The stored "
        "object and the signed message that names it disagree."
    )
    assert opened == [] and "changed or damaged" not in error


def test_programs_are_never_opened_by_a_click(chat: Chat, tmp_path: Path) -> None:
    opened: list[QUrl] = []
    chat.feature.open_url = opened.append
    script = tmp_path / "install.sh"
    script.write_text("#!/bin/sh\nrm -rf ~\n")
    row, actions = send_and_click(chat, script, "file")
    [open_action] = [a for t, a in actions.items() if t.startswith("Open")]
    assert not open_action.isEnabled()
    from bucket_chat_desktop.protocol.attachments import parse_file_content

    info = parse_file_content(row.content)
    task = chat.feature.open_attachment(chat.key, row.event_id, info)  # type: ignore[arg-type]
    chat.qtbot.waitUntil(task.done)
    assert opened == [] and "save it instead" in chat.feature.strip.errors()[0]


@pytest.mark.parametrize("name", ["invite.HTML", "logo.svg", "budget.docm", "app.flatpakref"])
def test_active_content_is_never_opened_by_a_click(chat: Chat, tmp_path: Path, name: str) -> None:
    opened: list[QUrl] = []
    chat.feature.open_url = opened.append
    path = tmp_path / name
    path.write_text("<script>alert(1)</script>")
    _row, actions = send_and_click(chat, path, "file")
    [open_action] = [a for t, a in actions.items() if t.startswith("Open")]
    assert not open_action.isEnabled()
    assert actions["Save as…"].isEnabled()
    menu = chat.feature.last_menu
    assert menu is not None
    menu.grab().save(str(chat.shots / f"attachments-save-only-{path.suffix[1:].lower()}.png"))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        # GIO calls these application/x-ms-dos-executable (Wine's to run) and text/html
        # (a browser's): a name without a known extension is judged by its bytes
        ("minutes", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64),
        ("agenda.zzz", b"<!DOCTYPE html><html><script>alert(1)</script></html>"),
        ("notes.txt", b"#!/bin/sh\nrm -rf ~\n"),  # xdg-mime's file(1) reads the bytes only
        # red team rt55: GIO calls these application/vnd.flatpak.ref (GNOME Software
        # installs from the sender's repository; also under a .conf name) and
        # application/x-java-jnlp-file (Java Web Start runs the sender's jar)
        ("vpn.conf", b"[Flatpak Ref]\nName=org.example.Notes\nUrl=https://x.example/r\n"),
        ("meeting", b'<jnlp spec="1.0+" codebase="https://x.example/">\n'),
    ],
    ids=[
        "program-no-extension",
        "page-unknown-extension",
        "script-named-txt",
        "flatpakref-named-conf",
        "jnlp-no-extension",
    ],
)
def test_a_program_under_a_harmless_name_is_not_opened(
    chat: Chat, tmp_path: Path, name: str, data: bytes
) -> None:
    """The name says nothing that runs code, so Open is offered; but desktops that pick
    the handler by content would run these bytes: they are only ever saved."""
    opened: list[QUrl] = []
    chat.feature.open_url = opened.append
    path = tmp_path / name
    path.write_bytes(data)
    row, actions = send_and_click(chat, path, "file")
    assert actions["Open"].isEnabled()  # nothing in the name says so before the download
    actions["Open"].trigger()
    chat.qtbot.waitUntil(lambda: bool(chat.feature.strip.errors()))
    [error] = chat.feature.strip.errors()
    assert error.startswith(f"{name} was not opened: its contents are ")
    assert error.endswith("save it instead")
    assert opened == []
    assert not list((chat.feature.cache.root / "named").glob(f"*/{name}"))
    # from now on the menu says so before anything is fetched, and saving still works
    menu = chat.feature.show_menu(chat.index_of(row.event_id), QPoint(0, 0))
    assert menu is not None
    by_text = {a.text(): a for a in menu.actions() if a.text()}
    [open_action] = [a for t, a in by_text.items() if t.startswith("Open")]
    assert not open_action.isEnabled() and "contents" in open_action.text()
    dest = tmp_path / "saved" / name
    dest.parent.mkdir()
    chat.feature.choose_save_path = lambda info: str(dest)
    by_text["Save as…"].trigger()
    chat.qtbot.waitUntil(dest.exists)
    assert dest.read_bytes() == data


def test_a_readme_that_begins_with_html_still_opens(chat: Chat, tmp_path: Path) -> None:
    """Many READMEs begin with <p align="center"> or <h1>: named .md, they open in an
    editor everywhere, so the bytes check does not take them for web pages."""
    opened: list[QUrl] = []
    chat.feature.open_url = opened.append
    path = tmp_path / "README.md"
    path.write_bytes(b'<p align="center"><img src="logo.png"></p>\n<h1>Tool</h1>\n')
    _row, actions = send_and_click(chat, path, "file")
    actions["Open"].trigger()
    chat.qtbot.waitUntil(lambda: bool(opened))
    assert Path(opened[0].toLocalFile()).name == "README.md"
    assert chat.feature.strip.errors() == []


def test_opened_and_saved_copies_carry_the_downloaded_mark(
    chat: Chat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on Windows: the mark is an alternate data stream named ``<file>:Zone.Identifier``
    (on Linux that path is a plain sibling file, which lets the test read it)."""
    monkeypatch.setattr(download_mark, "PLATFORM", "win32")
    opened: list[QUrl] = []
    chat.feature.open_url = opened.append
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 numbers")
    row, actions = send_and_click(chat, report, "file")
    actions["Open"].trigger()
    chat.qtbot.waitUntil(lambda: bool(opened))
    local = Path(opened[0].toLocalFile())
    assert Path(f"{local}:Zone.Identifier").read_bytes() == b"[ZoneTransfer]\r\nZoneId=3\r\n"
    dest = tmp_path / "saved.pdf"
    chat.feature.choose_save_path = lambda info: str(dest)
    menu = chat.feature.show_menu(chat.index_of(row.event_id), QPoint(0, 0))
    assert menu is not None
    next(a for a in menu.actions() if a.text() == "Save as…").trigger()
    chat.qtbot.waitUntil(lambda: Path(f"{dest}:Zone.Identifier").exists())
    assert dest.read_bytes() == report.read_bytes()


def test_no_mark_is_written_where_nothing_enforces_one(tmp_path: Path) -> None:
    path = tmp_path / "x.pdf"
    path.write_bytes(b"x")
    assert download_mark.mark_as_downloaded(path, platform="linux") is False
    assert [p.name for p in tmp_path.iterdir()] == ["x.pdf"]
    assert download_mark.mark_as_downloaded(path, platform="win32") is True
    assert (tmp_path / "x.pdf:Zone.Identifier").read_bytes().startswith(b"[ZoneTransfer]")


def test_an_image_without_a_usable_thumbnail_gets_a_placeholder(chat: Chat) -> None:
    content = {
        "msgtype": "m.image",
        "body": "\u202egnp.jpg",
        "info": {
            "name": "\u202egnp.jpg",
            "size": 5,
            "sha256": "b" * 64,
            "w": 800,
            "h": 600,
            "thumbnail": "bm90IGFuIGltYWdl",
        },
    }
    chat.controller.send_content(chat.key, content)
    row = chat.wait_for("image")[-1]
    index = chat.index_of(row.event_id)
    pix = chat.feature.thumbnail_for(index)
    assert pix is not None and (pix.width(), pix.height()) == (320, 240)
    assert chat.feature.thumbnail_for(index) is pix  # cached: one placeholder per size
    chat.shot("attachments-placeholder.png")
    menu = chat.feature.show_menu(index, QPoint(0, 0))
    assert menu is not None
    texts = [a.text() for a in menu.actions()]
    assert texts[0].startswith("gnp.jpg")  # bidi override removed from what is shown


def test_thumbnails_of_hostile_size_are_not_decoded(chat: Chat) -> None:
    from bucket_chat_desktop.gui.attachments import decode_thumbnail

    out = io.BytesIO()
    Image.new("RGB", (4000, 10)).save(out, "PNG")
    assert decode_thumbnail(out.getvalue(), "png") is None
    out = io.BytesIO()
    Image.new("RGB", (40, 10)).save(out, "PNG")
    image = decode_thumbnail(out.getvalue(), "png")
    assert image is not None and image.width() == 40
    assert decode_thumbnail(b"\x89PNG\r\n\x1a\n garbage", "png") is None
    assert Roles.Content  # the role the feature reads


def bob_signs(chat: Chat, contents: list[dict[str, Any]]) -> list[str]:
    """Bob (any member) signs each content as it is (no writer-side sanitising or caps),
    and the ids once Alice's timeline shows them all."""
    bob = RoomWriter(chat.storage, ROOM, "bob@example.com", SigningKey(b"\x02" * 32))
    events = wait_for(chat.qtbot, bob.send([Draft(MESSAGE, c) for c in contents]), 60000)[1]
    ids = [ev.event_id for ev in events[-len(contents) :]]
    chat.qtbot.waitUntil(
        lambda: set(ids) <= {r.event_id for r in chat.rows() if not r.echo}, timeout=60000
    )
    return ids


def _jpeg_scans(data: bytes) -> list[tuple[int, int]]:
    """Where each scan (SOS header and its entropy-coded data) of a clean JPEG is."""
    out, i = [], 2
    while i < len(data) and data[i + 1] != 0xD9:
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if data[i + 1] != 0xDA:
            i += 2 + length
            continue
        j = i + 2 + length
        while not (data[j] == 0xFF and data[j + 1] != 0 and not 0xD0 <= data[j + 1] <= 0xD7):
            j += 1
        out.append((i, j))
        i = j
    return out


def scan_bomb(stray: bytes = b"\x00") -> bytes:
    """A 1024 x 1024 progressive JPEG whose smallest scan is repeated to fill 32 KB
    (about 2,300 scans), with ``stray`` put between its first segment (APP0) and the
    next: libjpeg skips it ("extraneous bytes before marker") and decodes on."""
    out = io.BytesIO()
    Image.new("L", (1024, 1024), 128).save(out, "JPEG", quality=10, progressive=True)
    real = out.getvalue()
    scans = _jpeg_scans(real)
    start, end = min(scans, key=lambda s: s[1] - s[0])
    head = real[: scans[-1][1]]
    n = (MAX_THUMBNAIL_READ_BYTES - len(head) - 2 - len(stray)) // (end - start)
    bomb = head + real[start:end] * n + b"\xff\xd9"
    after_app0 = 4 + int.from_bytes(bomb[4:6], "big")
    bomb = bomb[:after_app0] + stray + bomb[after_app0:]
    assert len(bomb) <= MAX_THUMBNAIL_READ_BYTES and n > 2000
    return bomb


def image_content(name: str, thumbnail: bytes | None = None, **info: Any) -> dict[str, Any]:
    """An ``m.image`` content as any member may sign it."""
    fields: dict[str, Any] = {"name": name, "size": 5, "sha256": "c" * 64, "w": 1024, "h": 1024}
    if thumbnail is not None:
        fields["thumbnail"] = base64.b64encode(thumbnail).decode("ascii")
    return {"msgtype": "m.image", "body": name, "info": fields | info}


@pytest.mark.qt_log_ignore("Corrupt JPEG data", "Inconsistent progression sequence")
@pytest.mark.parametrize("stray", [b"\x00", b"\xff\xfe\x00\x00"])
def test_qt_decodes_a_scan_bomb_behind_a_stray_byte_whole(stray: bytes) -> None:
    """Red team rt69, what makes the finding real: Qt's JPEG reader goes past a stray
    byte (or a comment of length 0) and decodes the picture of every scan behind it (a
    flat grey 1024 × 1024), so the scans must be counted as it reads them."""
    from bucket_chat_desktop.gui.attachments import decode_thumbnail

    image = decode_thumbnail(scan_bomb(stray), "jpeg")
    assert image is not None and (image.width(), image.height()) == (1024, 1024)
    assert image.pixelColor(512, 512).red() in range(120, 137)


def test_a_scan_bomb_behind_a_stray_byte_is_not_painted(
    chat: Chat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt69: the 100-scan cap on JPEG thumbnails counted scans with a walk that
    gave up at the first byte between two segments that was not 0xFF and said "0".
    libjpeg skips such bytes and decoded all ~2,300 scans of this 32 KB thumbnail:
    0.3-0.5 s on the GUI thread for each such row painted. Its row now shows its
    placeholder, and the bomb is never handed to the decoder; an honest thumbnail
    signed with it still is."""
    decoded: list[bool] = []
    real = attachments_module.decode_thumbnail

    def spy(data: bytes, fmt: str) -> QImage | None:
        image = real(data, fmt)
        decoded.append(image is not None)
        return image

    monkeypatch.setattr(attachments_module, "decode_thumbnail", spy)
    honest = image_file(tmp_path / "beach.jpg", (160, 120)).read_bytes()  # a JPEG
    bomb_id, honest_id = bob_signs(
        chat, [image_content("holiday.jpg", scan_bomb()), image_content("beach.jpg", honest)]
    )
    chat.shot("attachments-scan-bomb.png")  # both rows painted
    pix = chat.feature.thumbnail_for(chat.index_of(bomb_id))
    assert pix is not None
    chat.feature.thumbnail_for(chat.index_of(honest_id))
    assert decoded == [True], "the scan bomb's thumbnail was handed to the decoder"
    # The bomb is a flat grey picture (opaque); the placeholder is a faint fill.
    assert pix.toImage().pixelColor(pix.width() // 2, pix.height() // 2).alpha() < 255


def paint_row(chat: Chat, event_id: str) -> QImage:
    """The row as the window's own delegate paints it."""
    index = chat.index_of(event_id)
    view = chat.window.timeline
    option = QStyleOptionViewItem()
    option.initFrom(view)
    option.rect = view.visualRect(index)
    option.font = view.font()
    image = QImage(option.rect.right() + 1, option.rect.bottom() + 1, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    chat.window.delegate.paint(painter, option, index)
    painter.end()
    return image


class Tally:
    """Characters ``safe_file_name`` is handed (the work each clean-up costs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.chars = 0
        real = protocol_attachments.safe_file_name

        def counting(name: object, fallback: str = protocol_attachments.FALLBACK_NAME) -> str:
            self.calls += 1
            self.chars += len(name) if isinstance(name, str) else 0
            return real(name, fallback)

        monkeypatch.setattr(protocol_attachments, "safe_file_name", counting)


@pytest.mark.parametrize("msgtype", ["m.image", "m.file"])
def test_a_huge_file_name_is_not_cleaned_again_for_every_paint_and_mouse_move(
    chat: Chat, monkeypatch: pytest.MonkeyPatch, msgtype: str
) -> None:
    """Red team rt69: ``info.name`` may be as long as the 256 KiB event line allows
    (250,000 characters). The name shown is cut to 255 bytes, but ``announced_name``
    cleaned the whole of it, a Python step a character (~0.1 s), and the row asked for
    it again and again: ``Row.kind`` (every ``Roles.Kind`` query), ``Row.body``, the
    card, the caption. One paint of the row cleaned it 17 times (2.25 million characters,
    0.46 s), one mouse move over it 12: the window stuttered for as long as such a row
    was on screen. The row now keeps its name, worked out once (``Roles.FileName``)."""
    name = "a" * 250_000 + ".png"
    info: dict[str, Any] = {"name": name, "size": 5, "sha256": "d" * 64}
    if msgtype == "m.image":
        info |= {"w": 320, "h": 240}
    [eid] = bob_signs(chat, [{"msgtype": msgtype, "body": "x", "info": info}])
    chat.settle()
    paint_row(chat, eid)  # what is worked out once may be kept
    tally = Tally(monkeypatch)
    paint_row(chat, eid)
    view = chat.window.timeline
    chat.feature._hover(view.visualRect(chat.index_of(eid)).center())  # a mouse move
    # Not one pass over the name for a repaint and a mouse move: the name shown is 255
    # bytes whatever the name signed.
    assert tally.chars < len(name), (
        f"one repaint and one mouse move cleaned {tally.chars:,} characters "
        f"({tally.calls} times a {len(name):,}-character name)"
    )
    texts = painted_texts(chat, eid)  # the card or caption names it, cut in the middle
    assert any(
        t.startswith("aaaa") and "…" in t and t.split("  ·  ")[0].endswith("a.png") for t in texts
    ), texts


def test_the_thumbnail_cache_is_bounded_in_bytes(
    chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt69: the cache of painted thumbnails was bounded by count (300), not by
    bytes, and kept a full box-sized pixmap for every image row, a placeholder for one
    with no picture at all included. 300 image messages of about 300 bytes each, no
    thumbnail, w 320 × h 240, scrolled past, held 300 × 614,400 bytes = 352 MiB on a 2×
    screen (the cache's own ``_dpr``), for the whole session. Rows without a picture now
    share one placeholder per size, and the cache is bounded in bytes."""
    monkeypatch.setattr(chat.feature, "_dpr", lambda: 2.0)
    contents = [
        {
            "msgtype": "m.image",
            "body": f"p{i}.png",
            "info": {"name": f"p{i}.png", "size": 5, "sha256": f"{i:064x}", "w": 320, "h": 240},
        }
        for i in range(300)
    ]
    ids = bob_signs(chat, contents)
    shown = {id(chat.feature.thumbnail_for(chat.index_of(eid))) for eid in ids}
    held = sum(pixmap_bytes(p) for p in chat.feature._thumbs.values())
    assert held <= THUMB_CACHE_BYTES, f"the thumbnail cache holds {held / 2**20:.0f} MiB"
    assert len(shown) == 1 and held == 640 * 480 * 4 == chat.feature._thumbs.held


def test_painted_pictures_are_dropped_oldest_first_past_the_byte_bound(
    chat: Chat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt69: real pictures count in bytes too. With room for three boxes of
    320 × 240, eight pictures painted leave the three painted last; one dropped is
    decoded and painted again when its row is."""
    box = 320 * 240 * 4
    monkeypatch.setattr(chat.feature, "_dpr", lambda: 1.0)
    monkeypatch.setattr(chat.feature._thumbs, "limit", 3 * box)
    contents = []
    for i in range(8):
        photo = image_file(tmp_path / f"p{i}.jpg", (160 + i, 120)).read_bytes()
        contents.append(image_content(f"p{i}.jpg", photo, w=320, h=240))
    ids = bob_signs(chat, contents)
    chat.feature._thumbs.clear()  # as painted for the first time
    pictures = [chat.feature.thumbnail_for(chat.index_of(eid)) for eid in ids]
    assert chat.feature._thumbs.held == 3 * box and len(chat.feature._thumbs) == 3
    assert [chat.feature.thumbnail_for(chat.index_of(eid)) for eid in ids[-3:]] == pictures[-3:]
    again = chat.feature.thumbnail_for(chat.index_of(ids[0]))
    assert again is not None and again is not pictures[0]
    assert again.toImage() == pictures[0].toImage()  # (the same picture, painted anew)
    assert chat.feature._thumbs.held == 3 * box


def test_a_message_whose_info_is_not_an_object_is_painted_as_text(chat: Chat) -> None:
    """Any member can sign ``"info": "oops"``: nothing may raise while painting it."""
    chat.controller.send_content(chat.key, {"msgtype": "m.file", "body": "x", "info": "oops"})
    # its text is the name it announces (info unusable: its body), as the card shows it
    chat.qtbot.waitUntil(lambda: chat.rows()[-1].body == "📎 x" and not chat.rows()[-1].echo)
    index = chat.index_of(chat.rows()[-1].event_id)
    assert chat.feature.card_rect(index) is not None  # ours copes with it
    option = QStyleOptionViewItem()
    option.rect = chat.window.timeline.visualRect(index)
    option.font = chat.window.timeline.font()
    assert chat.window.delegate.sizeHint(option, index).height() > 0
    chat.shot("attachments-bad-info.png")  # painted; pytest-qt fails on paint errors
    # the room list's preview of it (the app's audit keeps no bodies: the appended event does)
    chat.qtbot.waitUntil(
        lambda: preview_line(chat.controller.rooms.item(chat.key)).endswith(": 📎 x")
    )


def test_the_room_preview_shows_the_safe_file_name() -> None:
    from types import SimpleNamespace

    from bucket_chat_desktop.gui.controller import _preview

    content = {"msgtype": "m.file", "body": "\u202egnp.exe", "info": {"name": "\u202egnp.exe"}}
    event = SimpleNamespace(type="m.room.message", content=content, body=content["body"])
    assert _preview(event) == "📎 gnp.exe"  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["   ", 7, ["x"], None, ""])
def test_the_room_preview_names_the_file_its_menu_saves(name: object) -> None:
    """A name that is blank or not a string: the menu, Open and Save use the body's name
    ("minutes.exe"); the room list and notifications said "file" for some of these
    shapes, and the file card for others."""
    from types import SimpleNamespace

    from bucket_chat_desktop.gui.controller import _preview
    from bucket_chat_desktop.protocol.attachments import parse_file_content

    content = {"msgtype": "m.file", "body": "minutes.exe", "info": {"name": name}}
    content["info"] |= {"size": 3, "sha256": "a" * 64}
    info = parse_file_content(content)
    assert not isinstance(info, str) and info.name == "minutes.exe"
    event = SimpleNamespace(type="m.room.message", content=content, body=content["body"])
    assert _preview(event) == "📎 minutes.exe"  # type: ignore[arg-type]


class OfflineOnce(LocalStorage):
    """The room's folder, which did not answer the first write (a network share that
    stopped answering, a link too slow for the file): ``StorageOfflineError``."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.puts = 0

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        self.puts += 1
        if self.puts == 1:
            raise StorageOfflineError(
                f"cannot write {path}: the service did not answer the write within 7 s "
                f"(offline, or the link or the service is too slow for {len(data):,} "
                "bytes in that time; the next try allows 11 s)"
            )
        return await super().put_if_absent(path, data)


def test_an_upload_the_storage_did_not_take_can_be_tried_again(chat: Chat, tmp_path: Path) -> None:
    """A big attachment on a slow uplink failed, and the row said why and offered only
    "Dismiss": the file had to be found and dropped again. An upload the storage did not
    answer offers "Try again", which sends it; a refused one (over the limit) does not."""
    flaky = OfflineOnce(chat.store)
    chat.controller.client._storages[chat.storage_id].storage = flaky
    spec = tmp_path / "spec.pdf"
    spec.write_bytes(b"%PDF-1.4 " + b"x" * 5000)
    chat.window.files_chosen.emit(chat.key, [str(spec)])
    strip = chat.feature.strip
    chat.qtbot.waitUntil(lambda: bool(strip.errors()))
    (row,) = strip.rows
    assert "the next try allows 11 s" in row.status_label.text()
    assert row.name_label.text() == "spec.pdf — Design review"  # the strip is every room's
    assert row.retry_button.isVisible() and row.button.text() == "Dismiss"
    chat.shot("attachments-try-again.png")
    assert chat.confirmed("file") == [] and chat.blobs() == []
    QTest.mouseClick(row.retry_button, Qt.MouseButton.LeftButton)
    assert [r.body for r in chat.wait_for("file")] == ["📎 spec.pdf"]
    assert flaky.puts >= 2 and len(chat.blobs()) == 1
    chat.qtbot.waitUntil(lambda: not strip.rows)

    chat.controller.settings.attachment_limit_mb = 1
    big = tmp_path / "photo.raw"
    big.write_bytes(b"\0" * (3 * MB))
    chat.window.files_chosen.emit(chat.key, [str(big)])
    chat.qtbot.waitUntil(lambda: bool(strip.errors()))
    assert not strip.rows[0].retry_button.isVisible()  # refused: trying again cannot help


def test_a_failed_upload_of_a_room_left_cannot_be_tried_again(chat: Chat, tmp_path: Path) -> None:
    """Red team: a failed upload's row stays in the strip, which every room shares; after
    leaving its room (and opening another), "Try again" sent the file into the room left,
    after the leave. Leaving a room takes "Try again" from its failed uploads and says
    why; a retry asked anyway (a queued click) sends nothing."""
    flaky = OfflineOnce(chat.store)
    chat.controller.client._storages[chat.storage_id].storage = flaky
    secret = tmp_path / "secret.pdf"
    secret.write_bytes(b"%PDF-1.4 " + b"s" * 5000)
    chat.window.files_chosen.emit(chat.key, [str(secret)])
    strip = chat.feature.strip
    chat.qtbot.waitUntil(lambda: bool(strip.errors()))
    (row,) = strip.rows
    assert row.retry_button.isVisible()
    chat.controller.leave_room(chat.key)
    chat.qtbot.waitUntil(lambda: not row.retry_button.isVisible(), timeout=15000)
    assert row.error.endswith("not sent: you left the room")
    puts = flaky.puts
    row.retry_requested.emit()  # as a click already queued would
    assert strip.rows == [row] and flaky.puts == puts and chat.blobs() == []
    chat.shot("attachments-left-room.png")


class Held(LocalStorage):
    """The room's folder, whose blob writes wait for ``release`` and then fail with no
    answer (``fail``) or go through."""

    def __init__(self, root: Path, fail: bool) -> None:
        super().__init__(root)
        self.release = asyncio.Event()
        self.fail = fail
        self.blob_puts = 0

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        if "/blobs/" not in path:
            return await super().put_if_absent(path, data)
        self.blob_puts += 1
        await self.release.wait()
        if self.fail:
            raise StorageOfflineError(f"cannot write {path}: no answer within 30 s")
        return await super().put_if_absent(path, data)


def file_messages_in_storage(chat: Chat) -> list[str]:
    """The bodies of the file messages the room's segments hold (what readers get)."""
    bodies = []
    for seg in (chat.store / "rooms" / ROOM / "logs").rglob("*.jsonl"):
        for line in seg.read_text().splitlines():
            content = json.loads(line).get("content", {})
            if content.get("msgtype") == "m.file":
                bodies.append(str(content.get("body")))
    return bodies


@pytest.mark.parametrize("fail", [False, True], ids=["goes-through", "fails"])
def test_an_upload_under_way_when_its_room_is_left_is_not_sent_there(
    chat: Chat, tmp_path: Path, fail: bool
) -> None:
    """Red team: leaving a room did not stop its uploads still running or queued. One
    that went through afterwards was sent into the room left, after the leave event;
    one that failed afterwards offered "Try again", which did the same. Leaving stops
    them: nothing is sent there, nothing offered."""
    held = Held(chat.store, fail)
    chat.controller.client._storages[chat.storage_id].storage = held
    secret, queued = tmp_path / "secret.pdf", tmp_path / "queued.pdf"
    secret.write_bytes(b"%PDF-1.4 " + b"s" * 5000)
    queued.write_bytes(b"%PDF-1.4 " + b"q" * 5000)
    chat.window.files_chosen.emit(chat.key, [str(secret), str(queued)])
    chat.qtbot.waitUntil(lambda: held.blob_puts == 1)  # the first is uploading
    chat.controller.leave_room(chat.key)
    chat.qtbot.waitUntil(lambda: chat.controller.rooms.item(chat.key) is None, timeout=15000)
    held.release.set()
    strip = chat.feature.strip
    chat.qtbot.waitUntil(lambda: all(r.failed for r in strip.rows), timeout=15000)
    assert not any(r.retry_button.isVisible() for r in strip.rows)
    wait_for(chat.qtbot, chat.controller.client.flush(chat.storage_id, 10))
    assert file_messages_in_storage(chat) == [] and held.blob_puts == 1


def test_a_leave_that_fails_stops_no_upload(
    chat: Chat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team: the room's uploads were stopped when the leave began, so a leave that
    failed (this device's disk full: the leave event could not be queued) left them
    stopped, their rows gone without a word, the room still listed. Uploads stop once
    the leave is queued; one that fails before that keeps going."""
    held = Held(chat.store, fail=False)
    chat.controller.client._storages[chat.storage_id].storage = held
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 " + b"r" * 5000)
    chat.window.files_chosen.emit(chat.key, [str(report)])
    chat.qtbot.waitUntil(lambda: held.blob_puts == 1)

    async def disk_full(ref: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(chat.controller.client, "leave_room", disk_full)
    with chat.qtbot.waitSignal(chat.controller.tasks.failed, timeout=15000) as failed:
        chat.controller.leave_room(chat.key)
    assert failed.args is not None and failed.args[0] == "Leaving the room"
    assert chat.controller.rooms.item(chat.key) is not None  # still a member
    held.release.set()
    assert [r.body for r in chat.wait_for("file")] == ["📎 report.pdf"]


def test_an_upload_stopped_before_it_ran_leaves_no_row(chat: Chat, tmp_path: Path) -> None:
    """Red team: an upload cancelled in the same turn as its drop (its room left, its
    storage removed) never ran, so nothing removed its row: "Waiting…" for good."""
    note = tmp_path / "note.txt"
    note.write_text("hello")
    feature, strip = chat.feature, chat.feature.strip
    feature.attach_files(chat.key, [str(note)])
    feature._on_room_forgotten(chat.key)  # the same turn: the task has not run yet
    chat.qtbot.waitUntil(lambda: not strip.rows, timeout=5000)
    assert feature._uploading == {}


class ReadOfflineOnce(LocalStorage):
    """The room's folder, which did not answer the first read of a blob."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.blob_gets = 0

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        if "/blobs/" in path:
            self.blob_gets += 1
            if self.blob_gets == 1:
                raise StorageOfflineError(f"cannot read {path}: not read within 36 s")
        return await super().get(path, max_bytes=max_bytes)


def test_a_download_the_storage_did_not_answer_can_be_tried_again(
    chat: Chat, tmp_path: Path
) -> None:
    """A download that got no answer (a slow or stopped link) kept its row with the
    reason and "Dismiss" only: the message had to be found and opened again. It offers
    "Try again", which fetches it; a second press changes nothing."""
    saved: list[QUrl] = []
    chat.feature.open_url = saved.append
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 quarterly numbers")
    _, actions = send_and_click(chat, report, "file")
    sha = hashlib.sha256(report.read_bytes()).hexdigest()
    chat.feature.cache.path_for(sha).unlink()  # from the storage, not this device's cache
    watched = chat.controller.client._storages[chat.storage_id].engine.storage
    flaky = ReadOfflineOnce(chat.store)
    watched.inner = flaky
    actions["Open"].trigger()
    strip = chat.feature.strip
    chat.qtbot.waitUntil(lambda: bool(strip.errors()))
    (failed,) = strip.rows
    assert failed.retry_button.isVisible() and "not read within" in failed.error
    QTest.mouseClick(failed.retry_button, Qt.MouseButton.LeftButton)
    failed.retry_requested.emit()  # a second press, already queued: nothing more
    chat.qtbot.waitUntil(lambda: bool(saved))
    assert Path(saved[0].toLocalFile()).read_bytes() == report.read_bytes()
    assert flaky.blob_gets == 2 and strip.rows == []
