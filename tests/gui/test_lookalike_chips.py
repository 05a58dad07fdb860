"""Red team: one verified member reacts "Yes" written four ways that look the same (Latin;
Cyrillic "е"; Cyrillic capital "Ү"; Cyrillic "ѕ"). Each text counts apart, so the row
showed "No 2 · Yes 1 · Yes 1 · Yes 1 · Yes 1", all verified, and no tooltip said the texts
differ: the tooltip only spelled texts with invisible parts, and "Үes" was not even taken
for "Yes" by ``skeleton`` (the command line's rule). Chips are now marked by the rule the
command line uses (``lookalike_texts``): a look-alike mark after the count, and the code
points in the tooltip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_relations_view import ALICE, BOB, CAROL, Scene, _view, model_of, row_of

from bucket_chat_desktop.cli.related import chips_line
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.gui.widgets.message_delegate import (
    LOOKALIKE_CHIP,
    chip_tooltip,
    more_tooltip,
)
from bucket_chat_desktop.protocol.audit import TrustState

YESES = ("Yes", "Y\u0435s", "\u04aees", "Ye\u0455")  # Latin; Cyrillic е, Ү, ѕ
SPELLED = ("U+0059 U+0065 U+0073", "U+0059 U+0435 U+0073", "U+04AE U+0065 U+0073")


def _scene() -> tuple[Scene, Any]:
    scene = Scene()
    for who in (ALICE, BOB, CAROL):
        scene.join(who)
    question = scene.msg(BOB, "Ship on Friday? React Yes or No")
    scene.react(BOB, question, "No")
    scene.react(ALICE, question, "No")
    for text in YESES:
        scene.react(CAROL, question, text)
    return scene, question


def test_chips_that_look_alike_are_marked_and_spelled(qtbot: Any, tmp_path: Path) -> None:
    scene, question = _scene()
    scene.react(ALICE, question, "\U0001f389")  # a chip like no other: left as it is
    scene.react(BOB, question, "ok")
    scene.react(ALICE, question, "OK")  # ASCII told apart by case at a glance: not marked
    model = model_of(scene)
    view, delegate = _view(qtbot, model, 640)
    view.resize(640, 300)
    view.scrollToBottom()
    qtbot.wait(50)
    assert view.grab().save(str(tmp_path / "lookalike-chips.png"))

    index = model.index(row_of(model, question.event_id))
    chips = {c.key: c for c in index.data(Roles.Reactions)}
    assert [k for k, c in chips.items() if c.lookalike] == list(YESES)
    for key, spelled in zip(YESES, SPELLED, strict=False):
        tip = chip_tooltip(chips[key])
        assert LOOKALIKE_CHIP in tip and f"written as {spelled}" in tip, tip
    for plain in ("No", "\U0001f389", "ok", "OK"):
        tip = chip_tooltip(chips[plain])
        assert LOOKALIKE_CHIP not in tip and "written as" not in tip, tip

    # as the mouse finds it: the painted chip's tooltip
    rect = view.visualRect(index)
    regions = delegate.regions(index, rect, view.font())
    painted = [(payload, r) for what, payload, r in regions.parts if what == "chip"]
    cyrillic = next(r for payload, r in painted if payload.key == "\u04aees")
    tip = delegate.part_tooltip(index, rect, view.font(), cyrillic.center()) or ""
    assert "written as U+04AE U+0065 U+0073" in tip
    # a marked chip is wider than the same text unmarked (its mark is painted in it)
    widths = {payload.key: r.width() for payload, r in painted}
    assert widths["Yes"] > widths["No"]

    # the command line marks the very same chips
    line = chips_line(scene.relations().of(question.event_id).reactions)
    for key, spelled in zip(YESES, SPELLED, strict=False):
        assert f"{key} 1 [{spelled}]" in line, line
    assert "ok 1  " in line + "  " and "OK 1" in line and "[U+006F" not in line


def test_a_lookalike_chip_that_is_also_unverified_shows_both_marks(
    qtbot: Any, tmp_path: Path
) -> None:
    scene, question = _scene()
    scene.react(ALICE, question, "Y\u0435s", state=TrustState.UNVERIFIED)
    model = model_of(scene)
    view, _ = _view(qtbot, model, 640)
    view.resize(640, 300)
    view.scrollToBottom()
    qtbot.wait(50)
    assert view.grab().save(str(tmp_path / "lookalike-unverified-chip.png"))
    chips = {c.key: c for c in model.index(row_of(model, question.event_id)).data(Roles.Reactions)}
    both = chips["Y\u0435s"]
    assert both.lookalike and not both.all_verified
    tip = chip_tooltip(both)
    assert LOOKALIKE_CHIP in tip and "not every reaction here is verified" in tip
    # the "+n" chip's lines say it too
    assert f"{LOOKALIKE_CHIP}: U+0059 U+0435 U+0073" in more_tooltip([both])
