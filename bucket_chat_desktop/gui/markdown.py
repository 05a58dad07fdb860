"""Message bodies as safe rich text.

markdown-it-py with raw HTML disabled: a body can never inject markup. Images are rendered
as plain links (no remote or local file is ever loaded to show a message), and only
http(s) and mailto links are made clickable.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from markdown_it import MarkdownIt

from ..protocol.untrusted_text import html_escape, one_line

log = logging.getLogger("bucket_chat.gui")

SAFE_SCHEMES = ("http://", "https://", "mailto:")


def _render_image(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    # markdown-it calls a render rule as rule(renderer, tokens, idx, options, env).
    token = tokens[idx]
    src = token.attrGet("src") or ""
    alt = html_escape(_plain_text(token) or str(src))
    if isinstance(src, str) and src.startswith(SAFE_SCHEMES):
        return f'<a href="{html_escape(src)}">[image: {alt}]</a>'
    return f"[image: {alt}]"


def _plain_text(token: Any) -> str:
    """An image's alt text: its children's text (``token.content`` is the raw source)."""
    children = token.children or []
    text = "".join(str(c.content) for c in children if c.type in ("text", "code_inline"))
    return text or str(token.content or "")


def _safe_links(md: MarkdownIt) -> None:
    original = md.validateLink

    def validate(url: str) -> bool:
        return original(url) and url.strip().lower().startswith(SAFE_SCHEMES)

    md.validateLink = validate  # type: ignore[method-assign]


class _TooCostly(Exception):
    """Raised from inside the parser when a body passes a limit: ``note`` says which."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


def _budget_block(state: Any, start: int, end: int, silent: bool) -> bool:
    """The first block rule, tried at each block the parser starts (nested ones too):
    stops the parse once it is past ``MAX_NESTING`` or ``MAX_TOKENS`` (with
    ``env["limits"]``), so a costly body is never parsed to its end. Never matches."""
    if not state.env.get("limits"):
        return False
    if state.level > MAX_NESTING:  # this block's first token is that deep
        raise _TooCostly(NESTED_NOTE)
    if len(state.tokens) > MAX_TOKENS:
        cells = _cells(state.tokens)
        raise _TooCostly(_cells_note(cells) if cells > MAX_TABLE_CELLS else TOKENS_NOTE)
    return False


def _budget_core(state: Any) -> None:
    """Between the block and the inline pass: table cells (``env["limits"]``) and the
    characters the inline pass would stop at (``env["limits"]`` or ``env["marks"]``),
    counted on the blocks just parsed (the inline pass is the costly one)."""
    if state.env.get("limits"):
        cells = _cells(state.tokens)
        if cells > MAX_TABLE_CELLS:
            raise _TooCostly(_cells_note(cells))
    if state.env.get("limits") or state.env.get("marks"):
        stops = state.md.inline.terminator_re
        marks = sum(
            sum(1 for _ in stops.finditer(str(token.content)))
            for token in state.tokens
            if token.type == "inline"
        )
        if marks > MAX_INLINE_MARKS:
            raise _TooCostly(
                f"Shown as plain text: it has {marks:,} formatting characters outside "
                f"code (at most {MAX_INLINE_MARKS:,} are formatted)."
            )


def _cells(tokens: Any) -> int:
    return sum(1 for token in tokens if token.type in ("td_open", "th_open"))


@functools.cache
def _parser() -> MarkdownIt:
    md = MarkdownIt(
        "commonmark",
        {"html": False, "linkify": False, "typographer": False, "maxNesting": 20},
    )
    md.enable(["strikethrough", "table"])
    md.add_render_rule("image", _render_image)
    md.block.ruler.before("table", "budget", _budget_block)
    md.core.ruler.after("block", "budget", _budget_core)
    _safe_links(md)
    return md


