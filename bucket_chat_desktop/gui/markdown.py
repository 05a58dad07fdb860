"""Message bodies as safe rich text.

markdown-it-py with raw HTML disabled: a body can never inject markup. Images are rendered
as plain links (no remote or local file is ever loaded to show a message), and only
http(s) and mailto links are made clickable.
"""

from __future__ import annotations

import functools
import html
from typing import Any

from markdown_it import MarkdownIt

SAFE_SCHEMES = ("http://", "https://", "mailto:")


def _render_image(tokens: Any, idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    src = token.attrGet("src") or ""
    alt = html.escape(token.content or src)
    if isinstance(src, str) and src.startswith(SAFE_SCHEMES):
        return f'<a href="{html.escape(src)}">[image: {alt}]</a>'
    return f"[image: {alt}]"


def _safe_links(md: MarkdownIt) -> None:
    original = md.validateLink

    def validate(url: str) -> bool:
        return original(url) and url.strip().lower().startswith(SAFE_SCHEMES)

    md.validateLink = validate  # type: ignore[method-assign]


@functools.cache
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["strikethrough", "table"])
    md.add_render_rule("image", _render_image)
    _safe_links(md)
    return md


@functools.lru_cache(maxsize=4096)
def to_html(text: str) -> str:
    """Rich text for a message body (cached: bodies are immutable)."""
    if is_plain(text):
        return html.escape(text).replace("\n", "<br>")
    rendered = _parser().render(text)
    return str(rendered).strip()


def is_plain(text: str) -> bool:
    """True when Markdown could not change how ``text`` looks: most chat lines. Those are
    laid out and painted as plain text, skipping the parser and QTextDocument."""
    return not (
        any(c in text for c in "*_`#[>|~-<&") or "\n\n" in text or text[:3].strip()[:1].isdigit()
    )
