"""What every export front end needs before an export starts: its formats and its
errors. Kept apart from the writers so that a command line that does not export never
loads them (``bucket-chat`` starts ~40 ms sooner)."""

from __future__ import annotations

FORMATS = ("html", "jsonl")


class ExportError(Exception):
    """The export could not be made; the message is written for the user."""


class ExportExistsError(ExportError):
    """The output (or its attachments folder) exists and overwriting was not asked for."""
