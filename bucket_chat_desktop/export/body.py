"""Message bodies as HTML for a browser: Markdown with raw HTML off, only http(s) and
mailto links (each followed by where it goes when its text is not its address), images
never loaded (a link, or plain text), and bounded cost.

The desktop app has its own renderer for Qt's rich text (``gui/markdown.py``, which this
layer may not import); the rules here are the same and, for a browser, stricter: every
link gets ``rel="noopener noreferrer nofollow"``. The body first goes through
``body_safe``: bidi and invisible characters become visible escapes; so does what a
character reference (``&#x202E;``) decodes to.
"""

from __future__ import annotations

import functools
import logging
import re
import string
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from markdown_it import MarkdownIt

from ..protocol.untrusted_text import body_safe, html_escape

log = logging.getLogger("bucket_chat.export")

SAFE_SCHEMES = ("http://", "https://", "mailto:")
MAX_RICH_CHARS = 8_000  # longer bodies are shown as plain text
MAX_TOKENS = 4_000
MAX_NESTING = 8
LINK_REL = "noopener noreferrer nofollow"
_TEXT_TOKENS = frozenset({"text", "text_special", "code_inline"})


def _render_image(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    src = token.attrGet("src") or ""
    children = token.children or []
    alt = "".join(str(c.content) for c in children if c.type in ("text", "code_inline"))
    label = html_escape(alt or str(src))
    if isinstance(src, str) and src.strip().lower().startswith(SAFE_SCHEMES):
        dest = f' <span class="dest">({html_escape(destination(src))})</span>'
        return f'<a href="{html_escape(src)}" rel="{LINK_REL}">[image: {label}]</a>{dest}'
    return f"[image: {label}]"


def _render_link_open(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    tokens[idx].attrSet("rel", LINK_REL)
    return str(self.renderToken(tokens, idx, options, env))


DEST_CHARS = 200  # of a link's host (or of a link that has none)
MAIL_SHOWN = 8  # addresses a mailto's note names; then how many more
ADDRESS_CHARS = 80  # of each
MAIL_HEADERS = ("to", "cc", "bcc")  # the headers of a mailto that address the mail
# Characters an address is shown with as they are: printable ASCII but "%". Any other
# (a Cyrillic "р" in "supрort@…", a control) stays percent-encoded, as the browser
# hands it over, so a look-alike address does not read as the real one.
_ADDRESS_SHOWN = (
    "".join(ch for ch in string.printable if ch not in string.whitespace and ch != "%") + " "
)


def destination(href: str) -> str:
    """Where a link goes, as a reader can judge it: the host of an http(s) address (as
    the browser will ask for it: a look-alike name in its punycode form), the addresses
    of a mailto (``mail_recipients``)."""
    if href.lower().startswith("mailto:"):
        return mail_recipients(href)
    try:
        host = urlsplit(href).hostname
    except ValueError:
        host = None
    return (host or href)[:DEST_CHARS]


def mail_recipients(href: str) -> str:
    """Every address a mailto link writes to: those before its "?" and those of its
    ``to``, ``cc`` and ``bcc`` headers, whatever their case (RFC 6068), percent-decoded
    and shown safe (``_ADDRESS_SHOWN``); "no address" when there is none. Only the
    part before "?" was shown: ``mailto:?to=evil@…`` read as going nowhere, and
    ``mailto:support@bank.example?bcc=evil@…`` as going to the bank alone."""
    path, _, query = href[len("mailto:") :].partition("?")
    by_header: dict[str, list[str]] = {h: [] for h in MAIL_HEADERS}
    by_header["to"].extend(unquote(path).split(","))
    # "+" is a plus in a mailto (``a+tag@…``), not the space of a form's query
    for key, value in parse_qsl(query.replace("+", "%2B"), keep_blank_values=False):
        header = key.strip().lower()
        if header in by_header:
            by_header[header].extend(value.split(","))
    shown: list[tuple[str, str]] = [
        (header, _address(a)) for header in MAIL_HEADERS for a in by_header[header] if a.strip()
    ]
    if not shown:
        return "no address"
    parts: list[str] = []
    for header, address in shown[:MAIL_SHOWN]:
        label = "" if header == "to" else f"{header}: "
        parts.append(f"{label}{address}")
    rest = shown[MAIL_SHOWN:]
    if rest:  # which headers they are in too: a bcc pushed out of the note is still named
        kinds = ", ".join(h for h in MAIL_HEADERS if any(r[0] == h for r in rest))
        parts.append(f"and {len(rest):,} more ({kinds})")
    return ", ".join(parts)


def _address(text: str) -> str:
    """One decoded address for the note: percent-encoded but for plain ASCII, cut in
    its middle when long (its domain, at the end, is what says where the mail goes)."""
    address = quote(text.strip(), safe=_ADDRESS_SHOWN)
    if len(address) > ADDRESS_CHARS:
        half = ADDRESS_CHARS // 2
        address = f"{address[:half]}…{address[-(ADDRESS_CHARS - half - 1) :]}"
    return address


def _render_link_close(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    """``</a>``, then where the link goes when its text is not its address: a link's
    text is anyone's ("https://bank.example/login" going to evil.example), and the page
    shows it beside a "verified" badge."""
    start = idx
    while start > 0 and tokens[start].type != "link_open":
        start -= 1
    href = str(tokens[start].attrGet("href") or "")
    text = "".join(
        str(t.content) for t in tokens[start + 1 : idx] if t.type in ("text", "code_inline")
    )
    closed = str(self.renderToken(tokens, idx, options, env))
    if not href or text == href:
        return closed
    return f'{closed} <span class="dest">({html_escape(destination(href))})</span>'


@functools.cache
def _parser() -> MarkdownIt:
    md = MarkdownIt(
        "commonmark",
        {"html": False, "linkify": False, "typographer": False, "breaks": True, "maxNesting": 20},
    )
    md.enable(["strikethrough", "table"])
    md.add_render_rule("image", _render_image)
    md.add_render_rule("link_open", _render_link_open)
    md.add_render_rule("link_close", _render_link_close)
    original = md.validateLink

    def validate(url: str) -> bool:
        return bool(original(url)) and url.strip().lower().startswith(SAFE_SCHEMES)

    md.validateLink = validate  # type: ignore[method-assign]
    return md


def _made_safe(tokens: Any) -> None:
    """Markdown decodes character references after ``body_safe`` ran: "&#x202E;" would
    be a real right-to-left override in the page. The text of ``tokens`` (an image's
    alt text too) is made safe again."""
    for token in tokens:
        if token.type in _TEXT_TOKENS and token.content:
            token.content = body_safe(token.content)
        if token.children:
            _made_safe(token.children)


def plain_html(text: str, note: str = "") -> str:
    """``text`` escaped, line breaks kept (the CSS keeps white space), with a note."""
    out = f'<p class="plain">{html_escape(body_safe(text))}</p>'
    if note:
        out += f'<p class="note">{html_escape(note)}</p>'
    return out


# What can make Markdown change how a text looks: its punctuation, a blank line (a new
# paragraph), a line starting with a digit (an ordered list), an indented first line (code).
_MARKUP = re.compile(r"[*_`#\[\]>|~\-<&!\\+=]|\n[ \t]*\n|(?:^|\n)[ \t]{0,3}\d|^(?: {4}|\t)")


def is_plain(text: str) -> bool:
    """True when Markdown could not change how ``text`` looks (most chat lines): then it
    is escaped, not parsed."""
    return _MARKUP.search(text) is None


def body_html(text: str) -> str:
    """A body as HTML. Never raises: what is too costly or fails to format is shown as
    plain text with a note saying why. A line break in a body is a line break."""
    safe = body_safe(text)
    if is_plain(safe):
        return "<p>" + html_escape(safe).replace("\n", "<br />\n") + "</p>"
    if len(safe) > MAX_RICH_CHARS:
        return plain_html(
            text, f"Shown as plain text: too long to format ({len(text):,} characters)."
        )
    try:
        md = _parser()
        tokens = md.parse(safe)
        elements = depth = 0
        for token in tokens:
            children = token.children or ()
            elements += 1 + len(children)
            depth = max(depth, token.level, *(token.level + c.level for c in children))
            _made_safe(children)
        if depth > MAX_NESTING or elements > MAX_TOKENS:
            return plain_html(text, "Shown as plain text: too deeply nested or too many parts.")
        return str(md.renderer.render(tokens, md.options, {})).strip()
    except Exception as exc:  # a renderer bug must not lose the message
        log.error("formatting a message for export failed", exc_info=exc)
        return plain_html(
            text, f"Shown as plain text: it could not be formatted ({type(exc).__name__})."
        )
