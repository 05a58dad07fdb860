"""The members panel in the real window: members and devices from the room's audit,
"Mark as verified…" writing the user's pin into the storage's index, live updates."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from desk import preview_line
from nacl.signing import SigningKey
from PySide6.QtWidgets import QLabel, QWidget

from bucket_chat_desktop.gui.controller import Controller
from bucket_chat_desktop.gui.features import Features, install
from bucket_chat_desktop.gui.main_window import MainWindow
from bucket_chat_desktop.gui.models.members_model import Device, DeviceState, Member, key_bytes
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.gui.widgets.members_panel import (
    MAX_DEVICE_ROWS,
    PANEL_WIDTH,
    MemberCard,
    fingerprint_lines,
)
from bucket_chat_desktop.index import Index
from bucket_chat_desktop.keys.identity import Identity, display_fingerprint
from bucket_chat_desktop.protocol.audit import DEVICE_ADD_FIELD, Timeline
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.event import MEMBER
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.room_state import DisplayNames, RoomState
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "falcon"
ALICE = SigningKey(b"\x01" * 32)
BOB = SigningKey(b"\x02" * 32)
BOB_PHONE = SigningKey(b"\x04" * 32)
CAROL = SigningKey(b"\x03" * 32)
T0 = 1_764_000_000_000


def key_text(key: SigningKey) -> str:
    return b64encode(bytes(key.verify_key))


def shot(widget: QWidget, name: str, tmp_path: Path) -> Path:
    """Render ``widget``; also into $BUCKET_CHAT_GUI_SHOTS when set, to look at."""
    path = tmp_path / f"{name}.png"
    image = widget.grab()
    assert image.save(str(path))
    folder = os.environ.get("BUCKET_CHAT_GUI_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        image.save(str(Path(folder) / f"{name}.png"))
    return path


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 7 * 60_000
        return self.now


async def build_room(root: Path) -> LocalStorage:
    """Alice and Bob; Bob's laptop introduces his phone, which then writes."""
    storage = LocalStorage(root)
    clock = Clock()
    alice = RoomWriter(storage, ROOM, "alice@example.com", ALICE, displayname="Alice", clock=clock)
    bob = RoomWriter(storage, ROOM, "bob@example.com", BOB, displayname="Bob", clock=clock)
    await alice.write_metadata("Project Falcon", "2025-11-24T10:00:00.000Z")
    await alice.send([Draft.text("Morning! The new build is up.")])
    await bob.send([Draft.text("Checking it now.")])
    await bob.add_device(key_text(BOB_PHONE), device_name="Bob's phone")
    # Bob confirmed his laptop's key on the phone: its first send accepts the introduction.
    phone = RoomWriter(
        storage,
        ROOM,
        "bob@example.com",
        BOB_PHONE,
        displayname="Bob",
        clock=clock,
        confirmed={key_text(BOB)},
    )
    await phone.send([Draft.text("Now from my phone")])
    await alice.send([Draft.text("Shipping at 3pm then.")])
    return storage


def _shown(app: App, body: str) -> bool:
    """Whether the room's timeline shows a message with ``body``, read back (not an echo):
    the app's audit keeps no bodies, its timeline model reads them from the index."""
    model = app.controller.timeline(app.key)
    rows = (model.row(i) for i in range(model.rowCount()))
    return any(r.body == body and not r.echo for r in rows)


@dataclass
class App:
    controller: Controller
    window: MainWindow
    features: Features
    key: str
    store: Path

    @property
    def index(self) -> Index:
        return self.controller.client._storages[self.key.split("/")[0]].index


@pytest.fixture
def app(qtbot: Any, qloop: Any, home: Path, tmp_path: Path) -> Iterator[App]:
    store = tmp_path / "store"
    wait_for(qtbot, build_room(store))
    app = launch(qtbot, store)
    controller, entry_id, key = app.controller, app.key.split("/")[0], app.key

    def loaded() -> bool:
        attached = controller.client._storages.get(entry_id)
        room = attached.engine.rooms.get(ROOM) if attached else None
        return (
            controller.current == key
            and room is not None
            and room.complete
            and controller.result(key) is room.result
        )

    qtbot.waitUntil(loaded, timeout=15_000)
    yield app
    wait_for(qtbot, controller.shutdown())


def launch(qtbot: Any, store: Path) -> App:
    """The app of alice@example.com (this device's key ``ALICE``) on ``store``'s room
    ``ROOM``, started, its window shown at 1200 × 760."""
    entry = StorageSettings(str(store), "Team share", [ROOM])
    key = f"{entry.id}/{ROOM}"
    settings = Settings("alice@example.com", "Alice", [entry], last_room=key)
    controller = Controller(settings, Identity("alice@example.com", ALICE))
    window = MainWindow(controller)
    qtbot.addWidget(window)
    features = install(window, controller)
    window.resize(1200, 760)
    window.show()
    controller.start()
    return App(controller, window, features, key, store)


