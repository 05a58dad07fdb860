"""Fetch a room's segments from storage and feed them to a ``RoomLedger``."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from ..protocol.audit import RoomLedger
from ..protocol.findings import Finding, Kind
from ..protocol.ids import logs_prefix, metadata_path, parse_segment_path, room_prefix
from ..protocol.metadata import MAX_METADATA_BYTES, RoomMetadata, parse_metadata
from ..protocol.segment import MAX_SEGMENT_BYTES
from ..storage.base import (
    NotRegularFileError,
    ObjectInfo,
    ObjectTooLargeError,
    Storage,
    StorageError,
    StorageNotFoundError,
    UnreadableObjectError,
)

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
        data = await storage.get(path, max_bytes=MAX_METADATA_BYTES)
    except StorageNotFoundError:
        return None, [Finding(Kind.METADATA_MISSING, "room has no metadata.json", path)]
    except NotRegularFileError as exc:
        # Where the room's name and creator should be: an error, not litter.
        why = f"metadata.json is not a regular file ({exc.kind}); not used"
        return None, [Finding(Kind.METADATA_INVALID, why, path)]
    except UnreadableObjectError as exc:
        return None, [unreadable_finding(exc, Kind.METADATA_INVALID)]
    return parse_metadata(data, room_id, path)


def unreadable_finding(exc: UnreadableObjectError, too_large: Kind) -> Finding:
    """The finding for an object that cannot be read as it is (reported, never retried)."""
    if isinstance(exc, NotRegularFileError):
        return _not_regular(exc.path, exc.kind)
    assert isinstance(exc, ObjectTooLargeError)
    return Finding(too_large, f"larger than the {exc.limit:,}-byte limit; not read", exc.path)


def special_finding(item: ObjectInfo) -> Finding:
    """The finding for a listed entry that is a link, FIFO, socket or device."""
    return _not_regular(item.path, str(item.special))


def _not_regular(path: str, kind: str) -> Finding:
    """Something that is not a file. Named like a segment it stands where history could
    be (a link put in place of a real segment, a FIFO): an error, the verdict is not
    final. Under any other name it is litter: a notice."""
    if parse_segment_path(path) is not None:
        return Finding(
            Kind.SEGMENT_UNREADABLE,
            f"named like a segment but not a regular file ({kind}); not read",
            path,
        )
    return Finding(Kind.UNEXPECTED_OBJECT, f"not a regular file: {kind}; not read", path)


def _classify(room_id: str, items: list[ObjectInfo]) -> tuple[list[ObjectInfo], list[Finding]]:
    segments: list[ObjectInfo] = []
    findings: list[Finding] = []
    for item in items:
        name = parse_segment_path(item.path)
        if item.special is not None:
            findings.append(special_finding(item))
        elif name is None or name.room_id != room_id:
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
    new = [
        s for s in segments if not view.ledger.has_segment(s.path) and view.sizes.get(s.path) != -1
    ]
    sem = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def fetch(item: ObjectInfo) -> tuple[ObjectInfo, bytes | StorageError]:
        async with sem:
            try:
                return item, await storage.get(item.path, max_bytes=MAX_SEGMENT_BYTES)
            except StorageError as exc:
                return item, exc

    done: list[str] = []
    for item, data in await asyncio.gather(*(fetch(i) for i in new)):
        if isinstance(data, UnreadableObjectError):  # retrying cannot help: report it once
            if item.path not in view.sizes:
                view.sizes[item.path] = -1
                view.ledger.add_finding(unreadable_finding(data, Kind.SEGMENT_TOO_LARGE))
            continue
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
