"""``KnownFolders``: a full pass compares each date folder's listing with the segments
kept from it. It picks them out without a walk over every kept segment per folder (a
member spreading many segments over many backdated days made that folders × segments
steps on the state thread), and must pick exactly what that walk picked."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.sync.room_state import KnownFolders, RoomState

DATES = [f"2025-01-{d:02d}" for d in range(1, 6)]
PREFIX = "rooms/r/logs/"


def walk(known: dict[str, int], folder: str, held: int) -> list[str]:
    """What ``_note_vanished`` walked before: every kept segment, in the order kept."""
    return [p for p in itertools.islice(known, held) if p.startswith(folder)]


paths = st.one_of(
    st.builds(lambda d, n: f"{PREFIX}{d}/s{n}.jsonl", st.sampled_from(DATES), st.integers(0, 40)),
    st.builds(
        lambda d, n: f"{PREFIX}{d}/deeper/s{n}.jsonl", st.sampled_from(DATES), st.integers(0, 3)
    ),
    st.sampled_from([f"{PREFIX}2025-01-01", "rooms/r/metadata.json", "other"]),
)


@settings(max_examples=150, deadline=None)
@given(
    batches=st.lists(st.lists(st.tuples(paths, st.integers(-1, 9)), max_size=12), max_size=6),
    asks=st.lists(st.tuples(st.sampled_from(DATES), st.floats(0, 1.2)), min_size=1, max_size=6),
)
def test_the_segments_of_a_folder_are_those_the_walk_over_all_picks(
    batches: list[list[tuple[str, int]]], asks: list[tuple[str, float]]
) -> None:
    known: dict[str, int] = {}
    folders = KnownFolders()
    for step in range(max(len(batches), len(asks))):
        for path, size in batches[step] if step < len(batches) else []:
            known[path] = size  # kept, or (a path kept before) its size learnt
        date, share = asks[step] if step < len(asks) else ("", 1.0)
        for d in [date] if date else DATES:
            held = int(len(known) * share)  # past the end too: all of them
            folder = f"{PREFIX}{d}/"
            assert folders.known_in(known, folder, held) == walk(known, folder, held)
            # The days a listing of the room's days must show (``RoomState.known_days``,
            # red team rt70): those holding one of the first ``held``, as the walk finds.
            assert set(folders.folders(known, held)) == {
                f"{'/'.join(p.split('/', 4)[:4])}/"
                for p in itertools.islice(known, held)
                if len(p.split("/", 4)) == 5
            }


def test_a_room_files_each_kept_segment_once_and_answers_per_folder() -> None:
    room = RoomState("r", RoomLedger("r"))
    for i in range(3000):
        room.known[f"{PREFIX}{DATES[i % 5]}/s{i:05}.jsonl"] = i
    first = f"{PREFIX}{DATES[0]}/"
    assert room.known_in(first, 3000) == [f"{first}s{i:05}.jsonl" for i in range(0, 3000, 5)]
    assert room.known_in(first, 11) == [f"{first}s{i:05}.jsonl" for i in (0, 5, 10)]
    room.known[f"{first}late.jsonl"] = 1  # kept after the listing was asked: not counted
    assert room.known_in(first, 3000)[-1] == f"{first}s02995.jsonl"
    assert room.known_in(first, 3001)[-1] == f"{first}late.jsonl"
    assert room.known_in(f"{PREFIX}2030-01-01/", 3001) == []
    assert room.known_days(3000) == set(DATES)
    assert room.known_days(3) == set(DATES[:3])
    room.known[f"{PREFIX}2030-01-01/late.jsonl"] = 1  # kept after the listing was asked
    assert "2030-01-01" not in room.known_days(3001)
    assert "2030-01-01" in room.known_days(3002)
