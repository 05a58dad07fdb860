"""Attachment messages: blob paths, the content a writer builds, and what a reader makes of
hostile content — names that try to escape a folder, hide an extension, or name a device."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.attachments import (
    FILE,
    IMAGE,
    MAX_JPEG_SCANS,
    MAX_NAME_BYTES,
    MAX_NAME_CHARS,
    MAX_THUMBNAIL_BYTES,
    MAX_THUMBNAIL_READ_BYTES,
    FileInfo,
    active_content,
    announced_name,
    blob_path,
    clean_mimetype,
    file_content,
    is_file_message,
    is_risky_to_open,
    jpeg_scans,
    message_text,
    middle_cut,
    not_to_open,
    parse_file_content,
    quarantine_attribute,
    safe_file_name,
    verify_blob,
    zone_identifier,
)
from bucket_chat_desktop.protocol.event import MAX_LINE_BYTES, MESSAGE, parse_line
from bucket_chat_desktop.protocol.ids import InvalidRoomIdError
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.protocol.untrusted_text import BLANK_LETTERS

DATA = b"hello attachments\n"
SHA = hashlib.sha256(DATA).hexdigest()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff\xe0"


def content(**info: object) -> dict[str, object]:
    base: dict[str, object] = {"name": "a.txt", "size": len(DATA), "sha256": SHA}
    base.update(info)
    return {"msgtype": FILE, "body": "a.txt", "info": base}


# -- blob paths ---------------------------------------------------------------------------


def test_blob_path_is_derived_from_room_and_hash() -> None:
    assert blob_path("room-1", SHA) == f"rooms/room-1/blobs/{SHA}"


@pytest.mark.parametrize("sha", ["", SHA.upper(), SHA[:-1], SHA + "0", "../" + SHA[3:], "g" * 64])
def test_blob_path_refuses_anything_but_a_lowercase_hex_digest(sha: str) -> None:
    with pytest.raises(ValueError):
        blob_path("room-1", sha)


@pytest.mark.parametrize("room", ["", "..", "a/b", ".hidden", "a\x00b"])
def test_blob_path_refuses_bad_room_ids(room: str) -> None:
    with pytest.raises(InvalidRoomIdError):
        blob_path(room, SHA)


# -- file names ---------------------------------------------------------------------------

HOSTILE = {
    "../../etc/passwd": "_.._etc_passwd",
    "..\\..\\Windows\\system32\\drivers": "_.._Windows_system32_drivers",
    "/etc/shadow": "_etc_shadow",
    "C:\\boot.ini": "C__boot.ini",
    "CON": "_CON",
    "con.txt": "_con.txt",
    "Nul": "_Nul",
    "LPT1.log": "_LPT1.log",
    "COM¹.txt": "_COM¹.txt",
    "CON .txt": "_CON .txt",
    "a\x00b.txt": "ab.txt",
    "tab\there.txt": "tab here.txt",
    "line\nbreak.txt": "line break.txt",
    "esc\x1b[31mred.txt": "esc[31mred.txt",
    "\u202egpj.exe": "gpj.exe",  # shows as "exe.jpg" when the override is kept
    "zero\u200bwidth.txt": "zerowidth.txt",
    ".bashrc": "bashrc",
    "..": "file",
    "...": "file",
    "": "file",
    "   ": "file",
    "name.": "name",
    "name ": "name",
    'what?<>|*":.txt': "what_______.txt",
    "naïve café.pdf": "naïve café.pdf",
    "日本語のファイル.txt": "日本語のファイル.txt",
    "plain.txt": "plain.txt",
}


@pytest.mark.parametrize(("raw", "safe"), sorted(HOSTILE.items()))
def test_hostile_names_are_made_safe(raw: str, safe: str) -> None:
    assert safe_file_name(raw) == safe


@pytest.mark.parametrize("raw", sorted(HOSTILE))
def test_a_safe_name_is_a_single_harmless_path_component(raw: str) -> None:
    name = safe_file_name(raw)
    assert name and name == safe_file_name(name)  # idempotent
    assert not set(name) & set('/\\:*?"<>|\x00')
    assert not name.startswith((".", " ")) and not name.endswith((".", " "))
    assert all(c.isprintable() for c in name)
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES


def test_long_names_are_cut_to_255_bytes_keeping_the_extension() -> None:
    name = safe_file_name("é" * 400 + ".tar.gz")
    assert name.endswith(".gz") and len(name.encode("utf-8")) <= 255
    name = safe_file_name("x" * 1000)
    assert name == "x" * 255


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("photo.jpg" + "\u2800" * 60 + ".zip", "photo.jpg .zip"),  # braille blanks
        ("invoice.pdf" + "\u3164" * 60 + ".exe", "invoice.pdf .exe"),  # Hangul fillers
        ("a" + "\u115f\u1160\uffa0 \u2800" + "b.txt", "a b.txt"),  # one run, one space
        ("report.pdf" + "\u2800" * 200, "report.pdf"),  # trailing blanks go like spaces
        ("notes\u034f\u17b4\u180b.txt", "notes.txt"),  # combining blanks are dropped
        ("\u3164" * 10, "file"),
    ],
)
def test_letters_that_render_as_nothing_cannot_pad_a_name(raw: str, safe: str) -> None:
    """Sixty invisible letters between "invoice.pdf" and ".exe" pushed the real extension
    out of every view that cuts a name; now they are one visible space (or nothing)."""
    name = safe_file_name(raw)
    assert name == safe
    assert not set(name) & BLANK_LETTERS
    assert announced_name({"msgtype": FILE, "body": "x", "info": {"name": raw}}) == safe


def test_a_padded_program_is_still_risky_to_open() -> None:
    assert is_risky_to_open("invoice.pdf" + "\u3164" * 60 + ".exe")
    assert not is_risky_to_open("photo.jpg" + "\u2800" * 60 + ".zip")


HUGE = 250_000  # about what the 256 KiB line limit leaves for a name


def test_a_huge_name_is_cleaned_in_bounded_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Red team rt69: ``info.name`` may be as long as the event line allows (250,000
    characters); the name shown is 255 bytes, but every clean-up went over all of it, a
    Python step a character (about 0.1 s), and a paint of its row asked 17 times. Counted
    in characters looked at, not timed."""
    from bucket_chat_desktop.protocol import attachments

    looked_at = 0
    keep = attachments._keep

    def counting(ch: str) -> bool:
        nonlocal looked_at
        looked_at += 1
        return keep(ch)

    monkeypatch.setattr(attachments, "_keep", counting)
    name = safe_file_name("a" * HUGE + ".png")
    assert name == "a" * (MAX_NAME_BYTES - 4) + ".png"
    assert looked_at <= MAX_NAME_CHARS
    looked_at = 0
    c = {"msgtype": IMAGE, "body": "x", "info": {"name": "b" * HUGE + ".exe"}}
    assert is_risky_to_open(announced_name(c)) and is_risky_to_open("b" * HUGE + ".exe")
    assert looked_at <= 3 * MAX_NAME_CHARS


