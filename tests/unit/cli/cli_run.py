"""``bucket-chat`` run in-process for the CLI unit tests: ``run_main`` calls ``main`` with
``argv`` and hands back its exit code and what it printed (argparse's ``SystemExit``
becomes the code)."""

from __future__ import annotations

import os

import pytest

from bucket_chat_desktop.cli.main import main


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}--- stderr\n{self.err}"

    @property
    def sent(self) -> str:
        """The event id a successful sending command printed last on its first line."""
        assert self.code == 0, self
        return self.out.splitlines()[0].split()[-1]


# What a long line is cut at where the output is no terminal (``format.fit``): wide, so
# that tests of other things read a printed line whole; ``columns`` sets another width.
WIDE = "100000"


def run_main(
    capsys: pytest.CaptureFixture[str], argv: list[str], *, columns: str | None = WIDE
) -> Result:
    capsys.readouterr()
    before = os.environ.get("COLUMNS")
    if columns is None:
        os.environ.pop("COLUMNS", None)
    else:
        os.environ["COLUMNS"] = columns
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    finally:
        if before is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = before
    out, err = capsys.readouterr()
    return Result(code, out, err)
