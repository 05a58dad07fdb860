"""What the app says of an edit or a deletion that arrived long after its date.

Mallory wrote in the room four weeks ago, and Alice's app read it then. While the app
runs, Mallory stores an edit of that message dated four weeks back ("budget draft moved
to the archive folder"), and a deletion of another of hers dated the same. Every
signature and the chain agree with the dates she chose. The app noted a *message* that
arrived long after its date (red team rt79), never an edit or a deletion: the row showed
"(edited)" and Previous versions listed the edit under her date, as if it had been there
for weeks; the deleted row, the search hit found through the edit and both exports from
the app said nothing either. Now each says when it arrived, by the copy that arrived,
with the rules and the threshold of a message's note (``timestamps.late_arrival``)."""

from __future__ import annotations

import html
import json
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import shot, wait_for
from desk import Desk, settings_for
from test_backdated_news import CAROL, DAY, MALLORY, chain, store_segment, text
from test_key_doubted_elsewhere import searched
from test_late_arrival_leaves_the_app import _export

from bucket_chat_desktop import settings as settings_store
from bucket_chat_desktop.gui import controller as controller_module
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.gui.widgets.message_actions import versions_html
from bucket_chat_desktop.gui.widgets.message_delegate import note_texts
from bucket_chat_desktop.gui.widgets.search_panel import tooltip_html
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.relations import EDIT, REDACTION
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import keeper as keeper_module
from bucket_chat_desktop.sync.writer import Draft, RoomWriter
from bucket_chat_desktop.timestamps import full, with_zone

ON_TIME = "budget draft is in the shared folder"
MOVED = "budget draft moved to the archive folder"
GONE = "I approve the budget as it stands"
CAROLS = "note 3"


class Room:
    """Room "c" read by the app before it ran again, and Mallory's two messages in it."""

    def __init__(self, desk: Desk, root: Path, last: Event, on_time: Event, gone: Event) -> None:
        self.desk, self.root, self.last = desk, root, last
        self.on_time, self.gone = on_time, gone

    def store(self, items: list[tuple[int, str, dict[str, Any]]]) -> list[Event]:
        """Mallory's next events, chained after her last, stored while the app runs."""
        events = chain("c", MALLORY, items, prev=self.last.hash)
        self.last = events[-1]
        store_segment(self.root, MALLORY, events)
        return events

    def row(self, event_id: str) -> Any:
        model = self.desk.model("c")
        (index,) = [
            model.index(i, 0)
            for i in range(model.rowCount())
            if model.index(i, 0).data(Roles.EventId) == event_id
        ]
        return index

    def wait_body(self, qtbot: Any, event_id: str, body: str) -> None:
        qtbot.waitUntil(lambda: self.row(event_id).data(Roles.Body) == body, timeout=30_000)


@pytest.fixture
def room(qtbot: Any, launch: Callable[..., Desk], tmp_path: Path) -> Room:
    root = tmp_path / "store"
    storage = LocalStorage(root)
    start = int(time.time() * 1000) - 30 * DAY
    store_segment(
        root,
        CAROL,
        chain(
            "c",
            CAROL,
            [(start, MEMBER, {"membership": "join", "displayname": "Carol"})]
            + [(start + 2 * DAY + i * 6_000_000, MESSAGE, text(f"note {i}")) for i in range(10)],
        ),
    )
    mallory = chain(
        "c",
        MALLORY,
        [
            (start + 1000, MEMBER, {"membership": "join", "displayname": "Mallory"}),
            (start + DAY, MESSAGE, text(ON_TIME)),
            (start + DAY + 60_000, MESSAGE, text(GONE)),
        ],
    )
    store_segment(root, MALLORY, mallory)
    wait_for(qtbot, RoomWriter(storage, "a", *CAROL).send([Draft.text("elsewhere")]))
    # Alice's app has read the room before (it has a read marker): then it runs again
    desk = launch(settings_for(root, ["a", "c"]))
    desk.wait_loaded("a", "c")
    qtbot.waitUntil(lambda: desk.settings.read_marker(desk.key("c")) is not None, timeout=15_000)
    assert desk.quit() == 0
    desk = launch(settings_store.load())
    desk.wait_loaded("a", "c")
    desk.select("c")
    desk.wait_index("c", ON_TIME)
    return Room(desk, root, mallory[-1], mallory[1], mallory[2])


