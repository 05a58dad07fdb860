"""Piped output of the frozen ``bucket-chat`` is UTF-8 and holds what was asked for.

    python installer/check_cli_output.py <path to bucket-chat[.exe]>

Makes a throw-away identity (encrypted key file) and room in a temporary folder, named
with an emoji, an accented letter and a CJK character, and reads the command's stdout
through a pipe - on Windows a pipe gets the ANSI code page unless the program sets
UTF-8 itself, and printing the name would fail there with UnicodeEncodeError.
Run by the release workflow on each system; exit status 0 = good.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

NAME = "\U0001f680 Caf\u00e9 \u6f22"


def main(exe: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "BUCKET_CHAT_HOME": str(Path(tmp) / "home"),
            "BUCKET_CHAT_KEY_STORE": "file",
            "BUCKET_CHAT_PASSPHRASE": "release check passphrase",
        }
        env.pop("PYTHONUTF8", None)
        env.pop("PYTHONIOENCODING", None)
        store = str(Path(tmp) / "store")
        user = ["--user-id", "release-check@example.com"]
        steps = [
            [exe, "setup-keys", *user],
            [exe, "-s", store, "create-room", "--room-id", "launch", "--name", NAME, *user],
        ]
        for argv in steps:
            proc = subprocess.run(argv, env=env, capture_output=True, timeout=120)
            err = proc.stderr.decode("utf-8", "replace")
            if proc.returncode != 0:
                print(f"FAIL {argv[1:]}: exit {proc.returncode}\n{err}")
                return 1
        try:
            out = proc.stdout.decode("utf-8")
        except UnicodeDecodeError as exc:
            print(f"FAIL: stdout is not UTF-8 ({exc}): {proc.stdout!r}")
            return 1
        if NAME not in out:
            print(f"FAIL: the room's name is not in the output: {out!r}")
            return 1
        print(f"ok   piped output is UTF-8: {out.strip()!r}")
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
