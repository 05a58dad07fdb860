"""Room ids, client ids, event ids and segment object names."""

from __future__ import annotations

import hashlib
import re
import time
import unicodedata
from pathlib import Path

import pytest

from bucket_chat_desktop.protocol import ids
from bucket_chat_desktop.protocol.ids import (
    CLIENT_ID_RE,
    InvalidRoomIdError,
    SegmentName,
    check_room_id,
    client_id_for,
    is_valid_room_id,
    iso_utc_ms,
    key_tag,
    logs_prefix,
    make_event_id,
    metadata_path,
    parse_segment_path,
    room_prefix,
    segment_path,
    utc_date,
)

T0 = 1757851245123  # 2025-09-14T12:00:45.123Z
KEY = bytes(range(32))

GOOD_ROOMS = ["a", "room-1", "A.b_c-d", "x" * 128, "_x", "-x", "a..b", "9", "room."]
HOSTILE_ROOMS = [
    "../x",
    "..",
    ".",
    "a/b",
    "/abs",
    "a\\b",
    "",
    "a\x00b",
    "\x00",
    ".hidden",
    "x" * 129,
    "café",
    "ｒｏｏｍ",  # full-width letters
    "١٢٣",  # Arabic-Indic digits
    "a b",
    "a\n",
    "a\t",
    "a:b",
    "a::b",
    "%2e%2e",
]


@pytest.mark.parametrize("room_id", GOOD_ROOMS)
def test_good_room_ids(room_id: str) -> None:
    assert check_room_id(room_id) == room_id
    assert is_valid_room_id(room_id)
    assert room_prefix(room_id) == f"rooms/{room_id}/"
    assert logs_prefix(room_id) == f"rooms/{room_id}/logs/"
    assert metadata_path(room_id) == f"rooms/{room_id}/metadata.json"


@pytest.mark.parametrize("room_id", HOSTILE_ROOMS)
def test_hostile_room_ids_never_reach_a_path(room_id: str) -> None:
    assert not is_valid_room_id(room_id)
    for build in (check_room_id, room_prefix, logs_prefix, metadata_path):
        with pytest.raises(InvalidRoomIdError):
            build(room_id)
    with pytest.raises(InvalidRoomIdError):
        segment_path(room_id, 1, 2, "c")


def test_room_id_errors_say_why() -> None:
    with pytest.raises(InvalidRoomIdError, match="empty"):
        check_room_id("")
    with pytest.raises(InvalidRoomIdError, match="129"):
        check_room_id("x" * 129)
    with pytest.raises(InvalidRoomIdError, match=r"must not start with '\.'"):
        check_room_id(".hidden")
    with pytest.raises(InvalidRoomIdError, match=r"found '/'"):
        check_room_id("a/b")


def test_invalid_room_id_error_is_a_value_error() -> None:
    assert issubclass(InvalidRoomIdError, ValueError)


@pytest.mark.parametrize("value", [None, 5, b"room"])
def test_non_string_room_ids(value: object) -> None:
    assert not is_valid_room_id(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidRoomIdError):
        check_room_id(value)  # type: ignore[arg-type]


def test_key_tag_is_first_8_hex_of_sha256() -> None:
    assert key_tag(KEY) == hashlib.sha256(KEY).hexdigest()[:8]


@pytest.mark.parametrize(
    ("sender_id", "user"),
    [
        ("alice@example.com", "alice"),
        ("bob_smith@x", "bob_smith"),
        ("jöran.o'neil@x", "jranoneil"),
        ("no-at-sign", "no-at-sign"),
        ("@@@", "user"),
        ("ß@x", "user"),
        ("a" * 100 + "@x", "a" * 40),
    ],
)
def test_client_id_for(sender_id: str, user: str) -> None:
    cid = client_id_for(sender_id, KEY)
    assert cid == f"{user}-{key_tag(KEY)}"
    assert CLIENT_ID_RE.fullmatch(cid)


def test_iso_utc_ms() -> None:
    assert iso_utc_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc_ms(T0) == "2025-09-14T12:00:45.123Z"
    assert iso_utc_ms(951782400007) == "2000-02-29T00:00:00.007Z"


