"""A storage whose news is polled instead of watched or notified stays marked in the
window's storage line for as long as that lasts, not only in a 15-second status-bar
message: a local folder that could not be watched (a full inotify table), a bucket
whose notification queue failed. The real app, through the engine's own event
(``ChangeFeedStatus``, as ``Poller.start_watch`` and the queue feed emit it; the
engine's side is tested in tests/unit/sync/test_watch_limit.py)."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

from desk import Desk, settings_for
from test_app_flows import store  # noqa: F401  (a fixture)

from bucket_chat_desktop.gui.widgets.settings_dialog import remove_storage
from bucket_chat_desktop.sync.events import ChangeFeedStatus
from bucket_chat_desktop.sync.poller import watch_problem


def test_a_folder_polled_because_it_is_not_watched_stays_marked(
    qtbot: Any,
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
    controller.bridge.deliver(folder, ChangeFeedStatus(False, why, folder=True))
    assert "All storages reachable" in window.status.text()  # it is reachable: polled
    assert "Team share polled, not watched" in window.status.text()
    assert "fs.inotify.max_user_instances" in window.status.toolTip()
    assert window.statusBar().currentMessage().endswith(why)  # said at once, too

    # A bucket's queue that fails: its own words, escaped (a storage's name is anyone's).
    controller.bridge.deliver(other.id, ChangeFeedStatus(False, "queue <i>gone</i>"))
    line = window.status.text()
    assert "Team share polled, not watched; Queue &lt;b&gt;bucket&lt;/b&gt; polled, push" in line
    assert "<b>bucket" not in line and "<i>" not in window.status.toolTip()
    assert "push notifications are off: queue &lt;i&gt;gone&lt;/i&gt;" in window.status.toolTip()

    # The status bar's message goes after 15 s; the mark stays until the queue answers.
    window.statusBar().clearMessage()
    assert "Team share polled, not watched" in window.status.text()
    controller.bridge.deliver(other.id, ChangeFeedStatus(True, "waiting on the queue"))
    assert "Queue" not in window.status.text() and "Queue" not in window.status.toolTip()
    assert "Team share polled, not watched" in window.status.text()

    # A storage removed is no longer named; the line is as before.
    remove_storage(controller, folder)
    assert "polled" not in window.status.text() and window.status.toolTip() == ""
    assert "All storages reachable" in window.status.text()
    # What the removed storage's engine still says on its way out changes nothing.
    controller.bridge.deliver(folder, ChangeFeedStatus(False, why, folder=True))
    assert "polled" not in window.status.text()
    window.grab().save(str(tmp_path / "polled.png"))
