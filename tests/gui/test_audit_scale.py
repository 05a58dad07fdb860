"""The audit window with tens of thousands of findings (red team rt68): a member, or the
storage provider, writes segments full of broken lines, one finding each.

The findings table sorted through a ``QSortFilterProxyModel``: a click on a column header
compared rows through the Python model's ``data`` (about 2·n·log n calls: 100,000
findings froze the window ~17 s), and every refresh of the open dialog
(``Features._refresh_audit``: at most every 300 ms while messages arrive, and at every new
audit) reset the model, so the proxy sorted it all again, and the selected finding was
looked for row by row in Python. The model now sorts and filters its rows itself, with
keys made once per finding, and a refresh with the same findings changes nothing.
Counted here as Python function calls (``sys.setprofile``), never as seconds
(``benchmarks`` are for seconds).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from nacl.signing import SigningKey
from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel

from bucket_chat_desktop.gui.audit import findings_model
from bucket_chat_desktop.gui.audit.dialog import AuditDialog
from bucket_chat_desktop.gui.audit.findings_model import Column, FindingRoles
from bucket_chat_desktop.gui.audit.view import AuditView
from bucket_chat_desktop.gui.controller import Controller
from bucket_chat_desktop.gui.features import Features, install
from bucket_chat_desktop.gui.main_window import MainWindow
from bucket_chat_desktop.keys.identity import Identity
from bucket_chat_desktop.protocol.audit import AuditResult, RoomLedger, Timeline
from bucket_chat_desktop.protocol.findings import Finding, Kind
from bucket_chat_desktop.protocol.ids import segment_path
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "falcon"
ALICE = SigningKey(b"\x01" * 32)
T0 = 1_764_000_000_000
SEGMENTS = 20
BAD_PER_SEGMENT = 1_000  # segment.MAX_BAD_LINES: each one reported
N = SEGMENTS * BAD_PER_SEGMENT  # broken lines planted: one finding each


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 60_000
        return self.now


async def build_room(root: Path) -> LocalStorage:
    """A room with a few good messages, and ``SEGMENTS`` segments of mallory's device
    holding ``BAD_PER_SEGMENT`` lines that are not JSON each (under the cap of bad lines
    one segment may report, ``segment.MAX_BAD_LINES``): one finding ("bad-json") per line,
    ``N`` in all."""
    storage = LocalStorage(root)
    clock = Clock()
    alice = RoomWriter(storage, ROOM, "alice@example.com", ALICE, displayname="Alice", clock=clock)
    await alice.write_metadata("Project Falcon", "2025-11-24T10:00:00.000Z")
    await alice.send([Draft.text("Morning!")])
    junk = b"".join(b"{not json %d\n" % i for i in range(BAD_PER_SEGMENT))
    for n in range(SEGMENTS):
        ts = T0 + n * 1000
        seg = root / segment_path(ROOM, ts, ts + 1, f"mallory{n}")
        seg.parent.mkdir(parents=True, exist_ok=True)
        seg.write_bytes(junk)
    return storage


def python_calls(fn: Callable[[], Any]) -> int:
    """Python function calls made while ``fn`` runs (C++ calling into Python included)."""
    count = 0

    def prof(_frame: Any, event: str, _arg: Any) -> None:
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def ledger_view(root: Path) -> AuditView:
    """The room's audit as the protocol code makes it, straight from the folder."""

    async def audit() -> AuditView:
        storage = LocalStorage(root)
        ledger = RoomLedger(ROOM)
        for item in await storage.list_objects(f"rooms/{ROOM}/logs/"):
            ledger.add_segment(item.path, await storage.get(item.path))
        return AuditView(ROOM, ledger.audit({}))

    import asyncio

    return asyncio.run(audit())


@pytest.fixture
def flooded_view(tmp_path: Path) -> AuditView:
    import asyncio

    asyncio.run(build_room(tmp_path / "store"))
    view = ledger_view(tmp_path / "store")
    assert len(view.findings) >= N
    return view


