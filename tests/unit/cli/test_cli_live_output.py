"""``LiveOutput``: what ``chat`` and ``sync --follow`` print from the engine's listener,
once standard output's reader has gone (``| head``): the command is told once, nothing
raises into the engine (which logged a traceback per event and ran on: red team rt84),
and standard output is pointed at the null device, so later prints do not fail."""

from __future__ import annotations

import io
import os

import pytest

from bucket_chat_desktop.cli.live import LiveOutput


def test_a_pipe_nobody_reads_is_said_once_and_stdout_goes_to_the_null_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader, writer = os.pipe()
    os.close(reader)  # what `| head` does once it has its lines
    with open(writer, "w", encoding="utf-8") as stream:
        monkeypatch.setattr("sys.stdout", stream)
        closed: list[bool] = []
        output = LiveOutput(lambda: closed.append(True))
        output.line("an event")  # the write fails: not raised
        output.line("the next event")
        assert closed == [True] and output.gone
        assert os.path.samestat(os.fstat(writer), os.stat(os.devnull))
        print("printed after it", flush=True)  # the null device takes it


class Closed(io.StringIO):
    """A stream that is no file (no descriptor), whose reader has gone."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_stream_without_a_descriptor_is_said_once_and_never_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdout", Closed())
    closed: list[bool] = []
    output = LiveOutput(lambda: closed.append(True))
    for n in range(3):
        output.line(f"event {n}")
    assert closed == [True]


def test_an_open_stdout_gets_every_line(capsys: pytest.CaptureFixture[str]) -> None:
    closed: list[bool] = []
    output = LiveOutput(lambda: closed.append(True))
    output.line("one")
    output.write("two\n")
    assert capsys.readouterr().out == "one\ntwo\n" and not closed
