"""A message that arrives late — written a little before the newest message shown, read
after it (a slower upload, a device's outbox delivering after a short outage) — is news
like any other: the real app on a real folder, Carol and Bob writing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import wait_for
from desk import Desk, preview_line, settings_for
from nacl.signing import SigningKey
from PySide6.QtCore import QPersistentModelIndex, QPoint

from bucket_chat_desktop import settings as settings_store
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.events import EngineEvent, EventsAppended, RoomLoaded
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

CAROL = ("carol@example.com", SigningKey(b"\x03" * 32))
BOB = ("bob@example.com", SigningKey(b"\x02" * 32))
MALLORY = ("mallory@example.com", SigningKey(b"\x0d" * 32))


def test_a_message_read_after_a_newer_one_is_counted_and_notified(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "store")
    carol = RoomWriter(storage, "c", *CAROL, displayname="Carol")
    wait_for(qtbot, carol.send([Draft.text("hello")]))
    dated = [0]  # the date Bob's next message gets (0: now)
    bob = RoomWriter(
        storage, "c", *BOB, displayname="Bob", clock=lambda: dated[0] or int(time.time() * 1000)
    )
    wait_for(qtbot, bob.send([Draft.text("hi Carol")]))
    wait_for(qtbot, RoomWriter(storage, "a", *CAROL).send([Draft.text("elsewhere")]))
    desk = launch(settings_for(tmp_path / "store", ["a", "c"]))
    running = int(time.time() * 1000)  # the app runs
    controller = desk.controller
    desk.wait_loaded("a", "c")
    assert controller.current == desk.key("a")
    notes: list[tuple[str, str, str]] = []
    controller.notify.connect(lambda key, title, text: notes.append((key, title, text)))
    kinds: list[type] = []
    placed: list[int | None] = []
    deliver = controller.bridge.deliver

    def record(storage_id: str, event: EngineEvent) -> None:
        if getattr(event, "room_id", None) == "c":
            kinds.append(type(event))
            if isinstance(event, EventsAppended):
                placed.append(event.at)
        deliver(storage_id, event)

    controller.bridge.deliver = record

    wait_for(qtbot, carol.send([Draft.text("are you there?")]))
    qtbot.waitUntil(lambda: desk.item("c").unread == 1, timeout=15_000)
    newest = (preview_line(desk.item("c")), desk.item("c").last_ts)
    assert "are you there?" in newest[0]
    # Bob's answer, written (while the app ran) before Carol's question, is read after
    # it: it sorts before the newest row shown, and is placed there (no full audit)
    dated[0] = running
    kinds.clear()
    wait_for(qtbot, bob.send([Draft.text("yes, here")]))
    at = desk.wait_index("c", "yes, here")
    assert RoomLoaded not in kinds and placed[-1] is not None
    assert [r.body for r in desk.rows("c")[at:]] == ["yes, here", "are you there?"]
    assert desk.item("c").unread == 2
    assert [text for _key, _title, text in notes] == ["are you there?", "yes, here"]
    # the room list still shows the room's newest message, as a full audit does (the
    # message placed before it was the preview, and its older date the room's)
    assert (preview_line(desk.item("c")), desk.item("c").last_ts) == newest


def test_a_message_behind_one_dated_ahead_shows_above_it_in_the_view(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    """Mallory's clock runs ten minutes fast: her message is shown (within the hour) and
    is the room's last row until its date. Bob's answer, written now, is placed above it
    in the open room — inserted into the model there, not a re-audit that rebuilds it —
    counted as news, and the view that follows the bottom still shows the newest rows."""
    storage = LocalStorage(tmp_path / "store")
    now = int(time.time() * 1000)
    mallory_clock = [now]
    mallory = RoomWriter(
        storage, "c", *MALLORY, displayname="Mallory", clock=lambda: mallory_clock[0]
    )
    wait_for(qtbot, mallory.send([Draft.text("hello")]))
    wait_for(qtbot, RoomWriter(storage, "c", *BOB, displayname="Bob").send([Draft.text("hi")]))
    desk = launch(settings_for(tmp_path / "store", ["c"]))
    controller = desk.controller
    desk.wait_loaded("c")
    model = desk.model("c")
    mallory_clock[0] = now + 10 * 60_000
    wait_for(qtbot, mallory.send([Draft.text("from a fast clock")]))
    desk.wait_row("c", "from a fast clock")
    # A full audit the re-audit pace put off for that arrival may still come (under load
    # it did, as a RoomLoaded after Bob's message): wait for it, it is not Bob's.
    qtbot.waitUntil(lambda: desk.settled("c"), timeout=30_000)
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    inserted: list[tuple[int, int]] = []
    model.rowsInserted.connect(lambda _p, first, last: inserted.append((first, last)))
    kinds: list[type] = []
    deliver = controller.bridge.deliver

    def record(storage_id: str, event: EngineEvent) -> None:
        if getattr(event, "room_id", None) == "c":
            kinds.append(type(event))
        deliver(storage_id, event)

    controller.bridge.deliver = record
    bob = RoomWriter(storage, "c", *BOB, displayname="Bob")
    wait_for(qtbot, bob.send([Draft.text("answered now")]))
    at = desk.wait_index("c", "answered now")
    bodies = [r.body for r in desk.rows("c")]
    assert bodies[-2:] == ["answered now", "from a fast clock"]
    assert RoomLoaded not in kinds and resets == [] and inserted == [(at, at)]
    view = desk.window.timeline
    qtbot.waitUntil(
        lambda: (
            view.visualRect(model.index(at, 0)).bottom()
            <= view.visualRect(model.index(at + 1, 0)).top()
        )
    )
    # the view follows the bottom: the newest row is in sight
    last = view.visualRect(model.index(model.rowCount() - 1, 0))
    qtbot.waitUntil(lambda: view.viewport().rect().intersects(last))
    desk.window.grab().save(str(tmp_path / "placed.png"))


def test_a_message_placed_above_the_rows_in_view_leaves_them_still(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    """Someone scrolled up a little, reading Mallory's long post dated ahead: Bob's
    message placed above it goes in above the rows in view, which stay where they were
    under the eye (the list view keeps its scroll value: they moved down by its height)."""
    storage = LocalStorage(tmp_path / "store")
    now = int(time.time() * 1000)
    mallory_clock = [now]
    mallory = RoomWriter(
        storage, "c", *MALLORY, displayname="Mallory", clock=lambda: mallory_clock[0]
    )
    wait_for(qtbot, mallory.send([Draft.text("hello")]))
    wait_for(qtbot, RoomWriter(storage, "c", *BOB, displayname="Bob").send([Draft.text("hi")]))
    mallory_clock[0] = now + 10 * 60_000
    wait_for(qtbot, mallory.send([Draft.text(f"ahead {n}") for n in range(40)]))
    desk = launch(settings_for(tmp_path / "store", ["c"]))
    desk.wait_loaded("c")
    desk.wait_row("c", "ahead 39")
    view, model = desk.window.timeline, desk.model("c")
    bar = view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 300)
    bar.setValue(bar.maximum() - 200)  # up a little: the view no longer follows the bottom
    top = QPersistentModelIndex(view.indexAt(QPoint(4, 4)))
    assert str(top.data(Roles.EventId)) and model.row(top.row()).body.startswith("ahead")
    y = view.visualRect(model.index(top.row(), 0)).top()
    wait_for(qtbot, RoomWriter(storage, "c", *BOB, displayname="Bob").send([Draft.text("now")]))
    at = desk.wait_index("c", "now")
    assert model.row(at + 1).body == "ahead 0" and top.row() > at
    view.executeDelayedItemsLayout()  # what the view would lay out later, now
    assert view.visualRect(model.index(top.row(), 0)).top() == y


def test_a_message_placed_before_the_read_marker_is_unread_after_a_restart_too(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    """The newest row Alice saw is Mallory's, dated two minutes ahead (so it is the read
    marker: within ``FUTURE_SLACK_MS``). Bob's message, written while she looks at
    another room, is placed before it: unread while the app runs, and still unread
    after a restart (it was counted only after the marker, so it was read then)."""
    storage = LocalStorage(tmp_path / "store")
    ahead = int(time.time() * 1000) + 2 * 60_000
    mallory = RoomWriter(storage, "c", *MALLORY, displayname="Mallory", clock=lambda: ahead)
    wait_for(qtbot, mallory.send([Draft.text("see you soon")]))
    wait_for(qtbot, RoomWriter(storage, "a", *CAROL).send([Draft.text("elsewhere")]))
    desk = launch(settings_for(tmp_path / "store", ["c", "a"]))
    desk.wait_loaded("c", "a")
    c = desk.key("c")
    qtbot.waitUntil(lambda: desk.settings.read_marker(c) is not None, timeout=15_000)
    assert desk.settings.read_marker(c)[0] == desk.rows("c")[-1].event_id  # Mallory's
    desk.select("a")

    bob = RoomWriter(storage, "c", *BOB, displayname="Bob")
    wait_for(qtbot, bob.send([Draft.text("before you go")]))
    at = desk.wait_index("c", "before you go")
    rows = desk.rows("c")  # placed before the marker's row (and Mallory's join)
    assert rows[-1].body == "see you soon" and at < len(rows) - 2
    qtbot.waitUntil(lambda: desk.item("c").unread == 1, timeout=15_000)
    assert desk.quit() == 0

    desk = launch(settings_store.load())
    desk.wait_loaded("c", "a")
    assert desk.controller.current == desk.key("a")
    qtbot.waitUntil(lambda: desk.item("c").unread == 1, timeout=15_000)
    desk.select("c")  # the line goes above it; seen now, it counts no more
    first = desk.wait_index("c", "before you go")
    qtbot.waitUntil(lambda: desk.window.social.marker != "", timeout=15_000)
    assert desk.window.social.marker == desk.rows("c")[first].event_id
    assert desk.item("c").unread == 0
    assert desk.quit() == 0
    saved = settings_store.load()  # the next start counts after the marker only
    assert saved.read_marker(c)[0] == desk.rows("c")[-1].event_id
    assert saved.unseen_before_marker(c) == ()
