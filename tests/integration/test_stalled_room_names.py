# ruff: noqa: F811 - ``proxied`` is test_hung_reads' fixture, named by the tests
"""One room's metadata whose read stalls (red team rt95): the answer's head and 10 bytes
of ``rooms/bravo/metadata.json``, then nothing (a first byte later than the 1.2 s
interactive deadline does the same). The listing of ``rooms/`` and the other rooms'
metadata answer at once.

Each room's reads are held to the deadline on their own: "alpha" and "charlie" keep
their names, "bravo" alone is said to have got no answer (``RoomSummary.passing``). The
join dialog's batch (``ChatClient.summarise_rooms``) gave every room "Could not be read:
no answer", and ``bucket-chat rooms`` printed no room at all, exit 0."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.storage.url import StorageLocation
from bucket_chat_desktop.sync.client import ChatClient
from bucket_chat_desktop.sync.writer import RoomWriter

from . import _emulators as emu
from ._stall_proxy import HALFWAY
from .test_hung_reads import GUARD, Proxied, proxied  # noqa: F401 (proxied: a fixture)
from .test_storage_cmd import cli, env_credentials

GA = pytest.mark.parametrize("cloud_kind", ["gs", "az"], indirect=True)
ROOMS = (("alpha", "Alpha team"), ("bravo", "Bravo team"), ("charlie", "Charlie"))
IDS = [r for r, _ in ROOMS]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _three_rooms(proxied: Proxied) -> None:
    real = proxied.stores.new()
    key = SigningKey(b"\x07" * 32)
    for room, name in ROOMS:
        await RoomWriter(real, room, "alice@example.com", key).write_metadata(name, _now())


def _stall_bravo(proxied: Proxied) -> None:
    """Room bravo's metadata: the answer's head and 10 bytes, then nothing."""
    kind = proxied.stores.kind
    meta = r"rooms%2Fbravo%2Fmetadata\.json" if kind == "gs" else r"/rooms/bravo/metadata\.json"
    proxied.proxy.stall(meta, HALFWAY, method="GET", keep=10)


@GA
async def test_one_stalled_room_name_leaves_the_batch_its_other_names(
    proxied: Proxied, tmp_path: Path
) -> None:
    """``ChatClient.summarise_rooms``, as the join dialog asks for the rooms in view."""
    await _three_rooms(proxied)
    _stall_bravo(proxied)
    try:
        async with ChatClient.session(
            proxied.storage(), outbox=False, data_dir=tmp_path / "data"
        ) as client:
            read = await asyncio.wait_for(
                client.summarise_rooms(client.session_storage, IDS), GUARD
            )
    finally:
        proxied.proxy.release()
    rooms = {r.room_id: r for r in read}
    assert [r.room_id for r in read] == IDS
    assert rooms["alpha"].name == "Alpha team" and rooms["charlie"].name == "Charlie", read
    assert not rooms["alpha"].passing and not rooms["alpha"].problem
    bravo = rooms["bravo"]
    assert bravo.name is None and bravo.passing and "no answer from" in bravo.problem


@GA
def test_the_rooms_command_lists_every_room_and_says_which_name_got_no_answer(
    proxied: Proxied,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """``bucket-chat rooms``: the listing answered, and so did alpha's and charlie's
    metadata; bravo's stalls. Every listed room is printed, bravo with why it has no
    name, and stderr says it (exit 0, as for a listing from this device's copy)."""
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "100000")
    env_credentials(proxied.stores, monkeypatch)
    asyncio.run(_three_rooms(proxied))
    _stall_bravo(proxied)
    loc = proxied.stores.location
    endpoint = proxied.proxy.endpoint + (f"/{emu.AZ_ACCOUNT}" if loc.kind == "az" else "")
    options = {**loc.options, "endpoint_url": endpoint}
    url = StorageLocation(loc.kind, loc.bucket, loc.prefix, options).url()
    try:
        status, out, err = cli(capsys, "rooms", "-s", url)
    finally:
        proxied.proxy.release()
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert set(lines) == set(IDS), f"exit {status}\nstdout: {out!r}\nstderr: {err!r}"
    assert "Alpha team" in lines["alpha"] and "Charlie" in lines["charlie"]
    assert lines["bravo"].split(None, 1)[1] == "(name not read now: no answer in time)"
    assert status == 0
    assert "did not answer in time for the name of 1 room" in err


MANY = [f"room{n:02d}" for n in range(24)]


@GA
def test_the_rooms_command_asks_one_wave_of_names_of_a_storage_that_stopped_answering(
    proxied: Proxied,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """24 rooms; the listing answers, then no metadata read does (review rev1). Each
    room waited its own deadline, eight at a time: 24 reads asked, three deadlines in a
    row (1,000 rooms ≈ 150 s). The rooms share one: the eight asked first get no
    answer, the others are not asked, and every room is printed (exit 0)."""
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "100000")
    env_credentials(proxied.stores, monkeypatch)

    async def seed() -> None:
        real = proxied.stores.new()
        key = SigningKey(b"\x07" * 32)
        for room in MANY:
            await RoomWriter(real, room, "alice@example.com", key).write_metadata(room, _now())

    asyncio.run(seed())
    kind = proxied.stores.kind
    meta = (
        r"rooms%2Froom[0-9]+%2Fmetadata\.json"
        if kind == "gs"
        else r"/rooms/room[0-9]+/metadata\.json"
    )
    rule = proxied.proxy.stall(meta, method="GET")
    loc = proxied.stores.location
    endpoint = proxied.proxy.endpoint + (f"/{emu.AZ_ACCOUNT}" if loc.kind == "az" else "")
    options = {**loc.options, "endpoint_url": endpoint}
    url = StorageLocation(loc.kind, loc.bucket, loc.prefix, options).url()
    try:
        status, out, err = cli(capsys, "rooms", "-s", url)
    finally:
        proxied.proxy.release()
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert set(lines) == set(MANY), f"exit {status}\nstdout: {out!r}\nstderr: {err!r}"
    assert all("(name not read now: no answer in time)" in line for line in lines.values())
    assert status == 0
    assert "did not answer in time for the name of 24 rooms" in err
    assert len({r.target for r in rule.hits}) == 8, [r.target for r in rule.hits]