@pytest.mark.parametrize(
    ("raw", "risky"),
    [
        ("invoice.pdf" + "\u200b" * HUGE + ".exe", True),  # zero-width: dropped
        ("invoice.pdf" + "\u3164" * HUGE + ".exe", True),  # Hangul fillers: one space
        ("invoice.pdf" + "\u034f" * HUGE + ".scr", True),  # combining blanks: dropped
        ("report" + " " * HUGE + ".lnk", True),
        ("photo" + "\u200b" * HUGE + ".jpg", False),
        ("invoice.exe" + "\u200b" * HUGE + ".pdf", False),  # as the desktop sees it
    ],
)
def test_cutting_a_huge_name_keeps_what_its_end_makes_it(raw: str, risky: bool) -> None:
    """A name is cut before it is cleaned only in the middle, and its end is kept: the
    extension the cleaned name ends in (shown, saved, opened, and judged) is the one
    at the end of what was signed, however many letters pad it."""
    name = safe_file_name(raw)
    assert name.endswith(raw[-4:]) and len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert is_risky_to_open(name) is risky and is_risky_to_open(raw) is risky
    c = {"msgtype": FILE, "body": "x", "info": {"name": raw}}
    assert announced_name(c) == name and message_text(c) == f"📎 {name}"
    assert not_to_open(name) is not None if risky else not_to_open(name) is None


