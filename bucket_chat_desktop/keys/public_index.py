"""A non-secret list of the identities whose keys live in the OS keyring.

Keyring backends cannot list their entries, so the keyring store records each user id
and public key here (``config_dir()/identities.json``). Only public data is written.
The index is a convenience: a key whose entry is missing can still be loaded by user id,
and a damaged index is logged and then rewritten rather than blocking the user.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..osfiles import read_regular_file, write_atomic

FORMAT = "bucket-chat-identities-v1"
MAX_INDEX_BYTES = 1024 * 1024
"""The most the index is read of: an entry is about 150 bytes."""

log = logging.getLogger("bucket_chat.keys")


class PublicIndex:
    """``{"format": ..., "identities": [{"user_id", "public_key", "store"}, ...]}``.

    ``store`` is the store kind (``keyring``), so other stores may share the file later.
    """

    def __init__(self, path: Path, store_kind: str) -> None:
        self.path = path
        self.store_kind = store_kind

    def read(self) -> dict[str, str]:
        """All user ids recorded for this store kind, mapped to their public keys (b64)."""
        return {
            entry["user_id"]: entry["public_key"]
            for entry in self._read_entries()
            if entry["store"] == self.store_kind
        }

    def add(self, user_id: str, public_key_b64: str) -> None:
        entries = [e for e in self._read_entries() if not self._same(e, user_id)]
        entries.append({"user_id": user_id, "public_key": public_key_b64, "store": self.store_kind})
        self._write(entries)

    def remove(self, user_id: str) -> None:
        entries = self._read_entries()
        kept = [e for e in entries if not self._same(e, user_id)]
        if len(kept) != len(entries):
            self._write(kept)

    def _same(self, entry: dict[str, str], user_id: str) -> bool:
        return entry["user_id"] == user_id and entry["store"] == self.store_kind

    def _read_entries(self) -> list[dict[str, str]]:
        try:
            # Never blocks on a FIFO there, never reads a device or a huge file (OSError).
            data = read_regular_file(self.path, MAX_INDEX_BYTES)
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("cannot read the identity index %s: %s", self.path, exc)
            return []
        try:
            document: Any = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("ignoring the damaged identity index %s: %s", self.path, exc)
            return []
        except (ValueError, RecursionError):  # a number of 5000 digits, [[[[... deep
            log.warning("ignoring the damaged identity index %s: not JSON this reads", self.path)
            return []
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            log.warning("ignoring the identity index %s: unknown format", self.path)
            return []
        identities = document.get("identities")
        entries: list[dict[str, str]] = []
        for entry in identities if isinstance(identities, list) else []:
            fields = ("user_id", "public_key", "store")
            if isinstance(entry, dict) and all(isinstance(entry.get(f), str) for f in fields):
                entries.append({f: entry[f] for f in fields})
            else:
                log.warning("ignoring a malformed entry in the identity index %s", self.path)
        return entries

    def _write(self, entries: list[dict[str, str]]) -> None:
        entries = sorted(entries, key=lambda e: (e["store"], e["user_id"]))
        document = {"format": FORMAT, "identities": entries}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        write_atomic(self.path, data)
