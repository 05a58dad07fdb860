"""The first-run wizard against a storage that stops answering after its connection test
(moto behind ``StallProxy``, every request held): creating or joining the first room
gives up with a clear message once a request has gone unanswered for the connection
test's ``TEST_NO_ANSWER`` seconds, the wizard stays on its page and usable, and the same
click works once the storage answers. It waited for the storage's own timeout times its
retries (90 s with the defaults) behind "Creating the room…"."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from test_wizard import (
    click,
    fill_s3,
    go_next,
    moto,
    s3_bucket,
    test_connection,
    wizard_on_storage_page,
)

from bucket_chat_desktop.sync.selfcheck import TEST_NO_ANSWER

__all__ = ["moto", "s3_bucket"]  # fixtures used by name

# The wizard saves the storage's keys in the real Secret Service (tests/with-keyring.sh),
# which a keyring test locks: not beside it (``keyring``: tests/conftest.py).
pytestmark = [pytest.mark.usefixtures("qloop", "home"), pytest.mark.keyring]


def _load_proxy() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "integration" / "_stall_proxy.py"
    spec = importlib.util.spec_from_file_location("_bucket_chat_stall_proxy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


stall = _load_proxy()


@pytest.fixture
def proxy(s3_bucket: tuple[str, str, Any]) -> Iterator[Any]:
    endpoint = s3_bucket[0]
    p = stall.StallProxy(int(endpoint.rsplit(":", 1)[1])).start()
    try:
        yield p
    finally:
        p.release()
        p.close()


@pytest.mark.parametrize("mode", ["create", "join"])
def test_the_first_room_gives_up_on_a_storage_that_stops_answering(
    qtbot: Any, s3_bucket: tuple[str, str, Any], proxy: Any, mode: str
) -> None:
    _endpoint, bucket, admin = s3_bucket
    wizard = wizard_on_storage_page(qtbot)
    form = wizard.storage_page.form
    click(qtbot, form.kind_buttons["s3"])
    fill_s3(form, proxy.endpoint, bucket, admin)  # the default, patient timeout and retries
    assert test_connection(qtbot, form) == "ok", form.result_label.text()
    go_next(qtbot, wizard, 2)
    if mode == "create":
        wizard.done_page.create_room.setChecked(True)
        wizard.done_page.room_name.setText("General")
    else:
        wizard.done_page.join_room.setChecked(True)
        wizard.done_page.room_id.setText("general")

    proxy.stall(r".", stall.HANG)  # every request from now on: no answer
    click(qtbot, wizard.next_button)
    qtbot.waitUntil(lambda: proxy.stalled() >= 1, timeout=10_000)
    assert wizard.busy
    # Given up after TEST_NO_ANSWER s without an answer, not the storage's own 90 s.
    qtbot.waitUntil(lambda: not wizard.busy, timeout=int(TEST_NO_ANSWER * 1000) + 15_000)
    assert wizard.result_settings is None and wizard.page == 2
    text = wizard.status.text()
    assert f"within {TEST_NO_ANSWER:g} s" in text and "no answer" in text.lower(), text
    assert wizard.next_button.isEnabled()

    proxy.release()
    if mode == "join":  # someone makes the room meanwhile; the join then finds it
        return
    click(qtbot, wizard.next_button)
    qtbot.waitUntil(lambda: wizard.result_settings is not None or not wizard.busy, timeout=30_000)
    # The metadata write given up may have reached the storage: then the room exists and
    # the wizard says how to go on, never that it is someone else's.
    if wizard.result_settings is None:
        assert "join" in wizard.status.text().lower(), wizard.status.text()
    else:
        assert wizard.result_settings.storages[0].rooms == [wizard.done_page.room_id.text()]
