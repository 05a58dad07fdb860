"""What an S3 read costs the I/O thread besides the request itself (issue 9, item 5).

A cold sync reads one object per segment; on moto each read cost the engine's process
about 3 ms of CPU, most of it botocore's work around the request. Two parts of it are
work nothing here needs, and these tests pin that they are gone:

- botocore rebuilt its ``User-Agent`` for every request, twice (OS, Python, machine,
  features, each component cleaned character by character): a tenth of that CPU, and
  more about this machine than the bucket's provider needs;
- botocore gave every ``Last-Modified`` header (and a listing's ``LastModified``) to
  ``dateutil``'s general parser: another tenth, for a date nothing here reads.
"""

from __future__ import annotations

from typing import Any

import dateutil.parser
import pytest
from botocore.utils import parse_timestamp

import bucket_chat_desktop
from bucket_chat_desktop.storage.cloud import FsspecStorage
from bucket_chat_desktop.storage.s3 import fast_timestamp

from .conftest import StoresMaker


async def test_reads_and_listings_send_a_fixed_user_agent_and_give_no_date_to_dateutil(
    stores_for: StoresMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stores_for("s3").new()
    assert isinstance(store, FsspecStorage)
    await store.put_if_absent("rooms/r/a.jsonl", b"hello")
    await store.open()
    agents: list[str] = []

    def seen(request: Any, **_: Any) -> None:
        agents.append(request.headers["User-Agent"].decode())

    store._fs._s3.meta.events.register_first("before-send.s3", seen)
    parsed: list[object] = []
    general = dateutil.parser.parse

    def parse(value: Any, *args: Any, **kwargs: Any) -> Any:
        parsed.append(value)
        return general(value, *args, **kwargs)

    monkeypatch.setattr(dateutil.parser, "parse", parse)
    for _ in range(3):
        assert await store.get("rooms/r/a.jsonl") == b"hello"
    assert [o.path for o in await store.list_objects("rooms/r")] == ["rooms/r/a.jsonl"]
    assert parsed == []
    assert len(agents) == 4 and len(set(agents)) == 1
    assert agents[0].startswith(f"bucket-chat-desktop/{bucket_chat_desktop.__version__}")
    assert " os/" not in agents[0] and " lang/" not in agents[0]


@pytest.mark.parametrize(
    "value",
    [
        "Tue, 08 Dec 2026 05:00:00 GMT",
        "Tue, 8 Dec 2026 05:00:00 GMT",
        "2026-12-08T05:00:00.000Z",
        "2026-12-08T05:00:00Z",
        "2026-12-08T05:00:00+02:00",
        "Tue, 08 Dec 2026 05:00:00 -0000",  # not the fast path's: botocore's
        "2026-12-08T05:00:00",  # no zone: botocore's, as before
        # A year below 1000: dateutil and the standard library chose other centuries.
        "Tue, 08 Dec 0075 05:00:00 GMT",
        "0075-12-08T05:00:00Z",
        "1700000000",
        1700000000,
    ],
)
def test_fast_timestamps_are_botocores(value: object) -> None:
    assert fast_timestamp(value) == parse_timestamp(value)
    assert fast_timestamp(value).tzinfo is not None or parse_timestamp(value).tzinfo is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage GMT",
        "2026-02-30T00:00:00Z",
        "x" * 10_000,
        # Forms the standard library reads and dateutil does not: only the exact two take
        # the fast path.
        "Tue, 08 Dec 2026 05:00:00 +0500 GMT",
        "Tue, 08 Dec 2026 05:00:00 EST GMT",
        "2026-W49-2T05:00Z",
        "2026-W49-2T05:00:00Z",
        # An hour too large for an int of C: botocore says RuntimeError; the standard
        # library's OverflowError escaped the fast path.
        "Tue, 08 Dec 2026 99999999999999999999:00:00 GMT",
    ],
)
def test_timestamps_botocore_refuses_are_refused(value: str) -> None:
    with pytest.raises((ValueError, RuntimeError)) as refused:
        parse_timestamp(value)
    with pytest.raises(refused.type):
        fast_timestamp(value)
