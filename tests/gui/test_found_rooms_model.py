"""``FoundRoomsModel``, the join dialog's list: names read a batch at a time mark the
rooms exactly as judging every listed room again did (``name_lookalikes`` over the whole
listing and the rooms the user is in), and the filter shows what walking every row did.

Each batch judges only the rooms sharing a look with a name it read (red team rt88:
judging all of them for each batch froze the window 2.8 s a scroll step at 200,000
rooms); these tests hold it to the old, whole-list answer on lists made to collide."""

from __future__ import annotations

import random
import sys
from typing import Any

import pytest
from PySide6.QtCore import Qt

from bucket_chat_desktop.gui.models.found_rooms_model import Column, FoundRoomsModel, cleaned
from bucket_chat_desktop.protocol.room_names import NamedRoom, name_lookalikes
from bucket_chat_desktop.sync.room_objects import RoomSummary

STORAGE = "s1"
# ids and names that look alike by case, digits for letters, Cyrillic letters, "rn"/"m"
IDS = [
    "payroll", "PAYROLL", "payro1l", "pay-2", "general", "genera1", "GENERAL-x", "ops",
    "0ps", "mod", "rnod", "lunch", "quiet", "falcon", "team-a", "team-b", "room-1",
]  # fmt: skip
NAMES = [
    "Payroll", "P\u0430yroll", "payroll", "General", "Genera1", "Ops", "ops", "rnod",
    "Mod", "Lunch", "", "Falcon", "Team", "team", "\u0422eam",
]  # fmt: skip


def _joined(rng: random.Random) -> list[NamedRoom]:
    """Rooms the user is in: some listed here (judged as listed), some elsewhere, a key
    given twice (the first kept)."""
    rooms = []
    for room_id in rng.sample(IDS, 4):
        rooms.append(
            NamedRoom(f"{STORAGE}/{room_id}", room_id, rng.choice(NAMES), f"{room_id} here", False)
        )
    for n, room_id in enumerate(rng.sample(IDS, 5)):
        key = f"other/{room_id}"
        rooms.append(NamedRoom(key, room_id, rng.choice(NAMES), f"{room_id} on Other", False))
        if n == 0:
            rooms.append(NamedRoom(key, room_id, "General", "a second of one key", False))
    return rooms


def _expected(order: list[str], read: dict[str, str], joined: list[NamedRoom]) -> dict[str, str]:
    """What judging every listed room again says (the dialog's rule before rt88)."""
    listed = [NamedRoom(f"{STORAGE}/{r}", r, read.get(r, "")) for r in order]
    looks = name_lookalikes([*listed, *joined], judge=[r.key for r in listed])
    return {r: looks.get(f"{STORAGE}/{r}", "") for r in order if r in read}


@pytest.mark.parametrize("seed", range(40))
def test_names_read_in_batches_are_marked_as_judging_every_room_did(
    qtmodeltester: Any, seed: int
) -> None:
    rng = random.Random(seed)
    order = rng.sample(IDS, len(IDS))
    joined = _joined(rng)
    names = {r: rng.choice(NAMES) for r in order}
    first = order[: rng.randrange(0, 4)]  # names that came with the listing
    model = FoundRoomsModel()
    qtmodeltester.check(model)
    model.show(
        STORAGE,
        order,
        [RoomSummary(r, names[r], None) for r in first],
        [j.room_id for j in joined if j.key.startswith(f"{STORAGE}/")],
        joined,
    )
    read = {r: cleaned(RoomSummary(r, names[r], None)) for r in first}
    words = rng.choice(["", "pay", "o", "team", "rnod", "gen"])
    model.set_filter(words)
    rest = order[len(first) :]
    rng.shuffle(rest)
    rest += rng.sample(order, 3)  # read again, under another name
    while rest:
        batch, rest = rest[:3], rest[3:]
        again = {r: rng.choice(NAMES) if r in read else names[r] for r in batch}
        model.set_read([RoomSummary(r, again[r], None) for r in batch])
        read.update({r: cleaned(RoomSummary(r, again[r], None)) for r in batch})
        expected = _expected(order, read, joined)
        assert {r: model.warning(r) for r in order if r in read} == expected
        assert not any(model.warning(r) for r in order if r not in read)
        folded = words.casefold()
        assert [model.room_id(n) for n in range(model.rowCount())] == [
            r for r in order if folded in r.casefold() or folded in read.get(r, "").casefold()
        ]
    model.set_filter("")
    assert model.rowCount() == len(order)


def _calls(work: Any) -> int:
    """How many Python functions ``work`` calls (a count of work, not a time)."""
    count = 0

    def profile(_frame: Any, event: str, _arg: Any) -> None:
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profile)
    try:
        work()
    finally:
        sys.setprofile(None)
    return count


def test_a_batch_of_names_costs_the_same_however_many_rooms_share_its_look() -> None:
    """10,000 rooms all named "Planted", read 40 at a time as they come into view: a
    batch (reading it and showing its rows' names and tips) does as much work at the
    end as at the start. Re-judging every room of the look at each batch grew with the
    group (20,000 rooms: 0.6 ms a batch at first, 275 ms at the end, a minute in all)."""
    ids = [f"planted-{n:06d}" for n in range(10_000)]
    model = FoundRoomsModel()
    model.show(STORAGE, ids, [], [], [NamedRoom("other/x", "x", "Planted", "x on Other", False)])
    roles = (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole)

    def batch(first: int) -> None:
        model.set_read([RoomSummary(r, "Planted", None) for r in ids[first : first + 40]])
        for row in range(first, first + 40):  # the rows in view, as the view paints them
            for role in roles:
                model.data(model.index(row, Column.NAME), role)

    counts = [_calls(lambda first=first: batch(first)) for first in range(0, len(ids), 40)]
    assert "planted-000002 and 9,996 more" in model.warning(ids[-1])
    early, late = max(counts[5:15]), max(counts[-10:])
    assert late <= early * 1.2, (early, late)
