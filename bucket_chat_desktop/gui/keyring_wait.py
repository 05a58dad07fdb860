"""Waiting for the system keyring without freezing the app.

A keyring call may not come back: a Secret Service that is stuck, an unlock prompt that
nobody sees. Such calls run on a daemon thread of their own
(`keyring_policy.in_daemon_thread`) and `wait_for_keyring` awaits them on the event loop:
nothing shows when the keyring answers at once; after `SHOW_AFTER` seconds a small window
says what the app waits for (with Quit); after `keyring_policy.KEYRING_DEADLINE` seconds
the user is told plainly that the keyring does not answer, with Retry (wait again for
the same call: it is never made twice, so a key is never created twice) and Quit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any, TypeVar

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from .. import keyring_policy
from ..keys import KEY_STORE_ENV
from ..protocol.untrusted_text import html_escape

T = TypeVar("T")

SHOW_AFTER = 0.3  # seconds before the waiting window shows (a keyring answers in ~50 ms)


class KeyringGaveUp(Exception):
    """The user chose Quit while the keyring did not answer."""


class KeyringWaitWindow(QDialog):
    """ "Waiting for the system keyring…", with Quit."""

    def __init__(self, user_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("keyringWaiting")
        self.setWindowTitle("Bucket Chat")
        self.setMinimumWidth(380)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 20, 22, 16)
        layout.setSpacing(10)
        title = QLabel("<b>Waiting for the system keyring…</b>")
        layout.addWidget(title)
        text = QLabel(
            f"Bucket Chat is asking it for the key of <b>{html_escape(user_id)}</b>. If it "
            "asks you to unlock it, do so in its window."
        )
        text.setWordWrap(True)
        layout.addWidget(text)
        buttons = QDialogButtonBox()
        buttons.addButton("Quit", QDialogButtonBox.ButtonRole.RejectRole)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


def no_answer_box(user_id: str, waited: float, parent: QWidget | None = None) -> QMessageBox:
    """The keyring did not answer within the deadline: say so, with Retry and Quit."""
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        "The system keyring does not answer",
        f"<b>The system keyring has not answered for {_seconds(waited)}.</b><br><br>"
        f"Bucket Chat keeps the key of <b>{html_escape(user_id)}</b> there and is still "
        "waiting for it. The keyring may be waiting for you to unlock it in a window "
        "hidden behind others, or its service may be stuck: unlock it, or restart it "
        "(logging out and back in does), then choose <b>Retry</b>.<br><br>"
        "If you keep your key in an encrypted key file instead, start Bucket Chat with "
        f"<code>{KEY_STORE_ENV}=file</code>.",
        QMessageBox.StandardButton.Retry,
        parent,
    )
    box.addButton("Quit", QMessageBox.ButtonRole.RejectRole)
    box.setObjectName("keyringNoAnswer")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setModal(False)
    box.setWindowModality(Qt.WindowModality.NonModal)
    return box


def _seconds(waited: float) -> str:
    n = max(1, round(waited))
    return f"{n} second" + ("" if n == 1 else "s")


def _finished(dialog: QDialog) -> asyncio.Future[int]:
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    dialog.finished.connect(lambda code: None if done.done() else done.set_result(code))
    return done


def _retrieve(future: asyncio.Future[Any]) -> None:
    """A call left behind may fail after nobody waits for it: not an unretrieved error."""
    if not future.cancelled():
        future.exception()


async def answered_within(future: concurrent.futures.Future[Any], timeout: float) -> bool:
    """Whether the keyring call in ``future`` is done within ``timeout`` seconds. The call
    goes on either way (never cancelled): waiting again waits for the same call."""
    wrapped: asyncio.Future[Any] = asyncio.wrap_future(future)
    wrapped.add_done_callback(_retrieve)
    await asyncio.wait({wrapped}, timeout=max(0.0, timeout))
    return future.done()


async def wait_for_keyring(future: concurrent.futures.Future[T], *, user_id: str) -> T:
    """The result of a keyring call running in ``future`` (it raises what the call
    raised); `KeyringGaveUp` if the user quits while it does not answer."""
    wrapped: asyncio.Future[Any] = asyncio.wrap_future(future)
    wrapped.add_done_callback(_retrieve)
    started = time.monotonic()
    await asyncio.wait({wrapped}, timeout=SHOW_AFTER)
    while not wrapped.done():
        window = KeyringWaitWindow(user_id)
        quit_chosen: asyncio.Future[Any] = _finished(window)
        window.show()
        try:
            left = max(0.0, keyring_policy.KEYRING_DEADLINE - (time.monotonic() - started))
            await asyncio.wait(
                {wrapped, quit_chosen}, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            window.hide()
            window.deleteLater()
        if wrapped.done():
            break
        if quit_chosen.done():
            raise KeyringGaveUp()
        box = no_answer_box(user_id, time.monotonic() - started)
        choice: asyncio.Future[Any] = _finished(box)
        box.show()
        try:
            # an answer that comes while the box is up is taken: the box goes away
            await asyncio.wait({wrapped, choice}, return_when=asyncio.FIRST_COMPLETED)
            retry = box.clickedButton() is box.button(QMessageBox.StandardButton.Retry)
        finally:
            box.hide()
            box.deleteLater()
        if wrapped.done():
            break
        if not retry:
            raise KeyringGaveUp()
        started = time.monotonic()  # Retry: wait again for the same call
    result: T = wrapped.result()
    return result