# What one message may cost to lay out. A body is written by any member of the room, so
# its layout cost must be bounded: Qt lays out a rich-text table cell by cell, on the GUI
# thread, again at every width, and a 256 KiB body of tables held the window for seconds
# per message (benchmarks/markdown_bench.py). Past these limits the body is shown as plain
# text with a note saying why; past MAX_SHOWN_CHARS only its beginning is shown.
MAX_RICH_CHARS = 8_000  # longer bodies are not parsed as Markdown at all
MAX_TABLE_CELLS = 150  # table cells in one message
MAX_TOKENS = 4_000  # Markdown elements in one message
MAX_NESTING = 8  # quotes, lists and emphasis inside each other
# Characters the inline parser stops at (``*``, ``[``, ``<``, ``!``, ``:``, a line break...:
# its "terminators"), in text outside code blocks. Ordinary Markdown has about one in
# eight characters and costs ~4 us each, but some run to 45 us each ("![" repeated over
# 8,000 characters: 0.36 s to parse, against 0.03 s for 8,000 characters of ordinary
# Markdown), and a room's page of such messages is formatted at once when it is shown
# (30 of them held the window 21 s). At this many the worst found costs ~0.09 s.
MAX_INLINE_MARKS = 1_000
MAX_SHOWN_CHARS = 20_000  # what the timeline shows of one body...
MAX_SHOWN_LINES = 400  # ...and of its lines (a row must not be a screen-sized blank)

# How a body's document is styled, in the timeline's rows and in every window that shows
# bodies as they do (the versions of a message). A code block wraps as a paragraph does:
# unwrapped, its lines ran past a row's right edge, where nothing shows them (red team
# rt86: "NOT approved: pay account 6666 instead", 400 spaces along a line).
BODY_STYLE = (
    "a { color: #3a7bd5; } code, pre { font-family: monospace; } pre { white-space: pre-wrap; }"
    " p { margin: 0; } blockquote { color: #777; }"
)

NESTED_NOTE = "Shown as plain text: its quotes or lists are nested too deeply."
TOKENS_NOTE = "Shown as plain text: the message has too many formatted parts to lay out."