def open_panel(qtbot: Any, app: App) -> None:
    app.window.members_button.click()
    qtbot.waitUntil(lambda: app.window.side_panel.isVisible())
    panel = app.features.members_panel
    qtbot.waitUntil(lambda: len(panel.cards) == app.features.members_model.rowCount() > 0)


@pytest.fixture
def no_gui_fold(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every fold of a timeline into members or display names fails on the GUI thread
    (and is noted); the threads the folds ran on are returned. Requested before ``app``,
    so the room is opened under it."""
    threads: list[str] = []

    def guarded(real: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            here = threading.current_thread()
            threads.append(here.name)
            if here is threading.main_thread():
                raise AssertionError(f"{real.__qualname__} on the GUI thread")
            return real(*args, **kwargs)

        return run

    for owner, name in (
        (RoomState, "_add"),
        (RoomState, "of"),
        (DisplayNames, "add"),
        (DisplayNames, "update"),
        (Timeline, "senders"),
    ):
        real = getattr(owner, name)
        wrapped = guarded(real)
        monkeypatch.setattr(owner, name, classmethod(wrapped) if name == "of" else wrapped)
    return threads


def test_the_gui_thread_never_folds_a_timeline(
    qtbot: Any, no_gui_fold: list[str], app: App
) -> None:
    """The room's members, devices and display names are made on the engine's state
    thread (a ``Roster`` with each audit): opening a room with members and showing the
    panel, and a message and a newcomer arriving, fold nothing on the GUI thread (it
    froze ~80 ms per 100,000 events when a room was shown)."""
    open_panel(qtbot, app)
    model = app.features.members_model
    assert [m.display_name for m in model.members] == ["Alice", "Bob"]
    bob = model.member(1)
    assert {d.key for d in bob.devices} == {key_text(BOB), key_text(BOB_PHONE)}
    timeline = app.controller.timeline(app.key)
    shown = {
        timeline.index(i).data(Roles.Sender): timeline.index(i).data(Roles.DisplayName)
        for i in range(timeline.rowCount())
    }
    assert shown == {"alice@example.com": "Alice", "bob@example.com": "Bob"}
    assert app.controller.names(app.key).members() == [
        ("alice@example.com", "Alice"),
        ("bob@example.com", "Bob"),
    ]

    async def carol_joins() -> None:
        storage = LocalStorage(app.store)
        carol = RoomWriter(storage, ROOM, "carol@example.com", CAROL, displayname="Carol")
        await carol.send([Draft.text("Hi all, Carol here")])

    wait_for(qtbot, carol_joins())
    qtbot.waitUntil(lambda: model.row_of("carol@example.com") >= 0, timeout=20_000)
    assert model.member(model.row_of("carol@example.com")).display_name == "Carol"
    qtbot.waitUntil(lambda: _shown(app, "Hi all, Carol here"), timeout=20_000)
    names = [timeline.index(i).data(Roles.DisplayName) for i in range(timeline.rowCount())]
    assert names[-1] == "Carol"
    assert no_gui_fold and threading.main_thread().name not in no_gui_fold
    # the models have no way left to take a timeline
    assert not hasattr(model, "set_result") and not hasattr(model, "append")


def test_members_panel_lists_members_and_their_devices(
    qtbot: Any, app: App, tmp_path: Path
) -> None:
    open_panel(qtbot, app)
    window, features = app.window, app.features
    assert window.members_button.isChecked()
    assert window.side_panel.currentWidget() is features.members_panel
    model = features.members_model
    assert [m.display_name for m in model.members] == ["Alice", "Bob"]
    alice, bob = model.members
    assert alice.own and [d.key for d in alice.devices] == [key_text(ALICE)]
    assert {d.key for d in bob.devices} == {key_text(BOB), key_text(BOB_PHONE)}
    phone = next(d for d in bob.devices if d.key == key_text(BOB_PHONE))
    assert phone.introduced_by == key_text(BOB) and phone.name == "Bob's phone"
    assert all(d.state is DeviceState.VERIFIED for m in model.members for d in m.devices)
    assert phone.fingerprint == display_fingerprint(bytes(BOB_PHONE.verify_key))
    assert phone.first_seen > 0 and phone.last_seen >= phone.first_seen and phone.events == 2

    cards = features.members_panel.cards
    rows = [row for card in cards for row in card.device_rows]
    assert len(cards) == 2 and len(rows) == 3  # two people, three devices
    by_key = {row.device.key: row for row in rows}
    assert by_key[key_text(ALICE)].confirm_button is None  # this device: nothing to check
    assert by_key[key_text(BOB)].confirm_button is not None
    shown = by_key[key_text(BOB_PHONE)].fingerprint_label.text()
    assert shown == fingerprint_lines(display_fingerprint(bytes(BOB_PHONE.verify_key)))
    assert shown.split()[0] == phone.full_fingerprint[:4]
    shot(window, "members_panel", tmp_path)
    shot(features.members_panel, "members_panel_only", tmp_path)

    features.members_panel.close_requested.emit()  # the panel's ✕
    assert not window.members_button.isChecked()
    assert not window.side_panel.isVisible()


def test_mark_as_verified_asks_then_pins_the_key_in_the_index(
    qtbot: Any, app: App, tmp_path: Path
) -> None:
    open_panel(qtbot, app)
    features = app.features

    def row_for(key: str) -> Any:
        rows = [r for card in features.members_panel.cards for r in card.device_rows]
        return next(r for r in rows if r.device.key == key)

    # Cancel: nothing is written
    row_for(key_text(BOB_PHONE)).confirm_button.click()
    dialog = features.verify_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    expected = fingerprint_lines(display_fingerprint(bytes(BOB_PHONE.verify_key)))
    assert dialog.fingerprint.text() == expected
    assert not dialog.confirm_button.isDefault() and not dialog.cancel_button.isDefault()
    dialog.cancel_button.click()
    assert app.index.user_verified_keys() == set()

    # Confirm Bob's laptop
    row_for(key_text(BOB)).confirm_button.click()
    dialog = features.verify_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    shot(dialog, "verify_device_dialog", tmp_path)
    dialog.confirm_button.click()
    qtbot.waitUntil(lambda: app.index.user_verified_keys() == {("bob@example.com", key_text(BOB))})
    assert key_text(BOB) in app.index.pins(ROOM)["bob@example.com"]
    qtbot.waitUntil(lambda: row_for(key_text(BOB)).confirm_button is None)
    assert row_for(key_text(BOB)).device.state is DeviceState.CONFIRMED
    assert row_for(key_text(BOB_PHONE)).confirm_button is not None

    # it is in the database file, not only in memory
    path = app.index.path
    assert path is not None
    again = Index.open(path)
    try:
        assert again.user_verified_keys() == {("bob@example.com", key_text(BOB))}
    finally:
        again.close()
    shot(app.window, "members_panel_confirmed", tmp_path)


def test_confirmed_devices_get_the_confirmed_role_in_the_timeline(
    qtbot: Any, app: App, tmp_path: Path
) -> None:
    open_panel(qtbot, app)
    bob = app.features.members_model.member(1)
    laptop: Device = next(d for d in bob.devices if d.key == key_text(BOB))
    assert wait_for(qtbot, app.features.mark_verified(app.key, laptop))
    timeline = app.controller.timeline(app.key)
    confirmed = {
        timeline.index(i).data(Roles.SenderKey)
        for i in range(timeline.rowCount())
        if timeline.index(i).data(getattr(Roles, "Confirmed"))  # noqa: B009
    }
    assert confirmed == {key_text(BOB)}
    panel = app.features.members_panel

    def shown() -> bool:
        rows = [r for card in panel.cards for r in card.device_rows]
        return any(r.device.state is DeviceState.CONFIRMED for r in rows)

    qtbot.waitUntil(shown)
    shot(app.window, "timeline_confirmed", tmp_path)


def test_panel_follows_new_messages_and_members_as_they_arrive(
    qtbot: Any, app: App, tmp_path: Path
) -> None:
    open_panel(qtbot, app)
    model = app.features.members_model
    panel = app.features.members_panel
    alice_card, bob_card = panel.cards

    async def bob_writes() -> None:
        storage = LocalStorage(app.store)
        await RoomWriter(storage, ROOM, "bob@example.com", BOB).send([Draft.text("one more")])

    wait_for(qtbot, bob_writes())
    qtbot.waitUntil(lambda: panel.cards[1] is not bob_card, timeout=20_000)
    laptop = next(r.device for r in panel.cards[1].device_rows if r.device.key == key_text(BOB))
    assert laptop.events == 4
    assert panel.cards[0] is alice_card  # only the card that changed is redrawn
    shot(app.window, "members_panel_live", tmp_path)

    async def carol_joins() -> None:
        storage = LocalStorage(app.store)
        carol = RoomWriter(storage, ROOM, "carol@example.com", CAROL, displayname="Carol")
        await carol.send([Draft.text("Hi all, Carol here")])

    wait_for(qtbot, carol_joins())
    qtbot.waitUntil(lambda: model.row_of("carol@example.com") >= 0, timeout=20_000)
    carol = model.member(model.row_of("carol@example.com"))
    assert carol.display_name == "Carol" and len(carol.devices) == 1
    qtbot.waitUntil(lambda: len(app.features.members_panel.cards) == 3)


def test_hiding_and_showing_again_reloads_from_the_latest_audit(qtbot: Any, app: App) -> None:
    open_panel(qtbot, app)
    app.window.members_button.click()  # hide
    assert not app.window.side_panel.isVisible()
    app.features.members_model.set_state(None)  # stale while hidden
    app.window.members_button.click()  # show again
    assert app.window.side_panel.isVisible()
    assert app.features.members_model.rowCount() == 2


def test_confirming_an_unintroduced_key_makes_it_trusted(qtbot: Any, app: App) -> None:
    open_panel(qtbot, app)
    model = app.features.members_model
    new_key = SigningKey(b"\x05" * 32)

    async def carol_reinstalls() -> None:
        storage = LocalStorage(app.store)
        for key in (CAROL, new_key):  # the second install lost the first key
            writer = RoomWriter(storage, ROOM, "carol@example.com", key, displayname="Carol")
            await writer.send([Draft.text("hello")])

    wait_for(qtbot, carol_reinstalls())

    def carol_devices() -> dict[str, DeviceState]:
        row = model.row_of("carol@example.com")
        return {d.key: d.state for d in model.member(row).devices} if row >= 0 else {}

    qtbot.waitUntil(lambda: len(carol_devices()) == 2, timeout=20_000)
    assert carol_devices()[key_text(new_key)] is DeviceState.KEY_CHANGED
    assert any(f.kind.value == "key-changed" for f in app.controller.result(app.key).errors)
    carol = model.member(model.row_of("carol@example.com"))
    device = next(d for d in carol.devices if d.key == key_text(new_key))
    assert wait_for(qtbot, app.features.mark_verified(app.key, device))
    qtbot.waitUntil(lambda: not app.controller.result(app.key).errors, timeout=20_000)
    states = {a.event.sender_key: a.state.value for a in app.controller.result(app.key).timeline}
    assert states[key_text(new_key)] == "verified"
    assert carol_devices()[key_text(new_key)] is DeviceState.CONFIRMED


def test_an_introduction_is_accepted_only_after_the_person_confirms_the_introducer(
    qtbot: Any, app: App
) -> None:
    """A key claiming alice says it added this device (alice's). The app cannot tell her
    other device from someone who copied her public key: its next message accepts
    nothing and the status line says how to accept. Once she confirms that key's
    fingerprint in Members, her next message there accepts the introduction."""
    open_panel(qtbot, app)
    model = app.features.members_model
    other = SigningKey(b"\x06" * 32)

    async def other_device_introduces_this_one() -> None:
        storage = LocalStorage(app.store)
        writer = RoomWriter(storage, ROOM, "alice@example.com", other, displayname="Alice")
        await writer.send([Draft.text("from my tablet")])
        await writer.add_device(key_text(ALICE), device_name="Alice's desktop")

    wait_for(qtbot, other_device_introduces_this_one())

    def alice_devices() -> dict[str, DeviceState]:
        row = model.row_of("alice@example.com")
        return {d.key: d.state for d in model.member(row).devices} if row >= 0 else {}

    qtbot.waitUntil(lambda: key_text(other) in alice_devices(), timeout=20_000)
    assert alice_devices()[key_text(other)] is DeviceState.KEY_CHANGED

    def introduced() -> bool:  # the tablet's statement is read, not only its message
        timeline = app.controller.result(app.key).timeline
        return any(
            a.event.sender_key == key_text(other) and DEVICE_ADD_FIELD in a.event.content
            for a in timeline
        )

    qtbot.waitUntil(introduced, timeout=20_000)

    def sent_joins() -> list[dict[str, Any]]:
        timeline = app.controller.result(app.key).timeline
        return [
            a.event.content
            for a in timeline
            if a.event.sender_key == key_text(ALICE) and a.event.type == "m.room.member"
        ]

    def body_arrived(body: str) -> bool:
        return _shown(app, body)

    messages: list[str] = []  # every status-line message (each one shows for 15 s)
    app.window.statusBar().messageChanged.connect(messages.append)
    app.controller.send_text("before confirming")
    qtbot.waitUntil(lambda: body_arrived("before confirming"), timeout=20_000)
    offered = [m for m in messages if "says it added this device" in m]
    assert len(offered) == 1 and "nothing was accepted" in offered[0], messages
    assert not any("introduced_by" in c for c in sent_joins())

    alice = model.member(model.row_of("alice@example.com"))
    device = next(d for d in alice.devices if d.key == key_text(other))
    assert wait_for(qtbot, app.features.mark_verified(app.key, device))
    app.controller.send_text("after confirming")
    qtbot.waitUntil(lambda: body_arrived("after confirming"), timeout=20_000)
    assert [c.get("introduced_by") for c in sent_joins() if "introduced_by" in c] == [
        key_text(other)
    ]
    qtbot.waitUntil(lambda: not app.controller.result(app.key).errors, timeout=20_000)
    assert alice_devices()[key_text(other)] is DeviceState.CONFIRMED


def _fresh_reader_states(store: Path) -> dict[str, str]:
    """What a reader who confirmed nothing sees: body -> trust state, from the files."""
    from bucket_chat_desktop.protocol.audit import RoomLedger

    ledger = RoomLedger(ROOM)
    for path in sorted((store / "rooms" / ROOM / "logs").rglob("*.jsonl")):
        ledger.add_segment(str(path.relative_to(store)), path.read_bytes())
    return {
        str(a.event.content.get("body")): a.state.value
        for a in ledger.audit(None).timeline
        if a.event.content.get("body")
    }


def test_a_key_writing_as_you_is_asked_about_as_yours_and_warns_what_confirming_does(
    qtbot: Any, app: App, tmp_path: Path
) -> None:
    """An impostor key writes as alice (the user) and "introduces" her real key. The
    status line, her own card and the dialog spoke of another person ("Ask them whether
    it is theirs", "Is this really Alice?", "Contact Alice… ask them to read out their
    device's fingerprint") and never said what confirming does (red team rt64 F4). Now
    they ask whether it is another device of hers, send her to that device's key card
    (``bucket-chat show-key``), warn before she confirms that her next message accepts
    the key's introduction and everyone then trusts it as her, and "Not mine" is the
    default: Enter confirms nothing. Confirming does what the warning says."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel

    impostor = SigningKey(b"\x99" * 32)
    invoice = "new laptop, pay the invoice to account X"

    async def impostor_writes_as_alice() -> None:
        storage = LocalStorage(app.store)
        writer = RoomWriter(storage, ROOM, "alice@example.com", impostor, displayname="Alice")
        await writer.send([Draft.text(invoice)])
        await writer.add_device(key_text(ALICE), device_name="phone")

    wait_for(qtbot, impostor_writes_as_alice())

    def offered() -> bool:
        timeline = app.controller.result(app.key).timeline
        return any(
            a.event.sender_key == key_text(impostor) and DEVICE_ADD_FIELD in a.event.content
            for a in timeline
        )

    qtbot.waitUntil(offered, timeout=20_000)
    messages: list[str] = []
    app.window.statusBar().messageChanged.connect(messages.append)
    app.controller.send_text("still me")
    qtbot.waitUntil(lambda: _shown(app, "still me"), timeout=20_000)
    qtbot.waitUntil(lambda: any("added this device" in m for m in messages), timeout=20_000)
    status = next(m for m in messages if "added this device" in m)
    assert "nothing was accepted" in status
    assert "Compare on your card in Members" in status and "someone writes as you" in status
    shot(app.window, "own-key-status-line", tmp_path)

    open_panel(qtbot, app)
    own = next(c for c in app.features.members_panel.cards if c.member.own)
    bob = next(c for c in app.features.members_panel.cards if c.member.user_id.startswith("bob"))
    assert [r.explanation for r in bob.device_rows] == [None, None]  # others' as they were
    qtbot.waitUntil(
        lambda: any(
            r.device.key == key_text(impostor)
            for c in app.features.members_panel.cards
            if c.member.own
            for r in c.device_rows
        ),
        timeout=20_000,
    )
    own = next(c for c in app.features.members_panel.cards if c.member.own)
    row = next(r for r in own.device_rows if r.device.key == key_text(impostor))
    assert row.explanation is not None and row.confirm_button is not None
    card = row.explanation.text()
    assert "Is it another device of yours?" in card and "writing in your name" in card
    assert "Ask them" not in card and "their" not in card
    shot(app.window, "own-key-card", tmp_path)

    row.confirm_button.click()
    dialog = app.features.verify_dialog
    assert dialog is not None and dialog.yours
    qtbot.waitUntil(dialog.isVisible)
    shot(dialog, "own-key-dialog", tmp_path)
    text = " ".join(label.text() for label in dialog.findChildren(QLabel))
    assert "Is this another device of yours?" in text and "bucket-chat show-key" in text
    assert "your other device" in text and "Contact Alice" not in text
    assert dialog.warning_label is not None
    warning = dialog.warning_label.text()
    assert "accept that key's introduction" in warning and "everyone" in warning
    assert "someone is writing in your name" in warning and "do not confirm" in warning
    # the warning comes before the button that confirms, in reading order
    assert dialog.warning_label.geometry().bottom() < dialog.confirm_button.geometry().top()
    assert dialog.cancel_button.text() == "Not mine" and dialog.cancel_button.isDefault()
    assert not dialog.confirm_button.isDefault()

    # Enter is "Not mine": nothing is recorded, and the status line says what to do
    qtbot.keyClick(dialog, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not dialog.isVisible())
    assert app.index.user_verified_keys() == set()
    assert "someone is writing in your name" in app.window.statusBar().currentMessage()
    app.controller.send_text("not mine")
    qtbot.waitUntil(lambda: _shown(app, "not mine"), timeout=20_000)
    assert _fresh_reader_states(app.store)[invoice] != "verified"

    # Confirming does what the warning said: the next message accepts the introduction,
    # and a reader who confirmed nothing trusts the key as alice.
    pair = ("alice@example.com", key_text(impostor))
    row = next(
        r
        for c in app.features.members_panel.cards
        if c.member.own
        for r in c.device_rows
        if r.device.key == key_text(impostor)
    )
    assert row.confirm_button is not None
    row.confirm_button.click()
    dialog = app.features.verify_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    dialog.confirm_button.click()
    qtbot.waitUntil(lambda: pair in app.index.user_verified_keys(), timeout=20_000)
    app.controller.send_text("and again")
    qtbot.waitUntil(lambda: _shown(app, "and again"), timeout=20_000)
    assert _fresh_reader_states(app.store)[invoice] == "verified"


def test_many_keys_offering_to_introduce_this_device_make_one_status_message(
    qtbot: Any, app: App, tmp_path: Path
) -> None:
    """Two hundred keys claim alice and each says it added this device. Each offer was
    its own status-line message (the last one hid the rest, and a flood of thousands
    kept the line busy); now one message counts them, and nothing is accepted."""
    claimers = [SigningKey(bytes([7, i]) * 16) for i in range(200)]

    messages: list[str] = []
    app.window.statusBar().messageChanged.connect(messages.append)
    for n, claimer in enumerate(claimers):
        ev = build_event(
            room_id=ROOM,
            sender_id="alice@example.com",
            event_type=MEMBER,
            content={"membership": "join", "add_device_key": key_text(ALICE)},
            timestamp_ms=T0 + n,
            unique=f"00000000-0000-4000-8000-{n:012x}",
            prev_event_hash=None,
            signing_key=claimer,
        )
        client = client_id_for("alice@example.com", bytes(claimer.verify_key))
        path = app.store / path_for([ev], client)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_segment([ev]))

    def offers_read() -> int:
        timeline = app.controller.result(app.key).timeline
        return sum(a.event.content.get("add_device_key") == key_text(ALICE) for a in timeline)

    qtbot.waitUntil(lambda: offers_read() == 200, timeout=90_000)  # a bound on a hung test
    app.controller.send_text("still me")
    qtbot.waitUntil(lambda: _shown(app, "still me"), timeout=20_000)
    offers = [m for m in messages if "added this device" in m]
    assert len(offers) == 1, offers[:3]
    assert "200 device keys" in offers[0] and "nothing was accepted" in offers[0]
    shot(app.window, "introduction-flood-status", tmp_path)
    # where the message sends the user: their own card lists a bounded number of keys
    open_panel(qtbot, app)
    card = next(c for c in app.features.members_panel.cards if c.member.own)
    assert len(card.member.devices) == 201 and len(card.device_rows) == MAX_DEVICE_ROWS
    assert any(row.device.own for row in card.device_rows)
    assert card.more_label is not None and "171 more" in card.more_label.text()
    app.features.members_panel.view.verticalScrollBar().setValue(10**6)
    shot(app.window, "introduction-flood-members", tmp_path)


def test_a_person_claimed_by_thousands_of_keys_shows_a_bounded_card(qtbot: Any) -> None:
    """Anyone can make thousands of keys claim a person (a flood of introductions lands
    them all on the user's own card, where the status line sends the user). The card
    built one row per key: 2,000 took 17 s and 700 MB, again on each of their messages.
    Now it lists a bounded number, this device and the trusted ones first."""
    claims = [
        Device(
            "alice@example.com",
            key_text(SigningKey(bytes([9, n]) * 16)),
            DeviceState.DISPUTED,
            1,
            T0 + n,
            T0 + n,
            number=n + 2,
        )
        for n in range(200)
    ]
    own = Device("alice@example.com", key_text(ALICE), DeviceState.VERIFIED, 3, 1, 1, own=True)
    member = Member("alice@example.com", "Alice", (*claims, own), 1, T0, True, True)
    card = MemberCard(member)
    qtbot.addWidget(card)
    card.setFixedWidth(PANEL_WIDTH)
    assert len(card.device_rows) == MAX_DEVICE_ROWS
    assert card.device_rows[-1].device.own  # listed, though the oldest
    assert [r.device for r in card.device_rows[:-1]] == claims[: MAX_DEVICE_ROWS - 1]
    assert card.more_label is not None and "171 more device keys" in card.more_label.text()


MALLORY = SigningKey(b"\x66" * 32)


async def _room_where_mallory_names_others_keys(root: Path) -> None:
    """Alice and Bob write; Mallory (trusted as herself) names Alice's and Bob's public
    keys (public anywhere) as devices of hers, and Carol's before Carol ever writes."""
    storage = LocalStorage(root)
    clock = Clock()
    alice = RoomWriter(storage, ROOM, "alice@example.com", ALICE, displayname="Alice", clock=clock)
    bob = RoomWriter(storage, ROOM, "bob@example.com", BOB, displayname="Bob", clock=clock)
    mallory = RoomWriter(
        storage, ROOM, "mallory@example.com", MALLORY, displayname="Mallory", clock=clock
    )
    carol = RoomWriter(storage, ROOM, "carol@example.com", CAROL, displayname="Carol", clock=clock)
    await alice.send([Draft.text("Morning!")])
    await bob.send([Draft.text("hi all")])
    await mallory.send([Draft.text("hi")])
    await mallory.add_device(key_text(ALICE), device_name="laptop")
    await mallory.add_device(key_text(BOB), device_name="phone")
    await mallory.add_device(key_text(CAROL), device_name="tablet")
    await carol.send([Draft.text("carol here")])


def test_a_statement_naming_someone_elses_key_makes_no_device_of_theirs(
    qtbot: Any, qloop: Any, home: Path, tmp_path: Path
) -> None:
    """Red team rt64: Mallory's statement named alice's own public key, and her card in
    Members listed "This device" with alice's fingerprint, "Added by another of their
    devices"; the timeline said "Mallory added a device" and nothing more. This device is
    the user's id *and* key; a key this device holds, or one that writes as another id
    in the room (also when it writes after the statement), is said to be theirs on the
    card and in the timeline, never a device of Mallory's in good standing."""
    store = tmp_path / "store"
    wait_for(qtbot, _room_where_mallory_names_others_keys(store))
    app = launch(qtbot, store)
    controller, window, features, key = app.controller, app.window, app.features, app.key
    try:
        qtbot.waitUntil(lambda: _shown(app, "carol here"), timeout=20_000)
        open_panel(qtbot, app)
        panel = features.members_panel
        qtbot.waitUntil(
            lambda: any(
                r.title_label.text() == "Key of carol@example.com"
                for c in panel.cards
                for r in c.device_rows
            ),
            timeout=10_000,
        )
        shot(window, "statement-names-others-keys", tmp_path)
        panel.show_member(features.members_model.row_of("mallory@example.com"))
        qtbot.waitUntil(lambda: panel.view.viewport().isVisible())
        cards = {c.member.user_id: c for c in panel.cards}
        shot(panel, "statement-names-others-keys-card", tmp_path)
        rows = {r.device.key: r for r in cards["mallory@example.com"].device_rows}
        titles = [r.title_label.text() for r in rows.values()]
        assert "This device" not in titles
        assert not any(r.device.own for r in rows.values())
        expected = {
            key_text(ALICE): ("Your key, not theirs", "names your key"),
            key_text(BOB): ("Key of bob@example.com", "names the key of bob@example.com"),
            key_text(CAROL): ("Key of carol@example.com", "names the key of carol@example.com"),
        }
        for named, (title, says) in expected.items():
            row = rows[named]
            assert row.title_label.text() == title
            assert row.state_label.text() == "Not theirs"
            assert row.explanation is not None and says in row.explanation.text()
            assert row.confirm_button is None  # nothing of Mallory's to confirm
            details = " ".join(label.text() for label in row.findChildren(QLabel))
            assert "Added by another of their devices" not in details
            assert row.device.state is not DeviceState.VERIFIED
        # Mallory's own key is still hers; alice's own card still has "This device".
        assert rows[key_text(MALLORY)].device.state is DeviceState.VERIFIED
        mine = [r.title_label.text() for r in cards["alice@example.com"].device_rows]
        assert mine == ["This device"]
        model = controller.timeline(key)
        notices = [
            model.index(i).data(Roles.Body)
            for i in range(model.rowCount())
            if model.row(i).sender_id == "mallory@example.com" and model.row(i).type == MEMBER
        ]
        said = " | ".join(str(n) for n in notices)
        assert f"names your key as theirs (key {key_text(ALICE)[:12]}…)" in notices, said
        assert f"names bob@example.com's key as theirs (key {key_text(BOB)[:12]}…)" in notices
        assert f"names carol@example.com's key as theirs (key {key_text(CAROL)[:12]}…)" in (notices)
        assert not any("added a device" in str(n) for n in notices), said
        # The room list's preview of the newest row says it too (it said "added a device").
        wait_for(qtbot, _mallory_names_again(store, key_text(ALICE)))
        qtbot.waitUntil(lambda: "names your key" in _preview_of(controller, key), timeout=20_000)
        assert _preview_of(controller, key) == (
            f"mallory@example.com names your key as theirs (key {key_text(ALICE)[:12]}…)"
        )
    finally:
        wait_for(qtbot, controller.shutdown())


async def _mallory_names_again(root: Path, named: str) -> None:
    mallory = RoomWriter(LocalStorage(root), ROOM, "mallory@example.com", MALLORY)
    await mallory.add_device(named, device_name="desk")


def _preview_of(controller: Any, key: str) -> str:
    item = controller.rooms.item(key)
    return preview_line(item) if item is not None else ""


def _flood_of_statements(store: Path, count: int) -> None:
    """One segment of Mallory's verified joins, each naming another "device" (none
    accepted: a statement alone is enough): every other one a text that is no key."""
    events = []
    prev = None
    for i in range(count):
        named = key_text_of(i) if i % 2 else f"device-{i}"
        ev = build_event(
            room_id=ROOM,
            sender_id="mallory@example.com",
            event_type=MEMBER,
            content={"membership": "join", DEVICE_ADD_FIELD: named},
            timestamp_ms=T0 + 3_600_000 + i,
            unique=f"0000{i:04x}-0000-4000-8000-{i:012x}",
            prev_event_hash=prev,
            signing_key=MALLORY,
        )
        prev = ev.hash
        events.append(ev)
    path = store / path_for(events, "mallory-flood")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_segment(events))


def key_text_of(n: int) -> str:
    return b64encode(n.to_bytes(4, "big") * 8)


def test_a_flood_of_statements_lists_a_few_devices_and_remakes_only_who_changed(
    qtbot: Any, qloop: Any, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt64: one key signed 100,000 joins each naming a "device" (any text).
    The fold listed every one as a device of Mallory's, and with Members open each
    message that arrived from anyone made every member's devices again and compared them
    on the GUI thread (half a second a message). Texts that are no key name no device; a
    member's statements alone list at most ``STATEMENT_DEVICES``, the rest counted; and a
    message makes only its sender's member again. Counted (``Device.of``), not timed."""
    from bucket_chat_desktop.protocol.room_state import STATEMENT_DEVICES

    store = tmp_path / "store"

    async def first() -> None:
        storage = LocalStorage(store)
        alice = RoomWriter(storage, ROOM, "alice@example.com", ALICE, displayname="Alice")
        await alice.send([Draft.text("Morning!")])

    wait_for(qtbot, first())
    flood = 2_000
    _flood_of_statements(store, flood)
    app = launch(qtbot, store)
    controller, features = app.controller, app.features
    try:
        qtbot.waitUntil(lambda: _shown(app, "Morning!"), timeout=20_000)
        model = features.members_model
        open_panel(qtbot, app)
        qtbot.waitUntil(
            lambda: any(m.user_id == "mallory@example.com" for m in model.members),
            timeout=20_000,
        )
        mallory = next(m for m in model.members if m.user_id == "mallory@example.com")
        keys = [d.key for d in mallory.devices]
        assert len(keys) == 1 + STATEMENT_DEVICES, len(keys)  # her own key, and the cap
        assert all(key_bytes(k) is not None for k in keys)  # "device-3" names nothing
        assert mallory.unlisted == flood // 2 - STATEMENT_DEVICES
        card = next(c for c in features.members_panel.cards if c.member.user_id == mallory.user_id)
        assert card.unlisted_label is not None
        assert f"{flood // 2 - STATEMENT_DEVICES:,} more named by statements alone" in (
            card.unlisted_label.text()
        )
        bar = features.members_panel.view.verticalScrollBar()
        bar.setValue(bar.maximum())  # the end of Mallory's card: what is not listed
        shot(features.members_panel, "statement-flood-card", tmp_path)

        made: list[str] = []
        of = Device.of

        def counted(user_id: str, *args: Any) -> Device:
            made.append(user_id)
            return of(user_id, *args)

        monkeypatch.setattr(Device, "of", staticmethod(counted))
        carol = build_event(
            room_id=ROOM,
            sender_id="carol@example.com",
            event_type=MEMBER,
            content={"membership": "join", "displayname": "Carol"},
            timestamp_ms=int(time.time() * 1000),
            unique="cccc0001-0000-4000-8000-000000000001",
            prev_event_hash=None,
            signing_key=CAROL,
        )
        (store / path_for([carol], "carol")).write_bytes(encode_segment([carol]))
        qtbot.waitUntil(
            lambda: any(m.user_id == "carol@example.com" for m in model.members),
            timeout=20_000,
        )
        qtbot.wait(200)
        # Carol's one device, not Mallory's (nor Alice's) again.
        assert "mallory@example.com" not in made and len(made) <= 3, len(made)
    finally:
        wait_for(qtbot, controller.shutdown())
