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
from .open import open_storage

__all__ = [
    "AlreadyExistsError",
    "ObjectInfo",
    "Storage",
    "StorageAuthError",
    "StorageError",
    "StorageFullError",
    "StorageNotFoundError",
    "StorageOfflineError",
    "StoragePermissionError",
    "StorageThrottledError",
    "check_object_path",
    "open_storage",
]
