"""The audit dialog in the real window: the same audit as ``bucket-chat verify`` — counts,
metadata, every finding with its object and line — for clean and tampered rooms."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from nacl.signing import SigningKey
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

from bucket_chat_desktop.gui.audit.dialog import AuditDialog
from bucket_chat_desktop.gui.audit.explanations import EXPLANATIONS
from bucket_chat_desktop.gui.audit.findings_model import Column
from bucket_chat_desktop.gui.audit.view import AuditView, report_text
from bucket_chat_desktop.gui.controller import Controller
from bucket_chat_desktop.gui.features import Features, install
from bucket_chat_desktop.gui.main_window import MainWindow
from bucket_chat_desktop.keys.identity import Identity
from bucket_chat_desktop.protocol.audit import AuditResult, RoomLedger, Timeline, TrustState
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.findings import Finding, Kind
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.room_objects import read_metadata
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "falcon"
ALICE = SigningKey(b"\x01" * 32)
BOB = SigningKey(b"\x02" * 32)
BOB_PHONE = SigningKey(b"\x04" * 32)
T0 = 1_764_000_000_000
EDITED = "Checking it now."


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
    storage = LocalStorage(root)
    clock = Clock()
    alice = RoomWriter(storage, ROOM, "alice@example.com", ALICE, displayname="Alice", clock=clock)
    bob = RoomWriter(storage, ROOM, "bob@example.com", BOB, displayname="Bob", clock=clock)
    await alice.write_metadata("Project Falcon", "2025-11-24T10:00:00.000Z")
    await alice.send([Draft.text("Morning! The new build is up.")])
    await bob.send([Draft.text(EDITED)])
    await bob.add_device(b64encode(bytes(BOB_PHONE.verify_key)), device_name="Bob's phone")
    phone = RoomWriter(  # Bob confirmed his laptop's key on the phone
        storage,
        ROOM,
        "bob@example.com",
        BOB_PHONE,
        displayname="Bob",
        clock=clock,
        confirmed={b64encode(bytes(BOB.verify_key))},
    )
    await phone.send([Draft.text("Now from my phone")])
    await alice.send([Draft.text("Shipping at 3pm then.")])
    return storage


def tamper(store: Path) -> tuple[str, int]:
    """Change the text of Bob's first message in its segment; returns (object path, line)."""
    for file in sorted((store / "rooms" / ROOM / "logs").rglob("*.jsonl")):
        lines = file.read_text("utf-8").splitlines(keepends=True)
        for n, line in enumerate(lines, 1):
            if EDITED in line:
                lines[n - 1] = line.replace(EDITED, "Deleting it now.")
                file.write_text("".join(lines), "utf-8")
                return file.relative_to(store).as_posix(), n
    raise AssertionError("message not found")


async def audit_directly(store: Path) -> tuple[AuditResult, list[Finding]]:
    """What the protocol code says, read straight from the folder."""
    storage = LocalStorage(store)
    ledger = RoomLedger(ROOM)
    for item in await storage.list_objects(f"rooms/{ROOM}/logs/"):
        ledger.add_segment(item.path, await storage.get(item.path))
    _, metadata_findings = await read_metadata(storage, ROOM)
    # The app runs as alice: her device pins its own key (a second key is then "key
    # changed" for her, where an outsider without pins sees a conflict).
    own = {"alice@example.com": {b64encode(bytes(ALICE.verify_key))}}
    return ledger.audit(own), metadata_findings


@dataclass
class App:
    controller: Controller
    window: MainWindow
    features: Features
    key: str
    store: Path
    tampered: tuple[str, int] | None

    def dialog(self, qtbot: Any) -> AuditDialog:
        """The audit dialog, once it shows (it opens when the client's snapshot of the room
        arrives from the engine's worker)."""
        qtbot.waitUntil(
            lambda: (
                self.features.audit_dialog is not None and self.features.audit_dialog.isVisible()
            )
        )
        dialog = self.features.audit_dialog
        assert dialog is not None
        return dialog


@pytest.fixture
def make_app(qtbot: Any, qloop: Any, home: Path, tmp_path: Path) -> Iterator[Callable[..., App]]:
    controllers: list[Controller] = []

    def make(*, tampered: bool) -> App:
        store = tmp_path / "store"
        wait_for(qtbot, build_room(store))
        where = tamper(store) if tampered else None
        entry = StorageSettings(str(store), "Team share", [ROOM])
        key = f"{entry.id}/{ROOM}"
        settings = Settings("alice@example.com", "Alice", [entry], last_room=key)
        controller = Controller(settings, Identity("alice@example.com", ALICE))
        controllers.append(controller)
        window = MainWindow(controller)
        qtbot.addWidget(window)
        features = install(window, controller)
        window.resize(1100, 700)
        window.show()
        controller.start()

        def loaded() -> bool:
            attached = controller.client._storages.get(entry.id)
            room = attached.engine.rooms.get(ROOM) if attached else None
            # the GUI holds the engine's final audit (not only the engine)
            return room is not None and room.complete and controller.result(key) is room.result

        qtbot.waitUntil(loaded, timeout=15_000)
        return App(controller, window, features, key, store, where)

    yield make
    for controller in controllers:
        wait_for(qtbot, controller.shutdown())


