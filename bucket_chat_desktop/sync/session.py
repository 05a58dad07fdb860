"""Build a sync engine for a storage: with this device's index and outbox files
(``engine_session``), or bare, for one complete read of a room (``read_room``).

For tests and benchmarks, which drive an engine directly. Front ends never do: they open
a ``ChatClient.session`` (docs/design/front-end-seam.md)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from .. import paths
from ..index import Index
from ..protocol.ids import room_prefix
from ..storage.base import Storage
from .device_files import index_file, open_device_outbox, outbox_path_for
from .engine import RoomView, SyncConfig, SyncEngine
from .events import EngineEvent

__all__ = ["engine_session", "outbox_path_for", "read_room"]

log = logging.getLogger("bucket_chat.sync")


@contextlib.asynccontextmanager
async def engine_session(
    storage: Storage,
    *,
    index: bool = True,
    outbox: bool = True,
    start: bool = False,
    listener: Callable[[EngineEvent], None] | None = None,
    config: SyncConfig | None = None,
    data_dir: Path | None = None,
) -> AsyncIterator[SyncEngine]:
    """An engine on ``storage`` using this device's cache and outbox; closed on exit."""
    base = data_dir or paths.data_dir()
    idx = Index.open(index_file(base, storage), storage.url) if index else None
    box = None
    if outbox:
        box, set_aside = open_device_outbox(base, storage)
        if set_aside is not None:
            log.warning("%s", set_aside)
    engine = SyncEngine(storage, index=idx, outbox=box, listener=listener, config=config)
    try:
        if start:
            await engine.start()
        yield engine
    finally:
        await engine.close()
        if idx is not None:
            idx.close()
        if box is not None:
            box.close()


async def read_room(storage: Storage, room_id: str) -> RoomView:
    """Read a whole room once, through the engine (the one read path of the app and the
    CLI), with no index and no outbox: nothing is cached or kept. The view holds the
    final audit of the complete read, or, when part of the room could not be read, the
    audit that says what is missing (``partial``)."""
    room_prefix(room_id)  # a bad id is refused before any request
    engine = SyncEngine(storage)
    try:
        await engine.open_room(room_id, background=False, focus=False)
        view = await engine.room_view(room_id)
    finally:
        await engine.close()
    assert view is not None and view.result is not None  # a complete pass always audits
    return view
