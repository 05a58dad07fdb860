"""What a segment-checking worker process imports (sync/verifier.py): the parser and the
signature check, not the audit. Each worker starts in a fresh interpreter (``spawn``)
and imports what unpickling its work needs; the audit with its relations and room state
was about 0.1 s of CPU in each, paid again by every cold read that starts the pool."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

from bucket_chat_desktop.sync.verifier import SegmentVerifier

# What decoding and verifying a segment needs, and nothing else of the package.
NEEDED = {
    "bucket_chat_desktop",
    "bucket_chat_desktop.protocol",
    "bucket_chat_desktop.protocol.canonical",
    "bucket_chat_desktop.protocol.event",
    "bucket_chat_desktop.protocol.findings",
    "bucket_chat_desktop.protocol.handover",
    "bucket_chat_desktop.protocol.ids",
    "bucket_chat_desktop.protocol.prepared",
    "bucket_chat_desktop.protocol.segment",
    "bucket_chat_desktop.protocol.signing",
}

# A fresh interpreter does what a worker does with its work: unpickle it (importing its
# module), then prints the package's modules it has loaded.
PROBE = """
import json, pickle, sys
pickle.loads(sys.stdin.buffer.read())
print(json.dumps(sorted(m for m in sys.modules if m.startswith("bucket_chat_desktop"))))
"""


def test_a_worker_imports_the_parser_and_the_signature_check_only() -> None:
    work = SegmentVerifier(1)._work  # the default work, as the engine submits it
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        input=pickle.dumps(work),
        capture_output=True,
        check=True,
        timeout=120,
    )
    loaded = set(json.loads(done.stdout))
    assert "bucket_chat_desktop.protocol.handover" in loaded  # the work's own module
    assert loaded - NEEDED == set()
