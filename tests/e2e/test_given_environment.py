"""Review of the suite branch: ``Device.given`` (a set-up command run in this process)
cleared the process's environment and filled it again, before ``main`` and after it,
while threads an earlier in-process run may have left (fsspec's I/O loop) read it: for a
moment they saw none of it, and a variable one of them set meanwhile was thrown away. It
now sets and puts back the device's own variables only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

# What a device sets or unsets over the test's environment (``Device.env``).
DEVICES = {
    "BUCKET_CHAT_HOME",
    "BUCKET_CHAT_KEY_STORE",
    "BUCKET_CHAT_PASSPHRASE",
    "BUCKET_CHAT_STORAGE",
    "COLUMNS",
}


def test_given_changes_only_the_devices_own_variables(
    device: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    alice = device("alice", "alice@example.org")
    monkeypatch.setenv("E2E_NOT_THE_DEVICES", "kept")
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / "the-tests-own"))
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("BUCKET_CHAT_PASSPHRASE", raising=False)
    unset: list[str] = []
    unset_one = os._Environ.__delitem__

    def recorded(environ: Any, key: str) -> None:
        if environ is os.environ:
            unset.append(key)
        unset_one(environ, key)

    monkeypatch.setattr(os._Environ, "__delitem__", recorded)
    done = alice.given_user("create-room", "--room-id", "team", "--name", "Team")
    assert done.returncode == 0
    assert set(unset) <= DEVICES, f"{len(set(unset) - DEVICES)} others unset"
    assert os.environ["E2E_NOT_THE_DEVICES"] == "kept"
    assert os.environ["BUCKET_CHAT_HOME"] == str(tmp_path / "the-tests-own")
    assert "COLUMNS" not in os.environ and "BUCKET_CHAT_PASSPHRASE" not in os.environ
    assert (alice.store / "rooms" / "team").is_dir()
