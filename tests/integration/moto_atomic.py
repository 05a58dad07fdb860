"""``moto_server`` with S3's conditional writes decided atomically, as S3 decides them.

moto answers ``PUT`` with ``If-None-Match: *`` by looking the key up, then storing the
object: two steps, no lock between them (``moto.s3.responses.S3Response.put_object``; the
same in the multipart upload's completion). On a busy machine two racers for one name can
both be told that they created it, which S3 never does: exactly one wins. The conformance
suite's racers test (``test_racers_on_one_name_have_exactly_one_winner``) found it when the
suite ran on two workers. This starts moto's own server with those two handlers run one
at a time; nothing else changes.

Run as ``python moto_atomic.py -H 127.0.0.1 -p PORT`` (``moto_server``'s arguments).
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

from moto.s3.responses import S3Response  # type: ignore[import-untyped]
from moto.server import main  # type: ignore[import-untyped]

_WRITES = threading.Lock()


def _one_at_a_time(handler: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handler)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _WRITES:
            return handler(*args, **kwargs)

    return run


S3Response.put_object = _one_at_a_time(S3Response.put_object)
S3Response._key_response_post = _one_at_a_time(S3Response._key_response_post)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
