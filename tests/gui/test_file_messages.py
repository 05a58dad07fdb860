"""File messages through the real timeline model and delegates, painted offscreen (red team
round 27): a name padded with invisible letters or too long to show whole must still show
its real extension; what a file message says is its name in every view (never a body no
card shows); an edit of a file is refused, so no view replaces the file with text."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QListView, QStyleOptionViewItem
from test_models import Recording, room_list
from test_relations_view import ALICE, BOB, CAROL, Scene, _view, model_of, row_of

from bucket_chat_desktop.gui import safe
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.relations import EDIT_OF_FILE

LONG = "Q4_financial_summary_for_the_accounting_department_approved_by_alice_final.pdf.scr"
OWES = "I, Bob, confirm Alice owes me $5000. Signed."


def file_content(name: str, body: str | None = None) -> dict[str, Any]:
    info = {"name": name, "size": 3, "mimetype": "application/pdf", "sha256": "a" * 64}
    return {"msgtype": "m.file", "body": name if body is None else body, "info": info}


def painted(view: QListView, delegate: Any, row: int) -> list[str]:
    """The texts the real delegate draws for ``row`` at the view's width."""
    index = view.model().index(row, 0)
    view.scrollTo(index)
    view.executeDelayedItemsLayout()
    option = QStyleOptionViewItem()
    option.initFrom(view)
    option.rect = view.visualRect(index)
    option.rect.moveTop(0)
    option.font = view.font()
    image = QImage(option.rect.width(), option.rect.height(), QImage.Format.Format_ARGB32)
    painter = Recording(image)
    delegate.paint(painter, option, index)
    painter.end()
    return painter.texts


def test_a_file_card_shows_the_real_extension_of_a_padded_or_long_name(qtbot: Any) -> None:
    """The card drew "photo.jpg" for "photo.jpg" + 60 braille blanks + ".zip", and cut a
    long "….pdf.scr" at its end with no ellipsis. Now blanks are one space and a long
    name is cut in the middle: the extension always shows."""
    scene = Scene()
    for who in (ALICE, BOB):
        scene.join(who)
    padded = scene.add(BOB, MESSAGE, file_content("photo.jpg" + "\u2800" * 60 + ".zip"))
    hangul = scene.add(BOB, MESSAGE, file_content("invoice.pdf" + "\u3164" * 60 + ".exe"))
    long = scene.add(BOB, MESSAGE, file_content(LONG))
    model = model_of(scene)
    view, delegate = _view(qtbot, model, width=640)
    texts = painted(view, delegate, row_of(model, padded.event_id))
    assert "photo.jpg .zip" in texts
    assert "invoice.pdf .exe" in painted(view, delegate, row_of(model, hangul.event_id))
    drawn = [t for t in painted(view, delegate, row_of(model, long.event_id)) if "…" in t]
    assert len(drawn) == 1, drawn  # the card box is narrower than the name: it is cut
    assert drawn[0].startswith("Q4_") and drawn[0].endswith("final.pdf.scr")
    assert not safe.failures()


def test_a_file_row_says_its_name_never_its_body(qtbot: Any) -> None:
    """DisplayRole (a screen reader), Body ("Copy text") and a reply's quote gave the
    body Bob signed ("I, Bob, confirm Alice owes me $5000") while the card showed only
    "notes.txt"; now they all say what the card shows."""
    scene = Scene()
    for who in (ALICE, BOB, CAROL):
        scene.join(who)
    notes = scene.add(BOB, MESSAGE, file_content("notes.txt", OWES))
    reply = scene.msg(CAROL, "seen", parent=notes.event_id)
    long = scene.add(BOB, MESSAGE, file_content(LONG, "a long one"))
    reply_long = scene.msg(CAROL, "and this", parent=long.event_id)
    model = model_of(scene)
    index = model.index(row_of(model, notes.event_id))
    assert index.data(Qt.ItemDataRole.DisplayRole) == "📎 notes.txt"
    assert index.data(Roles.Body) == "📎 notes.txt"
    quote = model.index(row_of(model, reply.event_id)).data(Roles.Quote)
    assert quote.text == "📎 notes.txt"
    long_quote = model.index(row_of(model, reply_long.event_id)).data(Roles.Quote)
    assert long_quote.text == f"📎 {LONG}"  # short enough to keep whole in the model
    view, delegate = _view(qtbot, model, width=360)  # the quote line is cut: in the middle
    texts = painted(view, delegate, row_of(model, reply_long.event_id))
    cut = [t for t in texts if t.startswith("📎 Q4_")]
    assert len(cut) == 1 and "…" in cut[0] and cut[0].endswith(".pdf.scr"), texts
    assert not any("owes" in t for t in painted(view, delegate, row_of(model, notes.event_id)))
    assert not safe.failures()


def test_an_edit_of_a_file_changes_nothing_shown(qtbot: Any) -> None:
    """The card kept the file and said "(edited)" while the terminal and the export
    showed the edit's text instead. The edit is now refused: the row still says the
    file, is not marked edited, and the room's findings say why."""
    scene = Scene()
    for who in (ALICE, BOB):
        scene.join(who)
    doc = scene.add(BOB, MESSAGE, file_content("contract.pdf"))
    change = scene.edit(BOB, doc, "Here is the FINAL signed contract (v2)")
    model = model_of(scene)
    index = model.index(row_of(model, doc.event_id))
    assert index.data(Roles.Body) == "📎 contract.pdf"
    assert model.aggregate(model.row(index.row())) is None
    refused = [f for f in scene.relations().findings if f.event_id == change.event_id]
    assert len(refused) == 1 and EDIT_OF_FILE in refused[0].message
    view, delegate = _view(qtbot, model)
    texts = painted(view, delegate, index.row())
    assert "contract.pdf" in texts and not any("edited" in t or "FINAL" in t for t in texts)


def test_the_room_list_cuts_a_file_preview_in_the_middle(qtbot: Any) -> None:
    """The room list's preview of a file ("📎 " and its name) lost its end to the cut;
    it is now cut in the middle, so ".pdf.scr" shows. A text preview is still cut at
    its end."""
    model, view, delegate = room_list(qtbot, 300)

    def texts(preview: str) -> list[str]:
        model.update("s0/falcon", preview_text=preview)
        return painted(view, delegate, 0)

    cut = [t for t in texts(f"📎 {LONG}") if t.startswith("📎")]
    assert len(cut) == 1 and "…" in cut[0] and cut[0].endswith(".pdf.scr"), cut
    text = [t for t in texts(LONG + " is the file, see above") if t.startswith("Q4_")]
    assert len(text) == 1 and text[0].endswith("…"), text
