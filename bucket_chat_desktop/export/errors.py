"""What every export front end needs before an export starts: its formats and its
errors. Kept apart from the writers so that a command line that does not export never
loads them (``bucket-chat`` starts ~40 ms sooner)."""

from __future__ import annotations

FORMATS = ("html", "jsonl")


class ExportError(Exception):
    """The export could not be made; the message is written for the user."""


class ExportExistsError(ExportError):
    """The output file exists and overwriting it was not asked for. (Its attachments
    folder is never overwritten: a folder holding files makes the export pick another.)"""
