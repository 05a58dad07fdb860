"""The storage form's Queue URL field (S3 only): it becomes the storage's ``queue_url``
option (docs/STORAGE.md, "Push notifications on S3"); a URL that cannot be a queue is
refused with what to fix, before anything is tested or saved."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from keyring.backends import fail

from bucket_chat_desktop.gui.bridge import EngineBridge
from bucket_chat_desktop.gui.storage.form import StorageForm
from bucket_chat_desktop.storage.profiles import ProfileStore
from bucket_chat_desktop.sync.events import ChangeFeedStatus
from bucket_chat_desktop.sync.poller import watch_problem

pytestmark = pytest.mark.usefixtures("qloop", "home")

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/chat-laptop"


def test_the_queue_url_becomes_the_storage_option(qtbot: Any, tmp_path: Path) -> None:
    form = StorageForm(profiles=ProfileStore(backend=fail.Keyring()))
    qtbot.addWidget(form)
    form.resize(640, 720)
    form.set_kind("s3")
    form.bucket_edit.setText("team-chat")
    form.region_edit.setText("eu-west-1")
    form.s3_env_radio.setChecked(True)
    assert not form.queue_edit.isHidden()
    assert "queue_url" not in form.location().options  # optional
    form.queue_edit.setText("sqs.eu-west-1.amazonaws.com/123/q")
    assert "queue_url must look like https://host/account/queue" in form.problem()
    form.queue_edit.setText(QUEUE)
    assert form.problem() == ""
    assert form.location().options["queue_url"] == QUEUE
    form.grab().save(str(tmp_path / "storage-form-queue.png"))
    form.set_kind("gs")  # not for other kinds: hidden and left out
    form.gs_adc_radio.setChecked(True)
    assert form.queue_edit.isHidden()
    assert "queue_url" not in form.location().options


def test_a_failing_queue_is_said_in_the_status_bar(qtbot: Any) -> None:
    bridge = EngineBridge()
    said: list[tuple[str, str]] = []
    bridge.warning_raised.connect(lambda sid, text: said.append((sid, text)))
    bridge.deliver("work", ChangeFeedStatus(False, "the queue does not exist\n" + "x" * 500))
    bridge.deliver("work", ChangeFeedStatus(True, "waiting on the bucket's notifications"))
    assert said[0][0] == "work" and said[0][1].startswith("push notifications are off: ")
    assert "\n" not in said[0][1] and len(said[0][1]) < 400
    assert said[1] == ("work", "waiting on the bucket's notifications")


def test_a_folder_that_is_not_watched_is_said_as_it_is(qtbot: Any) -> None:
    """A local folder's watch that could not start (``Poller.start_watch``) is no push
    notification: said in its own words, which name the limit and the polling."""
    bridge = EngineBridge()
    said: list[tuple[str, str]] = []
    bridge.warning_raised.connect(lambda sid, text: said.append((sid, text)))
    why = watch_problem(OSError(errno.EMFILE, "inotify instance limit reached"), 3, 45)
    bridge.deliver("home", ChangeFeedStatus(False, why, folder=True))
    assert said == [("home", why)]
    assert said[0][1].startswith("Not watching this folder: ")
