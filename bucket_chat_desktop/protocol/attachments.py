"""Attachments: where a file's bytes live and what the message announcing it says.

A file is stored once, content-addressed, at ``rooms/<room_id>/blobs/<sha256 hex>``; an
``m.room.message`` with ``msgtype`` ``m.file`` or ``m.image`` names it by that hash in its
signed ``info``. The blob itself is unsigned: the signed hash is what makes it
tamper-evident, so a reader checks every byte against it before showing or saving it
(``verify_blob``). The path is always derived from the room id and the hash, never read
from the event, so a hostile event cannot point a reader anywhere else.

Everything in ``info`` is untrusted, the file name most of all: ``parse_file_content``
turns it into a ``FileInfo`` whose ``name`` is safe to show and to use as a file name on
Windows, macOS and Linux, or into a string saying what is wrong. Pure: no I/O, no clock.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from .ids import check_room_id
from .untrusted_text import BLANK_LETTERS

FILE = "m.file"
IMAGE = "m.image"
MSGTYPES = frozenset({FILE, IMAGE})


def is_file_message(content: Mapping[str, Any]) -> bool:
    """Whether a message's content says it is a file or an image. Its ``msgtype`` is
    whatever its writer put there (a list or an object is no error: asked ``in`` a set,
    it raised, and one such message broke ``history``, search and the export)."""
    msgtype = content.get("msgtype")
    return isinstance(msgtype, str) and msgtype in MSGTYPES


MAX_NAME_BYTES = 255
"""UTF-8 bytes in a file name: the common limit of ext4, APFS and NTFS (in practice)."""
MAX_NAME_CHARS = 4 * MAX_NAME_BYTES
"""Characters of a name ``safe_file_name`` goes over: a longer one (no writer sends
one: theirs are cleaned to 255 bytes) is cut in the middle first, at ``…``."""
MAX_SIZE = 2**53 - 1
"""The largest ``size`` an event can carry (every integer in an event is within ±2**53-1)."""
THUMBNAIL_BOX = (320, 240)
"""Writers make thumbnails no larger than this (width, height), orientation applied."""
MAX_THUMBNAIL_BYTES = 12 * 1024
"""Writers' cap on a thumbnail's decoded bytes: keeps the event line far under 256 KiB."""
MAX_THUMBNAIL_READ_BYTES = 32 * 1024
"""Readers ignore (do not decode) a thumbnail larger than this."""
MAX_DIMENSION = 1_000_000
"""Readers ignore ``w``/``h`` outside 1 … this."""
DEFAULT_MIMETYPE = "application/octet-stream"
FALLBACK_NAME = "file"
ATTACHMENT_MARK = "📎"
"""What every view puts before a file's name when it says what a file message says."""

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_MIME_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
# Characters Windows refuses in names, plus both path separators. ':' is also the
# NTFS alternate-data-stream separator and the classic Mac OS path separator.
_UNSAFE_CHARS = frozenset('/\\:*?"<>|')
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{p}{d}" for p in ("COM", "LPT") for d in "0123456789¹²³"}
)
_THUMB_SIGNATURES = ((b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"))

# Opening these runs code, or hands the file to something that runs code, installs
# software, trust or settings, or renders active content: a received file of one of these
# kinds is only ever saved ("Save as"), never opened by a click. Grouped by what they do;
# entries with a dot are compound extensions (checked against the name's last parts).
# Web pages: every name a browser opens as a document that runs scripts — text/html,
# application/xhtml+xml and image/svg+xml in Chromium's own table (``shtm``, ``xhtm``:
# no platform overrides it, so every Chrome and Edge), in Firefox's (``ehtml``), in
# mime.types and IIS's map (which fills Windows' registry: ``stm``, ``hxt``, ``htt``);
# saved pages (``mht``, ``webarchive``); and the XML types browsers render as documents
# (an XML file runs a script in the XHTML namespace, and an XSLT stylesheet's output):
# ``xml``, ``xsl``, ``rss``, ``atom``, ``rdf``, Firefox's ``xul`` and ``xbl``.
_RISKY = """
exe com scr pif cpl dll ocx sys drv vxd msi msp mst msu msix msixbundle appx appxbundle
application appref-ms xbap gadget diagcab shb shs ppkg appinstaller vsto xnk mcf wll
bat cmd vb vbs vbe js jse mjs cjs wsf wsh wsc ws sct hta ps1 ps2 psm1 psd1 ps1xml ps2xml
psc1 psc2 pssc cdxml msh msh1 msh2 mshxml msh1xml msh2xml ahk au3
lnk url website scf inf ins isp reg rdp wsb job settingcontent-ms library-ms search-ms
searchconnector-ms theme themepack deskthemepack desktopthemepackfile
chm hlp msc mde mda mdb ade adp accdb accde accdr accdt one onepkg xll iqy slk
docm dotm xlsm xltm xlam xla xlsb xlm pptm potm ppam ppsm sldm oxt
html htm shtml shtm stm ehtml hxt htt xhtml xht xhtm mht mhtml svg svgz webarchive
xml xsl xslt xbl xul rss atom rdf
img iso vhd vhdx
crt cer der p7b p7c mobileconfig pfx p12 sst spc
jar jnlp class swf
app command terminal term tool workflow action scpt scptd applescript osax prefpane saver
shortcut
kext pkg mpkg dmg fileloc webloc inetloc afploc ftploc
sh bash zsh csh ksh fish run bin appimage desktop kdelnk deb rpm snap flatpak
flatpakref flatpakrepo ymp apk so
py pyc pyo pyw pyz pyzw pl rb
xpi crx vsix
pkg.tar.zst pkg.tar.xz pkg.tar.gz user.js
"""
RISKY_EXTENSIONS = frozenset(_RISKY.split())


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A file announced by a message, checked and made safe to use.

    ``name`` is sanitised (``safe_file_name``); ``thumbnail`` holds the decoded bytes of a
    JPEG or PNG whose format is in ``thumbnail_format``, or None when the event had none
    or it was unusable. Width and height are None unless both were valid.
    """

    msgtype: str
    name: str
    size: int
    mimetype: str
    sha256: str
    width: int | None = None
    height: int | None = None
    thumbnail: bytes | None = None
    thumbnail_format: str | None = None

    @property
    def risky_to_open(self) -> bool:
        return is_risky_to_open(self.name)


def is_sha256_hex(text: object) -> TypeGuard[str]:
    return isinstance(text, str) and _SHA256_RE.fullmatch(text) is not None


def blob_path(room_id: str, sha256_hex: str) -> str:
    """``rooms/<room_id>/blobs/<sha256_hex>``; refuses a bad room id or hash (ValueError)."""
    check_room_id(room_id)
    if not is_sha256_hex(sha256_hex):
        raise ValueError("a blob name is the SHA-256 of its bytes: 64 lowercase hex digits")
    return f"rooms/{room_id}/blobs/{sha256_hex}"


def _keep(ch: str) -> bool:
    # Cc: C0/C1 controls (NUL, newline, ESC…); Cf: format characters, which include the
    # bidirectional overrides (U+202E makes "gpj.exe" look like "exe.jpg") and zero-width
    # joiners; Cs: lone surrogates; Zl/Zp: line and paragraph separators.
    return unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp")


def _blank_as_space(ch: str) -> bool:
    # The letters that render as nothing (untrusted_text.BLANK_LETTERS): sixty Hangul
    # fillers or braille blanks between "invoice.pdf" and ".exe" push the real extension
    # out of every view that cuts the name. The spacing ones (Hangul fillers, the braille
    # blank) count as white space, so a run of them is one visible space; the combining
    # ones (grapheme joiner, Khmer vowels, Mongolian selectors) are dropped.
    return ch in BLANK_LETTERS and not unicodedata.category(ch).startswith("M")


def safe_file_name(name: object, fallback: str = FALLBACK_NAME) -> str:
    """A file name that is safe to display and to create in any folder on any desktop OS.

    Path separators and the characters Windows forbids become ``_``; controls, format
    characters (bidi overrides, zero-width characters), separators and the combining
    letters that render as nothing are dropped; whitespace, and the spacing letters that
    render as nothing (Hangul fillers, the braille blank), count as spaces and each run of
    them becomes one space; leading dots and spaces (hidden files, ``..``) and
    trailing dots and spaces (which Windows strips) are removed; Windows device names
    (``CON``, ``nul.txt``, ``COM1``…) get a ``_`` prefix; the result is cut to 255 UTF-8
    bytes keeping the extension. Never empty: ``fallback`` when nothing is left.

    A name of more than ``MAX_NAME_CHARS`` characters is first cut in the middle, on
    characters, to that many: its beginning and its last ``MAX_NAME_CHARS // 2`` around
    a ``…`` (red team rt69: a 250,000-character name was cleaned whole, a Python step a
    character, again and again while its row was painted). Its end is kept as it was,
    so the extension is judged on the name as cleaned; the ``…`` shows where characters
    were left out (when it is within the 255 bytes kept: a name of letters only is cut to
    the same 255 bytes either way); and the name checked is the name shown, saved and
    opened, since every use of a name goes through here.
    """
    if not isinstance(name, str):
        return fallback
    if len(name) > MAX_NAME_CHARS:
        half = MAX_NAME_CHARS // 2
        name = f"{name[: half - 1]}…{name[-half:]}"
    text = unicodedata.normalize("NFC", name)
    out = []
    for ch in text:
        if ch in _UNSAFE_CHARS:
            out.append("_")
        elif ch.isspace() or _blank_as_space(ch):
            out.append(" ")
        elif _keep(ch) and ch not in BLANK_LETTERS:
            out.append(ch)
    text = re.sub(r" {2,}", " ", "".join(out))
    text = text.lstrip(". ").rstrip(". ")
    if not text:
        return fallback
    stem = text.split(".", 1)[0].rstrip(" ")
    if stem.upper() in _RESERVED:
        text = "_" + text
    return _cut_utf8(text, MAX_NAME_BYTES) or fallback


def _cut_utf8(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` UTF-8 bytes, keeping a short extension when it has one."""
    if len(text.encode("utf-8")) <= limit:
        return text
    stem, dot, ext = text.rpartition(".")
    if not dot or not stem or len(ext.encode("utf-8")) > 16:
        stem, ext = text, ""
    tail = f".{ext}" if ext else ""
    room = limit - len(tail.encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(". ")
    return cut + tail if cut else tail.lstrip(".")


def is_risky_to_open(name: str) -> bool:
    """True when opening a file of this name could run code (``.exe``, ``.sh``, ``.desktop``,
    ``.html``, ``.docm``…); such files are only saved, never opened by a click.

    The sanitised name decides, as it will be on disk: case does not matter (``.ExE``),
    trailing dots and spaces are ignored as Windows ignores them (``x.exe .``), and the
    last parts count together for compound extensions (``x.pkg.tar.zst``). Only the end
    of the name counts, as it does for the desktop: ``invoice.exe.pdf`` is a PDF,
    ``invoice.pdf.exe`` (or its bidi-spoofed spelling ``invoice\u202efdp.exe``) is a
    program.
    """
    clean = safe_file_name(name).rstrip(". ").casefold()
    parts = [p.strip() for p in clean.split(".")]
    return any(
        ".".join(parts[i:]) in RISKY_EXTENSIONS for i in range(max(1, len(parts) - 3), len(parts))
    )


# What a desktop that chooses the handler by the bytes would run. GIO (GNOME, and Qt's
# xdg-open there) judges a name without a known extension by its content; xdg-mime's
# fallback, file(1), judges every file by its content. So a "minutes" that is a Windows
# program goes to Wine, an "agenda.zzz" that is HTML to a browser, whatever the name.
_PROGRAM_SIGNATURES = (
    b"MZ",  # Windows (PE, and DOS before it)
    b"\x7fELF",  # Linux and the other Unixes
    b"\xfe\xed\xfa\xce",  # Mach-O, both byte orders, 32 and 64 bits
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",  # a universal Mach-O, or a Java class
)
_LAUNCHER_SIGNATURES = (b"[desktop entry]", b"[desktop action", b"[kde desktop entry]")
# The other marks shared-mime-info gives a launcher, at the very start (red team rt58:
# a "minutes" beginning "# KDE Config File" is application/x-desktop to Qt and KDE)
_LAUNCHER_STARTS = (b"# config file", b"# kde config file")
# A shell script without "#!", by its interpreter's path beginning at byte 2 … 16
# (shared-mime-info's application/x-shellscript; GIO and Qt call ":\n/bin/sh -c id" one)
_SHELL_PATHS = (
    b"/bin/bash",
    b"/bin/nawk",
    b"/bin/zsh",
    b"/bin/sh",
    b"/bin/ksh",
    b"/bin/dash",
    b"/bin/env sh",
    b"/bin/env bash",
    b"/bin/env zsh",
    b"/bin/env ksh",
)
# Packages shared-mime-info (and file(1)) know by their first bytes, whatever the name:
# GNOME Software, KDE Discover or gdebi offer to install a "minutes" or a "notes.txt"
# that is one (red team rt56). Each is (offset, mark): all of a package's marks must be
# there. The names (.deb, .rpm, .flatpak) are save-only already. An AppImage is an ELF
# program (above); a snap is known only by its name (by content it is a squashfs image,
# which nothing installs); a macOS package (xar) or an MSI (an OLE file, as a .doc is)
# is opened by its name, never by its content.
_PACKAGE_SIGNATURES = (
    ("a Debian package", ((0, b"!<arch>"), (8, b"debian"))),  # not any ar archive (.a)
    ("an RPM package", ((0, b"\xed\xab\xee\xdb"),)),
    ("a Flatpak bundle", ((0, b"flatpak\x00\x01\x00\x89\xe5"),)),
    ("a Flatpak bundle", ((0, b"xdg-app\x00\x01\x00\x89\xe5"),)),  # its older name
)
# Installers shared-mime-info knows by a mark that begins anywhere in the first 256
# bytes (``SNIFFED_BYTES``): a Flatpak reference or repository (GNOME Software installs
# from the sender's server) and a Java Web Start descriptor (runs the sender's jar). A
# "vpn.conf" holding one opened in GNOME Software (red team rt55); the same names with
# their own extensions are save-only already.
_INSTALLER_NEAR_START = (b"[flatpak ref]", b"[flatpak repo]", b"<jnlp")
# Markup a browser runs, beginning anywhere in the first 256 bytes, whatever the name:
# the marks shared-mime-info and file(1) take for text/html, image/svg+xml and XML
# (which may carry a stylesheet that runs), any case. Rare at the top of an honest text.
_MARKUP_NEAR_START = (
    b"<!doctype html",
    b"<html",
    b"<head",
    b"<script",
    b"<body",
    b"<iframe",
    b"<!doctype svg",
    b"<svg",
    b"<?xml",
)
# Tags browsers (and GIO, for <h1 and <!--) sniff a file as HTML by when it begins with one
# (after white space) and its name says nothing: a name without an extension, or with one
# no desktop knows ("agenda.zzz", "notes.draft": GIO judges those by content too). A
# README.md beginning with <p align="center"> or <h1> opens by its extension everywhere,
# as does any name ending in one of these (text, code, documents, pictures, media,
# archives: kinds a desktop opens by the extension, never by a first tag).
_KNOWN_KINDS = """
    txt text md markdown mdown mkd rst adoc asciidoc org tex latex bib csv tsv log diff
    patch json jsonl ndjson yaml yml toml ini cfg conf properties env
    py pyi c h cc cpp cxx hpp java kt kts go rs rb php pl pm ts tsx jsx mjs cjs vue svelte
    css scss sass less sql swift m mm cs fs lua r dart scala ex exs erl hs clj el vim
    erb ejs hbs handlebars mustache j2 jinja jinja2 njk liquid twig tpl tmpl
    pdf doc docx odt rtf xls xlsx ods ppt pptx odp epub pages numbers key
    png jpg jpeg gif webp bmp tif tiff heic heif ico avif
    mp3 mp4 m4a wav ogg oga opus flac webm mkv mov avi
    zip tar gz tgz bz2 xz 7z rar zst
"""
_OPENS_BY_EXTENSION = frozenset(_KNOWN_KINDS.split())
_MARKUP_FIRST = re.compile(
    rb"<(?:!--|a|b|br|p|h1|div|font|table|title|style|object|embed|form|img|meta|link)[\s>/]"
)
SNIFFED_BYTES = 256
"""Where shared-mime-info looks for a mark "in the first 256 bytes" (``offset="0:256"``):
the mark may BEGIN at any offset from 0 to 256, the range inclusive, and so end past
them (red team rt56: a ``[Flatpak Ref]`` at byte 250, or 256, is one to GIO)."""
LAUNCHER_BYTES = 64
"""A launcher's group header may begin at any offset up to this one (shared-mime-info
says 0 … 32 for ``[Desktop Entry]``; a few more lines of comments count too)."""
# The tags file(1) (5.44) takes for HTML anywhere in a file's first 4096 bytes, after any
# text, whatever the name: xdg-open's fallback then hands an "agenda.txt" whose <html>
# follows 300 bytes of padding to a browser.
_MARKUP_FILE_1 = re.compile(rb"<(?:!doctype\s+html|html|head|script|style|table|title)[\s>]")
FILE_1_SEARCHED_BYTES = 4096


def _opens_by_extension(name: str) -> bool:
    """The (safe) name ends in an extension desktops open by its kind (``_OPENS_BY_EXTENSION``)."""
    stem, dot, ext = safe_file_name(name).rstrip(". ").rpartition(".")
    return bool(dot and stem) and ext.strip().casefold() in _OPENS_BY_EXTENSION


def _begins_within(text: bytes, marks: tuple[bytes, ...], last: int) -> bool:
    """Whether one of ``marks`` begins at an offset from 0 to ``last`` (inclusive) of
    ``text``, as shared-mime-info's ``offset="0:last"`` matches: each is searched in
    the first ``last`` bytes plus its own length, so a mark that begins in the last
    bytes of the window is found whole."""
    return any(text.find(mark, 0, last + len(mark)) >= 0 for mark in marks)


def _is_java_archive(data: bytes) -> bool:
    """A zip whose first entry's extra field begins with the 0xCAFE mark the jar tool
    writes: application/java-archive to file(1), which a JRE's desktop entry runs."""
    if not data.startswith(b"PK\x03\x04") or len(data) < 30:
        return False
    name_len = int.from_bytes(data[26:28], "little")
    extra_len = int.from_bytes(data[28:30], "little")
    return extra_len >= 2 and data[30 + name_len : 32 + name_len] == b"\xfe\xca"


def _package(data: bytes) -> str | None:
    """Which package ``data`` is by its first bytes (``_PACKAGE_SIGNATURES``), else None."""
    for what, marks in _PACKAGE_SIGNATURES:
        if all(data[at : at + len(mark)] == mark for at, mark in marks):
            return what
    return None


def active_content(data: bytes, name: str = "") -> str | None:
    """What ``data`` is when a desktop that looks at the bytes would run it, else None:
    "a program", "a Java program (a jar)", "a script (#!)", "a desktop launcher", "an
    installer (…)" (a Debian, RPM, Flatpak or macOS package; a Flatpak reference or
    repository; Java Web Start) or "a web page or other markup a browser runs".

    Signatures are looked for at the start of the file; the marks of an installer or of
    markup where they BEGIN within the first ``SNIFFED_BYTES`` (offsets 0 to 256, as
    shared-mime-info reads its ``0:256``: a mark that starts at byte 250 counts whole,
    past the window's end), a launcher's header where it begins within the first
    ``LAUNCHER_BYTES``, all after a BOM (a UTF-16 text is read as text); the tags
    file(1) searches further, in its first ``FILE_1_SEARCHED_BYTES``. ``name`` (the
    file's, made safe) decides whether the weaker marks of a web page (a first tag,
    after white space, beginning within the first ``SNIFFED_BYTES``) count: only
    without an extension a desktop opens by its kind (none, or one it does not know).

    ``is_risky_to_open`` judges the name; this judges the bytes, for the desktops whose
    choice of handler follows the content (a name with no or an unknown extension on
    GNOME; every file where xdg-open falls back to file(1)). A reader opens a file only
    when neither says it runs code.
    """
    text = data[: FILE_1_SEARCHED_BYTES * 2]
    if text.startswith(_PROGRAM_SIGNATURES):
        return "a program"
    if _is_java_archive(text):
        return "a Java program (a jar)"
    if text.startswith(b"#!"):
        return "a script (#!)"
    if any(text.find(path, 2, 16 + len(path)) >= 0 for path in _SHELL_PATHS):
        return "a script (its interpreter named at its start)"
    package = _package(text)
    if package is not None:
        return f"an installer ({package})"
    if text.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = text.decode("utf-16", "ignore").encode("utf-8", "ignore")
    elif text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    text = text[:FILE_1_SEARCHED_BYTES].lower()
    if _begins_within(text, _LAUNCHER_SIGNATURES, LAUNCHER_BYTES) or text.startswith(
        _LAUNCHER_STARTS
    ):
        return "a desktop launcher"
    if _begins_within(text, _INSTALLER_NEAR_START, SNIFFED_BYTES):
        return "an installer (a Flatpak reference or repository, or Java Web Start)"
    if _begins_within(text, _MARKUP_NEAR_START, SNIFFED_BYTES) or _MARKUP_FILE_1.search(text):
        return "a web page or other markup a browser runs"
    first = text.lstrip()  # the first tag, after white space, beginning within the window
    if (
        not _opens_by_extension(name)
        and len(text) - len(first) <= SNIFFED_BYTES
        and _MARKUP_FIRST.match(first)
    ):
        return "a web page or other markup a browser runs"
    return None


def not_to_open(name: str, data: bytes | None = None) -> str | None:
    """Why a received file must not be opened by a click, nor linked from an export's
    page: its name is of a kind that runs code (``is_risky_to_open``), or its bytes are
    (``active_content``, when they are known); None when neither says so. The one rule
    the app's Open and the export's links follow."""
    if is_risky_to_open(name):
        return "a kind of file that can run code when opened"
    return None if data is None else active_content(data, name)


ZONE_INTERNET = 3
"""Windows' URL security zone for files from the internet (Mark-of-the-Web)."""


def zone_identifier(host_url: str | None = None) -> bytes:
    """The ``Zone.Identifier`` stream Windows reads to know a file was downloaded
    (Mark-of-the-Web): SmartScreen, Office's Protected View and script hosts then warn
    or sandbox. ``host_url`` (optional) says where it came from; it is made one line."""
    lines = ["[ZoneTransfer]", f"ZoneId={ZONE_INTERNET}"]
    if host_url:
        lines.append("HostUrl=" + "".join(ch for ch in host_url if ch.isprintable())[:2000])
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def quarantine_attribute(agent: str, when_s: int, event_uuid: str = "") -> bytes:
    """The ``com.apple.quarantine`` extended attribute macOS reads to know a file was
    downloaded: Gatekeeper checks it before anything in it runs, and apps warn.
    ``flags;hex seconds;agent;uuid`` with flags 0081 (downloaded, not yet approved)."""
    clean_agent = "".join(ch for ch in agent if ch.isprintable() and ch != ";")[:64]
    return f"0081;{when_s:08x};{clean_agent};{event_uuid}".encode()


def clean_mimetype(value: object) -> str:
    """A syntactically plain ``type/subtype`` in lowercase, else ``application/octet-stream``.

    Parameters (``; charset=…``) are dropped. The result is a label only: nothing decides
    how to open a file from the sender's mimetype.
    """
    if not isinstance(value, str):
        return DEFAULT_MIMETYPE
    base = value.split(";", 1)[0].strip().lower()
    return base if _MIME_RE.fullmatch(base) else DEFAULT_MIMETYPE


MAX_JPEG_SCANS = 100
"""Readers ignore a JPEG thumbnail of more scans: each makes the decoder go over every
block again (thousands fit in 32 KB); a real progressive JPEG has about ten."""

# Up to the next marker, as libjpeg finds it (jdmarker.c ``next_marker``): bytes that
# are not 0xFF are skipped ("extraneous bytes before marker"), and so is a 0xFF00, which
# is no marker; the match ends after the fill bytes (0xFF), before the marker's code.
# Possessive, so linear in the data whatever its bytes.
_JPEG_TO_MARKER = re.compile(rb"(?:[^\xff]++|\xff++\x00)*+\xff++")
# Up to the marker that ends a scan's entropy-coded data: neither a stuffed 0xFF00 nor a
# restart (RST0-RST7), which the decoder reads as part of the scan.
_JPEG_TO_SCAN_END = re.compile(rb"(?:[^\xff]++|\xff++[\x00\xd0-\xd7])*+\xff++")
_JPEG_EOI, _JPEG_SOS = 0xD9, 0xDA
# Markers libjpeg reads without a length: the restarts and TEM.
_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD8)})
# Markers libjpeg reads as a segment with a length (jdmarker.c ``read_markers``): the
# frame headers it decodes (SOF0-SOF3, SOF9-SOF11), DHT, DAC, DQT, DRI, DNL, the APPn,
# COM and SOS. Any other marker (a second SOI, an unknown one) stops the walk.
_JPEG_SEGMENTS = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC9, 0xCA, 0xCB, 0xCC, 0xDB, 0xDC, 0xDD, _JPEG_SOS, 0xFE}
    | set(range(0xE0, 0xF0))
)


