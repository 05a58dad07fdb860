"""A name that no listing gave is read as an object only if it is that object's name
(red team rt93).

Activity markers are hints (PROTOCOL.md section 15): "a marker naming a missing or forged
segment changes nothing". A room in a synced folder is read by Linux clients and by
Windows and macOS clients, whose folders ignore case (NTFS; APFS and HFS+ by default)
and, on macOS, how accented letters are encoded. A member writes one empty marker naming
``…_ALICE-34750F98.jsonl``, the case-changed name of Alice's real segment
``…_alice-34750f98.jsonl``. A Linux client finds no such object. A Windows or macOS
client's read of that name opened Alice's file, the engine kept the segment under the
marker's spelling, and the next listing of the day (the real spelling only) reported
``segment-vanished``, an ERROR against an honest member, at every later opening too (the
index kept the alias). A hinted name is now read only when its folder holds an entry of
exactly that name (``Storage.spelled_as_stored``); the listing reads the segment under
the name it has.

The volume is emulated as ``test_device_files.py`` emulates a case-insensitive one (this
kernel has none): ``CaseBlindFolder`` opens a name it does not hold exactly as the file
whose name equals it after NFD and case folding, as such a volume opens it, and lists
names as stored, as such a volume lists them.
"""

from __future__ import annotations

import os
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_engine import ROOM, Recorder, create_room, run, write_history
from test_engine_pages import _close

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.activity import marker_path
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.ids import parse_segment_path, utc_date
from bucket_chat_desktop.storage.base import NotRegularFileError
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import MARKER_SETTLE_MS, SyncConfig, SyncEngine
from bucket_chat_desktop.sync.room_state import RoomState

QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)


def _fold(name: str) -> str:
    return unicodedata.normalize("NFD", name).casefold()


class CaseBlindFolder(LocalStorage):
    """A folder on a volume that ignores case and how accents are encoded (NTFS, APFS,
    HFS+): a read of a name it does not hold exactly opens the file of the equal name."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.opened_as_other: list[str] = []
        self.asked: list[str] = []

    def _get(self, path: str, max_bytes: int) -> bytes:
        parts = path.split("/")
        folder = self.root.joinpath(*parts[:-1])
        if not (folder / parts[-1]).exists() and folder.is_dir():
            for real in os.listdir(folder):
                if _fold(real) == _fold(parts[-1]):
                    self.opened_as_other.append(path)
                    path = "/".join([*parts[:-1], real])
                    break
        return super()._get(path, max_bytes)

    def _spelled_as_stored(self, path: str) -> bool:
        self.asked.append(path)
        return super()._spelled_as_stored(path)


def _plant_marker(root: Path, named: str) -> None:
    """Mallory's empty marker of today, settled, naming ``named``."""
    published = int(time.time() * 1000) - MARKER_SETTLE_MS - 1000
    if utc_date(published) != utc_date(int(time.time() * 1000)):
        pytest.skip("too close to UTC midnight for a settled marker of today")
    marker = root / marker_path(published, named)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_bytes(b"")


def _in_capitals(real: str) -> str:
    name = parse_segment_path(real)
    assert name is not None
    alias = real.replace(name.client_id, name.client_id.upper())
    assert alias != real and _fold(alias) == _fold(real)
    return alias


def _decomposed(real: str) -> str:
    alias = unicodedata.normalize("NFD", real)
    assert alias != real and _fold(alias) == _fold(real)
    return alias


def _store(tmp_path: Path, client: str | None = None) -> Path:
    """A room of one day of alice and bob, a segment each; ``client``: alice's segment
    renamed with that client part (a reader accepts any letter there, section 2.2)."""
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    write_history(LocalStorage(root), days=1, per_day=2)
    if client is not None:
        (first,) = [
            p for p in (root / "rooms" / ROOM / "logs").rglob("*.jsonl") if "alice" in p.name
        ]
        first.rename(first.with_name(first.name.replace("alice", client)))
    return root


async def _open(storage: LocalStorage, db: Path) -> tuple[SyncEngine, RoomState]:
    engine = SyncEngine(storage, index=Index.open(db), listener=Recorder(), config=QUIET)
    room = await engine.open_room(ROOM, background=False)
    assert room.result is not None
    return engine, room


def _hinted(
    tmp_path: Path, storage: LocalStorage, alias_of: Callable[[str], str], client: str | None = None
) -> tuple[dict[str, str], bool, str, str]:
    """Open the room, plant a marker naming another spelling (``alias_of``) of a
    segment it read, poll, list again: (segments noted vanished, clean, the real name,
    the alias). ``storage`` is a storage of ``tmp_path / "store"``."""
    root = _store(tmp_path, client)
    assert storage.root == root

    async def go() -> tuple[dict[str, str], bool, str, str]:
        engine, room = await _open(storage, tmp_path / "index.sqlite3")
        try:
            assert room.result is not None and room.result.clean
            known = sorted(p for p in room.known if p.endswith(".jsonl"))
            real = next(p for p in known if not p.isascii()) if client else known[0]
            alias = alias_of(real)
            _plant_marker(root, alias)
            await engine.poll_once()
            await engine.refresh(ROOM)  # the next listing of the room's days
            if room.reaudit is not None:
                await room.reaudit
            result = room.result
            assert result is not None
            gone = [f for f in result.findings if f.kind is Kind.SEGMENT_VANISHED]
            return dict(room.vanished), result.clean and not gone, real, alias
        finally:
            await _close(engine)

    return run(go())


