"""Storage URLs: where a storage root is and the non-secret options to reach it.

::

    /path/to/folder   file:///path/to/folder
    s3://bucket/prefix?endpoint_url=https://…&region=eu-west-1&profile=work
    gs://bucket/prefix?endpoint_url=http://127.0.0.1:4443&project=my-project
    az://container/prefix?account_name=myaccount&endpoint_url=https://…

A URL never carries a secret: access keys, account keys, SAS tokens and connection strings
come from the SDKs' own environment variables and credential files, or from the OS keyring
of a named profile (see ``profiles``). Options the user does not give are not passed on, so
the SDKs' defaults (``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ``STORAGE_EMULATOR_HOST``, …)
still apply.

An error about a URL never quotes a part of it that may hold a secret: user info is refused
before anything else is looked at (a password holding ``#``, ``?`` or ``/`` splits the URL
elsewhere than meant), and a message shows at most the scheme, bucket and prefix
(`_redacted`), or an address's scheme and host. A URL that ``urlsplit`` cannot read (a
``[`` … ``]`` that is no IP address, as in a password ``pa[ss]word``) is refused with a
fixed message (`split_url`): Python's own quotes the text between the brackets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit

from .base import StorageError, check_object_path

CLOUD_KINDS = ("s3", "gs", "az")
SCHEME_ALIASES = {"s3": "s3", "gs": "gs", "gcs": "gs", "az": "az", "abfs": "az", "azure": "az"}

COMMON_OPTIONS = ("timeout", "retries")
IDENTITY_OPTIONS = ("endpoint_url", "account_name")
OPTIONS: Mapping[str, tuple[str, ...]] = {
    "s3": (
        "endpoint_url",
        "region",
        "profile",
        "addressing_style",
        "anonymous",
        "queue_url",  # an SQS queue with the bucket's event notifications (sqs.py)
        *COMMON_OPTIONS,
    ),
    "gs": ("endpoint_url", "project", "credentials_file", "anonymous", *COMMON_OPTIONS),
    "az": ("account_name", "endpoint_url", "anonymous", *COMMON_OPTIONS),
}
# Query parameters that are secrets (or SAS fields): refused with a pointer to the safe way.
_SECRET_PARAMS = {
    "secret",
    "key",
    "token",
    "secret_access_key",
    "aws_secret_access_key",
    "access_key_id",
    "aws_access_key_id",
    "session_token",
    "account_key",
    "sas_token",
    "connection_string",
    "credential",
    "password",
    "sig",
    "se",
    "sv",
    "sp",
}
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
MAX_TIMEOUT = 600.0
MAX_RETRIES = 10

_BUCKET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,221}")
_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class StorageUrlError(StorageError):
    """A storage URL or option that cannot be used as written."""


@dataclass(frozen=True, slots=True)
class StorageLocation:
    """A parsed storage root.

    ``kind`` is ``file``, ``s3``, ``gs`` or ``az``. For ``file`` ``bucket`` is the folder
    path and ``prefix`` is empty; otherwise ``bucket`` is the bucket (or container) and
    ``prefix`` the object-name prefix inside it, without leading or trailing ``/``.
    """

    kind: str
    bucket: str
    prefix: str = ""
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def is_cloud(self) -> bool:
        return self.kind in CLOUD_KINDS

    def url(self) -> str:
        """The canonical URL (options sorted); parsing it gives this location back."""
        if self.kind == "file":
            return self.bucket
        path = f"/{quote(self.prefix)}" if self.prefix else ""
        query = urlencode(sorted(self.options.items()))
        return f"{self.kind}://{self.bucket}{path}{'?' + query if query else ''}"

    def identity(self) -> str:
        """The URL that names the data: root plus endpoint and account, no tuning options.

        Two locations with the same identity reach the same objects, so local caches are
        keyed by it (timeouts, retries, regions and credentials may change freely).
        """
        if self.kind == "file":
            return self.bucket
        keep = sorted((k, v) for k, v in self.options.items() if k in IDENTITY_OPTIONS)
        path = f"/{quote(self.prefix)}" if self.prefix else ""
        query = urlencode(keep)
        return f"{self.kind}://{self.bucket}{path}{'?' + query if query else ''}"

    def root(self) -> str:
        """``kind://bucket/prefix`` without options: the short name shown to users."""
        if self.kind == "file":
            return self.bucket
        return f"{self.kind}://{self.bucket}{'/' + self.prefix if self.prefix else ''}"

    def with_options(self, extra: Mapping[str, str]) -> StorageLocation:
        """This location with ``extra`` options added; giving one twice is an error."""
        # Checked first: a value that is refused (an endpoint with a password) is never
        # quoted below.
        added = _checked(self.kind, self.bucket, self.prefix, extra).options
        both = set(added) & set(self.options)
        clash = sorted(k for k in both if added[k] != self.options[k])
        if clash:
            raise StorageUrlError(
                f"option {clash[0]!r} is given twice with different values "
                f"({self.options[clash[0]]!r} and {added[clash[0]]!r})"
            )
        merged = dict(self.options)
        merged.update(added)
        return _checked(self.kind, self.bucket, self.prefix, merged)

    @property
    def timeout(self) -> float:
        return float(self.options.get("timeout", DEFAULT_TIMEOUT))

    @property
    def retries(self) -> int:
        return int(self.options.get("retries", DEFAULT_RETRIES))

    @property
    def anonymous(self) -> bool:
        return _BOOL[self.options.get("anonymous", "false").lower()]


