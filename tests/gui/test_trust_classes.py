"""Rooms planted with each class of hostile object (docs/SECURITY.md), opened in the real
app: controller, models, delegates, members panel and audit dialog, offscreen, on a real
local folder. Each room must say what is wrong until a member resolves it.

The reader is Carol, a fresh device: she never pinned anyone, so what she trusts comes only
from the room as it is in the storage — the position of every new member.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import run, shot  # tests/gui/conftest.py
from nacl.signing import SigningKey
from PySide6.QtCore import Qt

from bucket_chat_desktop.gui.audit.dialog import AuditDialog
from bucket_chat_desktop.gui.audit.explanations import EXPLANATIONS
from bucket_chat_desktop.gui.audit.findings_model import Column
from bucket_chat_desktop.gui.controller import Controller
from bucket_chat_desktop.gui.features import Features, install
from bucket_chat_desktop.gui.main_window import MainWindow
from bucket_chat_desktop.gui.models.members_model import DeviceState, Member
from bucket_chat_desktop.gui.models.rooms_model import RoomRoles
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.gui.style import TRUST_SYMBOLS
from bucket_chat_desktop.gui.widgets.members_panel import DeviceRow
from bucket_chat_desktop.gui.widgets.message_delegate import _badge, tooltip_html
from bucket_chat_desktop.index import Index
from bucket_chat_desktop.keys.identity import Identity
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.ids import iso_utc_ms, segment_path
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.base import StorageOfflineError
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import client as client_module
from bucket_chat_desktop.sync.engine import RoomState
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "falcon"
ALICE_ID, BOB_ID, CAROL_ID = "alice@example.com", "bob@example.com", "carol@example.com"
ALICE = SigningKey(b"\x01" * 32)
BOB = SigningKey(b"\x02" * 32)
CAROL = SigningKey(b"\x03" * 32)
IMPOSTOR = SigningKey(b"\x09" * 32)
T0 = 1_764_000_000_000  # 2025-11-24
DAY = 86_400_000
SCAM = "Please pay the invoice to account X today"


def key_text(key: SigningKey) -> str:
    return b64encode(bytes(key.verify_key))


class Clock:
    def __init__(self, start: int = T0) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 7 * 60_000
        return self.now


def writer(
    storage: LocalStorage, user: str, key: SigningKey, name: str, clock: Clock
) -> RoomWriter:
    return RoomWriter(storage, ROOM, user, key, displayname=name, clock=clock)


async def alice_and_bob(storage: LocalStorage, *, metadata: bool = True) -> RoomWriter:
    """An ordinary room: alice created it, both wrote. Returns bob's writer."""
    clock = Clock()
    alice = writer(storage, ALICE_ID, ALICE, "Alice", clock)
    bob = writer(storage, BOB_ID, BOB, "Bob", clock)
    if metadata:
        await alice.write_metadata("Project Falcon", "2025-11-24T10:00:00.000Z")
    await alice.send([Draft.text("Morning! The new build is up.")])
    await bob.send([Draft.text("Checking it now.")])
    await alice.send([Draft.text("Shipping at 3pm then.")])
    return bob


# -- the app, as Carol ----------------------------------------------------------------------


