"""What the app says of a message that arrived long after its date, wherever it leaves the
timeline: an export made in the app, and a search result (red team rt83).

Mallory last wrote four weeks ago. While Alice's app runs, Mallory signs the next event
of her chain dated the day after her last one ("FYI: I do NOT approve the budget…").
The app's row says "Arrived …, dated …: sent or delivered long after its date" (rt79).
Alice exports the room (Export room…, same session) to keep a record: the HTML page and
the JSONL showed it as a plain verified message of four weeks ago, with no word of its
late arrival — the very record "I told you all weeks ago" needs; and a search result for
it showed only the date Mallory chose and "Verified"."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import shot, wait_for
from desk import Desk, settings_for
from test_backdated_news import CAROL, DAY, MALLORY, chain, store_segment, text
from test_key_doubted_elsewhere import searched

from bucket_chat_desktop import settings as settings_store
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.gui.widgets.search_panel import tooltip_html
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.relations import EDIT
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter
from bucket_chat_desktop.timestamps import with_zone

BODY = "FYI: I do NOT approve the budget. Objections by Friday, or it is final."
ON_TIME = "budget draft is in the shared folder"


def _late_room(
    qtbot: Any, launch: Callable[..., Desk], root: Path
) -> tuple[Desk, Event, str, int, int]:
    """The app running, with Mallory's backdated message read while it ran; the row's
    sentence, and the moments (this device's clock) between which it arrived."""
    storage = LocalStorage(root)
    now = int(time.time() * 1000)
    start = now - 30 * DAY
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
        ],
    )
    store_segment(root, MALLORY, mallory)
    wait_for(qtbot, RoomWriter(storage, "a", *CAROL).send([Draft.text("elsewhere")]))
    # Alice's app has read the room before (it has a read marker): then it runs again
    desk = launch(settings_for(root, ["a", "c"]))
    desk.wait_loaded("a", "c")
    c = desk.key("c")
    qtbot.waitUntil(lambda: desk.settings.read_marker(c) is not None, timeout=15_000)
    assert desk.quit() == 0
    desk = launch(settings_store.load())
    desk.wait_loaded("a", "c")
    (late,) = chain(
        "c", MALLORY, [(start + DAY + 60_000, MESSAGE, text(BODY))], prev=mallory[-1].hash
    )
    before = int(time.time() * 1000)
    store_segment(root, MALLORY, [late])
    qtbot.waitUntil(lambda: desk.shows("c", late.event_id), timeout=30_000)
    desk.select("c")
    index = desk.wait_index("c", BODY)
    said = desk.model("c").index(index).data(Roles.Late)
    after = int(time.time() * 1000)
    # what the app's own row says of it
    assert said and said.startswith("Arrived ") and said.endswith("long after its date"), said
    return desk, late, said, before, after


def _export(qtbot: Any, desk: Desk, path: Path, fmt: str) -> str:
    """Export room "c" to ``path`` as the app does; the notice's text."""
    feature = desk.window.room_export
    feature.choose = lambda _suggested, _shown: (str(path), fmt)
    task = feature.start(desk.key("c"))
    assert task is not None
    qtbot.waitUntil(task.done, timeout=30_000)
    assert task.exception() is None and task.result() is not None, task
    notice = feature.notice
    assert notice is not None
    said: str = notice.text()
    notice.close()
    return said


@pytest.mark.parametrize("fmt", ["html", "jsonl"])
def test_an_export_from_the_app_says_a_message_arrived_long_after_its_date(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path, fmt: str
) -> None:
    desk, late, said, before, after = _late_room(qtbot, launch, tmp_path / "store")
    out = tmp_path / f"c.{fmt}"
    notice = _export(qtbot, desk, out, fmt)
    doc = out.read_text(encoding="utf-8")
    if fmt == "html":
        rows = doc.split("<li ")
        (row,) = [r for r in rows if BODY in r]
        assert "✓ verified" in row  # verified, four weeks back: and it says when it came
        assert "long after its date" in row, "the HTML export drops the app's late note"
        # the row's sentence, its times with their UTC offset as every time on the page
        assert f"dated {with_zone(late.timestamp_ms)}: sent or delivered" in row, row
        assert said.split(",")[0] in html.unescape(row)  # "Arrived <the row's minute>"
        assert 'class="msg t-verified late"' in row
        # the message she wrote then, and everyone else's, say nothing of the kind
        assert [r for r in rows if "long after its date" in r] == [row]
        assert "1 message arrived long after the date it bears" in doc  # the footer
    else:
        lines = [json.loads(x) for x in doc.splitlines()]
        (line,) = [x for x in lines[1:] if (x.get("event") or {}).get("event_id") == late.event_id]
        assert line["trust"]["state"] == "verified"
        arrived = line["arrived_late"]
        assert before <= arrived["arrived_ms"] <= after
        assert arrived["note"].startswith(f"Arrived {with_zone(arrived['arrived_ms'])}, ")
        assert arrived["note"].endswith(
            f"dated {with_zone(late.timestamp_ms)}: sent or delivered long after its date"
        )
        assert [x for x in lines[1:] if "arrived_late" in x] == [line]
    # and the notice says the export says it
    assert "1 message in it arrived long after its date" in notice, notice


