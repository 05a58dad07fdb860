"""Red team rt67: list-shaped bodies ("- - - - i" lines, under every limit) were parsed in
full twice each on the GUI thread: a page of 200 held the window 18.6 s when the room was
first opened, and "Previous versions" of a message edited 50 times with them ~4 s. The
parser's work is counted here (``MarkdownIt.parse`` calls), never timed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from desk import Desk, settings_for
from hostile import eve_writes
from markdown_it import MarkdownIt
from test_app_flows import store  # noqa: F401 - fixtures

from bucket_chat_desktop.gui import safe
from bucket_chat_desktop.gui.markdown import MAX_RICH_CHARS, to_html
from bucket_chat_desktop.gui.widgets.message_actions import (
    VERSIONS_RICH_CHARS,
    Version,
    VersionsDialog,
)

T0 = 1_796_300_000_000
SHOTS = Path("/tmp/fix67b")


def list_body(i: int) -> str:
    unit = f"- - - - - - - {i}\n"
    return (unit * (MAX_RICH_CHARS // len(unit) + 1))[: MAX_RICH_CHARS - 1]


def prose_body(i: int) -> str:
    unit = f"Version **{i}**: a [link](https://e.com/{i}) and `code`, then a list:\n\n- a\n\n"
    return (unit * (MAX_RICH_CHARS // len(unit)))[: MAX_RICH_CHARS - 100]


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The texts every ``MarkdownIt.parse`` is given (the formatting cache emptied)."""
    calls: list[str] = []
    original = MarkdownIt.parse

    def parse(self: MarkdownIt, src: str, env: Any = None) -> Any:
        calls.append(src)
        return original(self, src, env)

    monkeypatch.setattr(MarkdownIt, "parse", parse)
    to_html.cache_clear()
    yield calls
    to_html.cache_clear()


def test_a_page_of_list_shaped_messages_opens_as_plain_text_unparsed(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
    parses: list[str],
) -> None:
    bodies = [list_body(i) for i in range(200)]  # one page of the timeline
    eve_writes(store, "falcon", [(T0 + i, b) for i, b in enumerate(bodies)])
    desk = launch(settings_for(store, ["general", "falcon"]))
    desk.window.resize(1000, 700)
    desk.wait_loaded("general")
    desk.select("falcon")
    desk.wait_loaded("falcon")
    desk.wait_row("falcon", bodies[-1])
    view = desk.window.timeline
    view.scrollToBottom()
    qtbot.wait(300)
    for i in range(0, view.model().rowCount(), 20):  # rows sized and painted across the page
        view.scrollTo(view.model().index(i, 0))
        view.grab()
    view.scrollToBottom()
    qtbot.wait(100)
    SHOTS.mkdir(exist_ok=True)
    desk.window.grab().save(str(SHOTS / "list-shaped-room.png"))
    assert not set(parses) & set(bodies)  # none of them parsed (each was, twice)
    html = to_html(bodies[-1])
    assert "<li>" not in html and "too many formatted parts" in html
    assert safe.failures() == {}


def test_previous_versions_format_the_newest_within_a_budget(qtbot: Any, parses: list[str]) -> None:
    """50 edits as costly to format as a body may be: the newest are formatted, up to
    VERSIONS_RICH_CHARS of them; older ones are plain text with a note (each was parsed;
    list-shaped ones twice)."""
    versions = [Version("Original", T0, "verified", "first words")]
    versions += [
        Version(f"Edit {i}", T0 + i, "verified", prose_body(i) if i % 2 else list_body(i))
        for i in range(1, 51)
    ]
    dialog = VersionsDialog("Eve", sender_id="eve@example.com")
    qtbot.addWidget(dialog)
    dialog.resize(700, 600)
    dialog.set_versions(versions)
    assert len(parses) <= VERSIONS_RICH_CHARS // (MAX_RICH_CHARS - 100)  # 2, not 50 or 75
    assert not set(parses) & {v.body for v in versions[::2]}  # list-shaped: never parsed
    shown = dialog.browser.toPlainText()
    assert "first words" in shown and "- - - - - - - 50" in shown
    assert shown.count("this window formats the newest versions only") >= 45
    html = dialog.browser.toHtml()
    assert html.count("font-weight:700") >= 2  # the newest prose edit is formatted
    dialog.show()
    qtbot.wait(100)
    SHOTS.mkdir(exist_ok=True)
    dialog.grab().save(str(SHOTS / "versions-budget.png"))
    assert dialog.browser.find("this window formats the newest versions only")
    dialog.grab().save(str(SHOTS / "versions-budget-note.png"))
