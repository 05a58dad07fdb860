"""Messages that could not be sent for a reason only the user can fix ("Not sent — click
to retry") are still shown, and still retried by a click, after the app is restarted:
the outbox keeps them, but nothing said so to the window until they were tried again,
and such a message is not tried again until the user asks (a message waiting behind it
in its chain neither). Real folders, the real app offscreen, a real outbox file."""

from __future__ import annotations

import datetime as dt
import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey

from bucket_chat_desktop import settings as settings_store
from bucket_chat_desktop.gui.widgets.message_delegate import tooltip_html
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

BOB = ("bob@example.com", SigningKey(b"\x02" * 32))
DAY_MS = 86_400_000


def test_messages_not_sent_for_good_are_shown_again_after_a_restart_and_go_on_retry(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    root = tmp_path / "store"
    storage = LocalStorage(root)
    yesterday = int(time.time() * 1000) - DAY_MS
    bob = RoomWriter(storage, "c", *BOB, displayname="Bob", clock=lambda: yesterday)
    wait_for(qtbot, bob.create_room("Falcon", "2025-09-14T12:00:45.000Z"))
    wait_for(qtbot, bob.send([Draft.text("hello")]))
    # Where today's segments go is a file: every write there fails, and not by itself
    # (the user must fix it)
    logs = root / "rooms" / "c" / "logs"
    now = dt.datetime.now(dt.UTC)
    blocked = [logs / (now + dt.timedelta(days=d)).strftime("%Y-%m-%d") for d in (0, 1)]
    for path in blocked:
        path.write_text("not a folder")

    desk = launch(settings_for(root, ["c"]))
    desk.wait_loaded("c")
    for text in ("first", "second"):
        desk.controller.send_text(text)
        qtbot.waitUntil(
            lambda t=text: [r.echo for r in desk.rows("c") if r.body == t] == ["failed"],
            timeout=15_000,
        )
    assert desk.quit() == 0

    desk = launch(settings_store.load())
    desk.wait_loaded("c")

    def echoes() -> list[tuple[str, str]]:
        return [(r.body, r.echo) for r in desk.rows("c") if r.echo and r.kind == "text"]

    qtbot.waitUntil(lambda: echoes() == [("first", "failed"), ("second", "failed")])
    assert all("a file has that name" in r.echo_error for r in desk.rows("c") if r.echo)
    # The row shows the error cut in its middle (it names a long path); the whole of it is
    # in the row's tooltip.
    model = desk.model("c")
    (unsent,) = [i for i, r in enumerate(desk.rows("c")) if r.body == "first"]
    tip = tooltip_html(model.index(unsent))
    assert "Not sent: " in tip and html.escape(str(blocked[0])) in tip
    assert "a file has that name" in tip
    assert "Tried again by itself" in tip and "Click to try now" in tip  # no need to watch

    for path in blocked:  # fixed; the user clicks a "Not sent" message
        path.unlink()
    desk.controller.retry_failed()
    desk.wait_row("c", "second", timeout=15_000)
    first = desk.wait_index("c", "first")
    assert desk.rows("c")[first + 1].body == "second"
    assert not any(r.echo for r in desk.rows("c"))
    assert desk.quit() == 0