def test_a_search_result_says_a_message_arrived_long_after_its_date(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    """The result showed the date Mallory chose and "Verified", nothing else: now it
    says "arrived late" beside its trust state, and its tip has the row's sentence."""
    desk, _late, said, _before, _after = _late_room(qtbot, launch, tmp_path / "store")
    found = searched(qtbot, desk, "approve")
    assert found.late == said
    assert f"⚠ {html.escape(said)}" in tooltip_html(found)
    shot(desk.window, "search-late-arrival", tmp_path)
    # her message of four weeks ago, read then: no such word
    on_time = searched(qtbot, desk, "shared folder")
    assert on_time.late is None
    assert "long after" not in tooltip_html(on_time)


EDITED = "FYI: I do NOT approve the budget. Objections by Monday, or it is final."
MOVED = "budget draft moved to the archive folder"


def test_a_late_message_found_through_its_edit_still_says_it_arrived_late(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    """Red team rt92: Mallory edits her backdated message (the edit dated four weeks
    back too, arriving today). Its row still said "arrived late"; a search for the edited
    words found the message through the edit's text, looked the note up by the edit's
    copy, and showed the date she chose and "Verified" alone. The result says what the
    row says: the note of the message's own copy. Her message of four weeks ago, read on
    time and edited today the same way, is not itself late: its row and its result say
    only that its edit arrived late (test_late_edits_and_deletions.py)."""
    root = tmp_path / "store"
    desk, late, said, _before, _after = _late_room(qtbot, launch, root)
    assert searched(qtbot, desk, "Friday").late == said  # before the edit
    c = desk.key("c")
    model = desk.model("c")
    (on_time,) = [
        str(model.index(i, 0).data(Roles.EventId))
        for i in range(model.rowCount())
        if model.index(i, 0).data(Roles.Body) == ON_TIME
    ]
    edits = chain(
        "c",
        MALLORY,
        [
            (late.timestamp_ms + 60_000, EDIT, replacing(late.event_id, EDITED)),
            (late.timestamp_ms + 120_000, EDIT, replacing(on_time, MOVED)),
        ],
        prev=late.hash,
    )
    store_segment(root, MALLORY, edits)

    def shown(event_id: str, body: str) -> bool:
        known = desk.controller.relations(c)
        agg = known[1].of(event_id) if known is not None else None
        return agg is not None and agg.latest is not None and agg.latest.body == body

    qtbot.waitUntil(lambda: shown(late.event_id, EDITED), timeout=30_000)
    qtbot.waitUntil(lambda: shown(on_time, MOVED), timeout=30_000)
    assert _row_late(desk, late.event_id) == said  # its row still says it arrived late
    found = searched(qtbot, desk, "Monday")
    assert found.hit.event_id == late.event_id and found.hit.source_id == edits[0].event_id
    assert found.late == said, html.unescape(tooltip_html(found))
    assert f"⚠ {html.escape(said)}" in tooltip_html(found)
    # read on time four weeks ago; only its edit came today: the message is not late,
    # its edit is (and so is the one of the late message, found through it)
    assert _row_late(desk, on_time) is None
    moved = searched(qtbot, desk, "archive")
    assert moved.hit.event_id == on_time
    assert moved.hit.source_id == edits[1].event_id
    assert moved.late is None
    assert moved.late_edit is not None and moved.late_edit.startswith("This edit arrived ")
    assert found.late_edit is not None and found.late_edit.startswith("This edit arrived ")
    # Previous versions says it beside each: the original (as its row) and the edit
    desk.window.show_versions(late.event_id)
    dialog = desk.window.relation_actions.versions_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.versions[0].body is not None, timeout=10_000)
    original, edit = dialog.versions
    assert original.body == BODY and original.late == said
    assert edit.late is not None and edit.late.startswith("Arrived ")
    assert dialog.browser.toPlainText().count("long after its date") == 2


def replacing(event_id: str, body: str) -> dict[str, Any]:
    return {"replaces": event_id, "new_content": text(body)}


def _row_late(desk: Desk, event_id: str) -> str | None:
    """What the row of ``event_id`` in room "c" says of a late arrival."""
    model = desk.model("c")
    (row,) = [
        model.index(i, 0)
        for i in range(model.rowCount())
        if model.index(i, 0).data(Roles.EventId) == event_id
    ]
    late: str | None = row.data(Roles.Late)
    return late


# -- a copy under another member's id (PROTOCOL.md 18.1): only that copy is late ---------

CAROLS = "The budget is approved, as agreed on Monday."
COPY = "(a copy under Carol's id)"


def _replayed(qtbot: Any, launch: Callable[..., Desk], tmp_path: Path) -> tuple[Desk, Event]:
    """The app running; Carol's message of four weeks ago read on time in the session
    before; then, today, Mallory's copy under its id (signed with her own key, chained
    after her own last event), read now: it arrived long after its date."""
    root = tmp_path / "store"
    storage = LocalStorage(root)
    now = int(time.time() * 1000)
    start = now - 30 * DAY
    carol = chain(
        "c",
        CAROL,
        [(start, MEMBER, {"membership": "join", "displayname": "Carol"})]
        + [(start + 2 * DAY, MESSAGE, text(CAROLS))]
        + [(start + 3 * DAY + i * 6_000_000, MESSAGE, text(f"note {i}")) for i in range(10)],
    )
    store_segment(root, CAROL, carol)
    target = carol[1]
    mallory = chain(
        "c",
        MALLORY,
        [
            (start + 1000, MEMBER, {"membership": "join", "displayname": "Mallory"}),
            (start + DAY, MESSAGE, text("hello")),
        ],
    )
    store_segment(root, MALLORY, mallory)
    wait_for(qtbot, RoomWriter(storage, "a", *CAROL).send([Draft.text("elsewhere")]))
    desk = launch(settings_for(root, ["a", "c"]))
    desk.wait_loaded("a", "c")
    c = desk.key("c")
    qtbot.waitUntil(lambda: desk.settings.read_marker(c) is not None, timeout=15_000)
    assert desk.quit() == 0
    desk = launch(settings_store.load())
    desk.wait_loaded("a", "c")
    copy = build_event(
        room_id="c",
        sender_id=MALLORY[0],
        event_type=MESSAGE,
        content=text(COPY),
        timestamp_ms=target.timestamp_ms,
        unique=target.event_id.split("::")[2],
        prev_event_hash=mallory[-1].hash,
        signing_key=MALLORY[1],
    )
    assert copy.event_id == target.event_id
    store_segment(root, MALLORY, [copy])
    qtbot.waitUntil(lambda: len(_notes(desk, target.event_id)) == 2, timeout=30_000)
    desk.select("c")
    return desk, target


def _notes(desk: Desk, event_id: str) -> dict[str, str | None]:
    """Each row of ``event_id``: its text -> what it says of its arrival."""
    model = desk.model("c")
    return {
        str(model.index(i, 0).data(Roles.Body)): model.index(i, 0).data(Roles.Late)
        for i in range(model.rowCount())
        if model.index(i, 0).data(Roles.EventId) == event_id
    }


def test_a_copy_under_another_s_id_makes_only_itself_late(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    """Red team rt89: the note was kept by event id: Carol's own message, read on time
    four weeks ago, said "Arrived <today>, dated …: sent or delivered long after its
    date", the date Mallory's copy bears. Only the copy that came late says it: in its
    row and in the search results."""
    desk, target = _replayed(qtbot, launch, tmp_path)
    notes = _notes(desk, target.event_id)
    assert notes[CAROLS] is None, notes
    assert notes[COPY] is not None and "long after its date" in notes[COPY], notes
    assert searched(qtbot, desk, "budget is approved").late is None
    assert searched(qtbot, desk, "a copy under").late == notes[COPY]


def test_an_export_says_only_the_late_copy_arrived_late(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    """Red team rt89: the HTML export, the room's record of who said what and when,
    gave Carol's row (read on time) the warning Mallory's copy earned, and counted it;
    the JSONL export its ``arrived_late``."""
    desk, target = _replayed(qtbot, launch, tmp_path)
    page = tmp_path / "c.html"
    _export(qtbot, desk, page, "html")
    rows = page.read_text(encoding="utf-8").split("<li ")
    (carols,) = [r for r in rows if CAROLS in r]
    (copy,) = [r for r in rows if html.escape(COPY) in r]
    assert "long after its date" not in carols, carols
    assert "long after its date" in copy, copy
    lines = tmp_path / "c.jsonl"
    _export(qtbot, desk, lines, "jsonl")
    said = {
        r["event"]["content"].get("body"): "arrived_late" in r
        for r in map(json.loads, lines.read_text("ascii").splitlines()[1:])
        if r.get("event", {}).get("event_id") == target.event_id
    }
    assert said == {CAROLS: False, COPY: True}, said