def _late_changes(room: Room, qtbot: Any) -> tuple[Event, Event, int, int]:
    """Mallory's edit of her message of four weeks ago and her deletion of the other,
    both dated four weeks back, stored while the app runs; the moments (this device's
    clock) between which they arrived."""
    dated = room.gone.timestamp_ms
    before = int(time.time() * 1000)
    edit, deletion = room.store(
        [
            (dated + 60_000, EDIT, {"replaces": room.on_time.event_id, "new_content": text(MOVED)}),
            (dated + 120_000, REDACTION, {"redacts": room.gone.event_id}),
        ]
    )
    room.wait_body(qtbot, room.on_time.event_id, MOVED)
    qtbot.waitUntil(lambda: room.row(room.gone.event_id).data(Roles.Deleted) is not None)
    after = int(time.time() * 1000)
    return edit, deletion, before, after


def test_a_late_edit_and_a_late_deletion_are_said_on_their_messages_rows(
    qtbot: Any, room: Room, tmp_path: Path
) -> None:
    """The row of the message edited said "(edited)" and nothing of when; the deleted
    row, "Message deleted" with Mallory's time. Each now says when its change arrived,
    and the date that change bears, on a line of its own under the row."""
    edit, deletion, _before, _after = _late_changes(room, qtbot)
    edited = room.row(room.on_time.event_id)
    said = edited.data(Roles.LateChange)
    assert said is not None, "the row says nothing of an edit that arrived weeks late"
    assert said.startswith("The latest edit arrived ")
    assert said.endswith("long after its date") and ", dated " in said
    assert edited.data(Roles.Late) is None  # the message itself was read on time
    assert edited.data(Roles.Edited) is not None  # "(edited)" as before
    assert note_texts(edited) == [said]
    deleted = room.row(room.gone.event_id)
    gone = deleted.data(Roles.LateChange)
    assert gone is not None and gone.startswith("The deletion arrived "), gone
    assert gone.endswith("long after its date")
    # the date each bears
    assert f", dated {full(edit.timestamp_ms)[:16]}: " in said
    assert f", dated {full(deletion.timestamp_ms)[:16]}: " in gone
    # nobody else's row says anything of the kind
    for body in (CAROLS, "note 0"):
        index = room.desk.model("c").index(room.desk.wait_index("c", body), 0)
        assert index.data(Roles.LateChange) is None and index.data(Roles.Late) is None
    # the "(edited)" marker's tip says it too, and so does the note's own tip, whole
    view = room.desk.window.timeline
    view.scrollTo(edited)
    shot(room.desk.window, "late-edit-row", tmp_path)
    delegate = room.desk.window.delegate
    rect = view.visualRect(edited)
    regions = delegate.regions(edited, rect, view.font())
    (marker,) = [r for what, _, r in regions.parts if what == "edited"]
    tip = delegate.part_tooltip(edited, rect, view.font(), marker.center())
    assert tip is not None and html.escape(said) in tip, tip
    assert regions.note is not None
    assert delegate.part_tooltip(edited, rect, view.font(), regions.note.center()) == html.escape(
        said
    )


def test_previous_versions_says_an_edit_arrived_long_after_its_date(
    qtbot: Any, room: Room, tmp_path: Path
) -> None:
    """Previous versions listed Mallory's edit under the date she chose, as if seen then:
    beside it now, when it arrived. The original, read on time, says nothing."""
    edit, _deletion, before, after = _late_changes(room, qtbot)
    room.desk.window.show_versions(room.on_time.event_id)
    dialog = room.desk.window.relation_actions.versions_dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.versions[0].body is not None, timeout=10_000)
    original, first = dialog.versions
    assert original.body == ON_TIME and original.late is None
    assert first.body == MOVED and first.timestamp_ms == edit.timestamp_ms
    assert first.late is not None, "Previous versions says nothing of the edit's arrival"
    assert first.late.startswith("Arrived ") and first.late.endswith("long after its date")
    assert f"⚠ {html.escape(first.late)}" in versions_html(dialog.versions)
    shown = dialog.browser.toPlainText()
    assert shown.index(first.late) < shown.index("Original")  # beside the edit
    assert shown.count("long after its date") == 1
    arrived = room.desk.controller.late_arrivals(room.desk.key("c"))
    (late,) = [v for (event_id, _where), v in arrived.items() if event_id == edit.event_id]
    assert before <= late.arrived_ms <= after and late.dated_ms == edit.timestamp_ms
    shot(dialog, "late-edit-versions", tmp_path)


