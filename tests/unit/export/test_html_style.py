"""The HTML export's stylesheet, read as a browser applies it: for an element, the
declaration of the most specific matching selector wins, later rules winning ties.

Only the selectors the page's own rules use are understood here (a tag, classes, and
a descendant chain of those); that is enough to ask what colour a note is drawn in or
whether a code block wraps."""

from __future__ import annotations

import re

from bucket_chat_desktop.export.html_doc import STYLE

_SIMPLE = re.compile(r"^([a-z0-9]*)((?:\.[a-z0-9-]+)*)$")


def _rules() -> list[tuple[str, dict[str, str]]]:
    text = re.sub(r"/\*.*?\*/", "", STYLE, flags=re.S)
    # The :root and @media blocks hold variables only; drop nested blocks.
    text = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", text)
    out: list[tuple[str, dict[str, str]]] = []
    for head, body in re.findall(r"([^{}]+)\{([^{}]*)\}", text):
        decls = {}
        for part in body.split(";"):
            if ":" in part:
                name, value = part.split(":", 1)
                decls[name.strip()] = value.strip()
        for selector in head.split(","):
            out.append((" ".join(selector.split()), decls))
    return out


def _matches(compound: str, element: tuple[str, set[str]]) -> bool:
    m = _SIMPLE.match(compound)
    if m is None:
        return False
    tag, classes = m.group(1), {c for c in m.group(2).split(".") if c}
    return (not tag or tag == element[0]) and classes <= element[1]


def _specificity(selector: str) -> tuple[int, int]:
    tags = 0
    for part in selector.split():
        m = _SIMPLE.match(part)
        tags += 1 if m is not None and m.group(1) else 0
    return selector.count("."), tags


def computed(path: list[tuple[str, set[str]]], prop: str) -> str | None:
    """``prop`` of the last element of ``path`` (ancestors first), or None when no
    rule of the page sets it there."""
    best: tuple[tuple[int, int], int, str] | None = None
    for order, (selector, decls) in enumerate(_rules()):
        if prop not in decls:
            continue
        parts = selector.split(" ")
        if not _matches(parts[-1], path[-1]):
            continue
        i = len(path) - 2
        ok = True
        for part in reversed(parts[:-1]):
            while i >= 0 and not _matches(part, path[i]):
                i -= 1
            if i < 0:
                ok = False
                break
            i -= 1
        if not ok:
            continue
        key = (_specificity(selector), order, decls[prop])
        if best is None or key[:2] >= best[:2]:
            best = key
    return None if best is None else best[2]


def test_a_code_block_wraps_its_lines_so_no_word_sits_off_the_page() -> None:
    """A member's code block is read on paper and in narrow windows too: the app wraps
    code blocks (so a line cannot hide "… pay account 6666 instead" past the right
    edge) and the export must do the same, not scroll sideways."""
    path = [("div", {"body"}), ("pre", set())]
    assert computed(path, "white-space") == "pre-wrap"
    assert computed(path, "overflow-x") in (None, "visible")
    assert computed([("div", {"body"})], "overflow-wrap") == "anywhere"


def test_the_key_doubted_elsewhere_note_is_a_warning_not_an_error() -> None:
    """The note says a key this room trusts is doubted in another room: the export draws
    it in the warning colour, as it does its ⚠ mark and the late-arrival note, not in
    the red of a verdict that failed."""
    assert computed([("p", {"why", "doubt"})], "color") == "var(--warn)"
    assert computed([("p", {"why", "late"})], "color") == "var(--warn)"
    assert computed([("p", {"why"})], "color") == "var(--bad)"