@dataclass
class App:
    controller: Controller
    window: MainWindow
    features: Features
    key: str
    store: Path

    @property
    def storage_id(self) -> str:
        return self.key.split("/")[0]

    @property
    def index(self) -> Index:
        return self.controller.client._storages[self.storage_id].index

    @property
    def room(self) -> RoomState:
        return self.controller.client._storages[self.storage_id].engine.rooms[ROOM]

    def wait_complete(self, qtbot: Any) -> None:
        """Until the window shows the room's complete audit: the engine's room says so
        first, and the window hears of it a turn of the event loop later."""
        qtbot.waitUntil(
            lambda: self.room.complete and self.controller.result(self.key) is self.room.result
        )

    def kinds(self) -> list[str]:
        return [f.kind.value for f in self.controller.room_errors(self.key)]

    def rows(self, sender: str = "") -> list[Any]:
        model = self.controller.timeline(self.key)
        out = [model.index(i) for i in range(model.rowCount())]
        return [i for i in out if not sender or i.data(Roles.Sender) == sender]

    def member(self, user_id: str) -> Member:
        model = self.features.members_model
        row = model.row_of(user_id)
        assert row >= 0, f"{user_id} is not listed"
        return model.member(row)

    def device_rows(self, user_id: str) -> list[DeviceRow]:
        cards = self.features.members_panel.cards
        return [r for c in cards if c.member.user_id == user_id for r in c.device_rows]

    def room_list_findings(self) -> int:
        rooms = self.controller.rooms
        return int(rooms.index(rooms.row_of(self.key)).data(RoomRoles.Findings))

    def open_members(self, qtbot: Any) -> None:
        self.window.members_button.click()
        panel = self.features.members_panel
        qtbot.waitUntil(lambda: len(panel.cards) == self.features.members_model.rowCount() > 0)

    def wait_for_cards(self, qtbot: Any) -> None:
        """A replaced card is shown by Qt one event-loop turn after it joins the panel."""
        cards = self.features.members_panel.cards
        qtbot.waitUntil(lambda: all(c.isVisible() for c in cards))

    def open_audit(self, qtbot: Any) -> AuditDialog:
        self.window.audit_button.click()
        return self.audit_dialog(qtbot)

    def audit_dialog(self, qtbot: Any) -> AuditDialog:
        """The audit dialog, once it shows (after the client's snapshot of the room)."""
        qtbot.waitUntil(
            lambda: (
                self.features.audit_dialog is not None and self.features.audit_dialog.isVisible()
            )
        )
        dialog = self.features.audit_dialog
        assert dialog is not None
        return dialog


@pytest.fixture
def open_room(
    qtbot: Any, qloop: Any, home: Path, tmp_path: Path
) -> Iterator[Callable[[Callable[[LocalStorage], Awaitable[Any]]], App]]:
    """Plant a room with ``build(storage)`` in a real folder, then open it as Carol and
    wait until the GUI holds the engine's last audit of it."""
    controllers: list[Controller] = []

    def make(build: Callable[[LocalStorage], Awaitable[Any]]) -> App:
        store = tmp_path / "store"
        run(build(LocalStorage(store)), qtbot)
        entry = StorageSettings(str(store), "Team share", [ROOM])
        key = f"{entry.id}/{ROOM}"
        settings = Settings(CAROL_ID, "Carol", [entry], last_room=key)
        controller = Controller(settings, Identity(CAROL_ID, CAROL))
        controllers.append(controller)
        window = MainWindow(controller)
        qtbot.addWidget(window)
        features = install(window, controller)
        window.resize(1280, 760)
        window.show()
        controller.start()
        app = App(controller, window, features, key, store)

        def loaded() -> bool:
            attached = controller.client._storages.get(entry.id)
            room = attached.engine.rooms.get(ROOM) if attached else None
            return (
                room is not None
                and room.result is not None
                and (controller.result(key) is room.result)
            )

        qtbot.waitUntil(loaded, timeout=20_000)
        return app

    yield make
    for controller in controllers:
        run(controller.shutdown(), qtbot, timeout=20)


# -- 1. a backdated impostor: two keys claim alice ---------------------------------------------


async def backdated_impostor(storage: LocalStorage) -> None:
    await alice_and_bob(storage)
    # A key nobody introduced writes as alice, stamped a day *before* the room began, to
    # look like her first device.
    fake = writer(storage, ALICE_ID, IMPOSTOR, "Alice", Clock(T0 - DAY))
    await fake.send([Draft.text(SCAM)])


