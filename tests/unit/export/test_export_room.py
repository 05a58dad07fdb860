"""Exporting a hostile room through the app's read path (index, engine audit, pages with
bodies from the index, blobs checked against their signed hash): what the HTML page and
the JSONL say, and what they never let through."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.export import ExportError, ExportExistsError
from bucket_chat_desktop.export.body import body_html
from bucket_chat_desktop.export.html_doc import LOOKALIKE_CHIP
from bucket_chat_desktop.export.runner import (
    ExportSummary,
    export_room,
    files_dir_for,
    suggested_file_name,
)
from bucket_chat_desktop.export.snapshot import snapshot_of
from bucket_chat_desktop.osfiles import DIR_FDS
from bucket_chat_desktop.protocol.attachments import FileInfo, blob_path, file_content
from bucket_chat_desktop.protocol.chain import continue_chain
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.relations import EDIT, REACTION, REDACTION
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.protocol.untrusted_text import body_safe
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import blobs
from bucket_chat_desktop.sync.engine import SyncConfig
from bucket_chat_desktop.sync.session import engine_session
from bucket_chat_desktop.sync.writer import RoomWriter
from bucket_chat_desktop.timestamps import (
    DELETION,
    LATEST_EDIT,
    LateArrival,
    late_arrival,
    late_copy,
    with_zone,
)

ROOM = "plans"
ALICE, BOB = "alice@example.com", "bob@example.com"
HOSTILE = (
    "<script>alert(1)</script> </style><b>x</b> [click](javascript:alert(1)) "
    "[ok](https://example.com/a?b=1&c=2) ![pic](https://tracker.example/p.png) **bold**"
)
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf000000030101007f1e8f2b0000000049454e44ae426082"
)


async def _say(w: RoomWriter, *drafts: Any) -> list[Event]:
    """One event per call, each a millisecond apart (a stable display order); a draft
    may name a parent (a reply), which ``RoomWriter.send`` cannot."""
    if not w._loaded:
        await w.load_head()
    events = continue_chain(
        w._head,
        list(drafts),
        room_id=ROOM,
        sender_id=w.user_id,
        signing_key=w.key,
        timestamp_ms=w._clock(),
        unique=w._unique,
        join={"membership": "join", "displayname": w.displayname},
    )
    w._head = events[-1]
    await w.publish(events)
    return events


def _text(body: str) -> tuple[str, dict[str, Any]]:
    return (MESSAGE, {"body": body, "msgtype": "m.text"})


async def build_room(store: Path) -> dict[str, Event]:
    storage = LocalStorage(store)
    clock = itertools.count(1_790_000_000_000, 1000).__next__
    alice = RoomWriter(
        storage, ROOM, ALICE, SigningKey(b"\x01" * 32), displayname="Alice", clock=clock
    )
    await alice.create_room(
        "Plans </title><script>x()</script>\u202egnp.exe", "2026-09-21T10:00:00.000Z"
    )
    bob = RoomWriter(
        storage, ROOM, BOB, SigningKey(b"\x02" * 32), displayname="Bob\u202e", clock=clock
    )
    # Bob's id with a key nobody introduced: "key changed".
    impostor = RoomWriter(
        storage, ROOM, BOB, SigningKey(b"\x03" * 32), displayname="Bob", clock=clock
    )
    out: dict[str, Event] = {}
    [out["m1"]] = await _say(alice, _text(HOSTILE))
    _, out["m2"] = await _say(bob, _text("abc \u202edcba\u2066 x \u200b end"))
    [out["reply"]] = await _say(alice, (*_text("an answer"), out["m2"].event_id))
    [out["edit"]] = await _say(
        alice,
        (
            EDIT,
            {
                "replaces": out["m1"].event_id,
                "new_content": {"body": "fixed *text*", "msgtype": "m.text"},
            },
        ),
    )
    [out["r_bob"]] = await _say(
        bob, (REACTION, {"relates_to": out["m1"].event_id, "reaction": "👍"})
    )
    [out["r_alice"]] = await _say(
        alice, (REACTION, {"relates_to": out["m1"].event_id, "reaction": "👍"})
    )
    [out["m3"]] = await _say(bob, _text("a secret taken back"))
    [out["red"]] = await _say(bob, (REDACTION, {"redacts": out["m3"].event_id, "reason": "oops"}))
    [out["forged"]] = await _say(
        bob,
        (
            EDIT,
            {
                "replaces": out["m1"].event_id,
                "new_content": {"body": "hijacked", "msgtype": "m.text"},
            },
        ),
    )
    good_sha = hashlib.sha256(PNG).hexdigest()
    await storage.put_if_absent(blob_path(ROOM, good_sha), PNG)
    content = file_content("../../x.png", len(PNG), "image/png", good_sha, width=1, height=1)
    content["info"]["name"] = "../../x.png"  # as a hostile writer would announce it
    [out["image"]] = await _say(alice, (MESSAGE, content))
    announced = b"the real report"
    bad_sha = hashlib.sha256(announced).hexdigest()
    await storage.put_if_absent(blob_path(ROOM, bad_sha), b"the FAKE report")
    [out["bad"]] = await _say(
        bob, (MESSAGE, file_content("report.pdf", len(announced), "application/pdf", bad_sha))
    )
    [out["same"]] = await _say(
        alice, (MESSAGE, file_content("x.png", len(PNG), "image/png", good_sha))
    )
    _, out["fake"] = await _say(impostor, _text("trust me"))
    # An id that looks like Alice's (Cyrillic "а"), under her display name.
    lookalike = RoomWriter(
        storage,
        ROOM,
        "\u0430lice@example.com",
        SigningKey(b"\x04" * 32),
        displayname="Alice",
        clock=clock,
    )
    _, out["lookalike"] = await _say(lookalike, _text("it is me, Alice"))
    await _say(lookalike, (REACTION, {"relates_to": out["m2"].event_id, "reaction": "👀"}))
    await _say(bob, (*_text("really?"), out["lookalike"].event_id))
    return out


async def run_export(
    store: Path,
    data: Path,
    fmt: str,
    path: Path,
    before_blob: Callable[[FileInfo], Awaitable[None]] | None = None,
    late: Mapping[str, LateArrival] | None = None,
    **kw: Any,
) -> tuple[ExportSummary, Any]:
    """As ``bucket-chat export`` reads: the app's read path, bodies from the index.
    ``before_blob(info)``: awaited before each attachment is read (what else happens
    on the disk meanwhile); ``late``: what the app knows arrived long after its date, by
    event id, noted of each copy of it as the app notes a copy (``RoomSnapshot.late``;
    the command line knows none)."""
    storage = LocalStorage(store)
    async with engine_session(
        storage, outbox=False, config=SyncConfig(keep_bodies=False), data_dir=data
    ) as engine:
        await engine.open_room(ROOM, background=False, focus=False)
        view = await engine.room_view(ROOM)
        assert view is not None and view.result is not None
        by_copy = {
            late_copy(e, p, n): late[e]
            for e, p, n in view.result.timeline.copy_keys()
            if late is not None and e in late
        }
        snap = snapshot_of(view, storage.describe(), late=by_copy if late is not None else None)
        result = view.result

        async def page(start: int, stop: int) -> Any:
            return await engine.timeline_page(ROOM, result, start, stop)

        async def blob(info: FileInfo, event_id: str) -> bytes:
            if before_blob is not None:
                await before_blob(info)
            return await blobs.download(engine.storage, ROOM, info, event_id=event_id)

        summary = await export_room(snap, page, blob, fmt=fmt, path=path, page_rows=4, **kw)
        return summary, snap


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Event]]:
    store = tmp_path_factory.mktemp("store")
    events = asyncio.run(build_room(store))
    return store, events


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> tuple[str, Page]:
    raw = path.read_text("utf-8")
    page = Page()
    page.feed(raw)
    page.close()
    return raw, page


# -- HTML -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def html_export(
    room: tuple[Path, dict[str, Event]], tmp_path_factory: pytest.TempPathFactory
) -> Any:
    store, events = room
    out = tmp_path_factory.mktemp("out")
    path = out / "plans.html"
    summary, snap = asyncio.run(run_export(store, out / "data", "html", path))
    raw, page = parse(path)
    return summary, snap, raw, page, events, out


def test_html_has_no_script_no_remote_resource_and_a_csp(html_export: Any) -> None:
    summary, _, raw, page, _, _out = html_export
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "iframe" not in tags and "object" not in tags
    assert tags.count("style") == 1
    csp = [
        a for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp and "default-src 'none'" in str(csp[0]["content"])
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("href", "src"):
                assert value is not None
                assert not value.lower().startswith(("javascript:", "data:", "vbscript:"))
                if tag == "img":
                    assert value.startswith("plans_files/"), value
                if name == "href" and not value.startswith(("#", "plans_files/")):
                    assert value.startswith(("https://", "http://", "mailto:")), value
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    assert "&lt;/style&gt;&lt;b&gt;x&lt;/b&gt;" in raw and "<b>x</b>" not in raw
    # the remote image is a link, never loaded
    assert '<a href="https://tracker.example/p.png" rel="noopener noreferrer nofollow">' in raw
    assert summary.events > 0


def test_bidi_and_invisible_characters_are_spelled_out(html_export: Any) -> None:
    _, _, raw, _, _, _ = html_export
    for ch in "\u202e\u2066\u200b":
        assert ch not in raw
    assert "abc \\u202edcba\\u2066 x \\u200b end" in raw
    assert "gnp.exe" in raw  # the room name, without its override
    # Bob's join is not verified (two keys claim his id): it names nobody.
    assert "Bob\u202e" not in raw and "<bdi>Bob" not in raw
    quote = raw[raw.index('<blockquote class="quote">') :]
    assert "<bdi>abc dcba x end</bdi>" in quote[: quote.index("</blockquote>")]


def test_a_lookalike_id_is_marked(html_export: Any) -> None:
    _, _, raw, _, _, _ = html_export
    row = raw[: raw.index("it is me, Alice")]
    row = row[row.rindex("<li ") :]
    assert "\u0430lice@example.com" in row and "⚠ look-alike id" in row
    assert "mixes Cyrillic and Latin letters" in row


def test_a_quote_and_a_reaction_mark_a_lookalike_as_its_row_does(html_export: Any) -> None:
    """Red team: a reply's quote and a chip's reactors named a look-alike id unmarked."""
    raw = html_export[2]
    row = raw[: raw.index("really?")]
    quote = row[row.rindex('<blockquote class="quote">') :]
    assert "\u0430lice@example.com" in quote and "⚠ look-alike id" in quote
    assert "mixes Cyrillic and Latin letters" in quote
    chip = raw[raw.index("<bdi>👀</bdi>") :]
    assert "⚠ look-alike id" in chip[: chip.index("</div>")]


def test_every_message_has_a_trust_badge_and_the_impostor_is_marked(html_export: Any) -> None:
    _, snap, raw, page, _events, _ = html_export
    items = [a for t, a in page.tags if t == "li" and a.get("class")]
    badges = [a for t, a in page.tags if t == "span" and "badge" in str(a.get("class"))]
    assert len(badges) >= len(items)
    fake = raw[raw.index("trust me") - 1500 : raw.index("trust me")]
    assert "KEY CHANGED" in fake
    assert 'class="msg t-key-changed"' in raw
    assert snap.counts["key-changed"] >= 1


def test_edits_deletions_reactions_and_replies(html_export: Any) -> None:
    _, _, raw, _, _, _ = html_export
    assert "fixed <em>text</em>" in raw and "(edited)" in raw
    assert "Previous versions (1)" in raw  # the original, with its hostile text escaped
    assert "hijacked" not in raw  # Bob's edit of Alice's message is not applied
    assert "a secret taken back" not in raw
    assert "Message deleted by its sender" in raw and "oops" in raw
    assert "<bdi>👍</bdi> <b>2</b>" in raw
    quote = raw[raw.index('<blockquote class="quote">') :]
    assert quote.index("abc dcba") < quote.index("an answer")
    assert '<p class="thread">1 reply in this thread</p>' in raw


def test_the_verdict_names_the_forged_edit(html_export: Any) -> None:
    _, snap, raw, _, _, _ = html_export
    assert not snap.clean or any(f.kind.value == "relation-not-sender" for f in snap.findings)
    assert "relation-not-sender" in raw
    assert "Audit:" in raw


def test_attachments_are_checked_named_safely_and_copied_once(html_export: Any) -> None:
    summary, _, raw, _, _, out = html_export
    folder = files_dir_for(out / "plans.html")
    assert summary.files_dir == folder
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["_.._x.png"]  # "../../x.png" made safe; the same blob announced twice
    assert (folder / "_.._x.png").read_bytes() == PNG
    assert not (out / "x.png").exists() and not (out.parent / "x.png").exists()
    assert '<img src="plans_files/_.._x.png"' in raw
    assert summary.copied == 1
    assert [n for n, _ in summary.not_copied] == ["report.pdf"]
    assert "does not match the signed message" in summary.not_copied[0][1]
    assert not any("FAKE" in p.read_text("latin-1") for p in folder.iterdir())
    bad = raw[raw.index("report.pdf") - 200 :]
    assert "not copied: the file in the storage does not match" in bad


def test_a_program_under_a_harmless_name_is_copied_but_not_linked(tmp_path: Path) -> None:
    """Red team: the page linked a file whose name runs nothing ("agenda", "notes.zzz")
    whatever its bytes were; a browser that opens a local file with no known extension
    sniffs it, and runs an HTML one's scripts. Now the bytes count too, as for a name
    that runs code: the file is copied (checked) and named, not linked."""
    store = tmp_path / "store"
    page_bytes = b"<!DOCTYPE html><html><script>document.title='pwned'</script></html>"
    program = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 56

    async def build() -> None:
        storage = LocalStorage(store)
        clock = itertools.count(1_790_000_000_000, 1000).__next__
        alice = RoomWriter(
            storage, ROOM, ALICE, SigningKey(b"\x01" * 32), displayname="Alice", clock=clock
        )
        await alice.create_room("Plans", "2026-09-21T10:00:00.000Z")
        for name, data in (("agenda", page_bytes), ("notes.zzz", program), ("fine.txt", b"ok")):
            sha = hashlib.sha256(data).hexdigest()
            await storage.put_if_absent(blob_path(ROOM, sha), data)
            await _say(alice, (MESSAGE, file_content(name, len(data), "text/plain", sha)))

    asyncio.run(build())
    path = tmp_path / "out" / "plans.html"
    path.parent.mkdir()
    summary, _ = asyncio.run(run_export(store, tmp_path / "data", "html", path))
    assert summary.copied == 3
    folder = files_dir_for(path)
    assert (folder / "agenda").read_bytes() == page_bytes
    raw, page = parse(path)
    hrefs = [a.get("href") for t, a in page.tags if t == "a"]
    assert "plans_files/fine.txt" in hrefs
    assert "plans_files/agenda" not in hrefs and "plans_files/notes.zzz" not in hrefs
    assert "<code>plans_files/agenda</code>, not linked" in raw


CONTRACT = b"%PDF-1.4 the signed contract\n" * 40


def _contract_room(store: Path, sizes: list[tuple[str, int]]) -> None:
    """A room whose storage holds ``CONTRACT``, with a file message naming it by its
    SHA-256 under each (name, size) of ``sizes``, in order."""
    sha = hashlib.sha256(CONTRACT).hexdigest()

    async def build() -> None:
        storage = LocalStorage(store)
        clock = itertools.count(1_790_000_000_000, 1000).__next__
        alice = RoomWriter(
            storage, ROOM, ALICE, SigningKey(b"\x01" * 32), displayname="Alice", clock=clock
        )
        await alice.create_room("Plans", "2026-09-21T10:00:00.000Z")
        await storage.put_if_absent(blob_path(ROOM, sha), CONTRACT)
        for name, size in sizes:
            await _say(alice, (MESSAGE, file_content(name, size, "text/plain", sha)))

    asyncio.run(build())


@pytest.mark.parametrize("delta", [+1, -1])
def test_a_message_that_lies_about_a_files_size_is_not_linked_to_it(
    tmp_path: Path, delta: int
) -> None:
    """Red team rt55: a message naming another's file by its SHA-256 with a wrong size
    was linked to that file (copied once, by hash) under the size it claims; and its
    read blamed the storage. It is named as what does not match, and not linked.
    Red team rt56: a size SMALLER than the file's still blamed the storage ("changed or
    damaged": the read, capped at the size the message says, was refused as too large).
    The file of that SHA-256 was copied, verified, already: the message is blamed, and
    the storage is not read again."""
    store = tmp_path / "store"
    _contract_room(store, [("contract.pdf", len(CONTRACT)), ("v2.pdf", len(CONTRACT) + delta)])
    path = tmp_path / "out" / "plans.html"
    path.parent.mkdir()
    summary, _ = asyncio.run(run_export(store, tmp_path / "data", "html", path))
    assert summary.copied == 1
    raw, page = parse(path)
    hrefs = [a.get("href") for t, a in page.tags if t == "a"]
    assert hrefs.count("plans_files/contract.pdf") == 1
    assert (
        "the signed message does not describe its file (the signed message says "
        f"{len(CONTRACT) + delta:,} bytes, but the file of its SHA-256 has {len(CONTRACT):,} "
        "(this export copied it))"
    ) in html.unescape(raw)
    assert "changed or damaged" not in raw


def test_a_message_that_understates_a_files_size_blames_neither(tmp_path: Path) -> None:
    """Red team rt56: without an earlier copy, a message whose size is smaller than its
    file's gets a stored object larger than it says, refused unread: either may be
    wrong (a damaged file, or the right one under a wrong size), and neither is blamed."""
    store = tmp_path / "store"
    _contract_room(store, [("contract-v2.pdf", len(CONTRACT) - 1)])
    path = tmp_path / "out" / "plans.html"
    path.parent.mkdir()
    summary, _ = asyncio.run(run_export(store, tmp_path / "data", "html", path))
    assert summary.copied == 0
    raw, _page = parse(path)
    assert (
        "the file in the storage and the signed message disagree (the stored object is "
        f"larger than the announced {blobs.human_size(len(CONTRACT) - 1)}); either may be wrong"
    ) in html.unescape(raw)
    assert "changed or damaged" not in raw


# -- JSONL ------------------------------------------------------------------------------


def test_jsonl_header_lines_and_trust(room: tuple[Path, dict[str, Event]], tmp_path: Path) -> None:
    store, events = room
    path = tmp_path / "plans.jsonl"
    summary, snap = asyncio.run(run_export(store, tmp_path / "data", "jsonl", path))
    lines = [json.loads(line) for line in path.read_text("ascii").splitlines()]
    header, rows = lines[0], lines[1:]
    assert header["format"] == "bucket-chat-export" and header["version"] == 1
    assert header["room_id"] == ROOM and header["events"] == snap.total
    assert header["verdict"] == ("clean" if snap.clean else "findings")
    assert header["finding_kinds"]["relation-not-sender"] == 1
    assert sum(header["counts"].values()) == snap.total + header["counts"]["invalid"]
    assert len(rows) == summary.events == snap.total
    by_id = {r["event"]["event_id"]: r for r in rows}
    for r in rows:
        assert r["trust"]["state"] in ("verified", "unverified", "key-changed")
    m1 = by_id[events["m1"].event_id]
    assert m1["event"] == dict(events["m1"].raw)  # the event as read
    assert [e["body"] for e in m1["relations"]["edits"]] == ["fixed *text*"]
    [chip] = m1["relations"]["reactions"]
    assert chip["reaction"] == "👍" and chip["count"] == 2
    assert by_id[events["forged"].event_id]["relation"] == {
        "kind": "edit",
        "target": events["m1"].event_id,
        "applied": False,
    }
    assert by_id[events["r_bob"].event_id]["relation"]["applied"] is True
    m3 = by_id[events["m3"].event_id]
    assert m3["event"]["content"] == {} and "content_withheld" in m3
    assert m3["relations"]["redacted"]["reason"] == "oops"
    assert by_id[events["fake"].event_id]["trust"]["state"] == "key-changed"
    assert by_id[events["reply"].event_id]["thread_root"] == events["m2"].event_id
    assert "a secret taken back" not in path.read_text("ascii")


# -- what the app knows: messages that arrived long after their date ---------------------


def _arrived_late(events: dict[str, Event], *names: str) -> dict[str, LateArrival]:
    """As the app notes them (``Controller._note_late``): each read four weeks after
    its date; and an id no row of the room has."""
    notes = {}
    for name in names:
        ev = events[name]
        late = late_arrival(ev.timestamp_ms, ev.timestamp_ms + 28 * 86_400_000)
        assert late is not None
        notes[ev.event_id] = late
    return {**notes, "plans::not-in-this-room": next(iter(notes.values()))}


def test_the_html_says_below_a_message_that_it_arrived_long_after_its_date(
    room: tuple[Path, dict[str, Event]], tmp_path: Path
) -> None:
    """Red team rt83: the app's row of such a message says so; its export said nothing.
    Each row of a message the app saw arrive late (an edited one, a deleted one) carries
    the row's sentence, its times with their UTC offset; a reaction under such an id is
    no message and says nothing; the footer counts them."""
    store, events = room
    path = tmp_path / "plans.html"
    notes = _arrived_late(events, "m1", "m3", "r_bob")
    summary, _snap = asyncio.run(run_export(store, tmp_path / "d", "html", path, late=notes))
    raw = path.read_text("utf-8")
    rows = raw.split("<li ")
    said = [r for r in rows if "long after its date" in r]
    assert len(said) == 2 and summary.late == 2
    for name, row in zip(("m1", "m3"), said, strict=True):
        ev = events[name]
        assert row.startswith('class="msg ') and row.split('"')[1].split()[-1] == "late"
        note = notes[ev.event_id].note_with_zone()
        assert f'<p class="why late">⚠ {html.escape(note)}.</p>' in row, row
        assert f"dated {with_zone(ev.timestamp_ms)}" in note
    assert "Message deleted by its sender" in said[1]  # its text stays out
    assert "a secret taken back" not in raw
    assert "2 messages arrived long after the dates they bear" in raw


def test_the_jsonl_line_of_a_message_that_arrived_long_after_its_date_says_so(
    room: tuple[Path, dict[str, Event]], tmp_path: Path
) -> None:
    """``arrived_late``: when this device first read it and the HTML's sentence; on the
    message lines the app noted, on no relation line (a reaction's id noted by mistake
    says nothing), and in no export of the command line (which knows none)."""
    store, events = room
    path = tmp_path / "plans.jsonl"
    notes = _arrived_late(events, "m1", "m3", "r_bob")
    summary, _snap = asyncio.run(run_export(store, tmp_path / "d", "jsonl", path, late=notes))
    rows = [json.loads(line) for line in path.read_text("ascii").splitlines()][1:]
    said = {r["event"]["event_id"]: r["arrived_late"] for r in rows if "arrived_late" in r}
    assert set(said) == {events["m1"].event_id, events["m3"].event_id}
    assert summary.late == 2
    for name in ("m1", "m3"):
        late = notes[events[name].event_id]
        assert said[events[name].event_id] == {
            "arrived_ms": late.arrived_ms,
            "note": late.note_with_zone(),
        }
    plain = tmp_path / "cli.jsonl"
    summary, snap = asyncio.run(run_export(store, tmp_path / "d2", "jsonl", plain))
    assert not snap.late and summary.late == 0
    assert "arrived_late" not in plain.read_text("ascii")
    page = tmp_path / "cli.html"
    asyncio.run(run_export(store, tmp_path / "d3", "html", page))
    assert "long after" not in page.read_text("utf-8")


# -- the output file ----------------------------------------------------------------------


def test_the_jsonl_says_which_reactors_are_verified_only_on_trial() -> None:
    """An export made in the app while older history loads (red team rt92, as in
    ``history --json``): a reactor whose key nobody introduced yet says "verified" as a
    final one does; only the header's ``complete: false`` told them apart. Each sender,
    and its chip, now say ``provisional``."""
    from bucket_chat_desktop.export.jsonl_doc import relations_json
    from bucket_chat_desktop.protocol import relations
    from bucket_chat_desktop.protocol.audit import PROVISIONAL_REASON, Assessed, TrustState

    def row(n: int, sender: str, seed: int, kind: str, content: Any, reason: str = "") -> Any:
        ev = build_event(
            room_id="r",
            sender_id=sender,
            event_type=kind,
            content=content,
            timestamp_ms=1_700_000_000_000 + n,
            unique=f"u{n}",
            prev_event_hash=None,
            signing_key=SigningKey(bytes([seed]) * 32),
        )
        return Assessed(ev, TrustState.VERIFIED, reason, "p", n)

    target = row(0, "bob@example.com", 2, MESSAGE, {"body": "lunch?", "msgtype": "m.text"})
    thumbs = {"relates_to": target.event.event_id, "reaction": "👍"}
    rows = [
        target,
        row(1, "bob@example.com", 2, REACTION, thumbs),
        row(2, "alice@example.com", 66, REACTION, thumbs, PROVISIONAL_REASON),
    ]
    agg = relations.build("r", rows).of(target.event.event_id)
    assert agg is not None
    (chip,) = relations_json(agg)["reactions"]
    assert chip["trust"] == "verified" and chip["provisional"] is True
    assert [(s["sender_id"], s["trust"], s["provisional"]) for s in chip["senders"]] == [
        ("bob@example.com", "verified", False),
        ("alice@example.com", "verified", True),
    ]


def test_an_existing_export_is_not_overwritten_without_force(
    room: tuple[Path, dict[str, Event]], tmp_path: Path
) -> None:
    store, _ = room
    path = tmp_path / "x.jsonl"
    path.write_text("mine")
    with pytest.raises(ExportExistsError):
        asyncio.run(run_export(store, tmp_path / "data", "jsonl", path))
    assert path.read_text() == "mine"
    asyncio.run(run_export(store, tmp_path / "data", "jsonl", path, force=True))
    assert path.read_text("ascii").startswith('{"format":"bucket-chat-export"')


def test_a_cancelled_export_leaves_nothing(
    room: tuple[Path, dict[str, Event]], tmp_path: Path
) -> None:
    store, _ = room
    path = tmp_path / "c.html"
    seen: list[int] = []

    async def scenario() -> None:
        def progress(done: int, total: int) -> None:
            seen.append(done)
            if done >= 8:
                raise asyncio.CancelledError  # as a task cancelled between pages

        with pytest.raises(asyncio.CancelledError):
            await run_export(store, tmp_path / "data", "html", path, progress=progress)

    asyncio.run(scenario())
    assert seen and not path.exists()
    assert not files_dir_for(path).exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_storage_removed_mid_export_says_so_and_leaves_nothing(
    room: tuple[Path, dict[str, Event]], tmp_path: Path
) -> None:
    """The export reads pinned pages: a room read again no longer stops it, so what does
    is the storage removed (or the room left) meanwhile. It used to say "the room was
    read again ... (its audit changed)": the wrong cause, and no way to avoid it."""
    store, _ = room
    path = tmp_path / "gone.jsonl"

    async def scenario() -> None:
        storage = LocalStorage(store)
        config = SyncConfig(keep_bodies=False)
        async with engine_session(
            storage, outbox=False, config=config, data_dir=tmp_path / "data"
        ) as engine:
            await engine.open_room(ROOM, background=False, focus=False)
            view = await engine.room_view(ROOM)
            assert view is not None and view.result is not None
            result = view.result

            async def page(start: int, stop: int) -> Any:
                if start:
                    await engine.close()  # the storage removed after the first page
                return await engine.timeline_page(ROOM, result, start, stop, pinned=True)

            snap = snapshot_of(view, storage.describe())
            with pytest.raises(ExportError) as failed:
                await export_room(snap, page, None, fmt="jsonl", path=path, page_rows=4)
            assert "read again" not in str(failed.value)
            assert "no longer be read" in str(failed.value)

    asyncio.run(scenario())
    assert not path.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.timeout(60)
