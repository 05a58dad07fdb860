"""Window shortcuts typed inside a text field."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QEvent
from PySide6.QtGui import QKeyEvent, QKeySequence


def let_through(event: QEvent, shortcuts: Iterable[QKeySequence]) -> bool:
    """For an event filter on a text field: True (and the event left unclaimed, so the
    window's shortcut fires) when ``event`` is the editor's chance to claim one of
    ``shortcuts`` for itself (a ``ShortcutOverride``)."""
    if event.type() != QEvent.Type.ShortcutOverride or not isinstance(event, QKeyEvent):
        return False
    combo = QKeySequence(event.keyCombination())
    if any(combo.matches(k) == QKeySequence.SequenceMatch.ExactMatch for k in shortcuts):
        event.ignore()
        return True
    return False
