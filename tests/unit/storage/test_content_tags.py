"""Content tags (``ObjectInfo.content_tag``): what a listing says of an object's bytes,
read from a storage that may be hostile, compared only scheme with scheme."""

from __future__ import annotations

import pytest

from bucket_chat_desktop.storage.base import (
    MAX_TAG,
    bytes_decide,
    bytes_match,
    confirmed,
    content_tag,
    md5_tag,
    same_content,
    tag_of_bytes,
)


def test_a_tag_is_its_scheme_and_the_services_value() -> None:
    assert content_tag("md5", "1B2M2Y8AsgTpgAmY7PhCfg==") == "md5:1B2M2Y8AsgTpgAmY7PhCfg=="
    assert content_tag("s3-etag", "d41d8cd98f00b204e9800998ecf8427e-2") is not None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "x" * (MAX_TAG + 1),  # a listing that sends megabytes per object
        "abc\x1b[2Jdef",  # a terminal escape
        "abc\ndef",
        "\u202eabc",  # a bidi override
        "ａｂｃ",  # not ASCII
        b"abc",
        12345,
        {"md5": "x"},
        ["x"],
    ],
)
def test_what_is_no_short_printable_string_is_no_tag(value: object) -> None:
    assert content_tag("md5", value) is None


def test_tags_say_same_or_other_bytes_only_within_one_scheme() -> None:
    assert same_content("md5:aaa", "md5:aaa") is True
    assert same_content("md5:aaa", "md5:bbb") is False
    # Another scheme (GCS gives CRC32C where it has no MD5), a missing tag, or a value
    # cached before tags had schemes (a service ETag): nothing to say.
    assert same_content("md5:aaa", "crc32c:aaa") is None
    assert same_content(None, "md5:aaa") is None
    assert same_content("md5:aaa", None) is None
    assert same_content('"0x8DC0FFEE"', "md5:aaa") is None
    assert same_content("0x8DC0FFEE", "0x8DC0FFEE") is None


def test_the_md5_kept_is_that_of_the_bytes_read_not_the_listings() -> None:
    # An empty object's MD5 as GCS and Azure list it (base64)
    empty = "md5:1B2M2Y8AsgTpgAmY7PhCfg=="
    assert tag_of_bytes(empty, b"") == empty == md5_tag(b"")
    # A listing whose MD5 is of other bytes (rewritten since, set by hand, lied about):
    # this device's own, with the listed value it was read under
    wrong = "md5:AAAAAAAAAAAAAAAAAAAAAA=="
    assert tag_of_bytes(wrong, b"") == f"{empty}@{wrong}"
    # Tags this device cannot compute: its own MD5 with them
    plain = "d41d8cd98f00b204e9800998ecf8427e"
    assert tag_of_bytes("s3-etag:abc", b"") == f"s3-md5:{plain}@s3-etag:abc"  # KMS, parts
    assert tag_of_bytes("crc32c:AAAAAA==", b"") == f"{empty}@crc32c:AAAAAA=="  # a compose
    assert tag_of_bytes(None, b"") is None
    for listed in [wrong, "s3-etag:abc", "crc32c:AAAAAA=="]:
        kept = tag_of_bytes(listed, b"")
        assert kept is not None and bytes_decide(kept) and bytes_match(kept, b"")
        assert same_content(kept, listed) is True
    # An S3 ETag that is the MD5 of the bytes read: kept as one, still compared as an ETag
    assert tag_of_bytes(f"s3-etag:{plain}", b"") == f"s3-md5:{plain}"
    assert same_content(f"s3-md5:{plain}", f"s3-etag:{plain}") is True
    assert same_content(f"s3-md5:{plain}", "s3-etag:abc-2") is False
    assert bytes_decide(f"s3-md5:{plain}")
    assert bytes_match(f"s3-md5:{plain}", b"") and not bytes_match(f"s3-md5:{plain}", b"x")
    assert bytes_match(empty, b"") and not bytes_match(empty, b"x")
    # The same bytes found under another tag: that one is kept with the checksum
    both = confirmed(f"s3-md5:{plain}", "s3-etag:abc-2")
    assert both == f"s3-md5:{plain}@s3-etag:abc-2" and bytes_match(both, b"")
    assert same_content(both, "s3-etag:abc-2") and same_content(both, f"s3-etag:{plain}")
    assert same_content(both, "s3-etag:abc-3") is False
    assert confirmed(confirmed(both, "s3-etag:zz"), None) == f"s3-md5:{plain}@s3-etag:zz"
    assert confirmed(empty, None) == empty
    composed = confirmed(empty, "crc32c:AAAAAA==")  # a GCS compose of the same bytes
    assert composed == f"{empty}@crc32c:AAAAAA==" and bytes_match(composed, b"")
    assert same_content(composed, "crc32c:AAAAAA==") and same_content(composed, empty)
    assert same_content(composed, "crc32c:BBBBBB==") is None  # read again
    assert confirmed("s3-etag:abc-2", "s3-etag:abc-3") == "s3-etag:abc-2"  # no checksum
    # A hostile listed tag holding the separator stays one value
    odd = confirmed(empty, "md5:a@b")
    assert same_content(odd, "md5:a@b") and bytes_match(odd, b"")
