"""The one guard between Python and Qt's virtual calls (``gui/safe.py``).

- every override of a Qt method in ``gui/`` is guarded, and every item delegate is a
  ``SafeDelegate`` (so a new one cannot slip in unguarded);
- a row whose painting raises the very kind of exception that crashed the app (one set
  by C code: ``datetime`` past the year 9999) is drawn as "could not be shown", the
  painter is restored, and the failure is logged once;
- in a separate process (a crash must not take the test run down): a hostile room read
  from disk by the real engine, painted by the real view and delegate with ``grab()``
  (Qt entered from Python: the path on which shiboken crashed), exits normally.
"""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import logging
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QObject, QSize
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QAbstractItemDelegate, QStyleOptionViewItem

import bucket_chat_desktop.gui as gui_package
from bucket_chat_desktop.gui import safe
from bucket_chat_desktop.gui.main_window import TimelineView
from bucket_chat_desktop.gui.models.timeline_model import Row, TimelineModel
from bucket_chat_desktop.gui.widgets.message_delegate import MessageDelegate

# Qt methods our classes redefine that Qt never calls on its own (only our code calls
# them, from Python, where an exception propagates normally).
CALLED_ONLY_FROM_PYTHON = {
    "beginInsertRows",
    "endInsertRows",
    "beginRemoveRows",
    "endRemoveRows",
    "beginResetModel",
    "endResetModel",
}


def gui_classes() -> list[type]:
    found = []
    for info in pkgutil.walk_packages(gui_package.__path__, gui_package.__name__ + "."):
        module = importlib.import_module(info.name)
        for cls in vars(module).values():
            if (
                inspect.isclass(cls)
                and cls.__module__ == module.__name__
                and issubclass(cls, QObject)
            ):
                found.append(cls)
    return found


def test_every_override_of_a_qt_method_in_gui_is_guarded() -> None:
    classes = gui_classes()
    assert len(classes) > 20
    unguarded = []
    for cls in classes:
        qt_bases = [b for b in cls.__mro__ if b.__module__.startswith("PySide6")]
        for name, value in vars(cls).items():
            if name.startswith("__") or not callable(value) or name in CALLED_ONLY_FROM_PYTHON:
                continue
            if any(hasattr(base, name) for base in qt_bases) and not getattr(
                value, safe.GUARDED, False
            ):
                unguarded.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
    assert unguarded == []


def test_every_item_delegate_is_a_safe_delegate_and_keeps_its_guards() -> None:
    delegates = [c for c in gui_classes() if issubclass(c, QAbstractItemDelegate)]
    assert {c.__name__ for c in delegates} >= {"MessageDelegate", "RoomDelegate", "SafeDelegate"}
    for cls in delegates:
        assert issubclass(cls, safe.SafeDelegate), cls
        if cls is not safe.SafeDelegate:
            assert not {"paint", "sizeHint", "helpEvent"} & set(vars(cls)), cls


class BrokenBody(MessageDelegate):
    """The real message delegate, with a body painter that fails the way the far-future
    timestamp did (a ValueError raised inside C code)."""

    def _paint_body(self, *args: Any) -> int:
        dt.datetime.fromtimestamp(2**53 / 1000)
        return 0


def red_pixels(image: QImage) -> int:
    target = QColor(safe.FAILURE_COLOR)
    count = 0
    for y in range(0, image.height(), 2):
        for x in range(0, image.width(), 2):
            c = image.pixelColor(x, y)
            if (
                abs(c.red() - target.red()) < 40
                and abs(c.green() - target.green()) < 40
                and abs(c.blue() - target.blue()) < 40
            ):
                count += 1
    return count


def text_row(i: int, body: str) -> Row:
    return Row(
        f"r::{1_796_300_000_000 + i}::{i}",
        "eve@example.com",
        "key",
        1_796_300_000_000 + i * 1000,
        "m.room.message",
        {"body": body, "msgtype": "m.text"},
        "verified",
        "signature checks out",
        "p:1",
    )


