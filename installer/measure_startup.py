"""Measure how long Bucket Chat takes to show its first window: frozen vs from source.

    .venv/bin/python installer/measure_startup.py [--runs 10] [--drop-caches]

Runs each variant under a private Xvfb (a real X server, the xcb platform plugin) with a
prepared, configured profile (a local storage, an encrypted key file unlocked through
BUCKET_CHAT_PASSPHRASE), and takes the time from starting the process to the main window
being mapped (polled with xdotool, every ~5 ms). Also times ``--smoke`` (offscreen) and
``bucket-chat --version``. Prints medians and ranges; measures only, changes nothing.

The first run of each variant is reported apart ("first"): it pays for the disk cache.
``--drop-caches`` (root) empties the kernel's page cache before every run instead, for
true cold starts. Needs Debian's xvfb and xdotool.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
FROZEN = ROOT / "dist" / "bucket-chat"
TITLE = "^Bucket Chat$"
PASSPHRASE = "measure-startup passphrase"


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    for number in range(91, 120):
        if Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
            continue
        display = f":{number}"
        proc = subprocess.Popen(
            ["Xvfb", display, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if Path(f"/tmp/.X11-unix/X{number}").exists():
                return proc, display
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        proc.kill()
    raise SystemExit("measure_startup: could not start Xvfb")


def make_profile(base: Path) -> Path:
    home = base / "home"
    store = base / "store"
    store.mkdir(parents=True)
    (home / "config").mkdir(parents=True)
    settings = {
        "format": "bucket-chat-settings-v1",
        "user_id": "measure@localhost",
        "displayname": "Measure",
        "storages": [{"spec": str(store), "name": "Local", "rooms": []}],
    }
    (home / "config" / "settings.json").write_text(json.dumps(settings))
    return home


def window_shown(env: dict[str, str]) -> bool:
    found = subprocess.run(
        ["xdotool", "search", "--onlyvisible", "--name", TITLE],
        env=env,
        capture_output=True,
        text=True,
    )
    return found.returncode == 0 and found.stdout.strip() != ""


def time_to_window(cmd: list[str], env: dict[str, str], timeout: float = 60.0) -> float:
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while time.monotonic() - started < timeout:
            if window_shown(env):
                return time.monotonic() - started
            if proc.poll() is not None:
                raise SystemExit(
                    f"{cmd[0]} exited {proc.returncode} before showing a window:\n"
                    + proc.stderr.read().decode(errors="replace")  # type: ignore[union-attr]
                )
            time.sleep(0.005)
        raise SystemExit(f"{cmd[0]}: no window within {timeout:g} s")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def time_command(cmd: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def series(label: str, fn: Callable[[], float], runs: int, cold: bool) -> dict[str, float]:
    if cold:
        drop_caches()
    first = fn()
    times = []
    for _ in range(runs):
        if cold:
            drop_caches()
        times.append(fn())
    out = {
        "first": first,
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
    }
    print(
        f"{label:<44} median {out['median']:.3f} s  (min {out['min']:.3f}, "
        f"max {out['max']:.3f}, first {first:.3f}; {runs} runs)",
        flush=True,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--drop-caches", action="store_true", help="true cold starts (root)")
    parser.add_argument("--frozen", type=Path, default=FROZEN, help="the PyInstaller folder")
    args = parser.parse_args(argv)
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            raise SystemExit(f"measure_startup: {tool} not found (apt-get install xvfb xdotool)")
    variants = {
        "frozen": (
            [str(args.frozen / "bucket-chat-desktop")],
            [str(args.frozen / "bucket-chat"), "--version"],
        ),
        "source": (
            [str(VENV_PY), "-m", "bucket_chat_desktop"],
            [str(VENV_PY), "-m", "bucket_chat_desktop.cli", "--version"],
        ),
    }
    xvfb, display = start_xvfb()
    try:
        with tempfile.TemporaryDirectory(prefix="bucket-chat-startup-") as tmp:
            home = make_profile(Path(tmp))
            env = {
                k: v
                for k, v in os.environ.items()
                if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")
            }
            env.update(
                DISPLAY=display,
                BUCKET_CHAT_HOME=str(home),
                BUCKET_CHAT_KEY_STORE="file",
                BUCKET_CHAT_PASSPHRASE=PASSPHRASE,
            )
            time_to_window(variants["source"][0], env)  # creates the key file once
            smoke_env = dict(env, QT_QPA_PLATFORM="offscreen")
            for name, (gui, cli) in variants.items():
                measures: dict[str, Callable[[], float]] = {
                    "start to main window (Xvfb)": lambda g=gui: time_to_window(g, env),
                    "--smoke (offscreen)": lambda g=gui: time_command([*g, "--smoke"], smoke_env),
                    "bucket-chat --version": lambda c=cli: time_command(c, env),
                }
                for what, fn in measures.items():
                    series(f"{name}: {what}", fn, args.runs, args.drop_caches)
    finally:
        xvfb.terminate()
        xvfb.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