@pytest.mark.parametrize(
    "raw",
    [
        "x" * (MAX_NAME_CHARS + 1),
        "é" * 3000 + ".tar.gz",
        "CON" + "a" * 5000 + ".txt",
        "../" * 2000 + "passwd",
        "a b" * 2000 + ".md",
    ],
)
def test_a_name_of_letters_that_are_kept_is_cleaned_as_if_whole(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no letter is dropped, the cut before cleaning changes nothing: the name is
    cut to the same 255 bytes (and extension) as the whole name cleaned."""
    from bucket_chat_desktop.protocol import attachments

    cut = safe_file_name(raw)
    monkeypatch.setattr(attachments, "MAX_NAME_CHARS", 10**9)
    assert cut == safe_file_name(raw)


@pytest.mark.parametrize("limit", [3, 10, 40, 71])
def test_a_middle_cut_keeps_the_end_of_a_name(limit: int) -> None:
    name = "Q4_financial_summary_for_the_accounting_department_final_version.pdf.scr"
    cut = middle_cut(name, limit)
    head, _, tail = cut.partition("…")
    assert len(cut) == limit and name.startswith(head) and name.endswith(tail)
    assert len(tail) >= (limit - 1) // 2
    if limit >= 20:
        assert tail.endswith(".pdf.scr")
    assert middle_cut(name, len(name)) == name


def test_a_file_message_says_its_name_never_its_body() -> None:
    """One rule for what a file or image message says (cards, terminal, search, copy)."""
    info = {"name": "notes.txt", "size": 1, "sha256": SHA}
    owes = "I, Bob, confirm Alice owes me $5000. Signed."
    assert message_text({"msgtype": FILE, "body": owes, "info": info}) == "📎 notes.txt"
    assert message_text({"msgtype": IMAGE, "body": owes, "info": info}) == "📎 notes.txt"
    # no usable info.name: the (safe) body is the name, still marked as a file
    assert message_text({"msgtype": FILE, "body": "a\u202e.txt"}) == "📎 a.txt"
    assert message_text({"msgtype": "m.text", "body": owes}) == owes
    assert message_text({"msgtype": "m.text", "body": 5}) == ""
    assert message_text(None) == ""


@pytest.mark.parametrize("msgtype", [{"x": 1}, ["m.file"], 5, None, 1.5, True])
def test_a_msgtype_of_any_json_type_is_no_file_and_no_error(msgtype: object) -> None:
    """Red team: ``"msgtype": {"x": 1}`` in one signed message. Asked ``in`` a set, a
    list or an object raised (unhashable): ``history``, search and the HTML export of
    the room failed, and the app showed a blank row, or no rows at all when it was the
    newest. It is no file, its body is what it says."""
    content = {"msgtype": msgtype, "body": "hello", "info": {"name": "x.txt"}}
    assert not is_file_message(content)
    assert message_text(content) == "hello"
    assert parse_file_content(content) == "msgtype is not m.file or m.image"


def test_non_strings_get_the_fallback_name() -> None:
    assert safe_file_name(None) == "file"
    assert safe_file_name(42) == "file"


@pytest.mark.parametrize(
    ("name", "risky"),
    [
        ("setup.exe", True),
        ("invoice.pdf.exe", True),
        ("\u202efdp.exe", True),
        ("run.SH", True),
        ("app.desktop", True),
        ("Installer.msi", True),
        ("invoice.exe.pdf", False),
        ("photo.jpg", False),
        ("README", False),
        ("notes.txt", False),
        # case, and the trailing dots and spaces Windows ignores
        ("SETUP.ExE", True),
        ("setup.exe.", True),
        ("setup.exe . ", True),
        ("setup.exe\u200b", True),  # a zero-width space is dropped from the name
        # shortcuts, installers and handlers that run things
        ("app.appref-ms", True),
        ("fix.diagcab", True),
        ("results.search-ms", True),
        ("home.fileloc", True),
        ("site.webloc", True),
        ("nice.theme", True),
        ("app.flatpakref", True),
        ("connect.rdp", True),
        ("profile.mobileconfig", True),
        # active content a browser or Office runs
        ("invoice.html", True),
        ("invoice.HTM", True),
        ("logo.svg", True),
        ("budget.docm", True),
        ("budget.xlsm", True),
        ("notes.one", True),
        # compound extensions: the last parts count together
        ("tool.pkg.tar.zst", True),
        ("backup.tar.zst", False),
        ("tweak.user.js", True),
        ("report.docx", False),
        ("data.csv", False),
    ],
)
def test_programs_and_scripts_are_risky_to_open(name: str, risky: bool) -> None:
    assert is_risky_to_open(name) is risky


@pytest.mark.parametrize(
    "name",
    [
        # Windows: a provisioning package (runs its commands as administrator), an App
        # Installer file (installs an app from a URL), Access and Excel files that run
        # macros, AutoHotkey and AutoIt scripts (run by a double-click where installed)
        "setup.ppkg",
        "app.appinstaller",
        "orders.accdb",
        "budget.xlsb",
        "tool.ahk",
        "tool.au3",
        # macOS: a Shortcuts file, a Terminal settings file (can run a command), a
        # Safari web archive (active web content)
        "do.shortcut",
        "window.term",
        "page.webarchive",
        # Red team rt55: certificates to import (a root CA: PKCS #12, a serialised store),
        # a Windows update, Office and LibreOffice add-ins, an Excel 4.0 macro sheet, an
        # openSUSE one-click install
        "vpn-access.pfx",
        "vpn-access.p12",
        "roots.sst",
        "security-update.msu",
        "addin.vsto",
        "toolbar.oxt",
        "budget.xlm",
        "codecs.ymp",
    ],
)
def test_more_kinds_that_run_code_are_risky_to_open(name: str) -> None:
    assert is_risky_to_open(name)


@pytest.mark.parametrize(
    "name",
    [
        # Red team rt65: Chromium's own table (no platform overrides it) gives text/html
        # to .shtm and application/xhtml+xml to .xhtm; mime.types gives .xhtm too
        "agenda.shtm",
        "minutes.xhtm",
        "minutes.XHTM",
        # Firefox's text/html; IIS's (and so Windows' registry where it is installed)
        "page.ehtml",
        "page.stm",
        "page.hxt",
        "folder.htt",
        # the rest browsers show as web pages, SVG or XML documents, all of which run
        # scripts (an XML file in the XHTML namespace, or through its stylesheet)
        "page.shtml",
        "page.xht",
        "logo.svgz",
        "saved.mht",
        "saved.mhtml",
        "data.xml",
        "style.xsl",
        "feed.rss",
        "feed.atom",
        "graph.rdf",
        "app.xul",
        "binding.xbl",
    ],
)
def test_every_name_a_browser_opens_as_a_web_page_is_risky(name: str) -> None:
    assert is_risky_to_open(name)
    assert not_to_open(name) == "a kind of file that can run code when opened"


def test_not_to_open_is_the_name_or_the_bytes() -> None:
    """The one rule the app's Open and the export's links follow."""
    assert not_to_open("notes.txt") is None
    assert not_to_open("notes.txt", b"plain words") is None
    assert not_to_open("notes.txt", b"<html><script>x()</script>") == (
        "a web page or other markup a browser runs"
    )
    assert not_to_open("minutes", b"MZ\x90\x00") == "a program"
    assert not_to_open("agenda.shtm", b"plain words") is not None


def zip_of(first: str, extra: bytes = b"") -> bytes:
    """A zip whose first entry is ``first`` with the local extra field ``extra``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        entry = zipfile.ZipInfo(first)
        entry.extra = extra
        archive.writestr(entry, b"")
        archive.writestr("META-INF/x.MF", b"Manifest-Version: 1.0\nMain-Class: A\n")
    return out.getvalue()


# What the jar tool writes: a first entry META-INF/ marked by the 0xCAFE extra field, which
# file(1) takes for application/java-archive (a JRE's desktop entry runs it: java -jar).
JAR = zip_of("META-INF/", b"\xfe\xca\x00\x00")
PE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (PE, "a program"),
        (b"\x7fELF\x02\x01\x01" + b"\x00" * 60, "a program"),
        (b"\xcf\xfa\xed\xfe\x07\x00\x00\x01", "a program"),
        (b"\xca\xfe\xba\xbe\x00\x00\x00\x02", "a program"),
        (b"#!/bin/sh\nrm -rf ~\n", "a script"),
        (b"#!/usr/bin/env python3\n", "a script"),
        (b"[Desktop Entry]\nType=Application\nExec=sh -c x\n", "a desktop launcher"),
        (b"<!DOCTYPE html><p>hi", "a web page"),
        (b"\xef\xbb\xbf  \n<html><script>x()</script>", "a web page"),
        (b"<SCRIPT>alert(1)</SCRIPT>", "a web page"),
        (b"hello there\n<script>alert(1)</script>", "a web page"),  # as GIO sniffs it
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>", "a web page"),
        (b"<?xml version='1.0'?><?xml-stylesheet href='x.xsl'?><r/>", "a web page"),
        ("<html><script>x()</script>".encode("utf-16"), "a web page"),
        (JAR, "a Java program"),
        # red team rt58: a launcher by shared-mime-info's other marks, and a shell script
        # without "#!" (application/x-desktop, application/x-shellscript to GIO and Qt)
        (b"# KDE Config File\n" + b"#" * 80 + b"\n[Desktop Entry]\nExec=id\n", "a desktop"),
        (b"# Config File\n" + b"#" * 80 + b"\n[Desktop Entry]\nExec=id\n", "a desktop"),
        (b':\n/bin/sh -c "id"\n', "a script"),
        (b"# /bin/bash notes\nid\n", "a script"),
        (b"  #/bin/env zsh\nid\n", "a script"),
        # Red team rt55: installers shared-mime-info knows by their bytes
        (b"[Flatpak Ref]\nName=org.example.Notes\nUrl=https://x.example/repo\n", "an installer"),
        (b"[Flatpak Repo]\nTitle=Notes\nUrl=https://x.example/repo\n", "an installer"),
        (b'<jnlp spec="1.0+" codebase="https://x.example/">', "an installer"),
    ],
)
def test_contents_that_run_code_are_recognised_whatever_the_name(data: bytes, what: str) -> None:
    """Desktops that choose a handler by content (GIO for a name without a known
    extension; xdg-mime's file(1) for every name) run these whatever they are called."""
    found = active_content(data)
    assert found is not None and found.startswith(what)