def test_a_row_that_fails_to_paint_says_so_and_the_rest_paint(
    qtbot: Any, qtlog: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    safe._reported.clear()
    model = TimelineModel("")
    model.show_cached([])  # nothing cached; rows are set below as the index would
    model.beginResetModel()
    model._rows = [text_row(i, f"message {i}") for i in range(5)]
    model.endResetModel()
    view = TimelineView()
    qtbot.addWidget(view)
    good = MessageDelegate(view)
    view.setItemDelegate(good)
    view.setModel(model)
    view.resize(700, 500)
    view.show()
    healthy = view.grab().toImage()
    assert red_pixels(healthy) == 0

    view.setItemDelegate(BrokenBody(view))
    with caplog.at_level(logging.ERROR, logger="bucket_chat.gui"):
        for _ in range(3):  # repainted again and again: logged once
            broken = view.grab().toImage()
    broken.save(str(tmp_path / "failure-rows.png"))
    assert red_pixels(broken) > 50
    kinds = safe.failures()
    assert list(kinds) == [
        ("BrokenBody.paint_row", "ValueError", "ValueError: year 287396 is out of range")
    ]
    assert next(iter(kinds.values())) >= 15  # 5 rows x 3 frames
    assert sum("BrokenBody.paint_row failed" in r.getMessage() for r in caplog.records) == 1
    assert not [m for m in qtlog.records if "saved states" in m.message]

    # a sizeHint failure gets a one-line row of its own
    class BrokenSize(MessageDelegate):
        def _body_height(self, *args: Any) -> int:
            raise OverflowError("hostile height")

    view.setItemDelegate(BrokenSize(view))
    option = QStyleOptionViewItem()
    view.initViewItemOption(option)
    size = view.itemDelegate().sizeHint(option, model.index(0))
    assert isinstance(size, QSize) and 0 < size.height() < 40
    assert ("BrokenSize.sizeHint", "OverflowError", "OverflowError: hostile height") in (
        safe.failures()
    )


HARNESS = textwrap.dedent(
    """
    import datetime, sys
    from pathlib import Path
    from PySide6.QtWidgets import QApplication
    from bucket_chat_desktop.gui.main_window import TimelineView
    from bucket_chat_desktop.gui.models.timeline_model import TimelineModel
    from bucket_chat_desktop.gui.widgets.message_delegate import MessageDelegate
    from bucket_chat_desktop.protocol.audit import RoomLedger

    def read(root):
        # Read without a clock: the engine holds a row dated years ahead back (PROTOCOL.md
        # section 9), but a cache written before it did can still hand one to the model.
        ledger = RoomLedger("falcon")
        for p in sorted(root.rglob("*.jsonl")):
            ledger.add_segment(p.relative_to(root).as_posix(), p.read_bytes())
        return list(ledger.audit().timeline)

    items = read(Path(sys.argv[1]))
    app = QApplication([])
    model = TimelineModel("")
    model.set_timeline(items, True)
    view = TimelineView()
    view.setItemDelegate(MessageDelegate(view))
    view.setModel(model)
    view.resize(900, 700)
    view.show()
    for i in range(model.rowCount()):
        view.scrollTo(model.index(i))
        view.grab()
    if sys.argv[2] == "broken":
        class Broken(MessageDelegate):
            def _paint_body(self, *args):
                datetime.datetime.fromtimestamp(2**53 / 1000)
        view.setItemDelegate(Broken(view))
        for i in range(model.rowCount()):
            view.scrollTo(model.index(i))
            view.grab()
    print("painted", model.rowCount(), "rows", flush=True)
    """
)


@pytest.mark.parametrize("delegate", ["real", "broken"])
def test_painting_a_hostile_room_in_a_fresh_process_does_not_crash(
    tmp_path: Path, delegate: str
) -> None:
    from hostile import FAR, big_table, eve_writes

    store = tmp_path / "store"
    eve_writes(
        store,
        "falcon",
        [
            (1_796_300_000_000, "look ![x](https://example.com/x.png)"),
            (1_796_300_001_000, big_table(rows=60)),
            (FAR, "from the far future"),
        ],
    )
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        BUCKET_CHAT_HOME=str(tmp_path / "home"),
        BUCKET_CHAT_KEY_STORE="file",
        BUCKET_CHAT_PASSPHRASE="x",
    )
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", HARNESS, str(store), delegate],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "painted 4 rows" in proc.stdout
    assert "Error calling Python override" not in proc.stderr
