"""Discarding a message the app kept unsent (``Outbox.hold``): a kept send that will never
go out — here one kept for a key this device no longer has (red team rt92's "Not sent:
the key that was to sign it was replaced on this device") — was shown at every start,
and its right-click menu had only "Copy text". Now "Discard…" asks first (its text gone
from this device for good, Copy text offered), then lets it go through the controller
and the engine's outbox, only while it is still kept: one the command line signed
meanwhile is shown sending, never discarded.

The real app offscreen (``app.run`` through the ``launch`` fixture) on a local folder,
its real outbox file.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import shot
from desk import ALICE, Desk, settings_for
from nacl.signing import SigningKey
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel, QMenu
from test_app_flows import store

from bucket_chat_desktop import paths
from bucket_chat_desktop.gui.models.timeline_model import Row
from bucket_chat_desktop.gui.widgets.message_actions import DiscardDialog
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.chain import continue_chain
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import outbox as outbox_module
from bucket_chat_desktop.sync.device_files import outbox_file
from bucket_chat_desktop.sync.events import SendKept
from bucket_chat_desktop.sync.outbox import Outbox

__all__ = ["store"]  # the fixture, used by name

TYPED = "Typed before the key was replaced"
OLD = SigningKey(b"\x09" * 32)
OLD_KEY = b64encode(bytes(OLD.verify_key))


def outbox_of(store: Path) -> Outbox:
    return Outbox(outbox_file(paths.data_dir(), LocalStorage(store)))


def keep_for_the_old_key(store: Path) -> None:
    box = outbox_of(store)
    try:
        box.hold(
            "falcon", OLD_KEY, ALICE, "Alice", [(MESSAGE, {"body": TYPED, "msgtype": "m.text"})]
        )
    finally:
        box.close()


def kept_rows(desk: Desk) -> list[tuple[int, Row]]:
    return [
        (i, r)
        for i, r in enumerate(desk.rows("falcon"))
        if r.body == TYPED and r.event_id.startswith("kept-")
    ]


def open_menu(desk: Desk, at: int) -> QMenu:
    window = desk.window
    window.timeline.scrollToBottom()
    rect = window.timeline.visualRect(desk.model("falcon").index(at))
    window.timeline.customContextMenuRequested.emit(rect.center())
    menu = window.relation_actions.menu
    assert isinstance(menu, QMenu)
    return menu


def texts(menu: QMenu) -> list[str]:
    return [a.text() for a in menu.actions() if not a.isSeparator()]


def ask_to_discard(desk: Desk, tmp_path: Path, name: str = "") -> DiscardDialog:
    """Right-click the kept row, choose "Discard…": the confirmation, open."""
    desk.qtbot.waitUntil(lambda: bool(kept_rows(desk)), timeout=15_000)
    [(at, _row)] = kept_rows(desk)
    menu = open_menu(desk, at)
    assert texts(menu) == ["Copy text", "Discard…"]
    if name:
        shot(menu, f"{name}-menu", tmp_path)
    next(a for a in menu.actions() if a.text() == "Discard…").trigger()
    menu.close()
    dialog = desk.window.relation_actions.discard_dialog
    assert isinstance(dialog, DiscardDialog) and dialog.isVisible()
    return dialog


def test_a_message_kept_for_a_replaced_key_is_discarded_from_its_row_after_a_warning(
    qtbot: Any, launch: Callable[..., Desk], store: Path, tmp_path: Path
) -> None:
    """Right-click, "Discard…": the dialog quotes it, says why it was not sent, that its
    text will be gone from this device for good, and offers Copy text (the dialog stays
    open); Enter would cancel. Discard takes it off the outbox file and its row goes."""
    keep_for_the_old_key(store)
    desk = launch(settings_for(store, ["falcon"]))
    desk.wait_loaded("falcon")
    dialog = ask_to_discard(desk, tmp_path, "discard-kept")
    said = dialog.explanation.text()
    assert said.startswith("Not sent: the key that was to sign it was replaced"), said
    assert "right-click" not in said  # the row's hint, not the dialog's
    assert "from this device for good" in said and "Copy the text first" in said, said
    assert dialog.cancel_button.isDefault()
    dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == TYPED and dialog.isVisible()
    shot(dialog, "discard-kept-dialog", tmp_path)
    dialog.discard_button.click()
    qtbot.waitUntil(lambda: not kept_rows(desk), timeout=15_000)
    assert not any(r.body == TYPED for r in desk.rows("falcon"))
    qtbot.waitUntil(
        lambda: desk.window.statusBar().currentMessage().startswith("Discarded:"),
        timeout=15_000,
    )
    # as it says: gone from this device while the app runs on, its outbox open, not
    # only once it closes (red team rt97: the outbox's log kept the text)
    assert TYPED.encode() not in on_disk(store)
    assert desk.quit() == 0
    box = outbox_of(store)
    try:
        assert box.held() == [] and box.is_empty()
    finally:
        box.close()


def on_disk(store: Path) -> bytes:
    """The outbox's file and its write-ahead log, as a backup would copy them."""
    path = outbox_file(paths.data_dir(), LocalStorage(store))
    files = [path, path.with_name(path.name + "-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


def test_a_discard_while_the_command_line_reads_the_outbox_says_a_copy_stays_in_its_log(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command line is in the middle of reading the outbox when the person discards:
    its log cannot be emptied then. The message is discarded, and the status bar says a
    copy of its text stays in the outbox's log, never that it is gone (red team rt97)."""
    monkeypatch.setattr(outbox_module, "EMPTY_LOG_WAIT_MS", 10)
    keep_for_the_old_key(store)
    desk = launch(settings_for(store, ["falcon"]))
    desk.wait_loaded("falcon")
    dialog = ask_to_discard(desk, tmp_path)
    command = outbox_of(store)
    try:
        command._db.execute("BEGIN")
        assert [h.sender_key for h in command.held()] == [OLD_KEY]  # its read, still open
        dialog.discard_button.click()
        qtbot.waitUntil(lambda: not kept_rows(desk), timeout=15_000)
        qtbot.waitUntil(
            lambda: desk.window.statusBar().currentMessage().startswith("Discarded, but"),
            timeout=15_000,
        )
        said = desk.window.statusBar().currentMessage()
        assert "a copy of its text stays in the outbox's log file" in said, said
        assert "gone" not in said
        assert TYPED.encode() in on_disk(store)  # as it says
        command._db.execute("COMMIT")
    finally:
        command.close()
    assert desk.quit() == 0
    assert TYPED.encode() not in on_disk(store)  # the app closed the outbox: emptied


def test_cancelling_the_discard_keeps_the_message(
    qtbot: Any, launch: Callable[..., Desk], store: Path, tmp_path: Path
) -> None:
    keep_for_the_old_key(store)
    desk = launch(settings_for(store, ["falcon"]))
    desk.wait_loaded("falcon")
    dialog = ask_to_discard(desk, tmp_path)
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: desk.window.relation_actions.discard_dialog is None)
    assert len(kept_rows(desk)) == 1
    assert desk.quit() == 0
    box = outbox_of(store)
    try:
        assert [h.sender_key for h in box.held()] == [OLD_KEY]
    finally:
        box.close()


def test_a_discard_after_the_command_line_signed_the_message_shows_it_sent(
    qtbot: Any, launch: Callable[..., Desk], store: Path, tmp_path: Path
) -> None:
    """The race: while the confirmation is open, another process of this device (the
    command line, the old key restored there) signs the kept message. Discard then
    discards nothing: the status bar says it was sent, its row shows it sending (a
    signed message has no Discard), and the room gets it once."""
    keep_for_the_old_key(store)
    desk = launch(settings_for(store, ["falcon"]))
    desk.wait_loaded("falcon")
    dialog = ask_to_discard(desk, tmp_path)
    command = outbox_of(store)  # a second connection to the file: the command's process
    try:
        command.seed_head("falcon", OLD_KEY, None)
        drained: list[int] = []
        command.enqueue(
            room_id="falcon",
            user_id=ALICE,
            signing_key=OLD,
            drafts=[(MESSAGE, {"body": "typed in the terminal", "msgtype": "m.text"})],
            clock=lambda: time.time_ns() // 1_000_000,
            unique=lambda: str(uuid.uuid4()),
            drained=drained,
        )
        assert len(drained) == 1  # the kept message, signed first
    finally:
        command.close()
    dialog.discard_button.click()
    qtbot.waitUntil(
        lambda: desk.window.statusBar().currentMessage().startswith("Not discarded:"),
        timeout=15_000,
    )
    said = desk.window.statusBar().currentMessage()
    assert "by this app or another Bucket Chat program" in said, said  # not known which
    assert not kept_rows(desk)
    [(at, row)] = [(i, r) for i, r in enumerate(desk.rows("falcon")) if r.body == TYPED]
    assert row.echo in ("sending", "") and not row.event_id.startswith("kept-")
    if row.echo:  # not read back yet: a signed message can be copied, not discarded
        menu = open_menu(desk, at)
        assert texts(menu) == ["Copy text"]
        menu.close()
    desk.wait_row("falcon", TYPED)  # delivered, read back
    assert [r.body for r in desk.rows("falcon")].count(TYPED) == 1
    assert desk.quit() == 0


def test_only_a_message_kept_unsigned_offers_discard_never_a_signed_one_not_sent(
    qtbot: Any, launch: Callable[..., Desk], store: Path
) -> None:
    """A signed message not stored yet ("Not sent — click to retry", "sending") is a link
    of this device's chain (its next message continues it): it is retried, never
    discarded, and its menu is "Copy text" only. A kept one still "sending" (waiting for
    the room's read) can be discarded too."""
    desk = launch(settings_for(store, ["falcon"]))
    desk.wait_loaded("falcon")
    me = desk.controller.identity
    [_join, signed] = continue_chain(
        None,
        [(MESSAGE, {"body": "signed, refused by the storage", "msgtype": "m.text"})],
        room_id="falcon",
        sender_id=me.user_id,
        signing_key=me.signing_key,
        timestamp_ms=time.time_ns() // 1_000_000,
        unique=lambda: str(uuid.uuid4()),
        join=None,
    )
    model = desk.model("falcon")
    model.set_echo([signed], "failed", "the storage refused it")
    draft = (MESSAGE, {"body": "kept, waiting", "msgtype": "m.text"})
    model.set_kept(SendKept("falcon", 7, me.user_id, me.public_key_b64, (draft,), True))
    rows = desk.rows("falcon")
    failed = next(i for i, r in enumerate(rows) if r.echo == "failed")
    waiting = next(i for i, r in enumerate(rows) if r.event_id == "kept-7-0")
    menu = open_menu(desk, failed)
    assert texts(menu) == ["Copy text"]
    menu.close()
    menu = open_menu(desk, waiting)
    assert texts(menu) == ["Copy text", "Discard…"]
    menu.close()
    assert desk.quit() == 0


def test_the_confirmation_names_the_messages_kept_with_it_and_shows_text_as_text(
    qtbot: Any,
) -> None:
    """A kept send of several messages goes whole: the dialog says how many go with the
    one clicked. Its text is shown as plain text (it is whatever was typed), and with no
    reason given it says none."""
    copied: list[str] = []
    dialog = DiscardDialog("<b>not bold</b>", "", 2, lambda: copied.append("x"))
    qtbot.addWidget(dialog)
    said = dialog.explanation.text()
    assert said.startswith("It was never sent") and "2 other messages kept with it" in said
    assert "which go too" in said, said
    quote = dialog.findChild(QLabel, "discardQuote")
    assert quote is not None and quote.textFormat() == Qt.TextFormat.PlainText
    assert quote.text() == "<b>not bold</b>"
    dialog.copy_button.click()
    assert copied == ["x"] and dialog.copy_button.text() == "Copied"


def keep_for_this_app(desk: Desk, store: Path, *bodies: str) -> list[int]:
    """Messages kept unsigned for the app's own key in "falcon" (as a send waiting for
    the room's read keeps them), written to its outbox file; the first one's row shown."""
    me = desk.controller.identity
    box = outbox_of(store)
    try:
        seqs = [
            box.hold(
                "falcon",
                me.public_key_b64,
                me.user_id,
                "Alice",
                [(MESSAGE, {"body": body, "msgtype": "m.text"})],
            )
            for body in bodies
        ]
    finally:
        box.close()
    draft = (MESSAGE, {"body": TYPED, "msgtype": "m.text"})
    desk.model("falcon").set_kept(
        SendKept("falcon", seqs[0], me.user_id, me.public_key_b64, (draft,), True)
    )
    return seqs


def test_a_discard_after_the_apps_own_retry_sent_the_message_says_this_app_sent_it(
    qtbot: Any, launch: Callable[..., Desk], store: Path, tmp_path: Path
) -> None:
    """Review rev2: while the confirmation is open, the app's engine tries the kept
    messages again (as when the room's read completes: ``retry_held``) and signs the one
    asked about. Discard discards nothing, and says this app sent it: never that another
    program (the command line) did, which would have the person fear another program
    uses their key."""
    desk = launch(settings_for(store, ["falcon"]))
    desk.wait_loaded("falcon")
    [seq] = keep_for_this_app(desk, store, TYPED)
    dialog = ask_to_discard(desk, tmp_path)
    key = desk.key("falcon")
    engine = desk.controller.client._engine(key.split("/")[0])
    me = desk.controller.identity
    engine.resume_held(me.user_id, me.signing_key, ["falcon"])

    def signed() -> bool:
        box = outbox_of(store)
        try:
            return not box.is_held(seq)
        finally:
            box.close()

    qtbot.waitUntil(signed, timeout=15_000)
    dialog.discard_button.click()
    qtbot.waitUntil(
        lambda: desk.window.statusBar().currentMessage().startswith("Not discarded:"),
        timeout=15_000,
    )
    said = desk.window.statusBar().currentMessage()
    assert said == "Not discarded: this app sent it meanwhile, and it is shown as sending."
    desk.wait_row("falcon", TYPED)
    assert [r.body for r in desk.rows("falcon")].count(TYPED) == 1
    assert desk.quit() == 0


def test_a_discard_after_the_apps_own_later_send_signed_it_first_says_this_app_sent_it(
    qtbot: Any, launch: Callable[..., Desk], store: Path, tmp_path: Path
) -> None:
    """The other way the app signs a kept message: a later send of the room signs the
    older kept ones first (``Outbox.enqueue``), noting what each became (``replaced``),
    so the discard finds it SIGNED, as it would had the command line sent it. The app
    knows its own send did, and says so."""
    desk = launch(settings_for(store, ["falcon"]))
    desk.wait_loaded("falcon")
    [seq] = keep_for_this_app(desk, store, TYPED)
    dialog = ask_to_discard(desk, tmp_path)
    desk.controller.send_text("typed after it")
    box = outbox_of(store)
    try:
        qtbot.waitUntil(lambda: box.replaced(seq) is not None, timeout=15_000)
    finally:
        box.close()
    dialog.discard_button.click()
    qtbot.waitUntil(
        lambda: desk.window.statusBar().currentMessage().startswith("Not discarded:"),
        timeout=15_000,
    )
    said = desk.window.statusBar().currentMessage()
    assert said == "Not discarded: this app sent it meanwhile, and it is shown as sending."
    desk.wait_row("falcon", TYPED)
    desk.wait_row("falcon", "typed after it")
    assert [r.body for r in desk.rows("falcon")].count(TYPED) == 1
    assert desk.quit() == 0