# Red team rt56: packages shared-mime-info knows by their first bytes (what `gio info`
# says of each under a name without an extension).
DEB = b"!<arch>\ndebian-binary   1342943816  0     0     100644  4         `\n2.0\n"
RPM = b"\xed\xab\xee\xdb\x03\x00\x00\x01\x00\x01hello-1.0-1" + b"\x00" * 100
PACKAGES = {
    "deb": (DEB, "application/vnd.debian.binary-package", "a Debian package"),
    "rpm": (RPM, "application/x-rpm", "an RPM package"),
    "flatpak": (
        b"flatpak\x00\x01\x00\x89\xe5" + bytes(range(200)),
        "application/vnd.flatpak",
        "a Flatpak bundle",
    ),
    "xdg-app": (
        b"xdg-app\x00\x01\x00\x89\xe5" + bytes(range(200)),
        "application/vnd.flatpak",
        "a Flatpak bundle",
    ),
}


def gio_content_type(data: bytes, folder: Path) -> str | None:
    """What GIO (GNOME's choice of handler) takes ``data`` for under the name "minutes",
    or None without ``gio``."""
    if shutil.which("gio") is None:
        return None
    path = folder / "minutes"
    path.write_bytes(data)
    out = subprocess.run(
        ["gio", "info", "-a", "standard::content-type", str(path)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return out.rsplit(":", 1)[-1].strip() if "content-type" in out else None


@pytest.mark.parametrize("kind", sorted(PACKAGES))
@pytest.mark.parametrize("name", ["minutes", "minutes.zzz", "notes.txt", "vpn.conf"])
def test_a_package_under_a_harmless_name_is_an_installer(
    kind: str, name: str, tmp_path: Path
) -> None:
    """Red team rt56: a Debian or RPM package or a Flatpak bundle named "minutes" or
    "notes.txt" was opened: GIO and file(1) know them by their first bytes, and GNOME
    Software, KDE Discover or gdebi offer to install them. Their names were save-only
    already; their bytes are now too."""
    data, mime, what = PACKAGES[kind]
    assert gio_content_type(data, tmp_path) in (None, mime)
    assert active_content(data, name) == f"an installer ({what})"


@pytest.mark.parametrize(
    ("data", "mime", "what"),
    [
        (
            b"#" * 249 + b"\n[Flatpak Ref]\nName=org.evil.App\nUrl=https://evil.example/r\n",
            "application/vnd.flatpak.ref",
            "an installer",
        ),
        (b"x" * 256 + b"[Flatpak Ref]\nName=a\n", "application/vnd.flatpak.ref", "an installer"),
        (
            b" " * 254 + b'<jnlp spec="1.0+" codebase="https://evil.example/"></jnlp>\n',
            "application/x-java-jnlp-file",
            "an installer",
        ),
        (
            b" " * 253 + b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>\n',
            "image/svg+xml",
            "a web page",
        ),
        (b"# notes\n" * 7 + b"[Desktop Entry]\nExec=x\n", None, "a desktop launcher"),
    ],
)
def test_a_mark_that_begins_at_the_end_of_the_sniffed_window_counts(
    data: bytes, mime: str | None, what: str, tmp_path: Path
) -> None:
    """Red team rt56: shared-mime-info's ``offset="0:256"`` is where a mark may BEGIN
    (0 to 256): GIO takes a "minutes" whose ``[Flatpak Ref]`` starts at byte 250, or
    256, for a Flatpak reference. Only marks wholly inside the first 256 bytes were
    found; a launcher's header likewise where it begins in its first 64."""
    if mime is not None:
        assert gio_content_type(data, tmp_path) in (None, mime)
    found = active_content(data, "minutes")
    assert found is not None and found.startswith(what)


@pytest.mark.parametrize(
    "data",
    [
        b"x" * 257 + b"[Flatpak Ref]\nName=a\n",  # begins past the window: text to GIO
        b" " * 257 + b"<jnlp spec='1.0+'>",
        b"x" * 257 + b"<svg onload=x()>",
        b"# notes\n" * 9 + b"[Desktop Entry]\nExec=x\n",
        b" " * 257 + b"<h1>Agenda</h1>",
    ],
)
def test_a_mark_that_begins_past_the_sniffed_window_does_not(data: bytes, tmp_path: Path) -> None:
    if data.startswith(b"x"):
        assert gio_content_type(data, tmp_path) in (None, "text/plain")
    assert active_content(data, "minutes") is None


def test_a_first_tag_that_begins_at_the_end_of_the_sniffed_window_counts() -> None:
    """A browser sniffs a nameless file by its first tag after white space; it began
    within the window, but the whole tag had to fit in it (red team rt56)."""
    found = active_content(b" " * 254 + b"<h1>Agenda</h1><img src=x onerror=alert(1)>", "minutes")
    assert found is not None and found.startswith("a web page")


@pytest.mark.parametrize(
    "data",
    [
        b"\n\n" + b"x" * 300 + b"<script>",
        b" " * 300 + b"<html><script>alert(1)</script></html>",
        b"notes " * 80 + b"\n<HTML>\n<script>alert(1)</script>",
        b"notes " * 600 + b"<!DOCTYPE\n  html><p>",
        b"notes " * 600 + b"<head>",
        b"notes " * 600 + b"<title>x</title>",
        b"notes " * 600 + b"<style>",
        b"notes " * 600 + b"<table border=1>",
        ("notes " * 300 + "<script>x()</script>").encode("utf-16"),
    ],
)
def test_markup_file_1_finds_in_its_first_4096_bytes_is_a_web_page(data: bytes) -> None:
    """file(1), which xdg-open falls back to for every name, searches the first 4096
    bytes for these tags (after any white space or text): an ``agenda.txt`` whose
    ``<html>`` comes after 300 bytes of padding is text/html to it, and so a browser's."""
    found = active_content(data, "agenda.txt")
    assert found is not None and found.startswith("a web page")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"%PDF-1.7\n<</Type /Catalog>>",
        PNG_MAGIC + b"\x00" * 20,
        JPEG_MAGIC + b"\x00" * 20,
        b"PK\x03\x04" + b"\x00" * 26,  # a zip, a docx
        zip_of("META-INF/"),  # a zip with a manifest, no mark: application/zip to file(1)
        zip_of("word/document.xml", b"UT\x05\x00\x01\x00\x00\x00\x00"),  # a docx
        b"plain notes: a <b> is bold, 1 < 2\n",
        b"Mz is not a program",
        b"!<arch>\nlibnotes.o/     0           0     0     644     12        `\n",  # a .a
        b"flatpak\x00\x01 is not a bundle",
        b"# not a shebang\n",
        b"\n\n" + b"x" * 300 + b"<scripts>",  # not a tag file(1) takes for HTML
        b"notes " * 700 + b"<html><script>x()</script>",  # past file(1)'s 4096 bytes
        b"notes " * 60 + b"<headline> <htmlx <body> <svg>",  # file(1) looks for fewer tags
    ],
)
def test_ordinary_contents_are_not_taken_for_programs(data: bytes) -> None:
    assert active_content(data) is None


