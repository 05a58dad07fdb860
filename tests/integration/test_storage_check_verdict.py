"""One storage self-check, one verdict: ``bucket-chat storage test`` and the app's *Test
connection* against a service that lies to a step of the check (a ``StallProxy`` in
front of the emulator).

Red team rt88: ``storage test`` had a check of its own that printed ``FAIL`` for a step
and then "Storage works", exit 0, deciding only from the overwrite probe: a service whose
listings leave out what it stores (nobody would ever see a message written there), or
whose read of a fresh object answers other bytes, passed it. The app called the same
service an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bucket_chat_desktop.cli.outcome import EXIT_ERROR
from bucket_chat_desktop.storage.url import StorageLocation
from bucket_chat_desktop.sync.selfcheck import LISTED_STEP, READ_STEP, check_storage_use

from ._stall_proxy import Request, http_answer
from .test_hostile_listings import forged, proxied  # noqa: F401 (proxied: a fixture)
from .test_hung_reads import LIST_REQUEST, Proxied
from .test_storage_cmd import cli, env_credentials


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "100000")
    yield home


def _hide_probes(target: Proxied) -> None:
    """Listings of ``.bucket-chat-probe/`` answer empty: the service stores the object
    (reads find it) but never lists it, as a service that lists only part of what it
    holds would leave a room's new segments out."""
    kind = target.stores.kind
    target.proxy.stall(LIST_REQUEST[kind] + r".*bucket-chat-probe", answer=forged(kind))


def _other_bytes_once(target: Proxied) -> None:
    """The first read of the check's probe answers other bytes than were written."""

    def answer(request: Request) -> bytes:
        return http_answer("200 OK", b"someone else's bytes", "application/octet-stream")

    # the check's probe: .bucket-chat-probe/check-<16 hex> (not create-only-…)
    target.proxy.stall(r"bucket-chat-probe/check-[0-9a-f]{16}$", method="GET", answer=answer)


LIES = pytest.mark.parametrize(
    ("lie", "failed_step", "why"),
    [
        (_hide_probes, LISTED_STEP, "the test object was written but is not listed"),
        (_other_bytes_once, READ_STEP, "the test object read back with different contents"),
    ],
    ids=["not-listed", "read-back-other-bytes"],
)


@pytest.mark.parametrize("cloud_kind", ["s3"], indirect=True)
@LIES
def test_storage_test_fails_a_service_that_lies_to_a_step(
    proxied: Proxied,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    lie: object,
    failed_step: str,
    why: str,
) -> None:
    env_credentials(proxied.stores, monkeypatch)
    loc = proxied.stores.location
    opts = {**loc.options, "endpoint_url": proxied.proxy.endpoint}
    url = StorageLocation(loc.kind, loc.bucket, loc.prefix, opts).url()
    lie(proxied)  # type: ignore[operator]
    status, out, err = cli(capsys, "storage", "test", url)
    assert status == EXIT_ERROR, f"exit {status}\n{out}{err}"
    assert f"FAIL {failed_step} ({why})" in out, out
    assert "Storage works" not in out
    assert out.rstrip().splitlines()[-1] == f"Storage test FAILED: {failed_step}: {why}"


@pytest.mark.parametrize("cloud_kind", ["s3"], indirect=True)
@LIES
async def test_the_apps_test_connection_gives_the_same_verdict(
    proxied: Proxied,  # noqa: F811
    lie: object,
    failed_step: str,
    why: str,
) -> None:
    lie(proxied)  # type: ignore[operator]
    result = await check_storage_use(proxied.storage())
    assert result.level == "error" and not result.usable
    assert result.message == f"{failed_step}: {why}"
    assert result.steps[-1].label == failed_step and not result.steps[-1].ok