def test_sorting_a_flooded_findings_table_is_not_n_log_n_python_calls(
    qtbot: Any, flooded_view: AuditView
) -> None:
    """Red team rt68: a click on the "Where" header of 20,000 findings compared rows
    through the Python model (~2·n·log n ``data`` calls): 100,000 findings froze the
    window ~16 s on one click."""
    dialog = AuditDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.set_view(flooded_view)
    n = len(flooded_view.findings)
    calls = python_calls(
        lambda: dialog.table.sortByColumn(Column.WHERE, Qt.SortOrder.AscendingOrder)
    )
    # sorted, as asked
    first = dialog.table.model().index(0, Column.WHERE).data()
    assert isinstance(first, str)
    assert calls <= 20 * n, f"{calls:,} Python calls to sort {n:,} findings"


def test_a_refresh_of_a_sorted_audit_does_not_sort_it_all_again(
    qtbot: Any, flooded_view: AuditView
) -> None:
    """Red team rt68: the open dialog is refreshed whenever messages arrive (every 300 ms
    at most) or the room is audited again, with the same findings: each refresh reset the
    model and the proxy sorted all of them again in Python. 100,000 findings: ~17 s per
    refresh, one every 300 ms for as long as the room is active."""
    dialog = AuditDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.set_view(flooded_view)
    dialog.table.sortByColumn(Column.KIND, Qt.SortOrder.AscendingOrder)
    n = len(flooded_view.findings)
    calls = python_calls(lambda: dialog.set_view(flooded_view))
    assert dialog.table.model().rowCount() == n
    assert calls <= 20 * n, f"{calls:,} Python calls for one refresh of {n:,} findings"


def test_a_refresh_does_not_walk_every_finding_to_keep_the_selection(
    qtbot: Any, flooded_view: AuditView
) -> None:
    """Red team rt68: reading the last finding (unsorted, "All"), each refresh looked for
    it again row by row through the proxy and the Python model (``AuditDialog.set_view``),
    one ``data`` call per finding before it. 100,000 findings: ~1.2 s per refresh, every
    300 ms while messages arrive. The same refresh reading the first finding is the
    measure."""
    dialog = AuditDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.set_view(flooded_view)
    n = len(flooded_view.findings)
    dialog.table.selectRow(0)  # the same refresh, reading the first finding
    first = python_calls(lambda: dialog.set_view(flooded_view))
    dialog.table.selectRow(n - 1)
    selected = dialog._selected()
    assert selected is not None
    calls = python_calls(lambda: dialog.set_view(flooded_view))
    assert dialog._selected() == selected  # the refresh kept what is being read
    # keeping the selection may cost a little, not a walk of every finding before it
    assert calls - first <= 5_000, (
        f"{calls:,} Python calls for one refresh of {n:,} findings reading the last one, "
        f"{first:,} reading the first"
    )


# -- what the table shows is what the proxy showed ----------------------------------------


def _finding(i: int, kind: Kind, path: str | None, line: int | None, event: str | None) -> Finding:
    return Finding(kind, f"finding {i}", path, line, event)


SAMPLE = [  # ties, "x:10" before "x:9" (text, as before), one path outside the BMP
    _finding(0, Kind.BAD_JSON, "rooms/r/logs/a.jsonl", 9, None),
    _finding(1, Kind.GAP, "rooms/r/logs/a.jsonl", 10, "ev-b"),
    _finding(2, Kind.UNREAD, "rooms/r/logs/b.jsonl", None, None),
    _finding(3, Kind.BAD_JSON, "rooms/r/logs/a.jsonl", 9, None),  # equal to the first
    _finding(4, Kind.INVALID_SIGNATURE, "rooms/r/logs/\U0001d538.jsonl", 1, "ev-a"),
    _finding(5, Kind.SEGMENT_UNREADABLE, "rooms/r/logs/\uff21.jsonl", None, None),
    _finding(6, Kind.METADATA_UNSIGNED, None, None, None),
    _finding(7, Kind.KEY_CHANGED, "rooms/r/logs/c.jsonl", 2, "ev-a"),
]
MORE = [
    _finding(8, Kind.GAP, "rooms/r/logs/a.jsonl", 10, "ev-b"),
    _finding(9, Kind.READ_STOPPED, "rooms/r/logs/0.jsonl", None, None),
]


