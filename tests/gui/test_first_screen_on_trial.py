"""Red team rt47, in the app: an impostor wrote today as Carol, whose history is older.

A device opening the room reads today's folder first and shows it before the older
days come (PROTOCOL.md section 16). The impostor's key, the first seen, was shown with a
filled green ✔, "signature good, chain intact, key pinned for this sender", a header of
"2 of 2 events verified" and an unmarked room-list preview, for as long as the older
history took to read — on a slow bucket, as long as a hostile provider liked. The first
key seen is now taken on trial: its rows' badges are rings ("Not final yet"), the
header says older history is still loading, the preview is marked; once the older days
are read the impostor is what the whole history makes it (a conflict with Carol)."""

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

from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.gui.widgets.message_delegate import tooltip_html
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.open import open_storage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

CAROL = "carol@example.com"
BAIT = "Carol here: wire the deposit to XX00 EVIL today"
DAY_MS = 86_400_000


def test_the_first_screen_takes_the_first_key_seen_on_trial(
    qtbot: Any,
    launch: Callable[..., Desk],
    s3: S3,  # noqa: F811
    proxy: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    s3.emulators.s3_create_bucket(s3.endpoint, s3.keys, "bc-on-trial")
    direct = spec_of(s3, "bc-on-trial", s3.endpoint)
    now = int(time.time() * 1000)
    older = time.strftime("%Y-%m-%d", time.gmtime((now - 3 * DAY_MS) / 1000))

    async def seed() -> None:
        storage = open_storage(direct)
        try:
            at = [now - 3 * DAY_MS]
            carol = RoomWriter(
                storage, "general", CAROL, SigningKey(b"\x03" * 32), clock=lambda: at[0]
            )
            await carol.create_room("General", time.strftime("%Y-%m-%dT09:00:00.000Z"))
            for n in range(3):
                at[0] += 60_000
                await carol.send([Draft.text(f"Carol's message {n}")])
            mallory = RoomWriter(storage, "general", CAROL, SigningKey(b"\x4d" * 32))
            _, [*_, bait] = await mallory.send([Draft.text(BAIT)])
            await mallory.send([Draft.text("reply here with the code", bait.event_id)])
            root.append(bait.event_id)
        finally:
            await storage.close()

    root: list[str] = []
    wait_for(qtbot, seed(), 30_000)
    # Carol's older day is not answered: the first screen is today's folder alone.
    held = proxy.stall(rf"/logs/{older}/", stall.HANG, method="GET")
    entry = StorageSettings(spec_of(s3, "bc-on-trial", proxy.endpoint), "Bucket", ["general"])
    settings = Settings(user_id=ALICE, displayname="Alice", storages=[entry])
    settings.last_room = f"{entry.id}/general"
    desk = launch(settings)
    row = desk.wait_row("general", BAIT, timeout=30_000)
    qtbot.waitUntil(lambda: bool(held.hits), timeout=30_000)  # the older day: held
    assert not desk.loaded("general")
    assert row.trust == "verified"  # the protocol's verdict so far …
    model = desk.model("general")
    index = model.index(desk.wait_index("general", BAIT))
    assert index.data(Roles.Provisional) is True  # … drawn as a ring, and said so
    assert "so far: older history is still being read" in tooltip_html(index)
    assert "key pinned" not in tooltip_html(index)
    subtitle = desk.window.room_subtitle.text()
    assert "older history still loading" in subtitle and "events verified" not in subtitle
    assert preview_line(desk.item("general")) == "carol@example.com: reply here with the code"
    assert desk.item("general").preview_warning == (
        "The last message is not verified: Not final yet"
    )
    # its thread is headed so too (red team rt49: "started by carol@…", no doubt)
    panel = desk.window.relation_actions.thread_panel  # type: ignore[union-attr]
    desk.window.open_thread(root[0])
    qtbot.waitUntil(lambda: "1 reply" in panel.subtitle.text(), timeout=15_000)
    assert "Not final yet:" in panel.subtitle.text(), panel.subtitle.text()
    shot(desk.window, "first-screen-on-trial", tmp_path)

    proxy.release()
    qtbot.waitUntil(lambda: desk.loaded("general"), timeout=60_000)
    settled = desk.wait_row("general", BAIT)
    assert settled.trust == "key-changed", settled
    index = model.index(desk.wait_index("general", BAIT))
    assert not index.data(Roles.Provisional)
    assert "events verified" in desk.window.room_subtitle.text()
    assert desk.item("general").preview_warning.startswith("The last message is not verified")
    # the open thread's header follows the final audit, not only a thread opened anew
    qtbot.waitUntil(lambda: "Key changed:" in panel.subtitle.text(), timeout=15_000)
    assert "Not final" not in panel.subtitle.text()