@pytest.mark.parametrize(
    "data",
    [
        b"<div onclick=x()>hi</div>",
        b"  <p align='center'><img src=x onerror=alert(1)></p>",
        b"<!-- a comment --><a href=x>y</a>",
        b"<h1>Title</h1>",
    ],
)
def test_a_name_without_extension_is_judged_by_its_first_tag(data: bytes) -> None:
    """A browser opening a local file named "agenda" sniffs it as HTML when it begins
    with one of these; a name with an extension opens by the extension."""
    found = active_content(data, "agenda")
    assert found is not None and found.startswith("a web page")
    assert active_content(data, "README.md") is None
    assert active_content(data, "notes.txt") is None


def test_the_mark_of_the_web_says_internet_zone() -> None:
    assert zone_identifier() == b"[ZoneTransfer]\r\nZoneId=3\r\n"
    marked = zone_identifier("https://example.com/a\r\nZoneId=0")
    assert marked.decode().splitlines() == [
        "[ZoneTransfer]",
        "ZoneId=3",
        "HostUrl=https://example.com/aZoneId=0",  # no second line can be smuggled in
    ]


def test_the_quarantine_attribute_names_the_agent_and_time() -> None:
    value = quarantine_attribute("Bucket Chat", 0x5F5E100)
    assert value == b"0081;05f5e100;Bucket Chat;"
    assert quarantine_attribute("a;b\nc", 1, "UUID") == b"0081;00000001;abc;UUID"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("image/png", "image/png"),
        ("Text/Plain; charset=utf-8", "text/plain"),
        (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        ("text/html\r\nX-Evil: 1", "application/octet-stream"),
        ("nonsense", "application/octet-stream"),
        ("", "application/octet-stream"),
        (5, "application/octet-stream"),
    ],
)
def test_mimetypes_are_cleaned(raw: object, clean: str) -> None:
    assert clean_mimetype(raw) == clean


# -- writing ------------------------------------------------------------------------------


def test_file_content_shape() -> None:
    c = file_content("report.pdf", 1234, "application/pdf", SHA)
    assert c == {
        "msgtype": FILE,
        "body": "report.pdf",
        "info": {"name": "report.pdf", "size": 1234, "mimetype": "application/pdf", "sha256": SHA},
    }


def test_image_content_has_size_and_thumbnail() -> None:
    thumb = base64.b64encode(PNG_MAGIC + b"\x00" * 100).decode()
    c = file_content("p.png", 10, "image/png", SHA, width=640, height=480, thumbnail_b64=thumb)
    assert c["msgtype"] == IMAGE
    assert c["info"]["w"] == 640 and c["info"]["h"] == 480 and c["info"]["thumbnail"] == thumb


