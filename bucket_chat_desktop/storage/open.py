"""Turn a storage argument (a folder, a URL or a profile name) into a ``Storage``."""

from __future__ import annotations

from collections.abc import Mapping

from .base import Storage
from .local import LocalStorage
from .profiles import ProfileStore, looks_like_profile_name
from .url import StorageLocation, is_url, parse_storage_url


def open_storage(spec: str, *, profiles: ProfileStore | None = None) -> Storage:
    """A folder path, ``file://`` URL, ``s3://``/``gs://``/``az://`` URL or profile name.

    A bare name such as ``work`` is a profile when ``storages.json`` has one by that
    name; otherwise it is a folder (write ``./work`` to mean the folder regardless).
    ``profiles`` is a ``ProfileStore`` (the user's own by default). Nothing is contacted
    until the storage is first used. Raises ``StorageError`` with what to fix.
    """
    location, secrets = storage_keys(spec, profiles=profiles)
    return open_location(location, secrets)


def storage_keys(
    spec: str, *, profiles: ProfileStore | None = None
) -> tuple[StorageLocation, dict[str, str] | None]:
    """What `open_storage` opens: the location ``spec`` names and, for a named storage,
    its keys. Those come from the OS keyring, which may not answer (`names_profile`: a
    window runs this on a thread of its own, ``sync.client``)."""
    if names_profile(spec):
        store = profiles if profiles is not None else ProfileStore()
        profile = store.get(spec)
        if profile is not None:
            return profile.location, store.secrets(profile)
    return parse_storage_url(spec), None


def names_profile(spec: str) -> bool:
    """True when ``spec`` may be a named storage (whose keys the OS keyring holds)."""
    return not is_url(spec) and looks_like_profile_name(spec)


def open_location(location: StorageLocation, secrets: Mapping[str, str] | None = None) -> Storage:
    """The ``Storage`` for a parsed location; ``secrets`` as kept by a profile."""
    if location.kind == "file":
        return LocalStorage(location.bucket)
    if location.kind == "s3":
        from .s3 import S3Storage

        return S3Storage(location, secrets)
    if location.kind == "gs":
        from .gcs import GCSStorage

        return GCSStorage(location, secrets)
    from .azure import AzureStorage

    return AzureStorage(location, secrets)