def test_attachments_a_storage_never_answers_for_do_not_hold_the_export(
    room: tuple[Path, dict[str, Event]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Red team: a storage that answers the room but never the files (a provider holding
    the connections open). ``bucket-chat export`` gives up reading the room after 30 s
    without an answer, yet waited for each attachment as long as the storage's own
    timeouts let it (90 s with the defaults; for ever here), one after the other. Now a
    file gets the same deadline, and after one unanswered file the others are not asked
    for: the page says why each is missing, and the export is written."""
    import argparse

    from bucket_chat_desktop.cli import export_cmd

    store, _ = room
    asked: list[str] = []

    class FilesHang(LocalStorage):
        async def get(self, path: str, **kw: Any) -> bytes:
            if "/blobs/" in path:
                asked.append(path)
                await asyncio.sleep(3600)
            return await super().get(path, **kw)

    monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BUCKET_CHAT_INTERACTIVE_DEADLINE", "0.5")
    monkeypatch.setattr(export_cmd, "READ_NO_ANSWER", 0.5)
    path = tmp_path / "plans.html"
    args = argparse.Namespace(output=str(path), format="html", force=False, max_attachment_mb=10)
    code = asyncio.run(export_cmd.run_export(args, FilesHang(store), ROOM))  # never waits an hour
    assert code == 0 and path.exists()
    assert len(asked) == 1, asked  # the others were not asked for
    err = capsys.readouterr().err
    missing = [line for line in err.splitlines() if "NOT COPIED" in line]
    assert len(missing) >= 2 and all("no answer" in line for line in missing), err
    # each says the deadline the export gave up on (the lines are wrapped)
    assert " ".join(err.split()).count("within 0.5 s") == len(missing), err


# -- bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "absent", "present"),
    [
        ("<script>alert(1)</script>", "<script", "&lt;script&gt;"),
        ("</style><style>*{display:none}", "</style>", "&lt;/style&gt;"),
        ("[x](javascript:alert(1))", 'href="javascript', "[x](javascript:alert(1))"),
        ("[x](JaVaScRiPt:alert(1))", "href=", "[x]"),
        ("<img src=x onerror=alert(1)>", "<img", "&lt;img"),
        ("![i](file:///etc/passwd)", "<img", "![i](file:///etc/passwd)"),
        ("![i](https://x.example/i.png)", "<img", "[image: i]"),
        ('[a](https://x.example/" onmouseover="x)', 'onmouseover="x"', "https://x.example/"),
    ],
)
def test_a_hostile_body_stays_text(body: str, absent: str, present: str) -> None:
    out = body_html(body)
    assert absent not in out
    assert present in out


def _seen(html: str) -> str:
    """The text a browser shows of ``html`` (attributes are not shown)."""
    page = Page()
    page.feed(html)
    page.close()
    return "".join(page.text)


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        # a link that reads as one address and goes to another
        ("[https://bank.example/login](https://evil.example/x)", "(evil.example)"),
        ("[our docs](https://docs.example/a)", "our docs (docs.example)"),
        # a look-alike (Cyrillic "а") address: the page goes to its punycode form
        ("[https://b\u0430nk.example](https://b\u0430nk.example)", "(xn--bnk-6cd.example)"),
        ("[write to us](mailto:evil@example.org?subject=x)", "(evil@example.org)"),
    ],
)
def test_a_link_says_where_it_goes(body: str, shown: str) -> None:
    """Red team (round 24): the export keeps http(s) and mailto links clickable, and a
    link showed only its text: "https://bank.example/login" opened evil.example, with
    a "verified" badge beside it. A link whose text is not its address now shows where
    it goes (the host, as the browser will go to it; a mailto's address)."""
    assert shown in _seen(body_html(body))


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        # RFC 6068: the address may be left out and given in a "to" header instead
        ("[support@bank.example](mailto:?to=evil@evil.example)", "(evil@evil.example)"),
        # ... or added to: the mail goes to both
        (
            "[support@bank.example](mailto:support@bank.example?to=evil@evil.example)",
            "(support@bank.example, evil@evil.example)",
        ),
        # a copy, a blind copy, whatever the header's case; several in one header
        (
            "[write to support](mailto:support@bank.example?Cc=a@x.example,b@x.example"
            "&BCC=evil@evil.example)",
            "(support@bank.example, cc: a@x.example, cc: b@x.example, bcc: evil@evil.example)",
        ),
        # percent-decoded; a "+" is a plus; a look-alike letter stays encoded
        (
            "[support](mailto:sup%D1%80ort@bank.example?to=evil%40evil.example&cc=a+b@x.example)",
            "(sup%D1%80ort@bank.example, evil@evil.example, cc: a+b@x.example)",
        ),
        ("[support](mailto:?subject=hello)", "(no address)"),
        # a bidi control in a header is never written into the page
        ("[support](mailto:?to=%E2%80%AEelpmaxe.live@evil)", "(%E2%80%AEelpmaxe.live@evil)"),
    ],
)
def test_a_mailto_link_names_every_address_it_writes_to(body: str, shown: str) -> None:
    """Red team rt54: the note after a mailto link named only what stands before its
    "?": ``[support@bank.example](mailto:?to=evil@evil.example)`` read as going to
    "()", and a "to", "cc" or "bcc" header added the attacker unseen to whatever the
    reader writes to the bank. Every address of the path and of those headers is named."""
    out = body_html(body)
    assert shown in _seen(out), _seen(out)
    assert "\u202e" not in out


def test_a_mailto_link_with_many_addresses_says_how_many_more_and_where() -> None:
    """Red team rt54: the note is bounded, and what it leaves out it counts, by header: a
    blind copy pushed behind eight addresses is still said to be there; a long address
    keeps its domain (cut in its middle)."""
    many = ",".join(f"a{i}@x.example" for i in range(9))
    seen = _seen(body_html(f"[support](mailto:{many}?bcc=evil@evil.example)"))
    assert "and 2 more (to, bcc)" in seen, seen
    seen = _seen(body_html(f"[support](mailto:support-{'x' * 200}@evil.example)"))
    assert "…" in seen and seen.rstrip(")").endswith("@evil.example"), seen


def test_a_plain_address_link_is_not_repeated() -> None:
    out = body_html("see <https://x.example/a> and **this**")
    assert _seen(out) == "see https://x.example/a and this"


@pytest.mark.parametrize(
    "body",
    [
        "pay &#x202E;fdp.exe **now**",
        "plain &#8238;fdp.exe",
        "hidden&#x200B;text and &rlm;marks",
        "[&#x202e;knil](https://x.example)",
        "![&#x202e;gnp](https://x.example/i.png)",
    ],
)
def test_a_character_reference_cannot_bring_back_a_control(body: str) -> None:
    """Red team (round 24): a body's bidi and invisible characters are spelled out
    before it is formatted, but Markdown decodes character references afterwards:
    "&#x202E;" put a real right-to-left override into the page ("fdp.exe" read as
    "exe.pdf"). What the references decode to is spelled out too."""
    out = body_html(body)
    assert not any(ch in out for ch in "\u202e\u200b\u200f"), out
    assert "\\u202e" in out.lower() or "\\u200b" in out


def test_body_safe_keeps_emoji_and_scripts_and_spells_out_controls() -> None:
    family = "👨\u200d👩\u200d👧"
    assert body_safe(family) == family
    assert body_safe("שלום مرحبا\nnext\tline") == "שלום مرحبا\nnext\tline"
    assert body_safe("a\u202eb\x1b[31mc\u2028d") == "a\\u202eb\\x1b[31mc\nd"
    assert body_safe("x\u200by\u2067z") == "x\\u200by\\u2067z"


def test_a_huge_body_is_plain_text_with_a_note() -> None:
    out = body_html("*" * 50_000)
    assert 'class="plain"' in out and "too long to format" in out


def test_the_cli_reports_progress_on_big_rooms_only(capsys: pytest.CaptureFixture[str]) -> None:
    from bucket_chat_desktop.cli.export_cmd import _Progress

    small = _Progress()
    small(0, 4_999)
    small(4_999, 4_999)
    big = _Progress()
    big(0, 100_000)
    big(500, 100_000)  # within two seconds of the last line: quiet
    big(100_000, 100_000)  # the last one always
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "exporting: 0 of 100,000 events",
        "exporting: 100,000 of 100,000 events",
    ]


