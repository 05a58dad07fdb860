"""The ``bucket-chat`` the tests start is this checkout's code (tests/conftest.py): the
virtualenv's editable install points at one checkout, possibly another git worktree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_child_process_imports_this_checkout_s_package(tmp_path: Path) -> None:
    # Started elsewhere than the checkout, as the installed ``bucket-chat`` script is.
    where = subprocess.run(
        [sys.executable, "-c", "import bucket_chat_desktop; print(bucket_chat_desktop.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).resolve().is_relative_to(ROOT / "bucket_chat_desktop"), where
