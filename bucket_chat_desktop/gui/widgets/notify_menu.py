"""The room menu's "Notify me" choices: all messages, mentions only, nothing (muted)."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QActionGroup
from PySide6.QtWidgets import QMenu

LEVEL_LABELS = {
    "all": "All messages",
    "mentions": "Only when I am mentioned",
    "none": "Nothing (mute the room)",
}


def add_notify_menu(menu: QMenu, controller: Any, key: str) -> QMenu:
    """A "Notify me about" submenu of ``menu`` for room ``key``: one checked choice,
    applied and saved at once (``Controller.set_notify_level``)."""
    sub = menu.addMenu("Notify me about")
    sub.setObjectName("notifyMenu")
    group = QActionGroup(sub)
    group.setExclusive(True)
    current = controller.settings.notify_level(key)
    for level, label in LEVEL_LABELS.items():
        action = sub.addAction(label)
        action.setCheckable(True)
        action.setChecked(level == current)
        action.setData(level)
        group.addAction(action)
        action.triggered.connect(
            lambda _checked=False, lv=level: controller.set_notify_level(key, lv)
        )
    return sub
