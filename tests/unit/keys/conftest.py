"""Shared fixtures: every keys test runs in its own BUCKET_CHAT_HOME, with no passphrase
or key-store choice inherited from the developer's environment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from nacl.pwhash import argon2id

from bucket_chat_desktop.keys import EncryptedFileStore, passphrase

PASSPHRASE = "correct horse battery staple"

Provider = Callable[[str, bool], str]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(home))
    monkeypatch.delenv("BUCKET_CHAT_PASSPHRASE", raising=False)
    monkeypatch.setattr(passphrase, "_claimed", None)  # nothing claimed by an earlier test
    monkeypatch.delenv("BUCKET_CHAT_KEY_STORE", raising=False)
    return home


class RecordingProvider:
    """A passphrase provider that answers with a fixed passphrase and records the calls."""

    def __init__(self, passphrase: str = PASSPHRASE) -> None:
        self.passphrase = passphrase
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, user_id: str, creating: bool) -> str:
        self.calls.append((user_id, creating))
        return self.passphrase


@pytest.fixture
def provider() -> RecordingProvider:
    return RecordingProvider()


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def fast_store(key_dir: Path, provider: RecordingProvider) -> EncryptedFileStore:
    """A file store with the cheapest Argon2id limits, so tests stay fast.

    Tests that care about the real limits build their own store.
    """
    return EncryptedFileStore(
        key_dir, provider, opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN
    )