def jpeg_scans(data: bytes, most: int = MAX_JPEG_SCANS) -> int | None:
    """How many scans (SOS segments) libjpeg decodes from the JPEG ``data``, counting
    stops past ``most``; None when the walk cannot tell, and the thumbnail must not be
    decoded.

    The walk finds each marker as libjpeg does: bytes that are not a marker where one is
    expected are skipped to the next 0xFF, as are fill bytes and a 0xFF00; a scan's
    entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or a restart.
    Red team rt69: the walk gave up at the first stray byte, or at a segment of length 0,
    and returned the count so far (0) while libjpeg skipped the byte, or took the segment
    as empty, and decoded the ~2,300 scans behind it. So anything the walk cannot follow
    exactly gives None: a segment whose length is under 2 or runs past the end, a marker
    libjpeg does not read (a second SOI, an unknown one), data that ends before EOI.
    A writer's thumbnail (Pillow's) is never like that. Pure, and linear in the data."""
    if not data.startswith(b"\xff\xd8"):
        return None
    count, at, end = 0, 2, len(data)
    pattern = _JPEG_TO_MARKER
    while (found := pattern.match(data, at)) is not None and found.end() < end:
        marker, at = data[found.end()], found.end() + 1
        pattern = _JPEG_TO_MARKER
        if marker == _JPEG_EOI:
            return count
        if marker in _JPEG_NO_LENGTH:
            continue
        if marker not in _JPEG_SEGMENTS or at + 2 > end:
            return None
        length = int.from_bytes(data[at : at + 2], "big")
        if length < 2 or at + length > end:
            return None
        at += length
        if marker == _JPEG_SOS:
            count += 1
            if count > most:
                return count
            pattern = _JPEG_TO_SCAN_END
    return None  # no EOI


