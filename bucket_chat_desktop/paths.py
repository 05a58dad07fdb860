"""Where Bucket Chat keeps its files on this machine.

Directories follow the platform's conventions (platformdirs, app name ``bucket-chat``).
Setting ``BUCKET_CHAT_HOME`` moves everything under one folder, which is how tests and
users simulate several devices on one machine: ``$BUCKET_CHAT_HOME/data`` and
``$BUCKET_CHAT_HOME/config``.

Nothing here creates a directory; whoever writes a file creates its folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "bucket-chat"
HOME_ENV = "BUCKET_CHAT_HOME"


def _home_override() -> Path | None:
    value = os.environ.get(HOME_ENV)
    if not value:
        return None
    return Path(os.path.abspath(os.path.expanduser(value)))


def data_dir() -> Path:
    """Per-user data: the local store and encrypted key files."""
    home = _home_override()
    if home is not None:
        return home / "data"
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    """Per-user settings and other small, non-secret files."""
    home = _home_override()
    if home is not None:
        return home / "config"
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def crash_dir() -> Path:
    """Crash reports of the desktop app (native tracebacks written by faulthandler) and
    the marker that says a run is in progress (see ``crashes.py``)."""
    return data_dir() / "crash"


def default_store_dir() -> Path:
    """The default local store (the folder that plays the part of a bucket)."""
    return data_dir() / "store"
