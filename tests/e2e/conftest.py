"""End-to-end tests: run the installed ``bucket-chat`` command as a subprocess.

Each simulated device gets its own ``BUCKET_CHAT_HOME`` (its own keys and settings) and
uses the encrypted key file store, so devices never share a key.

What a test only sets up (the room created, the messages sent before the command under
test runs) may be done in this process with ``Device.given``: the same ``main`` with the
same arguments, environment and standard input, without the half second each new
interpreter takes to start and import the package. The commands a test checks run as
real subprocesses (``Device.run``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bucket_chat_desktop.cli.main import main
from bucket_chat_desktop.keys import passphrase
from bucket_chat_desktop.keys.store import EncryptedFileStore, load_or_create_identity

PASSPHRASE = "correct horse battery staple"
EXE = shutil.which("bucket-chat", path=str(Path(sys.executable).parent)) or "bucket-chat"


@dataclass
class Device:
    home: Path
    store: Path
    user_id: str
    # what a long printed line is cut at, the output being no terminal (``format.fit``):
    # wide, so that tests of other things read a line whole; None: the command's default
    columns: str | None = "100000"

    def own_env(self) -> dict[str, str | None]:
        """The variables this device sets over the test's environment (None: unset)."""
        return {
            "BUCKET_CHAT_HOME": str(self.home),
            "BUCKET_CHAT_KEY_STORE": "file",
            "BUCKET_CHAT_PASSPHRASE": PASSPHRASE,
            "BUCKET_CHAT_STORAGE": None,
            "COLUMNS": self.columns,
        }

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for key, value in self.own_env().items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
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

    def given(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``run``'s command in this process, for a test's set-up only: ``main`` with the
        same arguments, this device's environment and ``input`` on standard input (else
        an empty one), its output captured. The device's own variables (``own_env``), the
        passphrase ``main`` claims from them and the root logger's handlers are put back
        as they were. Only those variables change: the environment was cleared and
        refilled whole, twice, under threads an earlier in-process run may have left
        (fsspec's I/O loop) that read it, and what one of them set meanwhile was lost."""
        argv = ["-s", str(self.store), *args]
        own = self.own_env()
        saved = {key: os.environ.get(key) for key in own}
        claimed = passphrase._claimed
        handlers = list(logging.getLogger().handlers)
        out, err = io.StringIO(), io.StringIO()
        try:
            _set_env(own)
            with (
                contextlib.redirect_stdout(out),
                contextlib.redirect_stderr(err),
                _stdin(io.StringIO(input or "")),
            ):
                try:
                    code = main(argv)
                except SystemExit as exc:  # argparse
                    code = exc.code if isinstance(exc.code, int) else 2
        finally:
            _set_env(saved)
            passphrase._claimed = claimed
            for handler in logging.getLogger().handlers:  # one main's basicConfig added
                if handler not in handlers:
                    logging.getLogger().removeHandler(handler)
        proc = subprocess.CompletedProcess(
            ["bucket-chat", *argv], code, out.getvalue(), err.getvalue()
        )
        if check and code != 0:
            raise AssertionError(
                f"bucket-chat {' '.join(argv)} (in-process) exited {code}\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def given_user(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """``user``'s command in this process, for a test's set-up only (``given``)."""
        return self.given(*args, "--user-id", self.user_id, **kw)

    def setup_keys(self) -> None:
        """This device's signing key, as ``bucket-chat setup-keys`` leaves it (``make_key``)."""
        make_key(self.home, self.user_id, PASSPHRASE)

    def json(self, *args: str, check: bool = True) -> Any:
        return json.loads(self.run(*args, "--json", check=check).stdout)


def _set_env(values: dict[str, str | None]) -> None:
    """Each of ``values`` into the process's environment, one at a time (None: unset)."""
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextlib.contextmanager
def _stdin(stream: io.StringIO) -> Any:
    saved = sys.stdin
    sys.stdin = stream
    try:
        yield
    finally:
        sys.stdin = saved


def make_key(home: Path, user_id: str, passphrase: str) -> None:
    """The key file ``bucket-chat setup-keys`` leaves in ``home`` (``BUCKET_CHAT_HOME``,
    ``BUCKET_CHAT_KEY_STORE=file``), made in the test's process: at the tests' low
    Argon2id cost (``tests/conftest.py``, ``_cheap_new_key_files``), which the file states,
    so every ``bucket-chat`` the device runs unlocks it in about a millisecond instead of
    0.2-0.45 s of CPU. A key in the wrong place would fail the device's first command
    ("no signing key"). The command itself is tested in tests/unit/cli and by
    ``test_setup_keys_is_a_command_too``."""
    store = EncryptedFileStore(home / "data" / "keys", lambda _user, _creating: passphrase)
    load_or_create_identity(store, user_id, create=True)


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
            dev.setup_keys()
        return dev

    return make


def kinds(doc: dict[str, Any]) -> set[str]:
    return {f["kind"] for f in doc["findings"]}


def segments(store: Path, room: str) -> Sequence[Path]:
    return sorted((store / "rooms" / room / "logs").rglob("*.jsonl"))