def thumbnail_format(data: bytes) -> str | None:
    """``"jpeg"`` or ``"png"`` from the data's signature bytes, else None."""
    for magic, fmt in _THUMB_SIGNATURES:
        if data.startswith(magic):
            return fmt
    return None


def file_content(
    name: str,
    size: int,
    mimetype: str,
    sha256: str,
    *,
    width: int | None = None,
    height: int | None = None,
    thumbnail_b64: str | None = None,
) -> dict[str, Any]:
    """The ``m.room.message`` content announcing a stored blob.

    ``m.image`` when both ``width`` and ``height`` are given, else ``m.file``. ``body`` is
    the (sanitised) file name, so clients that know nothing about attachments still show
    something meaningful. Raises ValueError for values a reader would refuse, and for a
    thumbnail that is not base64 of a JPEG or PNG within ``MAX_THUMBNAIL_BYTES``.
    """
    if not is_sha256_hex(sha256):
        raise ValueError("sha256 must be 64 lowercase hex digits")
    if type(size) is not int or not 0 <= size <= MAX_SIZE:
        raise ValueError("size must be a non-negative integer within 2**53 - 1")
    safe = safe_file_name(name)
    info: dict[str, Any] = {
        "name": safe,
        "size": size,
        "mimetype": clean_mimetype(mimetype),
        "sha256": sha256,
    }
    image = width is not None and height is not None
    if image:
        if not (_dimension_ok(width) and _dimension_ok(height)):
            raise ValueError(f"width and height must be integers in 1…{MAX_DIMENSION}")
        info["w"] = width
        info["h"] = height
    if thumbnail_b64 is not None:
        raw = _b64decode(thumbnail_b64)
        if raw is None or thumbnail_format(raw) is None:
            raise ValueError("thumbnail must be standard base64 of a JPEG or PNG")
        if len(raw) > MAX_THUMBNAIL_BYTES:
            raise ValueError(
                f"thumbnail of {len(raw):,} bytes exceeds the {MAX_THUMBNAIL_BYTES:,}-byte cap"
            )
        info["thumbnail"] = thumbnail_b64
    return {"msgtype": IMAGE if image else FILE, "body": safe, "info": info}


