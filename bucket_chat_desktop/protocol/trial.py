"""Verdicts taken on trial while older history loads (PROTOCOL.md section 16).

A reader that reads newest first accepts a key nobody introduced yet provisionally: its
rows say ``verified`` with ``PROVISIONAL_REASON`` until the history that introduces the
key, or shows it never was, is read. Such a verdict is not final, and no front end may
present it as one. Here, apart from ``audit``, so that the relation rules (which
``audit`` imports) can tell such rows apart too: a reaction written by a key on trial
is not its sender's to show as theirs or to take back (section 18.3)."""

from __future__ import annotations

PROVISIONAL_REASON = "signature good; chain and key continuity are confirmed as older history loads"


def on_trial(state: str | None, reason: str) -> bool:
    """Whether a verdict (its state, as ``audit.TrustState`` or its value, and its
    reason) is verified only on trial, while older history loads."""
    return state == "verified" and reason == PROVISIONAL_REASON