def table_rows(dialog: AuditDialog) -> list[dict[Column, str]]:
    shown = dialog.table.model()
    return [
        {col: str(shown.index(r, col).data()) for col in Column} for r in range(shown.rowCount())
    ]


def cli_verify(store: Path) -> subprocess.CompletedProcess[str]:
    """``verify``'s output with its lines whole (as on a terminal wide enough: the
    copied report is never cut into rows, ``format.fit``)."""
    cmd = [sys.executable, "-m", "bucket_chat_desktop.cli", "-s", str(store)]
    env = {**os.environ, "COLUMNS": "100000"}
    return subprocess.run(
        [*cmd, "verify", "--room-id", ROOM], capture_output=True, text=True, timeout=60, env=env
    )


def test_tampered_room_shows_its_findings_with_file_and_line(
    qtbot: Any, make_app: Callable[..., App], tmp_path: Path
) -> None:
    app = make_app(tampered=True)
    assert app.tampered is not None
    path, line = app.tampered
    expected, metadata_findings = wait_for(qtbot, audit_directly(app.store))
    assert not metadata_findings

    app.window.audit_button.click()
    dialog = app.dialog(qtbot)
    # counts: what RoomLedger.audit says
    shown = {
        state: int(tile.number.text().replace(",", "")) for state, tile in dialog.tiles.items()
    }
    assert shown == expected.counts
    assert expected.counts[TrustState.INVALID] == 1
    assert "1 problem" not in dialog.headline.text()
    assert f"{len(expected.errors)} problems" in dialog.headline.text()
    # findings: each one, with object path and line, kind and event id
    rows = table_rows(dialog)
    want = [
        {
            Column.SEVERITY: "Error",
            Column.KIND: f.kind.value,
            Column.EXPLANATION: EXPLANATIONS[f.kind].title,
            Column.WHERE: f.where(),
            Column.EVENT: f.event_id or "—",
        }
        for f in expected.findings
    ]
    assert rows == want
    kinds = [r[Column.KIND] for r in rows]
    # the edit breaks the chain link of bob's device statement, so his phone is no longer
    # introduced: two keys claim bob (a conflict)
    assert kinds[0] == "invalid-signature" and {"gap", "key-conflict"} <= set(kinds)
    assert rows[0][Column.WHERE] == f"{path}:{line}"
    # the detail of the selected finding explains it in plain words
    detail = dialog.detail.toPlainText()
    assert "Bad signature" in detail and "What to do" in detail
    assert path in detail and f"line {line}" in detail
    assert "Complete" in dialog.history.text()
    assert "signed by alice@example.com" in dialog.metadata_label.text()
    shot(dialog, "audit_dialog_tampered", tmp_path)

    # the filter by severity
    dialog.filter.setCurrentIndex(dialog.filter.findData("notice"))
    assert dialog.table.model().rowCount() == 0
    assert "Nothing of this kind" in dialog.detail.toPlainText()
    dialog.filter.setCurrentIndex(dialog.filter.findData("error"))
    assert dialog.table.model().rowCount() == len(expected.errors)
    dialog.table.selectRow(1)
    assert "Missing link in the chain" in dialog.detail.toPlainText()
    assert dialog.view is not None
    dialog.set_view(dialog.view)  # a refresh (new messages) keeps what is being read
    assert dialog.table.currentIndex().row() == 1
    assert dialog.filter.currentData() == "error"
    assert "Missing link in the chain" in dialog.detail.toPlainText()


def test_the_banner_opens_the_audit_and_the_report_is_the_cli_output(
    qtbot: Any, make_app: Callable[..., App]
) -> None:
    app = make_app(tampered=True)
    assert app.window.banner.isVisible()
    app.window.banner_button.click()
    dialog = app.dialog(qtbot)
    dialog.copy_button.click()
    copied = QGuiApplication.clipboard().text()
    cli = cli_verify(app.store)
    assert cli.returncode == 1, cli.stderr
    assert copied == cli.stdout
    assert "NOT CLEAN: 3 finding(s) need attention." in copied
    assert "copied" in dialog.copied.text()


