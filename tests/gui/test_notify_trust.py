"""Red team: a message that is not verified is marked in the tray's notification and in
the room list's preview, in its badge's words, as its row is marked.

An impostor with write access and a key of their own writes under Carol's id after Carol
is established: the row was "key-changed", but the notification was titled "Carol
(carol@example.com) in General" — the title of Carol's own messages — and the preview
showed the text unmarked (its warning was only ever set for member events).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from desk import preview_line
from nacl.signing import SigningKey
from PySide6.QtCore import Qt
from test_app_flows import (  # noqa: F401 (fixtures)
    CAROL,
    Desk,
    launch,
    settings_for,
    store,
    wait_for,
)

from bucket_chat_desktop.gui.controller import not_verified
from bucket_chat_desktop.gui.models.rooms_model import RoomRoles
from bucket_chat_desktop.protocol.audit import Assessed, TrustState
from bucket_chat_desktop.protocol.event import MESSAGE, Event
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

CAROL_ID = "carol@example.com"
BAIT = "New bank details: please wire the $5,000 to XX99 9999 today"


def test_an_impostors_message_is_marked_in_the_notification_and_the_preview(
    qtbot: Any,
    launch: Callable[..., Desk],  # noqa: F811
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("falcon")
    desk.wait_loaded("general")
    notifier = desk.window.notifier
    storage = LocalStorage(store)
    carol = RoomWriter(storage, "general", CAROL_ID, CAROL, displayname="Carol")
    forger = RoomWriter(storage, "general", CAROL_ID, SigningKey(b"\x09" * 32))

    def plant(writer: RoomWriter, draft: Draft) -> Event:
        _, [*_, ev] = wait_for(qtbot, writer.send([draft]))
        qtbot.waitUntil(lambda: desk.shows("general", ev.event_id), timeout=15_000)
        return ev

    plant(carol, Draft.text("Hi, Carol here."))
    qtbot.waitUntil(lambda: len(notifier.shown) >= 1, timeout=15_000)
    genuine = notifier.shown[-1][1]
    assert genuine == "Carol (carol@example.com) in General", genuine
    assert desk.item("general").preview_warning == ""

    forged = plant(forger, Draft.text(BAIT))
    qtbot.waitUntil(lambda: len(notifier.shown) >= 2, timeout=15_000)
    result = desk.controller.result(desk.key("general"))
    assert result is not None
    row = next(a for a in result.timeline if a.event.event_id == forged.event_id)
    assert row.state is TrustState.KEY_CHANGED
    _key, title, text = notifier.shown[-1]
    assert text == BAIT
    # first (the tray cuts a long title at its end), in the words of the row's badge
    assert title == "⚠ Key changed: Carol (carol@example.com) in General", title
    assert title != genuine

    item = desk.item("general")
    assert preview_line(item) == f"Carol: {BAIT}"
    assert item.preview_warning == "The last message is not verified: Key changed"
    rooms = desk.window.room_list
    index = rooms.model().index(desk.controller.rooms.row_of(desk.key("general")), 0)
    assert index.data(RoomRoles.PreviewWarning) == item.preview_warning
    tooltip = index.data(Qt.ItemDataRole.ToolTipRole)
    assert "⚠ The last message is not verified: Key changed" in tooltip
    rooms.resize(300, 200)
    assert rooms.grab().save(str(tmp_path / "preview-key-changed.png"))

    # Carol's own next message: the preview is hers, unmarked again
    plant(carol, Draft.text("That was not me."))
    qtbot.waitUntil(
        lambda: preview_line(desk.item("general")) == "Carol: That was not me.", timeout=15_000
    )
    assert desk.item("general").preview_warning == ""
    assert notifier.shown[-1][1] == genuine


def _row(state: TrustState, sender_key: str | None) -> Assessed:
    event = Event(
        raw={},
        canonical=b"",
        hash="",
        event_id="$e",
        room_id="general",
        timestamp_ms=0,
        sender_id=CAROL_ID,
        type=MESSAGE,
        parent_event_id=None,
        prev_event_hash=None,
        signature="",
        sender_key=sender_key,
        content={"body": "hi"},
    )
    return Assessed(event, state, "", "", 0)


@pytest.mark.parametrize(
    ("state", "sender_key", "words"),
    [
        (TrustState.VERIFIED, "k", ""),
        (TrustState.UNVERIFIED, "k", "Unverified"),
        (TrustState.KEY_CHANGED, "k", "Key changed"),
        (TrustState.KEY_CHANGED, None, "Not from them"),
        (TrustState.INVALID, "k", "Invalid"),
    ],
)
def test_every_state_but_verified_is_worded_as_the_rows_badge(
    state: TrustState, sender_key: str | None, words: str
) -> None:
    """Only "verified" goes unmarked: "unverified" (a key not trusted yet, or nobody's
    while the history is not read completely) is no more the sender's than a changed key."""
    assert not_verified(_row(state, sender_key)) == words
