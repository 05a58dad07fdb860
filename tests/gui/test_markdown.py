"""``gui/markdown.py``: bodies become safe rich text, never raise, and never cost more to
lay out than a bounded amount (past the limits: plain text with a note)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from markdown_it import MarkdownIt

from bucket_chat_desktop.gui import markdown
from bucket_chat_desktop.gui.markdown import (
    MAX_INLINE_MARKS,
    MAX_RICH_CHARS,
    MAX_SHOWN_CHARS,
    MAX_SHOWN_LINES,
    MAX_TABLE_CELLS,
    shown_text,
    to_html,
)


@functools.cache
def _block_parser() -> MarkdownIt:
    """The app's parser without its inline pass: the text the inline pass would read."""
    md = MarkdownIt(
        "commonmark",
        {"html": False, "linkify": False, "typographer": False, "maxNesting": 20},
    )
    md.enable(["strikethrough", "table"])
    md.disable("inline")
    return md


def inline_marks(text: str) -> int:
    """How many characters the inline parser stops at in ``text`` outside code blocks:
    what ``MAX_INLINE_MARKS`` counts (the app counts them from its own single parse)."""
    stops = _block_parser().inline.terminator_re
    return sum(
        sum(1 for _ in stops.finditer(str(token.content)))
        for token in _block_parser().parse(text)
        if token.type == "inline"
    )


def table(rows: int, cols: int) -> str:
    lines = ["| " + " | ".join(f"h{c}" for c in range(cols)) + " |", "|" + "---|" * cols]
    lines += ["| " + " | ".join(f"*{r}.{c}*" for c in range(cols)) + " |" for r in range(rows)]
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("![x](https://example.com/a.png)", '<a href="https://example.com/a.png">[image: x]</a>'),
        ("![](https://example.com/a.png)", "[image: https://example.com/a.png]"),
        ("![a *b* `c`](http://e.com/i.png)", "[image: a b c]"),
        ("![<script>](https://e.com/x.png)", "[image: &lt;script&gt;]"),
        ('![x](https://e.com/a.png "title")', "[image: x]"),
        ("[![x](https://e.com/i.png)](https://e.com)", "[image: x]"),
        ('![x](https://e.com/a".png)', "a%22.png"),
    ],
)
def test_images_render_as_links_and_never_load(body: str, expected: str) -> None:
    html = to_html(body)
    assert expected in html
    assert "<img" not in html


@pytest.mark.parametrize(
    "body",
    ["![x](javascript:alert(1))", "![x](file:///etc/passwd)", "![x](data:image/png;base64,AA)"],
)
def test_images_with_unsafe_schemes_stay_text(body: str) -> None:
    html = to_html(body)
    assert "<img" not in html and "<a" not in html and "href" not in html


def test_ordinary_markdown_is_still_formatted() -> None:
    assert to_html("**bold** and `code`") == "<p><strong>bold</strong> and <code>code</code></p>"
    assert "<table>" in to_html(table(5, 4))
    assert to_html("a <b>raw</b> tag") == "<p>a &lt;b&gt;raw&lt;/b&gt; tag</p>"


def test_tables_with_too_many_cells_are_plain_text_with_a_note() -> None:
    rows = MAX_TABLE_CELLS // 4 + 1  # header + rows cells > the limit
    html = to_html(table(rows, 4))
    assert "<table" not in html
    assert f"tables have {(rows + 1) * 4:,} cells (at most {MAX_TABLE_CELLS:,} are formatted)" in (
        html
    )
    assert "*0.0*" in html  # the text is all there, unformatted