def audit_of(findings: list[Finding]) -> AuditView:
    return AuditView(ROOM, AuditResult(ROOM, Timeline.empty(), [], findings, 1))


def as_proxied(
    findings: list[Finding], column: int, order: Qt.SortOrder, severity: str
) -> list[str]:
    """The rows as a ``QSortFilterProxyModel`` over the table's texts showed them (the
    dialog's table before red team rt68), each row named by its message."""
    texts = QStandardItemModel()
    for f in findings:
        cells = []
        for col in Column:
            cell = QStandardItem()
            cell.setData(findings_model._text(col, f), Qt.ItemDataRole.DisplayRole)
            cell.setData(f.severity.value, FindingRoles.Severity)
            cell.setData(f.message, Qt.ItemDataRole.UserRole)
            cells.append(cell)
        texts.appendRow(cells)
    proxy = QSortFilterProxyModel()
    proxy.setSourceModel(texts)
    proxy.setFilterRole(FindingRoles.Severity)
    proxy.setFilterFixedString(severity)
    proxy.sort(column, order)
    # as after a refresh (each one reset the model): ties in the reported order, in both
    # orders (a click sorted the order shown before it: ties depended on the clicks)
    proxy.invalidate()
    return [proxy.index(r, 0).data(Qt.ItemDataRole.UserRole) for r in range(proxy.rowCount())]


def shown(dialog: AuditDialog) -> list[str]:
    model = dialog.table.model()
    return [model.index(r, 0).data(FindingRoles.Finding).message for r in range(model.rowCount())]


def test_the_table_sorts_and_filters_as_the_proxy_did(qtbot: Any, qtmodeltester: Any) -> None:
    """Red team rt68 moved the sorting and filtering into the findings model: every column,
    both orders, each filter, show the rows in the order the proxy showed them (a column's
    text compared as Qt compares texts, ties in the order reported), also after findings
    were added while sorted, and the row being read stays selected."""
    dialog = AuditDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    qtmodeltester.check(dialog.table.model())
    dialog.set_view(audit_of(SAMPLE))
    assert shown(dialog) == [f.message for f in SAMPLE]  # as reported
    ascending, descending = Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder
    for severity in ("", "error", "notice"):
        dialog.filter.setCurrentIndex(dialog.filter.findData(severity))
        for column in Column:
            for order in (ascending, descending):
                dialog.table.sortByColumn(column, order)
                assert shown(dialog) == as_proxied(SAMPLE, column, order, severity)
        dialog.table.sortByColumn(-1, ascending)
        assert shown(dialog) == as_proxied(SAMPLE, -1, ascending, severity)
    # the same audit with more findings, sorted: each one in its place, the row being
    # read still selected
    dialog.filter.setCurrentIndex(dialog.filter.findData(""))
    dialog.table.sortByColumn(Column.WHERE, descending)
    dialog.table.selectRow(shown(dialog).index(SAMPLE[1].message))
    dialog.set_view(audit_of(SAMPLE + MORE))
    assert shown(dialog) == as_proxied(SAMPLE + MORE, Column.WHERE, descending, "")
    assert dialog._selected() is SAMPLE[1]
    assert "finding 1" in dialog.detail.toPlainText()
    # another audit whose findings differ (not only more): the rows are made again, the
    # finding being read is found again
    other = [MORE[1], *SAMPLE[1:]]
    dialog.set_view(audit_of(other))
    assert shown(dialog) == as_proxied(other, Column.WHERE, descending, "")
    assert dialog._selected() is SAMPLE[1]
    # the filter keeps its choice across refreshes; a finding it hides is not selected
    dialog.filter.setCurrentIndex(dialog.filter.findData("notice"))
    dialog.set_view(audit_of(SAMPLE))
    assert dialog.filter.currentData() == "notice"
    assert shown(dialog) == as_proxied(SAMPLE, Column.WHERE, descending, "notice")
    assert dialog._selected() == dialog.table.model().index(0, 0).data(FindingRoles.Finding)
    dialog.table.selectRow(1)
    notice = dialog._selected()
    assert notice is not None and notice.message in dialog.detail.toPlainText()


