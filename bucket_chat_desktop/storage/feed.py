"""Change feeds: a storage's own notifications of new objects, as hints for the poller.

A bucket cannot tell a reader that something changed, so the engine polls activity markers
(``sync/schedule.py``). Where the provider can push a notification for each new object into
something a reader can wait on — S3 event notifications into an SQS queue today; GCS
Pub/Sub or Azure Event Grid the same way later — the engine waits on that instead, and
polls the bucket only as a rare safety net.

What the caller must know:

- A notification is a hint from a party that may be hostile (the provider, or anyone who
  can send to the queue): it is never trusted for anything but "look at this object". The
  engine still downloads and verifies everything a hint names; a hint naming nothing real
  changes nothing.
- ``wait`` never raises for a bad message: what cannot be read as a notification of a new
  object in this storage comes back in ``ChangeBatch.ignored`` (one line each, bounded),
  and is acknowledged with the rest so that it does not come back.
- Every request has its own deadline (the wait plus the storage's timeout); a feed that
  fails raises ``StorageError`` and the engine falls back to polling the bucket.
- An implementation counts its requests in ``requests`` (what the provider bills).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from .base import StorageNotFoundError

MAX_IGNORED_KEPT = 20
"""Reasons kept per batch for the log; more ignored messages are counted, not described."""


class FeedGoneError(StorageNotFoundError):
    """The feed (queue, subscription) does not exist: deleted, or a wrong name."""


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """What one wait on a change feed brought.

    ``paths``: object paths relative to the storage root (each a safe object path, each
    once), in the order the notifications came. ``ignored``: why messages or records were
    not used (at most ``MAX_IGNORED_KEPT``, one line each; ``ignored_count`` counts them
    all). ``connected``: the provider's test message arrived (the bucket is wired to the
    feed). ``receipts``: opaque, what ``ack`` needs."""

    paths: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    ignored_count: int = 0
    connected: bool = False
    receipts: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.receipts


class ChangeFeed(abc.ABC):
    """Notifications of new objects in one storage, waited on by long polling."""

    requests: int = 0  # requests sent to the feed's service (for the benchmarks)

    @abc.abstractmethod
    def describe(self) -> str:
        """A short name for messages (e.g. the queue's URL)."""

    @abc.abstractmethod
    async def check(self) -> str:
        """One request: the feed exists and this device may read it. Returns what was
        found (e.g. how many messages wait); raises ``StorageError`` with what to fix."""

    @abc.abstractmethod
    async def wait(self, seconds: float) -> ChangeBatch:
        """Wait up to ``seconds`` (the service may cap it) for notifications; returns
        at once when some are there. Raises ``StorageError`` when the feed fails."""

    @abc.abstractmethod
    async def ack(self, batch: ChangeBatch) -> None:
        """Remove what ``batch`` brought from the feed (it was acted on)."""

    async def close(self) -> None:
        return None
