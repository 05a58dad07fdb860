"""The desktop app's settings: who you are, which storages, which rooms, preferences.

A small JSON file in the user config folder, written atomically (temp file + replace).
It holds no secret: keys live in the key store, storage credentials in the keyring or the
SDKs' own credential files.

A file damaged by a sync tool or a hand edit never stops the app and is never lost:
`load_reporting` keeps every well-formed field and drops the rest, and before the app
starts from a file it could not read, or without something it dropped, the file is set
aside as ``settings.json.broken-<date>-<time>`` (never over an earlier one). The
`LoadReport` says what happened, for the app to tell the user.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from . import paths
from .osfiles import (
    FileTooLargeError,
    SpecialFileError,
    move_aside,
    read_regular_file,
    write_atomic,
)
from .protocol.event import MAX_ID_BYTES, id_size
from .protocol.ids import InvalidRoomIdError, check_room_id
from .protocol.unread import UNREAD_CAP

log = logging.getLogger("bucket_chat.settings")

FORMAT = "bucket-chat-settings-v1"
POLL_SPEEDS = ("fast", "normal", "saver")  # how often buckets are polled, see poll_intervals()
THEMES = ("system", "light", "dark")
NOTIFY_LEVELS = ("all", "mentions", "none")  # per room: what notifies (see notify_level)


def storage_id_for(spec: str) -> str:
    return hashlib.sha256(spec.encode("utf-8")).hexdigest()[:12]


class PollIntervals(NamedTuple):
    """Seconds between polls of a cloud storage (``sync/schedule.py``)."""

    active: float  # for a minute after activity
    focused: float  # longest while the app's window is focused
    idle: float  # longest while it is not


_POLL_INTERVALS = {
    "fast": PollIntervals(0.5, 1.5, 20.0),
    "normal": PollIntervals(1.0, 3.0, 45.0),
    "saver": PollIntervals(3.0, 10.0, 120.0),
}


@dataclass(slots=True)
class StorageSettings:
    spec: str  # a folder, a URL or a profile name
    name: str
    rooms: list[str] = field(default_factory=list)  # rooms the user is in, in list order

    @property
    def id(self) -> str:
        return storage_id_for(self.spec)


RECENT_EMOJI = 24  # recent emoji the picker remembers


@dataclass(slots=True)
class Settings:
    user_id: str = ""
    displayname: str = ""
    storages: list[StorageSettings] = field(default_factory=list)
    muted_rooms: list[str] = field(default_factory=list)  # "<storage id>/<room id>"
    # "<storage id>/<room id>" -> "mentions" for rooms that notify only when they mention
    # the user ("none" is kept in muted_rooms, "all" is the default and not stored)
    notify_levels: dict[str, str] = field(default_factory=dict)
    notifications: bool = True
    poll_speed: str = "normal"
    attachment_limit_mb: int = 25
    theme: str = "system"
    minimize_to_tray: bool = True
    start_minimized: bool = False
    last_room: str = ""  # "<storage id>/<room id>"
    recent_emoji: list[str] = field(default_factory=list)  # the picker's, newest first
    # "<storage id>/<room id>" -> (id, timestamp) of the newest event the user saw there:
    # what counts as unread after a restart (protocol/unread.py). One per joined room.
    read_markers: dict[str, tuple[str, int]] = field(default_factory=dict)
    # "<storage id>/<room id>" -> ids of messages placed before that room's read marker
    # that arrived while it was not shown (``ReadMarker.unseen``): unread after a restart
    # too. Cleared when the room is shown. At most ``UNREAD_CAP`` a room.
    unseen_before_markers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        return bool(self.user_id and self.storages)

    def storage(self, storage_id: str) -> StorageSettings | None:
        return next((s for s in self.storages if s.id == storage_id), None)

    def notify_level(self, room_key: str) -> str:
        """ "all" (every message notifies), "mentions" (only messages that mention the
        user) or "none" (a muted room: nothing notifies, no unread count in the badge)."""
        if room_key in self.muted_rooms:
            return "none"
        level = self.notify_levels.get(room_key, "all")
        return level if level in NOTIFY_LEVELS else "all"

    def set_notify_level(self, room_key: str, level: str) -> None:
        if level not in NOTIFY_LEVELS:
            raise ValueError(f"unknown notification level {level!r}")
        muted = level == "none"
        if muted and room_key not in self.muted_rooms:
            self.muted_rooms.append(room_key)
        elif not muted and room_key in self.muted_rooms:
            self.muted_rooms.remove(room_key)
        if level == "mentions":
            self.notify_levels[room_key] = level
        else:
            self.notify_levels.pop(room_key, None)

    def read_marker(self, room_key: str) -> tuple[str, int] | None:
        return self.read_markers.get(room_key)

    def set_read_marker(self, room_key: str, event_id: str, timestamp_ms: int) -> bool:
        """Remember the newest event seen in a room (everything before it was seen too:
        its unseen messages go); whether that changed what is saved."""
        marker = (event_id, timestamp_ms)
        cleared = self.unseen_before_markers.pop(room_key, None) is not None
        if self.read_markers.get(room_key) == marker:
            return cleared
        self.read_markers[room_key] = marker
        return True

    def unseen_before_marker(self, room_key: str) -> tuple[str, ...]:
        return tuple(self.unseen_before_markers.get(room_key, ()))

    def note_unseen_before_marker(self, room_key: str, event_ids: Iterable[str]) -> bool:
        """Messages placed before the room's read marker that arrived unseen; whether
        that changed what is saved (at most ``UNREAD_CAP`` are kept: the count stops
        there)."""
        held = self.unseen_before_markers.get(room_key, [])
        new = [e for e in dict.fromkeys(event_ids) if e not in held]
        if not new or len(held) >= UNREAD_CAP:
            return False
        self.unseen_before_markers[room_key] = (held + new)[:UNREAD_CAP]
        return True

    def forget_read_marker(self, room_key: str) -> None:
        """A room left: its marker and unseen messages go."""
        self.read_markers.pop(room_key, None)
        self.unseen_before_markers.pop(room_key, None)

    def room_keys(self) -> set[str]:
        """ "<storage id>/<room id>" of every room joined."""
        return {f"{s.id}/{room}" for s in self.storages for room in s.rooms}

    def poll_intervals(self) -> PollIntervals:
        """How often a cloud storage is polled at this speed. "normal" keeps a message
        after a lull within 5 s (p95) while the window is focused and an idle app in the
        background within 150 requests an hour per storage (README, "Idle clients")."""
        return _POLL_INTERVALS.get(self.poll_speed, _POLL_INTERVALS["normal"])

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = FORMAT
        return data

    @classmethod
    def from_json(cls, data: Any, dropped: list[str] | None = None) -> Settings:
        """Tolerant: unknown keys are ignored, a field of the wrong type falls back to its
        default, a storage entry or room that is not well-formed is left out and the rest
        kept. ``dropped`` receives a sentence for each such field, entry or room."""
        notes: list[str] = dropped if dropped is not None else []
        out = cls()
        if not isinstance(data, dict):
            notes.append(f"the file holds {_json_kind(data)}, not the settings")
            return out
        for name, default in asdict(cls()).items():
            if name == "storages" or name not in data:
                continue
            value = data[name]
            if _same_type(value, default):
                setattr(out, name, value)
            elif name in _REPORTED_FIELDS:
                notes.append(f"{name}: {_json_kind(value)} instead of {_kind(default)}")
        out.storages = _storages(data.get("storages", []), notes)
        out.notify_levels = {
            k: v for k, v in out.notify_levels.items() if isinstance(k, str) and v == "mentions"
        }
        out.muted_rooms = [k for k in out.muted_rooms if isinstance(k, str)]
        if out.poll_speed not in POLL_SPEEDS:
            notes.append(
                f"poll_speed: {_shown(out.poll_speed)} is none of {', '.join(POLL_SPEEDS)}"
            )
            out.poll_speed = "normal"
        if out.theme not in THEMES:
            notes.append(f"theme: {_shown(out.theme)} is none of {', '.join(THEMES)}")
            out.theme = "system"
        out.attachment_limit_mb = max(1, min(out.attachment_limit_mb, 2048))
        out.read_markers = _read_markers(out.read_markers, out.room_keys())
        out.unseen_before_markers = _unseen(out.unseen_before_markers, set(out.read_markers))
        out.recent_emoji = [e for e in out.recent_emoji if isinstance(e, str) and 0 < len(e) <= 64][
            :RECENT_EMOJI
        ]
        return out


# Fields whose loss the user would notice (a storage, a room, a preference): a value of
# the wrong type is reported. Read markers, unread lists and recent emoji are app state:
# a malformed one is dropped quietly (a room then counts as read, the picker forgets).
_REPORTED_FIELDS = frozenset(
    {
        "user_id",
        "displayname",
        "storages",
        "muted_rooms",
        "notify_levels",
        "notifications",
        "poll_speed",
        "attachment_limit_mb",
        "theme",
        "minimize_to_tray",
        "start_minimized",
        "last_room",
    }
)
_SHOWN_CHARS = 60  # of a value quoted in a report


def _same_type(value: Any, default: Any) -> bool:
    """JSON's type of ``value`` is the field's (a bool is not a number here)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    return isinstance(value, type(default))


