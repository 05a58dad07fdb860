"""Named storages: ``bucket-chat -s work`` instead of a long URL.

``config_dir()/storages.json`` maps a name to ``{"url": ..., "options": {...},
"secrets": [names]}``: the URL and its non-secret options, and the *names* of the secrets
the profile has. The secret values (access keys, account keys, SAS tokens, connection
strings) live only in the OS keyring, service ``bucket-chat-storage``, username = profile
name, as one JSON object. Where no usable keyring exists a profile cannot hold secrets; the
SDKs' own environment variables and credential files work instead.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import paths
from ..keyring_policy import STORAGE_SERVICE, failure, select_keyring_backend
from ..osfiles import FileTooLargeError, SpecialFileError, read_regular_file, write_atomic
from .base import StorageError
from .url import StorageLocation, StorageUrlError, parse_storage_url

if TYPE_CHECKING:
    from ..keyring_policy import KeyringBackend

log = logging.getLogger("bucket_chat.storage")

KEYRING_SERVICE = STORAGE_SERVICE  # see keyring_policy
FILE_NAME = "storages.json"
FORMAT_VERSION = 1
PROFILES_CAP = 4 * 1024 * 1024  # bytes: thousands of storages are far smaller
PROFILE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

SECRET_NAMES: Mapping[str, tuple[str, ...]] = {
    "s3": ("access_key_id", "secret_access_key", "session_token"),
    "gs": (),
    "az": ("account_key", "sas_token", "connection_string"),
    "file": (),
}


class ProfileError(StorageError):
    """A named storage that cannot be added, found or used as asked."""


@dataclass(frozen=True, slots=True)
class StorageProfile:
    name: str
    location: StorageLocation
    secret_names: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        loc = self.location
        url = loc.root() if loc.is_cloud else loc.bucket
        return {"url": url, "options": dict(loc.options), "secrets": list(self.secret_names)}


def check_profile_name(name: str) -> str:
    if not PROFILE_NAME_RE.fullmatch(name):
        raise ProfileError(
            f"storage name {name!r} must be 1-64 letters, digits, '-' or '_' "
            "(starting with a letter or digit)"
        )
    return name


def looks_like_profile_name(spec: str) -> bool:
    return PROFILE_NAME_RE.fullmatch(spec) is not None


def check_secrets(kind: str, values: Mapping[str, str]) -> dict[str, str]:
    """The secrets a ``kind`` of storage can use, checked for sense."""
    allowed = SECRET_NAMES.get(kind, ())
    out: dict[str, str] = {}
    for name, value in values.items():
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise ProfileError(f"{kind}:// storages take no secret {name!r} (they take: {known})")
        if not value or any(ord(c) < 32 for c in value):
            raise ProfileError(f"the {name.replace('_', ' ')} is empty or has control characters")
        out[name] = value
    if kind == "s3" and out and not {"access_key_id", "secret_access_key"} <= set(out):
        raise ProfileError("an S3 access key needs both the access key id and the secret key")
    if kind == "az" and len(out) > 1:
        raise ProfileError("give one of account key, SAS token or connection string, not several")
    return out


class ProfileStore:
    """The named storages of this user: a JSON file plus OS-keyring entries.

    ``backend`` chooses the keyring backend (tests pass one); by default the one
    ``keyring_policy`` chooses, which refuses the fail/null backends and those that keep
    secrets in files.
    """

    def __init__(self, path: Path | None = None, *, backend: KeyringBackend | None = None):
        self.path = path if path is not None else paths.config_dir() / FILE_NAME
        self._backend = backend

    # -- the file --------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        # As a regular file of at most PROFILES_CAP, or not at all: a FIFO at its name
        # held `bucket-chat` and the storage form for ever, a link to /dev/zero filled
        # the memory (the same rule as the app's settings file's).
        try:
            raw = read_regular_file(self.path, PROFILES_CAP)
        except FileNotFoundError:
            return {}
        except SpecialFileError as exc:
            raise ProfileError(
                f"{self.path} is not a file but a {exc.kind}; remove it and add your storages again"
            ) from exc
        except FileTooLargeError as exc:
            raise ProfileError(
                f"{self.path} is larger than a list of storages ever is (over "
                f"{PROFILES_CAP:,} bytes); fix or remove it"
            ) from exc
        except OSError as exc:
            raise ProfileError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        try:
            doc = json.loads(raw.decode("utf-8"))
        except ValueError as exc:  # not JSON, or not UTF-8
            raise ProfileError(f"{self.path} is not valid JSON ({exc}); fix or remove it") from exc
        except RecursionError as exc:  # nested deeper than the parser goes
            raise ProfileError(
                f"{self.path} is not valid JSON (nested too deeply); fix or remove it"
            ) from exc
        storages = doc.get("storages") if isinstance(doc, dict) else None
        if not isinstance(storages, dict):
            raise ProfileError(f"{self.path} has no 'storages' object; fix or remove it")
        return storages

    def _write(self, storages: Mapping[str, Any]) -> None:
        doc = {"version": FORMAT_VERSION, "storages": dict(sorted(storages.items()))}
        data = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, data.encode("utf-8"))
        except OSError as exc:
            raise ProfileError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def _parse(self, name: str, entry: Any) -> StorageProfile:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise ProfileError(f"storage {name!r} in {self.path} has no URL; remove and re-add it")
        options = entry.get("options", {})
        names = entry.get("secrets", [])
        if not isinstance(options, dict) or not isinstance(names, list):
            raise ProfileError(f"storage {name!r} in {self.path} is malformed; re-add it")
        try:
            location = parse_storage_url(entry["url"])
            if options:
                location = location.with_options({str(k): str(v) for k, v in options.items()})
        except StorageUrlError as exc:
            raise ProfileError(f"storage {name!r} in {self.path}: {exc}") from exc
        return StorageProfile(name, location, tuple(str(n) for n in names))

    # -- public ----------------------------------------------------------------------------

    def list(self) -> list[StorageProfile]:
        return [self._parse(n, e) for n, e in sorted(self._read().items())]

    def get(self, name: str) -> StorageProfile | None:
        entry = self._read().get(name)
        return None if entry is None else self._parse(name, entry)

    def add(
        self,
        name: str,
        location: StorageLocation,
        secrets: Mapping[str, str] | None = None,
        *,
        replace: bool = False,
    ) -> StorageProfile:
        """Save ``location`` as ``name``; ``secrets`` go to the OS keyring, never the file.

        Raises ``ProfileError`` if the name is taken (unless ``replace``) or secrets are
        given and no usable keyring exists. A replaced profile's old secrets are removed.
        """
        check_profile_name(name)
        values = check_secrets(location.kind, secrets or {})
        storages = self._read()
        if name in storages and not replace:
            raise ProfileError(
                f"a storage named {name!r} exists; remove it first "
                f"('bucket-chat storage remove {name}')"
            )
        old = self._parse(name, storages[name]) if name in storages else None
        if values:
            self._save_secrets(name, values)
        elif old is not None and old.secret_names:
            self._delete_secrets(name)
        profile = StorageProfile(name, location, tuple(sorted(values)))
        storages[name] = profile.as_json()
        self._write(storages)
        return profile

    def remove(self, name: str) -> StorageProfile:
        storages = self._read()
        if name not in storages:
            raise ProfileError(f"there is no storage named {name!r}")
        profile = self._parse(name, storages.pop(name))
        if profile.secret_names:
            self._delete_secrets(name)
        self._write(storages)
        return profile

    def secrets(self, profile: StorageProfile) -> dict[str, str]:
        """The profile's secrets from the OS keyring (empty if it has none)."""
        if not profile.secret_names:
            return {}
        backend = self._keyring(f"read the keys of storage {profile.name!r}")
        try:
            text = backend.get_password(KEYRING_SERVICE, profile.name)
        except Exception as exc:
            action = f"read the keys of storage {profile.name!r}"
            raise ProfileError(failure(backend, action, exc)) from exc
        if text is None:
            raise ProfileError(
                f"the OS keyring has no keys for storage {profile.name!r}: add it again "
                f"('bucket-chat storage add {profile.name} ... --replace')"
            )
        try:
            values = json.loads(text)
            if not isinstance(values, dict):
                raise ValueError("not an object")
            return check_secrets(profile.location.kind, {str(k): str(v) for k, v in values.items()})
        except (ValueError, ProfileError) as exc:
            raise ProfileError(
                f"the OS keyring entry of storage {profile.name!r} is damaged; add it again"
            ) from exc

    # -- keyring ---------------------------------------------------------------------------

    def keyring_backend(self) -> tuple[KeyringBackend | None, str]:
        """``(backend, "")`` for the keyring that holds this store's secrets, or ``(None,
        why)`` where none may (``keyring_policy``). Does not contact the keyring."""
        return select_keyring_backend(self._backend)

    def _keyring(self, action: str) -> KeyringBackend:
        backend, why = self.keyring_backend()
        if backend is None:
            raise ProfileError(
                f"cannot {action}: {why}. Keys are never written to files: use the SDK's "
                "environment variables or credential files instead (see docs/STORAGE.md)"
            )
        return backend

    def _save_secrets(self, name: str, values: Mapping[str, str]) -> None:
        backend = self._keyring(f"keep the keys of storage {name!r}")
        text = json.dumps(dict(sorted(values.items())), separators=(",", ":"))
        try:
            backend.set_password(KEYRING_SERVICE, name, text)
            stored = backend.get_password(KEYRING_SERVICE, name)
        except Exception as exc:
            action = f"keep the keys of storage {name!r}"
            raise ProfileError(failure(backend, action, exc)) from exc
        if stored != text:
            raise ProfileError(f"the OS keyring did not keep the keys of storage {name!r}")

    def _delete_secrets(self, name: str) -> None:
        backend, why = self.keyring_backend()
        if backend is None:
            log.warning("cannot remove the keys of storage %r from the keyring: %s", name, why)
            return
        try:
            backend.delete_password(KEYRING_SERVICE, name)
        except Exception as exc:  # PasswordDeleteError when already gone
            log.info("keyring entry of storage %r not removed: %s", name, exc)