@pytest.mark.parametrize(
    "text",
    ["hello world", "a\nb\nc", "שלום עולם", "email a@b.c, (ok)?", "x\u200dy", "tab\there", "x1"],
)
def test_the_plain_fast_path_renders_as_the_markdown_parser_would(text: str) -> None:
    from bucket_chat_desktop.export.body import _parser, is_plain

    safe = body_safe(text)
    assert is_plain(safe)
    assert body_html(text) == _parser().render(safe).strip()


def test_no_text_taken_back_is_in_either_export(tmp_path: Path) -> None:
    """Red team: a deleted message's edits (and edits of those) hold its later texts, and
    a deleted edit holds a text taken back: the JSONL wrote those relation events whole,
    so a message deleted after a correction was still readable in the export."""
    store = tmp_path / "store"

    async def build() -> dict[str, Event]:
        storage = LocalStorage(store)
        clock = itertools.count(1_790_000_000_000, 1000).__next__
        bob = RoomWriter(storage, ROOM, BOB, SigningKey(b"\x02" * 32), clock=clock)
        await bob.create_room("Secrets", "2026-09-21T10:00:00.000Z")
        out: dict[str, Event] = {}
        [out["m"]] = await _say(bob, _text("first secret"))

        def edit(target: Event, body: str) -> tuple[str, dict[str, Any]]:
            content = {"replaces": target.event_id, "new_content": {"body": body}}
            return (EDIT, content)

        [out["e1"]] = await _say(bob, edit(out["m"], "second secret"))
        [out["e2"]] = await _say(bob, edit(out["e1"], "third secret"))
        await _say(bob, (REDACTION, {"redacts": out["m"].event_id}))
        [out["kept"]] = await _say(bob, _text("still here"))
        [out["e3"]] = await _say(bob, edit(out["kept"], "fourth secret"))
        await _say(bob, (REDACTION, {"redacts": out["e3"].event_id}))
        return out

    events = asyncio.run(build())
    for fmt in ("jsonl", "html"):
        path = tmp_path / f"secrets.{fmt}"
        asyncio.run(run_export(store, tmp_path / f"data-{fmt}", fmt, path))
        text = path.read_text("utf-8")
        assert "still here" in text
        for secret in ("first", "second", "third", "fourth"):
            assert f"{secret} secret" not in text, (fmt, secret)
    rows = [json.loads(line) for line in (tmp_path / "secrets.jsonl").read_text().splitlines()]
    by_id = {r["event"]["event_id"]: r for r in rows[1:]}
    for name in ("e1", "e2", "e3"):
        row = by_id[events[name].event_id]
        assert "content_withheld" in row and "new_content" not in row["event"]["content"]
        assert row["relation"]["target"] == row["event"]["content"]["replaces"]