def test_long_bodies_are_not_parsed_and_very_long_ones_are_shortened() -> None:
    long = "*x* " * (MAX_RICH_CHARS // 4 + 1)
    html = to_html(long)
    assert "<em>" not in html and "too long to format" in html
    huge = "word " * (MAX_SHOWN_CHARS // 5 + 1000)
    assert len(shown_text(huge)) < MAX_SHOWN_CHARS + 100
    assert "5,000 more characters not shown here" in shown_text(huge)
    assert shown_text("short") == "short"
    tall = "\n" * 100_000 + "end"
    shown = shown_text(tall)
    assert shown.count("\n") == MAX_SHOWN_LINES and shown.endswith(
        "[… 99,601 more lines not shown here]"
    )
    assert "<br>" * (MAX_SHOWN_LINES + 1) not in to_html(tall)
    lines = "\n".join(f"line {i}" for i in range(MAX_SHOWN_LINES))
    assert shown_text(lines) == lines


@pytest.mark.parametrize("brk", ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x85", "\u2028", "\u2029"])
def test_every_line_break_counts_against_the_line_cap(brk: str) -> None:
    """Red team rt86: only "\n" was counted; Qt starts a line at each of these too."""
    body = f"line{brk}" * (MAX_SHOWN_LINES + 50) + "end"
    part = markdown.shown_part(body)
    assert part.text.count("\n") == MAX_SHOWN_LINES - 1 and part.lines == 51
    assert part.text == "line\n" * (MAX_SHOWN_LINES - 1) + "line"  # one break, "\n"
    assert shown_text(body).endswith("\n[… 51 more lines not shown here]")
    formatted = markdown.shown_part(body, plain=False)  # the parser reads its own breaks
    assert formatted.lines == 51 and brk in formatted.text


def test_a_formatted_body_is_cut_at_its_line_cap_before_it_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fence = "```\n" + "\n" * 7_900 + "```\nafter the fence"
    paragraphs = "x\u2029" * 3_990 + "*end*"
    for body in (fence, paragraphs):
        with parses(monkeypatch) as calls:
            html = to_html(body)
        (parsed,) = calls
        assert len(markdown.LINE_BREAKS.findall(parsed)) == MAX_SHOWN_LINES - 1
        assert "more lines not shown here]" in html
    assert "[… 7,503 more lines not shown here]" in to_html(fence)
    assert "<em>end</em>" not in to_html(paragraphs)
    html, part, why = markdown.body_html(fence)  # a row says it under the body
    assert "not shown here" not in html and part.lines == 7_503 and why == ""
    short = "```\nsome code\n```"
    assert markdown.body_html(short)[1] == markdown.Shown(short)


def test_deep_nesting_is_plain_text_and_nothing_is_dropped() -> None:
    body = "> " * 40 + "the deepest words"
    html = to_html(body)
    assert "the deepest words" in html and "<blockquote>" not in html
    assert "nested too deeply" in html
    lists = "\n".join("  " * i + "- item" + str(i) for i in range(30))
    html = to_html(lists)
    assert "item29" in html


def test_too_many_elements_are_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    # the limit alone: no cut at MAX_SHOWN_LINES lines before the parse
    monkeypatch.setattr(markdown, "MAX_SHOWN_LINES", 10**6)
    body = "a\n\n" * (markdown.MAX_TOKENS // 3)  # 4 elements per paragraph
    assert len(body) < MAX_RICH_CHARS and inline_marks(body) <= MAX_INLINE_MARKS
    html = to_html(body)
    assert "<p>a</p>" not in html and "too many formatted parts" in html
    assert "<em>" in to_html("*a* " * 100)


@pytest.mark.parametrize(
    "body",
    [
        "![" * 3_000,  # 0.36 s to parse at 4,000; a page of them held the window 21 s
        "[ " * 20 + "<a" * 2_000,
        "*_" * 1_000 + "x",
        "see [a](http://e.com) " * 350,
    ],
)
def test_text_dense_with_formatting_characters_is_plain_text_with_a_note(body: str) -> None:
    """Past ``MAX_INLINE_MARKS`` characters the inline parser stops at (outside code),
    a body is not parsed: the parser spends up to ~45 us on each, 9 times what ordinary
    Markdown costs. Its text is all there, escaped."""
    assert len(body) <= MAX_RICH_CHARS and inline_marks(body) > MAX_INLINE_MARKS
    html = to_html(body)
    assert "formatting characters outside code" in html
    assert "<a href" not in html and "<em>" not in html
    assert html.startswith("<p>" + markdown.html_escape(body[:50]))
    source = body[: markdown.PREVIEW_SOURCE]  # a preview reads this much: parsed if few
    if inline_marks(source) > MAX_INLINE_MARKS:
        assert markdown.to_plain(body) == markdown.one_line(source, 300)


def test_code_blocks_do_not_count_towards_the_formatting_characters() -> None:
    """A pasted block of code is not parsed inline, however many brackets it holds."""
    code = "[1, [2, {3: <4>}]], " * 200
    body = f"```\n{code}\n```\nand *this*"
    assert inline_marks(body) < MAX_INLINE_MARKS < sum(map(code.count, "[]{}<>:"))
    html = to_html(body)
    assert "<pre><code>" in html and "<em>this</em>" in html


# -- the parser's work: counted, not timed -----------------------------------------------------


def filled(unit: str, size: int = MAX_RICH_CHARS - 1) -> str:
    return (unit * (size // len(unit) + 1))[:size]


@contextmanager
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every ``MarkdownIt.parse`` made inside (any parser instance): the texts parsed."""
    calls: list[str] = []
    original = MarkdownIt.parse

    def parse(self: MarkdownIt, src: str, env: object = None) -> object:
        calls.append(src)
        return original(self, src, env)  # type: ignore[arg-type]

    monkeypatch.setattr(MarkdownIt, "parse", parse)
    to_html.cache_clear()
    try:
        yield calls
    finally:
        monkeypatch.undo()
        to_html.cache_clear()


def parser_work(call: Callable[[], object]) -> int:
    """Lines of Python run inside markdown-it by ``call``: the parser's work, less the
    set-up of its state (one pass over the characters, linear and cheap)."""
    lines = 0

    def trace(frame: Any, event: str, arg: object) -> object:
        nonlocal lines
        if "markdown_it" in frame.f_code.co_filename and frame.f_code.co_name != "__init__":
            lines += event == "line"
        return trace

    to_html.cache_clear()
    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(None)
        to_html.cache_clear()
    return lines


@pytest.mark.parametrize(
    "unit",
    [
        "- - - - - - - 7\n",  # red team rt67: a page of these held the window 18.6 s
        "- - - 7\n",
        "* > * > 7\n",
        "1. - 2) + 7\n",
        "- item 7\n",
    ],
)
def test_list_shaped_bodies_are_plain_text_without_being_parsed(
    unit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt67: 7,999 characters of list markers were parsed in full twice (0.15 s
    each, ``inline_marks`` then ``to_html``) before MAX_TOKENS sent them to plain text;
    the estimate of their list items refuses them before any parse."""
    body = filled(unit)
    assert markdown.block_elements(body) > markdown.MAX_TOKENS
    with parses(monkeypatch) as calls:
        html = to_html(body)
    assert calls == []
    assert "too many formatted parts" in html and "<li>" not in html
    assert html.startswith("<p>" + markdown.html_escape(body[:40]).replace("\n", "<br>"))


@pytest.mark.parametrize(
    ("body", "estimate"),
    [
        ("- a\n- b\n\n1. c\n   - d", 2 + 4 + 2 + 4 + 2 + 4 + 2 + 4),  # item + paragraph
        ("> quoted\n> - item", 2 + 4),  # the quote may go on: only the item counts
        ("- - - x", 2 + 4 + 4 + 4),  # an item, two lists in it and a paragraph
        ("- - -\n***\n* * *", 0),  # thematic breaks
        ("```\n- a\n- b\n```\n~~~\n- c\n~~~", 0),  # code
        ("-not a list\n2.x\n#- no", 0),
    ],
)
def test_the_list_estimate_counts_items_and_what_they_open(body: str, estimate: int) -> None:
    assert markdown.block_elements(body) == estimate


def test_ordinary_lists_are_still_formatted_and_parsed_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = "Plan:\n\n- **one**\n- two\n  1. a\n  2. b\n\n> - quoted item\n\n---\n\n" * 20
    with parses(monkeypatch) as calls:
        html = to_html(body)
    assert len(calls) == 1
    assert "<li><strong>one</strong></li>" in html and "<ol>" in html and "<hr />" in html


def test_a_body_past_a_limit_is_parsed_once_and_not_to_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past MAX_NESTING or MAX_TOKENS the parse stops where it passes it (the body was
    parsed whole, twice): one parse, and a fraction of the work of a whole one."""
    # the limits alone: no cut at MAX_SHOWN_LINES lines before the parse (``parses``
    # undoes ``monkeypatch``'s changes)
    with pytest.MonkeyPatch.context() as lines:
        lines.setattr(markdown, "MAX_SHOWN_LINES", 10**6)
        deep = filled("> - > - > - > - x\n", 2_000)  # past MAX_NESTING on its first line
        headings = filled("# a\n", 7_900)  # no list: past MAX_TOKENS only once parsed
        whole = MarkdownIt("commonmark", {"maxNesting": 20}).enable(["strikethrough", "table"])
        for body, note in ((deep, "nested too deeply"), (headings, "too many formatted parts")):
            assert markdown.block_elements(body) <= markdown.MAX_TOKENS
            with parses(monkeypatch) as calls:
                html = to_html(body)
            assert calls == [body] and note in html and "<h1>" not in html
        assert parser_work(lambda: to_html(deep)) < parser_work(lambda: whole.parse(deep)) / 10


def test_a_body_is_parsed_once_when_dense_with_formatting_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = "see [a](http://e.com) " * 350  # counted on the blocks, then not parsed inline
    with parses(monkeypatch) as calls:
        assert "formatting characters outside code" in to_html(body)
    assert len(calls) == 1


def test_a_renderer_failure_shows_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in a render rule (the original image rule had the wrong signature) must not
    hide the message: the body is shown as text with a note."""

    def broken(*args: object) -> str:
        raise TypeError("render rule failed")

    markdown._parser.cache_clear()
    to_html.cache_clear()
    parser = markdown._parser()
    monkeypatch.setitem(parser.renderer.rules, "strong_open", broken)
    try:
        html = to_html("a **strong** claim")
        assert "a **strong** claim" in html and "could not be formatted (TypeError)" in html
    finally:
        markdown._parser.cache_clear()
        to_html.cache_clear()


# -- plain text for previews ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("**bold** and _it_ and ~~gone~~", "bold and it and gone"),
        ("see [the docs](https://example.com/docs) now", "see the docs now"),
        ("```python\nprint('hi')\n```", "print('hi')"),
        ("![a cat](https://example.com/cat.png)", "Image"),
        ("# Title\n\n- one\n- two", "Title one two"),
        ("> quoted\n\nand `code`", "quoted and code"),
        ("| a | b |\n|---|---|\n| 1 | 2 |", "a b 1 2"),
        ("plain words", "plain words"),
        ("bell\x07 escape\x1b[2J rlo\u202eevil\u202c", "bell escape[2J rloevil"),
        ("two\nlines", "two lines"),
    ],
)
def test_previews_are_plain_text(body: str, expected: str) -> None:
    assert markdown.to_plain(body) == expected


def test_a_preview_reads_only_the_start_of_a_huge_body() -> None:
    body = "**Release notes**\n\n" + "`x` " * 100_000
    preview = markdown.to_plain(body, limit=50)
    assert preview.startswith("Release notes x x") and len(preview) <= 50
    assert "*" not in preview and "`" not in preview


def test_a_parser_failure_gives_the_raw_line(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def parse(self, _text: str) -> None:
            raise RuntimeError("boom")

    monkeypatch.setattr(markdown, "_parser", lambda: Broken())
    assert markdown.to_plain("**x**\n*y*") == "**x** *y*"


@pytest.mark.parametrize("brk", ["\n", "\r", "\r\n", "\x0b", "\u2029"])
def test_a_break_that_ends_a_cut_body_is_not_counted_as_a_line_left_out(brk: str) -> None:
    """'a\\n' * 500: 100 lines are left out, and the note said 101 (the empty "line"
    after the last break was counted), for plain and formatted bodies alike."""
    body = f"a{brk}" * (MAX_SHOWN_LINES + 100)
    assert markdown.shown_part(body).lines == 100
    assert markdown.shown_part(body, plain=False).lines == 100
    assert shown_text(body).endswith("\n[… 100 more lines not shown here]")
    just = f"a{brk}" * MAX_SHOWN_LINES  # nothing after the last line shown
    assert markdown.shown_part(just).lines == 0 and markdown.shown_part(just).note == ""
