"""Commands against a storage that stops answering (a real local folder whose reads hang,
as a frozen service's do): each gives the command line's usual "no answer" message within
the interactive deadline, or answers from this device's index, and never hangs.

Nothing is timed: the storage here never answers (its calls sleep an hour, past each
test's timeout), so a command that ends has given up; the message names the deadline it
gave up on (``within 0.5 s``), not the storage's own timeouts and retries."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_run import Result, run_main
from nacl.signing import SigningKey

from bucket_chat_desktop.cli import main as cli_main
from bucket_chat_desktop.protocol.metadata import build_metadata
from bucket_chat_desktop.storage.base import Level, ObjectInfo
from bucket_chat_desktop.storage.local import LocalStorage

PASSPHRASE = "correct horse battery staple"
ALICE = "alice@example.com"
ROOM = "quiet-room"
DEADLINE = 0.5  # seconds: the smallest interactive deadline there is (DEADLINE_RANGE)
KEY = "A" * 43 + "="  # some other device's public key (base64 of 32 bytes)


class Hung(LocalStorage):
    """The folder, except that every read waits for an answer that never comes."""

    async def exists(self, path: str) -> bool:
        await asyncio.sleep(3600)
        raise AssertionError("never answered")

    async def list_level(self, prefix: str) -> Level:
        await asyncio.sleep(3600)
        raise AssertionError("never answered")

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        await asyncio.sleep(3600)
        raise AssertionError("never answered")

    async def get(self, path: str, **kw: Any) -> bytes:
        await asyncio.sleep(3600)
        raise AssertionError("never answered")


class WritesHang(LocalStorage):
    """The folder answers every read; a write waits for an answer that never comes."""

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        await asyncio.sleep(3600)
        raise AssertionError("never answered")


class Frozen(Hung):
    """Nothing answers: reads and writes alike wait for ever (a frozen service)."""

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        await asyncio.sleep(3600)
        raise AssertionError("never answered")


Cli = Callable[..., Result]


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """``cli(*args, hung=...)``: ``bucket-chat`` on this device, the storage answering or
    not; returns the result."""
    monkeypatch.setenv("BUCKET_CHAT_KEY_STORE", "file")
    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / "device"))
    monkeypatch.setenv("BUCKET_CHAT_INTERACTIVE_DEADLINE", str(DEADLINE))
    monkeypatch.delenv("BUCKET_CHAT_STORAGE", raising=False)
    store = tmp_path / "shared"
    store.mkdir()

    def call(
        *args: str, hung: bool = False, writes_hang: bool = False, frozen: bool = False
    ) -> Result:
        kind = Frozen if frozen else Hung if hung else WritesHang if writes_hang else LocalStorage
        opened = kind(store)
        monkeypatch.setattr(cli_main, "open_storage", lambda spec: opened)
        return run_main(capsys, ["-s", str(store), *args])

    return call


def no_answer_in_time(r: Result) -> None:
    assert r.code == 2, r
    assert "no answer from" in r.err and "nothing was done" in r.err, r
    assert r.err.count("\n") == 1, r  # one line
    assert f"within {DEADLINE:g} s" in r.err, r  # the interactive deadline, named


@pytest.mark.timeout(30)
def test_accept_device_and_chat_give_up_within_the_deadline(cli: Cli) -> None:
    assert cli("setup-keys", "--user-id", ALICE).code == 0
    r = cli("accept-device", "--room-id", ROOM, "--user-id", ALICE, "--key", KEY, hung=True)
    no_answer_in_time(r)
    r = cli("chat", "--room-id", ROOM, "--user-id", ALICE, hung=True)
    no_answer_in_time(r)
    assert "Created room" not in r.out  # nothing was created on a guess


@pytest.mark.timeout(30)
def test_chat_in_a_room_read_before_starts_from_this_devices_copy(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frozen service does not keep a known room's chat from starting: what this device
    verified is shown within the deadline, with a note, and what is typed is queued."""
    assert cli("setup-keys", "--user-id", ALICE).code == 0
    r = cli("create-room", "--room-id", ROOM, "--name", "Quiet", "--user-id", ALICE)
    assert r.code == 0, r
    assert cli("send", "--room-id", ROOM, "--user-id", ALICE, "said before").code == 0
    assert cli("history", "--room-id", ROOM).code == 0  # read once: the index knows it
    monkeypatch.setattr("sys.stdin", io.StringIO("typed while frozen\n"))
    r = cli("chat", "--room-id", ROOM, "--user-id", ALICE, hung=True)
    assert r.code == 0, r
    assert "said before" in r.out, r
    # the name this device checked when it first read the room, not "(no metadata)"
    assert r.out.startswith(f"# Quiet (signed by {ALICE})"), r
    assert "the storage does not answer (no answer from" in r.out, r
    assert "queued until it answers" in r.out, r
    assert f"within {DEADLINE:g} s" in r.out, r  # the interactive deadline, named
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    r = cli("history", "--room-id", ROOM)  # answering again: the queued line went out
    assert r.code == 0 and "typed while frozen" in r.out, r


