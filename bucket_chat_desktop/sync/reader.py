"""Fetch a room's segments from storage and feed them to a ``RoomLedger``."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from ..protocol.audit import RoomLedger
from ..protocol.findings import Finding, Kind
from ..protocol.ids import logs_prefix, metadata_path, parse_segment_path, room_prefix
from ..protocol.metadata import RoomMetadata, parse_metadata
from ..protocol.segment import MAX_SEGMENT_BYTES
from ..storage.base import ObjectInfo, Storage, StorageError, StorageNotFoundError

log = logging.getLogger("bucket_chat.sync")

FETCH_CONCURRENCY = 16


@dataclass(slots=True)
class RoomView:
    """A room as read so far: its ledger, metadata and what is known about its objects."""

    room_id: str
    ledger: RoomLedger
    metadata: RoomMetadata | None = None
    metadata_findings: list[Finding] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)


async def room_exists(storage: Storage, room_id: str) -> bool:
    if await storage.exists(metadata_path(room_id)):
        return True
    return bool(await storage.list_dirs(logs_prefix(room_id)))


async def list_rooms(storage: Storage) -> list[str]:
    from ..protocol.ids import is_valid_room_id

    return [r for r in await storage.list_dirs("rooms/") if is_valid_room_id(r)]


async def read_metadata(
    storage: Storage, room_id: str
) -> tuple[RoomMetadata | None, list[Finding]]:
    path = metadata_path(room_id)
    try:
        data = await storage.get(path)
    except StorageNotFoundError:
        return None, [Finding(Kind.METADATA_MISSING, "room has no metadata.json", path)]
    return parse_metadata(data, room_id, path)


def _classify(room_id: str, items: list[ObjectInfo]) -> tuple[list[ObjectInfo], list[Finding]]:
    segments: list[ObjectInfo] = []
    findings: list[Finding] = []
    for item in items:
        name = parse_segment_path(item.path)
        if name is None or name.room_id != room_id:
            findings.append(
                Finding(Kind.UNEXPECTED_OBJECT, "not a segment name; ignored", item.path)
            )
        elif item.size > MAX_SEGMENT_BYTES:
            findings.append(
                Finding(
                    Kind.SEGMENT_TOO_LARGE,
                    f"segment of {item.size:,} bytes exceeds {MAX_SEGMENT_BYTES:,}; not read",
                    item.path,
                )
            )
        else:
            segments.append(item)
    return segments, findings


async def refresh_room(storage: Storage, view: RoomView) -> list[str]:
    """Read every segment of the room not read before; return the new paths.

    Objects that fail to download are reported as findings and retried next time.
    """
    if view.metadata is None and not view.metadata_findings:
        view.metadata, view.metadata_findings = await read_metadata(storage, view.room_id)
    items = await storage.list_objects(logs_prefix(view.room_id))
    segments, findings = _classify(view.room_id, items)
    for f in findings:
        if f.path not in view.sizes:
            view.sizes[f.path or ""] = -1
            view.ledger.add_finding(f)
    new = [s for s in segments if not view.ledger.has_segment(s.path)]
    sem = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def fetch(item: ObjectInfo) -> tuple[ObjectInfo, bytes | StorageError]:
        async with sem:
            try:
                return item, await storage.get(item.path)
            except StorageError as exc:
                return item, exc

    done: list[str] = []
    for item, data in await asyncio.gather(*(fetch(i) for i in new)):
        if isinstance(data, StorageError):
            log.warning("could not read %s: %s", item.path, data)
            continue
        view.ledger.add_segment(item.path, data)
        view.sizes[item.path] = len(data)
        done.append(item.path)
    return done


async def open_room(storage: Storage, room_id: str) -> RoomView:
    """Read a whole room (every date folder) from storage."""
    room_prefix(room_id)  # validates the id before any listing
    view = RoomView(room_id, RoomLedger(room_id))
    await refresh_room(storage, view)
    return view