def test_a_backdated_impostor_is_a_conflict_until_carol_confirms_one_key(
    qtbot: Any, open_room: Callable[..., App], tmp_path: Path
) -> None:
    app = open_room(backdated_impostor)
    app.wait_complete(qtbot)
    # the room says so: the room list's warning mark and the banner
    assert "key-conflict" in app.kinds()
    assert app.room_list_findings() >= 1
    assert app.window.banner.isVisible()
    banner = app.window.banner_text.text()
    assert "key-conflict" in banner and EXPLANATIONS[Kind.KEY_CONFLICT].title in banner
    # every row of alice, under either key, carries the key-changed badge, and its tooltip
    # says that several keys claim her; nothing of hers shows as verified
    alice_rows = app.rows(ALICE_ID)
    assert {i.data(Roles.SenderKey) for i in alice_rows} == {key_text(ALICE), key_text(IMPOSTOR)}
    for index in alice_rows:
        assert index.data(Roles.Trust) == "key-changed" and not index.data(Roles.Confirmed)
        tip = tooltip_html(index)
        assert "keys claim this sender" in tip and "none is trusted" in tip
    assert all(i.data(Roles.Trust) == "verified" for i in app.rows(BOB_ID))
    shot(app.window, "trust_conflict_timeline", tmp_path)

    # Members: both of alice's devices are disputed, neither trusted, each can be confirmed
    app.open_members(qtbot)
    alice = app.member(ALICE_ID)
    assert {d.key: d.state for d in alice.devices} == {
        key_text(ALICE): DeviceState.DISPUTED,
        key_text(IMPOSTOR): DeviceState.DISPUTED,
    }
    assert alice.state is DeviceState.DISPUTED
    card = next(c for c in app.features.members_panel.cards if c.member.user_id == ALICE_ID)
    assert card.dispute_label is not None
    assert "claim to be this person" in card.dispute_label.text()
    rows = app.device_rows(ALICE_ID)
    assert len(rows) == 2
    for row in rows:
        assert row.state_label.text() == "Disputed"
        assert row.confirm_button is not None
        assert row.explanation is not None
        assert "other keys claim to be this person" in row.explanation.text()
    shot(app.window, "trust_conflict_members", tmp_path)

    # Carol compares fingerprints with alice in person and confirms the real key
    real = next(r for r in rows if r.device.key == key_text(ALICE))
    assert real.confirm_button is not None
    real.confirm_button.click()
    dialog = app.features.verify_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    shot(dialog, "trust_conflict_verify_dialog", tmp_path)
    dialog.confirm_button.click()

    def resolved() -> bool:
        return app.kinds() == ["key-changed"]

    qtbot.waitUntil(resolved, timeout=20_000)
    states = {i.data(Roles.SenderKey): i.data(Roles.Trust) for i in app.rows(ALICE_ID)}
    assert states == {key_text(ALICE): "verified", key_text(IMPOSTOR): "key-changed"}
    banner = app.window.banner_text.text()
    assert "key-changed" in banner and "key-conflict" not in banner
    qtbot.waitUntil(
        lambda: (
            {d.key: d.state for d in app.member(ALICE_ID).devices}
            == {key_text(ALICE): DeviceState.CONFIRMED, key_text(IMPOSTOR): DeviceState.KEY_CHANGED}
        )
    )
    qtbot.waitUntil(lambda: len(app.device_rows(ALICE_ID)) == 2)
    app.wait_for_cards(qtbot)
    shot(app.window, "trust_conflict_resolved", tmp_path)


# -- 2. an unsigned line under a signing user's name ----------------------------------------


async def impersonation(storage: LocalStorage) -> None:
    await alice_and_bob(storage)
    ts = T0 + 60 * 60_000
    forged = {
        "event_id": f"{ROOM}::{iso_utc_ms(ts)}::forged",
        "room_id": ROOM,
        "timestamp_ms": ts,
        "sender_id": ALICE_ID,
        "type": "m.room.message",
        "signature": "",
        "content": {"body": SCAM, "msgtype": "m.text"},
    }
    data = (json.dumps(forged) + "\n").encode()
    await storage.put_if_absent(segment_path(ROOM, ts, ts, "forger"), data)


