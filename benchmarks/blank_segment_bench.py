"""How long one read of a segment object made of blank lines only takes.

Run:  .venv/bin/python benchmarks/blank_segment_bench.py [--repeat 3]

A member may fill a segment object (up to ``MAX_SEGMENT_BYTES``, 64 MiB) with blank lines:
no bad lines, so the cap on bad lines never stops its reader. Skipped one by one, such
an object was ~30 s of a worker's time on each device's first read; it is one notice
now. The tests count the Python that read runs (``test_segment.py``: it does not grow
with the lines); this prints the seconds, in this process's CPU time (waiting for a core
on a shared machine is not counted), the best of ``--repeat`` runs, for an object of
each kind of blank line and, for scale, for an object of ``{}`` lines (abandoned after
``MAX_BAD_LINES``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from bucket_chat_desktop.protocol.ids import segment_path
from bucket_chat_desktop.protocol.segment import MAX_SEGMENT_BYTES, decode_segment

ROOM = "bench-room"
CLOCK = time.process_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    start = 1_760_000_000_000
    path = segment_path(ROOM, start, start, "c")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, CPU time, best of {args.repeat}"
    )
    for name, line in (("\\n", b"\n"), ("\\r\\n", b"\r\n"), (" \\t\\n", b" \t\n"), ("{}", b"{}\n")):
        data = line * (MAX_SEGMENT_BYTES // len(line))
        best = float("inf")
        for _ in range(args.repeat):
            t0 = CLOCK()
            decoded = decode_segment(path, data, ROOM)
            best = min(best, CLOCK() - t0)
        kinds = sorted({f.kind.value for f in decoded.findings})
        print(
            f"{len(data) / 2**20:5.1f} MiB of {name:>6} lines: {best:6.3f} s "
            f"({len(decoded.findings)} finding(s): {', '.join(kinds)})"
        )


if __name__ == "__main__":
    main()
