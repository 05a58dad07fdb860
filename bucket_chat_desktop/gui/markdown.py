"""Message bodies as safe rich text.

markdown-it-py with raw HTML disabled: a body can never inject markup. Images are rendered
as plain links (no remote or local file is ever loaded to show a message), and only
http(s) and mailto links are made clickable.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

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


@functools.cache
def _parser() -> MarkdownIt:
    md = MarkdownIt(
        "commonmark",
        {"html": False, "linkify": False, "typographer": False, "maxNesting": 20},
    )
    md.enable(["strikethrough", "table"])
    md.add_render_rule("image", _render_image)
    _safe_links(md)
    return md


@functools.cache
def _block_parser() -> MarkdownIt:
    """The same parser without its inline pass: the blocks and the text the inline pass
    would read (a few ms for the longest body formatted)."""
    md = MarkdownIt(
        "commonmark",
        {"html": False, "linkify": False, "typographer": False, "maxNesting": 20},
    )
    md.enable(["strikethrough", "table"])
    md.disable("inline")
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


def shown_text(text: str) -> str:
    """The part of a body the timeline lays out, with a note when it was shortened."""
    cut = len(text)
    if cut > MAX_SHOWN_CHARS:
        cut = MAX_SHOWN_CHARS
    if text.count("\n", 0, cut) >= MAX_SHOWN_LINES:
        cut = -1
        for _ in range(MAX_SHOWN_LINES):
            cut = text.index("\n", cut + 1)
    if cut >= len(text):
        return text
    rest = len(text) - cut
    return f"{text[:cut]}\n[… {rest:,} more characters not shown here]"


def _plain_html(text: str, note: str = "") -> str:
    out = html_escape(shown_text(text)).replace("\n", "<br>")
    if note:
        out = f"<p>{out}</p><p><i>{html_escape(note)}</i></p>"
    return out


def _too_many_cells(text: str, cells: int) -> str:
    return _plain_html(
        text,
        f"Shown as plain text: its tables have {cells:,} cells "
        f"(at most {MAX_TABLE_CELLS:,} are formatted).",
    )


@functools.lru_cache(maxsize=4096)
def to_html(text: str) -> str:
    """Rich text for a message body (cached: bodies are immutable). Never raises: a body
    that is too costly to format, or that the renderer fails on, is shown as plain text
    with a note saying why."""
    if is_plain(text):
        return _plain_html(text)
    if len(text) > MAX_RICH_CHARS:
        return _plain_html(
            text,
            f"Shown as plain text: the message is too long to format ({len(text):,} characters).",
        )
    try:
        marks = inline_marks(text)
        if marks > MAX_INLINE_MARKS:
            blocks = _block_parser().parse(text)
            cells = sum(1 for token in blocks if token.type in ("td_open", "th_open"))
            if cells > MAX_TABLE_CELLS:  # the note a table too large has always had
                return _too_many_cells(text, cells)
            return _plain_html(
                text,
                f"Shown as plain text: it has {marks:,} formatting characters outside "
                f"code (at most {MAX_INLINE_MARKS:,} are formatted).",
            )
        md = _parser()
        tokens = md.parse(text)
        cells = elements = depth = 0
        for token in tokens:
            children = token.children or ()
            elements += 1 + len(children)
            depth = max(depth, token.level, *(token.level + c.level for c in children))
            if token.type in ("td_open", "th_open"):
                cells += 1
        if cells > MAX_TABLE_CELLS:
            return _too_many_cells(text, cells)
        if depth > MAX_NESTING:
            return _plain_html(
                text, "Shown as plain text: its quotes or lists are nested too deeply."
            )
        if elements > MAX_TOKENS:
            return _plain_html(
                text, "Shown as plain text: the message has too many formatted parts to lay out."
            )
        rendered = md.renderer.render(tokens, md.options, {})
    except Exception as exc:  # a renderer bug must not hide the message
        log.error("formatting a message failed", exc_info=exc)
        return _plain_html(
            text, f"Shown as plain text: it could not be formatted ({type(exc).__name__})."
        )
    return str(rendered).strip()


def inline_marks(text: str) -> int:
    """How many characters the inline parser stops at in ``text`` (its terminators),
    outside code blocks (a pasted block of code is not parsed inline). Counted over the
    blocks only when the whole text holds more than ``MAX_INLINE_MARKS``."""
    stops = _block_parser().inline.terminator_re
    count = sum(1 for _ in stops.finditer(text))
    if count <= MAX_INLINE_MARKS:
        return count
    return sum(
        sum(1 for _ in stops.finditer(str(token.content)))
        for token in _block_parser().parse(text)
        if token.type == "inline"
    )


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
        if inline_marks(source) > MAX_INLINE_MARKS:
            return one_line(source, limit)  # as costly to parse as a body (``to_html``)
        tokens = _parser().parse(source)
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