def test_an_unsigned_line_under_a_signing_name_is_shown_as_not_theirs(
    qtbot: Any, open_room: Callable[..., App], tmp_path: Path
) -> None:
    app = open_room(impersonation)
    app.wait_complete(qtbot)
    assert app.kinds() == ["impersonation"]
    assert app.room_list_findings() == 1 and app.window.banner.isVisible()
    forged = next(i for i in app.rows(ALICE_ID) if i.data(Roles.Body) == SCAM)
    assert forged.data(Roles.Trust) == "key-changed" and forged.data(Roles.SenderKey) == ""
    # the warning badge ("!"), not the "could not check" one ("?")
    assert TRUST_SYMBOLS[_badge(forged)] == "!"
    tip = tooltip_html(forged)
    assert tip.startswith("<b>Not from them</b>") and "someone else under their name" in tip
    # her signed messages stay hers
    signed = [i for i in app.rows(ALICE_ID) if i.data(Roles.SenderKey)]
    assert signed and all(i.data(Roles.Trust) == "verified" for i in signed)
    app.open_members(qtbot)
    unsigned = next(d for d in app.member(ALICE_ID).devices if not d.signed)
    assert unsigned.state is DeviceState.KEY_CHANGED
    row = next(r for r in app.device_rows(ALICE_ID) if not r.device.signed)
    assert row.state_label.text() == "Not from them"
    assert row.confirm_button is None
    assert row.explanation is not None
    assert "not from any of their devices" in row.explanation.text()
    shot(app.window, "trust_impersonation", tmp_path)


# -- 3. a witnessed event deleted -----------------------------------------------------------


async def truncated_chain(storage: LocalStorage) -> str:
    """Alice's newest message, which bob's device saw (its witness), is deleted."""
    bob = await alice_and_bob(storage)
    clock = Clock(T0 + 3 * 60 * 60_000)
    alice = writer(storage, ALICE_ID, ALICE, "Alice", clock)
    newest, (last,) = await alice.send([Draft.text("Cancel the 3pm release!")])
    await bob.load_head()
    head = bob._head
    assert head is not None
    seen = build_event(
        room_id=ROOM,
        sender_id=BOB_ID,
        event_type="m.room.message",
        content={"body": "Noted, cancelling.", "msgtype": "m.text"},
        timestamp_ms=clock(),
        unique="00000000-0000-4000-8000-000000000001",
        prev_event_hash=head.hash,
        signing_key=BOB,
        witness={key_text(ALICE): last.hash},
    )
    await bob.publish([seen])
    (storage.root / newest).unlink()  # the provider drops alice's newest segment
    return newest


def test_a_deleted_witnessed_message_raises_the_banner_and_is_explained(
    qtbot: Any, open_room: Callable[..., App], tmp_path: Path
) -> None:
    app = open_room(truncated_chain)
    app.wait_complete(qtbot)
    assert app.kinds() == ["truncated-chain"]
    assert app.room_list_findings() == 1 and app.window.banner.isVisible()
    banner = app.window.banner_text.text()
    assert EXPLANATIONS[Kind.TRUNCATED_CHAIN].title in banner and "truncated-chain" in banner
    shot(app.window, "trust_truncated_window", tmp_path)
    app.window.banner_button.click()
    dialog = app.audit_dialog(qtbot)
    shown = dialog.table.model()
    kinds = [str(shown.index(r, Column.KIND).data()) for r in range(shown.rowCount())]
    dialog.table.selectRow(kinds.index("truncated-chain"))
    detail = dialog.detail.toPlainText()
    explanation = EXPLANATIONS[Kind.TRUNCATED_CHAIN]
    assert explanation.title in detail and "no longer in the room" in detail
    assert BOB_ID in detail  # who saw it
    shot(dialog, "trust_truncated_audit", tmp_path)


# -- 4. part of the room cannot be read ------------------------------------------------------


