"""The ``bucket-chat`` commands work unchanged on every backend (real emulators).

Credentials reach the SDKs through their own standard environment variables, as a user
pointing the command at MinIO or an emulator would set them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bucket_chat_desktop.cli.main import main
from bucket_chat_desktop.storage.url import StorageLocation

from . import _emulators as emu
from .conftest import Stores


@pytest.fixture
def cli_env(stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return _cli_env(stores, monkeypatch)


def _cli_env(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> str:
    """A CLI-ready storage URL for this test's bucket, credentials in the environment."""
    monkeypatch.setenv("BUCKET_CHAT_KEY_STORE", "file")
    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", "cloud cli test")
    # A first request on a loaded machine may take longer than the 1.2 s a person waits:
    # these tests are about the commands, the deadline is test_hung_network.py's.
    monkeypatch.setenv("BUCKET_CHAT_INTERACTIVE_DEADLINE", "15")
    if stores.kind == "s3":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", stores.secrets["access_key_id"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", stores.secrets["secret_access_key"])
    elif stores.kind == "az":
        monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", emu.AZ_KEY)
    return stores.url()


def _as(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, device: str) -> None:
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / device))


def test_the_commands_on_every_backend(
    cli_env: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = cli_env
    _as(monkeypatch, tmp_path, "alice")
    assert main(["-s", url, "setup-keys", "--user-id", "alice@example.com"]) == 0
    assert (
        main(
            [
                "-s",
                url,
                "create-room",
                "--room-id",
                "team",
                "--name",
                "Team",
                "--user-id",
                "alice@example.com",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "-s",
                url,
                "send",
                "--room-id",
                "team",
                "--user-id",
                "alice@example.com",
                "hello from alice",
            ]
        )
        == 0
    )
    _as(monkeypatch, tmp_path, "bob")
    assert main(["setup-keys", "--user-id", "bob@example.com", "-s", url]) == 0
    assert (
        main(["send", "--room-id", "team", "--user-id", "bob@example.com", "hi alice", "-s", url])
        == 0
    )
    capsys.readouterr()

    assert main(["-s", url, "history", "--room-id", "team", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    bodies = [e["content"].get("body") for e in doc["events"] if e["type"] == "m.room.message"]
    assert bodies == ["hello from alice", "hi alice"]
    assert {e["trust"] for e in doc["events"]} == {"verified"}

    assert main(["-s", url, "verify", "--room-id", "team"]) == 0
    assert "CLEAN" in capsys.readouterr().out
    assert main(["-s", url, "sync", "--room-id", "team"]) == 0
    assert "4 events" in capsys.readouterr().out  # two joins, two messages
    assert main(["-s", url, "rooms"]) == 0
    assert "Team" in capsys.readouterr().out


def test_a_message_stored_whose_marker_is_refused_is_sent(
    stores_for: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Red team: the bucket answered "503 SlowDown" to every write under ``activity/``
    (a busy prefix every member writes to). botocore's back-off on the marker outlasted
    the command's deadline, so ``send`` said "queued, not delivered yet" (exit 3) for
    messages every reader could read, and each later command wrote another marker. A
    message stored is sent; its marker is tried again later, as a hint."""
    from ._stall_proxy import PASS, Rule, StallProxy, http_answer
    from .conftest import StoresMaker

    assert isinstance(stores_for, StoresMaker)
    stores = stores_for("s3")
    assert stores.emulators is not None
    url = _cli_env(stores, monkeypatch)
    monkeypatch.setenv("BUCKET_CHAT_INTERACTIVE_DEADLINE", "4")
    _as(monkeypatch, tmp_path, "alice")
    assert main(["-s", url, "setup-keys", "--user-id", "alice@example.com"]) == 0
    create = ["create-room", "--room-id", "team", "--name", "Team"]
    assert main(["-s", url, *create, "--user-id", "alice@example.com"]) == 0
    proxy = StallProxy(stores.emulators.get("s3").port).start()
    try:
        slow_down = http_answer(
            "503 Slow Down",
            b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code></Error>",
            "application/xml",
        )
        rule = proxy.add(Rule("/activity/", PASS, method="PUT", answer=lambda _r: slow_down))
        loc = stores.location
        # botocore's back-off on the refused marker outlasts the deadline (4 s)
        options = {**loc.options, "endpoint_url": proxy.endpoint, "retries": "10"}
        proxied = StorageLocation(loc.kind, loc.bucket, loc.prefix, options).url()
        capsys.readouterr()
        send = ["send", "--room-id", "team", "--user-id", "alice@example.com", "hello"]
        assert main(["-s", proxied, *send]) == 0
        out, err = capsys.readouterr()
        assert out.startswith("Sent team::") and "queued" not in err, (out, err)
        assert rule.hits  # the marker was tried, and refused
    finally:
        proxy.release()
        proxy.close()
    _as(monkeypatch, tmp_path, "bob")
    assert main(["-s", url, "setup-keys", "--user-id", "bob@example.com"]) == 0
    assert main(["-s", url, "history", "--room-id", "team"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("hello")