def split_url(value: str, what: str = "the storage URL") -> SplitResult:
    """``urlsplit(value)``, or a ``StorageUrlError`` that quotes no part of ``value``.

    ``urlsplit`` refuses a ``[`` … ``]`` in the authority that is no IP address (a
    password ``pa[ss]word``) with a ``ValueError`` that quotes the bracketed text: a piece
    of a secret. ``what`` names the value in the message (never the value itself)."""
    try:
        parts = urlsplit(value)
        parts.hostname  # noqa: B018 - as every caller reads it
    except ValueError:
        raise StorageUrlError(
            f"{what} cannot be read: '[' and ']' may only enclose an IPv6 address"
        ) from None
    return parts


def is_url(spec: str) -> bool:
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", spec) is not None


def parse_storage_url(spec: str) -> StorageLocation:
    """Parse a folder path, ``file://`` URL or ``s3://``/``gs://``/``az://`` URL.

    Raises ``StorageUrlError`` with what to change when the URL cannot be used.
    """
    if not spec or not spec.strip():
        raise StorageUrlError("empty storage location: give a folder, s3://, gs:// or az:// URL")
    if not is_url(spec):
        return StorageLocation("file", spec)
    scheme = spec.split("://", 1)[0].lower()
    if scheme == "file":
        return StorageLocation("file", _file_url_path(spec))
    kind = SCHEME_ALIASES.get(scheme)
    if kind is None:
        raise StorageUrlError(
            f"unknown storage URL scheme {scheme}:// — use a folder, s3://, gs:// or az://"
        )
    # Before any other check, whose message might quote the URL, and before urlsplit,
    # whose errors do: a bucket never holds ':' or '@', so either in the part after
    # '://' is user info (or a port).
    credentials = StorageUrlError(
        "storage URLs must not carry credentials ('user:secret@') or a port: "
        "use the SDK's environment variables or 'bucket-chat storage add' "
        "(and endpoint_url=https://host:port for another service)"
    )
    if _has_user_info(spec):
        raise credentials
    parts = split_url(spec)
    if parts.username is not None or parts.password is not None:
        raise credentials
    if parts.fragment:
        raise StorageUrlError(f"storage URLs have no '#' part: {_redacted(spec)}")
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in options:
            raise StorageUrlError(f"option {name!r} is given twice in the URL")
        options[name] = value
    bucket = unquote(parts.netloc)
    if ":" in bucket or "@" in bucket:  # written %3A or %40: not quoted either
        raise StorageUrlError(
            "storage URLs must not carry credentials ('user:secret@'), even %-encoded"
        )
    return _checked(kind, bucket, unquote(parts.path), options)


def _authority(spec: str) -> str:
    """The part of a URL between ``://`` and the first ``/``, ``?`` or ``#``."""
    return re.split(r"[/?#]", spec.split("://", 1)[-1], maxsplit=1)[0]


def _has_user_info(spec: str) -> bool:
    """Whether the authority of a cloud URL holds ``@`` or ``:``: ``s3://KEY:pa#ss@bucket``
    has no user info as ``urlsplit`` reads it (its netloc is ``KEY:pa``), yet ``pa`` is a
    piece of a secret."""
    authority = _authority(spec)
    return "@" in authority or ":" in authority


def _checked(kind: str, bucket: str, path: str, options: Mapping[str, str]) -> StorageLocation:
    allowed = OPTIONS[kind]
    clean: dict[str, str] = {}
    for name, value in options.items():
        key = name.lower()
        if key in _SECRET_PARAMS:
            raise StorageUrlError(
                f"{name!r} is a secret and must not be written in a storage URL: use the "
                "SDK's environment variables or credential files, or keep it in the OS "
                "keyring with 'bucket-chat storage add NAME URL'"
            )
        if key not in allowed:
            raise StorageUrlError(
                f"unknown option {name!r} for {kind}:// (known: {', '.join(allowed)})"
            )
        clean[key] = _check_option(key, value.strip())
    what = {"s3": "bucket", "gs": "bucket", "az": "container"}[kind]
    if not bucket:
        raise StorageUrlError(f"{kind}:// URL without a {what}: write {kind}://{what}/prefix")
    if not _BUCKET_RE.fullmatch(bucket):
        raise StorageUrlError(
            f"{bucket!r} is not a valid {what} name "
            "(letters, digits, '.', '-' and '_', 2 to 222 characters)"
        )
    prefix = path.strip("/")
    if prefix:
        try:
            check_object_path(prefix)
        except StorageError:
            raise StorageUrlError(
                f"unsafe prefix {prefix!r} in the URL (no empty, '.' or '..' parts)"
            ) from None
    return StorageLocation(kind, bucket, prefix, MappingProxyType(dict(sorted(clean.items()))))