def _kind(value: Any) -> str:
    for kind, name in ((bool, "true/false"), (int, "a whole number"), (str, "text")):
        if isinstance(value, kind):
            return name
    return "a list" if isinstance(value, list) else "an object"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):  # "25.5 instead of a whole number"
        return f"the number {value!r}" if math.isfinite(value) else "a number"
    if isinstance(value, str):
        return f"the text {_shown(value)}"
    return "a list" if isinstance(value, list) else "an object"


def _shown(value: str) -> str:
    text = value if len(value) <= _SHOWN_CHARS else value[: _SHOWN_CHARS - 1] + "…"
    return json.dumps(text, ensure_ascii=False)


def _storages(items: Any, notes: list[str]) -> list[StorageSettings]:
    """The well-formed storage entries; a room id that is not valid (the protocol's check:
    it would name a path) is left out of its storage, the storage kept."""
    if not isinstance(items, list):
        notes.append(f"storages: {_json_kind(items)} instead of a list (every storage dropped)")
        return []
    out: list[StorageSettings] = []
    seen: set[str] = set()
    for number, item in enumerate(items, 1):
        spec = item.get("spec") if isinstance(item, dict) else None
        if not isinstance(spec, str) or not spec.strip():
            notes.append(f"storage entry {number}: no storage named (dropped)")
            continue
        label = item.get("name")
        name = label if isinstance(label, str) and label.strip() else spec
        which = f"storage {_shown(name)}"
        if spec in seen:
            notes.append(f"{which}: listed twice (the second entry dropped)")
            continue
        seen.add(spec)
        rooms_value = item.get("rooms", [])
        rooms: list[str] = []
        if not isinstance(rooms_value, list):
            notes.append(f"{which}: rooms is {_json_kind(rooms_value)}, not a list (no room kept)")
            rooms_value = []
        for room in rooms_value:
            if not isinstance(room, str):
                notes.append(f"{which}: a room given as {_json_kind(room)} dropped (not text)")
                continue
            try:
                check_room_id(room)
            except InvalidRoomIdError as exc:
                notes.append(f"{which}: room {_shown(room)} dropped ({exc})")
                continue
            if room not in rooms:
                rooms.append(room)
        out.append(StorageSettings(spec, name, rooms))
    return out


