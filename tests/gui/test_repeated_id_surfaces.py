"""Red team rt47, in the app: Eve signs messages of her own under the event ids of two of
Carol's — one Carol deleted, one she edited. An id signed twice takes no edit, deletion
or reaction (PROTOCOL.md 18.1), so Carol's deleted text is shown again and her edit is
not applied. The timeline said so on both rows; the room list's preview and search did
not: "SECRET …" came back as Carol's verified words, and her correction found nothing.
Each now says what the row says."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import shot, wait_for
from desk import Desk, preview_line, settings_for
from hostile import EVE, EVE_KEY
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from test_app_flows import CAROL, DAVE, store  # noqa: F401 - fixtures

from bucket_chat_desktop.gui.search import SearchFeature
from bucket_chat_desktop.gui.style import REPEATED_ID_NOTE
from bucket_chat_desktop.gui.widgets.search_panel import HitRoles, tooltip_html
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.relations import EDIT, REDACTION
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "general"
SECRET = "SECRET oops, pasted the token abc123"


def eve_copies(root: Path, taken: list[Event]) -> None:
    """Eve's join and, under each of ``taken``'s ids, a message of her own."""

    def signed(kind: str, content: dict[str, Any], ts: int, unique: str, prev: str | None) -> Event:
        return build_event(
            room_id=ROOM,
            sender_id=EVE,
            event_type=kind,
            content=content,
            timestamp_ms=ts,
            unique=unique,
            signing_key=EVE_KEY,
            prev_event_hash=prev,
        )

    events = [
        signed(MEMBER, {"membership": "join"}, 1_000, "0" * 8 + "-0000-4000-8000-" + "0" * 12, None)
    ]
    for ev in taken:
        unique = ev.event_id.rsplit("::", 1)[1]
        text = {"body": "mine too", "msgtype": "m.text"}
        events.append(signed(MESSAGE, text, ev.timestamp_ms, unique, events[-1].hash))
        assert events[-1].event_id == ev.event_id
    path = root / path_for(events, client_id_for(EVE, bytes(EVE_KEY.verify_key)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_segment(events))


def test_the_preview_and_search_say_an_id_was_used_twice(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    carol = RoomWriter(LocalStorage(store), ROOM, "carol@example.com", CAROL, displayname="Carol")

    async def write() -> list[Event]:
        _, (old,) = await carol.send([Draft.text("the code is OLD-1111")])
        edit = {"replaces": old.event_id, "new_content": {"body": "the code is NEW-2222"}}
        await carol.send([Draft(EDIT, edit)])
        _, (secret,) = await carol.send([Draft.text(SECRET)])
        await carol.send([Draft(REDACTION, {"redacts": secret.event_id})])
        return [old, secret]

    taken = wait_for(qtbot, write())
    desk = launch(settings_for(store, [ROOM]))
    desk.wait_loaded(ROOM)
    assert preview_line(desk.item(ROOM)) == "Message deleted"  # both relations applied
    assert desk.item(ROOM).preview_warning == ""
    eve_copies(store, taken)
    desk.wait_row(ROOM, SECRET)  # her deletion no longer applies …
    qtbot.waitUntil(lambda: preview_line(desk.item(ROOM)) == f"Carol: {SECRET}", timeout=15_000)
    assert desk.item(ROOM).preview_warning == REPEATED_ID_NOTE  # … and the preview says so
    (feature,) = desk.window.findChildren(SearchFeature)
    panel = feature.panel
    indexes = [a.index for a in desk.controller.client._storages.values()]
    qtbot.waitUntil(lambda: not any(i.text_pending for i in indexes), timeout=15_000)
    for text, body in (("SECRET", SECRET), ("OLD-1111", "the code is OLD-1111")):
        QTest.keyClick(desk.window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
        panel.field.clear()
        QTest.keyClicks(panel.field, text)

        def hits() -> list[Any]:
            model = panel.model
            return [model.index(r, 0).data(HitRoles.Hit) for r in range(model.rowCount())]

        qtbot.waitUntil(lambda t=text: any(t in h.hit.snippet.text for h in hits()), timeout=10_000)
        (found,) = [h for h in hits() if h.hit.sender_id == "carol@example.com"]
        assert found.hit.snippet.text == body and found.hit.copy is not None
        assert html.escape(REPEATED_ID_NOTE) in tooltip_html(found)
        panel.list.viewport().repaint()  # painted with the note, without a failure
        shot(desk.window, f"repeated-id-search-{text}", tmp_path)
        QTest.keyClick(panel.field, Qt.Key.Key_Escape)


def test_a_thread_whose_root_id_is_used_twice_meanwhile_closes_saying_why(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
) -> None:
    """Red team rt50: Eve's copy of the root's id arrived while its thread was open. The
    panel went on with "0 replies", no reply shown and a composer whose replies were
    refused; opening it anew is refused with the reason. It now closes with that reason."""
    storage = LocalStorage(store)
    carol = RoomWriter(storage, ROOM, "carol@example.com", CAROL, displayname="Carol")
    dave = RoomWriter(storage, ROOM, "dave@example.com", DAVE, displayname="Dave")

    async def write() -> Event:
        _, (root,) = await carol.send([Draft.text("the plan, reply here")])
        await dave.send([Draft.text("agreed", root.event_id)])
        return root

    root = wait_for(qtbot, write())
    desk = launch(settings_for(store, [ROOM]))
    desk.wait_loaded(ROOM)
    errors: list[tuple[str, str]] = []
    desk.controller.error.connect(lambda what, why: errors.append((what, why)))
    panel = desk.window.relation_actions.thread_panel  # type: ignore[union-attr]
    desk.window.open_thread(root.event_id)
    qtbot.waitUntil(lambda: "1 reply" in panel.subtitle.text(), timeout=15_000)
    eve_copies(store, [root])
    qtbot.waitUntil(lambda: not panel.isVisible(), timeout=15_000)
    assert errors and "two devices used this message's id" in errors[-1][1], errors