def test_the_writer_sanitises_the_name_it_publishes() -> None:
    c = file_content("../../secret\u202etxt.exe", 1, "text/plain", SHA)
    assert c["body"] == c["info"]["name"] == "_.._secrettxt.exe"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sha256": SHA.upper()},
        {"size": -1},
        {"size": True},
        {"size": 2**53},
        {"width": 0, "height": 10},
        {"width": 10, "height": 10, "thumbnail_b64": "not base64!"},
        {"width": 10, "height": 10, "thumbnail_b64": base64.b64encode(b"GIF89a").decode()},
        {
            "width": 10,
            "height": 10,
            "thumbnail_b64": base64.b64encode(JPEG_MAGIC + b"\0" * MAX_THUMBNAIL_BYTES).decode(),
        },
    ],
)
def test_file_content_refuses_what_a_reader_would_not_accept(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"name": "x", "size": 1, "mimetype": "x/y", "sha256": SHA}
    args.update(kwargs)
    with pytest.raises(ValueError):
        file_content(**args)  # type: ignore[arg-type]


def test_a_signed_image_event_stays_far_under_the_line_limit() -> None:
    # the largest thumbnail a writer sends, whole as a reader walks it: SOI, COM, EOI
    pad = MAX_THUMBNAIL_BYTES - 6
    jpeg = b"\xff\xd8\xff\xfe" + pad.to_bytes(2, "big") + b"\x01" * (pad - 2) + b"\xff\xd9"
    assert len(jpeg) == MAX_THUMBNAIL_BYTES
    thumb = base64.b64encode(jpeg).decode()
    c = file_content(
        "p" * 300, 2**40, "image/jpeg", SHA, width=9000, height=6000, thumbnail_b64=thumb
    )
    event = build_event(
        room_id="room-1",
        sender_id="alice@example.com",
        event_type=MESSAGE,
        content=c,
        timestamp_ms=1757851245000,
        unique="00000001-0000-4000-8000-000000000001",
        prev_event_hash=None,
        signing_key=SigningKey(b"\x01" * 32),
    )
    line = event.line()
    assert len(line) < MAX_LINE_BYTES // 8
    parsed = parse_line(line.rstrip(b"\n"), "room-1")
    info = parse_file_content(parsed.content)  # type: ignore[union-attr]
    assert isinstance(info, FileInfo) and info.thumbnail is not None


# -- reading ------------------------------------------------------------------------------


def test_parse_round_trip() -> None:
    thumb = PNG_MAGIC + b"\x00" * 50
    c = file_content(
        "a.png",
        len(DATA),
        "image/png",
        SHA,
        width=3,
        height=2,
        thumbnail_b64=base64.b64encode(thumb).decode(),
    )
    info = parse_file_content(json.loads(json.dumps(c)))
    assert info == FileInfo(IMAGE, "a.png", len(DATA), "image/png", SHA, 3, 2, thumb, "png")
    assert not info.risky_to_open


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("just a string", "not an object"),
        ({"msgtype": "m.text", "body": "x"}, "msgtype"),
        ({"msgtype": FILE, "body": "x"}, "info"),
        ({"msgtype": FILE, "body": "x", "info": []}, "info"),
        (content(sha256=SHA.upper()), "sha256"),
        (content(sha256=SHA[:63]), "sha256"),
        (content(sha256=None), "sha256"),
        (content(sha256="../../../../etc/passwd" + "0" * 42), "sha256"),
        (content(size=-5), "size"),
        (content(size="5"), "size"),
        (content(size=True), "size"),
        (content(size=1.5), "size"),
    ],
)
def test_unusable_contents_say_why(bad: object, problem: str) -> None:
    result = parse_file_content(bad)
    assert isinstance(result, str) and problem in result


def test_hostile_name_fields_are_sanitised_when_read() -> None:
    info = parse_file_content(content(name="../../.ssh/authorized_keys"))
    assert isinstance(info, FileInfo) and info.name == "_.._.ssh_authorized_keys"
    info = parse_file_content({**content(name=7), "body": "CON"})
    assert isinstance(info, FileInfo) and info.name == "_CON"
    info = parse_file_content({**content(name=""), "body": None})
    assert isinstance(info, FileInfo) and info.name == "file"


@pytest.mark.parametrize(
    "c",
    [
        {"msgtype": FILE, "body": "b.txt", "info": {"name": "a.txt"}},
        {"msgtype": FILE, "body": "b.txt", "info": {"name": "   "}},
        {"msgtype": FILE, "body": "b.txt", "info": {"name": 7}},
        {"msgtype": FILE, "body": "b.txt", "info": {"name": ["x"]}},
        {"msgtype": FILE, "body": "b.txt", "info": {}},
        {"msgtype": FILE, "body": 5, "info": {"name": ""}},
        {"msgtype": FILE, "body": "../\u202egnp.exe", "info": {"name": None}},
    ],
)
def test_the_announced_name_is_the_one_the_file_is_used_by(c: dict[str, object]) -> None:
    """What the file card, the room list and notifications show is the name the menu,
    Open and Save use (``parse_file_content``), whatever shape ``info.name`` has."""
    info = c["info"]
    assert isinstance(info, dict)
    info |= {"size": 1, "sha256": SHA}
    parsed = parse_file_content(c)
    assert isinstance(parsed, FileInfo)
    assert announced_name(c) == parsed.name


