"""The app lets its GUI thread take the GIL back quickly (docs/SCHEDULING.md; the figures
are in benchmarks/gui_bench.py --switch-only)."""

from __future__ import annotations

import sys

from bucket_chat_desktop import app


def test_the_app_lets_its_gui_thread_take_the_gil_back_within_a_millisecond() -> None:
    before = sys.getswitchinterval()
    try:
        app.prefer_the_gui_thread()
        assert sys.getswitchinterval() <= 0.001 < before
    finally:
        sys.setswitchinterval(before)
