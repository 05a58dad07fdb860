"""``bucket-chat storage add|list|test|remove`` against the emulators, as a user runs it.

Tests marked ``keyring`` keep keys in a real Secret Service (run inside
``tests/with-keyring.sh``, as ``tests/run.sh`` does); elsewhere they are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.core
import pytest

from bucket_chat_desktop.cli.outcome import EXIT_ERROR, EXIT_FINDINGS
from bucket_chat_desktop.cli.selftest import storage_selftest
from bucket_chat_desktop.cli.storage_cmd import add_storage_parser, cmd_storage
from bucket_chat_desktop.storage import StorageError
from bucket_chat_desktop.storage.profiles import KEYRING_SERVICE, ProfileStore
from bucket_chat_desktop.storage.s3 import S3Storage

from . import _emulators as emu
from .conftest import Stores, StoresMaker

SECRET_SERVICE = os.environ.get("BUCKET_CHAT_TEST_SECRET_SERVICE") == "1"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``bucket-chat ARGV``: through the real entry point once ``storage`` is wired
    into it, until then through the same parser and error handling."""
    from bucket_chat_desktop.cli import main as cli_main

    if "storage" in getattr(cli_main, "COMMANDS", {}):
        status = cli_main.main(list(argv))
    else:
        parser = argparse.ArgumentParser(prog="bucket-chat")
        parser.add_argument("-s", "--storage", default=None)
        sub = parser.add_subparsers(dest="command")

        def common(p: argparse.ArgumentParser) -> None:
            p.add_argument("-s", "--storage", default=argparse.SUPPRESS)

        add_storage_parser(sub, common)
        args = parser.parse_args(list(argv))
        try:
            status = asyncio.run(cmd_storage(args))
        except StorageError as exc:
            print(f"bucket-chat: {exc}", file=__import__("sys").stderr)
            status = 2
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(home))
    # the command's lines read whole (a pipe's are cut at 80 columns: ``format.fit``)
    monkeypatch.setenv("COLUMNS", "100000")
    return home


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """keyring's fail backend, as on a headless machine without a Secret Service."""
    before = os.environ.get("PYTHON_KEYRING_BACKEND")
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    keyring.core.init_backend()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHON_KEYRING_BACKEND", None)
        else:
            os.environ["PYTHON_KEYRING_BACKEND"] = before
        keyring.core.init_backend()


def env_credentials(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDKs' standard environment variables, as a user would set them."""
    if stores.kind == "s3":
        keys = stores.emulators.s3_admin  # type: ignore[union-attr]
        assert keys is not None
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys.access_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys.secret_access_key)
    elif stores.kind == "az":
        endpoint = stores.location.options["endpoint_url"].rsplit("/", 1)[0]
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", emu.az_connection_string(endpoint))


def every_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


# -- add / list / remove ---------------------------------------------------------------------


def test_add_list_remove(capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path) -> None:
    status, out, err = cli(
        capsys,
        "storage",
        "add",
        "work",
        "s3://team-bucket/chat",
        "--endpoint-url",
        "https://minio.example.com:9000",
        "--region",
        "eu-central-1",
        "--addressing-style",
        "path",
    )
    assert status == 0, err
    assert "Saved storage 'work'" in out and "SDK defaults" in out
    status, out, err = cli(capsys, "storage", "add", "home", str(tmp_path / "folder"))
    assert status == 0, err
    doc = json.loads((home / "config" / "storages.json").read_text())
    assert doc["storages"]["work"] == {
        "url": "s3://team-bucket/chat",
        "options": {
            "addressing_style": "path",
            "endpoint_url": "https://minio.example.com:9000",
            "region": "eu-central-1",
        },
        "secrets": [],
    }
    status, out, _ = cli(capsys, "storage", "list")
    assert status == 0
    assert out.index("home") < out.index("work") and "minio.example.com" in out
    status, out, _ = cli(capsys, "storage", "list", "--json")
    assert set(json.loads(out)) == {"home", "work"}
    status, out, err = cli(capsys, "storage", "add", "work", "gs://other")
    assert status == 2 and "exists" in err and "storage remove work" in err
    status, out, _ = cli(capsys, "storage", "remove", "work")
    assert status == 0 and "Removed storage 'work'" in out
    status, _, err = cli(capsys, "storage", "remove", "work")
    assert status == 2 and "no storage named 'work'" in err
    assert [p.name for p in ProfileStore().list()] == ["home"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bad name!", "s3://bkt"], "storage name"),
        (["w", "gs://bucket", "--region", "x"], "--region does not apply to gs://"),
        (["w", "/some/folder", "--endpoint-url", "http://x"], "does not apply to a folder"),
        (["w", "s3://bkt?secret_access_key=abc"], "must not be written in a storage URL"),
        (["w", "s3://bkt?endpoint_url=ftp://x"], "endpoint_url must look like"),
        (["w", "s3://bkt", "--endpoint-url", "http://a", "--anonymous"], None),
        (["w", "s3://bkt?region=x", "--region", "y"], "given twice"),
        (["w", "ftp://host/x"], "unknown storage URL scheme"),
        (["w", "gs://bkt", "--account-key-env", "HOME"], "take no account key"),
        (["w", "s3://bkt", "--secret-access-key-env", "NOT_SET_ANYWHERE"], "is empty"),
    ],
)
def test_add_refuses_what_cannot_work(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str | None
) -> None:
    status, _, err = cli(capsys, "storage", "add", *argv)
    if message is None:
        assert status == 0, err
        return
    assert status == 2, err
    assert message in err and err.count("\n") == 1


