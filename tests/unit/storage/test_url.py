"""Storage URLs: what each form means, and the mistakes refused before anything is contacted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bucket_chat_desktop.storage import open_storage
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.storage.url import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    StorageLocation,
    StorageUrlError,
    address_shown,
    parse_storage_url,
)


@pytest.mark.parametrize(
    ("url", "kind", "bucket", "prefix", "options"),
    [
        ("s3://bucket", "s3", "bucket", "", {}),
        ("s3://bucket/", "s3", "bucket", "", {}),
        ("s3://bucket/team/chat/", "s3", "bucket", "team/chat", {}),
        (
            "s3://b.k-t/p?region=eu-west-1&endpoint_url=http://127.0.0.1:9000/&profile=work",
            "s3",
            "b.k-t",
            "p",
            {"endpoint_url": "http://127.0.0.1:9000", "profile": "work", "region": "eu-west-1"},
        ),
        ("gs://bucket/p?project=my-proj", "gs", "bucket", "p", {"project": "my-proj"}),
        ("gcs://bucket/p", "gs", "bucket", "p", {}),
        (
            "az://container/p?account_name=acct&endpoint_url=https://acct.blob.core.windows.net",
            "az",
            "container",
            "p",
            {"account_name": "acct", "endpoint_url": "https://acct.blob.core.windows.net"},
        ),
        ("abfs://container", "az", "container", "", {}),
        ("S3://bucket/p?ANONYMOUS=TRUE", "s3", "bucket", "p", {"anonymous": "true"}),
        ("s3://bucket/caf%C3%A9", "s3", "bucket", "café", {}),
    ],
)
def test_cloud_urls(url: str, kind: str, bucket: str, prefix: str, options: dict[str, str]) -> None:
    loc = parse_storage_url(url)
    assert (loc.kind, loc.bucket, loc.prefix, dict(loc.options)) == (kind, bucket, prefix, options)
    assert loc.is_cloud
    assert parse_storage_url(loc.url()) == loc  # the canonical URL round-trips
    assert loc.root() == f"{kind}://{bucket}{'/' + prefix if prefix else ''}"


def test_folders_and_file_urls(tmp_path: Path) -> None:
    assert parse_storage_url(str(tmp_path)) == StorageLocation("file", str(tmp_path))
    assert parse_storage_url("relative/folder").bucket == "relative/folder"
    assert parse_storage_url(f"file://{tmp_path}").bucket == str(tmp_path)
    assert parse_storage_url(f"file://localhost{tmp_path}").bucket == str(tmp_path)
    assert parse_storage_url("file:///tmp/a%20b").bucket == "/tmp/a b"
    assert not parse_storage_url(str(tmp_path)).is_cloud
    for bad, message in [
        ("file://server/share", "mount the share"),
        ("file:///tmp/x?region=y", "take no options"),
        ("file://", "without a path"),
    ]:
        with pytest.raises(StorageUrlError, match=message):
            parse_storage_url(bad)


def test_defaults_and_tuning_options() -> None:
    loc = parse_storage_url("s3://bucket")
    assert (loc.timeout, loc.retries, loc.anonymous) == (DEFAULT_TIMEOUT, DEFAULT_RETRIES, False)
    loc = parse_storage_url("gs://bucket?timeout=2.5&retries=1&anonymous=yes")
    assert (loc.timeout, loc.retries, loc.anonymous) == (2.5, 1, True)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty storage location"),
        ("ftp://host/x", "unknown storage URL scheme ftp://"),
        ("s3://", "without a bucket"),
        ("s3:///prefix", "without a bucket"),
        ("s3://b", "not a valid bucket name"),
        ("s3://bad_bucket!/x", "not a valid bucket name"),
        ("az://c%2Fx/y", "not a valid container name"),
        ("s3://bucket/a/../b", "unsafe prefix"),
        ("s3://bucket/a//b", "unsafe prefix"),
        ("s3://bucket/p#frag", "no '#' part"),
        ("s3://user:pass@bucket/p", "must not carry credentials"),
        ("s3://bucket?secret_access_key=x", "is a secret"),
        ("s3://bucket?aws_access_key_id=x", "is a secret"),
        ("az://c1?account_key=x", "is a secret"),
        ("az://c1?sig=x&se=y", "is a secret"),
        ("az://c1?connection_string=x", "is a secret"),
        ("s3://bucket?project=x", "unknown option 'project' for s3://"),
        ("gs://bucket?region=x", "unknown option 'region' for gs://"),
        ("s3://bucket?region=a&region=b", "given twice"),
        ("s3://bucket?region=", "needs a value"),
        ("s3://bucket?endpoint_url=ftp://host", "must look like https://host"),
        ("s3://bucket?endpoint_url=localhost:9000", "must look like https://host"),
        ("s3://bucket?endpoint_url=http://u:p@host", "must not carry credentials"),
        ("s3://bucket?endpoint_url=http://host:99999", "bad port"),
        ("s3://bucket?timeout=0", "timeout must be"),
        ("s3://bucket?timeout=nan", "timeout must be"),
        ("s3://bucket?timeout=9999", "timeout must be"),
        ("s3://bucket?retries=0", "retries must be"),
        ("s3://bucket?retries=2.5", "retries must be"),
        ("s3://bucket?anonymous=maybe", "anonymous must be"),
        ("s3://bucket?addressing_style=dns", "addressing_style must be"),
    ],
)
def test_mistakes_are_refused_with_the_fix(url: str, message: str) -> None:
    with pytest.raises(StorageUrlError, match=message) as caught:
        parse_storage_url(url)
    assert "\n" not in str(caught.value)


def test_secrets_never_echo_in_errors() -> None:
    with pytest.raises(StorageUrlError) as caught:
        parse_storage_url("s3://bucket?secret_access_key=TOPSECRET")
    assert "TOPSECRET" not in str(caught.value)


SECRET = "wJalrXUtnFEMIK7MDENG"
# Where a secret can hide in a storage URL, and why each once reached an error message.
SECRET_URLS = {
    # a '#' in the password: urlsplit sees a fragment first, and the '#' check's message
    # quoted everything before the first '?'
    "password-with-hash": f"s3://AKIAIOSFODNN7EXAMPLE:{SECRET[:6]}#{SECRET[6:]}@mybucket/p",
    # a '/' in the password (AWS secret keys hold '/'): the netloc is "KEY:wJalrX", quoted
    # as a bad bucket name
    "password-with-slash": f"s3://AKIAIOSFODNN7EXAMPLE:{SECRET[:6]}/{SECRET[6:]}@bkt/p",
    "password-with-query-mark": f"gs://user:{SECRET[:6]}?{SECRET[6:]}@bucket/p",
    "password-only": f"az://:{SECRET}@container",
    "percent-encoded": f"s3://KEY%3A{SECRET}%40bucket/p",
    "fragment": f"s3://bucket/p#{SECRET}",
    # an endpoint other than http(s), or with a bad port, was quoted whole
    "endpoint-other-scheme": f"s3://mybucket/p?endpoint_url=minio://admin:{SECRET}@127.0.0.1:9000",
    "endpoint-hash-in-password": f"s3://b1/p?endpoint_url=http://admin:{SECRET[:6]}%23{SECRET[6:]}@h",
    "endpoint-slash-in-password": f"s3://b1/p?endpoint_url=http://admin:{SECRET}/x@127.0.0.1",
    "endpoint-fragment": f"s3://b1/p?endpoint_url=http://127.0.0.1%23{SECRET}",
    "queue-other-scheme": f"s3://b1?queue_url=sqs://admin:{SECRET}@127.0.0.1/1/q",
    "queue-slash-in-password": f"s3://b1?queue_url=http://admin:{SECRET}/x@127.0.0.1/1/q",
    # file:// with a query or user info was quoted whole
    "file-query": f"file:///srv/rooms?password={SECRET}",
    "file-user-info": f"file://admin:{SECRET}@fileserver/srv/rooms",
    "file-fragment": f"file:///srv/rooms#{SECRET}",
    # a '[' … ']' in a password (red team rt66): urlsplit ran before the user-info and
    # '@' checks and its ValueError quoted the bracketed piece ("'…' does not appear to
    # be an IPv4 or IPv6 address"): a crash out of the CLI and the storage form, and the
    # queue_url error's text
    "password-with-brackets": f"s3://AKIAEXAMPLE:{SECRET[:6]}[{SECRET[6:]}]@bucket/p",
    "endpoint-brackets-in-password": (
        f"s3://b1/p?endpoint_url=https://minio:{SECRET[:6]}[{SECRET[6:]}]@127.0.0.1:9000"
    ),
    "queue-brackets-in-password": (
        f"s3://b1?queue_url=https://AKIA:{SECRET[:6]}[{SECRET[6:]}]@sqs.eu-west-1.amazonaws.com/1/q"
    ),
    "bucket-brackets": f"s3://b1[{SECRET}]/p",
    "endpoint-brackets": f"s3://b1/p?endpoint_url=https://[{SECRET}",
    "endpoint-brackets-in-port": f"s3://b1/p?endpoint_url=https://h:[{SECRET}]",
    "queue-brackets": f"s3://b1?queue_url=https://sqs[{SECRET}]/1/q",
    "file-brackets": f"file://[{SECRET}]/srv/rooms",
    "file-half-bracket": f"file://[{SECRET}/srv/rooms",
}


@pytest.mark.parametrize("url", list(SECRET_URLS.values()), ids=list(SECRET_URLS))
def test_a_secret_in_a_storage_url_is_never_quoted(url: str) -> None:
    with pytest.raises(StorageUrlError) as caught:
        parse_storage_url(url)
    text = str(caught.value)
    for piece in (SECRET, SECRET[:6], SECRET[6:]):
        assert piece not in text, text


def test_user_info_is_refused_before_anything_else_is_looked_at() -> None:
    for url in (
        SECRET_URLS["password-with-hash"],
        SECRET_URLS["password-with-slash"],
        SECRET_URLS["password-with-brackets"],
        SECRET_URLS["endpoint-brackets-in-password"],
        SECRET_URLS["queue-brackets-in-password"],
    ):
        with pytest.raises(StorageUrlError, match="must not carry credentials"):
            parse_storage_url(url)


@pytest.mark.parametrize(
    ("key", "what"),
    [
        ("bucket-brackets", "the storage URL"),
        ("endpoint-brackets", "endpoint_url"),
        ("endpoint-brackets-in-port", "endpoint_url"),
        ("queue-brackets", "queue_url"),
        ("file-brackets", "the file:// URL"),
        ("file-half-bracket", "the file:// URL"),
    ],
)
def test_a_url_python_cannot_split_is_refused_in_fixed_words(key: str, what: str) -> None:
    """urlsplit's own ValueError quotes the text between the brackets: never shown, and
    never let out (it made a traceback of the CLI and the storage form's crash)."""
    with pytest.raises(StorageUrlError) as caught:
        parse_storage_url(SECRET_URLS[key])
    assert str(caught.value) == (
        f"{what} cannot be read: '[' and ']' may only enclose an IPv6 address"
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_an_address_python_cannot_split_is_not_quoted() -> None:
    for value in (
        f"https://[{SECRET}",
        f"https://minio:pa[{SECRET}]word@h",
        f"http://h:[{SECRET}]",
    ):
        assert address_shown(value) == "a value that is no address"
    assert address_shown("https://[::1]:9000/x?y") == "'https://::1'"
    loc = parse_storage_url("s3://bucket/p")
    with pytest.raises(StorageUrlError) as caught:
        loc.with_options({"endpoint_url": f"https://minio:pa[{SECRET}]word@127.0.0.1:9000"})
    assert "must not carry credentials" in str(caught.value) and SECRET not in str(caught.value)


def test_a_file_url_host_is_quoted_only_when_it_is_plain() -> None:
    with pytest.raises(StorageUrlError, match="with host …:") as caught:
        parse_storage_url(f"file://ADMIN:{SECRET}/srv/rooms")
    assert SECRET not in str(caught.value)


def test_a_secret_given_as_an_extra_option_is_not_quoted_either() -> None:
    """A profile's options are merged with ``with_options``: a clash once quoted both values
    before either was checked."""
    loc = parse_storage_url("s3://bucket/p?endpoint_url=http://127.0.0.1:9000")
    for value in (f"http://admin:{SECRET}@127.0.0.1:9000", f"minio://admin:{SECRET}@h"):
        with pytest.raises(StorageUrlError) as caught:
            loc.with_options({"endpoint_url": value})
        assert SECRET not in str(caught.value)
    with pytest.raises(StorageUrlError, match="given twice") as caught:
        loc.with_options({"endpoint_url": "http://127.0.0.1:9001"})
    assert "127.0.0.1:9001" in str(caught.value), "a value that is no secret is still shown"


def test_an_address_is_shown_by_its_scheme_and_host() -> None:
    with pytest.raises(StorageUrlError, match=re.escape("not 'ftp://files.example.com'")):
        parse_storage_url("s3://bucket?endpoint_url=ftp://files.example.com/x/y")
    with pytest.raises(StorageUrlError, match="file:// URL with host 'server'"):
        parse_storage_url("file://server/share")
    with pytest.raises(StorageUrlError, match=r"no '#' part: s3://bucket/p$"):
        parse_storage_url("s3://bucket/p?region=x#frag")


def test_identity_names_the_data_not_the_tuning() -> None:
    a = parse_storage_url("s3://bucket/p?endpoint_url=http://h:9&region=x&timeout=3&retries=1")
    b = parse_storage_url("s3://bucket/p?endpoint_url=http://h:9&profile=other")
    assert a.identity() == b.identity() == "s3://bucket/p?endpoint_url=http%3A%2F%2Fh%3A9"
    assert parse_storage_url("s3://bucket/p").identity() != a.identity()
    az = parse_storage_url("az://c1/p?account_name=one&timeout=1")
    assert az.identity() == "az://c1/p?account_name=one"
    assert parse_storage_url("gs://bucket/caf%C3%A9").identity() == "gs://bucket/caf%C3%A9"
    assert parse_storage_url("/tmp/x").identity() == "/tmp/x"


def test_with_options() -> None:
    loc = parse_storage_url("s3://bucket/p?region=eu-west-1")
    more = loc.with_options({"endpoint_url": "http://127.0.0.1:1", "region": "eu-west-1"})
    assert dict(more.options) == {"endpoint_url": "http://127.0.0.1:1", "region": "eu-west-1"}
    with pytest.raises(StorageUrlError, match="given twice with different values"):
        loc.with_options({"region": "us-east-1"})
    with pytest.raises(StorageUrlError, match="unknown option"):
        loc.with_options({"project": "x"})


def test_open_storage_picks_the_backend_without_contacting_it(tmp_path: Path) -> None:
    from bucket_chat_desktop.storage.azure import AzureStorage
    from bucket_chat_desktop.storage.gcs import GCSStorage
    from bucket_chat_desktop.storage.s3 import S3Storage

    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    s3 = open_storage("s3://bucket/team?endpoint_url=http://127.0.0.1:1&region=eu-west-1")
    assert isinstance(s3, S3Storage)
    assert s3.describe() == "s3://bucket/team at http://127.0.0.1:1"
    assert isinstance(open_storage("gs://bucket"), GCSStorage)
    az = open_storage("az://container/x?account_name=acct")
    assert isinstance(az, AzureStorage)
    assert az.describe() == "az://container/x"


def test_importing_storage_is_cheap_and_side_effect_free() -> None:
    code = (
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "import bucket_chat_desktop.storage\n"
        "import bucket_chat_desktop.storage.url, bucket_chat_desktop.storage.profiles\n"
        "heavy = ('fsspec', 's3fs', 'gcsfs', 'adlfs', 'botocore', 'aiohttp', 'azure',\n"
        "         'google', 'keyring')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
        "print(dict(os.environ) == before)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True"
