"""What the app says of a message that arrived long after its date, wherever it leaves the
timeline: a search result (red team rt83).

Mallory last wrote four weeks ago. While Alice's app runs, Mallory signs the next event
of her chain dated the day after her last one ("FYI: I do NOT approve the budget…").
The app's row says "Arrived …, dated …: sent or delivered long after its date" (rt79).
Alice exports the room (Export room…, same session) to keep a record: the HTML page and
the JSONL showed it as a plain verified message of four weeks ago, with no word of its
late arrival — the very record "I told you all weeks ago" needs; and a search result for
it showed only the date Mallory chose and "Verified"."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import shot, wait_for
from desk import Desk, settings_for
from test_backdated_news import CAROL, DAY, MALLORY, chain, store_segment, text
from test_key_doubted_elsewhere import searched

from bucket_chat_desktop import settings as settings_store
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.gui.widgets.search_panel import tooltip_html
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

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
