"""The one storage self-check behind Test connection and ``bucket-chat test-storage``, on
real folders (a working one, and folders whose storage misbehaves as a hostile or broken
service would)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bucket_chat_desktop.cli.selftest import storage_selftest
from bucket_chat_desktop.storage.base import PROBE_PREFIX
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.selfcheck import check_storage_use


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
        "list the rooms",
        "create-only write",
        "a retry of the same write is recognised",
        "an existing object is never overwritten",
        "read back",
        "listed",
        "list room 'general'",
        "the service enforces create-only writes",
    ]
    assert all(s.ok for s in result.steps)
    assert not asyncio.run(store.list_objects(PROBE_PREFIX))


@pytest.mark.parametrize(
    ("storage", "failing"),
    [(Overwriting, "an existing object is never overwritten"), (Unlisting, "listed")],
)
def test_a_misbehaving_storage_fails_at_its_step_in_the_app_and_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], storage: type[LocalStorage], failing: str
) -> None:
    store = storage(tmp_path / "store")
    result = asyncio.run(check_storage_use(store))
    assert result.level == "error" and not result.usable
    assert result.steps[-1].label == failing and not result.steps[-1].ok
    assert result.message.startswith(failing)
    assert asyncio.run(storage_selftest(store, "general")) == 1
    out = capsys.readouterr().out
    assert f"FAIL {failing}" in out and "Storage self-test FAILED" in out
