"""Issue 10's "done when", as a user meets it: Alice in the app (``app.run``, the real
window, driven with the mouse and keyboard: the hover bar's reactions, a chip click to
take one back, a reply through the bar, Up to edit her last message, deleting through
the confirmation dialog) and Bob on the command line (``send --reply-to``, ``react``,
``edit``, ``delete`` in a separate process with his own home) in one room, on a local
folder and on the S3 emulator.

Then each must see the other's relations, and everyone the same result: the app shows
Bob's quote, chips with counts, edited text with its marker, the deletion placeholder and
the thread count; Bob's ``history --json`` shows Alice's; and the same summary (per
message: latest text or deleted, reactions with counts, the message replied to, thread
replies, edits, trust) comes out of the app after a restart on the same home, of a fresh
device's ``history --json`` and of the app started on a fresh home.

Set $BUCKET_CHAT_GUI_SHOTS to a folder to keep the screenshot of the final timeline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import shot  # tests/gui/conftest.py
from desk import preview_line
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from test_app_flows import (  # noqa: F401 (fixtures used by name)
    ALICE,
    BOB,
    CAROL,
    S3,
    Desk,
    Device,
    launch,
    moto,
    s3,
    settings_for,
    store,
    wait_for,
)

from bucket_chat_desktop.gui.models.timeline_model import MESSAGE, Roles
from bucket_chat_desktop.gui.relation_actions import RelationActions
from bucket_chat_desktop.gui.room_preview import DELETED as DELETED_PREVIEW
from bucket_chat_desktop.protocol.relations import EDIT, REACTION, REDACTION
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "lunch"
WAIT = 30_000  # a loaded 2-core machine: generous, every wait has a condition

Summary = dict[str, dict[str, Any]]


# -- what each reader sees, comparable across readers -----------------------------------------


def app_summary(desk: Desk) -> Summary:
    """Per shown message of the open room, what the app shows of its relations."""
    model = desk.model(ROOM)
    out: Summary = {}
    for i in range(model.rowCount()):
        index = model.index(i)
        row = model.row(i)
        if row.type != MESSAGE or row.echo:
            continue
        deleted = index.data(Roles.Deleted)
        edited = index.data(Roles.Edited)
        quote = index.data(Roles.Quote)
        thread = index.data(Roles.Thread)
        out[row.event_id] = {
            "sender": row.sender_id,
            "body": None if deleted is not None else index.data(Roles.Body),
            "deleted": deleted.reason if deleted is not None else None,
            "edits": edited.times if edited is not None and deleted is None else 0,
            "reactions": {c.key: c.number for c in index.data(Roles.Reactions) or ()},
            "reply_to": quote.parent_id if quote is not None else None,
            "thread": thread.replies if thread is not None else 0,
            "trust": index.data(Roles.Trust),
        }
    return out


def cli_summary(doc: dict[str, Any]) -> Summary:
    """The same of ``history --json``."""
    assert doc["findings"] == [], doc["findings"]
    out: Summary = {}
    for e in doc["events"]:
        if e["type"] != MESSAGE:
            continue
        redacted = e["redacted"]
        out[e["event_id"]] = {
            "sender": e["sender_id"],
            "body": None if redacted is not None else e["body"],
            "deleted": (redacted["reason"] or "") if redacted is not None else None,
            "edits": len(e["edited"]["edits"]) if e["edited"] else 0,
            "reactions": {c["key"]: c["count"] for c in e["reactions"]},
            "reply_to": e["reply_to"],
            "thread": e["thread_replies"],
            "trust": e["shown_trust"],
        }
    return out


# -- driving the window -------------------------------------------------------------------


class Alice:
    """The app's window, used as a person does."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.qtbot = desk.qtbot
        self.window = desk.window
        actions = desk.window.findChild(RelationActions)
        assert actions is not None
        self.actions: RelationActions = actions

    def row_of(self, event_id: str) -> int:
        model = self.desk.model(ROOM)
        return next((i for i in range(model.rowCount()) if model.row(i).event_id == event_id), -1)

    def hover(self, event_id: str) -> None:
        """Move the mouse over the message: its bar appears on it."""
        view = self.window.timeline
        self.qtbot.waitUntil(lambda: self.row_of(event_id) >= 0, timeout=WAIT)
        index = view.model().index(self.row_of(event_id), 0)
        view.scrollTo(index)
        rect = view.visualRect(index)
        bar = self.actions.bar
        # Two moves: the second is a real move within the row even when the mouse was
        # already there (the bar follows moves, not positions).
        QTest.mouseMove(view.viewport(), QPoint(rect.center().x(), rect.bottom() - 6))
        QTest.mouseMove(view.viewport(), QPoint(rect.center().x(), rect.bottom() - 4))
        self.qtbot.waitUntil(
            lambda: bar.isVisible() and bar.target is not None and bar.target.event_id == event_id,
            timeout=WAIT,
        )

    def click_chip(self, event_id: str, key: str) -> None:
        view, delegate = self.window.timeline, self.window.delegate
        index = view.model().index(self.row_of(event_id), 0)
        view.scrollTo(index)
        view.executeDelayedItemsLayout()
        regions = delegate.regions(index, view.visualRect(index), view.font())
        [rect] = [r for what, chip, r in regions.parts if what == "chip" and chip.key == key]
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())

    def mine(self, event_id: str, key: str) -> bool:
        return bool(self.desk.controller.own_reaction(self.desk.key(ROOM), event_id, key))

    def aggregate(self, event_id: str) -> Any:
        known = self.desk.controller.relations(self.desk.key(ROOM))
        return known[1].of(event_id) if known is not None else None

    def type(self, text: str) -> None:
        composer = self.window.composer
        composer.setFocus()
        QTest.keyClicks(composer, text)
        QTest.keyClick(composer, Qt.Key.Key_Return)

    def confirmed(self, body: str) -> str:
        """The event id of Alice's row with ``body`` once it is read back from storage."""
        row = self.desk.wait_row(ROOM, body, timeout=WAIT)
        assert row.sender_id == ALICE and row.trust == "verified"
        return row.event_id


