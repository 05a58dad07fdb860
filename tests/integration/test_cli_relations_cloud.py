"""Two users reply, react, edit and delete through the installed ``bucket-chat`` on the
S3 emulator; each user after a restart and a fresh device see the same result (the flow
of tests/e2e/relations_flow.py, which runs it on a local folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e.conftest import Device  # tests/ is on sys.path (rootdir-relative packages)
from e2e.relations_flow import ALICE, BOB, two_users_relate

from .conftest import StoresMaker


def test_two_users_relate_on_s3(
    stores_for: StoresMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = stores_for("s3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", stores.secrets["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", stores.secrets["secret_access_key"])
    # A loaded machine may answer a first request slower than a person waits: this test
    # is about relations, the deadline is test_hung_network.py's.
    monkeypatch.setenv("BUCKET_CHAT_INTERACTIVE_DEADLINE", "15")
    url: Any = stores.url()  # Device runs ``bucket-chat -s <url>``

    def device(name: str, user_id: str) -> Device:
        dev = Device(tmp_path / "devices" / name, url, user_id)
        dev.home.mkdir(parents=True)
        dev.setup_keys()
        return dev

    two_users_relate(device("alice", ALICE), device("bob", BOB), device("fresh", "x@example.com"))