def _check_option(name: str, value: str) -> str:
    if not value:
        raise StorageUrlError(f"option {name!r} needs a value")
    if any(ord(c) < 32 for c in value):
        raise StorageUrlError(f"option {name!r} contains control characters")
    if name == "endpoint_url":
        # First, before urlsplit (whose errors quote it), and the value is never quoted
        # whole: it may hold a password.
        if "@" in value:
            raise StorageUrlError("endpoint_url must not carry credentials, a query or a '#' part")
        parts = split_url(value, "endpoint_url")
        if parts.query or parts.fragment:
            raise StorageUrlError("endpoint_url must not carry credentials, a query or a '#' part")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StorageUrlError(
                f"endpoint_url must look like https://host[:port], not {address_shown(value)}"
            )
        try:
            parts.port  # noqa: B018 - raises on a bad port (quoting it: not re-raised)
        except ValueError:
            raise StorageUrlError(
                f"endpoint_url has a bad port (after {address_shown(value)})"
            ) from None
        return value.rstrip("/")
    if name == "timeout":
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if not 0 < seconds <= MAX_TIMEOUT:
            raise StorageUrlError(f"timeout must be seconds between 0 and {MAX_TIMEOUT:g}")
        return value
    if name == "retries":
        if not value.isdigit() or not 1 <= int(value) <= MAX_RETRIES:
            raise StorageUrlError(f"retries must be a whole number from 1 to {MAX_RETRIES}")
        return str(int(value))
    if name == "anonymous":
        if value.lower() not in _BOOL:
            raise StorageUrlError("anonymous must be true or false")
        return value.lower()
    if name == "queue_url":
        from .sqs import check_queue_url

        try:
            return check_queue_url(value)
        except ValueError as exc:  # its own messages, which quote no part of the value
            raise StorageUrlError(str(exc)) from None
    if name == "addressing_style" and value not in ("auto", "path", "virtual"):
        raise StorageUrlError("addressing_style must be auto, path or virtual")
    return value


def _file_url_path(spec: str) -> str:
    from urllib.request import url2pathname  # slow to import; file:// URLs are rare

    if "@" in _authority(spec):  # before urlsplit, whose errors quote the authority
        raise StorageUrlError("file:// URLs must not carry credentials ('user:secret@')")
    parts = split_url(spec, "the file:// URL")
    if parts.username is not None:
        raise StorageUrlError("file:// URLs must not carry credentials ('user:secret@')")
    if parts.query or parts.fragment:
        raise StorageUrlError(
            "file:// URLs take no options and no '#' part: write the folder's path alone"
        )
    if parts.netloc not in ("", "localhost"):
        host = parts.hostname or ""  # quoted when it can be no piece of a secret
        plain = re.fullmatch(r"[a-z0-9.-]+", host) and ":" not in parts.netloc
        shown = repr(host) if plain else "…"
        raise StorageUrlError(
            f"file:// URL with host {shown}: mount the share and use its folder path"
        )
    path = url2pathname(parts.path)
    if not path:
        raise StorageUrlError("file:// URL without a path")
    return path


def _redacted(spec: str) -> str:
    """What of the storage URL ``spec`` a message may quote: no user info, no query, no
    fragment; only ``scheme://`` when user info may be there at all."""
    head = re.split(r"[?#]", spec, maxsplit=1)[0]
    scheme = spec.split("://", 1)[0]
    if "@" in spec or _has_user_info(spec):
        return f"{scheme}://…"
    return head


def address_shown(value: str) -> str:
    """An address (an endpoint or queue URL) as a message may quote it: its scheme and
    host only (``'minio://127.0.0.1'``), never user info, a path or a query; a value
    that is no URL at all is not quoted."""
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
    except ValueError:  # its text quotes a part of the value
        return "a value that is no address"
    if "://" not in value or not parts.scheme:
        return "a value without a scheme (http:// or https://)"
    if not re.fullmatch(r"[A-Za-z0-9._\[\]:-]*", host):
        host = "…"
    return repr(f"{parts.scheme}://{host}")