def test_clean_room(qtbot: Any, make_app: Callable[..., App], tmp_path: Path) -> None:
    app = make_app(tampered=False)
    expected, _ = wait_for(qtbot, audit_directly(app.store))
    assert not app.window.banner.isVisible()
    app.window.audit_button.click()
    dialog = app.dialog(qtbot)
    assert dialog.headline.text() == "History verified"
    assert not dialog.table.isVisible()
    assert "No findings" in dialog.detail.toPlainText()
    shown = {state: int(tile.number.text()) for state, tile in dialog.tiles.items()}
    assert (
        shown
        == expected.counts
        == {
            TrustState.VERIFIED: 8,
            TrustState.UNVERIFIED: 0,
            TrustState.KEY_CHANGED: 0,
            TrustState.INVALID: 0,
        }
    )
    text = dialog.checked.text()
    assert "Ed25519" in text and "chain link" in text and "SHA-256" in text
    shot(dialog, "audit_dialog_clean", tmp_path)
    dialog.copy_button.click()
    cli = cli_verify(app.store)
    assert cli.returncode == 0, cli.stderr
    assert QGuiApplication.clipboard().text() == cli.stdout

    # the open dialog follows new messages
    async def bob_writes() -> None:
        storage = LocalStorage(app.store)
        await RoomWriter(storage, ROOM, "bob@example.com", BOB).send([Draft.text("still here")])

    wait_for(qtbot, bob_writes())
    verified = dialog.tiles[TrustState.VERIFIED].number
    qtbot.waitUntil(lambda: verified.text() == "9", timeout=20_000)
    assert dialog.headline.text() == "History verified"


def test_still_loading_older_history(
    qtbot: Any, make_app: Callable[..., App], tmp_path: Path
) -> None:
    app = make_app(tampered=False)
    storage_id = app.key.split("/")[0]
    room = app.controller.client._storages[storage_id].engine.rooms[ROOM]
    # what the engine says while it back-fills: the view its state thread publishes
    assert room.view is not None
    room.view = dataclasses.replace(room.view, complete=False)
    app.window.audit_button.click()
    dialog = app.dialog(qtbot)
    assert "Still loading older history" in dialog.history.text()
    assert dialog.headline.text() == "No problems so far"
    assert dialog.view is not None
    assert "(still loading older history" in report_text(dialog.view)
    # a new audit while the dialog is open refreshes it
    room.view = dataclasses.replace(room.view, complete=True)
    app.controller.room_audit_changed.emit(app.key)
    qtbot.waitUntil(lambda: "Complete" in dialog.history.text())
    assert dialog.headline.text() == "History verified"


def test_a_history_not_completely_read_never_says_complete(qtbot: Any, tmp_path: Path) -> None:
    """A FIFO, a link, an oversized or vanished segment: the banner said the history could
    not be read completely while the dialog said "Complete: the whole history was read"
    and "Every line of N segment(s) parsed strictly" (found by planting a FIFO)."""
    unread = Finding(
        Kind.SEGMENT_UNREADABLE,
        "this segment could not be read (not a regular file: FIFO); its events are missing",
        "rooms/x/logs/2026-01-01/c/a.jsonl",
    )
    result = AuditResult(ROOM, Timeline.empty(), [], [unread], 3)
    dialog = AuditDialog()
    qtbot.addWidget(dialog)
    dialog.set_view(AuditView(ROOM, result, None, (), complete=True, partial=True))
    assert "Not completely read" in dialog.history.text()
    assert "Complete" not in dialog.history.text()
    assert "Some segments could not be read" in dialog.checked.text()
    assert dialog.headline.text() != "History verified"
    shot(dialog, "audit_dialog_partial", tmp_path)


def test_metadata_findings_come_first_like_verify(qtbot: Any, qapp: Any, tmp_path: Path) -> None:
    result = AuditResult(
        ROOM, Timeline.empty(), [], [Finding(Kind.GAP, "gap: …", "rooms/x/logs/a.jsonl", 3)], 1
    )
    missing = Finding(Kind.METADATA_MISSING, "room has no metadata.json", "rooms/x/metadata.json")
    view = AuditView(ROOM, result, None, (missing,), complete=False)
    dialog = AuditDialog()
    qtbot.addWidget(dialog)
    dialog.set_view(view)
    rows = table_rows(dialog)
    assert [r[Column.KIND] for r in rows] == ["metadata-missing", "gap"]
    assert [r[Column.SEVERITY] for r in rows] == ["Notice", "Error"]
    assert "no metadata.json" in dialog.metadata_label.text()
    text = report_text(view)
    assert text.splitlines()[0] == f"Room {ROOM}: {ROOM} (no metadata)"
    assert "  NOTICE metadata-missing       rooms/x/metadata.json" in text
    assert text.endswith("NOT CLEAN: 1 finding(s) need attention.\n")


