"""How ``chat`` ends when what was typed could not be delivered: it says why as ``send``
says it (refused, or not answered) and exits as ``send`` does (3: queued, not delivered;
0: everything went out)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_run import Result, run_main

from bucket_chat_desktop.cli import main as cli_main
from bucket_chat_desktop.cli.chat import _left_unread
from bucket_chat_desktop.storage.base import StoragePermissionError
from bucket_chat_desktop.storage.local import LocalStorage

PASSPHRASE = "correct horse battery staple"
ALICE = "alice@example.com"
ROOM = "outcome-room"


class Writes(LocalStorage):
    """The folder; once ``mode`` says so, every write is refused or never answered (reads
    answer)."""

    mode = "answers"

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        if self.mode == "refuses":
            raise StoragePermissionError(f"cannot write {path}: access denied (403)")
        if self.mode == "hangs":
            await asyncio.sleep(3600)
            raise AssertionError("never answered")
        return await super().put_if_absent(path, data)


Cli = Callable[..., Result]


@pytest.fixture
def storage(tmp_path: Path) -> Writes:
    (tmp_path / "shared").mkdir()
    return Writes(tmp_path / "shared")


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    storage: Writes,
) -> Cli:
    """``cli(*args, stdin=...)``: ``bucket-chat`` on this device, in a room it created."""
    monkeypatch.setenv("BUCKET_CHAT_KEY_STORE", "file")
    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / "device"))
    monkeypatch.setenv("BUCKET_CHAT_INTERACTIVE_DEADLINE", "0.5")
    monkeypatch.delenv("BUCKET_CHAT_STORAGE", raising=False)
    monkeypatch.setattr(cli_main, "open_storage", lambda spec: storage)

    def call(*args: str, stdin: str = "") -> Result:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return run_main(capsys, ["-s", str(storage.root), *args])

    assert call("setup-keys", "--user-id", ALICE).code == 0
    assert call("create-room", "--room-id", ROOM, "--name", "R", "--user-id", ALICE).code == 0
    return call


def chat(cli: Cli, *lines: str) -> Result:
    return cli(
        "chat", "--room-id", ROOM, "--user-id", ALICE, stdin="".join(f"{t}\n" for t in lines)
    )


@pytest.mark.timeout(60)
def test_chat_says_the_storage_refused_as_send_does(cli: Cli, storage: Writes) -> None:
    """Red team rt84: ``chat`` left saying "they go out with the next session" of writes
    the storage refused, which ``send`` (rightly) says fail the same way until what
    refused them is fixed."""
    storage.mode = "refuses"
    sent = cli("send", "--room-id", ROOM, "--user-id", ALICE, "by send")
    assert sent.code == 3 and "the storage refused it (cannot write" in sent.err, sent
    r = chat(cli, "typed into chat")
    leaving = r.out.splitlines()[-1]
    assert leaving.startswith("! some messages are still queued: the storage refused them ("), r
    assert "access denied (403)" in leaving, r
    assert "fails the same way until what refused them is fixed" in leaving, r
    assert "go out with the next session" not in r.out + r.err, r


@pytest.mark.timeout(60)
def test_chat_whose_lines_the_storage_refused_exits_as_queued(cli: Cli, storage: Writes) -> None:
    """Red team rt84: exit 0 told a script piping lines into ``chat`` that they went out."""
    storage.mode = "refuses"
    r = chat(cli, "typed into chat")
    assert r.code == 3, r


@pytest.mark.timeout(60)
def test_chat_whose_storage_does_not_answer_writes_says_they_go_out_next_time(
    cli: Cli, storage: Writes
) -> None:
    storage.mode = "hangs"
    r = chat(cli, "typed into chat")
    assert r.code == 3, r
    leaving = r.out.splitlines()[-1]
    assert leaving.startswith("! some messages are still queued (no answer from "), r
    assert leaving.endswith("they go out with the next session (or 'bucket-chat sync', or the app)")
    assert "refused" not in leaving, r
    storage.mode = "answers"  # the next session delivers it
    assert cli("sync", "--room-id", ROOM).code == 0
    assert "typed into chat" in cli("history", "--room-id", ROOM).out


@pytest.mark.timeout(60)
def test_chat_that_delivered_everything_exits_0_without_a_queued_line(cli: Cli) -> None:
    r = chat(cli, "typed into chat")
    assert r.code == 0, r
    assert "queued" not in r.out + r.err, r
    assert "typed into chat" in cli("history", "--room-id", ROOM).out


class FailingInput(io.StringIO):
    """Standard input that gives one line, then fails (a device error, a decoder's)."""

    def readline(self, size: int | None = -1) -> str:
        if self.tell():
            raise OSError(5, "Input/output error")
        return super().readline()


@pytest.mark.timeout(60)
def test_chat_whose_input_cannot_be_read_says_so_and_ends(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Red team rt84: an exception in the thread reading standard input killed it and
    left the chat waiting for a line for ever. It ends, says so on stderr, and exits 2:
    what came after the failure was never read (it exited 0, as if all was sent)."""
    monkeypatch.setattr("sys.stdin", FailingInput("before it\n"))
    r = run_main(capsys, ["-s", "unused", "chat", "--room-id", ROOM, "--user-id", ALICE])
    assert r.code == 2, r
    assert r.err == (
        "bucket-chat: standard input could not be read ([Errno 5] Input/output error); "
        "leaving the chat\n"
    ), r
    assert "before it" in cli("history", "--room-id", ROOM).out


class ClosedPipe(io.TextIOBase):
    """Standard output whose reader has gone (``| head -1`` had its line): every write
    fails as a pipe's does; no descriptor (``fmt.silence_stdout`` leaves it as it is)."""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise io.UnsupportedOperation("no descriptor")


def chat_into_closed_pipe(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, piped: str
) -> Result:
    """``printf … | bucket-chat chat … | head -1``: its very first line (the title) fails."""
    with monkeypatch.context() as m:
        m.setattr("sys.stdin", io.StringIO(piped))
        m.setattr("sys.stdout", ClosedPipe())
        return run_main(capsys, ["-s", "unused", "chat", "--room-id", ROOM, "--user-id", ALICE])


@pytest.mark.timeout(60)
def test_chat_into_a_closed_pipe_sends_every_line_piped_in(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Red team rt89: the first failed write queued a leave before the lines piped in
    were read: none was sent, nothing said so, exit 0. A chat reading piped lines sends
    them to the end of its input, whatever became of its output."""
    r = chat_into_closed_pipe(capsys, monkeypatch, "deploy 4711 done\nrollback plan: none\n")
    assert r.code == 0 and r.err == "", r
    history = cli("history", "--room-id", ROOM).out
    assert "deploy 4711 done" in history and "rollback plan: none" in history, history


@pytest.mark.timeout(60)
def test_chat_into_a_closed_pipe_says_on_stderr_what_the_storage_refused(
    cli: Cli, storage: Writes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What could not be delivered is said on standard error once the output has no
    reader (said only to the null device, it was said to no one), with exit 3."""
    storage.mode = "refuses"
    r = chat_into_closed_pipe(capsys, monkeypatch, "deploy 4711 done\n")
    assert r.code == 3, r
    assert r.err.startswith("bucket-chat: some messages are still queued: the storage refused"), r
    assert "access denied (403)" in r.err, r


@pytest.mark.timeout(60)
def test_chat_into_a_closed_pipe_says_on_stderr_a_line_it_could_not_send(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    r = chat_into_closed_pipe(capsys, monkeypatch, "ok\n\udcff bad\n")
    assert r.code == 2, r
    assert r.err == "bucket-chat: not sent: line 2 holds bytes that are not valid UTF-8 text\n", r
    assert "ok" in cli("history", "--room-id", ROOM).out


@pytest.mark.timeout(60)
def test_a_piped_chat_refuses_an_undecodable_line_on_stderr_and_exits_2(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As ``send -`` does for the same input (exit 2), not "Not sent" among the chat's
    output on stdout and exit 0, which a script piping lines in cannot tell from
    success. The other lines are sent."""
    monkeypatch.setattr("sys.stdin", io.StringIO("first\n\udcff bad\n\nthird\n"))
    r = run_main(capsys, ["-s", "unused", "chat", "--room-id", ROOM, "--user-id", ALICE])
    assert r.code == 2, r
    assert r.err == "bucket-chat: not sent: line 2 holds bytes that are not valid UTF-8 text\n", r
    assert "not sent" not in r.out.casefold() and "UTF-8" not in r.out, r
    history = cli("history", "--room-id", ROOM).out
    assert "first" in history and "third" in history and "bad" not in history


class TypedInput(io.StringIO):
    """Standard input as a terminal's: lines typed (``input()`` reads them)."""

    def isatty(self) -> bool:
        return True


@pytest.mark.timeout(60)
def test_a_line_typed_with_undecodable_bytes_is_said_where_typed_and_the_chat_exits_2(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """At a terminal the refusal is said in the chat as it happens, and again on stderr
    as it ends, with exit 2: the chat's screen is gone by then."""
    monkeypatch.setattr("sys.stdin", TypedInput("first\n\udcff bad\n/quit\n"))
    r = run_main(capsys, ["-s", "unused", "chat", "--room-id", ROOM, "--user-id", ALICE])
    assert r.code == 2, r
    assert "Not sent: line 2 holds bytes that are not valid UTF-8 text." in r.out, r
    assert r.err == (
        "bucket-chat: 1 line(s) were not sent: they held bytes that are not valid UTF-8 text\n"
    ), r
    assert "first" in cli("history", "--room-id", ROOM).out


def test_lines_typed_after_the_output_closed_are_counted_up_to_a_quit() -> None:
    """At a terminal the chat leaves when its output closes; what was typed after the
    leave was queued is counted as not sent (said, with exit 2), up to a ``/quit``."""
    lines: asyncio.Queue[str | Exception | None] = asyncio.Queue()
    for text in ("one", "  ", "two", "/quit", "three"):
        lines.put_nowait(text)
    assert _left_unread(lines) == 2
    assert _left_unread(lines) == 1  # after the /quit: "three"
    assert _left_unread(lines) == 0