def test_iso_utc_ms_from_its_minute_cache_equals_gmtime() -> None:
    # Steps of 7.001 s across 300 minutes: repeated minutes (cache hits), new ones, a
    # day boundary and more minutes than the cache holds (it is cleared and refilled).
    start = 1757894400000 - 150 * 60_000  # 150 minutes before 2025-09-15T00:00Z
    for ts in range(start, start + 300 * 60_000, 7_001):
        t = time.gmtime(ts // 1000)
        assert iso_utc_ms(ts) == (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{ts % 1000:03d}Z"
        )
    assert 0 < len(ids._minute_heads) <= 256


def test_utc_date_is_utc_not_local() -> None:
    assert utc_date(0) == "1970-01-01"
    assert utc_date(1757894399999) == "2025-09-14"  # 23:59:59.999Z
    assert utc_date(1757894400000) == "2025-09-15"


def test_make_event_id() -> None:
    uid = "00000001-0000-4000-8000-000000000001"
    assert make_event_id("r", T0, uid) == f"r::2025-09-14T12:00:45.123Z::{uid}"


def test_segment_path_uses_utc_date_of_start() -> None:
    path = segment_path("r", 1757894399999, 1757894400001, "alice-0123abcd")
    assert path == (
        "rooms/r/logs/2025-09-14/messages_1757894399999_1757894400001_alice-0123abcd.jsonl"
    )


@pytest.mark.parametrize("client_id", ["", "a/b", "jöran", "a.b", "x" * 65, "a b"])
def test_segment_path_rejects_bad_client_ids(client_id: str) -> None:
    with pytest.raises(ValueError, match="client id"):
        segment_path("r", 1, 2, client_id)


def test_segment_path_rejects_start_after_end() -> None:
    with pytest.raises(ValueError, match="start_ts"):
        segment_path("r", 3, 2, "c")


def test_parse_segment_path_round_trip() -> None:
    path = segment_path("room-1", T0, T0 + 5, "alice-0123abcd")
    name = parse_segment_path(path)
    assert name == SegmentName(path, "room-1", "2025-09-14", T0, T0 + 5, "alice-0123abcd")
    assert name is not None
    assert name.file_name == f"messages_{T0}_{T0 + 5}_alice-0123abcd.jsonl"


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        ("jöran", "jöran"),  # the reference keeps str.isalnum() letters
        ("日本", "日本"),
        ("bob_smith", "bob_smith"),  # '_' inside the client part
        ("alice-0123abcd-r2", "alice-0123abcd-r2"),
    ],
)
def test_parse_segment_path_lenient_client_part(client: str, expected: str) -> None:
    name = parse_segment_path(f"rooms/r/logs/2025-09-15/messages_1_2_{client}.jsonl")
    assert name is not None
    assert name.client_id == expected
    assert (name.start_ts, name.end_ts) == (1, 2)


def test_parse_segment_path_accepts_any_date_folder() -> None:
    # Readers accept every date folder: the reference writes local dates.
    name = parse_segment_path(f"rooms/r/logs/1999-12-31/messages_{T0}_{T0}_c.jsonl")
    assert name is not None and name.date == "1999-12-31"


@pytest.mark.parametrize(
    "path",
    [
        "rooms/r/logs/2025-09-14/messages_1_2_c.json",
        "rooms/r/logs/2025-09-14/messages_1_2_c.jsonl.tmp",
        "rooms/r/logs/2025-09-14/messages_1_2.jsonl",
        "rooms/r/logs/2025-09-14/messages_1_2_.jsonl",
        "rooms/r/logs/2025-09-14/messages_a_2_c.jsonl",
        "rooms/r/logs/2025-09-14/messages_-1_2_c.jsonl",
        "rooms/r/logs/2025-09-14/messages_12345678901234567_2_c.jsonl",
        "rooms/r/logs/2025-09-14/messages_١_2_c.jsonl",  # non-ASCII digits
        "rooms/r/logs/٢٠٢٥-٠٩-١٤/messages_1_2_c.jsonl",
        "rooms/r/logs/2025-09-14/messages_1_2_a\\b.jsonl",
        "rooms/r/logs/2025-09-14/messages_1_2_a\x00b.jsonl",
        "rooms/r/logs/2025-09-14/messages_1_2_a\udcffb.jsonl",  # a name not UTF-8, decoded
        "rooms/r/logs/latest/messages_1_2_c.jsonl",
        "rooms/r/logs/messages_1_2_c.jsonl",
        "rooms/r/logs/2025-09-14/x/messages_1_2_c.jsonl",
        "rooms/../logs/2025-09-14/messages_1_2_c.jsonl",
        "rooms/.hidden/logs/2025-09-14/messages_1_2_c.jsonl",
        "room/r/logs/2025-09-14/messages_1_2_c.jsonl",
        "rooms/r/log/2025-09-14/messages_1_2_c.jsonl",
        "/rooms/r/logs/2025-09-14/messages_1_2_c.jsonl",
        "rooms/r/metadata.json",
        "",
    ],
)
def test_parse_segment_path_rejects(path: str) -> None:
    assert parse_segment_path(path) is None


def test_module_has_no_clock_or_randomness() -> None:
    source = Path(ids.__file__).read_text("utf-8")
    for banned in ("time.time(", "datetime.now(", "uuid4(", "random"):
        assert banned not in source


# -- new room ids: one folder on every file system (PROTOCOL.md 2.1) ---------------------------