def test_bad_optional_fields_are_dropped_not_fatal() -> None:
    info = parse_file_content(
        content(mimetype="text/html\nX: y", w=True, h=10, thumbnail="!!!not base64")
    )
    assert isinstance(info, FileInfo)
    assert info.mimetype == "application/octet-stream"
    assert info.width is None and info.height is None and info.thumbnail is None
    gif = base64.b64encode(b"GIF89a" + b"\0" * 10).decode()
    assert parse_file_content(content(thumbnail=gif)).thumbnail is None  # type: ignore[union-attr]
    huge = base64.b64encode(PNG_MAGIC + b"\0" * 40_000).decode()
    assert parse_file_content(content(thumbnail=huge)).thumbnail is None  # type: ignore[union-attr]


def _jpeg_scans(data: bytes) -> list[tuple[int, int]]:
    """Where each scan (SOS header and its entropy-coded data) of a JPEG is."""
    scans, i = [], 2
    while i < len(data) and data[i + 1] != 0xD9:
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if data[i + 1] != 0xDA:
            i += 2 + length
            continue
        j = i + 2 + length
        while not (data[j] == 0xFF and data[j + 1] != 0 and not 0xD0 <= data[j + 1] <= 0xD7):
            j += 1
        scans.append((i, j))
        i = j
    return scans


def test_a_thumbnail_of_thousands_of_scans_is_not_decoded() -> None:
    """Red team: a 32 KB progressive JPEG whose smallest scan (12 bytes) is repeated
    2,000 times; each scan makes the decoder go over every block of the picture again.
    Qt decoded one such 1024 × 1024 thumbnail in 0.5 s, on the GUI thread, for each row
    painted: a screenful of them held the window for seconds. A real progressive JPEG
    has about ten scans; the reader now ignores one with more than 100."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (1024, 1024), 128).save(out, "JPEG", quality=10, progressive=True)
    real = out.getvalue()
    scans = _jpeg_scans(real)
    assert 3 <= len(scans) <= 20
    start, end = min(scans, key=lambda s: s[1] - s[0])
    bomb = real[: scans[-1][1]] + real[start:end] * 2_000 + b"\xff\xd9"
    assert len(bomb) <= MAX_THUMBNAIL_READ_BYTES
    for thumb, kept in ((real, True), (bomb, False)):
        info = parse_file_content(content(thumbnail=base64.b64encode(thumb).decode()))
        assert isinstance(info, FileInfo)
        assert (info.thumbnail is not None) is kept


def scan_bomb(stray: bytes = b"") -> tuple[bytes, int]:
    """A 1024 x 1024 progressive JPEG whose smallest scan is repeated to fill the 32 KB a
    reader decodes (about 2,300 scans), with ``stray`` put between its first segment
    (APP0) and the next; and how many scans libjpeg decodes from it."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (1024, 1024), 128).save(out, "JPEG", quality=10, progressive=True)
    real = out.getvalue()
    scans = _jpeg_scans(real)
    start, end = min(scans, key=lambda s: s[1] - s[0])
    head = real[: scans[-1][1]]
    n = (MAX_THUMBNAIL_READ_BYTES - len(head) - 2 - len(stray)) // (end - start)
    bomb = head + real[start:end] * n + b"\xff\xd9"
    after_app0 = 4 + int.from_bytes(bomb[4:6], "big")
    bomb = bomb[:after_app0] + stray + bomb[after_app0:]
    assert len(bomb) <= MAX_THUMBNAIL_READ_BYTES
    return bomb, len(scans) - 1 + n


@pytest.mark.parametrize(
    "stray",
    [
        pytest.param(b"\x00", id="a-stray-byte"),
        pytest.param(b"junk", id="stray-bytes"),
        pytest.param(b"\xff\x00\xff\xff", id="a-stuffed-zero-and-fill-bytes"),
        pytest.param(b"\xff\xfe\x00\x00", id="a-comment-of-length-0"),
        pytest.param(b"\xff\xfe\x00\x01", id="a-comment-of-length-1"),
    ],
)
def test_a_scan_bomb_behind_bytes_the_count_stopped_at_is_ignored(stray: bytes) -> None:
    """Red team rt69: ``jpeg_scans`` gave up at the first byte between two segments that
    was not 0xFF, and at a segment whose length field was under 2, and returned the
    count so far: 0, for a bomb of ~2,300 scans behind one stray byte after its APP0.
    libjpeg skips such bytes ("Corrupt JPEG data: 1 extraneous bytes before marker", a
    warning) and takes such a segment as empty, then decodes every scan: 0.3-0.5 s on
    the GUI thread for each row painted. The walk now skips what libjpeg skips, and a
    structure it cannot follow is not decoded at all."""
    bomb, scans = scan_bomb(stray)
    assert scans > 20 * MAX_JPEG_SCANS
    count = jpeg_scans(bomb)
    assert count is None or count > MAX_JPEG_SCANS
    info = parse_file_content(content(thumbnail=base64.b64encode(bomb).decode()))
    assert isinstance(info, FileInfo)
    assert info.thumbnail is None, f"a thumbnail of {scans:,} scans is kept for decoding"


def _pillow_jpeg(**options: object) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (320, 240), (30, 30, 220))
    image.paste((220, 40, 40), (0, 0, 160, 240))
    image.paste((250, 200, 40), (80, 60, 240, 180))
    out = io.BytesIO()
    image.save(out, "JPEG", **options)
    return out.getvalue()