def test_a_quote_of_a_question_edited_after_its_answer_says_edited(tmp_path: Path) -> None:
    """Red team (round 24): Bob asks for 500, Alice answers yes, Bob changes his question
    to 5,000. Alice's answer quoted the new question as if she had said yes to it; the
    quote now says the text it shows is an edit's."""
    store = tmp_path / "store"

    async def build() -> None:
        storage = LocalStorage(store)
        clock = itertools.count(1_790_000_000_000, 1000).__next__
        bob = RoomWriter(storage, ROOM, BOB, SigningKey(b"\x02" * 32), clock=clock)
        alice = RoomWriter(storage, ROOM, ALICE, SigningKey(b"\x01" * 32), clock=clock)
        await bob.create_room("Budget", "2026-09-21T10:00:00.000Z")
        [ask] = await _say(bob, _text("May I take 500 from the budget?"))
        *_, yes = await _say(alice, (*_text("Yes, go ahead."), ask.event_id))  # joins too
        await _say(alice, (*_text("Lunch at noon."), yes.event_id))  # quotes an unedited one
        new = {"body": "May I take 5,000 from the budget?", "msgtype": "m.text"}
        await _say(bob, (EDIT, {"replaces": ask.event_id, "new_content": new}))

    asyncio.run(build())
    path = tmp_path / "budget.html"
    asyncio.run(run_export(store, tmp_path / "data", "html", path))
    quotes = path.read_text("utf-8").split("<blockquote")[1:]
    assert len(quotes) == 2
    edited, plain = (q for q in quotes if "5,000" in q), (q for q in quotes if "5,000" not in q)
    assert ">(edited)</span>: <bdi>May I take 5,000" in next(edited)
    assert "(edited)" not in next(plain)


