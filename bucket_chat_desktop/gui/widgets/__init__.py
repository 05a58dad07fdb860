"""Widgets, delegates and dialogs of the main window."""
