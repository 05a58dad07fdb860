"""A file transfer that failed for a passing reason offers "Try again", and it works.

Red team rt52: a download whose answer was cut off ("ClientPayloadError: Response payload
is not completed…") and an upload the service answered "503 SlowDown" ended with no way
to try again but starting over — only "no answer" was offered one. A refusal cannot
succeed on a retry; a busy service or a cut connection can (``StorageError.transient``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from desk import ALICE, Desk
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from test_app_flows import S3, Device, bob, moto, s3  # noqa: F401 (fixtures)
from test_hung_reads_gui import proxy, send_file, spec_of, stall  # noqa: F401 (fixtures)

from bucket_chat_desktop.protocol.attachments import parse_file_content
from bucket_chat_desktop.settings import Settings, StorageSettings

SLOW_DOWN = (
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)


def test_a_cut_download_and_a_busy_upload_can_be_tried_again(
    qtbot: Any,
    launch: Callable[..., Desk],
    s3: S3,  # noqa: F811
    proxy: Any,  # noqa: F811
    bob: Device,  # noqa: F811
    tmp_path: Path,
) -> None:
    s3.emulators.s3_create_bucket(s3.endpoint, s3.keys, "bc-transfer-retry")
    direct = spec_of(s3, "bc-transfer-retry", s3.endpoint)
    bob.create_room(qtbot, direct, "falcon", "Project Falcon")
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 " + bytes(range(256)) * 256)
    send_file(qtbot, direct, "falcon", report)
    entry = StorageSettings(
        spec_of(s3, "bc-transfer-retry", proxy.endpoint), "Team bucket", ["falcon"]
    )
    settings = Settings(user_id=ALICE, displayname="Alice", storages=[entry])
    settings.last_room = f"{entry.id}/falcon"
    desk = launch(settings)
    desk.wait_loaded("falcon", timeout=30_000)
    feature = desk.window.attachments
    key = desk.key("falcon")
    qtbot.waitUntil(lambda: any(r.kind == "file" for r in desk.rows("falcon")), timeout=20_000)
    (row,) = [r for r in desk.rows("falcon") if r.kind == "file"]
    info = parse_file_content(row.content)

    # 1. The download's answer is cut off after 1,000 bytes, once.
    saved = tmp_path / "saved.pdf"
    proxy.add(stall.Rule(r"/blobs/", stall.CUT, method="GET", keep=1000, times=1))
    task = feature.save_attachment(key, row.event_id, info, str(saved))
    qtbot.waitUntil(task.done, timeout=30_000)
    (transfer,) = feature.strip.rows
    assert "broke off before its answer was complete" in transfer.error, transfer.error
    assert transfer.retry_button.isVisible()
    QTest.mouseClick(transfer.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: saved.exists() and not feature.strip.rows, timeout=30_000)
    assert saved.read_bytes() == report.read_bytes()

    # 2. The upload is answered "503 SlowDown", once.
    busy = stall.http_answer("503 Slow Down", SLOW_DOWN, "application/xml")
    proxy.add(stall.Rule(r"/blobs/", method="PUT", answer=lambda _r: busy, times=1))
    upload = tmp_path / "notes.pdf"
    upload.write_bytes(b"%PDF-1.4 " + b"y" * 5000)
    desk.window.files_chosen.emit(key, [str(upload)])
    qtbot.waitUntil(lambda: bool(feature.strip.errors()), timeout=30_000)
    (failed,) = feature.strip.rows
    assert "the service is busy (SlowDown); retry later" in failed.error, failed.error
    assert failed.retry_button.isVisible()
    QTest.mouseClick(failed.retry_button, Qt.MouseButton.LeftButton)

    def sent() -> bool:
        rows = [r for r in desk.rows("falcon") if r.kind == "file"]
        return any(parse_file_content(r.content).name == "notes.pdf" for r in rows)

    qtbot.waitUntil(sent, timeout=30_000)
    assert not feature.strip.rows


def test_a_room_whose_making_was_answered_with_a_cut_is_made_on_a_second_try(
    qtbot: Any,
    launch: Callable[..., Desk],
    s3: S3,  # noqa: F811
    proxy: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Red team rt52: the room's metadata was stored and its answer cut off; the app
    showed the library's words, and the second try "room 'ops' already exists"."""
    s3.emulators.s3_create_bucket(s3.endpoint, s3.keys, "bc-make-retry")
    entry = StorageSettings(spec_of(s3, "bc-make-retry", proxy.endpoint), "Team bucket", [])
    desk = launch(Settings(user_id=ALICE, displayname="Alice", storages=[entry]))
    qtbot.waitUntil(lambda: desk.controller.client.is_attached(entry.id), timeout=30_000)
    errors: list[str] = []
    desk.controller.error.connect(lambda _what, message: errors.append(message))
    proxy.add(stall.Rule(r"metadata\.json", stall.CUT, method="PUT", keep=100, times=1))
    desk.controller.create_room(entry.id, "ops", "Ops on call")
    qtbot.waitUntil(lambda: bool(errors), timeout=30_000)
    assert "broke off before its answer was complete" in errors[0], errors
    assert errors[0].endswith(
        "the room may have been made all the same: try again (a room this device made is "
        "then opened)"
    )
    desk.controller.create_room(entry.id, "ops", "Ops on call")
    qtbot.waitUntil(lambda: desk.controller.current == f"{entry.id}/ops", timeout=30_000)
    desk.wait_loaded("ops", timeout=30_000)
    assert desk.item("ops").shown_name == "Ops on call"
    assert len(errors) == 1, errors
