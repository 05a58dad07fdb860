"""Light and dark styling that follows the OS (or the user's choice)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from .style import ACCENT

_QSS = """
QWidget#sidebar { background: %(side)s; }
QLabel#roomSubtitle { color: %(muted)s; }
QLabel#status { color: %(muted)s; }
QFrame#banner { background: %(warn_bg)s; border-bottom: 1px solid %(warn)s; }
QFrame#offline { background: %(off_bg)s; color: %(text)s; }
QPlainTextEdit { border: 1px solid %(border)s; border-radius: 8px; background: %(base)s; }
QPushButton { padding: 5px 12px; border-radius: 6px; border: 1px solid %(border)s;
              background: %(button)s; }
QPushButton:default { background: %(accent)s; color: white; border: none; }
QToolButton { border: none; font-size: 15pt; padding: 2px 6px; }
QListView { background: %(base)s; }
QWidget#sidebar QListView { background: %(side)s; }
"""


def system_prefers_dark() -> bool:
    hints = QGuiApplication.styleHints()
    scheme = getattr(hints, "colorScheme", None)
    if scheme is not None:
        return bool(scheme() == Qt.ColorScheme.Dark)
    return QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128


def apply(app: QApplication, theme: str = "system") -> None:
    dark = theme == "dark" or (theme == "system" and system_prefers_dark())
    app.setStyle("Fusion")
    palette = QPalette()
    if dark:
        colors = {
            QPalette.ColorRole.Window: "#1f2329",
            QPalette.ColorRole.WindowText: "#e6e8eb",
            QPalette.ColorRole.Base: "#17191d",
            QPalette.ColorRole.AlternateBase: "#22262c",
            QPalette.ColorRole.Text: "#e6e8eb",
            QPalette.ColorRole.Button: "#2a2f36",
            QPalette.ColorRole.ButtonText: "#e6e8eb",
            QPalette.ColorRole.Highlight: ACCENT,
            QPalette.ColorRole.HighlightedText: "#ffffff",
            QPalette.ColorRole.ToolTipBase: "#2a2f36",
            QPalette.ColorRole.ToolTipText: "#e6e8eb",
            QPalette.ColorRole.PlaceholderText: "#7d848e",
        }
    else:
        colors = {
            QPalette.ColorRole.Window: "#f4f5f7",
            QPalette.ColorRole.WindowText: "#1d2127",
            QPalette.ColorRole.Base: "#ffffff",
            QPalette.ColorRole.AlternateBase: "#f0f2f5",
            QPalette.ColorRole.Text: "#1d2127",
            QPalette.ColorRole.Button: "#ffffff",
            QPalette.ColorRole.ButtonText: "#1d2127",
            QPalette.ColorRole.Highlight: ACCENT,
            QPalette.ColorRole.HighlightedText: "#ffffff",
            QPalette.ColorRole.ToolTipBase: "#ffffff",
            QPalette.ColorRole.ToolTipText: "#1d2127",
            QPalette.ColorRole.PlaceholderText: "#8a8f98",
        }
    for role, value in colors.items():
        palette.setColor(role, QColor(value))
    app.setPalette(palette)
    app.setStyleSheet(
        _QSS
        % {
            "side": "#1a1d22" if dark else "#eceef2",
            "muted": "#9aa0a8" if dark else "#6b717a",
            "warn": "#d9822b",
            "warn_bg": "#3a2c1c" if dark else "#fff3e0",
            "off_bg": "#3a3320" if dark else "#fff8d6",
            "text": "#e6e8eb" if dark else "#1d2127",
            "border": "#3a3f47" if dark else "#d5d9df",
            "base": "#17191d" if dark else "#ffffff",
            "button": "#2a2f36" if dark else "#ffffff",
            "accent": ACCENT,
        }
    )