def test_two_files_under_one_longest_name_are_both_copied(tmp_path: Path) -> None:
    """Red team: two different files announced under one name of 255 bytes. The second
    file's name was made unique by adding " (2)" and cutting the name back to 255 bytes,
    which cut the " (2)" off again: the same name, for ever. The export never ended
    (a loop that no Cancel could stop)."""
    store = tmp_path / "store"
    name = "r" * 300 + ".png"
    blobs_ = [PNG, PNG + b"another image"]

    async def build() -> None:
        storage = LocalStorage(store)
        clock = itertools.count(1_790_000_000_000, 1000).__next__
        bob = RoomWriter(storage, ROOM, BOB, SigningKey(b"\x02" * 32), clock=clock)
        await bob.create_room("Files", "2026-09-21T10:00:00.000Z")
        for data in blobs_:
            sha = hashlib.sha256(data).hexdigest()
            await storage.put_if_absent(blob_path(ROOM, sha), data)
            await _say(bob, (MESSAGE, file_content(name, len(data), "image/png", sha)))

    asyncio.run(build())
    path = tmp_path / "files.html"
    done: list[ExportSummary] = []
    worker = threading.Thread(
        target=lambda: done.append(asyncio.run(run_export(store, tmp_path / "d", "html", path))[0]),
        daemon=True,  # a loop for ever must not keep the test run alive
    )
    worker.start()
    worker.join(10)
    assert done, "the export did not end"
    files = sorted(files_dir_for(path).iterdir())
    assert done[0].copied == 2 and len(files) == 2
    assert sorted(p.read_bytes() for p in files) == sorted(blobs_)
    assert all(len(p.name.encode()) <= 255 and p.suffix == ".png" for p in files)


def test_the_name_suggested_for_a_room_of_a_long_name_can_be_written(tmp_path: Path) -> None:
    """Red team: a room named with 200 characters of CJK (or emoji) - the most a room
    list shows. The app suggested the room's name as a file name of 255 bytes plus
    ".html": too long for any file system, so the export failed unless the person
    thought of renaming it; and its attachments folder (``<name>_files``) too. A file
    named with 83 CJK characters (253 bytes) was not copied: the temporary file it is
    written through was named after its first 200 characters, 273 bytes."""
    store = tmp_path / "store"
    name = "会议记录" * 50

    async def build() -> None:
        storage = LocalStorage(store)
        clock = itertools.count(1_790_000_000_000, 1000).__next__
        bob = RoomWriter(storage, ROOM, BOB, SigningKey(b"\x02" * 32), clock=clock)
        await bob.create_room(name, "2026-09-21T10:00:00.000Z")
        sha = hashlib.sha256(PNG).hexdigest()
        await storage.put_if_absent(blob_path(ROOM, sha), PNG)
        picture = "图" * 83 + ".png"  # 253 bytes
        await _say(bob, (MESSAGE, file_content(picture, len(PNG), "image/png", sha)))

    asyncio.run(build())
    for fmt in ("html", "jsonl"):
        path = tmp_path / suggested_file_name(name, fmt)
        assert path.suffix == f".{fmt}" and path.stem.startswith("会议记录")
        summary, _ = asyncio.run(run_export(store, tmp_path / f"d-{fmt}", fmt, path))
        assert path.is_file() and summary.copied == (fmt == "html")
        assert summary.not_copied == []
    (copy,) = files_dir_for(tmp_path / suggested_file_name(name, "html")).iterdir()
    assert copy.name == "图" * 83 + ".png" and copy.read_bytes() == PNG
    assert suggested_file_name("Design <i>review</i>", "html") == "Design _i_review__i_.html"
    assert suggested_file_name("\u202e", "jsonl") == "room.jsonl"


def test_an_id_two_devices_signed_exports_each_copy_with_its_own_file(tmp_path: Path) -> None:
    """Red team: Mallory signs a file message of her own under Bob's event id, in a
    segment that sorts first (PROTOCOL.md section 6 step 1). Both rows are exported, and
    the copied files were keyed by event id: one row's file stood under the other's.
    Each row now links its own file, and a reply to the id quotes neither copy."""
    store = tmp_path / "store"
    bob_png, mallory_png = PNG, PNG + b"mallory's picture"

    async def build() -> None:
        storage = LocalStorage(store)
        clock = itertools.count(1_790_000_000_000, 1000).__next__
        bob = RoomWriter(storage, ROOM, BOB, SigningKey(b"\x02" * 32), clock=clock)
        await bob.create_room("Files", "2026-09-21T10:00:00.000Z")
        shas = {}
        for data in (bob_png, mallory_png):
            shas[data] = hashlib.sha256(data).hexdigest()
            await storage.put_if_absent(blob_path(ROOM, shas[data]), data)
        [mine] = await _say(
            bob, (MESSAGE, file_content("bob.png", len(bob_png), "image/png", shas[bob_png]))
        )
        await _say(bob, (*_text("see above"), mine.event_id))
        key = SigningKey(b"\x09" * 32)
        join = build_event(
            room_id=ROOM,
            sender_id="mallory@example.com",
            event_type=MEMBER,
            content={"membership": "join"},
            timestamp_ms=1_000,
            unique="00000000-0000-4000-8000-000000000009",
            prev_event_hash=None,
            signing_key=key,
        )
        copy = build_event(
            room_id=ROOM,
            sender_id="mallory@example.com",
            event_type=MESSAGE,
            content=file_content("mallory.png", len(mallory_png), "image/png", shas[mallory_png]),
            timestamp_ms=mine.timestamp_ms,
            unique=mine.event_id.rsplit("::", 1)[1],
            prev_event_hash=join.hash,
            signing_key=key,
        )
        assert copy.event_id == mine.event_id
        path = store / path_for([join, copy], "a-mallory")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_segment([join, copy]))

    asyncio.run(build())
    html = tmp_path / "files.html"
    summary, snap = asyncio.run(run_export(store, tmp_path / "d", "html", html))
    assert snap.result.timeline.repeated and summary.copied == 2
    raw = html.read_text("utf-8")
    rows = [r for r in raw.split("<li ") if ".png" in r]
    assert len(rows) == 2
    for row in rows:
        own = "mallory" if "mallory@example.com" in row else "bob"
        other = "bob" if own == "mallory" else "mallory"
        assert f"{own}.png" in row and f"{other}.png" not in row, row
    assert "In reply to a message that is ambiguous" in raw
    jsonl = tmp_path / "files.jsonl"
    asyncio.run(run_export(store, tmp_path / "d2", "jsonl", jsonl))
    lines = [json.loads(x) for x in jsonl.read_text("utf-8").splitlines()]
    copies = [x for x in lines if (x.get("event") or {}).get("event_id") == snap_id(snap)]
    assert sorted(x["event"]["sender_id"] for x in copies) == [BOB, "mallory@example.com"]
    assert len({x["position"] for x in copies}) == 2


def snap_id(snap: Any) -> str:
    [event_id] = snap.result.timeline.repeated
    return str(event_id)


async def _replayed_payment(store: Path) -> dict[str, Event]:
    """Bob corrects an account number by an edit, then says "thanks"; Mallory signs a
    message under the id of Bob's first (PROTOCOL.md section 6 step 1)."""
    storage = LocalStorage(store)
    clock = itertools.count(1_790_000_000_000, 1000).__next__
    bob = RoomWriter(storage, ROOM, BOB, SigningKey(b"\x02" * 32), clock=clock)
    await bob.create_room("Payments", "2026-09-21T10:00:00.000Z")
    out: dict[str, Event] = {}
    [out["pay"]] = await _say(bob, _text("Pay invoice 1234 to account 555"))
    edit = {
        "replaces": out["pay"].event_id,
        "new_content": {"body": "Pay invoice 1234 to account 777", "msgtype": "m.text"},
    }
    [out["edit"]] = await _say(bob, (EDIT, edit))
    [out["thanks"]] = await _say(bob, _text("thanks"))
    key = SigningKey(b"\x09" * 32)
    join = build_event(
        room_id=ROOM,
        sender_id="mallory@example.com",
        event_type=MEMBER,
        content={"membership": "join"},
        timestamp_ms=1_000,
        unique="00000000-0000-4000-8000-000000000009",
        prev_event_hash=None,
        signing_key=key,
    )
    copy = build_event(
        room_id=ROOM,
        sender_id="mallory@example.com",
        event_type=MESSAGE,
        content={"body": "ok", "msgtype": "m.text"},
        timestamp_ms=out["pay"].timestamp_ms,
        unique=out["pay"].event_id.rsplit("::", 1)[1],
        prev_event_hash=join.hash,
        signing_key=key,
    )
    path = store / path_for([join, copy], "a-mallory")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_segment([join, copy]))
    return out


