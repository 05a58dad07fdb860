"""The desktop app's settings: who you are, which storages, which rooms, preferences.

A small JSON file in the user config folder, written atomically (temp file + replace).
It holds no secret: keys live in the key store, storage credentials in the keyring or the
SDKs' own credential files.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from . import paths
from .osfiles import write_atomic
from .protocol.event import MAX_ID_CHARS
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
    def from_json(cls, data: Any) -> Settings:
        """Tolerant: unknown keys are ignored, wrong types fall back to defaults."""
        out = cls()
        if not isinstance(data, dict):
            return out
        for name, default in asdict(cls()).items():
            value = data.get(name, default)
            if name == "storages":
                continue
            if isinstance(value, type(default)):
                setattr(out, name, value)
        storages = data.get("storages")
        if isinstance(storages, list):
            for item in storages:
                if isinstance(item, dict) and isinstance(item.get("spec"), str):
                    rooms = [r for r in item.get("rooms", []) if isinstance(r, str)]
                    label = item.get("name")
                    name = label if isinstance(label, str) else str(item["spec"])
                    out.storages.append(StorageSettings(item["spec"], name, rooms))
        out.notify_levels = {
            k: v for k, v in out.notify_levels.items() if isinstance(k, str) and v == "mentions"
        }
        out.muted_rooms = [k for k in out.muted_rooms if isinstance(k, str)]
        if out.poll_speed not in POLL_SPEEDS:
            out.poll_speed = "normal"
        if out.theme not in THEMES:
            out.theme = "system"
        out.attachment_limit_mb = max(1, min(out.attachment_limit_mb, 2048))
        out.read_markers = _read_markers(out.read_markers, out.room_keys())
        out.unseen_before_markers = _unseen(out.unseen_before_markers, set(out.read_markers))
        out.recent_emoji = [e for e in out.recent_emoji if isinstance(e, str) and 0 < len(e) <= 64][
            :RECENT_EMOJI
        ]
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
            and 0 < len(event_id) <= MAX_ID_CHARS
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
        ids = [e for e in value if isinstance(e, str) and 0 < len(e) <= MAX_ID_CHARS]
        if ids:
            out[key] = list(dict.fromkeys(ids))[:UNREAD_CAP]
    return out


def settings_path() -> Path:
    return paths.config_dir() / "settings.json"


def load(path: Path | None = None) -> Settings:
    path = path or settings_path()
    try:
        return Settings.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:
        log.warning("settings file %s is unreadable (%s); starting with defaults", path, exc)
        return Settings()


def save(settings: Settings, path: Path | None = None) -> None:
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(settings.to_json(), indent=2, ensure_ascii=False)
    write_atomic(path, text.encode("utf-8"))