def test_keys_are_never_written_to_files_without_a_keyring(
    capsys: pytest.CaptureFixture[str],
    home: Path,
    no_keyring: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_SECRET", "wJalrXUtnFEMI-very-secret")
    status, _, err = cli(
        capsys,
        "storage",
        "add",
        "work",
        "s3://bucket",
        "--access-key-id",
        "AKIAEXAMPLEKEYID0000",
        "--secret-access-key-env",
        "MY_SECRET",
    )
    assert status == 2
    assert "selects no keyring" in err and "environment variables" in err
    assert not (home / "config" / "storages.json").exists()
    assert "very-secret" not in every_text(home) and "AKIAEXAMPLE" not in every_text(home)
    # Without keys the profile is fine: the SDK's own chain supplies them.
    status, _, err = cli(capsys, "storage", "add", "work", "s3://bucket")
    assert status == 0, err


# -- test --------------------------------------------------------------------------------------


def test_storage_test_on_each_backend(
    capsys: pytest.CaptureFixture[str],
    storage_kind: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stores: Stores = request.getfixturevalue("stores")
    env_credentials(stores, monkeypatch)
    status, out, err = cli(capsys, "storage", "test", stores.url())
    assert status == 0, out + err
    assert "FAIL" not in out and "Storage works" in out
    assert out.count("  ok   ") == 7
    if storage_kind != "local":
        assert {"s3": "If-None-Match", "gs": "ifGenerationMatch=0", "az": "If-None-Match"}[
            storage_kind
        ] in out
    # The same through a named storage, and with -s.
    status, _, err = cli(capsys, "storage", "add", "team", stores.url())
    assert status == 0, err
    status, out, err = cli(capsys, "storage", "test", "team")
    assert status == 0 and "Storage works" in out, out + err
    status, out, err = cli(capsys, "storage", "test", "-s", "team")
    assert status == 0 and "Storage works" in out, out + err


def test_storage_test_names_the_problem(
    capsys: pytest.CaptureFixture[str], stores_for: StoresMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = stores_for("s3")
    env_credentials(stores, monkeypatch)
    endpoint = stores.location.options["endpoint_url"]
    missing = f"s3://bc-not-there?endpoint_url={endpoint}&region={emu.S3_REGION}"
    status, out, _ = cli(capsys, "storage", "test", missing)
    assert status == 2
    assert "FAIL reach the storage" in out and "bucket bc-not-there does not exist" in out
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    status, out, _ = cli(capsys, "storage", "test", stores.url())
    assert status == 2 and "rejected the credentials (SignatureDoesNotMatch)" in out
    closed = f"s3://bkt?endpoint_url=http://127.0.0.1:{emu.closed_port()}&retries=1"
    status, out, _ = cli(capsys, "storage", "test", closed)
    assert status == 2 and "refused the connection" in out


class OverwritingS3Storage(S3Storage):
    """Our S3 storage with the precondition left out, standing in for a service (or an old
    S3-compatible server) that ignores If-None-Match."""

    async def _create(self, fs: Any, target: str, data: bytes) -> None:
        await fs._pipe_file(target, data)


async def test_the_probe_says_when_overwrites_get_through(
    stores_for: StoresMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    stores = stores_for("s3")
    store = OverwritingS3Storage(stores.location, stores.secrets)
    stores.opened.append(store)
    honoured, message = await store.probe_create_only()
    assert honoured is False
    assert "S3 Object Lock" in message and "docs/STORAGE.md" in message
    assert await store.list_objects(".bucket-chat-probe/") == []
    # The app's Test connection and the command line call it an error alike (rt88):
    # its retry of a write is written again.
    assert await storage_selftest(store) == EXIT_ERROR
    out = capsys.readouterr().out
    assert "FAIL a retry of the same write is recognised (it was written again" in out
    assert "docs/STORAGE.md says how to make the bucket refuse overwrites" in out
    assert "Storage works" not in out and "Storage test FAILED" in out


# -- keys in a real OS keyring -----------------------------------------------------------------


@pytest.mark.keyring
@pytest.mark.skipif(not SECRET_SERVICE, reason="needs a Secret Service: run in with-keyring.sh")
def test_keys_live_in_the_os_keyring(
    capsys: pytest.CaptureFixture[str],
    home: Path,
    stores_for: StoresMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3 = stores_for("s3")
    az = stores_for("az")
    admin = s3.emulators.s3_admin  # type: ignore[union-attr]
    assert admin is not None
    monkeypatch.setenv("BC_TEST_S3_SECRET", admin.secret_access_key)
    monkeypatch.setenv("BC_TEST_AZ_KEY", emu.AZ_KEY)
    status, out, err = cli(
        capsys,
        "storage",
        "add",
        "s3work",
        s3.url(),
        "--access-key-id",
        admin.access_key_id,
        "--secret-access-key-env",
        "BC_TEST_S3_SECRET",
    )
    assert status == 0, err
    assert "OS keyring (access_key_id, secret_access_key)" in out
    status, out, err = cli(
        capsys, "storage", "add", "azwork", az.url(), "--account-key-env", "BC_TEST_AZ_KEY"
    )
    assert status == 0, err
    files = every_text(home)
    assert admin.secret_access_key not in files and admin.access_key_id not in files
    assert emu.AZ_KEY not in files
    stored: Any = keyring.get_password(KEYRING_SERVICE, "s3work")
    assert json.loads(stored)["secret_access_key"] == admin.secret_access_key
    # The keys come from the keyring: nothing in the environment.
    monkeypatch.delenv("BC_TEST_S3_SECRET")
    monkeypatch.delenv("BC_TEST_AZ_KEY")
    for name in ("s3work", "azwork"):
        status, out, err = cli(capsys, "storage", "test", name)
        assert status == 0 and "Storage works" in out, out + err
    status, out, _ = cli(capsys, "storage", "remove", "s3work")
    assert status == 0 and "keys in the OS keyring" in out
    assert keyring.get_password(KEYRING_SERVICE, "s3work") is None
    status, _, _ = cli(capsys, "storage", "remove", "azwork")
    assert keyring.get_password(KEYRING_SERVICE, "azwork") is None


def test_a_storage_with_a_queue_is_saved_listed_and_tested(
    capsys: pytest.CaptureFixture[str], stores_for: StoresMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = stores_for("s3")
    env_credentials(stores, monkeypatch)
    emulators = stores.emulators
    assert emulators is not None and emulators.s3_admin is not None
    endpoint = stores.location.options["endpoint_url"]
    queue = emu.s3_notify_queue(endpoint, emulators.s3_admin, stores.bucket, "team/rooms/")
    url = stores.url()
    status, out, err = cli(capsys, "storage", "add", "pushed", url, "--queue-url", queue)
    assert status == 0, err
    status, out, _ = cli(capsys, "storage", "list")
    assert f"notifications from: {queue}" in out
    status, out, err = cli(capsys, "storage", "test", "pushed")
    assert status == 0, out + err
    assert f"ok   the queue of the bucket's notifications answers (queue {queue} (1 " in out
    assert "(1 message(s) waiting))" in out  # S3's test event: 'storage test' only looks
    # The queue is gone: the bucket still works, and the test says what will happen.
    emu.s3_client(endpoint, emulators.s3_admin, "sqs").delete_queue(QueueUrl=queue)
    status, out, err = cli(capsys, "storage", "test", "pushed")
    # The bucket works, with weaker guarantees: exit 1, as in the app (a warning).
    assert status == EXIT_FINDINGS and "FAIL the queue of the bucket's notifications" in out
    assert "the queue does not exist" in out and "will poll the bucket instead" in out
    assert "Storage works" not in out
    status, _, err = cli(capsys, "storage", "add", "bad", url, "--queue-url", "ftp://x/y")
    assert status == 2 and "queue_url must look like https://host/account/queue" in err
    status, _, err = cli(capsys, "storage", "add", "gcs", "gs://bkt", "--queue-url", queue)
    assert status == 2 and "--queue-url does not apply to gs:// storages" in err
