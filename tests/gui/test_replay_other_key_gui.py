"""Eve signs a message of her own under Dave's event id, in a segment that sorts first
(PROTOCOL.md section 6 step 1), opened through the real app and painted offscreen. Only
the first copy by path was shown: Dave's "Checking it now." vanished from the timeline.
Now both rows are shown, each under its own sender, a reply to the id says its quote is
ambiguous, and the audit window names the replay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from desk import Desk, settings_for
from hostile import EVE, EVE_KEY
from PySide6.QtWidgets import QListView
from test_app_flows import store  # noqa: F401 - fixtures

from bucket_chat_desktop.gui import safe
from bucket_chat_desktop.gui.audit.findings_model import Column
from bucket_chat_desktop.gui.features import Features
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.segment import decode_segment, encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event

ROOM = "falcon"


def stored(root: Path, body: str) -> Event:
    for path in sorted(root.rglob("*.jsonl")):
        where = path.relative_to(root).as_posix()
        for loc in decode_segment(where, path.read_bytes(), ROOM).events:
            if loc.event.body == body:
                return loc.event
    raise AssertionError(body)


def eve_replays(root: Path, taken: Event) -> None:
    """Eve's join (dated long ago: her segment sorts first), her own message under
    ``taken``'s id, and her reply to that id."""

    def signed(kind: str, content: dict[str, Any], ts: int, unique: str, **kw: Any) -> Event:
        return build_event(
            room_id=ROOM,
            sender_id=EVE,
            event_type=kind,
            content=content,
            timestamp_ms=ts,
            unique=unique,
            signing_key=EVE_KEY,
            **kw,
        )

    join = signed(
        MEMBER,
        {"membership": "join", "displayname": "Eve"},
        1_000,
        "00000000-0000-4000-8000-00000000000e",
        prev_event_hash=None,
    )
    text = {"body": "The build is broken, do not use it.", "msgtype": "m.text"}
    unique = taken.event_id.rsplit("::", 1)[1]
    copy = signed(MESSAGE, text, taken.timestamp_ms, unique, prev_event_hash=join.hash)
    assert copy.event_id == taken.event_id
    answer = signed(
        MESSAGE,
        {"body": "As I said above.", "msgtype": "m.text"},
        taken.timestamp_ms + 10,
        "00000000-0000-4000-8000-00000000001e",
        prev_event_hash=copy.hash,
        parent_event_id=taken.event_id,
    )
    events = [join, copy, answer]
    path = root / path_for(events, client_id_for(EVE, bytes(EVE_KEY.verify_key)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_segment(events))


def test_both_copies_are_shown_and_the_reply_quotes_neither(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    safe._reported.clear()
    daves = stored(store, "Checking it now.")
    eve_replays(store, daves)
    desk = launch(settings_for(store, [ROOM, "general"]))
    desk.wait_loaded(ROOM)
    desk.wait_row(ROOM, "The build is broken, do not use it.")
    dave = desk.wait_row(ROOM, "Checking it now.")
    assert dave.sender_id == "dave@example.com" and dave.trust == "verified"
    rows = desk.rows(ROOM)
    copies = [r for r in rows if r.event_id == daves.event_id]
    assert sorted(r.sender_id for r in copies) == ["dave@example.com", EVE]
    model = desk.model(ROOM)
    answer = next(i for i, r in enumerate(rows) if r.body == "As I said above.")
    quote = model.index(answer).data(Roles.Quote)
    assert quote is not None and quote.status == "ambiguous"
    # neither copy takes the reply as a thread, nor any other relation
    assert all(model.aggregate(r) is None for r in copies)
    window = desk.window
    window.resize(1000, 700)
    view: QListView = window.timeline
    view.scrollToBottom()
    view.grab().save(str(tmp_path / "replay-timeline.png"))
    # a click on the ambiguous quote goes nowhere (it names neither row), and neither
    # copy opens a thread (a reply there would name both)
    assert window.timeline.jump_to(daves.event_id) is False
    errors: list[tuple[str, str]] = []
    desk.controller.error.connect(lambda what, why: errors.append((what, why)))
    window.open_thread(daves.event_id)
    assert errors and "two devices used this message's id" in errors[-1][1]
    assert window.relation_actions is not None
    assert not window.relation_actions.thread_panel.isVisible()
    features = window.findChild(Features)
    window.audit_button.click()
    qtbot.waitUntil(lambda: features.audit_dialog is not None and features.audit_dialog.isVisible())
    dialog = features.audit_dialog
    assert dialog is not None
    shown = dialog.table.model()
    kinds = [str(shown.index(r, Column.KIND).data()) for r in range(shown.rowCount())]
    assert kinds.count("replay") == 1 and "gap" not in kinds
    dialog.grab().save(str(tmp_path / "replay-audit.png"))
    dialog.close()
    assert safe.failures() == {}