def _dimension_ok(value: object) -> bool:
    return type(value) is int and 1 <= value <= MAX_DIMENSION


def _b64decode(text: object) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        raw = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    return raw


def announced_name(content: object) -> str:
    """The file name a message announces, made safe: ``info.name`` when it is a non-blank
    string, else ``body`` (``file`` when neither is usable). The one name every view of
    the message uses — its card, the room list, a notification, its menu, the copy
    opened or saved."""
    if not isinstance(content, Mapping):
        return FALLBACK_NAME
    info = content.get("info")
    raw = info.get("name") if isinstance(info, Mapping) else None
    if not isinstance(raw, str) or not raw.strip():
        raw = content.get("body")
    return safe_file_name(raw)


def message_text(content: object, name: str | None = None) -> str:
    """What a message says, as every view shows, copies, searches or reads it aloud:
    ``📎 `` and its announced name (``announced_name``, or ``name`` when the caller has
    worked it out already) for a file or image message, its body for any other ("" when
    that is not a string).

    A file message's ``body`` is never its text: a card shows only the file, so a body
    such as "I, Bob, confirm Alice owes me $5000" would be a statement one view hides
    and another (the terminal, search, a screen reader, "Copy text") shows as said."""
    if not isinstance(content, Mapping):
        return ""
    if is_file_message(content):
        return f"{ATTACHMENT_MARK} {announced_name(content) if name is None else name}"
    body = content.get("body")
    return body if isinstance(body, str) else ""