def test_metadata_that_could_not_be_read_is_not_called_missing(
    qtbot: Any, qapp: Any, tmp_path: Path
) -> None:
    """Refused or changing while read: the room has metadata this device could not read
    (red team rt52: titled "(no metadata)", as a room without any)."""
    result = AuditResult(ROOM, Timeline.empty(), [], [], 1)
    unread = Finding(
        Kind.UNREAD, "metadata.json could not be read (…)", f"rooms/{ROOM}/metadata.json"
    )
    view = AuditView(ROOM, result, None, (unread,), complete=False)
    dialog = AuditDialog()
    qtbot.addWidget(dialog)
    dialog.set_view(view)
    assert "metadata.json could not be read (see findings)" in dialog.metadata_label.text()
    first = report_text(view).splitlines()[0]
    assert (
        first
        == f"Room {ROOM}: {ROOM} (its metadata.json could not be used: name and creator unknown)"
    )


def test_forged_metadata_is_not_called_unsigned(qtbot: Any, qloop: Any, tmp_path: Path) -> None:
    """Metadata renamed after it was signed: the dialog said "unsigned (bad signature)",
    as if no signature had been written. It says the signature is invalid, and why."""
    storage = wait_for(qtbot, build_room(tmp_path))
    path = tmp_path / "rooms" / ROOM / "metadata.json"
    path.write_bytes(path.read_bytes().replace(b"Project Falcon", b"Payroll"))
    metadata, findings = wait_for(qtbot, read_metadata(storage, ROOM))
    assert metadata is not None and [f.kind for f in findings] == [Kind.METADATA_INVALID]
    result = AuditResult(ROOM, Timeline.empty(), [], [], 1)
    view = AuditView(ROOM, result, metadata, tuple(findings), complete=True)
    dialog = AuditDialog()
    qtbot.addWidget(dialog)
    dialog.set_view(view)
    label = dialog.metadata_label.text()
    assert "Payroll" in label and "unsigned" not in label
    assert "signature invalid: it does not match the metadata" in label
    assert report_text(view).splitlines()[0] == f"Room {ROOM}: Payroll ({view.signer_phrase})"
    shot(dialog, "audit_dialog_forged_metadata", tmp_path)


def test_metadata_rewritten_since_it_was_read_says_so_beside_the_name(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    """The name and creator shown are those read first; beside them, ✔ signed: the
    header alone read as if all were well with the metadata, the change only in the list
    below."""
    from bucket_chat_desktop.protocol.metadata import changed_finding

    storage = wait_for(qtbot, build_room(tmp_path))
    kept, _ = wait_for(qtbot, read_metadata(storage, ROOM))
    assert kept is not None
    change = changed_finding(kept, None, [Finding(Kind.METADATA_MISSING, "gone", None)])
    result = AuditResult(ROOM, Timeline.empty(), [], [], 1)
    dialog = AuditDialog()
    qtbot.addWidget(dialog)
    dialog.set_view(AuditView(ROOM, result, kept, (change,), complete=True))
    label = dialog.metadata_label.text()
    assert "Project Falcon" in label
    assert "metadata.json was rewritten or removed since this device read it" in label
    assert [r[Column.KIND] for r in table_rows(dialog)] == ["metadata-changed"]
    shot(dialog, "audit_dialog_metadata_changed", tmp_path)


def test_every_kind_of_finding_is_explained() -> None:
    assert set(EXPLANATIONS) == set(Kind)
    for explanation in EXPLANATIONS.values():
        assert explanation.title and explanation.meaning and explanation.action


def test_a_creator_id_alike_a_members_is_marked_beside_the_name(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    """Red team: ``aIice@example.com`` (capital I) signed the room's metadata while the
    real alice writes there. The dialog checked the creator id alone (plain ASCII: no
    mark); it is checked against the room's senders, as the rows are."""
    from bucket_chat_desktop.protocol.metadata import build_metadata, parse_metadata
    from bucket_chat_desktop.protocol.untrusted_text import RoomIds

    fake = "aIice@example.com"
    raw = build_metadata(
        room_id=ROOM,
        name="Payments",
        created_at="2026-06-01T00:00:00.000Z",
        creator_id=fake,
        signing_key=SigningKey(b"\x0d" * 32),
    )
    metadata, _ = parse_metadata(raw, ROOM, f"rooms/{ROOM}/metadata.json")
    assert metadata is not None
    ids = RoomIds()
    ids.update([fake, "alice@example.com"])
    result = AuditResult(ROOM, Timeline.empty(), [], [], 1)
    dialog = AuditDialog()
    qtbot.addWidget(dialog)
    alone = AuditView(ROOM, result, metadata, (), complete=True)
    dialog.set_view(alone)
    assert "⚠" not in dialog.metadata_label.text()  # alone, nothing in it is suspect
    dialog.set_view(dataclasses.replace(alone, ids=ids.sealed_copy()))
    label = dialog.metadata_label.text()
    assert "⚠" in label and "looks like alice@example.com" in label
    assert "LATIN CAPITAL LETTER I" in label
    shot(dialog, "audit_dialog_lookalike_creator", tmp_path)
