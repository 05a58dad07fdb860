"""Async object-store adapters: one small interface, one implementation per kind of store."""

from .base import (
    AlreadyExistsError,
    NotRegularFileError,
    ObjectInfo,
    ObjectTooLargeError,
    Storage,
    StorageAuthError,
    StorageError,
    StorageFullError,
    StorageNotFoundError,
    StorageOfflineError,
    StoragePermissionError,
    StorageThrottledError,
    TakenButMissingError,
    UnreadableObjectError,
    check_object_path,
)
from .open import open_location, open_storage
from .profiles import ProfileError, ProfileStore, StorageProfile
from .url import StorageLocation, StorageUrlError, parse_storage_url

__all__ = [
    "AlreadyExistsError",
    "NotRegularFileError",
    "ObjectInfo",
    "ObjectTooLargeError",
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
    "TakenButMissingError",
    "UnreadableObjectError",
    "check_object_path",
    "open_location",
    "open_storage",
    "parse_storage_url",
]
