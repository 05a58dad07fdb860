"""Red team: the room list's preview, the unread count and notifications against relation
events planted in a room the user is not looking at (``app.run``, a real engine on a local
folder, events written by other writers into the same folder while the app runs).

A reaction, an edit, a deletion or a typing notice is not a new message: it counts no
unread, notifies nothing, and nothing of its content (a hostile writer can add a ``body``)
reaches the preview. The preview follows its message: an edit by its sender shows the new
text, a forged one changes nothing, and a deleted message's text is shown nowhere.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from desk import preview_line
from nacl.signing import SigningKey
from test_app_flows import (  # noqa: F401 (fixtures)
    CAROL,
    DAVE,
    Desk,
    launch,
    settings_for,
    store,
    wait_for,
)

from bucket_chat_desktop.protocol.event import Event
from bucket_chat_desktop.protocol.relations import EDIT, REACTION, REDACTION, TYPING
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

CAROL_ID = "carol@example.com"
DAVE_ID = "dave@example.com"
BAIT = "TOP SECRET planted body"


def test_relations_neither_notify_nor_leak_into_the_preview(
    qtbot: Any,
    launch: Callable[..., Desk],  # noqa: F811
    store: Path,  # noqa: F811
) -> None:
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("falcon")
    desk.wait_loaded("general")
    assert desk.controller.current == desk.key("falcon")
    notifier = desk.window.notifier
    storage = LocalStorage(store)
    carol = RoomWriter(storage, "general", CAROL_ID, CAROL, displayname="Carol")
    dave = RoomWriter(storage, "general", DAVE_ID, DAVE, displayname="Dave")
    # a forger with write access and a key of their own, under Carol's id
    forger = RoomWriter(storage, "general", CAROL_ID, SigningKey(b"\x09" * 32))

    def plant(writer: RoomWriter, draft: Draft) -> Event:
        _, [*_, ev] = wait_for(qtbot, writer.send([draft]))
        qtbot.waitUntil(lambda: desk.shows("general", ev.event_id), timeout=15_000)
        return ev

    def shown() -> list[str]:
        return [text for _key, _title, text in notifier.shown]

    # first events: typing notices with a body (their writers' joins are rows, not they)
    plant(forger, Draft(TYPING, {"typing": True, "body": BAIT}))
    assert preview_line(desk.item("general")) == f"{CAROL_ID} joined the room"
    plant(dave, Draft(TYPING, {"typing": True, "body": BAIT}))
    assert preview_line(desk.item("general")) == f"{DAVE_ID} joined the room"
    assert desk.item("general").unread == 0 and shown() == []

    target = plant(carol, Draft.text("Lunch at noon?")).event_id
    qtbot.waitUntil(lambda: desk.item("general").unread == 1, timeout=15_000)
    assert preview_line(desk.item("general")) == "Carol: Lunch at noon?" and shown() == [
        "Lunch at noon?"
    ]

    # a reaction, a typing notice and a forged edit, each with a body of its own
    plant(dave, Draft(REACTION, {"relates_to": target, "reaction": "👍", "body": BAIT}))
    plant(dave, Draft(TYPING, {"typing": True, "body": BAIT}))
    forged = {"replaces": target, "new_content": {"body": BAIT, "msgtype": "m.text"}}
    plant(forger, Draft(EDIT, {**forged, "body": BAIT}))
    item = desk.item("general")
    assert preview_line(item) == "Carol: Lunch at noon?"
    assert item.unread == 1 and shown() == ["Lunch at noon?"]
    _, relations = desk.controller.relations(desk.key("general"))
    assert [f.kind.value for f in relations.findings] == ["relation-not-sender"]

    # Carol's own edit: the preview shows the new text, nothing more to notify
    plant(
        carol,
        Draft(EDIT, {"replaces": target, "new_content": {"body": "Lunch at 12:30?"}, "body": BAIT}),
    )
    qtbot.waitUntil(
        lambda: preview_line(desk.item("general")) == "Carol: Lunch at 12:30?", timeout=15_000
    )
    assert desk.item("general").unread == 1 and shown() == ["Lunch at noon?"]

    # Carol deletes it: no text of it is left in the preview
    plant(carol, Draft(REDACTION, {"redacts": target, "reason": BAIT, "body": BAIT}))
    qtbot.waitUntil(lambda: preview_line(desk.item("general")) == "Message deleted", timeout=15_000)
    assert desk.item("general").unread == 1 and shown() == ["Lunch at noon?"]

    # a real message still counts and notifies, with its own text
    plant(dave, Draft.text("Sure."))
    qtbot.waitUntil(lambda: desk.item("general").unread == 2, timeout=15_000)
    assert preview_line(desk.item("general")) == "Dave: Sure."
    assert shown() == ["Lunch at noon?", "Sure."]

    # a restart reads the room whole: its newest rows are relations, the preview is the
    # newest message's, never a relation's content
    plant(dave, Draft(REACTION, {"relates_to": target, "reaction": "🎉", "body": BAIT}))
    assert desk.quit() == 0
    again = launch(settings_for(store, ["falcon", "general"]))
    again.wait_loaded("general")
    assert preview_line(again.item("general")) == "Dave: Sure."
    assert BAIT not in preview_line(again.item("general"))


def _segments(root: Path) -> set[Path]:
    return set((root / "rooms" / "general" / "logs").rglob("*.jsonl"))


def test_a_message_read_after_its_deletion_neither_notifies_nor_previews_its_text(
    qtbot: Any,
    launch: Callable[..., Desk],  # noqa: F811
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Red team: a deletion whose message is not read yet waits (section 18.1); a storage
    that withholds the message's segment and hands it over later must not make the app
    notify, count or preview the text its sender took back."""
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("falcon")
    desk.wait_loaded("general")
    notifier = desk.window.notifier
    # Carol's second device writes elsewhere first: her message, then its deletion
    scratch = tmp_path / "scratch"
    phone = RoomWriter(LocalStorage(scratch), "general", CAROL_ID, SigningKey(b"\x0b" * 32))
    _, [*_, secret] = wait_for(qtbot, phone.send([Draft.text(BAIT)]))
    first = _segments(scratch)
    _, [redaction] = wait_for(qtbot, phone.send([Draft(REDACTION, {"redacts": secret.event_id})]))
    second = _segments(scratch) - first

    def publish(paths: set[Path]) -> None:
        for path in paths:
            target = store / path.relative_to(scratch)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())

    publish(second)  # the deletion is listed first: it waits for its message
    qtbot.waitUntil(lambda: desk.shows("general", redaction.event_id), timeout=15_000)
    publish(first)
    qtbot.waitUntil(lambda: desk.shows("general", secret.event_id), timeout=15_000)
    _, relations = desk.controller.relations(desk.key("general"))
    agg = relations.of(secret.event_id)
    assert agg is not None and agg.redacted is not None  # the rules applied it
    item = desk.item("general")
    assert BAIT not in preview_line(item) and preview_line(item) == "Message deleted"
    assert item.unread == 0
    assert all(BAIT not in text for _key, _title, text in notifier.shown)


