"""The real app with one of its two storages behind a proxy that stalls (``StallProxy``
in front of moto), the other reached directly on the same emulator: narrower faults than
a frozen service, as a flaky network makes them.

- an attachment whose answer stops half-way shows as downloading, and its Cancel stops
  it; the room's rows stay shown;
- when the whole storage stops answering, the other storage's room keeps receiving,
  the hung one says "not answering" and keeps what it showed; once the storage answers
  again, what was sent meanwhile arrives by itself and the line clears;
- quitting while a download and every request of a storage hang ends the app.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import wait_for
from desk import ALICE, Desk
from nacl.signing import SigningKey
from test_app_flows import S3, Device, bob, moto, s3, type_and_send

from bucket_chat_desktop.protocol.attachments import parse_file_content
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.open import open_storage
from bucket_chat_desktop.sync import blobs
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

__all__ = ["bob", "moto", "s3"]  # fixtures used by name

CAROL = "carol@example.com"


def _load_proxy() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "integration" / "_stall_proxy.py"
    spec = importlib.util.spec_from_file_location("_bucket_chat_stall_proxy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


stall = _load_proxy()


@pytest.fixture
def proxy(s3: S3) -> Iterator[Any]:
    port = int(s3.endpoint.rsplit(":", 1)[1])
    p = stall.StallProxy(port).start()
    try:
        yield p
    finally:
        p.release()
        p.close()


def spec_of(s3: S3, bucket: str, endpoint: str) -> str:
    # The patient timeout of a real set-up: only the watchdog tells a hang quickly.
    return f"s3://{bucket}/team?endpoint_url={endpoint}&region={s3.region}&timeout=30&retries=1"


def send_file(qtbot: Any, spec: str, room: str, path: Path) -> None:
    """Carol (another device) stores a file as a blob and sends the message naming it."""

    async def go() -> None:
        storage = open_storage(spec)
        try:
            content = await blobs.upload(storage, room, path, limit_bytes=1 << 20)
            carol = RoomWriter(storage, room, CAROL, SigningKey(b"\x03" * 32))
            await carol.send([Draft("m.room.message", content)])
        finally:
            await storage.close()

    wait_for(qtbot, go(), 30_000)


def test_a_stalling_storage_holds_up_neither_the_app_nor_its_other_storage(
    qtbot: Any,
    launch: Callable[..., Desk],
    s3: S3,
    proxy: Any,
    bob: Device,
    tmp_path: Path,
) -> None:
    s3.emulators.s3_create_bucket(s3.endpoint, s3.keys, "bc-hang6-flaky")
    s3.emulators.s3_create_bucket(s3.endpoint, s3.keys, "bc-hang6-steady")
    flaky = spec_of(s3, "bc-hang6-flaky", proxy.endpoint)  # the app's way to the bucket
    flaky_direct = spec_of(s3, "bc-hang6-flaky", s3.endpoint)  # the other devices'
    steady = spec_of(s3, "bc-hang6-steady", s3.endpoint)
    bob.create_room(qtbot, flaky_direct, "falcon", "Project Falcon")
    bob.create_room(qtbot, steady, "heron", "Project Heron")
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 " + bytes(range(256)) * 64)
    send_file(qtbot, flaky_direct, "falcon", report)

    first = StorageSettings(flaky, "Flaky bucket", ["falcon"])
    second = StorageSettings(steady, "Steady bucket", ["heron"])
    settings = Settings(user_id=ALICE, displayname="Alice", storages=[first, second])
    settings.last_room = f"{first.id}/falcon"
    desk = launch(settings)
    desk.wait_loaded("falcon", "heron", timeout=30_000)
    window = desk.window
    feature = window.attachments
    key = desk.key("falcon")
    qtbot.waitUntil(lambda: any(r.kind == "file" for r in desk.rows("falcon")), timeout=20_000)
    (row,) = [r for r in desk.rows("falcon") if r.kind == "file"]
    info = parse_file_content(row.content)
    assert info is not None
    shown = [r.event_id for r in desk.rows("falcon")]

    # 1. The blob's answer stops half-way: the download shows as running, and once it
    # has waited the watchdog's 8 s its storage as not answering; Cancel stops it, and
    # the next answer clears the line.
    blob = proxy.stall(r"/blobs/", stall.HALFWAY, keep=100)
    task = feature.save_attachment(key, row.event_id, info, str(tmp_path / "saved.pdf"))
    qtbot.waitUntil(lambda: proxy.stalled() == 1, timeout=20_000)
    (transfer,) = feature.strip.rows
    assert not transfer.failed and feature.strip.isVisible()
    qtbot.waitUntil(lambda: "not answering" in window.status.text(), timeout=30_000)
    assert "Flaky bucket not answering since" in window.status.text()
    assert not desk.item("falcon").online and desk.item("heron").online
    transfer.cancel_requested.emit()
    qtbot.waitUntil(task.done, timeout=10_000)
    assert task.cancelled() and feature.strip.rows == []
    assert not (tmp_path / "saved.pdf").exists()
    assert len(blob.hits) == 1
    assert [r.event_id for r in desk.rows("falcon")] == shown
    client = window.controller.client
    client.set_window_focused(False)
    client.set_window_focused(True)  # the window comes to the front: polls at once
    qtbot.waitUntil(lambda: "All storages reachable" in window.status.text(), timeout=60_000)

    # 2. Every request of the flaky storage hangs: the steady one goes on.
    proxy.release()
    proxy.stall(r".", stall.HANG)
    bob.send(qtbot, flaky_direct, "falcon", "Said while the flaky bucket hangs")
    bob.send(qtbot, steady, "heron", "The steady bucket still works")
    desk.wait_row("heron", "The steady bucket still works", timeout=30_000)
    qtbot.waitUntil(lambda: "not answering" in window.status.text(), timeout=30_000)
    assert "Flaky bucket not answering since" in window.status.text()
    assert "Steady bucket" not in window.status.text()
    assert not desk.item("falcon").online and desk.item("heron").online
    assert [r.event_id for r in desk.rows("falcon")] == shown  # what it showed stays
    desk.select("heron")
    type_and_send(window, "Sent on the steady bucket meanwhile")
    mine = desk.wait_row("heron", "Sent on the steady bucket meanwhile", timeout=30_000)
    assert mine.trust == "verified" and not mine.echo

    # 3. It answers again: what was said meanwhile arrives by itself, the line clears.
    proxy.release()
    desk.select("falcon")
    desk.wait_row("falcon", "Said while the flaky bucket hangs", timeout=60_000)
    qtbot.waitUntil(lambda: "All storages reachable" in window.status.text(), timeout=30_000)
    assert desk.item("falcon").online
    saved = feature.save_attachment(key, row.event_id, info, str(tmp_path / "saved.pdf"))
    qtbot.waitUntil(saved.done, timeout=20_000)
    assert (tmp_path / "saved.pdf").read_bytes() == report.read_bytes()

    # 4. Quitting while a download and every request of the storage hang.
    proxy.stall(r".", stall.HANG)
    (tmp_path / "saved.pdf").unlink()
    wait_for(qtbot, asyncio.to_thread(_clear, feature.cache.root))  # not served from cache
    feature.save_attachment(key, row.event_id, info, str(tmp_path / "saved.pdf"))
    qtbot.waitUntil(lambda: proxy.stalled() >= 1, timeout=20_000)
    assert desk.quit() == 0
    assert not (tmp_path / "saved.pdf").exists()


def _clear(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file():
            path.unlink()


def test_creating_or_joining_a_room_gives_up_on_a_storage_that_stops_answering(
    qtbot: Any, launch: Callable[..., Desk], s3: S3, proxy: Any, bob: Device
) -> None:
    """New room… and Join a room… on a storage that stopped answering: each gives up
    once a request has had no answer for ``TEST_NO_ANSWER`` s (as the connection test and
    the wizard do) with a message that says so — not after the storage's own timeout
    times its retries — and lists no room; both work once it answers."""
    from bucket_chat_desktop.sync.selfcheck import TEST_NO_ANSWER

    s3.emulators.s3_create_bucket(s3.endpoint, s3.keys, "bc-hang6-enter")
    spec = spec_of(s3, "bc-hang6-enter", proxy.endpoint)
    direct = spec_of(s3, "bc-hang6-enter", s3.endpoint)
    bob.create_room(qtbot, direct, "falcon", "Project Falcon")
    bob.create_room(qtbot, direct, "heron", "Project Heron")
    entry = StorageSettings(spec, "Flaky bucket", ["falcon"])
    settings = Settings(user_id=ALICE, displayname="Alice", storages=[entry])
    desk = launch(settings)
    desk.wait_loaded("falcon", timeout=30_000)
    errors: list[tuple[str, str]] = []
    desk.controller.error.connect(lambda what, message: errors.append((what, message)))
    bound = int(TEST_NO_ANSWER * 1000) + 10_000  # well before the storage's own 30 s

    proxy.stall(r".", stall.HANG)
    desk.controller.create_room(entry.id, "osprey", "Osprey")
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=bound)
    desk.controller.join_room(entry.id, "heron")
    qtbot.waitUntil(lambda: len(errors) == 2, timeout=bound)
    (made, joined) = errors
    assert f"within {TEST_NO_ANSWER:g} s" in made[1] and "may have been made" in made[1], made
    assert f"within {TEST_NO_ANSWER:g} s" in joined[1] and "nothing was joined" in joined[1]
    assert desk.controller.rooms.item(desk.key("osprey")) is None
    assert desk.controller.rooms.item(desk.key("heron")) is None

    released = time.time()
    proxy.release()  # once the storage answered again, a join works
    watched = desk.controller.client._storages[entry.id].engine.storage
    # (A step is given up for any request of its storage that waits, its own or not:
    # those held before the release are answered first.)
    qtbot.waitUntil(
        lambda: (watched.last_answer or 0) > released and watched.stalled(1.0) is None,
        timeout=30_000,
    )
    desk.controller.join_room(entry.id, "heron")
    qtbot.waitUntil(
        lambda: desk.controller.rooms.item(desk.key("heron")) is not None, timeout=30_000
    )
    assert len(errors) == 2
