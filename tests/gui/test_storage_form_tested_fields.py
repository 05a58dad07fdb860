"""A connection test's result is about exactly the fields it tested: the storage form (the
wizard's storage page, Settings → Add storage) shows and keeps it only while the form
still says them, and the wizard's summary claims nothing for a storage never tested.

Red team rt88: a test of bucket A finished after the user had typed bucket B; the form
showed "✔ Connection works" beside B, kept it as its result, and the wizard's summary
said B's connection works, though B did not even exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import MemoryKeyring, shot  # tests/gui/conftest.py
from PySide6.QtGui import QTextDocumentFragment
from test_wizard import click, fill_s3, go_next, moto, s3_bucket, wizard_on_storage_page
from test_wizard_hung import proxy, stall

from bucket_chat_desktop.gui.setup.wizard import SetupWizard
from bucket_chat_desktop.gui.storage.form import STALE_NOTE, StorageForm
from bucket_chat_desktop.storage.profiles import ProfileStore

__all__ = ["moto", "proxy", "s3_bucket"]  # fixtures used by name

pytestmark = pytest.mark.usefixtures("qloop", "home")

UNTESTED = "a-bucket-nobody-tested"


def _plain(html: str) -> str:
    return QTextDocumentFragment.fromHtml(html).toPlainText()


def _summary(qtbot: Any, wizard: SetupWizard) -> str:
    go_next(qtbot, wizard, 2)
    return _plain(wizard.done_page.summary.text())


def _s3_wizard(
    qtbot: Any, endpoint: str, s3_bucket: tuple[str, str, Any], keyring: MemoryKeyring
) -> tuple[SetupWizard, StorageForm]:
    _endpoint, bucket, admin = s3_bucket
    wizard = wizard_on_storage_page(qtbot, profiles=ProfileStore(backend=keyring))
    form = wizard.storage_page.form
    click(qtbot, form.kind_buttons["s3"])
    fill_s3(form, endpoint, bucket, admin)
    return wizard, form


def _test_held(qtbot: Any, form: StorageForm, proxy: Any) -> None:
    """Start a test whose first listing the proxy holds."""
    proxy.stall(r"list-type=2", stall.HANG, times=1)
    click(qtbot, form.test_button)
    qtbot.waitUntil(lambda: proxy.stalled() >= 1, timeout=10_000)
    assert form.testing


def test_a_test_answer_is_not_shown_for_a_storage_edited_while_it_ran(
    qtbot: Any,
    s3_bucket: tuple[str, str, Any],
    proxy: Any,
    memory_keyring: MemoryKeyring,
    tmp_path: Path,
) -> None:
    wizard, form = _s3_wizard(qtbot, proxy.endpoint, s3_bucket, memory_keyring)
    _test_held(qtbot, form, proxy)
    # Meanwhile the user types another bucket: one nobody ever tested (it does not exist).
    form.bucket_edit.setText(UNTESTED)
    # The test of the other bucket is stopped at once, and says so.
    assert not form.testing and form.test_button.isEnabled()
    assert _plain(form.result_label.text()) == STALE_NOTE
    shot(wizard, "storage-test-stopped-by-an-edit", tmp_path)
    proxy.release()
    qtbot.waitUntil(lambda: form.tasks.running == 0, timeout=30_000)
    assert _plain(form.result_label.text()) == STALE_NOTE
    assert form.last_result is None and form.result() is None
    summary = _summary(qtbot, wizard)
    assert UNTESTED in summary and "Connection" not in summary, summary
    # Tested now, the bucket typed gets its own answer.
    click(qtbot, wizard.back_button)
    click(qtbot, form.test_button)
    qtbot.waitUntil(lambda: form.result() is not None, timeout=30_000)
    result = form.result()
    assert result is not None and result.level == "error", result
    assert "does not exist" in result.message
    summary = _summary(qtbot, wizard)
    assert "Connection" in summary and "does not exist" in summary, summary


def test_an_answer_for_fields_changed_without_an_edit_signal_is_not_shown(
    qtbot: Any, s3_bucket: tuple[str, str, Any], proxy: Any, memory_keyring: MemoryKeyring
) -> None:
    """The answer itself is checked against the fields when it comes, whatever changed
    them (here code with the field's signals blocked)."""
    wizard, form = _s3_wizard(qtbot, proxy.endpoint, s3_bucket, memory_keyring)
    _test_held(qtbot, form, proxy)
    form.bucket_edit.blockSignals(True)
    form.bucket_edit.setText(UNTESTED)
    form.bucket_edit.blockSignals(False)
    assert form.testing  # nothing told the form
    proxy.release()
    qtbot.waitUntil(lambda: not form.testing, timeout=30_000)
    assert _plain(form.result_label.text()) == STALE_NOTE
    assert form.last_result is None and form.result() is None
    assert "Connection" not in _summary(qtbot, wizard)


def test_a_result_is_kept_while_the_tested_fields_stay_and_dropped_when_a_key_changes(
    qtbot: Any, s3_bucket: tuple[str, str, Any], memory_keyring: MemoryKeyring
) -> None:
    endpoint, bucket, _admin = s3_bucket
    wizard, form = _s3_wizard(qtbot, endpoint, s3_bucket, memory_keyring)
    click(qtbot, form.test_button)
    qtbot.waitUntil(lambda: form.last_result is not None, timeout=30_000)
    # A space typed after the bucket, the same kind clicked again: the same storage.
    qtbot.keyClicks(form.bucket_edit, " ")
    click(qtbot, form.kind_buttons["s3"])
    result = form.last_result
    assert result is not None and result.level == "ok", result
    assert form.result() is result
    assert "Connection works" in _plain(form.result_label.text())
    assert "Connection works" in _summary(qtbot, wizard)
    # Another secret key is another test.
    click(qtbot, wizard.back_button)
    qtbot.keyClicks(form.s3_secret, "x")
    assert form.result() is None and form.last_result is None
    assert _plain(form.result_label.text()) == ""
    summary = _summary(qtbot, wizard)
    assert bucket in summary and "Connection" not in summary, summary