def _read_markers(data: dict[Any, Any], rooms: set[str]) -> dict[str, tuple[str, int]]:
    """The well-formed markers of rooms still joined (a file edited by hand, or one kept
    across a leave the app did not see, holds others)."""
    out: dict[str, tuple[str, int]] = {}
    for key, value in data.items():
        if key not in rooms or not isinstance(value, list | tuple) or len(value) != 2:
            continue
        event_id, ts = value
        if (
            isinstance(event_id, str)
            and 0 < id_size(event_id) <= MAX_ID_BYTES
            and isinstance(ts, int)
            and not isinstance(ts, bool)
            and 0 <= ts < 2**53
        ):
            out[key] = (event_id, ts)
    return out


def _unseen(data: dict[Any, Any], marked: set[str]) -> dict[str, list[str]]:
    """The well-formed unseen lists of rooms with a read marker (without one, nothing
    counts as unread after a restart: the room is taken as seen)."""
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if key not in marked or not isinstance(value, list):
            continue
        ids = [e for e in value if isinstance(e, str) and 0 < id_size(e) <= MAX_ID_BYTES]
        if ids:
            out[key] = list(dict.fromkeys(ids))[:UNREAD_CAP]
    return out


def settings_path() -> Path:
    return paths.config_dir() / "settings.json"


BROKEN_SUFFIX = ".broken-"  # settings.json.broken-<date>-<time>[-<n>]: a file set aside
SETTINGS_CAP = 4 * 1024 * 1024  # bytes: a settings file of thousands of rooms is far smaller