def test_an_id_two_devices_signed_says_so_in_the_html_export(tmp_path: Path) -> None:
    """Red team (round 16): Bob corrected an account number by an edit; Mallory signs a
    message under his id. The id takes no relations (PROTOCOL.md 18.1): the export
    showed Bob's first text, the account he corrected, as his verified message, with
    nothing saying why. Each copy now carries a line that says edits, a deletion and
    reactions of it are not shown."""
    store = tmp_path / "store"
    asyncio.run(_replayed_payment(store))
    html = tmp_path / "payments.html"
    asyncio.run(run_export(store, tmp_path / "d", "html", html))
    raw = html.read_text("utf-8")
    rows = [r for r in raw.split("<li ") if "Pay invoice" in r or ">ok<" in r]
    assert len(rows) == 2
    for row in rows:
        assert "Another device signed a message under this id" in row, row
    assert "account 555" in raw and "account 777" not in raw


def test_an_id_two_devices_signed_says_so_in_the_jsonl_export(tmp_path: Path) -> None:
    """Red team rt54: the same room as JSONL. Bob's row was a plain verified message
    saying "account 555" (no ``relations``, no note), and his edit's line said only
    ``applied: false``, as a forged edit's does: a script reading the verified rows paid
    the account Bob corrected. Each copy's row, and the line of a relation naming the
    id, now carry ``repeated_id``: the HTML's sentence. Other rows do not."""
    store = tmp_path / "store"
    ev = asyncio.run(_replayed_payment(store))
    out = tmp_path / "payments.jsonl"
    asyncio.run(run_export(store, tmp_path / "d", "jsonl", out))
    lines = [json.loads(x) for x in out.read_text("utf-8").splitlines()][1:]
    by_id: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_id.setdefault(line["event"]["event_id"], []).append(line)
    copies = by_id[ev["pay"].event_id]
    assert sorted(c["event"]["sender_id"] for c in copies) == [BOB, "mallory@example.com"]
    said = "Another device signed a message under this id too"
    for row in copies:
        assert row["trust"]["state"] == "verified"
        assert row["repeated_id"].startswith(said), row
    [bob] = [c for c in copies if c["event"]["sender_id"] == BOB]
    assert bob["event"]["content"]["body"].endswith("account 555")
    [edit] = by_id[ev["edit"].event_id]
    assert edit["relation"] == {"kind": "edit", "target": ev["pay"].event_id, "applied": False}
    assert edit["repeated_id"] == bob["repeated_id"]
    [thanks] = by_id[ev["thanks"].event_id]
    assert "repeated_id" not in thanks
    assert not any("repeated_id" in x for x in lines if x["event"]["type"] == MEMBER)


def test_reaction_chips_that_look_alike_are_marked_with_their_code_points(
    tmp_path: Path,
) -> None:
    """Red team rt54: "Yes" and "\u04aees" (a Cyrillic "\u04ae") are counted apart. The app
    and ``history`` mark such chips (``lookalike_texts``); the HTML export drew the two
    side by side, one counting the real votes and one an impostor's, with nothing to
    tell which is which. Each is now marked ⚠ and followed by its code points; a chip
    that looks like no other is not."""
    store = tmp_path / "store"

    async def build() -> None:
        storage = LocalStorage(store)
        clock = itertools.count(1_790_000_000_000, 1000).__next__
        writers = [
            RoomWriter(storage, ROOM, who, SigningKey(bytes([n]) * 32), clock=clock)
            for n, who in enumerate((ALICE, BOB, "carol@example.com"), start=1)
        ]
        alice, bob, carol = writers
        await alice.create_room("Votes", "2026-09-21T10:00:00.000Z")
        [ask] = await _say(alice, _text("Approve the new supplier? React Yes"))
        votes = ((alice, "Yes"), (bob, "\u04aees"), (carol, "\u04aees"), (bob, "👍"))
        for who, text in votes:
            await _say(who, (REACTION, {"relates_to": ask.event_id, "reaction": text}))

    asyncio.run(build())
    path = tmp_path / "votes.html"
    asyncio.run(run_export(store, tmp_path / "data", "html", path))
    raw = path.read_text("utf-8")
    chips = raw.split('<div class="reactions">', 1)[1].split("</div>", 1)[0]
    shown = [_seen('<span class="chip' + c) for c in chips.split('<span class="chip')[1:]]
    assert len(shown) == 3, shown
    real, thumbs, impostor = sorted(shown, key=lambda c: ("\u04ae" in c, "👍" in c))
    assert real.startswith("Yes 1 ⚠ U+0059 U+0065 U+0073"), real
    assert impostor.startswith("\u04aees 2 ⚠ U+04AE U+0065 U+0073"), impostor
    assert "⚠" not in thumbs and "U+" not in thumbs, thumbs
    assert f'title="{LOOKALIKE_CHIP}"' in chips


# -- never over the user's files ------------------------------------------------------------

USERS = b"ALICE'S REAL SPREADSHEET"
FORGED = b"BOB'S FORGED BUDGET"


def _files_room(store: Path) -> None:
    """Bob's two files: ``budget.xlsx`` (a name the user has a file of) and ``notes.txt``."""

    async def build() -> None:
        storage = LocalStorage(store)
        clock = itertools.count(1_790_000_000_000, 1000).__next__
        bob = RoomWriter(storage, ROOM, BOB, SigningKey(b"\x02" * 32), clock=clock)
        await bob.create_room("Q4", "2026-09-21T10:00:00.000Z")
        for name, data in (("budget.xlsx", FORGED), ("notes.txt", b"bob's notes")):
            sha = hashlib.sha256(data).hexdigest()
            await storage.put_if_absent(blob_path(ROOM, sha), data)
            await _say(bob, (MESSAGE, file_content(name, len(data), "text/plain", sha)))

    asyncio.run(build())


def _hrefs(path: Path) -> list[str]:
    _, page = parse(path)
    return [str(a["href"]) for tag, a in page.tags if tag == "a" and "_files" in (a["href"] or "")]


@pytest.mark.parametrize("force", [False, True])
def test_a_files_folder_holding_the_users_files_is_left_alone(tmp_path: Path, force: bool) -> None:
    """Red team (F4): exporting to ``Q4.html`` beside a ``Q4_files`` folder the user
    already had (a browser's "Save page, complete" makes one) replaced the user's
    ``budget.xlsx`` with a member's file of that name (the app always passed ``force``).
    Now the attachments go to ``Q4_files (2)``, the page links those, and the summary
    says where they are."""
    store = tmp_path / "store"
    _files_room(store)
    docs = tmp_path / "docs"
    (docs / "Q4_files").mkdir(parents=True)
    (docs / "Q4_files" / "budget.xlsx").write_bytes(USERS)
    path = docs / "Q4.html"
    summary, _ = asyncio.run(run_export(store, tmp_path / "d", "html", path, force=force))
    assert (docs / "Q4_files" / "budget.xlsx").read_bytes() == USERS
    assert sorted(p.name for p in (docs / "Q4_files").iterdir()) == ["budget.xlsx"]
    fresh = docs / "Q4_files (2)"
    assert summary.files_dir == fresh and summary.copied == 2
    assert (fresh / "budget.xlsx").read_bytes() == FORGED
    assert sorted(_hrefs(path)) == [
        "Q4_files%20%282%29/budget.xlsx",
        "Q4_files%20%282%29/notes.txt",
    ]


def test_an_empty_files_folder_is_used_and_kept(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _files_room(store)
    (tmp_path / "Q4_files").mkdir()
    path = tmp_path / "Q4.html"
    summary, _ = asyncio.run(run_export(store, tmp_path / "d", "html", path))
    assert summary.files_dir == tmp_path / "Q4_files" and summary.copied == 2
    assert not (tmp_path / "Q4_files (2)").exists()


def test_a_cancelled_export_deletes_none_of_the_users_files(tmp_path: Path) -> None:
    """Red team (F4): after the user's ``budget.xlsx`` was replaced, a cancel removed
    every file the export had "created", that one included: the user's file was gone.
    Now a cancel removes what this export made (its folder, its files) and nothing else."""
    store = tmp_path / "store"
    _files_room(store)
    (tmp_path / "Q4_files").mkdir()
    (tmp_path / "Q4_files" / "budget.xlsx").write_bytes(USERS)
    path = tmp_path / "Q4.html"
    read: list[str] = []

    async def cancel_at_the_second(info: FileInfo) -> None:
        read.append(info.name)
        if len(read) == 2:  # the first file is written by now
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run_export(store, tmp_path / "d", "html", path, cancel_at_the_second))
    assert read == ["budget.xlsx", "notes.txt"]
    assert (tmp_path / "Q4_files" / "budget.xlsx").read_bytes() == USERS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Q4_files", "d", "store"]