def test_a_search_hit_found_through_a_late_edit_says_so(
    qtbot: Any, room: Room, tmp_path: Path
) -> None:
    """A result for the edit's words showed Mallory's date and "Verified" alone. It says
    "edit arrived late" now, and its tip has the sentence; the message's own words (on
    time) say nothing."""
    edit, _deletion, _before, _after = _late_changes(room, qtbot)
    found = searched(qtbot, room.desk, "archive")
    assert found.hit.event_id == room.on_time.event_id and found.hit.source_id == edit.event_id
    assert found.late is None  # the message arrived on time
    assert found.late_edit is not None, "the result says nothing of the edit's arrival"
    assert found.late_edit.startswith("This edit arrived ")
    assert found.late_edit.endswith("long after its date")
    assert f"⚠ {html.escape(found.late_edit)}" in tooltip_html(found)
    shot(room.desk.window, "late-edit-search", tmp_path)
    carol = searched(qtbot, room.desk, CAROLS)
    assert carol.late is None and carol.late_edit is None


@pytest.mark.parametrize("fmt", ["html", "jsonl"])
def test_an_export_from_the_app_says_an_edit_or_deletion_arrived_late(
    qtbot: Any, room: Room, tmp_path: Path, fmt: str
) -> None:
    edit, deletion, before, after = _late_changes(room, qtbot)
    out = tmp_path / f"c.{fmt}"
    notice = _export(qtbot, room.desk, out, fmt)
    doc = out.read_text(encoding="utf-8")
    if fmt == "html":
        rows = doc.split("<li ")
        (edited,) = [r for r in rows if MOVED in r]
        assert "The latest edit arrived " in edited, "the HTML says nothing of the edit's arrival"
        assert f"dated {with_zone(edit.timestamp_ms)}: sent or delivered" in edited
        assert 'class="msg t-verified late"' in edited
        (gone,) = [r for r in rows if "Message deleted by its sender" in r]
        assert "The deletion arrived " in html.unescape(gone), gone
        assert f"dated {with_zone(deletion.timestamp_ms)}: sent or delivered" in gone
        assert [r for r in rows if "long after its date" in r] == [edited, gone]
        assert "2 edits or deletions arrived long after the dates they bear" in doc  # footer
    else:
        lines = [json.loads(x) for x in doc.splitlines()][1:]

        def of(event_id: str) -> dict[str, Any]:
            (line,) = [x for x in lines if (x.get("event") or {}).get("event_id") == event_id]
            return line

        for change in (edit, deletion):
            arrived = of(change.event_id).get("arrived_late")
            assert arrived is not None, f"the {change.type} line has no arrived_late"
            assert before <= arrived["arrived_ms"] <= after
            assert arrived["note"].startswith(f"Arrived {with_zone(arrived['arrived_ms'])}, ")
            assert arrived["note"].endswith(
                f"dated {with_zone(change.timestamp_ms)}: sent or delivered long after its date"
            )
        message = of(room.on_time.event_id)
        assert "arrived_late" not in message  # the message itself came on time
        (entry,) = message["relations"]["edits"]
        assert entry["arrived_late"] == of(edit.event_id)["arrived_late"]
        redacted = of(room.gone.event_id)["relations"]["redacted"]
        assert redacted["arrived_late"] == of(deletion.event_id)["arrived_late"]
        assert len([x for x in lines if "arrived_late" in x]) == 2
    assert "2 edits or deletions in it arrived long after their date" in notice, notice


def test_an_edit_on_time_says_nothing_and_replaces_a_late_one_on_the_row(
    qtbot: Any, room: Room, tmp_path: Path
) -> None:
    """The row says what it shows: its latest edit. An edit dated as it arrives says
    nothing; once it follows a late one, the row no longer speaks of the late one, which
    Previous versions still marks beside its own date, in the app and in the HTML."""
    late_edit, _deletion, _before, _after = _late_changes(room, qtbot)
    now = int(time.time() * 1000)
    (fresh,) = room.store(
        [(now, EDIT, {"replaces": room.on_time.event_id, "new_content": text("final draft")})]
    )
    room.wait_body(qtbot, room.on_time.event_id, "final draft")
    row = room.row(room.on_time.event_id)
    assert row.data(Roles.LateChange) is None
    assert note_texts(row) == []
    key = room.desk.key("c")
    noted = {event_id for event_id, _where in room.desk.controller.late_arrivals(key)}
    assert late_edit.event_id in noted and fresh.event_id not in noted
    room.desk.window.show_versions(room.on_time.event_id)
    dialog = room.desk.window.relation_actions.versions_dialog
    assert dialog is not None
    _original, first, second = dialog.versions
    assert first.late is not None and second.late is None
    out = tmp_path / "c.html"
    _export(qtbot, room.desk, out, "html")
    (row,) = [r for r in out.read_text(encoding="utf-8").split("<li ") if "final draft" in r]
    assert "The latest edit arrived" not in row
    (version,) = [v for v in row.split("<li>") if MOVED in v]
    assert f"dated {with_zone(late_edit.timestamp_ms)}: sent or delivered" in version, version


