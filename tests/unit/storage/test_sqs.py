"""Queue messages are hints from a party that may be hostile: ``parse_message`` turns any
body into the object paths it names inside this storage, or a reason it was ignored —
never an exception, never a path outside the storage. And the queue URL option."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bucket_chat_desktop.storage.base import check_object_path
from bucket_chat_desktop.storage.sqs import (
    MAX_BODY_CHARS,
    MAX_RECORDS,
    check_queue_url,
    parse_message,
    queue_region,
)
from bucket_chat_desktop.storage.url import StorageUrlError, parse_storage_url

BUCKET, PREFIX = "team-bucket", "chat"
SEGMENT = "rooms/r1/logs/2026-12-04/messages_1_2_abc.jsonl"


def record(key: str, *, bucket: str = BUCKET, event: str = "ObjectCreated:Put") -> dict[str, Any]:
    return {"eventName": event, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}


def body(*records: dict[str, Any]) -> str:
    return json.dumps({"Records": list(records)})


def test_an_s3_notification_names_the_object_relative_to_the_storage() -> None:
    got = parse_message(body(record(f"{PREFIX}%2F{SEGMENT.replace('/', '%2F')}")), BUCKET, PREFIX)
    assert got.paths == (SEGMENT,) and got.ignored == ()


def test_keys_are_url_decoded_with_plus_as_a_space() -> None:
    got = parse_message(body(record("chat/rooms/a+b%2Bc/x")), BUCKET, PREFIX)
    assert got.paths == ("rooms/a b+c/x",)


def test_the_test_event_and_an_sns_envelope() -> None:
    test = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET})
    assert parse_message(test, BUCKET, PREFIX).test_event
    wrapped = json.dumps({"Type": "Notification", "Message": body(record(f"chat/{SEGMENT}"))})
    assert parse_message(wrapped, BUCKET, PREFIX).paths == (SEGMENT,)


def test_a_storage_without_prefix_takes_every_key() -> None:
    assert parse_message(body(record(SEGMENT)), BUCKET, "").paths == (SEGMENT,)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("nope", "not JSON"),
        ("[1]", "not a JSON object"),
        ("{}", "no S3 event records"),
        ('{"Records": []}', "no S3 event records"),
        ("x" * (MAX_BODY_CHARS + 1), "characters (not a notification)"),
        ("[" * 30_000 + "]" * 30_000, "not JSON"),  # nested past the recursion limit
        (body(*[record(f"chat/{SEGMENT}")] * (MAX_RECORDS + 1)), "records (S3 sends one)"),
        (body(record(f"chat/{SEGMENT}", bucket="evil")), "another bucket ('evil')"),
        (body(record(f"other/{SEGMENT}")), "outside this storage's prefix"),
        (body(record("chatroom/x")), "outside this storage's prefix"),
        (body(record("chat/rooms/..%2F..%2Fetc")), "unsafe object key"),
        (body(record("chat//x")), "unsafe object key"),
        (body(record("chat/a%00b")), "unsafe object key"),
        (body(record("chat/%ff")), "not UTF-8"),
        (body(record("")), "without a usable object key"),
        (body(record("chat/" + "a" * 5000)), "without a usable object key"),
        (body({"eventName": "ObjectCreated:Put"}), "without eventName or s3"),
        (body("just a string"), "not an object"),  # type: ignore[arg-type]
        ('{"Type": "Notification", "Message": "{"}', "SNS notification whose message"),
        ('{"Event": "s3:TestEvent", "Bucket": "evil"}', "test event of another bucket"),
    ],
)
def test_junk_is_ignored_with_a_reason(text: str, reason: str) -> None:
    got = parse_message(text, BUCKET, PREFIX)
    assert got.paths == () and not got.test_event
    assert len(got.ignored) == 1 and reason in got.ignored[0], got.ignored
    assert len(got.ignored[0]) < 200  # bounded, whatever the message held


def test_events_other_than_creation_are_of_no_interest_and_no_junk() -> None:
    got = parse_message(
        body(record(f"chat/{SEGMENT}", event="ObjectRemoved:Delete")), BUCKET, "chat"
    )
    assert got.paths == () and got.ignored == ()


def test_a_body_that_is_not_text_is_ignored() -> None:
    assert parse_message(None, BUCKET, PREFIX).ignored == ("a message without a text body",)


@given(st.text(max_size=300))
def test_any_text_is_a_value_never_an_exception(text: str) -> None:
    got = parse_message(text, BUCKET, PREFIX)
    for path in got.paths:
        assert check_object_path(path) == path


@given(st.text(max_size=120))
def test_any_key_gives_a_safe_path_or_a_reason(key: str) -> None:
    got = parse_message(body(record(key)), BUCKET, PREFIX)
    assert len(got.paths) + len(got.ignored) == 1
    for path in got.paths:
        assert check_object_path(path) == path


def test_the_queue_url_option() -> None:
    aws = "https://sqs.eu-west-1.amazonaws.com/123456789012/chat-events"
    loc = parse_storage_url(f"s3://bkt/chat?queue_url={aws}")
    assert loc.options["queue_url"] == aws
    assert parse_storage_url(loc.url()) == loc  # survives the round trip of a profile
    assert loc.identity() == "s3://bkt/chat"  # the same data: the same local index
    assert queue_region(aws) == "eu-west-1"
    assert queue_region("https://eu-north-1.queue.amazonaws.com/1/q") == "eu-north-1"
    assert queue_region("http://127.0.0.1:5000/1/q") is None
    for bad in ("ftp://x/1/q", "https://host", "https://u:p@host/1/q", "https://h/1/q?x=1"):
        with pytest.raises(ValueError):
            check_queue_url(bad)
        with pytest.raises(StorageUrlError):
            parse_storage_url(f"gs://bkt?queue_url={bad}")
        with pytest.raises(StorageUrlError, match="queue_url"):
            parse_storage_url("s3://bkt").with_options({"queue_url": bad})
