"""The real app against a storage that hangs: fake-gcs-server frozen with SIGSTOP keeps its
connections open and answers nothing, and the storage's own timeout is the patient 30 s.

The status line must say the storage is "not answering" (the engine's watchdog, not a
refused connection nor the 30 s timeout), per storage, while the message written meanwhile
stays in the outbox as "sending"; once the emulator answers again the line clears and the
message is delivered once. How soon "not answering" shows is measured by
``benchmarks/hung_network.py``; here the wait is only bounded.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import shot
from desk import ALICE, Desk, settings_for
from test_app_flows import (
    _load_emulators,
    bob,
    type_and_send,
)

__all__ = ["bob"]  # a fixture used by name


@dataclass
class Gcs:
    process: subprocess.Popen[bytes]
    endpoint: str

    def bucket(self) -> str:
        name = f"bc-hung-{uuid.uuid4().hex[:12]}"
        request = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project=test",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10):
            pass
        # The patient defaults of a real set-up: only the watchdog can tell quickly.
        return f"gs://{name}/team?endpoint_url={self.endpoint}&timeout=30&retries=1"


@pytest.fixture(scope="module")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gcs]:
    emulators = _load_emulators()
    proc = emulators.gcs_emulator(tmp_path_factory.mktemp("gcs"))
    proc.start()
    try:
        proc.wait_ready()
        assert proc.process is not None
        yield Gcs(proc.process, proc.endpoint)
    finally:
        if proc.process is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.process.send_signal(signal.SIGCONT)
        proc.stop()


def test_a_hung_storage_shows_not_answering_and_clears_when_it_answers(
    qtbot: Any, launch: Callable[..., Desk], gcs: Gcs, bob: Any, tmp_path: Path
) -> None:
    spec = gcs.bucket()
    bob.create_room(qtbot, spec, "falcon", "Project Falcon")
    desk = launch(settings_for(spec, ["falcon"], name="Team bucket"))
    desk.wait_loaded("falcon", timeout=20_000)
    window = desk.window
    type_and_send(window, "Before the freeze")
    desk.wait_row("falcon", "Before the freeze", timeout=20_000)
    assert "All storages reachable" in window.status.text()

    gcs.process.send_signal(signal.SIGSTOP)  # connections stay open; nothing answers
    try:
        type_and_send(window, "Written while it hangs")

        def echoes() -> list[str | None]:
            return [r.echo for r in desk.rows("falcon") if r.body == "Written while it hangs"]

        qtbot.waitUntil(lambda: echoes() == ["sending"], timeout=5_000)  # in the outbox
        qtbot.waitUntil(lambda: "not answering" in window.status.text(), timeout=20_000)
        assert "Team bucket not answering since" in window.status.text()
        assert "Offline" not in window.status.text()  # it did not refuse: it hangs
        assert window.offline.isVisible()
        assert window.offline.text().startswith("Team bucket is not answering since")
        assert not desk.item("falcon").online
        assert echoes() == ["sending"]
        shot(window, "hung-storage-not-answering", tmp_path)
    finally:
        gcs.process.send_signal(signal.SIGCONT)

    row = desk.wait_row("falcon", "Written while it hangs", timeout=40_000)
    assert row.trust == "verified"
    qtbot.waitUntil(lambda: "All storages reachable" in window.status.text(), timeout=15_000)
    assert not window.offline.isVisible()
    assert desk.item("falcon").online
    bodies = [r.body for r in desk.rows("falcon") if r.sender_id == ALICE and r.kind == "text"]
    assert bodies == ["Before the freeze", "Written while it hangs"]
