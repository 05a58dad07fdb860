"""The one storage self-check behind Test connection and ``bucket-chat test-storage``, on
real folders (a working one, and folders whose storage misbehaves as a hostile or broken
service would)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bucket_chat_desktop.cli import main as cli_main
from bucket_chat_desktop.cli.outcome import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK
from bucket_chat_desktop.cli.selftest import CHECK_EXIT_STATUS, check_status, storage_selftest
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, PROBE_PREFIX, StorageError
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.selfcheck import (
    LISTED_STEP,
    READ_STEP,
    CheckResult,
    CheckStep,
    check_storage_use,
)


class Overwriting(LocalStorage):
    """Ignores create-only: a second write with other bytes replaces the object."""

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        if path.startswith(PROBE_PREFIX) and await self.exists(path):
            if await self.get(path) == data:
                return False
            await self.remove_probe(path)
        return await super().put_if_absent(path, data)


class Unlisting(LocalStorage):
    """Writes and reads, but its listings miss what was just written."""

    async def list_objects(self, prefix: str):  # type: ignore[no-untyped-def]
        return [o for o in await super().list_objects(prefix) if PROBE_PREFIX not in o.path]


def test_a_working_folder_passes_every_step_and_leaves_no_probe(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    result = asyncio.run(check_storage_use(store, room_id="general"))
    assert result.level == "ok" and result.usable, result
    assert [s.label for s in result.steps] == [
        "reach the storage and list its rooms",
        "create-only write",
        "read back",
        "a retry of the same write is recognised",
        "an existing object is never overwritten",
        "the new object is listed",
        "list room 'general'",
        "the service enforces create-only writes",
    ]
    assert all(s.ok for s in result.steps)
    assert not asyncio.run(store.list_objects(PROBE_PREFIX))


@pytest.mark.parametrize(
    ("storage", "failing"),
    [(Overwriting, "an existing object is never overwritten"), (Unlisting, LISTED_STEP)],
)
def test_a_misbehaving_storage_fails_at_its_step_in_the_app_and_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], storage: type[LocalStorage], failing: str
) -> None:
    store = storage(tmp_path / "store")
    result = asyncio.run(check_storage_use(store))
    assert result.level == "error" and not result.usable
    assert result.steps[-1].label == failing and not result.steps[-1].ok
    assert result.message.startswith(failing)
    assert asyncio.run(storage_selftest(store, "general")) == EXIT_ERROR
    out = capsys.readouterr().out
    assert f"FAIL {failing}" in out and "Storage test FAILED" in out
    assert "Storage works" not in out


class Unreadable(LocalStorage):
    """Writes, but a read of what it wrote fails with a storage error."""

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        if path.startswith(PROBE_PREFIX):
            raise StorageError("the service refused the read (AccessDenied)")
        return await super().get(path, max_bytes=max_bytes)


def test_a_storage_error_fails_the_step_it_ended(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error is that step's FAIL line, not a step that never ran or a bare message."""
    store = Unreadable(tmp_path / "store")
    result = asyncio.run(check_storage_use(store))
    assert result.level == "error"
    assert result.steps[-1] == CheckStep(
        READ_STEP, False, "the service refused the read (AccessDenied)"
    )
    assert [s.ok for s in result.steps] == [True, True, False]
    assert asyncio.run(storage_selftest(store)) == EXIT_ERROR
    out = capsys.readouterr().out
    assert "FAIL read back (the service refused the read (AccessDenied))" in out
    assert not asyncio.run(store.list_objects(PROBE_PREFIX))  # the probe is removed


def test_a_missing_bucket_fails_the_first_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Missing(LocalStorage):
        async def list_dirs(self, prefix: str) -> list[str]:
            raise StorageError("bucket bc-not-there does not exist")

    result = asyncio.run(check_storage_use(Missing(tmp_path / "store")))
    assert result.steps == (
        CheckStep(
            "reach the storage and list its rooms", False, "bucket bc-not-there does not exist"
        ),
    )


@pytest.mark.parametrize(
    ("level", "status"), [("ok", EXIT_OK), ("warning", EXIT_FINDINGS), ("error", EXIT_ERROR)]
)
def test_the_exit_status_is_the_verdict(level: str, status: int) -> None:
    """Any failed step fails the verdict; the warning (works, weaker guarantees) is not
    "works" either."""
    assert check_status(CheckResult(level, "")) == status


def test_the_help_says_what_exit_status_1_means() -> None:
    """A service that lets a write over the test object through fails the check (2,
    ``OVERWRITE_STEP``); 1 is only the separate overwrite probe (``probe_create_only``)
    got through, or the queue does not answer. The help said 1 was a service that "does
    not refuse overwrites"."""
    for text in (CHECK_EXIT_STATUS, " ".join((cli_main.__doc__ or "").split())):
        assert "does not refuse overwrites" not in text
        assert "only the separate overwrite probe" in text, text
        assert "a write that got through over the test object" in text, text