class Stalling(LocalStorage):
    """A real folder whose storage stops answering for some objects (what a dropped
    connection or a hostile provider does part-way through a read)."""

    def __init__(self, root: Path, fail_get: set[str]) -> None:
        super().__init__(root)
        self.fail_get = fail_get

    async def get(self, path: str, *args: Any, **kwargs: Any) -> bytes:
        if path in self.fail_get:
            raise StorageOfflineError(f"no answer for {path}")
        return await super().get(path, *args, **kwargs)


def plant_socket(store: Path) -> tuple[Path, Callable[[], None]]:
    """A socket where a segment should be: listed like a file, refused on every read (the
    kernel gives ENXIO; a storage that reads only regular files refuses it as well).
    Returns its path and how to mend it (an ordinary, empty file in its place)."""
    folder = store / "rooms" / ROOM / "logs" / "2025-11-24"
    path = folder / f"messages_{T0 - 5}_{T0 - 5}_ghost.jsonl"
    here = os.getcwd()
    os.chdir(folder)  # a socket path is limited to ~100 bytes: bind by relative name
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path.name)
        sock.close()
    finally:
        os.chdir(here)

    def mend() -> None:
        path.unlink()
        path.write_bytes(b"")

    return path, mend


@pytest.mark.parametrize("how", ["refused", "stalled"])
def test_a_segment_that_cannot_be_read_is_no_verdict_and_pins_nothing(
    qtbot: Any,
    open_room: Callable[..., App],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    """``refused``: an object the folder cannot give (a socket named like a segment);
    ``stalled``: the storage does not answer for alice's first segment (the app's own
    storage, opened by the app, with one read failing)."""
    mend: list[Callable[[], None]] = []

    async def build(storage: LocalStorage) -> None:
        await alice_and_bob(storage)
        if how == "refused":
            mend.append(plant_socket(storage.root)[1])
            return
        first = (await storage.list_objects(f"rooms/{ROOM}/logs/"))[0].path
        stalling = Stalling(storage.root, {first})
        monkeypatch.setattr(client_module, "open_storage", lambda spec, **_: stalling)
        mend.append(stalling.fail_get.clear)

    app = open_room(build)
    # The engine notes the unread segment before its audit reaches the window (an event):
    # wait for both.
    qtbot.waitUntil(
        lambda: bool(app.room.unread) and "segment-unreadable" in app.kinds(), timeout=20_000
    )
    assert "segment-unreadable" in app.kinds()
    assert app.room_list_findings() >= 1 and app.window.banner.isVisible()
    banner = app.window.banner_text.text()
    assert "could not be read completely" in banner
    assert "events verified" not in app.window.room_subtitle.text()
    assert "not completely read" in app.window.room_subtitle.text()
    listed = app.controller.rooms.index(app.controller.rooms.row_of(app.key))
    assert listed.data(RoomRoles.Partial) is True
    assert "could not be read completely" in listed.data(Qt.ItemDataRole.ToolTipRole)
    # no trust on first use from a partial read: nobody is verified, each row says why
    rows = app.rows()
    assert rows and all(i.data(Roles.Trust) == "unverified" for i in rows)
    assert all("could not be read" in tooltip_html(i) for i in rows)
    # ... and nothing is pinned but Carol's own key
    assert app.index.pins(ROOM) == {CAROL_ID: {key_text(CAROL)}}
    app.open_members(qtbot)
    for user in app.features.members_model.members:
        assert {d.state for d in user.devices} == {DeviceState.UNVERIFIED}
        row = app.device_rows(user.user_id)[0]
        assert row.explanation is not None and "could not be read" in row.explanation.text()
    shot(app.window, f"trust_partial_read_{how}", tmp_path)

    # the storage answers again: the next pass reads everything and the room is clean
    mend[0]()
    app.room.last_safety = 0.0
    engine = app.controller.client._storages[app.storage_id].engine
    run(engine.poll_once(), qtbot, timeout=20)
    qtbot.waitUntil(lambda: not app.kinds(), timeout=20_000)
    qtbot.waitUntil(lambda: not app.window.banner.isVisible())
    assert all(i.data(Roles.Trust) == "verified" for i in app.rows())
    assert app.index.pins(ROOM) == {
        CAROL_ID: {key_text(CAROL)},
        ALICE_ID: {key_text(ALICE)},
        BOB_ID: {key_text(BOB)},
    }
    assert "events verified" in app.window.room_subtitle.text()
    assert listed.data(RoomRoles.Partial) is False


# -- 5. metadata signed by another key than the creator's ------------------------------------


async def foreign_metadata(storage: LocalStorage) -> None:
    fake = RoomWriter(storage, ROOM, ALICE_ID, IMPOSTOR)
    await fake.write_metadata("Falcon — payments", "2025-11-24T10:00:00.000Z")
    await alice_and_bob(storage, metadata=False)


def test_metadata_signed_by_another_key_is_not_shown_as_the_creators(
    qtbot: Any, open_room: Callable[..., App], tmp_path: Path
) -> None:
    app = open_room(foreign_metadata)
    app.wait_complete(qtbot)
    # the messages are fine; the room's name and creator are not alice's word
    assert all(i.data(Roles.Trust) == "verified" for i in app.rows())
    assert app.kinds() == ["metadata-signer-unknown"]
    assert app.room_list_findings() == 1 and app.window.banner.isVisible()
    dialog = app.open_audit(qtbot)
    meta = dialog.metadata_label.text()
    assert f"signed by {ALICE_ID}" not in meta
    assert "unknown key" in meta
    shown = dialog.table.model()
    kinds = [str(shown.index(r, Column.KIND).data()) for r in range(shown.rowCount())]
    assert kinds == ["metadata-signer-unknown"]
    shot(dialog, "trust_metadata_signer", tmp_path)
    shot(app.window, "trust_metadata_window", tmp_path)


def test_an_impostor_writing_while_the_room_is_open_turns_it_into_a_conflict(
    qtbot: Any, open_room: Callable[..., App], tmp_path: Path
) -> None:
    app = open_room(alice_and_bob)
    app.wait_complete(qtbot)
    assert not app.kinds() and not app.window.banner.isVisible()
    app.open_members(qtbot)
    # Carol trusted alice's only key on first use (pinned): a later key is "key changed"
    assert app.index.pins(ROOM)[ALICE_ID] == {key_text(ALICE)}

    async def impostor_writes() -> None:
        fake = writer(LocalStorage(app.store), ALICE_ID, IMPOSTOR, "Alice", Clock(T0 - DAY))
        await fake.send([Draft.text(SCAM)])

    run(impostor_writes(), qtbot)
    qtbot.waitUntil(lambda: app.kinds() == ["key-changed"], timeout=20_000)
    assert app.window.banner.isVisible() and app.room_list_findings() == 1
    # the backdated rows sort above everything shown: they are shown all the same
    scam = [i for i in app.rows(ALICE_ID) if i.data(Roles.Body) == SCAM]
    assert len(scam) == 1 and scam[0].data(Roles.Trust) == "key-changed"
    assert app.rows()[0].data(Roles.SenderKey) == key_text(IMPOSTOR)
    qtbot.waitUntil(
        lambda: (
            {d.key: d.state for d in app.member(ALICE_ID).devices}
            == {key_text(ALICE): DeviceState.VERIFIED, key_text(IMPOSTOR): DeviceState.KEY_CHANGED}
        )
    )
    qtbot.waitUntil(lambda: len(app.device_rows(ALICE_ID)) == 2)
    app.wait_for_cards(qtbot)
    fake_row = next(r for r in app.device_rows(ALICE_ID) if r.device.key == key_text(IMPOSTOR))
    assert fake_row.state_label.text() == "Key changed"
    shot(app.window, "trust_live_impostor", tmp_path)
