"""End-to-end tests: run the installed ``bucket-chat`` command as a subprocess.

Each simulated device gets its own ``BUCKET_CHAT_HOME`` (its own keys and settings) and
uses the encrypted key file store, so devices never share a key.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

EXE = shutil.which("bucket-chat", path=str(Path(sys.executable).parent)) or "bucket-chat"


@dataclass
class Device:
    home: Path
    store: Path
    user_id: str

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            BUCKET_CHAT_HOME=str(self.home),
            BUCKET_CHAT_KEY_STORE="file",
            BUCKET_CHAT_PASSPHRASE="correct horse battery staple",
        )
        env.pop("BUCKET_CHAT_STORAGE", None)
        return env

    def run(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [EXE, "-s", str(self.store), *args]
        proc = subprocess.run(
            cmd, env=self.env(), input=input, capture_output=True, text=True, timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def user(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run(*args, "--user-id", self.user_id, **kw)

    def json(self, *args: str, check: bool = True) -> Any:
        return json.loads(self.run(*args, "--json", check=check).stdout)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "shared-folder"
    path.mkdir()
    return path


@pytest.fixture
def device(tmp_path: Path, store: Path):  # type: ignore[no-untyped-def]
    def make(
        name: str, user_id: str, *, setup: bool = True, store_path: Path | None = None
    ) -> Device:
        dev = Device(tmp_path / "devices" / name, store_path or store, user_id)
        dev.home.mkdir(parents=True, exist_ok=True)
        if setup:
            dev.user("setup-keys")
        return dev

    return make


def kinds(doc: dict[str, Any]) -> set[str]:
    return {f["kind"] for f in doc["findings"]}


def segments(store: Path, room: str) -> Sequence[Path]:
    return sorted((store / "rooms" / room / "logs").rglob("*.jsonl"))
