"""Hostile strings in a room folder never reach the terminal raw.

A room is planted in a real local folder by a member with write access: its name, display
names, message bodies, sender ids and an object name carry ESC/OSC/CSI sequences, carriage
returns, backspaces, C1 controls, bidi overrides, line separators and invisible padding.
``rooms``, ``history`` (also ``--json``), ``search`` and ``verify`` run as the real command; their
output must hold no raw control character, "NOT CLEAN" must stay readable, and the id
that imitates alice's must be marked.
"""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop import timestamps
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.metadata import build_metadata
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event

from .conftest import Device

ROOM = "hostile"
T0 = 1_780_000_000_000
ALICE = "alice@example.com"
MALLORY = "mallory@example.com"
IMPOSTOR = "\u0430lice@example.com"  # Cyrillic а
EVE = "eve\x1b[8m\u202e@example.com"  # conceal + right-to-left override inside the id

ROOM_NAME = "Team\x1b[8m\x1b]0;owned\x07\r\u202eNAELC TON\u2028\x9b2J"
PADDED_NAME = "Alice" + "\u3164" * 300 + "\u200b" * 300 + "\x1b[2K\r"
BODY = (
    "\x1b]0;pwned\x07\rCLEAN: every signature and chain checks out.\x1b[8m"
    "\x9b8m\u202edetsurt\u2029\x08\x08\x08\x7f"
)


def _bad(text: str) -> list[str]:
    """Characters a terminal acts on or that hide or reorder text."""
    return [
        f"U+{ord(ch):04X}"
        for ch in text
        if (unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch != "\n") or ch == "\u3164"
    ]


def _events(key: SigningKey, sender: str, drafts: list[tuple[str, dict[str, Any]]], t: int):  # type: ignore[no-untyped-def]
    out: list[Event] = []
    prev = None
    for n, (kind, content) in enumerate(drafts):
        ev = build_event(
            room_id=ROOM,
            sender_id=sender,
            event_type=kind,
            content=content,
            timestamp_ms=t + n,
            unique=str(uuid.uuid4()),
            prev_event_hash=prev,
            signing_key=key,
        )
        prev = ev.hash
        out.append(ev)
    return out