def test_a_file_put_in_the_folder_meanwhile_is_not_overwritten_nor_removed(
    tmp_path: Path,
) -> None:
    """The folder is the export's, but a file of an attachment's name appears in it while
    the export runs (a sync client, the user): attachments are created exclusively, so
    that file stays and the attachment gets the next name, which the page links. A
    failure after it removes the export's files only."""
    store = tmp_path / "store"
    _files_room(store)
    path = tmp_path / "Q4.html"
    folder = files_dir_for(path)

    async def plant(info: FileInfo) -> None:
        if info.name == "notes.txt":
            (folder / "notes.txt").write_bytes(b"mine")

    summary, _ = asyncio.run(run_export(store, tmp_path / "d", "html", path, plant))
    assert summary.files_dir == folder and summary.copied == 2
    assert (folder / "notes.txt").read_bytes() == b"mine"
    assert (folder / "notes (2).txt").read_bytes() == b"bob's notes"
    assert sorted(_hrefs(path)) == ["Q4_files/budget.xlsx", "Q4_files/notes%20%282%29.txt"]

    again = tmp_path / "again.html"
    mine = files_dir_for(again) / "notes.txt"

    async def plant_then_cancel(info: FileInfo) -> None:
        if info.name == "notes.txt":
            mine.write_bytes(b"mine")
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run_export(store, tmp_path / "d2", "html", again, plant_then_cancel))
    assert not again.exists()
    assert sorted(p.name for p in mine.parent.iterdir()) == ["notes.txt"]
    assert mine.read_bytes() == b"mine"


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges")
@pytest.mark.parametrize("then", ["go on", "cancel"])
def test_a_folder_swapped_for_a_link_while_the_export_runs_is_not_written_through(
    tmp_path: Path, then: str
) -> None:
    """Red team: once the first attachment was written, someone who can write beside
    the export renamed ``Q4_files`` and put a link to another folder in its place. The
    next attachment was written through the link, and a cancel then unlinked, through
    it, a file of the same name there that the export never made. The export now stops
    when its folder is not the folder it chose, and a cleanup removes a path only while
    it is still the file the export made."""
    store = tmp_path / "store"
    _files_room(store)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "budget.xlsx").write_bytes(USERS)  # the user's own file, elsewhere
    path = tmp_path / "docs" / "Q4.html"
    path.parent.mkdir()
    folder = files_dir_for(path)
    read: list[str] = []

    async def swap(info: FileInfo) -> None:
        read.append(info.name)
        if len(read) == 2:  # the first file is written by now
            folder.rename(folder.with_name("moved away"))
            folder.symlink_to(elsewhere, target_is_directory=True)
            if then == "cancel":
                raise asyncio.CancelledError

    failure: type[BaseException] = asyncio.CancelledError if then == "cancel" else ExportError
    with pytest.raises(failure) as caught:
        asyncio.run(run_export(store, tmp_path / "d", "html", path, swap))
    if then == "go on":
        assert "was moved or replaced while the export ran" in str(caught.value)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["budget.xlsx"]
    assert (elsewhere / "budget.xlsx").read_bytes() == USERS
    assert not path.exists()


@pytest.mark.skipif(not DIR_FDS, reason="files made relative to an open folder (POSIX)")
def test_a_swap_between_the_check_and_the_write_still_writes_into_the_folder_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team: the check that the folder is the one chosen, then the write by its path,
    left a gap a racing swap (``renameat2``) could win: attachments of a member's names
    ("evil.desktop") landed in the folder the link led to (an autostart folder, say).
    Files are made relative to the folder held open: a swap at the worst moment still
    leaves the link's target untouched, and a cancel cleans the folder chosen."""
    from bucket_chat_desktop.export import runner

    store = tmp_path / "store"
    _files_room(store)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = tmp_path / "docs" / "Q4.html"
    path.parent.mkdir()
    folder = files_dir_for(path)
    moved = folder.with_name("moved away")
    checked = runner._Files._same_folder

    def checked_then_swapped(self: Any) -> None:
        checked(self)  # the check passes; the swap wins the race right after it
        if not moved.exists():
            folder.rename(moved)
            folder.symlink_to(elsewhere, target_is_directory=True)

    monkeypatch.setattr(runner._Files, "_same_folder", checked_then_swapped)

    async def cancel_at_the_second(info: FileInfo) -> None:
        if info.name == "notes.txt":
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run_export(store, tmp_path / "d", "html", path, cancel_at_the_second))
    assert list(elsewhere.iterdir()) == []  # nothing through the link
    assert list(moved.iterdir()) == []  # what it wrote, in the folder chosen, is removed


@pytest.mark.skipif(not DIR_FDS, reason="files made relative to an open folder (POSIX)")
def test_a_folder_that_cannot_be_synced_fails_no_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team: a file system that refuses to sync a folder (EINVAL) made the export
    fail after an attachment was linked, and left that file behind: a folder's sync
    is no failure, the data itself was synced."""
    import errno
    import stat

    from bucket_chat_desktop import osfiles

    synced = osfiles.os.fsync

    def no_folder_sync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        synced(fd)

    monkeypatch.setattr(osfiles.os, "fsync", no_folder_sync)
    store = tmp_path / "store"
    _files_room(store)
    path = tmp_path / "Q4.html"
    summary, _ = asyncio.run(run_export(store, tmp_path / "d", "html", path))
    assert summary.copied == 2 and path.exists()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open descriptors")
def test_a_cancel_during_the_clean_up_leaves_no_folder_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team: a cancel arriving while a cancelled export removed its files skipped
    closing the attachments folder it held open."""
    from bucket_chat_desktop.export import runner

    def cancelled_while_removing(self: Any) -> None:
        raise asyncio.CancelledError

    monkeypatch.setattr(runner._Files, "remove", cancelled_while_removing)
    store = tmp_path / "store"
    _files_room(store)
    path = tmp_path / "Q4.html"

    async def cancel_at_the_second(info: FileInfo) -> None:
        if info.name == "notes.txt":
            raise asyncio.CancelledError

    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run_export(store, tmp_path / "d", "html", path, cancel_at_the_second))
    folder = str(files_dir_for(path))
    held = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own, closed since
            held.append(os.readlink(f"/proc/self/fd/{fd}"))
    assert not [h for h in held if h.startswith(folder)], held
    assert len(held) <= before


def test_the_cli_with_force_keeps_the_users_files_and_says_where_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``bucket-chat export --force``: the page is replaced (asked for), the user's
    ``Q4_files`` is not touched, and the command says where the attachments went."""
    import argparse

    from bucket_chat_desktop.cli import export_cmd

    store = tmp_path / "store"
    _files_room(store)
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "100000")  # its lines read whole (``format.fit``)
    (tmp_path / "Q4_files").mkdir()
    (tmp_path / "Q4_files" / "budget.xlsx").write_bytes(USERS)
    path = tmp_path / "Q4.html"
    path.write_bytes(b"an earlier export")
    args = argparse.Namespace(output=str(path), format="html", force=True, max_attachment_mb=10)
    assert asyncio.run(export_cmd.run_export(args, LocalStorage(store), ROOM)) == 0
    assert path.read_bytes().startswith(b"<!DOCTYPE html>")
    assert (tmp_path / "Q4_files" / "budget.xlsx").read_bytes() == USERS
    assert (tmp_path / "Q4_files (2)" / "budget.xlsx").read_bytes() == FORGED
    out = capsys.readouterr()
    assert f"2 copied to {tmp_path / 'Q4_files (2)'}" in out.out
    assert "Q4_files already holds other files: left as it was" in out.err


# -- a cancel while the page takes its name -------------------------------------------------


def _slow_folder_sync(
    monkeypatch: pytest.MonkeyPatch, folder: Path, meanwhile: Callable[[], None]
) -> list[Path]:
    """The page's folder synced after the page took its name (``atomic_output``'s end)
    takes its time, as on a slow disk: ``meanwhile()`` runs then, in the worker thread.
    Returns what the page's name held at that moment (the new page, once)."""
    from bucket_chat_desktop import osfiles

    real = osfiles.fsync_dir
    seen: list[Path] = []

    def slow_disk(where: Path | int) -> None:
        if isinstance(where, Path) and where == folder and not seen:
            seen.append(where)
            meanwhile()
        real(where)

    monkeypatch.setattr(osfiles, "fsync_dir", slow_disk)
    return seen


def _until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.skipif(
    sys.platform == "win32" or threading.current_thread() is not threading.main_thread(),
    reason="a real SIGINT to this process, as Ctrl-C sends",
)
def test_ctrl_c_while_the_page_takes_its_name_leaves_a_whole_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Red team rt65 (finding 3): a cancel that came while the finished page was flushed,
    renamed over the user's earlier page (``--force``) and synced was raised once the
    rename was done: the export then removed every attachment the new page links, and
    said it was interrupted. Now the step runs to its end, the export is complete (its
    files stay) and ``bucket-chat export`` says the interrupt came too late (exit 0)."""
    import argparse
    import signal

    from bucket_chat_desktop.cli import export_cmd

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default here: asyncio.run would not take it")
    store = tmp_path / "store"
    _files_room(store)
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / "home"))
    path = tmp_path / "Q4.html"
    path.write_bytes(b"ALICE'S EARLIER EXPORT, replaced on purpose")
    main: list[asyncio.Task[Any]] = []

    def ctrl_c() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # asyncio.run cancels the command's task
        _until(lambda: main[0].cancelling() > 0)

    _slow_folder_sync(monkeypatch, tmp_path, ctrl_c)
    args = argparse.Namespace(output=str(path), format="html", force=True, max_attachment_mb=10)

    async def command() -> int:
        main.append(asyncio.current_task())  # type: ignore[arg-type]
        return await export_cmd.run_export(args, LocalStorage(store), ROOM)

    try:
        code = asyncio.run(command())
    except KeyboardInterrupt:
        pytest.fail("the export was undone around the page that replaced the user's")
    assert code == 0
    assert path.read_bytes().startswith(b"<!DOCTYPE html>")
    assert sorted(_hrefs(path)) == ["Q4_files/budget.xlsx", "Q4_files/notes.txt"]
    assert (tmp_path / "Q4_files" / "budget.xlsx").read_bytes() == FORGED
    assert (tmp_path / "Q4_files" / "notes.txt").read_bytes() == b"bob's notes"
    out = capsys.readouterr()  # lines wrapped to the terminal: compared word by word
    assert "was written: the export is complete (not undone)" in " ".join(out.err.split())
    assert "attachments: 2 copied to" in " ".join(out.out.split())


def test_a_cancel_while_the_page_takes_its_name_is_too_late(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same as the app's Cancel does it (the task cancelled, twice even): the export
    is done, its summary says the cancel came late, nothing it wrote is removed."""
    store = tmp_path / "store"
    _files_room(store)
    path = tmp_path / "Q4.html"
    path.write_bytes(b"an earlier export")
    task: list[asyncio.Task[Any]] = []
    loop: list[asyncio.AbstractEventLoop] = []

    def cancel_twice() -> None:
        for n in (1, 2):
            loop[0].call_soon_threadsafe(task[0].cancel)
            _until(lambda n=n: task[0].cancelling() >= n)  # type: ignore[misc]

    _slow_folder_sync(monkeypatch, tmp_path, cancel_twice)

    async def go() -> tuple[ExportSummary, bool]:
        loop.append(asyncio.get_running_loop())
        task.append(
            asyncio.create_task(run_export(store, tmp_path / "d", "html", path, force=True))
        )
        summary, _ = await task[0]
        return summary, task[0].cancelling() == 0

    summary, uncancelled = asyncio.run(go())
    assert summary.cancelled_late and uncancelled
    assert path.read_bytes().startswith(b"<!DOCTYPE html>")
    assert sorted(p.name for p in (tmp_path / "Q4_files").iterdir()) == [
        "budget.xlsx",
        "notes.txt",
    ]


