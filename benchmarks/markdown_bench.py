"""How long a room of very large Markdown tables holds the GUI thread: open and resize.

Run:  .venv/bin/python benchmarks/markdown_bench.py [--messages 6] [--rows 300] [--cols 8]

Offscreen Qt, the app's real ``TimelineView``, ``TimelineModel`` and ``MessageDelegate``.
The room holds a few ordinary messages and ``--messages`` messages that are each one
Markdown table of ``--rows`` x ``--cols`` cells (what a hostile member can write within
the 256 KiB line limit). Reported, in wall-clock seconds on the GUI thread:
- open: the rows handed to the view -> the first frame painted;
- resize: each of five window widths -> the frame painted (total and worst);
- drag: 40 steps of 3 px, as when dragging the window's edge (total and worst).

Figures are machine-dependent; compare runs on one machine (e.g. this branch against the
previous commit by pointing PYTHONPATH at the other checkout).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def table(rows: int, cols: int, seed: int) -> str:
    head = "| " + " | ".join(f"col {c}" for c in range(cols)) + " |"
    rule = "|" + "---|" * cols
    body = [
        "| " + " | ".join(f"**r{r}c{c}** v{seed}" for c in range(cols)) + " |" for r in range(rows)
    ]
    return "\n".join([head, rule, *body])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=6)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--cols", type=int, default=8)
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    from bucket_chat_desktop.gui.main_window import TimelineView
    from bucket_chat_desktop.gui.models.timeline_model import TimelineModel
    from bucket_chat_desktop.gui.widgets.message_delegate import MessageDelegate
    from bucket_chat_desktop.index import TimelineRow
    from bucket_chat_desktop.protocol.audit import TrustState
    from bucket_chat_desktop.protocol.event import parse_event

    app = QApplication.instance() or QApplication([])
    base = 1_764_000_000_000
    rows = []
    bodies = []
    for i in range(args.messages * 3):
        if i % 3 == 1:
            body = table(args.rows, args.cols, i)
        else:
            body = f"message {i}: *nothing* special here"
        bodies.append(body)
        raw = {
            "event_id": f"bench::{base + i}::{i}",
            "room_id": "bench",
            "sender_id": f"user{i % 3}@example.com",
            "sender_key": f"key{i % 3}",
            "timestamp_ms": base + i * 60_000,
            "type": "m.room.message",
            "content": {"body": body, "msgtype": "m.text"},
            "signature": "",
        }
        # Cached rows come back from the index already parsed (Index.newest).
        event = parse_event(json.loads(json.dumps(raw)), "bench")
        rows.append(TimelineRow(i, event, TrustState.VERIFIED, "signature checks out", "p", i))
    size = max(len(b.encode()) for b in bodies)

    view = TimelineView()
    view.setItemDelegate(MessageDelegate(view))
    model = TimelineModel("")
    view.setModel(model)
    view.resize(900, 700)
    view.show()
    app.processEvents()

    start = time.perf_counter()
    model.show_cached(rows)
    view.scrollToBottom()
    view.repaint()
    app.processEvents()
    opened = time.perf_counter() - start

    resizes = []
    for width in (700, 1100, 820, 1300, 640):
        t = time.perf_counter()
        view.resize(width, 700)
        app.processEvents()
        view.repaint()
        app.processEvents()
        resizes.append(time.perf_counter() - t)
    drag = []
    for step in range(40):  # dragging the window's edge: 40 small steps
        t = time.perf_counter()
        view.resize(900 - 3 * step, 700)
        app.processEvents()
        view.repaint()
        drag.append(time.perf_counter() - t)
    print(
        f"{args.messages} tables of {args.rows}x{args.cols} cells "
        f"(largest body {size:,} bytes) among {len(rows)} messages"
    )
    print(f"open (rows -> first frame): {opened:.2f} s")
    print(f"resize x5: total {sum(resizes):.2f} s, worst {max(resizes):.2f} s")
    print(f"drag-resize, 40 steps of 3 px: total {sum(drag):.2f} s, worst {max(drag):.2f} s")


if __name__ == "__main__":
    main()
