"""Buckets over fsspec's async file systems (s3fs, gcsfs, adlfs).

One class, ``FsspecStorage``, implements the ``Storage`` contract; a small subclass per
service (``s3.py``, ``gcs.py``, ``azure.py``) builds the file system, lists with the
service's own cursor and turns the service's errors into ``StorageError`` classes.

What the caller must know:

- Every request runs on fsspec's own I/O loop (a thread of its own, ``fsspec.asyn.
  get_loop``), whichever loop awaits it (``io_loop``): the SDKs parse each answer there
  (a listing page of 1,000 keys took 0.2 s of the caller's loop on moto, a stall of the
  window in the app). The fsspec instance is created on first use on that loop
  (``asynchronous=True``) and only its ``_``-prefixed coroutines are awaited there.
  Awaiting, cancelling and deadlines work as for any coroutine; ``close()`` the storage
  when done (the loop that first awaited it also closes it as it ends, as a safety net).
  ``close()`` ends the requests still running with a ``StorageError``.
- Listings are always fresh: nothing is served from fsspec's listing cache.
- ``put_if_absent`` relies on the service's create-only precondition (S3 ``If-None-Match``,
  GCS ``ifGenerationMatch=0``, Azure ``If-None-Match: *``); ``probe_create_only`` checks
  that the service honours it.
- Object names whose part below the listed prefix starts with ``.``, ends with ``/`` or
  is otherwise not a valid object path are left out of listings, as on a local folder.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import errno
import functools
import hashlib
import logging
import os
import re
import socket
import ssl
import time
import weakref
import zlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import replace
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar
from urllib.parse import quote, unquote

from .base import (
    DEFAULT_MAX_READ,
    PROBE_PREFIX,
    READ_PROGRESS,
    READ_RATE_FLOOR,
    AlreadyExistsError,
    Level,
    ObjectInfo,
    ObjectTooLargeError,
    Storage,
    StorageAuthError,
    StorageError,
    StorageNotFoundError,
    StorageOfflineError,
    StoragePermissionError,
    StorageThrottledError,
    WriteNotConfirmedError,
    check_object_path,
    level_first,
    level_of,
    md5_tag,
    taken_but_missing,
    tell_received,
    utf8_text,
)
from .url import StorageLocation

log = logging.getLogger("bucket_chat.storage")

T = TypeVar("T")
P = ParamSpec("P")
S = TypeVar("S", bound="FsspecStorage")


def io_loop() -> asyncio.AbstractEventLoop:
    """The loop every cloud request runs on: fsspec's own I/O loop, on a daemon thread
    of its own (the one fsspec's blocking calls use), started on first use."""
    from fsspec.asyn import get_loop  # type: ignore[import-untyped]

    loop: asyncio.AbstractEventLoop = get_loop()
    return loop


def on_io_loop(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """A public ``FsspecStorage`` coroutine that runs on ``io_loop`` (``_there``)."""

    @functools.wraps(method)
    async def there(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._there(method(self, *args, **kwargs))

    return there


SERVICE_NAMES = {"s3": "S3", "gs": "GCS", "az": "Azure Blob"}

IMMUTABILITY_HINT = {
    "s3": "S3 Object Lock",
    "gs": "a GCS retention policy (Bucket Lock)",
    "az": "Azure immutable blob storage (version-level WORM)",
}


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes/contexts, innermost last, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


_URL_USER_INFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#'\"<>@]*@")
_URL_QUERY = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s?#'\"<>]*)[?#][^\s'\"<>]*")
SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_CLIENT_SECRET",
)
"""Environment variables of the SDKs that hold a secret (``secret_texts``)."""
_SECRET_FIELDS = ("accountkey", "sharedaccesssignature", "sig")
_MIN_SECRET_CHARS = 6  # shorter values are no secret worth the name, and common words


def without_url_secrets(text: str) -> str:
    """``text`` with the user info and the query (or ``#`` part) of every URL in it left
    out: an SDK's error quotes the request's URL, whose query holds an Azure SAS token
    (``…&sig=…``), or the endpoint as given, which may hold a password."""
    return _URL_QUERY.sub(r"\1?…", _URL_USER_INFO.sub(r"\1…@", text))


def one_line(text: object, limit: int = 200) -> str:
    """The first line of a service message, trimmed, without the secrets a URL in it may
    hold (``without_url_secrets``): error messages stay one line and quote no secret."""
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    line = without_url_secrets(line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def secret_texts(secrets: Mapping[str, str]) -> set[str]:
    """Every text a message must not quote: the secrets given (a profile's), those of the
    SDKs' environment variables (``SECRET_ENV``), and the account key, SAS token and SAS
    signature inside a connection string or SAS token, as written and %-encoded."""
    found: set[str] = set()
    values = [*secrets.values(), *(os.environ.get(name) or "" for name in SECRET_ENV)]
    for value in values:
        found.add(value.strip())
        for part in re.split(r"[;&?]", value):
            key, sep, field = part.partition("=")
            if sep and key.strip().lower() in _SECRET_FIELDS:
                found.update((field.strip(), unquote(field.strip())))
    found.update([quote(text, safe="") for text in found] + [unquote(text) for text in found])
    return {text for text in found if len(text) >= _MIN_SECRET_CHARS}


def hide_secrets(error: StorageError, secrets: Mapping[str, str]) -> StorageError:
    """``error`` with every secret (``secret_texts``) and every URL's user info and query
    left out of its message: whatever an SDK's text quoted (a connection string's account
    key in a URL it could not read, a SAS token in a request's URL) is never shown."""
    text = str(error)
    clean = without_url_secrets(text)
    for secret in sorted(secret_texts(secrets), key=len, reverse=True):
        clean = clean.replace(secret, "…")
    if clean != text:
        error.args = (clean, *error.args[1:])
    return error


CODE_CHARS = 80
"""The most of a service's error code (``NoSuchKey``, ``AccessDenied``) a message quotes:
a hostile or broken service sends any text there (200,000 characters over many lines
made a status line, the command line's error and the log as long)."""


def service_code(value: object) -> str:
    """A service's error code, or a region it names, for comparing and quoting: one line
    of at most ``CODE_CHARS`` characters ("" for none). Real ones are much shorter."""
    return one_line(value, CODE_CHARS) if value else ""


MIN_READ_RATE = 256 * 1024
"""Bytes per second a read must keep up once the service's own time is used up
(``Meter``)."""


ATTEMPT_SLACK = 2.0
"""Seconds a read's deadline allows each attempt beyond the service's ``timeout``
(``FsspecStorage.read_base``)."""

MIN_WRITE_RATE = 64 * 1024
"""Bytes per second a write's upload must keep up once the service's own time is used
up (``FsspecStorage.write_deadline``): a quarter of the read's rate, as a home link's
upstream is often a tenth of its downstream (a 64 MiB segment may take 17 minutes)."""

MAX_WRITE_STRETCH = 16
"""How many times longer than ``MIN_WRITE_RATE`` allows a storage's writes may come to
take to send their bytes (``FsspecStorage.write_deadline``): each write that ran out of
time doubles it, up to this (4 KiB/s: a 10 MB attachment in 41 minutes); a big write
that went through quickly halves it again."""

WRITE_ANSWER_BYTES = 64 * 1024
"""What the service's answer to a write is allowed to weigh, for the write's deadline
(S3 and Azure answer with headers only, GCS with the object's resource: ~1 KB)."""


class Meter:
    """The deadline of one object's read (``FsspecStorage.get``), moved by what arrives.

    A read may take the service's own time (``read_base``: ``timeout`` and a little more
    per attempt, for the first answer and its retries) plus the time what it received so
    far takes at ``MIN_READ_RATE`` — never more than ``max_bytes`` would. The deadline
    was fixed at the most the cap allows: a segment's read (cap 64 MiB) trickled a byte
    now and then for over five minutes whatever its size, holding its chunk of a
    back-fill (and a cold room's first screen) all that time. Now a read that stops
    getting bytes at the rate ends about ``read_base`` after it began, and a slow read
    that keeps the rate goes on as long as before. ``_cat`` tells each piece it receives
    to ``got``."""

    def __init__(
        self, scope: asyncio.Timeout, base: float, cap: float, rate: int = MIN_READ_RATE
    ) -> None:
        self._scope = scope
        self._start = asyncio.get_running_loop().time()
        self.base = base
        self.cap = cap
        self.rate = rate  # ``MIN_READ_RATE``, or a caller's floor (``READ_RATE_FLOOR``)
        self.received = 0

    def allowed(self) -> float:
        """Seconds the read may take, with what it received so far."""
        return min(self.cap, self.base + self.received / self.rate)

    def got(self, size: int) -> None:
        self.received += size
        self._scope.reschedule(self._start + self.allowed())
        tell_received(size)


LIST_MAX_PAGES = 1_000
"""Pages one listing may take. A service answers a listing page by page, each page
naming the next; a broken or hostile one can name a next page for ever (a new token
each time, pages empty or full). 1,000 pages hold a million objects at S3's 1,000 per
page; a folder of this chat (one day of one room, one day's activity markers) is far
below."""
LIST_MAX_OBJECTS = 200_000
"""Objects one listing may name: what the caller holds in memory (~50 MB at this
count). A listing over it is refused whole, never used in part."""
LIST_PAGE_BYTES = 1024 * 1024
"""What one page of a listing is allowed to weigh, for its deadline (1,000 names and
their sizes are ~300 KB of XML)."""

MAX_LISTED_SIZE = 2**63 - 1
"""The largest size a listing may give (SQLite's largest integer; no object is near it)."""
ANSWER_MAX_BYTES = 16 * 1024 * 1024
"""The most one answer held whole may weigh, as sent and once decoded: a listing page
(1,000 names and their sizes are well under 1 MiB), or any other answer of the service
that is not an object's bytes. A broken or hostile service sent pages of 300 MB, and
gzip pages of 1 MB that inflate to 1,000 MiB; each was held whole (3 GB of memory)."""
LIST_TOKEN_MAX = 16 * 1024
"""The longest next-page token a listing may name (real ones are under 1 KiB)."""
NAME_MAX = 1024
"""The longest object name a listing may give, in characters: S3 and GCS allow 1,024
bytes, Azure 1,024 characters. A hostile service named objects of 15 MB, one a page,
and every page was kept (4.5 GB after 150 pages); longer names are skipped."""
XML_TAGS_MAX = 1_000_000
"""The most tags (counted as its ``<`` characters) an XML answer may hold: a page of
1,000 S3 objects holds about 16,000, one of 5,000 Azure blobs with every property
under 500,000. Each tag is an element in memory while the answer is parsed (14 MB of
nested tags took 560 MB and 2 s; a million take at most 140 MB and 0.7 s)."""
_XML_ENTITY = re.compile(rb"<!(?i:entity)")
_XML_ENCODING = re.compile(rb"(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']*)[\"']")


class BadAnswerError(Exception):
    """An answer of the service that cannot be used: too large, or not of the form asked
    (raised below the SDKs, where the request's ``what`` is not known; ``Listing.page``
    and ``FsspecStorage._error`` turn it into a ``StorageError`` that says what failed).
    Not an SDK's error class, so no SDK retries it."""

    def __init__(self, reason: str, *, listing_reason: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.listing_reason = listing_reason or reason


class AnswerTooLargeError(BadAnswerError):
    def __init__(self, limit: int = ANSWER_MAX_BYTES) -> None:
        mib = f"{limit / 2**20:g} MiB" if limit % 2**20 == 0 else f"{limit:,} bytes"
        super().__init__(
            f"the service sent an answer of more than {mib}",
            listing_reason=f"the service sent a listing page of more than {mib}",
        )
        self.limit = limit


def xml_refusal(body: bytes) -> str | None:
    """Why ``body``, an XML answer of the service's (S3, Azure), may not be given to
    Python's parser, or None when it may: it must be in UTF-8 (no byte-order mark of
    UTF-16 or UTF-32, no NUL byte, no other encoding declared), declare no entity, and
    hold at most ``XML_TAGS_MAX`` tags. Both services answer so. The parser expands
    internal entities up to a hundredfold: an 11.8 MB listing page became one name of
    1.1 billion characters (4.3 GB of memory), which the 16 MiB cap on what is *sent*
    cannot see; one in UTF-16 hid its declarations from a search of its bytes; and 14
    MB of nested tags took 560 MB while they were parsed. (A document type alone
    declares nothing: a proxy's HTML error page has one.)"""
    if b"\x00" in body or body.startswith((b"\xfe\xff", b"\xff\xfe")):
        return "is not in UTF-8"
    declared = _XML_ENCODING.match(body)
    if declared is not None and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        return "is not in UTF-8"
    if _XML_ENTITY.search(body) is not None:
        return "declares XML entities"
    if body.count(b"<") > XML_TAGS_MAX:
        return f"holds more than {XML_TAGS_MAX:,} XML tags"
    return None


def refuse_xml_declarations(body: bytes, status: int = 200) -> bytes:
    """``body`` if ``xml_refusal`` finds nothing. Else an answer's body (status under
    300) is a ``BadAnswerError``, before anything parses it; an error's (a proxy's 503
    page) is dropped, so the error is judged by its status alone and retried as such."""
    refusal = xml_refusal(body)
    if refusal is None:
        return body
    if status >= 300:
        return b""
    why = (
        "no storage service's does: such an answer takes hundreds of MB to read"
        if refusal.startswith("holds")
        else "no storage service's does: such an answer can grow a hundredfold as it is read"
    )
    raise BadAnswerError(
        f"the service sent an XML answer that {refusal} ({why})",
        listing_reason=f"the service sent a listing page that {refusal} ({why})",
    )


def redirect_reason(status: int, location: object) -> str:
    """Why an answer that sends the request elsewhere (HTTP 3xx) was not used. None is
    followed: a hostile or misconfigured endpoint would have each request — its body,
    and with S3 the session token — sent to an address of its choosing, and its
    answers taken for the bucket's."""
    where = f" to {one_line(location, 120)!r}" if isinstance(location, str) and location else ""
    return (
        f"the service answered with a redirect (HTTP {status}){where}, which this app never "
        "follows (check the storage's endpoint or queue URL)"
    )


def redirect_refused(what: str, status: int, location: object) -> StorageError:
    """``redirect_reason`` as the error of the step ``what``, worded as ``_error`` words
    a ``BadAnswerError``."""
    return StorageError(
        f"{what}: {redirect_reason(status, location)}: the service is broken or hostile"
    )


READ_PIECE = 64 * 1024


async def read_bounded(
    read: Callable[[int], Awaitable[bytes]],
    encoding: str | None,
    limit: int = ANSWER_MAX_BYTES,
) -> bytes:
    """A whole answer's body, read ``READ_PIECE`` bytes at a time through ``read(n)``
    (``b""`` at its end) and decoded by its ``Content-Encoding`` (none, ``gzip`` or
    ``deflate``) as it comes, never holding more than ``limit`` bytes as sent or as
    decoded: ``AnswerTooLargeError`` past it (a decompression bomb of a page is
    refused after ``limit`` bytes of its output), ``BadAnswerError`` for an encoding
    that cannot be decoded."""
    name = (encoding or "").strip().lower()
    if name not in ("", "identity", "gzip", "x-gzip", "deflate"):
        raise BadAnswerError(f"the service sent an answer in an unknown encoding ({name[:40]!r})")
    inflate: Any = None
    parts: list[bytes] = []
    sent = decoded = 0

    def keep(step: Callable[[], bytes]) -> None:
        """Keep what ``step`` decodes, within the limit."""
        nonlocal decoded
        try:
            data = step()
        except zlib.error as exc:
            raise BadAnswerError(f"the service sent an answer that is not {name}") from exc
        decoded += len(data)
        if decoded > limit:
            raise AnswerTooLargeError(limit)
        parts.append(data)

    while True:
        piece = await read(READ_PIECE)
        if not piece:
            break
        sent += len(piece)
        if sent > limit:
            raise AnswerTooLargeError(limit)
        if name in ("", "identity"):
            keep(functools.partial(bytes, piece))  # the same object: nothing copied
            continue
        if inflate is None:  # gzip; deflate is zlib's format, or raw as some send it
            raw = name == "deflate" and piece[0] & 0x0F != 8
            inflate = zlib.decompressobj(-zlib.MAX_WBITS if raw else 47)
        keep(functools.partial(inflate.decompress, piece, limit - decoded + 1))
    if inflate is not None:  # what the last pieces left (all of their input was taken)
        keep(inflate.flush)
    return b"".join(parts)


def listed_size(value: object) -> int | None:
    """A size as a listing gives it (an integer, or its decimal digits as JSON text does),
    or None if it is not one. Its range is checked by the caller (``MAX_LISTED_SIZE``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and 0 < len(value) <= 40 and value.isascii():
        digits = value.removeprefix("-")
        if digits.isdigit():
            return int(value)
    return None


class _ListingDeadline(Exception):
    """A page of a listing was not received within its deadline (``_page``)."""


class Listing:
    """One listing's pages: each must come within its deadline (``page``), and the
    listing must end (``more``): within ``LIST_MAX_PAGES`` pages and ``LIST_MAX_OBJECTS``
    objects, never naming a page it had already named."""

    def __init__(
        self, storage: FsspecStorage, what: str, stop: str | None = None, most: int | None = None
    ) -> None:
        self._storage = storage
        self.what = what
        self.stop = stop  # a key: no page is asked once one ended at or past it
        # Objects the caller wants at most (``list_first``): no page is asked once the
        # pages held that many; ``cut`` says the service had more to list then.
        self.most = most
        self.cut = False
        self.pages = 0
        self.objects = 0
        self.names = 0  # what counts against ``most``: a level's objects too (``more``)
        self.overlong = 0  # names over ``NAME_MAX`` skipped (``named``)
        self._tokens: set[bytes] = set()  # digests of the tokens named so far

    async def page(self, call: Awaitable[T]) -> T:
        """The page ``call`` asks for, within ``read_base`` plus the time
        ``LIST_PAGE_BYTES`` take at ``MIN_READ_RATE``: a service trickling a byte now and
        then cannot hold a listing open (the socket's read timeout never fires then)."""
        deadline = self._storage.page_deadline()

        async def inner() -> T:
            try:
                return await call
            except TimeoutError as exc:  # the service's own (per-request) timeout
                raise _ServiceTimeoutError() from exc

        try:
            return await asyncio.wait_for(inner(), deadline)
        except _ServiceTimeoutError as exc:
            raise (exc.__cause__ or exc) from None
        except BadAnswerError as exc:
            raise self.refused(exc.listing_reason) from exc
        except TimeoutError as exc:  # only the page's deadline can raise it here
            raise StorageOfflineError(
                f"{self.what}: a page of the listing was not received within "
                f"{deadline:.0f} s (offline, or the service is very slow; retry later)"
            ) from exc

    def refused(self, reason: str) -> StorageError:
        """The error for a page that cannot be used: ``reason`` says why."""
        return StorageError(
            f"{self.what}: {reason}: the service is broken or hostile; "
            "nothing of this listing was used"
        )

    def named(self, name: str) -> str | None:
        """``name``, an object or folder name the service listed, if it is no longer than
        any service allows (``NAME_MAX``); else None: the caller skips it (checked as
        each page comes, so no page's such names are kept past it). One line in the log
        says so, once a listing. Such a name cannot be a segment's or a day's, so it is
        ignored as a name that is not one would be; refusing the listing let one member's
        junk object (on a service that allows long names) unlist a day for everyone."""
        if len(name) <= NAME_MAX:
            return name
        if not self.overlong:
            log.warning(
                "%s: the service listed a name of %d characters (no service allows more "
                "than %d); ignored, as any later one in this listing",
                self.what.removeprefix("cannot list "),
                len(name),
                NAME_MAX,
            )
        self.overlong += 1
        return None

    def malformed(self, reason: str) -> StorageError:
        """The error for a page that is not of the form the service's API gives:
        ``reason`` says what is wrong, in words (``an item without a name``)."""
        service = SERVICE_NAMES.get(self._storage.kind, self._storage.kind)
        return self.refused(f"the {service} listing answer is malformed: {reason}")

    def more(
        self, objects: int, token: object, last: str | None = None, *, names: int | None = None
    ) -> bool:
        """A page naming ``objects`` objects (or prefixes) was received, naming ``token``
        as the next and ``last`` as its last key (pages come in key order): True when
        the next page is to be asked, never once ``last`` reached ``stop``. ``names``:
        what the page named against ``most`` when not ``objects`` (a level's listing
        counts its folders towards the listing's bounds, and its objects right in it
        too towards ``most``). Raises ``StorageError`` when the listing does not end
        (see the class)."""
        self.pages += 1
        self.objects += objects
        self.names += objects if names is None else names
        if self.objects > LIST_MAX_OBJECTS:
            raise StorageError(
                f"{self.what}: the service listed more than {LIST_MAX_OBJECTS:,} objects "
                f"in one folder ({self.pages:,} pages); a folder of this chat holds far "
                "fewer, so the service is broken or hostile: nothing of this listing was used"
            )
        if self.stop is not None and last is not None and last >= self.stop:
            return False  # the rest sorts after what the caller asked for
        if token is None or token == "":
            return False
        if self.most is not None and self.names >= self.most:
            self.cut = True  # the caller wants no more: the next page is not asked
            return False
        if not isinstance(token, str):
            raise self.malformed("the next page's token is not text")
        if len(token) > LIST_TOKEN_MAX:
            raise self.refused(
                f"the service named a next page with a token of more than "
                f"{LIST_TOKEN_MAX // 1024} KiB"
            )
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        if digest in self._tokens:
            raise StorageError(
                f"{self.what}: the service's listing went back to a page it had already "
                f"sent (after {self.pages:,} pages): it would never end, so the service is "
                "broken or hostile: nothing of this listing was used"
            )
        if self.pages >= LIST_MAX_PAGES:
            raise StorageError(
                f"{self.what}: the service's listing did not end after {self.pages:,} "
                f"pages ({self.objects:,} objects); a folder of this chat takes far fewer, "
                "so the service is broken or hostile: nothing of this listing was used"
            )
        self._tokens.add(digest)
        return True


def checked_keys(
    found: list[tuple[str, int, str | None]], listing: Listing
) -> list[tuple[str, int, str | None]]:
    """``found`` as a service adapter gave it, checked to be of the types it promises
    (each adapter checks its service's answer; this is the last guard before the keys
    are compared and cut)."""
    for key, size, tag in found:
        if not isinstance(key, str):
            raise listing.malformed("an object name that is not text")
        if not utf8_text(key):  # a lone surrogate a JSON escape made: no service's name
            raise listing.malformed("an object name that is not UTF-8 text")
        if not isinstance(size, int) or isinstance(size, bool):
            raise listing.malformed("a size that is not a whole number")
        if tag is not None and not isinstance(tag, str):
            raise listing.malformed("a content tag that is not text")
    return found


def _range_not_satisfiable(exc: BaseException) -> bool:
    """HTTP 416 / ``InvalidRange``: what S3-like services answer to a ranged read of an
    empty object (the range asked for starts at byte 0, so nothing can be missed)."""
    for item in exception_chain(exc):
        if getattr(item, "status", None) == 416 or getattr(item, "status_code", None) == 416:
            return True
        text = f"{type(item).__name__} {item}"
        if "InvalidRange" in text or "Range Not Satisfiable" in text or "416" in text.split():
            return True
    return False


def busy(what: str, code: object) -> StorageThrottledError:
    return StorageThrottledError(f"{what}: the service is busy ({code}); retry later")


def gave_up_waiting(what: str, code: object) -> StorageOfflineError:
    """The service's "request timeout" (HTTP 408, S3's 400 ``RequestTimeout``): it stopped
    waiting for the rest of the request (a slow or broken uplink). A later try may do:
    refused for good as a plain error, a message waited for a person's click."""
    return StorageOfflineError(
        f"{what}: the service stopped waiting for the request ({code}): the connection is "
        "slow or broke off; retry later"
    )


_CUT_ANSWERS = frozenset(
    {
        "ConnectionClosedError",  # botocore: the connection closed before a full answer
        "ClientPayloadError",  # aiohttp: a body shorter than its length, or cut mid-chunk
        "IncompleteReadError",  # azure-core: the same, as the Azure SDK says it
        "ServiceResponseError",  # azure-core: the request went out, no answer came back
    }
)
"""An answer cut off in the middle (by the network, a proxy or the service): not a
refusal, so a later try may do. Called a plain error, a message whose write was cut so
waited for a person's click, though the service had stored it (red team rt52)."""


def _builtin_error(exc: BaseException, what: str) -> StorageError | None:
    """The fsspec libraries' own translations to built-in exceptions."""
    for item in exception_chain(exc):
        if isinstance(item, FileNotFoundError):
            return MissingError(f"{what}: not found")
        if isinstance(item, PermissionError):
            return StoragePermissionError(f"{what}: access denied: {one_line(item)}")
    return None


def _timed_out(exc: BaseException) -> bool:
    """Whether a timeout is anywhere in ``exc``'s chain: a ``TimeoutError``, or an SDK's
    own kind of one (botocore's ``ReadTimeoutError``, azure-core's
    ``ServiceResponseTimeoutError``), told by its name."""
    return any(
        isinstance(item, TimeoutError | socket.timeout) or "Timeout" in type(item).__name__
        for item in exception_chain(exc)
    )


def _connecting(exc: BaseException) -> bool:
    """Whether a timeout came while connecting (botocore's ``ConnectTimeoutError``,
    aiohttp's ``ConnectionTimeoutError``, azure-core's ``ServiceRequestTimeoutError``),
    not while the request was sent or answered."""
    names = [type(item).__name__ for item in exception_chain(exc)]
    return any("Connect" in name or "ServiceRequest" in name for name in names)


class _ServiceTimeoutError(Exception):
    """A timeout raised inside a request (socket read, connect), not the overall one."""


class MissingError(StorageNotFoundError):
    """Something was not found and the service did not say whether it was the bucket."""


_GUARDS = "_bucket_chat_storage_guards"  # a loop's ``close()`` safety nets
_NO_LOOP = object()
_REQUESTS = "_bucket_chat_storage_requests"  # a loop's requests awaited (``_there``)


def _kept_by(loop: asyncio.AbstractEventLoop, what: str) -> set[Any]:
    """A set the loop itself keeps (``_GUARDS``, ``_REQUESTS``): what must live as long as
    the loop and be dropped with it, on its own thread, never with a storage elsewhere."""
    kept: set[Any] = loop.__dict__.setdefault(what, set())
    return kept


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _keep_guard(loop: asyncio.AbstractEventLoop, net: AsyncGenerator[None, None]) -> None:
    """Keep a storage's ``close()`` safety net with the loop it belongs to.

    An async generator holds its loop (the finaliser hook asyncio gives it), so the
    storage must not: a storage ends its life wherever its last request ends, on the
    I/O thread too, and it would take a Qt loop (qasync's) with it there, whose timers Qt
    cannot stop from another thread (a warning, then a crash). The loop keeps the
    generator, and the generator the storage, until ``close()`` or the loop's end;
    finished ones are dropped as new ones come."""
    kept = _kept_by(loop, _GUARDS)
    kept.difference_update([g for g in kept if getattr(g, "ag_frame", None) is None])
    kept.add(net)


CLOSE_WAIT = 10.0
"""Seconds ``close()`` waits for the requests it ends (``_Far.end_by_close``)."""


class _Escaped(Exception):
    """A ``KeyboardInterrupt`` or ``SystemExit`` a request raised, carried to its caller.

    asyncio re-raises those two out of the loop that runs the task: raised on the I/O
    loop they ended fsspec's I/O thread, and every request after it, of every storage,
    then waited for ever. They belong to the caller's loop, which gets them as they were
    (``_Near.settle``)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(repr(exc))
        self.exc = exc


class _Near:
    """The caller's side of one hand-over to the I/O loop (``FsspecStorage._there``):
    what the caller awaits and the progress hook it set. Only the caller holds it; the
    I/O side reaches it by weak reference (``_Far.post``)."""

    __slots__ = ("__weakref__", "hook", "loop", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, hook: Callable[[int], None] | None):
        self.loop = loop
        self.waiter: asyncio.Future[Any] = loop.create_future()
        self.hook = hook

    def settle(self, task: asyncio.Task[Any]) -> None:  # on the caller's loop
        if self.waiter.done():
            return
        if task.cancelled():
            self.waiter.cancel()
        elif (exc := task.exception()) is not None:
            self.waiter.set_exception(exc.exc if isinstance(exc, _Escaped) else exc)
        else:
            self.waiter.set_result(task.result())

    def progress(self, size: int) -> None:  # on the caller's loop
        if self.hook is not None:
            self.hook(size)


class _Far:
    """The I/O loop's side of one hand-over: the storage's coroutine, run as a task
    there in a context of its own, and telling the caller through ``post``.

    It holds nothing of the caller's loop but a weak reference, so the I/O thread is
    never the one to drop the last reference to a caller's object. That matters: a Qt
    loop (qasync's) destroyed on another thread stops its timers from the wrong thread,
    which Qt warns of and can crash on; a request given up by a window that then
    closed ends on the I/O loop later."""

    __slots__ = ("call", "cancelled", "closing", "near", "running", "task", "tell_progress")

    def __init__(
        self,
        call: Coroutine[Any, Any, Any],
        near: weakref.ref[_Near],
        tell_progress: bool,
        running: set[_Far] | None,
    ):
        self.call = call
        self.near = near
        self.tell_progress = tell_progress
        self.running = running  # the storage's requests in flight (``end_by_close``)
        self.task: asyncio.Task[Any] | None = None
        self.cancelled = False
        self.closing: str | None = None

    def start(self) -> None:  # on the I/O loop
        if self.cancelled:
            self.call.close()
            return
        self.task = asyncio.get_running_loop().create_task(self._run())
        self.task.add_done_callback(self._done)
        if self.running is not None:
            self.running.add(self)

    async def _run(self) -> Any:
        READ_PROGRESS.set(functools.partial(self.post, "progress") if self.tell_progress else None)
        try:
            return await self.call
        except (KeyboardInterrupt, SystemExit) as exc:
            raise _Escaped(exc) from None  # for the caller's loop, not the I/O loop's
        except asyncio.CancelledError:
            if self.closing is None or self.cancelled:
                raise
            raise StorageError(self.closing) from None  # the caller did not cancel

    def end_by_close(self, why: str) -> asyncio.Task[Any] | None:  # on the I/O loop
        """The storage closes: end this request with ``StorageError(why)``."""
        if self.task is None or self.task.done():
            return None
        self.closing = why
        self.task.cancel()
        return self.task

    def cancel(self) -> None:  # on the I/O loop
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()

    def _done(self, task: asyncio.Task[Any]) -> None:
        if self.running is not None:
            self.running.discard(self)
        self.call.close()  # a task cancelled before its first step never started it
        self.post("settle", task)

    def post(self, what: str, arg: object) -> None:
        """Call ``_Near.<what>(arg)`` on the caller's loop, if the caller still waits."""
        near = self.near()
        if near is None or near.loop.is_closed():
            return
        try:
            near.loop.call_soon_threadsafe(getattr(near, what), arg)
        except RuntimeError:  # closed since the check (another thread closes it): gone
            return


class FsspecStorage(Storage, abc.ABC):
    """A bucket (or container) and prefix reached through an fsspec async file system."""

    kind: ClassVar[str]
    what: ClassVar[str] = "bucket"
    # How the service lists the MD5 of an object put in one request (``tag_of_written``).
    md5_scheme: ClassVar[str] = "md5"

    def __init__(self, location: StorageLocation, secrets: Mapping[str, str] | None = None):
        if location.kind != self.kind:
            raise ValueError(f"{type(self).__name__} cannot open {location.kind}:// locations")
        self.location = location
        self.bucket = location.bucket
        self.prefix = location.prefix
        self.timeout = location.timeout
        self.retries = location.retries
        # Names the data (endpoint and account included, tuning options and keys not):
        # the sync engine keys its local index by it.
        self.url = location.identity()
        self._secrets = dict(secrets or {})
        self._fs: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening = asyncio.Lock()
        self._bucket_seen = False
        # How many times ``MIN_WRITE_RATE``'s time this storage's writes allow for their
        # bytes (``write_deadline``): more after writes that ran out of time.
        self._write_stretch = 1
        # The safety net's generator, kept by the loop it belongs to (``_keep_guard``):
        # by weak reference here, since it holds that loop (its finaliser hook).
        self._guard: weakref.ref[AsyncGenerator[None, None]] | None = None
        # The requests running on the I/O loop (changed there only): ``close`` ends them.
        self._running: set[_Far] = set()

    # -- what each service provides --------------------------------------------------------

    @abc.abstractmethod
    async def _open_fs(self) -> Any:
        """Create the fsspec file system (``asynchronous=True``) in the running loop."""

    @abc.abstractmethod
    async def _close_fs(self, fs: Any) -> None:
        """Close the file system's HTTP sessions and credentials."""

    @abc.abstractmethod
    async def _list_keys(
        self,
        fs: Any,
        key_prefix: str,
        start_after: str | None,
        limit: int | None,
        listing: Listing,
    ) -> list[tuple[str, int, str | None]]:
        """``(key, size, content tag)`` of objects whose key starts with ``key_prefix``
        (the tag as ``ObjectInfo.content_tag`` says, or None).

        Keys are relative to the bucket. With ``start_after`` only keys sorting after it
        are needed (the service may return more; they are filtered). ``limit`` caps the
        number wanted (a hint). A missing bucket must raise. Each page is asked through
        ``listing.page`` and told to ``listing.more``, which decides whether to go on.
        """

    @abc.abstractmethod
    async def _list_level_keys(self, fs: Any, key_prefix: str, listing: Listing) -> list[str]:
        """Full keys of the "folders" right below ``key_prefix`` (delimiter ``/``: each
        ends with ``/``) and of the objects right in it (none does); pages as for
        ``_list_keys``."""

    @abc.abstractmethod
    def _service_error(self, exc: BaseException, what: str) -> StorageError | None:
        """The ``StorageError`` for a service failure, or None if it is not one of these."""

    async def _bucket_exists(self, fs: Any) -> bool | None:
        """Whether the bucket exists, when the service's errors cannot tell (else None)."""
        return None

    def create_only_mechanism(self) -> str:
        return "the service refused to overwrite an existing object"

    def create_only_failure(self, what: str) -> str:
        policy = IMMUTABILITY_HINT[self.kind]
        return (
            f"{self.describe()} {what} an existing object although the write asked it not "
            f"to: this service or emulator ignores create-only preconditions, so "
            f"immutability rests on the {self.what}'s own policy ({policy}); "
            "see docs/STORAGE.md"
        )

    # -- helpers -----------------------------------------------------------------------------

    async def _filesystem(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._fs is not None:
            if loop is not self._loop:
                raise RuntimeError(f"{self.describe()} is used from a second event loop")
            return self._fs
        async with self._opening:
            if self._fs is None:
                fs = await self._open_fs()
                self._fs, self._loop = fs, loop
        return self._fs

    async def _there(self, call: Coroutine[Any, Any, T], *, closing: bool = False) -> T:
        """Await ``call`` (a coroutine of this storage's) on ``io_loop``.

        The caller's loop only waits: the SDK's parsing of answers, its signing and its
        retries take the I/O thread's turns, never the caller's (the GUI's in the app).
        Cancelling the caller cancels ``call`` there; a ``READ_PROGRESS`` hook the caller
        set is called back on the caller's loop (``_Far``, ``_Near``). The first loop to
        await this storage gets the ``close()`` safety net (``_close_with_loop``).
        ``closing``: ``call`` is ``close``'s own, which needs no safety net and is not one
        of the requests ``close`` ends."""
        caller = asyncio.get_running_loop()
        io = io_loop()
        if caller is io:  # one of this storage's own calls made on the I/O loop
            return await call
        if not closing and self._guard is None:
            net = self._close_with_loop(weakref.ref(caller))
            await anext(net)
            _keep_guard(caller, net)
            self._guard = weakref.ref(net)
        near = _Near(caller, READ_PROGRESS.get())
        running = None if closing else self._running  # what ``close`` ends: not itself
        far = _Far(call, weakref.ref(near), near.hook is not None, running)
        try:
            io.call_soon_threadsafe(far.start, context=contextvars.Context())
        except RuntimeError:  # the I/O loop is closed (the interpreter is ending)
            call.close()
            raise
        # The caller's loop keeps what its task awaits, as it keeps a socket it waits on:
        # the I/O side holds it weakly only, so a task nobody else keeps (one a Qt slot
        # started) was garbage while its request ran, and the collector destroyed it
        # ("Task was destroyed but it is pending!"), its request's answer lost.
        waiting = _kept_by(caller, _REQUESTS)
        waiting.add(near)
        try:
            result: T = await near.waiter
        except asyncio.CancelledError:
            io.call_soon_threadsafe(far.cancel, context=contextvars.Context())
            raise
        finally:
            waiting.discard(near)
        return result

    @on_io_loop
    async def open(self) -> None:
        await self._filesystem()

    async def _close_with_loop(
        self, loop: weakref.ref[asyncio.AbstractEventLoop]
    ) -> AsyncGenerator[None, None]:
        """A safety net for callers that never ``close()``: ``asyncio.run`` finalises
        unfinished async generators before it closes the loop, which runs this
        ``finally`` there, so the HTTP sessions are closed and not reported as leaked.

        A loop that installs no async generator hooks (qasync's, the app's) never does:
        its generators are closed when the loop is collected, by the garbage collector,
        which cannot await — on whichever thread it runs, with no loop or another one
        running there. The client lives on the I/O loop, so it is closed there then,
        without waiting: the ``await`` made then raised "no running event loop" or "async
        generator ignored GeneratorExit" (reported as ignored, a coroutine never
        awaited) and left the HTTP sessions open."""
        try:
            yield
        finally:
            if self._guard is not None:  # not closed yet: the caller's loop is ending
                self._guard = None
                if _running_loop() is (loop() or _NO_LOOP):  # its own, finalising it
                    await self.close()
                else:
                    self._close_soon()

    def _close_soon(self) -> None:
        """Close the client on the I/O loop, from any thread, without waiting for it."""
        call = self._close_here()
        try:
            asyncio.run_coroutine_threadsafe(call, io_loop())
        except RuntimeError:  # the I/O loop is closed (the interpreter is ending)
            call.close()

    def read_base(self) -> float:
        """Seconds a read may take before anything arrived: each attempt its ``timeout``
        and ``ATTEMPT_SLACK`` (the SDK's pause before it tries again; connecting): the
        service's own timeout is what ends a read that gets no answer at all, with its
        own message."""
        return (self.timeout + ATTEMPT_SLACK) * max(1, self.retries)

    def page_deadline(self) -> float:
        """Seconds one page of a listing may take (``Listing.page``)."""
        return self.read_base() + LIST_PAGE_BYTES / MIN_READ_RATE

    def write_deadline(self, size: int) -> float:
        """Seconds one create-only write of ``size`` bytes may take (``put_if_absent``):
        the service's own time (``read_base``), plus what the bytes take to send at
        ``MIN_WRITE_RATE`` and the answer to receive at ``MIN_READ_RATE``. The socket's
        read timeout alone never ends a write whose answer trickles a byte now and then:
        a service that took the upload and then answered a byte every half second held
        the write — and the room's whole outbox lane behind it — for ever.

        The time for the bytes stretches after a write ran out of time (``_stretched``):
        on an uplink slower than ``MIN_WRITE_RATE`` a big attachment's first try fails
        and a later one (the next send of the outbox, the user's "Try again") gets the
        time it needs. The service's own time never stretches: a service that stopped
        answering still fails small writes as soon as before."""
        return self.read_base() + self._sending_time(size) + WRITE_ANSWER_BYTES / MIN_READ_RATE

    def write_read_timeout(self, size: int) -> float:
        """The SDK's own read timeout for one try at a write of ``size`` bytes: the
        service's ``timeout`` after the time the bytes may take to send (as
        ``write_deadline`` allows them). An SDK's read timer runs from the start of the
        request, not from the last byte sent: with ``timeout`` (30 s) as the read
        timeout, any upload that took longer than that to leave the machine failed as
        "no answer", and a big attachment on a slow uplink failed on every try. One try,
        not the whole deadline: a request lost on the way (a dead pooled connection) is
        still tried again by the SDK within the deadline."""
        return self.timeout + self._sending_time(size)

    def _sending_time(self, size: int) -> float:
        """Seconds a write's deadline allows for its ``size`` bytes to leave."""
        return size * self._write_stretch / MIN_WRITE_RATE

    def _stretched(self, size: int, took: float | None) -> bool:
        """Learn from one write of ``size`` bytes: ``took`` seconds to go through, or
        None when it ran out of time. Only a write whose bytes were given more time than
        the service's own (``read_base``) says anything of the link's rate: small writes
        (messages, markers) that time out are a service that does not answer, and a
        quick one says nothing of big ones. Such a write out of time: the next writes
        allow twice as long for their bytes (up to ``MAX_WRITE_STRETCH``); through in
        under a quarter of its deadline: half as long again. True when it stretched."""
        stretch = self._write_stretch
        if self._sending_time(size) <= self.read_base():
            return False
        if took is None:
            self._write_stretch = min(MAX_WRITE_STRETCH, stretch * 2)
            return self._write_stretch > stretch
        if stretch > 1 and took < self.write_deadline(size) / 4:
            self._write_stretch = stretch // 2
        return False

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _fs_path(self, path: str) -> str:
        return f"{self.bucket}/{self._key(check_object_path(path))}"

    def _rel(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def _folder_key(self, prefix: str) -> str:
        """The key prefix for a ``Storage`` folder prefix (``''`` is the whole root)."""
        if prefix.strip("/"):  # as on a folder: "/x" is refused, "x/" is the folder x
            folder = check_object_path(prefix.rstrip("/"))
            return self._key(folder) + "/"
        return f"{self.prefix}/" if self.prefix else ""

    def display(self, path: str | None = None) -> str:
        root = self.location.root()
        return root if path is None else f"{root.rstrip('/')}/{path}"

    def tag_of_written(self, data: bytes) -> str | None:
        return md5_tag(data, self.md5_scheme)  # the service's MD5 of an object put whole

    def describe(self) -> str:
        endpoint = self.location.options.get("endpoint_url")
        return f"{self.location.root()} at {endpoint}" if endpoint else self.location.root()

    def _error(self, exc: BaseException, what: str) -> StorageError:
        """Map any failure to one ``StorageError`` with one line a user can act on, which
        quotes no secret (``hide_secrets``)."""
        return hide_secrets(self._mapped_error(exc, what), self._secrets)

    def _mapped_error(self, exc: BaseException, what: str) -> StorageError:
        if isinstance(exc, StorageError):
            return exc
        for item in exception_chain(exc):
            if isinstance(item, BadAnswerError):
                return StorageError(f"{what}: {item.reason}: the service is broken or hostile")
        for item in exception_chain(exc):
            if type(item).__name__ in _CUT_ANSWERS:  # before the SDK's own classes:
                # azure-core's is one of its HTTP errors, with the status the answer had
                return StorageOfflineError(
                    f"{what}: the connection to {self._endpoint_name()} broke off before "
                    f"its answer was complete (retry later): {one_line(item, 160)}"
                )
        mapped = self._service_error(exc, what)
        if mapped is None:
            mapped = self._network_error(exc, what)
        if mapped is None:
            mapped = _builtin_error(exc, what)
        if mapped is None:
            log.debug("unclassified storage failure", exc_info=exc)
            mapped = StorageError(f"{what}: {type(exc).__name__}: {one_line(exc)}")
        return mapped

    def _endpoint_name(self) -> str:
        return self.location.options.get("endpoint_url") or f"the {self.kind} service"

    def _network_error(self, exc: BaseException, what: str) -> StorageError | None:
        """DNS, refused, TLS, timeout or dropped connection anywhere in the chain."""
        where = self._endpoint_name()
        chain = list(exception_chain(exc))
        names = [type(item).__name__ for item in chain]

        def found(*types: type[BaseException], name_part: str | None = None) -> bool:
            return any(isinstance(i, types) for i in chain) or (
                name_part is not None and any(name_part in n for n in names)
            )

        if found(socket.gaierror, name_part="DNSError"):
            return StorageOfflineError(
                f"{what}: cannot resolve the host of {where} "
                "(check the endpoint or account name, and your network)"
            )
        if found(ConnectionRefusedError):
            return StorageOfflineError(
                f"{what}: {where} refused the connection "
                "(is the service running and the endpoint right?)"
            )
        if found(ssl.SSLError, ssl.CertificateError, name_part="SSLError"):
            return StorageError(
                f"{what}: the TLS connection to {where} failed (check the endpoint)"
            )
        if _timed_out(exc):
            return StorageOfflineError(
                f"{what}: no answer from {where} within {self.timeout:g} s "
                "(offline, or the service is slow; retry later)"
            )
        dropped = (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNRESET, errno.ECONNABORTED)
        network_names = ("ClientConnectorError", "ServerDisconnectedError", "ClientOSError")
        for item in chain:
            if (
                isinstance(item, ConnectionError)
                or (isinstance(item, OSError) and item.errno in dropped)
                or type(item).__name__ in network_names
                or type(item).__name__ == "EndpointConnectionError"
            ):
                return StorageOfflineError(f"{what}: cannot reach {where}: {one_line(item)}")
        return None

    def _missing_bucket(self, what: str) -> StorageNotFoundError:
        endpoint = self.location.options.get("endpoint_url")
        where = f" at {endpoint}" if endpoint else ""
        return StorageNotFoundError(
            f"{what}: {self.what} {self.bucket} does not exist{where} "
            f"(create it, or check the {self.what} name)"
        )

    def _visible(self, folder_key: str, key: str) -> bool:
        """Whether a listed key (one below ``folder_key``) is shown: see the module."""
        rest = key[len(folder_key) :]
        if not rest or any(part.startswith(".") for part in rest.split("/")):
            return False
        try:
            check_object_path(self._rel(key))
        except StorageError:
            return False
        return True

    # -- Storage ---------------------------------------------------------------------------

    @on_io_loop
    async def put_if_absent(self, path: str, data: bytes) -> bool:
        # "Already exists", and then nothing there to read: the service contradicted
        # itself. Written again, as the SDK tries again any passing failure (``retries``
        # tries in all, at least two); then a passing error that says so, never
        # "already exists" (red team rt95).
        tries = max(2, self.retries)
        for attempt in range(1, tries + 1):
            created = await self._put_once(path, data)
            if created is not None:
                return created
            if attempt < tries:
                log.warning(
                    "%s: the service said it already exists, then that it does not; "
                    "writing it again",
                    self.display(path),
                )
        raise taken_but_missing(self.display(path), tries)

    async def _put_once(self, path: str, data: bytes) -> bool | None:
        """One try of ``put_if_absent``; None when the service said the name is taken
        and then that nothing is there (``_same_or_raise``)."""
        target = self._fs_path(path)
        what = f"cannot write {self.display(path)}"
        fs = await self._filesystem()
        deadline = self.write_deadline(len(data))
        started = time.monotonic()
        try:
            confirmed = await asyncio.wait_for(self._create_within(fs, target, data), deadline)
        except FileExistsError:
            return await self._same_or_raise(path, data)
        except WriteNotConfirmedError as exc:  # answered, with what says it is not so
            raise WriteNotConfirmedError(f"{what}: {exc}") from exc
        except (_ServiceTimeoutError, TimeoutError) as exc:
            # The SDK's read timeout on its last try (``write_read_timeout``), or the
            # write's deadline. The service may have stored the bytes before it stopped
            # answering: the next try's create-only write then finds them, compares them
            # (``_same_or_raise``) and takes the write as done, neither lost nor written
            # twice.
            cause = exc.__cause__ or exc
            # Not connecting in time: that says nothing of how fast bytes leave.
            stretched = not _connecting(cause) and self._stretched(len(data), None)
            if isinstance(exc, _ServiceTimeoutError) and not stretched:
                raise await self._translated(fs, cause, what) from cause
            took = deadline if isinstance(exc, TimeoutError) else time.monotonic() - started
            raise StorageOfflineError(
                f"{what}: the service did not answer the write within {took:.0f} s "
                "(offline, or the link or the service is too slow for "
                f"{len(data):,} bytes in that time; the next try allows "
                f"{self.write_deadline(len(data)):.0f} s)"
            ) from cause
        except Exception as exc:
            raise await self._translated(fs, exc, what) from exc
        self._bucket_seen = True
        self._stretched(len(data), time.monotonic() - started)
        if not confirmed:
            await self._read_back(path, data, what)
        return True

    async def _create_within(self, fs: Any, target: str, data: bytes) -> bool:
        """``_create``, with the service's own timeouts (``_timed_out``) told apart from
        the write's deadline."""
        try:
            return await self._create(fs, target, data)
        except Exception as exc:
            if _timed_out(exc):
                raise _ServiceTimeoutError() from exc
            raise

    async def _create(self, fs: Any, target: str, data: bytes) -> bool:
        """Write ``data`` only if ``target`` does not exist; ``FileExistsError`` if it does.
        True when the service's answer names the checksum of these bytes;
        ``WriteNotConfirmedError`` when it names another's; False when it names none
        (``put_if_absent`` then reads the object back)."""
        await fs._pipe_file(target, data, mode="create")
        return False

    async def _read_back(self, path: str, data: bytes, what: str) -> None:
        """A write whose answer named no checksum to compare (an S3 ETag under KMS, a
        service that sends none) is done when the object reads back as these bytes: a
        service that answered "200 OK" and stored nothing lost the message silently."""
        try:
            stored = await self.get(path, max_bytes=len(data))
        except StorageNotFoundError as exc:
            raise WriteNotConfirmedError(
                f"{what}: the service answered the write as done, and the object is not "
                "there: not taken as written, it is tried again (a broken or hostile "
                "service?)"
            ) from exc
        except ObjectTooLargeError as exc:
            stored = b""  # more than was written: not these bytes
            log.info("%s", exc)
        if stored != data:
            raise WriteNotConfirmedError(
                f"{what}: the service answered the write as done, and the object holds "
                "other bytes: not taken as written, it is tried again (a broken or hostile "
                "service?)"
            )

    async def _same_or_raise(self, path: str, data: bytes) -> bool | None:
        """The name is taken: False when it holds these very bytes (a retry meeting its
        own earlier write), else ``AlreadyExistsError`` and the caller picks another
        name. Read with a cap of ``len(data)``: a larger object is not ours (red team
        rt57: read with the 64 MiB cap of any read, more than that at the name was a
        final "too large" and the message failed for good, and each conflict could
        download 64 MiB). An object that may not be read cannot be these bytes either.
        None when nothing is there: the service's "already exists" is contradicted by
        its own "not found" (red team rt95), and ``put_if_absent`` writes again.
        Passing failures, and credentials refused (no other name would fare better),
        are raised as they are."""
        shown = self.display(path)
        try:
            existing = await self.get(path, max_bytes=len(data))
        except ObjectTooLargeError as exc:
            raise AlreadyExistsError(f"{shown} already exists with other contents") from exc
        except StorageNotFoundError:
            return None
        except StorageAuthError:
            raise
        except StorageError as exc:
            if exc.transient:
                raise
            raise AlreadyExistsError(
                f"{shown} is taken by an object this write cannot compare with its own: {exc}",
                compared=False,
            ) from exc
        if existing == data:
            return False
        raise AlreadyExistsError(f"{shown} already exists with other contents")

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        # The caller's floor for the read's rate (``READ_RATE_FLOOR``), read here: the
        # read itself runs on the I/O loop, in a context of its own.
        floor = READ_RATE_FLOOR.get() or MIN_READ_RATE
        return await self._get(path, max_bytes, max(1, min(MIN_READ_RATE, floor)))

    @on_io_loop
    async def _get(self, path: str, max_bytes: int, rate: int) -> bytes:
        target = self._fs_path(path)
        fs = await self._filesystem()
        # One deadline for the whole read, moved by what arrives (``Meter``): the
        # per-socket read timeout alone lets a service that trickles a byte now and then
        # hold the read open for ever.
        base = self.read_base()
        cap = base + max_bytes / rate
        meter: Meter | None = None
        try:
            async with asyncio.timeout(base) as scope:
                meter = Meter(scope, base, cap, rate)
                data: bytes = await self._cat_within(fs, target, max_bytes, meter)
        except _ServiceTimeoutError as exc:  # the service's own (per-request) timeout
            cause = exc.__cause__ or exc
            raise await self._translated(
                fs, cause, f"cannot read {self.display(path)}", path=path
            ) from cause
        except TimeoutError as exc:  # only the read's deadline can raise it here
            received = meter.received if meter is not None else 0
            allowed = meter.allowed() if meter is not None else base
            raise StorageOfflineError(
                f"cannot read {self.display(path)}: not read within {allowed:.0f} s "
                f"({received:,} bytes received; offline, or the service is very slow; "
                "retry later)"
            ) from exc
        except Exception as exc:
            if _range_not_satisfiable(exc):
                return b""  # a ranged read from byte 0 of an empty object
            raise await self._translated(
                fs, exc, f"cannot read {self.display(path)}", path=path
            ) from exc
        self._bucket_seen = True
        if len(data) > max_bytes:
            raise ObjectTooLargeError(
                f"cannot read {self.display(path)}: it holds more than {max_bytes:,} bytes; "
                "not read",
                path=path,
                limit=max_bytes,
            )
        return data

    async def _cat_within(self, fs: Any, target: str, max_bytes: int, meter: Meter) -> bytes:
        """``_cat``, with the service's own timeouts told apart from the read's deadline."""
        try:
            return await self._cat(fs, target, max_bytes, meter)
        except TimeoutError as exc:
            raise _ServiceTimeoutError() from exc

    @abc.abstractmethod
    async def _cat(self, fs: Any, target: str, max_bytes: int, meter: Meter) -> bytes:
        """At most ``max_bytes + 1`` bytes of the object (a ranged read): one byte more
        than allowed tells "too large" apart without reading the rest. Each piece
        received is told to ``meter.got`` as it arrives (it moves the read's deadline)."""

    async def _translated(
        self, fs: Any, exc: BaseException, what: str, *, path: str | None = None
    ) -> StorageError:
        """Like ``_error``, but a plain "not found" is checked against the bucket."""
        error = self._error(exc, what)
        if isinstance(error, MissingError):
            if path is None:  # a write or listing: only the bucket can be missing
                return self._missing_bucket(what)
            exists = None if self._bucket_seen else await self._safe_bucket_exists(fs)
            if exists is False:
                return self._missing_bucket(what)
            return StorageNotFoundError(f"{self.display(path)} does not exist")
        return error

    async def _safe_bucket_exists(self, fs: Any) -> bool | None:
        """``_bucket_exists`` within a listing page's deadline (it runs after a read
        failed, outside that read's own: a service trickling its answer held it for
        ever), None when it cannot tell."""
        try:
            return await asyncio.wait_for(self._bucket_exists(fs), self.page_deadline())
        except Exception as exc:
            log.debug("bucket check failed: %s", exc)
            return None

    @on_io_loop
    async def exists(self, path: str) -> bool:
        key = self._key(check_object_path(path))
        fs = await self._filesystem()
        what = f"cannot check {self.display(path)}"
        try:
            found = await self._list_keys(fs, key, None, 1, Listing(self, what))
        except Exception as exc:
            raise await self._translated(fs, exc, what) from exc
        self._bucket_seen = True
        return any(k == key for k, _, _ in found)

    @on_io_loop
    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        return await self._list(prefix, None)

    @on_io_loop
    async def list_after(self, prefix: str, after: str | None) -> list[ObjectInfo]:
        return await self._list(prefix, after)

    @on_io_loop
    async def list_between(self, prefix: str, after: str | None, before: str) -> list[ObjectInfo]:
        return await self._list(prefix, after, before)

    @on_io_loop
    async def list_first(
        self, prefix: str, after: str | None, most: int
    ) -> tuple[list[ObjectInfo], bool]:
        most = max(most, 0)
        cut: list[bool] = []
        items = await self._list(prefix, after, most=most, cut=cut)
        return items[:most], len(items) > most or bool(cut)

    async def _list(
        self,
        prefix: str,
        after: str | None,
        before: str | None = None,
        *,
        most: int | None = None,
        cut: list[bool] | None = None,
    ) -> list[ObjectInfo]:
        """The listing of ``prefix`` (see ``list_after``, ``list_between``); ``most``: no
        page asked once the pages held that many objects, and ``cut`` gets True when the
        service had more then (``list_first``)."""
        folder = self._folder_key(prefix)
        start = self._key(after) if after else None
        stop = self._key(before) if before is not None else None
        fs = await self._filesystem()
        what = f"cannot list {self.display(prefix)}"
        listing = Listing(self, what, stop, most)
        try:
            found = checked_keys(await self._list_keys(fs, folder, start, None, listing), listing)
        except Exception as exc:
            raise await self._translated(fs, exc, what) from exc
        self._bucket_seen = True
        inside = self._inside(folder, found, what, key=lambda entry: entry[0])
        items = [
            ObjectInfo(self._rel(key), size, tag)
            for key, size, tag in inside
            if self._visible(folder, key)
            and (start is None or key > start)
            and (stop is None or key < stop)
        ]
        for item in items:
            if not 0 <= item.size <= MAX_LISTED_SIZE:
                # Only the service itself writes a listing's sizes: one past what any
                # object can be (2**64 made the index's insert fail, and the room's
                # read with it) says the listing cannot be believed at all.
                raise StorageError(
                    f"{what}: the service listed {item.path[:200]!r} "
                    f"with an impossible size ({item.size}): a broken or hostile service"
                )
        items.sort(key=lambda i: i.path)
        if cut is not None and listing.cut:
            cut.append(True)
        return items

    @on_io_loop
    async def list_level(self, prefix: str) -> Level:
        return await self._level(prefix, None)

    @on_io_loop
    async def list_level_first(self, prefix: str, most: int) -> Level:
        return await self._level(prefix, max(most, 0))

    async def _level(self, prefix: str, most: int | None) -> Level:
        """The listing of ``prefix``'s level (``list_level``); ``most``: no page asked
        once the pages held that many names, the level ``cut`` when the service had more
        (``list_level_first``)."""
        folder = self._folder_key(prefix)
        fs = await self._filesystem()
        what = f"cannot list {self.display(prefix)}"
        listing = Listing(self, what, None, most)
        try:
            found = await self._list_level_keys(fs, folder, listing)
            if not all(isinstance(name, str) for name in found):
                raise listing.malformed("a folder name that is not text")
            if not all(utf8_text(name) for name in found):  # as ``checked_keys``
                raise listing.malformed("a folder or object name that is not UTF-8 text")
        except Exception as exc:
            raise await self._translated(fs, exc, what) from exc
        self._bucket_seen = True
        inside = self._inside(folder, found, what, key=lambda entry: entry)
        # A folder's key ends with "/"; the folder's own marker object (its key is the
        # folder's) is no object in it.
        folders = [key[len(folder) :].strip("/") for key in inside if key.endswith("/")]
        objects = [key[len(folder) :] for key in inside if not key.endswith("/")]
        level = level_of([f for f in folders if f], [o for o in objects if o])
        if most is None:
            return level
        # the pages may hold more than asked: the same first ``most`` as anywhere
        level = level_first(level, most)
        return replace(level, cut=True) if listing.cut else level

    def _inside(
        self, folder: str, found: list[T], what: str, *, key: Callable[[T], str]
    ) -> list[T]:
        """The entries of a listing of ``folder`` whose key is below it. The service is
        asked for that folder only; one that names objects elsewhere (another room's
        segment in this room's day) is broken or hostile: those are dropped, with one
        line in the log, never taken for objects of this folder."""
        inside = [entry for entry in found if key(entry).startswith(folder)]
        if len(inside) < len(found):
            log.warning(
                "%s: the service listed %d object(s) outside the folder asked; ignored "
                "(a broken or hostile service)",
                what.removeprefix("cannot list "),
                len(found) - len(inside),
            )
        return inside

    @on_io_loop
    async def remove_probe(self, path: str) -> None:
        if not path.startswith(PROBE_PREFIX):
            raise StorageError(f"refusing to delete {path!r}: only self-test probes are removed")
        target = self._fs_path(path)
        fs = await self._filesystem()
        try:
            await fs._rm_file(target)
        except Exception as exc:  # a retention policy may forbid it: keep the tiny probe
            log.info("could not remove probe %s: %s", path, self._error(exc, "remove"))

    async def close(self) -> None:
        net = self._guard() if self._guard is not None else None
        self._guard = None
        if net is not None:
            await net.aclose()  # nothing more: it sees the storage closed
        await self._there(self._close_here(), closing=True)

    async def _close_here(self) -> None:
        fs, self._fs, self._loop = self._fs, None, None  # a request from now on opens anew
        self._bucket_seen = False
        # Requests still running end first: one between its last await and its first send
        # made the SDK open a new HTTP session on the closed client, left unclosed (and
        # reported so when collected), and one waiting on the service held it open.
        why = f"{self.describe()} was closed while this request ran"
        ending = [t for far in list(self._running) if (t := far.end_by_close(why)) is not None]
        if ending:  # (one that will not end does not hold the closing for ever)
            await asyncio.wait(ending, timeout=CLOSE_WAIT)
        if fs is not None:
            try:
                await self._close_fs(fs)
            except Exception as exc:  # closing must never hide the caller's own error
                log.debug("closing %s: %s", self.describe(), exc)
