"""Turn a storage argument (a folder path or URL) into a ``Storage``."""

from __future__ import annotations

from .base import Storage, StorageError
from .local import LocalStorage

CLOUD_SCHEMES = ("s3://", "gs://", "gcs://", "az://", "abfs://")


def open_storage(spec: str) -> Storage:
    """A folder path, ``file://`` URL or (with the cloud-sync work) a bucket URL."""
    if spec.startswith("file://"):
        return LocalStorage(spec[len("file://") :])
    if spec.startswith(CLOUD_SCHEMES):
        raise StorageError(
            f"{spec.split('://', 1)[0]}:// storage is not available in this build yet; "
            "use a local or synced folder"
        )
    if "://" in spec:
        raise StorageError(f"unknown storage URL {spec!r}: use a folder, s3://, gs:// or az://")
    return LocalStorage(spec)
