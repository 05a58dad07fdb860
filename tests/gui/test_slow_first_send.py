"""A first message in a room sent while the room is still read over a slow link (red
team rt87): what the user typed is kept in the outbox before the send waits
(``Outbox.hold``), so a quit meanwhile loses nothing (the next start sends it), and a
storage removed meanwhile ends the send with words for a person, never as a fault.

The real app offscreen (``app.run`` through the ``launch`` fixture), a real S3 emulator
behind ``StallProxy`` (a slow link that keeps delivering: ``PACED``), real restarts on the
same profile folders.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import shot, wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey
from test_app_flows import S3, moto, s3, type_and_send

from bucket_chat_desktop import settings as settings_store
from bucket_chat_desktop.settings import Settings
from bucket_chat_desktop.storage.open import open_storage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

__all__ = ["moto", "s3"]  # fixtures used by name

CAROL = ("carol@example.com", SigningKey(b"\x03" * 32))


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
def proxy(s3: S3) -> Iterator[Any]:
    port = int(s3.endpoint.rsplit(":", 1)[1])
    p = stall.StallProxy(port).start()
    try:
        yield p
    finally:
        p.release()
        p.close()


def spec_of(s3: S3, bucket: str, endpoint: str) -> str:
    return f"s3://{bucket}/team?endpoint_url={endpoint}&region={s3.region}&timeout=30&retries=1"


def seed_batch(qtbot: Any, spec: str, room: str) -> None:
    """Carol made the room, said hello, then wrote one batch of ~3 MB (12 lines of
    ~240 KB, each within ``MAX_LINE_BYTES``): one segment."""

    async def go() -> None:
        storage = open_storage(spec)
        try:
            carol = RoomWriter(storage, room, *CAROL, displayname="Carol")
            await carol.write_metadata("Project Falcon", "2026-01-05T09:00:00.000Z")
            await carol.send([Draft.text("hello")])
            await carol.send([Draft.text(f"{i} " + "x" * 240_000) for i in range(12)])
        finally:
            await storage.close()

    wait_for(qtbot, go(), 60_000)


def start_sending_while_the_room_is_read(
    qtbot: Any, launch: Callable[..., Desk], s3: S3, proxy: Any, bucket: str
) -> tuple[Desk, Settings, asyncio.Task[Any], list[tuple[str, str]]]:
    """Carol's room (~3 MB) on a 256 KB/s link that delivers all along (16 KiB well
    within every 1.2 s: never "no answer"); Alice has it in her settings but never wrote
    in it from this device (a fresh outbox: a new install that kept its settings, or an
    outbox set aside as damaged). She sends while it is read: the app, the settings, the
    send's task (waiting for the room's read), and what the app said."""
    s3.emulators.s3_create_bucket(s3.endpoint, s3.keys, bucket)
    seed_batch(qtbot, spec_of(s3, bucket, s3.endpoint), "falcon")
    paced = proxy.stall(r"\.jsonl", stall.PACED, method="GET", keep=64 * 1024, every=0.25)
    settings = settings_for(spec_of(s3, bucket, proxy.endpoint), ["falcon"], name="Team bucket")
    desk = launch(settings)
    qtbot.waitUntil(lambda: len(paced.hits) >= 1, timeout=30_000)  # the read is under way
    errors: list[tuple[str, str]] = []
    desk.controller.error.connect(lambda what, message: errors.append((what, message)))
    runner = desk.controller.tasks
    before = set(runner._tasks)
    type_and_send(desk.window, "Typed while the room loads")
    assert desk.window.composer.toPlainText() == ""  # taken from the composer
    qtbot.waitUntil(lambda: bool(set(runner._tasks) - before), timeout=5_000)
    (send,) = set(runner._tasks) - before
    box = outbox_of(desk, settings)
    qtbot.waitUntil(lambda: len(box.held()) == 1, timeout=5_000)  # kept before it waits
    # shown "sending" at once, as any message in the outbox
    qtbot.waitUntil(lambda: typed_rows(desk) == ["sending"], timeout=5_000)
    assert not send.done() and not desk.loaded("falcon")  # still waiting for the read
    return desk, settings, send, errors


def typed_rows(desk: Desk) -> list[str]:
    """The echo state of each row of the message typed ("": delivered and read back)."""
    return [r.echo for r in desk.rows("falcon") if r.body == "Typed while the room loads"]


def outbox_of(desk: Desk, settings: Settings) -> Any:
    """The outbox of the settings' one storage, as the app holds it."""
    return desk.controller.client._storages[settings.storages[0].id].outbox