def test_a_cancel_before_a_failed_rename_leaves_the_earlier_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while the page was to take its name, and that failed (Windows: the old
    page held open by another program): nothing was published, so the cancel stands and
    the export's files go; the earlier page is as it was."""
    from bucket_chat_desktop import osfiles

    store = tmp_path / "store"
    _files_room(store)
    path = tmp_path / "Q4.html"
    path.write_bytes(b"an earlier export")
    task: list[asyncio.Task[Any]] = []
    loop: list[asyncio.AbstractEventLoop] = []

    def refused(temp: Path, final: Path) -> None:
        loop[0].call_soon_threadsafe(task[0].cancel)
        _until(lambda: task[0].cancelling() > 0)
        raise PermissionError(13, "in use by another program", str(final))

    monkeypatch.setattr(osfiles, "_replace", refused)

    async def go() -> None:
        loop.append(asyncio.get_running_loop())
        task.append(
            asyncio.create_task(run_export(store, tmp_path / "d", "html", path, force=True))
        )
        await task[0]

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(go())
    assert path.read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Q4.html", "d", "store"]


# -- the files copied carry the "downloaded from the internet" mark ------------------------


def test_every_file_an_export_copies_is_marked_as_downloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt65 (finding 4): Open and Save as… mark their copies (Mark-of-the-Web,
    macOS quarantine), the export's copies were not: a program double-clicked in
    ``Q4_files`` ran without the system's warning. As on Windows: the mark is the stream
    ``<file>:Zone.Identifier`` (on Linux a file of that name beside it)."""
    from bucket_chat_desktop import download_mark

    monkeypatch.setattr(download_mark, "PLATFORM", "win32")
    store = tmp_path / "store"
    _files_room(store)
    path = tmp_path / "Q4.html"
    summary, _ = asyncio.run(run_export(store, tmp_path / "d", "html", path))
    assert summary.copied == 2
    folder = tmp_path / "Q4_files"
    for name in ("budget.xlsx", "notes.txt"):
        assert (
            folder / f"{name}:Zone.Identifier"
        ).read_bytes() == b"[ZoneTransfer]\r\nZoneId=3\r\n"


def test_a_statement_naming_anothers_key_is_not_exported_as_their_device(
    tmp_path: Path,
) -> None:
    """Mallory's statement naming Bob's key (which writes as Bob in the room) was
    exported as "added a device (key …)"; the page says what the app's timeline says:
    "names bob@example.com's key as theirs"."""
    store = tmp_path / "store"
    bob_key = SigningKey(b"\x02" * 32)
    bob_text = base64.b64encode(bytes(bob_key.verify_key)).decode()

    async def build() -> None:
        storage = LocalStorage(store)
        clock = itertools.count(1_790_000_000_000, 1000).__next__
        alice = RoomWriter(storage, ROOM, ALICE, SigningKey(b"\x01" * 32), clock=clock)
        await alice.create_room("Plans", "2026-09-21T10:00:00.000Z")
        bob = RoomWriter(storage, ROOM, BOB, bob_key, clock=clock)
        mallory = RoomWriter(
            storage, ROOM, "mallory@example.com", SigningKey(b"\x05" * 32), clock=clock
        )
        await _say(bob, _text("hello"))
        await _say(mallory, _text("hi"))
        await mallory.add_device(bob_text, device_name="phone")

    asyncio.run(build())
    out = tmp_path / "out.html"
    asyncio.run(run_export(store, tmp_path / "data", "html", out))
    page = html.unescape(out.read_text(encoding="utf-8"))
    assert f"names bob@example.com's key as theirs (key {bob_text[:12]}…)" in page
    assert "added a device" not in page


# -- what the app knows: edits and deletions that arrived long after their date ------------


def test_the_html_says_a_message_s_latest_edit_or_deletion_arrived_long_after_its_date(
    room: tuple[Path, dict[str, Event]], tmp_path: Path
) -> None:
    """The app's row of a message says when its latest edit or its deletion arrived long
    after its date; its export said nothing. The row says it below the message, its times
    with their UTC offset; a forged edit (not applied) changes no row and says nothing on
    one; the footer counts them apart from late messages."""
    store, events = room
    path = tmp_path / "plans.html"
    notes = _arrived_late(events, "edit", "red", "forged")
    summary, _snap = asyncio.run(run_export(store, tmp_path / "d", "html", path, late=notes))
    raw = path.read_text("utf-8")
    rows = raw.split("<li ")
    said = [r for r in rows if "long after its date" in r]
    assert len(said) == 2 and summary.late == 0
    assert summary.late_changes == 3  # the forged edit too: noted, though it changed nothing
    edited, gone = said
    assert "fixed <em>text</em>" in edited and 'class="msg t-verified late"' in edited
    note = notes[events["edit"].event_id].note_with_zone(LATEST_EDIT)
    assert f'<p class="why late">⚠ {html.escape(note)}.</p>' in edited, edited
    assert f"dated {with_zone(events['edit'].timestamp_ms)}" in note
    assert "Message deleted by its sender" in gone
    note = notes[events["red"].event_id].note_with_zone(DELETION)
    assert f'<p class="why late">⚠ {html.escape(note)}.</p>' in gone, gone
    assert "hijacked" not in raw
    assert "3 edits or deletions arrived long after the dates they bear" in raw
    assert "that changed nothing" in raw
    assert "messages arrived long after" not in raw


def test_the_html_and_the_jsonl_of_one_room_count_the_same_late_edits_and_deletions(
    room: tuple[Path, dict[str, Event]], tmp_path: Path
) -> None:
    """Review rev2: the HTML counted a message whose latest change was late (an earlier
    late edit, a forged one not applied: not counted), the JSONL every late edit or
    redaction line, so the app's notice of one room gave two counts. Both count every
    copy the app noted late now; a change noted late that is not in the room counts in
    neither."""
    store, events = room
    for names, count in ((("edit", "red", "forged"), 3), (("forged",), 1), (("red",), 1)):
        notes = _arrived_late(events, *names)
        html_path, jsonl_path = tmp_path / "plans.html", tmp_path / "plans.jsonl"
        as_html, _ = asyncio.run(run_export(store, tmp_path / "d", "html", html_path, late=notes))
        as_jsonl, _ = asyncio.run(
            run_export(store, tmp_path / "d", "jsonl", jsonl_path, late=notes)
        )
        assert as_html.late_changes == as_jsonl.late_changes == count, names
        html_path.unlink()
        jsonl_path.unlink()


def test_the_jsonl_edit_and_deletion_lines_say_they_arrived_long_after_their_date(
    room: tuple[Path, dict[str, Event]], tmp_path: Path
) -> None:
    """``arrived_late`` on the edit's and the deletion's own lines (by their copy, as a
    message's), also on a forged edit's (applied or not, it arrived so), and on the
    entries of the message's ``relations`` that the applied ones make; none on the
    message lines, which came on time."""
    store, events = room
    path = tmp_path / "plans.jsonl"
    notes = _arrived_late(events, "edit", "red", "forged")
    summary, _snap = asyncio.run(run_export(store, tmp_path / "d", "jsonl", path, late=notes))
    rows = [json.loads(line) for line in path.read_text("ascii").splitlines()][1:]
    by_id = {r["event"]["event_id"]: r for r in rows if r.get("event")}
    said = {k for k, r in by_id.items() if "arrived_late" in r}
    assert said == {events[n].event_id for n in ("edit", "red", "forged")}
    assert summary.late_changes == 3 and summary.late == 0
    for name in ("edit", "red", "forged"):
        late = notes[events[name].event_id]
        assert by_id[events[name].event_id]["arrived_late"] == {
            "arrived_ms": late.arrived_ms,
            "note": late.note_with_zone(),
        }
    assert by_id[events["forged"].event_id]["relation"]["applied"] is False
    m1 = by_id[events["m1"].event_id]["relations"]
    (entry,) = m1["edits"]
    assert entry["arrived_late"] == by_id[events["edit"].event_id]["arrived_late"]
    m3 = by_id[events["m3"].event_id]["relations"]["redacted"]
    assert m3["arrived_late"] == by_id[events["red"].event_id]["arrived_late"]
