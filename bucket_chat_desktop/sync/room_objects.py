"""What a storage's objects are to the chat: which rooms exist, a room's metadata, and the
finding for an object that stands in a room's folder but is not read (not a segment's
name, over the size limit, not a regular file).

The engine reads rooms (``engine.py``); the few questions here are asked before or
beside a read: by the engine, the client, the direct writer, the storage self-check,
the CLI and the setup wizard. Each answer is a value, never an exception about the
object: everything here was written by someone who may be hostile.
"""

from __future__ import annotations

from ..protocol.findings import Finding, Kind
from ..protocol.ids import is_valid_room_id, logs_prefix, metadata_path, parse_segment_path
from ..protocol.metadata import MAX_METADATA_BYTES, RoomMetadata, parse_metadata
from ..protocol.segment import MAX_SEGMENT_BYTES
from ..storage.base import (
    NotRegularFileError,
    ObjectInfo,
    ObjectTooLargeError,
    Storage,
    StorageNotFoundError,
    UnreadableObjectError,
)


async def room_exists(storage: Storage, room_id: str) -> bool:
    """A room exists when it has metadata or at least one date folder of segments."""
    if await storage.exists(metadata_path(room_id)):
        return True
    return bool(await storage.list_dirs(logs_prefix(room_id)))


async def list_rooms(storage: Storage) -> list[str]:
    """The storage's rooms: the folders under ``rooms/`` whose name is a valid room id."""
    return [r for r in await storage.list_dirs("rooms/") if is_valid_room_id(r)]


async def read_metadata(
    storage: Storage, room_id: str
) -> tuple[RoomMetadata | None, list[Finding]]:
    """The room's metadata and what is wrong with it; storage errors other than a missing
    or unreadable object propagate (the caller retries later)."""
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


def not_read_finding(room_id: str, item: ObjectInfo) -> Finding | None:
    """Why a regular object listed in the room's ``logs/`` folder is not downloaded — not
    a segment's name of this room (litter: a notice), or larger than
    ``MAX_SEGMENT_BYTES`` by its listed size (history that cannot be read: an error) — or
    None: it is read."""
    name = parse_segment_path(item.path)
    if name is None or name.room_id != room_id:
        return Finding(Kind.UNEXPECTED_OBJECT, "not a segment name; ignored", item.path)
    if item.size > MAX_SEGMENT_BYTES:
        return Finding(
            Kind.SEGMENT_TOO_LARGE,
            f"segment of {item.size:,} bytes exceeds {MAX_SEGMENT_BYTES:,}; not read",
            item.path,
        )
    return None


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