def test_many_findings_added_while_sorted_are_placed_by_one_sort(
    qtbot: Any, qtmodeltester: Any
) -> None:
    """More new findings than are inserted one by one (red team rt68): inserted, then
    sorted once by the keys (a layout change that keeps the row being read)."""
    dialog = AuditDialog()
    qtbot.addWidget(dialog)
    qtmodeltester.check(dialog.table.model())
    dialog.set_view(audit_of(SAMPLE))
    dialog.table.sortByColumn(Column.KIND, Qt.SortOrder.AscendingOrder)
    dialog.table.selectRow(shown(dialog).index(SAMPLE[7].message))
    kinds = (Kind.GAP, Kind.BAD_JSON, Kind.UNREAD)
    many = SAMPLE + [
        _finding(100 + i, kinds[i % 3], f"p/{i}", i, None)
        for i in range(3 * findings_model.INSERT_ONE_BY_ONE)
    ]
    dialog.set_view(audit_of(many))
    assert shown(dialog) == as_proxied(many, Column.KIND, Qt.SortOrder.AscendingOrder, "")
    assert dialog._selected() is SAMPLE[7]


# -- in the real window: a message arrives while the sorted dialog is open ---------------


@dataclass
class App:
    controller: Controller
    window: MainWindow
    features: Features
    key: str
    store: Path


@pytest.fixture
def make_app(qtbot: Any, qloop: Any, home: Path, tmp_path: Path) -> Iterator[Callable[[], App]]:
    controllers: list[Controller] = []

    def make() -> App:
        store = tmp_path / "store"
        wait_for(qtbot, build_room(store))
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
            return room is not None and room.complete and controller.result(key) is room.result

        qtbot.waitUntil(loaded, timeout=30_000)
        return App(controller, window, features, key, store)

    yield make
    for controller in controllers:
        wait_for(qtbot, controller.shutdown())


def test_a_message_arriving_while_the_sorted_audit_is_open_costs_no_full_sort(
    qtbot: Any, make_app: Callable[[], App]
) -> None:
    """Red team rt68, the whole path: 20,000 broken lines in a room, its audit open and
    sorted by kind, then one ordinary message arrives: the dialog's refresh sorted every
    finding again (2.9 million Python calls)."""
    app = make_app()
    app.window.audit_button.click()
    qtbot.waitUntil(
        lambda: app.features.audit_dialog is not None and app.features.audit_dialog.isVisible(),
        timeout=30_000,
    )
    dialog = app.features.audit_dialog
    assert dialog is not None and dialog.view is not None
    n = len(dialog.view.findings)
    assert n >= N
    dialog.table.sortByColumn(Column.KIND, Qt.SortOrder.AscendingOrder)

    refreshes: list[int] = []
    real = dialog.set_view

    def counted(view: AuditView) -> None:
        refreshes.append(python_calls(lambda: real(view)))

    dialog.set_view = counted  # type: ignore[method-assign]

    async def one_message() -> None:
        bob = RoomWriter(
            LocalStorage(app.store),
            ROOM,
            "bob@example.com",
            SigningKey(b"\x02" * 32),
            displayname="Bob",
            clock=lambda: T0 + 10**8,
        )
        await bob.send([Draft.text("one more message")])

    wait_for(qtbot, one_message())
    app.features._refresh_audit(app.key)  # what the 300 ms timer does when it arrives
    qtbot.waitUntil(lambda: bool(refreshes), timeout=60_000)
    assert refreshes[0] <= 20 * n, f"{refreshes[0]:,} Python calls for one refresh of {n:,}"