def test_a_lookalike_is_marked_in_the_preview_and_the_notification(
    qtbot: Any,
    launch: Callable[..., Desk],  # noqa: F811
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Red team: the preview of a look-alike's join showed their id cleaned of its
    zero-width space and unmarked, and a notification's title named them unmarked."""
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("general")
    lookalike = "c\u0430rol\u200b@example.com"
    writer = RoomWriter(
        LocalStorage(store), "general", lookalike, SigningKey(b"\x0a" * 32), displayname="Carol"
    )
    wait_for(qtbot, writer.send([Draft(TYPING, {"typing": True})]))
    spelled = "c\u0430rol\\u200b@example.com"
    qtbot.waitUntil(lambda: spelled in preview_line(desk.item("general")), timeout=15_000)
    item = desk.item("general")
    assert preview_line(item) == f"{spelled} joined the room"
    assert "mixes Cyrillic and Latin" in item.preview_warning
    rooms = desk.window.room_list
    rooms.resize(300, 200)
    assert rooms.grab().save(str(tmp_path / "preview-lookalike.png"))
    wait_for(qtbot, writer.send([Draft.text("pay me")]))
    qtbot.waitUntil(lambda: bool(desk.window.notifier.shown), timeout=15_000)
    title = desk.window.notifier.shown[-1][1]
    assert title.startswith(f"⚠ Carol ({spelled})"), title