def middle_cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut in the middle (``…``) so that its end,
    a file's extension, always shows: "Q4_financial…final_version.pdf.scr"."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return "…"[:limit]
    tail = (limit - 1) // 2
    head = limit - 1 - tail
    return f"{text[:head]}…{text[len(text) - tail :]}"


def parse_file_content(content: object) -> FileInfo | str:
    """Check an untrusted message content that announces a file.

    Returns a ``FileInfo`` or a sentence saying why the content cannot be used. Required:
    ``msgtype`` ``m.file``/``m.image``, an ``info`` object, ``info.sha256`` (64 lowercase
    hex digits) and ``info.size`` (an integer ≥ 0). The name comes from ``info.name``,
    else ``body``, and is always sanitised. A bad ``mimetype`` becomes
    ``application/octet-stream``; bad ``w``/``h`` or an unusable thumbnail are dropped
    (the file itself is still usable).
    """
    if not isinstance(content, Mapping):
        return "content is not an object"
    if not is_file_message(content):
        return f"msgtype is not {FILE} or {IMAGE}"
    info = content.get("info")
    if not isinstance(info, Mapping):
        return "info is missing or not an object"
    sha = info.get("sha256")
    if not is_sha256_hex(sha):
        return "info.sha256 is not 64 lowercase hex digits"
    size = info.get("size")
    if type(size) is not int or not 0 <= size <= MAX_SIZE:
        return "info.size is not a non-negative integer"
    width, height = info.get("w"), info.get("h")
    if not (_dimension_ok(width) and _dimension_ok(height)):
        width = height = None
    thumb: bytes | None = None
    fmt: str | None = None
    text = info.get("thumbnail")
    # A base64 text 4/3 the size of the cap is the longest worth decoding.
    if isinstance(text, str) and len(text) <= (MAX_THUMBNAIL_READ_BYTES + 2) // 3 * 4:
        thumb = _b64decode(text)
        fmt = thumbnail_format(thumb) if thumb else None
        if fmt == "jpeg" and thumb is not None:
            scans = jpeg_scans(thumb)
            if scans is None or scans > MAX_JPEG_SCANS:
                fmt = None  # a decompression-time bomb, or one whose scans cannot be counted
        if fmt is None:
            thumb = None
    return FileInfo(
        msgtype=str(content["msgtype"]),
        name=announced_name(content),
        size=size,
        mimetype=clean_mimetype(info.get("mimetype")),
        sha256=sha,
        width=width if isinstance(width, int) else None,
        height=height if isinstance(height, int) else None,
        thumbnail=thumb,
        thumbnail_format=fmt,
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_blob(data: bytes, info: FileInfo) -> str | None:
    """None when ``data`` is exactly the announced file; otherwise what differs (a clause
    without the file's name, e.g. "the stored file has 12 bytes, the signed message says 11").

    The size is compared first (cheap, and says more than a hash to a person), then the
    SHA-256. A caller MUST NOT show, open or save bytes for which this returns a problem.
    """
    if len(data) != info.size:
        return f"the stored file has {len(data):,} bytes, the signed message says {info.size:,}"
    actual = sha256_hex(data)
    if actual != info.sha256:
        return (
            f"the stored file's SHA-256 is {actual[:16]}…, "
            f"the signed message says {info.sha256[:16]}…"
        )
    return None
