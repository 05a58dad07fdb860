"""The room list's preview takes the final verdict even when no message came with it.

A row verified on trial while older history loads (its sender's key first seen then)
marks the room list's preview "Not final yet". Once the older days are read the final
audit settles it, and the preview took the newest message among the newest rows that
came with that audit. When those rows held no message (a burst of reactions after it,
say), the preview kept the verdict taken on trial, "Not final yet", until the next
message (red team rt49, from the code): so after a restart, when the app had been
closed while older history loaded."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import shot, wait_for
from desk import ALICE, Desk, preview_line
from nacl.signing import SigningKey
from test_app_flows import S3, moto, s3  # noqa: F401 (fixtures)
from test_hung_reads_gui import proxy, spec_of, stall  # noqa: F401 (fixtures)

from bucket_chat_desktop.protocol.relations import REACTION
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.open import open_storage
from bucket_chat_desktop.sync.keeper import NEWEST_ROWS
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

CAROL = "carol@example.com"
TODAY = "Carol again, today"
DAY_MS = 86_400_000
CAROLS_KEY = SigningKey(b"\x03" * 32)


def test_the_preview_settles_when_the_final_audit_brings_no_message(
    qtbot: Any,
    launch: Callable[..., Desk],
    s3: S3,  # noqa: F811
    proxy: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    s3.emulators.s3_create_bucket(s3.endpoint, s3.keys, "bc-settles")
    direct = spec_of(s3, "bc-settles", s3.endpoint)
    now = int(time.time() * 1000)
    older = time.strftime("%Y-%m-%d", time.gmtime((now - 3 * DAY_MS) / 1000))

    async def write(old: bool, drafts: list[Draft]) -> str:
        storage = open_storage(direct)
        try:
            at = [now - 3 * DAY_MS if old else int(time.time() * 1000)]
            carol = RoomWriter(storage, "general", CAROL, CAROLS_KEY, clock=lambda: at[0])
            if old:
                await carol.create_room("General", time.strftime("%Y-%m-%dT09:00:00.000Z"))
            _, events = await carol.send(drafts)
            return events[-1].event_id
        finally:
            await storage.close()

    wait_for(qtbot, write(True, [Draft.text(f"Carol's message {n}") for n in range(3)]), 30_000)
    target = wait_for(qtbot, write(False, [Draft.text(TODAY)]), 30_000)
    # Carol's older day is not answered: her key, first seen today, is taken on trial.
    held = proxy.stall(rf"/logs/{older}/", stall.HANG, method="GET")
    entry = StorageSettings(spec_of(s3, "bc-settles", proxy.endpoint), "Bucket", ["general"])
    settings = Settings(user_id=ALICE, displayname="Alice", storages=[entry])
    settings.last_room = f"{entry.id}/general"
    desk = launch(settings)
    desk.wait_row("general", TODAY, timeout=30_000)
    qtbot.waitUntil(lambda: bool(held.hits), timeout=30_000)
    assert not desk.loaded("general")
    item = desk.item("general")
    assert preview_line(item) == f"carol@example.com: {TODAY}"  # by her id: she gave no name
    assert item.preview_warning == "The last message is not verified: Not final yet"

    # The app is closed while older history loads (its audit, saved, holds the verdict
    # taken on trial); more reactions to the message come than the rows a full audit
    # brings along, so the next audit's newest rows hold no message.
    assert desk.quit() == 0
    burst = [Draft(REACTION, {"relates_to": target, "reaction": "👍"})] * (NEWEST_ROWS + 1)
    wait_for(qtbot, write(False, burst), 30_000)
    proxy.release()
    again = launch(Settings(ALICE, "Alice", [entry], last_room=settings.last_room))
    again.wait_loaded("general", timeout=60_000)
    result = again.controller.result(again.key("general"))
    assert result.timeline.complete
    assert {a.event.type for a in result.timeline[-NEWEST_ROWS:]} == {REACTION}
    assert again.wait_row("general", TODAY).trust == "verified"
    qtbot.waitUntil(lambda: again.item("general").preview_warning == "", timeout=15_000)
    assert preview_line(again.item("general")) == f"carol@example.com: {TODAY}"  # no name given
    shot(again.window, "preview-settled", tmp_path)