def test_a_marker_naming_a_segment_in_other_case_changes_nothing_on_a_case_blind_folder(
    tmp_path: Path,
) -> None:
    blind = CaseBlindFolder(tmp_path / "store")
    vanished, clean, _real, alias = _hinted(tmp_path, blind, _in_capitals)
    assert alias in blind.asked  # the hint was looked at...
    assert blind.opened_as_other == []  # ...and not read as another file
    # The Linux client of the same folder calls the room clean: so does this one.
    assert vanished == {} and clean


def test_a_marker_naming_a_segment_decomposed_changes_nothing_on_a_mac_folder(
    tmp_path: Path,
) -> None:
    """The same with the other spelling macOS folds: ``ö`` written NFC, named NFD."""
    blind = CaseBlindFolder(tmp_path / "store")
    vanished, clean, real, alias = _hinted(tmp_path, blind, _decomposed, client="j\u00f6ran")
    assert alias in blind.asked and blind.opened_as_other == []
    assert vanished == {} and clean, real


def test_no_accusation_is_left_for_the_next_opening_either(tmp_path: Path) -> None:
    """The index kept the segment under the marker's spelling: every later opening of
    the room on this device said "no longer in storage" again, for good."""
    _hinted(tmp_path, CaseBlindFolder(tmp_path / "store"), _in_capitals)

    async def reopen() -> list[str]:
        engine, room = await _open(CaseBlindFolder(tmp_path / "store"), tmp_path / "index.sqlite3")
        try:
            assert room.result is not None
            findings = room.result.findings
            return [f.path or "" for f in findings if f.kind is Kind.SEGMENT_VANISHED]
        finally:
            await _close(engine)

    assert run(reopen()) == []


def test_a_case_minding_folder_ignores_the_marker_as_before(tmp_path: Path) -> None:
    vanished, clean, _, _ = _hinted(tmp_path, LocalStorage(tmp_path / "store"), _in_capitals)
    assert vanished == {} and clean


# -- the check itself -------------------------------------------------------------------------


def test_a_name_is_spelled_as_stored_only_when_its_folder_holds_exactly_that_entry(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    day = root / "rooms" / ROOM / "logs" / "2025-09-14"
    day.mkdir(parents=True)
    (day / "messages_1_1_j\u00f6ran.jsonl").write_bytes(b"x")
    (root / "rooms" / "flat").write_bytes(b"a file where a room's folder would be")
    storage = LocalStorage(root)
    folder = f"rooms/{ROOM}/logs/2025-09-14/"

    def asked(path: str) -> bool:
        return run(storage.spelled_as_stored(path))

    assert asked(folder + "messages_1_1_j\u00f6ran.jsonl")
    assert not asked(folder + "messages_1_1_J\u00d6RAN.jsonl")
    assert not asked(folder + unicodedata.normalize("NFD", "messages_1_1_j\u00f6ran.jsonl"))
    assert not asked(folder + "messages_2_2_x.jsonl")  # nothing there
    assert not asked(f"rooms/{ROOM}/logs/2025-09-15/messages_1_1_x.jsonl")  # no such folder
    assert not asked("rooms/flat/logs/2025-09-14/messages_1_1_x.jsonl")


def test_junk_names_in_a_day_folder_that_minds_case_are_not_read_for_a_hinted_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member's 3,000 junk names in today's folder: on a volume that tells cases apart
    the check of an ASCII name asks two ``stat`` calls, it never reads the folder's
    names (each new message is such a hinted read). Where a member planted the name's
    other case, the folder's names are read and the answer is still exact."""
    day = tmp_path / "store" / "rooms" / ROOM / "logs" / "2025-09-14"
    day.mkdir(parents=True)
    for i in range(3000):
        (day / f"junk-{i:05d}").write_bytes(b"")
    (day / "messages_1_1_alice.jsonl").write_bytes(b"x")
    storage = LocalStorage(tmp_path / "store")
    listed: list[object] = []
    real_scandir = os.scandir

    def counting(path: Any = ".") -> Any:
        listed.append(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting)
    folder = f"rooms/{ROOM}/logs/2025-09-14/"

    def asked(name: str) -> bool:
        return run(storage.spelled_as_stored(folder + name))

    assert asked("messages_1_1_alice.jsonl")
    assert not asked("messages_1_1_ALICE.jsonl")
    assert not asked("messages_2_2_bob.jsonl")
    assert listed == []
    (day / "MESSAGES_1_1_ALICE.JSONL").write_bytes(b"planted")
    assert asked("messages_1_1_alice.jsonl")
    assert asked("MESSAGES_1_1_ALICE.JSONL")
    assert len(listed) == 2
    assert not asked("messages_1_1_Alice.jsonl")  # its other case is not there: no listing
    assert len(listed) == 2


@pytest.mark.skipif(os.name == "nt", reason="POSIX links")
def test_the_check_does_not_follow_a_link_on_the_way(tmp_path: Path) -> None:
    """As every read: a day folder swapped for a link says so, it is never listed."""
    root, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    (root / "rooms" / ROOM / "logs").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "messages_1_1_x.jsonl").write_bytes(b"x")
    (root / "rooms" / ROOM / "logs" / "2025-09-14").symlink_to(elsewhere)
    with pytest.raises(NotRegularFileError, match="symbolic link"):
        run(
            LocalStorage(root).spelled_as_stored(
                f"rooms/{ROOM}/logs/2025-09-14/messages_1_1_x.jsonl"
            )
        )