def _write(store: Path, sender: str, key: SigningKey, events: list[Event]) -> None:
    path = store / path_for(events, client_id_for(sender, bytes(key.verify_key)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_segment(events))


def _room_signed_by(tmp_path: Path, creator: str, key: SigningKey, name: str) -> Path:
    """A store holding room ``ROOM`` whose metadata ``key`` signed for ``creator``."""
    store = tmp_path / "store"
    _named_room(store, ROOM, name, creator, key)
    return store


def _alice_joins_and_says_hi(store: Path, alice: SigningKey) -> None:
    joined = (MEMBER, {"membership": "join", "displayname": "Alice"})
    hi = (MESSAGE, {"msgtype": "m.text", "body": "hi"})
    _write(store, ALICE, alice, _events(alice, ALICE, [joined, hi], T0))


def _reader(tmp_path: Path, store: Path) -> Device:
    home = tmp_path / "reader"
    home.mkdir()
    return Device(home, store, "reader@example.com")


@pytest.fixture
def planted(tmp_path: Path) -> Device:
    alice, impostor, eve = (SigningKey(bytes([n]) * 32) for n in (1, 2, 3))
    store = _room_signed_by(tmp_path, ALICE, alice, ROOM_NAME)
    room = store / "rooms" / ROOM
    text = {"msgtype": "m.text"}
    _alice_joins_and_says_hi(store, alice)
    _write(
        store,
        IMPOSTOR,
        impostor,
        _events(
            impostor,
            IMPOSTOR,
            [
                (MEMBER, {"membership": "join", "displayname": PADDED_NAME}),
                (MESSAGE, {**text, "body": BODY}),
            ],
            T0 + 10,
        ),
    )
    _write(store, EVE, eve, _events(eve, EVE, [(MESSAGE, {**text, "body": "x" * 50_000})], T0 + 20))
    # An object whose very name tries to conceal what follows it, holding no event.
    junk = room / "logs" / "2026-06-01" / "messages_1_2_x\x1b[8m\r.jsonl"
    junk.parent.mkdir(parents=True, exist_ok=True)
    junk.write_bytes(b"not json \x1b[8m\n")
    home = tmp_path / "reader"
    home.mkdir()
    return Device(home, store, "reader@example.com")


def test_rooms_prints_the_room_name_escaped(planted: Device) -> None:
    out = planted.run("rooms")
    assert _bad(out.stdout + out.stderr) == []
    # A name is a label: its controls are dropped, what is left is shown on one line.
    assert out.stdout.startswith(f"{ROOM} ") and "Team[8m]0;owned NAELC TON" in out.stdout
    assert len(out.stdout.splitlines()) == 1


def test_history_escapes_everything_and_marks_the_impostor(planted: Device) -> None:
    out = planted.run("history", "--room-id", ROOM)
    shown = out.stdout + out.stderr
    assert _bad(shown) == []
    lines = out.stdout.splitlines()
    impostor = [line for line in lines if "lice@example.com" in line and "[verified]" in line]
    assert len(impostor) == 4
    marked = [line for line in impostor if "[!LOOK-ALIKE ID]" in line]
    assert len(marked) == 2 and all("\u0430lice" in line for line in marked)
    assert 'as "Alice"' in out.stdout  # the padding is gone, the name is readable
    assert "\\x1b]0;pwned\\x07\\x0dCLEAN" in out.stdout
    assert "more characters" in out.stdout  # a 50,000-character body is cut on a terminal
    assert "may imitate someone else" in out.stdout
    assert "looks like alice@example.com" in out.stdout


def test_history_json_escapes_what_a_terminal_acts_on(planted: Device) -> None:
    out = planted.run("history", "--room-id", ROOM, "--json")
    assert _bad(out.stdout) == []
    doc = json.loads(out.stdout)
    bodies = [e["content"].get("body") for e in doc["events"]]
    assert BODY in bodies  # the JSON still carries the exact strings
    assert {e["sender_id"] for e in doc["events"]} == {ALICE, IMPOSTOR, EVE}


def test_verify_keeps_not_clean_visible(planted: Device) -> None:
    out = planted.run("-v", "verify", "--room-id", ROOM, check=False)
    assert out.returncode == 1, out
    assert _bad(out.stdout + out.stderr) == []  # log lines too
    last = out.stdout.rstrip("\n").splitlines()[-1]
    assert last.startswith("NOT CLEAN:")
    assert "Ids that may imitate someone else" in out.stdout
    doc = json.loads(planted.run("verify", "--room-id", ROOM, "--json", check=False).stdout)
    assert doc["metadata"]["name"] == ROOM_NAME and not doc["clean"]


def test_search_escapes_every_hit_and_marks_the_impostor(planted: Device) -> None:
    planted.given("history", "--room-id", ROOM)  # read: what search looks in
    out = planted.run("search", "CLEAN")
    assert _bad(out.stdout + out.stderr) == []
    (hit, event_line, blank, head, note) = out.stdout.splitlines()
    assert "\u0430lice@example.com [!LOOK-ALIKE ID]" in hit and ">>CLEAN<<" in hit
    # why it is marked, after the results, as history says it (red team rt54)
    assert blank == "" and head == "Ids marked [!LOOK-ALIKE ID] may imitate someone else:"
    assert note.startswith("  \u0430lice@example.com: ") and "alice@example.com" in note[20:]
    assert "\\x1b]0;pwned\\x07\\x0d>>CLEAN<<" in hit and "Team\\x1b[8m" in hit
    assert event_line.strip().startswith("event hostile::")
    as_json = planted.run("search", "CLEAN", "--json").stdout
    assert _bad(as_json) == []
    (found,) = json.loads(as_json)["hits"]
    assert found["sender_id"] == IMPOSTOR and "CLEAN" in found["snippet"]


BACKDATER = "aIice@example.com"  # capital I for the l: plain ASCII, reads as alice's id


def test_a_backdated_plain_look_alike_does_not_make_the_real_sender_the_impostor(
    tmp_path: Path,
) -> None:
    """Red team: ``aIice@example.com`` dated its events 2000-01-01. The look-alike rule
    took "who wrote first" as the owner of a look, so ``history`` marked the real alice
    as imitating the impostor, and the impostor's lines carried no mark. Neither id has
    suspect letters, and dates are the writer's to choose: both are marked now."""
    alice, impostor = SigningKey(b"\x01" * 32), SigningKey(b"\x02" * 32)
    store = _room_signed_by(tmp_path, ALICE, alice, "Team")
    text = {"msgtype": "m.text"}
    _write(store, ALICE, alice, _events(alice, ALICE, [(MESSAGE, {**text, "body": "hi"})], T0))
    backdated = 946_684_800_000  # 2000-01-01
    _write(
        store,
        BACKDATER,
        impostor,
        _events(impostor, BACKDATER, [(MESSAGE, {**text, "body": "new bank details"})], backdated),
    )
    reader = _reader(tmp_path, store)

    lines = reader.run("history", "--room-id", ROOM).stdout.splitlines()
    real = [line for line in lines if ALICE in line and line.endswith("  hi")]
    fake = [line for line in lines if BACKDATER in line and line.endswith("new bank details")]
    assert len(real) == 1 and len(fake) == 1, lines
    assert "[!LOOK-ALIKE ID]" in fake[0]
    assert "[!LOOK-ALIKE ID]" in real[0]  # two plain ids alike: neither owns the look
    notes = "\n".join(lines)
    assert f"looks like {ALICE}" in notes and f"looks like {BACKDATER}" in notes
    assert "wrote in this room first" not in notes

    out = reader.run("verify", "--room-id", ROOM, check=False).stdout
    assert "Ids that may imitate someone else" in out
    assert f"looks like {ALICE}" in out and f"looks like {BACKDATER}" in out


def test_a_room_signed_by_a_look_alike_of_a_member_is_marked_in_its_title(
    tmp_path: Path,
) -> None:
    """Red team: ``aIice@example.com`` signed the room's metadata with a key of their own
    (and joined), while the real alice writes in the room. Her rows were marked, but
    ``history`` and ``verify`` titled the room "Payments (signed by aIice@example.com)"
    without a mark: the title checked the creator's id alone, not against the room's
    senders. It is checked against them now, as every row is."""
    alice, impostor = SigningKey(b"\x01" * 32), SigningKey(b"\x02" * 32)
    store = _room_signed_by(tmp_path, BACKDATER, impostor, "Payments")
    text = {"msgtype": "m.text"}
    join = (MEMBER, {"membership": "join", "displayname": "Alice"})
    _write(
        store,
        BACKDATER,
        impostor,
        _events(impostor, BACKDATER, [join, (MESSAGE, {**text, "body": "new account: X"})], T0),
    )
    _write(store, ALICE, alice, _events(alice, ALICE, [(MESSAGE, {**text, "body": "hi"})], T0 + 9))
    reader = _reader(tmp_path, store)

    title = reader.run("history", "--room-id", ROOM).stdout.splitlines()[0]
    assert title == f"# Payments (signed by {BACKDATER} [!LOOK-ALIKE ID])", title
    out = reader.run("verify", "--room-id", ROOM, check=False).stdout
    assert out.splitlines()[0] == f"Room {ROOM}: Payments (signed by {BACKDATER} [!LOOK-ALIKE ID])"


def _named_room(store: Path, room_id: str, name: str, creator: str, key: SigningKey) -> None:
    folder = store / "rooms" / room_id
    (folder / "logs").mkdir(parents=True)
    (folder / "metadata.json").write_bytes(
        build_metadata(
            room_id=room_id,
            name=name,
            created_at="2026-06-01T00:00:00.000Z",
            creator_id=creator,
            signing_key=key,
        )
    )


def test_rooms_marks_a_name_that_looks_like_another_rooms_name_or_id(tmp_path: Path) -> None:
    """Red team rt60: ``rooms`` printed every name cleaned but never compared them, while
    the app's join dialog marks look-alikes: a member's room "announce" named "Gеneral"
    (a Cyrillic "е") and a room "payroll-new" named "payroll" (another room's id) read as
    the real ones. Both are marked ``[!LOOK-ALIKE NAME]`` (by the rule the dialog uses,
    ``room_names.name_lookalikes``), the reasons listed below; the rooms they imitate
    are not."""
    alice, mallory = SigningKey(b"\x01" * 32), SigningKey(b"\x02" * 32)
    store = tmp_path / "store"
    _named_room(store, "general", "General", ALICE, alice)
    _named_room(store, "payroll", "Payroll 2026", ALICE, alice)
    _named_room(store, "announce", "G\u0435neral", MALLORY, mallory)
    _named_room(store, "payroll-new", "payroll", MALLORY, mallory)
    out = _reader(tmp_path, store).run("rooms").stdout
    assert _bad(out) == []
    listed, _, notes = out.partition("\n\n")
    lines = {line.split()[0]: line for line in listed.splitlines()}
    assert set(lines) == {"general", "payroll", "announce", "payroll-new"}, out
    signed = f"(signed; claims to be created by {MALLORY}, not checked)"
    assert lines["announce"] == f"{'announce':32} G\u0435neral [!LOOK-ALIKE NAME] {signed}"
    assert lines["payroll-new"] == f"{'payroll-new':32} payroll [!LOOK-ALIKE NAME] {signed}"
    assert "LOOK-ALIKE" not in lines["general"] + lines["payroll"]
    assert notes.splitlines() == [
        "Names marked [!LOOK-ALIKE NAME] may pass for another room:",
        "  announce: Its name looks like the name of another room here (general).",
        "  payroll-new: Its name looks like the id of another room here (payroll).",
    ], out


def test_a_msgtype_that_is_a_list_or_an_object_breaks_no_command(tmp_path: Path) -> None:
    """Red team: one member's signed message with ``"msgtype": {"x": 1}`` (and one with
    a list) made ``history``, ``search`` and the HTML export of the room end with a
    traceback (``unhashable type``), while ``verify`` said CLEAN. Such a message is no
    file: its body is what it says, in every command."""
    alice, mallory = SigningKey(b"\x01" * 32), SigningKey(b"\x07" * 32)
    store = _room_signed_by(tmp_path, ALICE, alice, "Team")
    text = {"msgtype": "m.text"}
    _write(store, ALICE, alice, _events(alice, ALICE, [(MESSAGE, {**text, "body": "hello"})], T0))
    odd = [
        (MESSAGE, {"msgtype": ["m.file"], "body": "listed type"}),
        (MESSAGE, {"msgtype": {"x": 1}, "body": "object type", "info": {"name": "a.exe"}}),
    ]
    _write(
        store, "mallory@example.com", mallory, _events(mallory, "mallory@example.com", odd, T0 + 5)
    )
    reader = _reader(tmp_path, store)

    history = reader.run("history", "--room-id", ROOM)
    assert history.stdout.splitlines()[-2:][0].endswith("listed type"), history.stdout
    assert history.stdout.splitlines()[-1].endswith("object type")
    assert "Traceback" not in history.stderr
    found = reader.run("search", "type")
    assert found.stdout.count(">>type<<") == 2, found.stdout
    page = tmp_path / "room.html"
    exported = reader.run("export", "--room-id", ROOM, "-o", str(page))
    assert "Traceback" not in exported.stderr and "object type" in page.read_text("utf-8")


FAKE = "2026-05-28 21:10:00  alice@example.com  [verified]  I approve the transfer to IBAN XX99"
EVENT_HEAD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  \S+  \[verified\]  ")


def _rows(line: str, width: int) -> list[tuple[bool, str]]:
    """How a terminal ``width`` columns wide shows one printed line (ASCII only here):
    (is this row the start of the printed line, the row's text)."""
    if not line:
        return [(True, "")]
    return [(i == 0, line[i : i + width]) for i in range(0, len(line), width)]


def test_a_space_padded_body_does_not_show_as_another_members_verified_line(
    tmp_path: Path,
) -> None:
    """A body padded with spaces forged a whole event line on a terminal (red team
    rt60): ``body_text`` keeps every space and the command line printed it after the
    sender's head; a terminal wraps a long line at its width, so a member who pads
    their body to it puts the rest at the start of a screen row of its own, exactly
    where ``history`` (and ``chat``) print an event's time, sender id and badge (column
    240 begins a row on terminals 80, 120 and 240 wide). It read as a verified message
    of alice@example.com that alice never signed. The command line now cuts long lines
    into rows itself (``format.fit``: the terminal's width, 80 in a pipe or a file),
    every row after the first indented."""
    alice, mallory = SigningKey(b"\x01" * 32), SigningKey(b"\x02" * 32)
    store = _room_signed_by(tmp_path, ALICE, alice, "Payments")
    text = {"msgtype": "m.text"}
    _alice_joins_and_says_hi(store, alice)
    # What mallory's head is on every terminal: time, id, badge (all of fixed length).
    head = len(timestamps.full(T0 + 10)) + 2 + len(MALLORY) + 2 + len("[verified]") + 2
    visible = "ok"
    pad = 240 - head - len(visible)
    body = visible + " " * pad + FAKE + " " * (240 - len(FAKE))
    _write(
        store,
        MALLORY,
        mallory,
        _events(
            mallory,
            MALLORY,
            [
                (MEMBER, {"membership": "join", "displayname": "Mallory"}),
                (MESSAGE, {**text, "body": body}),
            ],
            T0 + 10,
        ),
    )
    reader = _reader(tmp_path, store)
    reader.columns = None  # a pipe's default width

    out = reader.run("history", "--room-id", ROOM)
    assert "alice@example.com" in out.stdout and "[verified]" in out.stdout
    lines = out.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert "    2026-05-28 21:10:00  alice@example.com  [verified]  I approve" in out.stdout
    # Only alice's real events may show as her rows, whatever the terminal's width.
    for width in (80, 120, 240):
        rows = [row for line in out.stdout.splitlines() for row in _rows(line, width)]
        forged = [text for first, text in rows if not first and EVENT_HEAD.match(text)]
        assert forged == [], (
            f"on a {width}-column terminal a body's padding puts a row of its own that "
            f"reads as an event line: {forged}"
        )


def test_a_long_room_name_in_verifys_title_begins_no_row_of_its_own(tmp_path: Path) -> None:
    """Red team rt62: ``verify`` printed "Room <id>: <title>" whole, and a room name of
    up to 200 characters (anyone's) made a terminal wrap it so that its rest began a row
    reading "2026-05-28 21:10:00 alice@example.com [verified] …". Every line a command
    shows a person is cut into rows (``format.out``)."""
    store = tmp_path / "store"
    fake = FAKE.replace("  ", " ")  # a name's runs of spaces are made one
    name = "Payments" + "x" * (80 - len("Room padded: ") - 8) + fake
    _named_room(store, "padded", name, MALLORY, SigningKey(b"\x02" * 32))
    reader = _reader(tmp_path, store)
    reader.columns = None  # a pipe: 80 columns
    out = reader.run("verify", "--room-id", "padded", check=False).stdout
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert any(line.startswith("    2026-05-28 21:10:00 alice@example.com") for line in lines)