@dataclass(slots=True)
class LoadReport:
    """What loading the settings file found, for the user: nothing when all is well.

    ``unreadable``: why the file could not be used at all (the app starts from
    defaults); ``dropped``: what was left out of a file that could be read;
    ``kept_aside``: where the file as it was now is (None if it could not be set
    aside: ``aside_problem`` says why)."""

    path: Path
    unreadable: str = ""
    dropped: list[str] = field(default_factory=list)
    kept_aside: Path | None = None
    aside_problem: str = ""

    @property
    def needs_telling(self) -> bool:
        return bool(self.unreadable or self.dropped)


class Loaded(NamedTuple):
    settings: Settings
    report: LoadReport


def load_reporting(path: Path | None = None) -> Loaded:
    """The settings, and what was wrong with the file. Never raises: a file that cannot be
    read or parsed gives the defaults; a file that loses anything in loading is first set
    aside (``settings.json.broken-…``), so that the next save loses nothing for good."""
    path = path or settings_path()
    report = LoadReport(path)
    raw = b""
    try:
        # as a regular file of at most SETTINGS_CAP, or not at all: a FIFO put at its
        # name (a sync tool, a restored archive) held the start for ever before any
        # window, and a link to /dev/zero filled the memory (red team rt66)
        raw = read_regular_file(path, SETTINGS_CAP)
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        return Loaded(Settings(), report)
    except SpecialFileError as exc:
        report.unreadable = f"it is not a file but a {exc.kind}"
        data = None
    except FileTooLargeError:
        report.unreadable = f"it is larger than settings ever are (over {SETTINGS_CAP:,} bytes)"
        data = None
    except OSError as exc:
        report.unreadable = f"it could not be read ({exc.strerror or exc})"
        data = None
    except ValueError as exc:  # not JSON, or not UTF-8
        report.unreadable = f"it is not valid JSON ({exc})"
        data = None
    except Exception as exc:  # e.g. RecursionError from a deeply nested file
        report.unreadable = f"it could not be read ({type(exc).__name__}: {exc})"
        data = None
    settings = Settings()
    if not report.unreadable:
        if isinstance(data, dict):
            try:
                settings = Settings.from_json(data, report.dropped)
            except Exception as exc:  # a bug here must not stop the app
                log.exception("settings file %s could not be loaded", path)
                report.unreadable = f"it could not be loaded ({type(exc).__name__}: {exc})"
                report.dropped.clear()
                settings = Settings()
        else:
            report.unreadable = f"it holds {_json_kind(data)}, not the settings"
    if report.needs_telling:
        try:
            kept = None if report.unreadable else raw
            report.kept_aside = _set_aside(path, kept)
        except OSError as exc:
            report.aside_problem = str(exc.strerror or exc)
        log.warning(
            "settings file %s: %s; kept as %s",
            path,
            report.unreadable or "dropped: " + "; ".join(report.dropped),
            report.kept_aside or f"nothing ({report.aside_problem})",
        )
    return Loaded(settings, report)


def load(path: Path | None = None) -> Settings:
    """The settings (`load_reporting` without the report: it is logged)."""
    return load_reporting(path).settings


def _set_aside(path: Path, kept: bytes | None) -> Path:
    """Move ``path`` to a new ``<name>.broken-<date>-<time>[-<n>]`` beside it, or with
    ``kept`` (the bytes read from it, the file itself staying) write those there; never
    over an existing file, and never reading ``path`` again."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        target = path.with_name(f"{path.name}{BROKEN_SUFFIX}{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            if kept is not None:
                write_atomic(target, kept, overwrite=False)
            else:
                move_aside(path, target)  # never over a file of that name
        except FileExistsError:
            continue
        return target
    raise FileExistsError(f"too many files set aside beside {path}")


def save(settings: Settings, path: Path | None = None) -> None:
    """Write ``settings`` whole (atomically). No re-read and merge: the one program that
    writes this file is the app, and one app runs per config folder
    (``gui/single_instance.py``); two instances saving the snapshots they loaded undid
    each other's changes (red team rt71). The ``bucket-chat`` command line never writes
    it (its storages are ``storages.json``, re-read on every use), and a hand edit while
    the app runs is overwritten by design: the README says to quit the app first."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(settings.to_json(), indent=2, ensure_ascii=False)
    write_atomic(path, text.encode("utf-8"))