def test_the_note_is_the_sessions_as_a_late_message_s_is(
    qtbot: Any, room: Room, launch: Callable[..., Desk]
) -> None:
    """When a change first came is what this device saw while the app ran: not kept
    (the index keeps no such time), so after a restart the rows say only their dates,
    as a late message's row does (docs/SECURITY.md)."""
    _late_changes(room, qtbot)
    assert room.row(room.on_time.event_id).data(Roles.LateChange) is not None
    assert room.desk.quit() == 0
    room.desk = launch(settings_store.load())
    room.desk.wait_loaded("a", "c")
    room.wait_body(qtbot, room.on_time.event_id, MOVED)
    assert room.row(room.on_time.event_id).data(Roles.LateChange) is None
    assert room.row(room.gone.event_id).data(Roles.LateChange) is None
    assert room.desk.controller.late_arrivals(room.desk.key("c")) == {}


ASLEEP_S = 40 * 60  # the laptop slept 40 minutes; the note's threshold is 15


def _sleep_then_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the app's clock reads 40 minutes later than the wall clock the
    members sign with: as after a sleep (or an outage), everything they write now is read
    by the app 40 minutes after it was written, and after the app last looked. The
    window's clock and the engine's (``keeper.now_ms``: when it reads storage, and its
    audits) both, as on a laptop that woke up: a read the engine began before is dated
    before (``RoomLoaded.read_ms``), however late its audit comes."""
    real = time.time
    shim = types.SimpleNamespace(
        time=lambda: real() + ASLEEP_S, monotonic=time.monotonic, perf_counter=time.perf_counter
    )
    monkeypatch.setattr(controller_module, "time", shim)
    monkeypatch.setattr(keeper_module, "now_ms", lambda: int(shim.time() * 1000))


def test_an_edit_and_a_deletion_made_while_the_app_slept_are_not_said_late(
    qtbot: Any, room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt97: while Alice's laptop sleeps, Mallory (or any honest member) writes a
    message, edits an older one and deletes another, in one segment. When the app reads
    them 40 minutes later, the message's row said nothing but the edited and deleted rows
    said "arrived long after its date": changes made on time looked backdated. They are
    dated after what this device had read, as the message is, and are not noted, as
    ``bucket-chat sync --follow`` does not note them."""
    _sleep_then_wake(monkeypatch)
    now = int(time.time() * 1000)  # the members' clock: the app looked last before this
    message, edit, deletion = room.store(
        [
            (now, MESSAGE, text("written while Alice slept")),
            (now + 1, EDIT, {"replaces": room.on_time.event_id, "new_content": text("fixed")}),
            (now + 2, REDACTION, {"redacts": room.gone.event_id}),
        ]
    )
    room.wait_body(qtbot, room.on_time.event_id, "fixed")
    qtbot.waitUntil(lambda: room.row(room.gone.event_id).data(Roles.Deleted) is not None)
    qtbot.waitUntil(lambda: room.desk.wait_index("c", "written while Alice slept") is not None)
    assert room.row(message.event_id).data(Roles.Late) is None
    assert room.row(room.on_time.event_id).data(Roles.LateChange) is None
    assert room.row(room.gone.event_id).data(Roles.LateChange) is None
    noted = {e for e, _where in room.desk.controller.late_arrivals(room.desk.key("c"))}
    assert not noted & {message.event_id, edit.event_id, deletion.event_id}


def test_a_backdated_edit_after_a_fresh_message_is_said_late_even_after_a_sleep(
    qtbot: Any, room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edge of the rule above: what decides is the change's date against what this
    device had read, not where the change is placed nor how long the app slept. Mallory
    writes a fresh message and then an edit dated four weeks back (placed after her
    message, at the end): the edit still says it arrived long after its date."""
    _sleep_then_wake(monkeypatch)
    now = int(time.time() * 1000)
    dated = room.gone.timestamp_ms + 60_000
    message, edit = room.store(
        [
            (now, MESSAGE, text("nothing to see here")),
            (dated, EDIT, {"replaces": room.on_time.event_id, "new_content": text(MOVED)}),
        ]
    )
    room.wait_body(qtbot, room.on_time.event_id, MOVED)
    late = room.row(room.on_time.event_id).data(Roles.LateChange)
    assert late is not None and f"dated {full(dated)[:16]}" in late, late
    noted = {e for e, _where in room.desk.controller.late_arrivals(room.desk.key("c"))}
    assert edit.event_id in noted and message.event_id not in noted