@pytest.mark.parametrize(
    ("options", "scans"),
    [
        ({}, 1),
        ({"optimize": True}, 1),
        ({"progressive": True}, 10),
        ({"quality": 95, "subsampling": 0}, 1),
        ({"comment": b"a \xff\x00 comment \xff"}, 1),
        ({"icc_profile": b"\xff" * 70_000}, 1),  # split over two APP2 segments
        ({"restart_marker_blocks": 1}, 1),  # an RST after every block
        ({"restart_marker_rows": 1, "progressive": True}, 10),
    ],
)
def test_the_scans_of_a_writers_thumbnail_are_counted(
    options: dict[str, object], scans: int
) -> None:
    """Whatever a writer (Pillow) puts in a JPEG, the walk follows it to EOI: the count
    is the scans libjpeg decodes, and the thumbnail is kept."""
    data = _pillow_jpeg(**options)
    assert jpeg_scans(data) == scans
    assert len(_jpeg_scans(data)) == scans
    if len(data) <= MAX_THUMBNAIL_READ_BYTES:
        info = parse_file_content(content(thumbnail=base64.b64encode(data).decode()))
        assert isinstance(info, FileInfo) and info.thumbnail == data


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda d: d[:-2], id="no-EOI"),
        pytest.param(lambda d: d[: len(d) // 2], id="cut-in-a-scan"),
        pytest.param(lambda d: d[:25], id="cut-in-a-segment"),
        pytest.param(lambda d: d[:2] + b"\xff\xd8" + d[2:], id="a-second-SOI"),
        pytest.param(lambda d: d[:2] + b"\xff\xc8\x00\x02" + d[2:], id="an-unsupported-SOF"),
        pytest.param(lambda d: d[:2] + b"\xff\x02\x00\x02" + d[2:], id="an-unknown-marker"),
        pytest.param(lambda d: d[:2] + b"\xff\xfe\xff\xff" + d[2:], id="a-length-past-the-end"),
        pytest.param(lambda d: d[:2] + b"\xff\xe1\x00", id="half-a-length"),
    ],
)
def test_a_jpeg_the_walk_cannot_follow_is_not_decoded(cut: Any) -> None:
    """Red team rt69: where the walk cannot tell what libjpeg would make of the bytes,
    it does not guess a count (the old walk returned the count so far): the thumbnail is
    dropped, and the row shows its placeholder."""
    data = cut(_pillow_jpeg(progressive=True))
    assert jpeg_scans(data) is None
    info = parse_file_content(content(thumbnail=base64.b64encode(data).decode()))
    assert isinstance(info, FileInfo) and info.thumbnail is None


def test_fill_bytes_and_stuffed_zeros_lead_to_no_marker() -> None:
    """32 KB of fill bytes, stuffed zeros and junk, between segments or in a scan: no
    marker, no EOI, so no count (the patterns that skip them are possessive: no
    backtracking over a run of 0xFF)."""
    for body in (b"\xff" * 32_000 + b"\x00", b"\xff\x00" * 16_000, b"\x00\xff" * 16_000):
        assert jpeg_scans(b"\xff\xd8" + body) is None
        assert jpeg_scans(b"\xff\xd8\xff\xda\x00\x02" + body) is None


# -- verification -------------------------------------------------------------------------


def test_verify_blob() -> None:
    info = parse_file_content(content())
    assert isinstance(info, FileInfo)
    assert verify_blob(DATA, info) is None
    tampered = DATA.replace(b"hello", b"HELLO")
    problem = verify_blob(tampered, info)
    assert problem is not None and "SHA-256" in problem
    problem = verify_blob(DATA + b"x", info)
    assert problem is not None and "bytes" in problem
    assert verify_blob(b"", info) is not None


# -- the specification --------------------------------------------------------------------


def test_section_17_of_the_protocol_states_the_code_s_limits() -> None:
    from pathlib import Path

    from bucket_chat_desktop.protocol import attachments as a
    from bucket_chat_desktop.sync import blobs

    doc = (Path(__file__).resolve().parents[3] / "docs" / "PROTOCOL.md").read_text("utf-8")
    section = doc[doc.index("## 17. Attachments") :]
    assert f"at most {a.MAX_THUMBNAIL_BYTES:,} bytes decoded" in section
    assert f"above {a.MAX_THUMBNAIL_READ_BYTES:,} bytes decoded" in section
    assert f"{a.THUMBNAIL_BOX[0]} × {a.THUMBNAIL_BOX[1]} pixels" in section
    assert f"1 … {a.MAX_DIMENSION:,}" in section
    assert f"{a.MAX_NAME_BYTES} bytes of UTF-8" in section
    assert f"{blobs.MAX_PREVIEW_PIXELS:,} pixels" in section
    for ext in ("exe", "bat", "cmd", "msi", "ps1", "vbs", "js", "jar", "sh", "desktop", "app"):
        assert ext in a.RISKY_EXTENSIONS
    for raw, safe in (("../../etc/passwd", "_.._etc_passwd"), (".bashrc", "bashrc")):
        assert f"`{raw}` → `{safe}`" in section and a.safe_file_name(raw) == safe


@pytest.mark.parametrize("name", ["agenda.zzz", "minutes.2026-12", "notes.draft", "report.final"])
@pytest.mark.parametrize(
    "data", [b"<h1>Agenda</h1><img src=x onerror=alert(1)>", b"<!-- c --><a href=x>y</a>"]
)
def test_a_name_with_an_extension_no_desktop_knows_is_judged_by_its_first_tag(
    name: str, data: bytes
) -> None:
    """GIO judges a name whose extension it does not know by its content, as it does one
    without: an ``agenda.zzz`` that begins with ``<h1>`` or ``<!--`` is text/html to it,
    and goes to a browser. Only an extension a desktop opens by its own kind (``.md``,
    ``.txt``, a picture, a document) keeps such a start from counting."""
    found = active_content(data, name)
    assert found is not None and found.startswith("a web page")


@pytest.mark.parametrize(
    "name", ["README.md", "notes.txt", "page.rst", "data.csv", "app.py", "Report.DOCX", "x.pdf"]
)
def test_a_known_extension_opens_by_its_kind_whatever_its_first_tag(name: str) -> None:
    assert active_content(b"<h1>Title</h1> and <!-- a note -->", name) is None
