"""Async object-store adapters: one small interface, one implementation per kind of store."""

from .base import (
    AlreadyExistsError,
    ObjectInfo,
    Storage,
    StorageAuthError,
    StorageError,
    StorageFullError,
    StorageNotFoundError,
    StorageOfflineError,
    StoragePermissionError,
    StorageThrottledError,
    check_object_path,
)
from .open import open_location, open_storage
from .profiles import ProfileError, ProfileStore, StorageProfile
from .url import StorageLocation, StorageUrlError, parse_storage_url

__all__ = [
    "AlreadyExistsError",
    "ObjectInfo",
    "ProfileError",
    "ProfileStore",
    "Storage",
    "StorageAuthError",
    "StorageError",
    "StorageFullError",
    "StorageLocation",
    "StorageNotFoundError",
    "StorageOfflineError",
    "StoragePermissionError",
    "StorageProfile",
    "StorageThrottledError",
    "StorageUrlError",
    "check_object_path",
    "open_location",
    "open_storage",
    "parse_storage_url",
]