# -- the flow ---------------------------------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shared storage: a local folder, or a prefix in a new bucket of the emulator."""
    if request.param == "local":
        folder = tmp_path / "store"
        folder.mkdir()
        return str(folder)
    emulator: S3 = request.getfixturevalue("s3")
    return emulator.bucket("bc-gui-relations-flow")


def test_two_users_reply_react_edit_and_delete_and_everyone_sees_the_same(
    qtbot: Any,
    launch: Callable[..., Desk],  # noqa: F811 (the fixture imported above)
    spec: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bob = Device(tmp_path / "bob-home", BOB, "Bob")

    def cli(device: Device, *args: str) -> str:
        return device.run(qtbot, "-s", spec, *args, timeout=WAIT)

    def by_bob(command: str, *args: str) -> str:
        out = cli(bob, command, "--room-id", ROOM, "--user-id", BOB, *args)
        return out.splitlines()[0].split()[-1] if command == "send" else out

    bob.create_room(qtbot, spec, ROOM, "Lunch")
    lunch = by_bob("send", "--displayname", "Bob", "lunch at noon?")

    desk = launch(settings_for(spec, [ROOM], name="Team"))
    desk.wait_loaded(ROOM, timeout=WAIT)
    desk.wait_row(ROOM, "lunch at noon?", timeout=WAIT)
    alice = Alice(desk)
    composer = desk.window.composer

    # Alice replies to Bob through the hover bar
    alice.hover(lunch)
    alice.actions.bar.reply_button.click()
    assert composer.reply_to == lunch and composer.hasFocus()
    QTest.keyClicks(composer, "yes, the usual place")
    QTest.keyClick(composer, Qt.Key.Key_Return)
    yes = alice.confirmed("yes, the usual place")

    # ...reacts 👍 and 🎉 from the bar, then takes 🎉 back with a click on its chip
    for key in ("👍", "🎉"):
        alice.hover(lunch)
        alice.actions.bar.reaction_buttons[key].click()
        qtbot.waitUntil(lambda k=key: alice.mine(lunch, k), timeout=WAIT)
    alice.click_chip(lunch, "🎉")
    qtbot.waitUntil(lambda: not alice.mine(lunch, "🎉"), timeout=WAIT)
    assert alice.mine(lunch, "👍")

    # ...fixes her reply with Up (it edits her last message)
    composer.setFocus()
    QTest.keyClick(composer, Qt.Key.Key_Up)
    assert composer.editing == yes and composer.toPlainText() == "yes, the usual place"
    composer.selectAll()
    QTest.keyClicks(composer, "yes, the usual place at 12:30")
    QTest.keyClick(composer, Qt.Key.Key_Return)
    qtbot.waitUntil(
        lambda: (a := alice.aggregate(yes)) is not None and a.latest is not None, timeout=WAIT
    )

    # ...and takes back a message sent in the wrong room, through the dialog
    alice.type("wrong room, sorry")
    wrong = alice.confirmed("wrong room, sorry")
    alice.hover(wrong)
    alice.actions.bar.delete_button.click()
    dialog = alice.actions.delete_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    QTest.keyClicks(dialog.reason_edit, "posted by mistake")
    dialog.delete_button.click()
    qtbot.waitUntil(
        lambda: (a := alice.aggregate(wrong)) is not None and a.redacted is not None,
        timeout=WAIT,
    )

    # Bob, on the command line, answers Alice's reply, reacts, edits and deletes
    see = by_bob("send", "--reply-to", yes, "see you there")
    by_bob("react", yes, "😀")
    by_bob("react", lunch, "👍")
    by_bob("react", lunch, "🎉")
    by_bob("react", "--remove", lunch, "🎉")
    by_bob("edit", lunch, "lunch at 12:30?")
    oops = by_bob("send", "the password is hunter2")
    assert "copies remain" in by_bob("delete", oops, "--reason", "wrong room")

    expected: Summary = {
        lunch: {
            "sender": BOB,
            "body": "lunch at 12:30?",
            "deleted": None,
            "edits": 1,
            "reactions": {"👍": 2},
            "reply_to": None,
            "thread": 2,
            "trust": "verified",
        },
        yes: {
            "sender": ALICE,
            "body": "yes, the usual place at 12:30",
            "deleted": None,
            "edits": 1,
            "reactions": {"😀": 1},
            "reply_to": lunch,
            "thread": 0,
            "trust": "verified",
        },
        wrong: {
            "sender": ALICE,
            "body": None,
            "deleted": "posted by mistake",
            "edits": 0,
            "reactions": {},
            "reply_to": None,
            "thread": 0,
            "trust": "verified",
        },
        see: {
            "sender": BOB,
            "body": "see you there",
            "deleted": None,
            "edits": 0,
            "reactions": {},
            "reply_to": yes,
            "thread": 0,
            "trust": "verified",
        },
        oops: {
            "sender": BOB,
            "body": None,
            "deleted": "wrong room",
            "edits": 0,
            "reactions": {},
            "reply_to": None,
            "thread": 0,
            "trust": "verified",
        },
    }

    # the app shows Bob's relations as they arrive; the room list's preview is the
    # newest shown message, deleted (it showed nothing after a relation event before)
    wait_for_summary(desk, expected)
    qtbot.waitUntil(lambda: preview_line(desk.item(ROOM)) == DELETED_PREVIEW, timeout=WAIT)
    shows_the_relations(desk, lunch, yes, see, oops)
    kind = "s3" if "://" in spec else "local"
    shot(desk.window, f"relations_flow_{kind}", tmp_path)

    # Bob's history shows Alice's (and his own)
    assert cli_summary(json.loads(cli(bob, "history", "--room-id", ROOM, "--json"))) == expected
    text = cli(bob, "history", "--room-id", ROOM)
    assert "yes, the usual place at 12:30 (edited)" in text
    assert "(message deleted by alice@example.com; reason: posted by mistake)" in text
    assert "hunter2" not in text and "wrong room, sorry" not in text

    # a fresh device of someone else reads the same
    fresh = Device(tmp_path / "fresh-home", "carol@example.com", "Carol")
    assert cli_summary(json.loads(cli(fresh, "history", "--room-id", ROOM, "--json"))) == expected
    assert "CLEAN" in cli(fresh, "verify", "--room-id", ROOM)  # nothing forged or hidden

    # the app after a restart on the same home (its index holds the room)
    assert desk.quit() == 0
    again = launch(settings_for(spec, [ROOM], name="Team"))
    again.wait_loaded(ROOM, timeout=WAIT)
    wait_for_summary(again, expected)
    shows_the_relations(again, lunch, yes, see, oops)
    assert again.quit() == 0

    # the app on a fresh device (nothing cached) of a third person who reads along.
    # (Not Alice's: a device of hers that was never introduced pins its own new key and
    # rightly shows her earlier messages as "key changed" until she accepts it.)
    carol_home = tmp_path / "carol-home"
    carol_home.mkdir()
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(carol_home))
    entry = StorageSettings(spec, "Team", [ROOM])
    carol = launch(Settings("carol@example.com", "Carol", [entry], last_room=f"{entry.id}/{ROOM}"))
    carol.wait_loaded(ROOM, timeout=WAIT)
    wait_for_summary(carol, expected)
    shows_the_relations(carol, lunch, yes, see, oops)
    qtbot.waitUntil(lambda: preview_line(carol.item(ROOM)) == DELETED_PREVIEW, timeout=WAIT)
    assert not desk.window.isVisible() and not again.window.isVisible()
    shot(carol.window, f"relations_flow_fresh_{kind}", tmp_path)