@pytest.mark.timeout(30)
def test_rooms_answers_from_this_devices_index_when_the_storage_does_not(cli: Cli) -> None:
    assert cli("setup-keys", "--user-id", ALICE).code == 0
    r = cli("create-room", "--room-id", ROOM, "--name", "Quiet", "--user-id", ALICE)
    assert r.code == 0, r
    assert cli("history", "--room-id", ROOM).code == 0  # read once: the index knows it
    r = cli("rooms", hung=True)
    assert r.code == 0, r
    assert "the storage did not answer (no answer from" in r.err, r
    assert "last read" in r.err and "never completely" not in r.err, r
    assert r.out.split() == [ROOM, "Quiet"]
    assert f"within {DEADLINE:g} s" in r.err, r  # the interactive deadline, named
    r = cli("rooms")  # answering: the storage's own listing, with who claims to have made it
    assert r.code == 0 and r.err == "", r
    assert r.out.startswith(ROOM) and f"claims to be created by {ALICE}" in r.out


def gave_up_creating(r: Result) -> None:
    assert r.code == 2, r
    assert "cannot create room" in r.err and "no answer from" in r.err, r
    assert "bucket-chat rooms" in r.err, r  # where to see whether it was made after all
    assert r.err.count("\n") == 1, r  # one line
    assert f"within {DEADLINE:g} s" in r.err, r  # the interactive deadline, named
    assert "Created room" not in r.out, r


@pytest.mark.timeout(30)
def test_creating_a_room_gives_up_within_the_deadline(cli: Cli) -> None:
    """Red team: a storage that stopped answering kept ``create-room`` (and ``chat`` making
    a room nobody created yet) waiting for the storage's own timeouts and retries (90 s
    with the defaults; a service holding the connection open: for ever), without a word."""
    assert cli("setup-keys", "--user-id", ALICE).code == 0
    create = ("create-room", "--room-id", ROOM, "--name", "Quiet", "--user-id", ALICE)
    gave_up_creating(cli(*create, writes_hang=True))  # the metadata's write: no answer
    gave_up_creating(cli("chat", "--room-id", ROOM, "--user-id", ALICE, writes_hang=True))


@pytest.mark.timeout(30)
def test_sync_gives_up_within_the_deadline_with_this_devices_copy_and_keeps_the_outbox(
    cli: Cli, tmp_path: Path
) -> None:
    """Red team: ``sync`` waited for the storage's own timeouts and retries (90 s with
    the defaults; for ever with a service holding the connection open), without a word.
    Now: this device's copy's counts and verdicts, one line saying which storage has not
    answered since when, exit 4, and what is queued is delivered by the next sync."""
    assert cli("setup-keys", "--user-id", ALICE).code == 0
    made = cli("create-room", "--room-id", ROOM, "--name", "Quiet", "--user-id", ALICE)
    assert made.code == 0, made
    assert cli("send", "--room-id", ROOM, "--user-id", ALICE, "said before").code == 0
    r = cli("sync", "--room-id", ROOM)  # read once: the index knows it
    assert r.code == 0 and r.out.startswith(f"{ROOM}: 2 events (2 new), 0 finding(s)"), r
    r = cli("sync", "--room-id", "never-read", frozen=True)  # no copy to show
    assert r.code == 4 and r.out == "", r
    assert "has not answered since" in r.err, r
    assert "this device has no copy of room 'never-read' to show" in r.err, r

    queued = cli("send", "--room-id", ROOM, "--user-id", ALICE, "queued", frozen=True)
    assert queued.code == 3, queued

    r = cli("sync", "--room-id", ROOM, frozen=True)
    assert r.code == 4, r
    assert r.out.startswith(f"{ROOM}: 2 events as this device verified them (last read 20"), r
    assert r.out.rstrip().endswith("0 finding(s); the outbox could not deliver everything yet")
    (line,) = r.err.splitlines()  # one line: the storage, since when, what stays queued
    assert line.startswith(f"bucket-chat: {tmp_path / 'shared'} has not answered since "), r
    assert f"(sync gives up after {DEADLINE:g} s without an answer)" in line, r
    assert "the counts are this device's copy, last read 20" in line, r
    assert "1 event(s) stay queued in the outbox for the next 'bucket-chat sync'" in line, r

    r = cli("sync", "--room-id", ROOM)  # answering again: the queued message goes out
    assert r.code == 0 and r.out.startswith(f"{ROOM}: 3 events (1 new), 0 finding(s)"), r
    r = cli("history", "--room-id", ROOM)
    assert r.code == 0 and r.out.count("queued") == 1 and "said before" in r.out, r