# Every character Qt starts a new line at, in a plain body (``QPainter.drawText``) or a
# formatted one (``QTextDocument``): "\n", "\r" (and "\r\n", one break), VT, FF, the
# file/group/record separators, NEL, U+2028 LINE SEPARATOR and U+2029 PARAGRAPH
# SEPARATOR: ``str.splitlines``'s. A body's lines are counted by all of them (red team
# rt86: 19,990 U+2028, counted as no line at all, made a row 279,898 px tall).
LINE_BREAKS = re.compile("\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_ODD_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class Shown:
    """What of a body the timeline lays out: ``text``, its first ``MAX_SHOWN_LINES``
    lines and at most ``MAX_SHOWN_CHARS`` characters, and what was left out: ``lines``
    (the body was cut at a line break: the lines after it) or ``chars`` (it was cut in a
    line: the characters after it)."""

    text: str
    lines: int = 0
    chars: int = 0

    @property
    def note(self) -> str:
        """What was left out, in the words every view uses; "" when nothing was."""
        return cut_note(self.lines, self.chars)


def cut_note(lines: int, chars: int = 0) -> str:
    """ "[… 7,501 more lines not shown here]" (or characters, or both): what a body cut
    for showing leaves out; "" when nothing."""
    parts = []
    if lines:
        parts.append(f"{lines:,} more line{'s' if lines != 1 else ''}")
    if chars:
        parts.append(f"{chars:,} more character{'s' if chars != 1 else ''}")
    return f"[… {' and '.join(parts)} not shown here]" if parts else ""


def shown_part(text: str, *, plain: bool = True) -> Shown:
    """The part of a body the timeline lays out: its first ``MAX_SHOWN_LINES`` lines,
    counted by every line break Qt honours (``LINE_BREAKS``), and at most
    ``MAX_SHOWN_CHARS`` characters. ``plain``: the body is shown as plain text, and
    every line break in it becomes "\n" (``QPainter.drawText`` breaks at some of them
    only, a document at all: one text, one layout). A formatted body keeps its own: the
    parser reads them."""
    if plain and _ODD_BREAKS.search(text) is not None:
        text = LINE_BREAKS.sub("\n", text)
    stop = min(len(text), MAX_SHOWN_CHARS)
    breaks = "\n" if plain else LINE_BREAKS
    cut = -1
    if plain and text.count("\n", 0, stop) >= MAX_SHOWN_LINES:
        for _ in range(MAX_SHOWN_LINES):
            cut = text.index("\n", cut + 1)
    elif not plain:
        for n, found in enumerate(LINE_BREAKS.finditer(text, 0, stop), 1):
            if n == MAX_SHOWN_LINES:
                cut = found.start()
                break
    if cut >= 0:  # at a line break: the lines after it (a break that ends the text
        rest = text[cut:]  # starts none)
        lines = rest.count("\n") if isinstance(breaks, str) else len(breaks.findall(rest))
        lines -= LINE_BREAKS.fullmatch(rest[-1]) is not None
        return Shown(text[:cut], lines=lines)
    if stop < len(text):
        return Shown(text[:stop], chars=len(text) - stop)
    return Shown(text)


def shown_text(text: str) -> str:
    """The part of a plain body the timeline lays out (``shown_part``), with a note when
    it was shortened."""
    part = shown_part(text)
    return f"{part.text}\n{part.note}" if part.note else part.text


def _escaped(text: str) -> str:
    return html_escape(text).replace("\n", "<br>")


def _with_note(html: str, note: str) -> str:
    return f"<p>{html}</p><p><i>{html_escape(note)}</i></p>" if note else html


def _plain_html(text: str, note: str = "") -> str:
    return _with_note(_escaped(shown_text(text)), note)


def plain_html(text: str, note: str = "") -> str:
    """A body as escaped plain text (``shown_text``), with ``note`` in italics below."""
    return _plain_html(text, note)


def _cells_note(cells: int) -> str:
    return (
        f"Shown as plain text: its tables have {cells:,} cells "
        f"(at most {MAX_TABLE_CELLS:,} are formatted)."
    )


# A list marker ("-", "*", "+", "1." or "1)" before a space) or a quote marker at the start
# of a line, after the markers before it; and a thematic break ("- - -", "***").
_MARKER = re.compile(r"(?:[-*+]|[0-9]{1,9}[.)])(?=[ \t])[ \t]*|>[ \t]?")
_BREAK = re.compile(r"([-*_])(?:[ \t]*\1){2,}[ \t]*")


def block_elements(text: str) -> int:
    """A cheap estimate, in one walk of the lines and before any parse, of the elements
    the parser makes of ``text``'s list items and the quotes in them (what ``to_html``
    counts against ``MAX_TOKENS``). On a line, the first list marker opens an item (2
    elements), and past it each marker opens a container of its own: a list and its
    item (4), a quote (2); text after them is a paragraph (4). Quote markers before the
    first list marker may continue a quote, and count nothing; so do lines in a code
    fence and thematic breaks. The walk stops once past ``MAX_TOKENS``.

    List-shaped bodies cost the parser the most per character ("- - - - i" lines: 0.1 s
    for 8,000 characters, a page of 200 held the window 18 s), and they are refused
    here without being parsed."""
    count = 0
    fence = ""
    for line in text.split("\n"):
        s = line.lstrip(" \t")
        if s.startswith(("```", "~~~")):
            if not fence:
                fence = s[:3]
            elif s.startswith(fence):
                fence = ""
            continue
        if fence or not s or s[0] not in "-*+>0123456789" or _BREAK.fullmatch(s):
            continue
        pos = 0
        fresh = False  # inside a list item opened on this line: every container is new
        while (found := _MARKER.match(s, pos)) is not None:
            quote = found.group()[0] == ">"
            if fresh:
                count += 2 if quote else 4
            elif not quote:
                count += 2
                fresh = True
            pos = found.end()
        if fresh and s[pos:].strip():
            count += 4
        if count > MAX_TOKENS:
            break
    return count


class _Rendered(NamedTuple):
    html: str  # the shown part (``part``) as rich text
    part: Shown  # what of the body that is
    why: str  # why it is shown as plain text, or ""
    plain: bool  # shown as plain text: ``html`` is a run of escaped lines


def _as_plain(text: str, why: str = "") -> _Rendered:
    part = shown_part(text)
    return _Rendered(_escaped(part.text), part, why, True)


def _render(text: str) -> _Rendered:
    """A body's shown part (``shown_part``: a formatted body is cut at its
    ``MAX_SHOWN_LINES``th line before it is parsed, as a plain one is) as rich text.
    Never raises: a body that is too costly to format, or that the renderer fails on, is
    shown as plain text and ``why`` says why."""
    if is_plain(text):
        return _as_plain(text)
    if len(text) > MAX_RICH_CHARS:
        return _as_plain(
            text,
            f"Shown as plain text: the message is too long to format ({len(text):,} characters).",
        )
    if block_elements(text) > MAX_TOKENS:
        return _as_plain(text, TOKENS_NOTE)
    part = shown_part(text, plain=False)
    try:
        md = _parser()
        # One parse, stopped at the first limit passed (_budget_block, _budget_core).
        tokens = md.parse(part.text, {"limits": True})
        elements = depth = 0
        for token in tokens:
            children = token.children or ()
            elements += 1 + len(children)
            depth = max(depth, token.level, *(token.level + c.level for c in children))
        if depth > MAX_NESTING:
            return _as_plain(text, NESTED_NOTE)
        if elements > MAX_TOKENS:
            return _as_plain(text, TOKENS_NOTE)
        rendered = md.renderer.render(tokens, md.options, {})
    except _TooCostly as over:
        return _as_plain(text, over.note)
    except Exception as exc:  # a renderer bug must not hide the message
        log.error("formatting a message failed", exc_info=exc)
        return _as_plain(
            text, f"Shown as plain text: it could not be formatted ({type(exc).__name__})."
        )
    return _Rendered(str(rendered).strip(), part, "", False)


@functools.lru_cache(maxsize=4096)
def to_html(text: str) -> str:
    """Rich text for a message body (cached: bodies are immutable), for a window that
    shows it whole (the versions of a message): its shown part (``shown_part``) and, when
    that is not all of it, a line saying what is left out (``Shown.note``). Never raises:
    a body that is too costly to format, or that the renderer fails on, is shown as
    plain text with a note saying why."""
    out = _render(text)
    html, note = out.html, out.part.note
    if note:
        html += f"<br>{html_escape(note)}" if out.plain else f"<p>{html_escape(note)}</p>"
    return _with_note(html, out.why)


@functools.lru_cache(maxsize=4096)
def body_html(text: str) -> tuple[str, Shown, str]:
    """What a timeline row lays out of a body (cached): the rich text of its shown part,
    that part (``Shown``) and why it is shown as plain text ("" when it is not). The row
    says under the body what is left out and why (``Shown.note``, ``why``), apart from
    its lines: a cut of the row's height can add to what is left out, never hide that."""
    out = _render(text)
    return out.html, out.part, out.why


def is_plain(text: str) -> bool:
    """True when Markdown could not change how ``text`` looks: most chat lines. Those are
    laid out and painted as plain text, skipping the parser and QTextDocument."""
    return not (
        any(c in text for c in "*_`#[>|~-<&") or "\n\n" in text or text[:3].strip()[:1].isdigit()
    )


PREVIEW_SOURCE = 2_000  # characters of a body a one-line preview is made from


def to_plain(text: str, limit: int = 300) -> str:
    """A body as one line of plain text, for the room list's preview (and anything else
    that shows a message in a line): Markdown markup goes (``**bold**`` → ``bold``, a
    link → its text, a code block → its code, an image → "Image"), and so do control,
    bidi and invisible characters (``one_line``). Only the body's first
    ``PREVIEW_SOURCE`` characters are read; never raises."""
    source = text[:PREVIEW_SOURCE]
    if is_plain(source):
        return one_line(source, limit)
    try:
        # past MAX_INLINE_MARKS as costly to parse as a body (``to_html``): not parsed on
        tokens = _parser().parse(source, {"marks": True})
    except _TooCostly:
        return one_line(source, limit)
    except Exception as exc:  # a parser bug must not hide the preview
        log.error("making a preview failed", exc_info=exc)
        return one_line(source, limit)
    parts: list[str] = []
    for token in tokens:
        if token.type in ("fence", "code_block"):
            parts.append(str(token.content))
        elif token.type == "inline":
            for child in token.children or ():
                if child.type in ("text", "code_inline"):
                    parts.append(str(child.content))
                elif child.type in ("softbreak", "hardbreak"):
                    parts.append(" ")
                elif child.type == "image":
                    parts.append("Image")
        else:
            continue
        parts.append(" ")
    return one_line("".join(parts), limit)
