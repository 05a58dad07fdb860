"""A storage whose news is polled instead of watched or notified stays marked in the
window's storage line for as long as that lasts, not only in a 15-second status-bar
message: a local folder that could not be watched (a full inotify table), a bucket
whose notification queue failed. The real app, through the engine's own event
(``ChangeFeedStatus``, as ``Poller.start_watch`` and the queue feed emit it; the
engine's side is tested in tests/unit/sync/test_watch_limit.py)."""

from __future__ import annotations

import errno
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from desk import Desk, settings_for
from test_app_flows import store  # noqa: F401  (a fixture)

from bucket_chat_desktop.gui.widgets.settings_dialog import remove_storage
from bucket_chat_desktop.sync.events import ChangeFeedStatus
from bucket_chat_desktop.sync.poller import watch_problem
from bucket_chat_desktop.sync.watched import clock_text


def _since(line: str, name: str) -> str:
    found = re.search(re.escape(name) + r" polled since ([0-9]{2}:[0-9]{2}:[0-9]{2}), ", line)
    assert found is not None, line
    return found.group(1)


def test_a_folder_polled_because_it_is_not_watched_stays_marked(
    qtbot: Any,
    monkeypatch: pytest.MonkeyPatch,
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = settings_for(store, ["falcon"], name="Team share")
    other = settings_for(tmp_path / "other", [], name="Queue <b>bucket</b>").storages[0]
    settings.storages.append(other)
    desk = launch(settings)
    desk.wait_loaded("falcon")
    window, controller = desk.window, desk.controller
    folder = settings.storages[0].id
    qtbot.waitUntil(lambda: "All storages reachable" in window.status.text(), timeout=15_000)
    assert "polled" not in window.status.text() and window.status.toolTip() == ""

    why = watch_problem(OSError(errno.EMFILE, "inotify instance limit reached"), 3, 45)
    before = time.time()
    controller.bridge.deliver(folder, ChangeFeedStatus(False, why, folder=True))
    after = time.time()
    assert "All storages reachable" in window.status.text()  # it is reachable: polled
    # Since when it lasts, as the offline line says it (this computer's clock, HH:MM:SS)
    began = _since(window.status.text(), "Team share")
    assert began in {clock_text(before), clock_text(after)}
    assert f"Team share polled since {began}, not watched" in window.status.text()
    assert "fs.inotify.max_user_instances" in window.status.toolTip()
    assert window.statusBar().currentMessage().endswith(why)  # said at once, too

    # A bucket's queue that fails: its own words, escaped (a storage's name is anyone's).
    controller.bridge.deliver(other.id, ChangeFeedStatus(False, "queue <i>gone</i>"))
    line = window.status.text()
    queue_began = _since(line, "Queue &lt;b&gt;bucket&lt;/b&gt;")
    assert (
        f"Team share polled since {began}, not watched; "
        f"Queue &lt;b&gt;bucket&lt;/b&gt; polled since {queue_began}, push" in line
    )
    assert "<b>bucket" not in line and "<i>" not in window.status.toolTip()
    assert "push notifications are off: queue &lt;i&gt;gone&lt;/i&gt;" in window.status.toolTip()

    # Another failure while it lasts says what is new and keeps when it began.
    later = time.time() + 3600  # an hour on: the clock read while the message is taken
    with monkeypatch.context() as clock:
        clock.setattr(time, "time", lambda: later)
        controller.bridge.deliver(other.id, ChangeFeedStatus(False, "queue still gone"))
    assert f"bucket&lt;/b&gt; polled since {queue_began}, push" in window.status.text()
    assert "queue still gone" in window.status.toolTip()

    # The status bar's message goes after 15 s; the mark stays until the queue answers.
    window.statusBar().clearMessage()
    assert f"Team share polled since {began}, not watched" in window.status.text()
    controller.bridge.deliver(other.id, ChangeFeedStatus(True, "waiting on the queue"))
    assert "Queue" not in window.status.text() and "Queue" not in window.status.toolTip()
    assert f"Team share polled since {began}, not watched" in window.status.text()
    # Failing again later is a new spell, with its own start.
    with monkeypatch.context() as clock:
        clock.setattr(time, "time", lambda: later)
        controller.bridge.deliver(other.id, ChangeFeedStatus(False, "queue gone again"))
    assert f"bucket&lt;/b&gt; polled since {clock_text(later)}, push" in window.status.text()
    controller.bridge.deliver(other.id, ChangeFeedStatus(True, "waiting on the queue"))

    # A storage removed is no longer named; the line is as before.
    remove_storage(controller, folder)
    assert "polled" not in window.status.text() and window.status.toolTip() == ""
    assert "All storages reachable" in window.status.text()
    # What the removed storage's engine still says on its way out changes nothing.
    controller.bridge.deliver(folder, ChangeFeedStatus(False, why, folder=True))
    assert "polled" not in window.status.text()
    window.grab().save(str(tmp_path / "polled.png"))