@pytest.mark.parametrize("room_id", ["team", "Team-2", "a.b", "con-call", "com10", "nul_", "x.con"])
def test_a_new_room_id_that_is_one_folder_everywhere_is_accepted(room_id: str) -> None:
    assert ids.check_new_room_id(room_id, ["other", "TEAMS"]) == room_id


@pytest.mark.parametrize(
    ("room_id", "why"),
    [
        ("team.", "must not end with '.'"),
        ("a..", "must not end with '.'"),
        ("CON", "device name on Windows"),
        ("nul.txt", "device name on Windows"),
        ("Com1", "device name on Windows"),
        ("lpt9.x.y", "device name on Windows"),
        ("a/b", "may only use"),
    ],
)
def test_a_new_room_id_that_windows_cannot_hold_is_refused(room_id: str, why: str) -> None:
    with pytest.raises(InvalidRoomIdError, match=re.escape(why)):
        ids.check_new_room_id(room_id)


def test_a_new_room_id_differing_from_an_existing_one_only_in_case_is_refused() -> None:
    with pytest.raises(InvalidRoomIdError, match="'Team' differs from the existing room 'tEAM'"):
        ids.check_new_room_id("Team", ["general", "tEAM"])
    assert ids.check_new_room_id("team", ["team"]) == "team"  # the same room: the writer says so


@pytest.mark.parametrize("existing", ["team.", "TEAM.", "team..", "Team."])
def test_a_new_room_id_windows_folds_onto_an_existing_one_with_trailing_dots_is_refused(
    existing: str,
) -> None:
    """Red team rt93: readers accept a member's room ``team.``; on Windows, which drops
    a name's trailing dots, ``team`` is its folder. The rule held only one way round."""
    with pytest.raises(
        InvalidRoomIdError, match=re.escape(f"existing room {existing!r} on Windows")
    ):
        ids.check_new_room_id("team", ["general", existing])


def test_room_ids_fold_as_windows_folds_folder_names() -> None:
    assert ids.room_id_folded("Team..") == ids.room_id_folded("team") == "team"
    # only the end: dots within an id are part of the folder's name everywhere
    assert ids.room_id_folded("a.b") != ids.room_id_folded("a..b")
    assert ids.check_new_room_id("a.b", ["a..b", "ab.", "a.b-2."]) == "a.b"
    assert ids.check_new_room_id("team-2", ["team.", "team"]) == "team-2"


def test_places_order_by_the_nfc_form_of_the_path_then_the_path_then_the_line() -> None:
    """PROTOCOL.md section 2.3 (red team rt93)."""
    nfc, nfd = (
        unicodedata.normalize(form, "logs/messages_1_1_\u00e9.jsonl") for form in ("NFC", "NFD")
    )
    f = "logs/messages_1_1_f.jsonl"
    assert nfd < f < nfc  # by code point alone, each form sorts elsewhere
    assert ids.place_order(nfd, 1) > ids.place_order(f, 9) < ids.place_order(nfc, 1)
    # one name in two forms (two objects where a folder keeps both): the path as listed
    assert ids.place_order(nfd, 2) < ids.place_order(nfc, 1)
    assert ids.place_order(nfc, 1) < ids.place_order(nfc, 2)
    assert ids.place_order(f, 3) == (f, f, 3)


def test_readers_still_accept_ids_a_creator_may_not_use() -> None:
    """Rooms others made under such ids stay readable (PROTOCOL.md 2.1)."""
    for room_id in ("team.", "CON", "nul.txt"):
        assert check_room_id(room_id) == room_id and is_valid_room_id(room_id)


def test_a_suggested_room_option_reads_as_its_value() -> None:
    from bucket_chat_desktop.protocol.ids import room_option

    assert room_option("team") == "--room-id team"
    assert room_option("-dash") == "--room-id=-dash"


# -- the id the app offers for a new room (red team rt73) ---------------------------------------


@pytest.mark.parametrize(
    ("name", "offered"),
    [
        ("Project Falcon", "project-falcon-k3p9"),
        ("  General!  ", "general-k3p9"),
        ("CON", "con-k3p9"),  # no Windows device name with its tail
        ("..team.", "team-k3p9"),
        ("✨", ""),  # nothing usable: no id offered
        ("x" * 200, "x" * 64 + "-k3p9"),
    ],
)
def test_a_new_room_id_is_the_names_slug_and_a_tail(name: str, offered: str) -> None:
    assert ids.new_room_id(name, "k3p9") == offered
    if offered:
        assert ids.check_new_room_id(offered) == offered


def test_the_tail_is_random_lower_case_letters_and_digits() -> None:
    from bucket_chat_desktop.sync.rooms import room_id_suffix

    tails = {room_id_suffix() for _ in range(50)}
    assert all(re.fullmatch(r"[a-z0-9]{4}", t) for t in tails) and len(tails) > 40