def wait_for_summary(desk: Desk, expected: Summary) -> None:
    """Until the app shows ``expected`` (relations follow the rows they are about)."""
    try:
        desk.qtbot.waitUntil(lambda: app_summary(desk) == expected, timeout=WAIT)
    except Exception:
        shown = app_summary(desk)
        differ = {k: (shown.get(k), v) for k, v in expected.items() if shown.get(k) != v}
        assert shown == expected, f"shown, expected: {differ}"
        raise


def shows_the_relations(desk: Desk, lunch: str, yes: str, see: str, oops: str) -> None:
    """What the window paints for them: the quote, the chips, the edited marker, the
    deletion placeholder and the thread count."""
    model = desk.model(ROOM)
    rows = {model.row(i).event_id: model.index(i) for i in range(model.rowCount())}
    quote = rows[see].data(Roles.Quote)
    assert (quote.name, quote.text, quote.status) == (
        "Alice",
        "yes, the usual place at 12:30",
        "ok",
    )
    assert rows[yes].data(Roles.Quote).parent_id == lunch
    [thumbs] = rows[lunch].data(Roles.Reactions)
    assert thumbs.key == "👍" and thumbs.number == 2 and thumbs.all_verified
    assert {who[1] for who in thumbs.who} == {ALICE, BOB}
    assert rows[lunch].data(Roles.Edited).times == 1
    assert rows[lunch].data(Roles.Body) == "lunch at 12:30?"
    assert rows[oops].data(Roles.Kind) == "deleted"
    assert "Message deleted" in rows[oops].data(Roles.Body)
    assert "hunter2" not in rows[oops].data(Roles.Body)
    assert rows[lunch].data(Roles.Thread).replies == 2
    assert not desk.window.banner.isVisible()  # no findings