@pytest.mark.timeout(60)
def test_verify_says_it_verified_nothing_not_that_there_is_no_copy(cli: Cli) -> None:
    """Red team rt52: ``history`` showed this device's copy of a room whose storage did
    not answer, and ``verify`` then said "this device has no copy of it": verify reads
    the storage only, whatever this device kept."""
    assert cli("setup-keys", "--user-id", ALICE).code == 0
    made = cli("create-room", "--room-id", ROOM, "--name", "Quiet", "--user-id", ALICE)
    assert made.code == 0, made
    assert cli("sync", "--room-id", ROOM).code == 0  # read once: the index knows it
    r = cli("verify", "--room-id", ROOM, frozen=True)
    assert r.code == 2, r
    assert "nothing was verified (verify reads the storage, never this device's copy)" in r.err
    assert "no copy" not in r.err, r


@pytest.mark.timeout(30)
def test_history_and_members_name_the_room_from_this_devices_copy(cli: Cli) -> None:
    """Read from this device's copy while the storage does not answer, a room keeps the
    name this device checked (red team rt52: its id alone was shown)."""
    assert cli("setup-keys", "--user-id", ALICE).code == 0
    r = cli("create-room", "--room-id", ROOM, "--name", "Quiet", "--user-id", ALICE)
    assert r.code == 0, r
    assert cli("send", "--room-id", ROOM, "--user-id", ALICE, "said before").code == 0
    assert cli("history", "--room-id", ROOM).code == 0  # read once: the index knows it
    for command in ("history", "members"):
        r = cli(command, "--room-id", ROOM, hung=True)
        assert r.code == 0, r
        assert r.out.splitlines()[0].startswith(f"# Quiet (signed by {ALICE})"), r
        assert "no answer from" in r.err, r


@pytest.mark.timeout(60)
def test_sync_from_this_devices_copy_counts_the_findings_history_counts(
    cli: Cli, tmp_path: Path
) -> None:
    """Red team rt84: with the storage not answering, ``sync`` counted this device's copy
    without its metadata's findings and said "0 finding(s)" of a room whose
    ``metadata.json`` a member had rewritten under the creator's id, where ``history`` of
    the same copy, and ``sync`` once the storage answered, said 1."""
    assert cli("setup-keys", "--user-id", ALICE).code == 0
    made = cli("create-room", "--room-id", ROOM, "--name", "Pay", "--user-id", ALICE)
    assert made.code == 0, made
    (tmp_path / "shared" / "rooms" / ROOM / "metadata.json").write_bytes(
        build_metadata(  # a member's name for the room, signed by the member's own key
            room_id=ROOM,
            name="Alice's Official Payments Room",
            created_at="2026-06-01T00:00:00.000Z",
            creator_id=ALICE,
            signing_key=SigningKey(b"\x4d" * 32),
        )
    )
    answered = cli("sync", "--room-id", ROOM)
    assert answered.code == 0 and answered.out.startswith(f"{ROOM}: 1 events"), answered
    assert "), 1 finding(s)" in answered.out, answered  # metadata-signer-unknown
    history = cli("history", "--room-id", ROOM, frozen=True)
    assert history.code == 0 and "1 finding(s)" in history.err, history
    stale = cli("sync", "--room-id", ROOM, frozen=True)
    assert stale.code == 4, stale
    assert stale.out.startswith(f"{ROOM}: 1 events as this device verified them"), stale
    assert stale.out.rstrip().endswith(", 1 finding(s)"), stale
