"""How a command that sends ends: its exit status, and what it says of what its outbox
could not deliver. ``send`` and ``chat`` say it alike: ``chat`` said "they go out with
the next session" and exited 0 of writes the storage refused, which ``send`` says fail
the same way until what refused them is fixed, with exit 3 (red team rt84)."""

from __future__ import annotations

from collections.abc import Sequence

from ..protocol.untrusted_text import terminal_safe
from ..sync.client import ChatClient
from ..sync.outbox import PendingMessage

# ``main``'s docstring says what each means
EXIT_OK, EXIT_FINDINGS, EXIT_ERROR, EXIT_QUEUED, EXIT_NO_ANSWER = 0, 1, 2, 3, 4


async def unsent(client: ChatClient, storage_id: str) -> list[PendingMessage]:
    """What the outbox still has to store: a message stored whose activity marker is
    not written yet is sent (readers find it by listing; the marker is tried again).
    Counted as queued, a service that refused marker writes made every ``send`` say
    "queued, not delivered yet" for messages others read."""
    return [m for m in await client.pending(storage_id) if m.state != "sent"]


def refusal(waiting: Sequence[PendingMessage]) -> str | None:
    """Why the storage refused what waits (terminal-safe), or None when nothing waiting
    was refused: it did not answer, and the next session may well deliver it."""
    refused = [p for p in waiting if p.state == "failed"]
    if not refused:
        return None
    return terminal_safe(next((p.error for p in refused if p.error), None) or "refused")


def waiting_error(waiting: Sequence[PendingMessage], error: str | None) -> str:
    """What kept what waits from being delivered when nothing was refused
    (terminal-safe): ``error`` (the command's own), else the outbox's."""
    return terminal_safe(error or next((p.error for p in waiting if p.error), None) or "no answer")