def test_the_room_list_previews_shown_messages_and_counts_no_relation_events_as_unread(
    qtbot: Any,
    launch: Callable[..., Desk],  # noqa: F811
    store: Path,  # noqa: F811
) -> None:
    """In a room nobody looks at: a reaction, an edit and a deletion are not new
    messages (no unread, no notification with an empty text), and the preview follows
    the newest message's latest text, then says it was deleted (never its text)."""
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("falcon")
    desk.wait_loaded("general")  # in the background: what comes next is new
    notifier = desk.window.notifier
    carol = RoomWriter(LocalStorage(store), "general", "carol@example.com", CAROL)

    _, [*_, msg] = wait_for(qtbot, carol.send([Draft.text("Pizza or sushi?")]))
    qtbot.waitUntil(
        lambda: preview_line(desk.item("general")) == "Carol: Pizza or sushi?", timeout=WAIT
    )
    assert desk.item("general").unread == 1 and len(notifier.shown) == 1

    relate = [
        Draft(REACTION, {"relates_to": msg.event_id, "reaction": "🍕"}),
        Draft(
            EDIT,
            {
                "replaces": msg.event_id,
                "new_content": {"body": "Pizza, sushi or tacos?", "msgtype": "m.text"},
            },
        ),
    ]
    wait_for(qtbot, carol.send(relate))
    qtbot.waitUntil(
        lambda: preview_line(desk.item("general")) == "Carol: Pizza, sushi or tacos?", timeout=WAIT
    )
    wait_for(qtbot, carol.send([Draft(REDACTION, {"redacts": msg.event_id})]))
    qtbot.waitUntil(lambda: preview_line(desk.item("general")) == DELETED_PREVIEW, timeout=WAIT)
    assert desk.item("general").unread == 1 and len(notifier.shown) == 1