def test_a_first_message_sent_while_the_room_is_read_survives_a_quit(
    qtbot: Any, launch: Callable[..., Desk], s3: S3, proxy: Any
) -> None:
    """She quits while her first message waits for the room's read. It was cancelled
    with nothing queued and nothing said, and the composer had let it go: gone for good
    (red team rt87). Now it is kept in the outbox; the next start sends it."""
    desk, settings, _send, errors = start_sending_while_the_room_is_read(
        qtbot, launch, s3, proxy, "bc-kept-quit"
    )
    assert desk.quit() == 0
    assert errors == []  # a quit is no failure: the message waits for the next start

    proxy.rules.clear()  # next start, the link fast again
    proxy.release()
    desk = launch(settings_store.load())
    desk.wait_loaded("falcon", timeout=60_000)
    box = outbox_of(desk, settings)
    qtbot.waitUntil(lambda: box.is_empty() and box.held() == [], timeout=30_000)  # delivered
    qtbot.waitUntil(lambda: typed_rows(desk) == [""], timeout=30_000)  # once, read back
    assert desk.quit() == 0


def test_removing_a_storage_while_a_first_message_waits_says_what_became_of_it(
    qtbot: Any, launch: Callable[..., Desk], s3: S3, proxy: Any
) -> None:
    """She removes the storage in Settings while her first message waits for the room's
    read. The send outlived the engine and ended as "Unexpected error (RuntimeError)",
    with a traceback logged (red team rt87). Now it says it was not sent and that the
    text is kept for when the storage is added again."""
    from bucket_chat_desktop.gui.widgets.settings_dialog import remove_storage

    desk, settings, send, errors = start_sending_while_the_room_is_read(
        qtbot, launch, s3, proxy, "bc-kept-remove"
    )
    remove_storage(desk.controller, settings.storages[0].id)
    qtbot.waitUntil(send.done, timeout=60_000)
    qtbot.waitUntil(lambda: bool(errors), timeout=5_000)  # its done-callback said it
    [(what, said)] = errors
    assert what == "Sending your message"
    assert said.startswith("not sent: ") and "kept on this device" in said, said


def test_a_kept_message_whose_resume_got_no_answer_says_so_and_goes_out_before_later_ones(
    qtbot: Any, launch: Callable[..., Desk], s3: S3, proxy: Any, tmp_path: Path
) -> None:
    """Red team rt90 (F1): she typed a first message while the room was read, and quit:
    it is kept. At the next start the storage does not answer its segments for a moment:
    the resume gives up, and the row said "sending" with no reason for the whole run.
    Now it says it is not sent yet, why, and that it will be tried again. The storage
    answers, the room is read and she sends another message: the kept one goes out
    before it (it was typed first), not at some later start after it."""
    desk, settings, _send, _errors = start_sending_while_the_room_is_read(
        qtbot, launch, s3, proxy, "bc-rt90-resume"
    )
    assert desk.quit() == 0

    proxy.rules.clear()
    proxy.release()
    hung = proxy.stall(r"\.jsonl", stall.HANG, method="GET")  # no answer for a moment
    desk = launch(settings_store.load())
    sid = settings.storages[0].id
    storages = desk.controller.client._storages
    qtbot.waitUntil(
        lambda: (
            sid in storages
            and any(t.get_name() == "bc-resume-held" for t in storages[sid].engine._tasks)
        ),
        timeout=30_000,
    )
    engine = storages[sid].engine
    (resume,) = [t for t in engine._tasks if t.get_name() == "bc-resume-held"]
    qtbot.waitUntil(resume.done, timeout=30_000)  # it gave up: no answer in time
    assert len(hung.hits) >= 1
    [row] = [r for r in desk.rows("falcon") if r.body == "Typed while the room loads"]
    assert row.echo == "waiting", row.echo
    assert row.echo_error.startswith("not sent yet: "), row.echo_error
    assert row.echo_error.endswith("; it will be tried again"), row.echo_error
    assert len(outbox_of(desk, settings).held()) == 1
    shot(desk.window, "kept-not-sent-yet", tmp_path)

    proxy.rules.clear()
    proxy.release()  # the storage answers again
    desk.wait_loaded("falcon", timeout=60_000)
    type_and_send(desk.window, "Typed after the start")
    qtbot.waitUntil(
        lambda: [r.echo for r in desk.rows("falcon") if r.body == "Typed after the start"] == [""],
        timeout=60_000,
    )  # delivered and read back
    assert typed_rows(desk) == [""]
    bodies = [r.body for r in desk.rows("falcon")]
    assert bodies.index("Typed while the room loads") < bodies.index("Typed after the start")
    assert desk.quit() == 0
