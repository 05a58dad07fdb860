"""``bucket-chat storage``: named storages (add, list, test, remove).

A named storage is a URL plus options, saved in ``storages.json``; its keys go to the OS
keyring only. Keys are read from environment variables named on the command line
(``--secret-access-key-env VAR``), never from the command line itself, so they stay out
of shell history and process listings.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import paths
from ..protocol.untrusted_text import terminal_safe
from ..storage.open import open_storage
from ..storage.profiles import (
    SECRET_NAMES,
    ProfileError,
    ProfileStore,
    StorageProfile,
    check_profile_name,
)
from ..storage.url import StorageLocation, parse_storage_url
from . import format as fmt
from .format import json_text
from .outcome import EXIT_OK
from .selftest import CHECK_EXIT_STATUS, storage_selftest

# --flag -> (option name, kinds it applies to)
OPTION_FLAGS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "endpoint_url": ("endpoint_url", ("s3", "gs", "az")),
    "region": ("region", ("s3",)),
    "aws_profile": ("profile", ("s3",)),
    "addressing_style": ("addressing_style", ("s3",)),
    "queue_url": ("queue_url", ("s3",)),
    "project": ("project", ("gs",)),
    "credentials_file": ("credentials_file", ("gs",)),
    "account_name": ("account_name", ("az",)),
}
SECRET_ENV_FLAGS: Mapping[str, str] = {
    "secret_access_key_env": "secret_access_key",
    "session_token_env": "session_token",
    "account_key_env": "account_key",
    "sas_token_env": "sas_token",
    "connection_string_env": "connection_string",
}


def add_storage_parser(
    subparsers: Any, common: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.ArgumentParser:
    """Add ``storage`` and its actions to the ``bucket-chat`` sub-command parsers.

    ``common`` adds the options every command takes (``-s``) to a parser.
    """
    text = "manage named storages: folders and buckets with their options and keys"
    parser: argparse.ArgumentParser = subparsers.add_parser("storage", help=text, description=text)
    if common is not None:
        common(parser)
    actions = parser.add_subparsers(dest="storage_command", metavar="ACTION", required=True)

    add = actions.add_parser(
        "add",
        help="save a storage under a name (keys go to the OS keyring)",
        description="Save a folder or bucket URL under NAME, so '-s NAME' uses it. Keys are "
        "read from the environment variables you name and kept in the OS keyring, never "
        "in files; without keys the SDK's own environment variables and credential files "
        "are used.",
    )
    add.add_argument("name", help="a short name, e.g. work")
    add.add_argument("url", help="a folder, s3://bucket/prefix, gs://bucket/prefix or az://…")
    add.add_argument("--endpoint-url", help="S3-compatible, GCS or Azure endpoint (emulators…)")
    add.add_argument("--region", help="S3 region")
    add.add_argument("--profile", dest="aws_profile", help="AWS profile (~/.aws/config)")
    add.add_argument("--addressing-style", choices=["auto", "path", "virtual"], help="S3 only")
    add.add_argument(
        "--queue-url",
        metavar="URL",
        help="S3 only: an SQS queue that receives the bucket's event notifications; new "
        "messages then arrive within a second or two without polling the bucket "
        "(docs/STORAGE.md says how to set it up)",
    )
    add.add_argument("--project", help="GCS project")
    add.add_argument("--credentials-file", help="GCS service-account key file (a path)")
    add.add_argument("--account-name", help="Azure storage account")
    add.add_argument("--anonymous", action="store_true", help="send no credentials")
    add.add_argument("--access-key-id", help="S3 access key id (kept in the OS keyring)")
    add.add_argument("--secret-access-key-env", metavar="VAR", help="env var with the S3 secret")
    add.add_argument("--session-token-env", metavar="VAR", help="env var with an S3 session token")
    add.add_argument("--account-key-env", metavar="VAR", help="env var with the Azure account key")
    add.add_argument("--sas-token-env", metavar="VAR", help="env var with an Azure SAS token")
    add.add_argument(
        "--connection-string-env", metavar="VAR", help="env var with an Azure connection string"
    )
    add.add_argument("--replace", action="store_true", help="replace a storage of that name")

    lst = actions.add_parser("list", help="show the named storages")
    lst.add_argument("--json", action="store_true", help="machine-readable output")

    test = actions.add_parser(
        "test",
        help="check a storage: create-only write, read, list, and the overwrite probe",
        description="The app's Test connection, step by step (the same as test-storage): "
        "list the rooms, write a probe object create-only, read it back, write it again "
        "and over it, find it in a listing, and check that the service refuses to "
        "overwrite; the probe is removed afterwards.",
        epilog=CHECK_EXIT_STATUS,
    )
    test.add_argument(
        "target", nargs="?", metavar="NAME_OR_URL", help="default: -s, or the default store"
    )
    if common is not None:
        common(test)

    rm = actions.add_parser("remove", help="forget a named storage and its keys")
    rm.add_argument("name")
    return parser


async def cmd_storage(args: argparse.Namespace) -> int:
    action = {
        "add": _add,
        "list": _list,
        "test": _test,
        "remove": _remove,
    }[args.storage_command]
    return await action(args)


# -- add / list / remove -----------------------------------------------------------------


def _location(args: argparse.Namespace) -> StorageLocation:
    location = parse_storage_url(args.url)
    given = {flag: getattr(args, flag) for flag in OPTION_FLAGS if getattr(args, flag)}
    if location.kind == "file":
        extra = sorted(given) + (["anonymous"] if args.anonymous else [])
        if extra:
            flag = "--" + extra[0].replace("_", "-")
            raise ProfileError(f"{flag} does not apply to a folder")
        return StorageLocation("file", str(Path(location.bucket).expanduser().absolute()))
    options: dict[str, str] = {}
    for flag, value in given.items():
        name, kinds = OPTION_FLAGS[flag]
        if location.kind not in kinds:
            raise ProfileError(
                f"--{flag.replace('_', '-')} does not apply to {location.kind}:// storages"
            )
        options[name] = str(value)
    if args.anonymous:
        options["anonymous"] = "true"
    return location.with_options(options) if options else location


def _secrets(args: argparse.Namespace, kind: str) -> dict[str, str]:
    values: dict[str, str] = {}
    if args.access_key_id:
        values["access_key_id"] = args.access_key_id
    for flag, name in SECRET_ENV_FLAGS.items():
        var = getattr(args, flag)
        if not var:
            continue
        value = os.environ.get(var)
        if not value:
            raise ProfileError(f"environment variable {var} (--{flag.replace('_', '-')}) is empty")
        values[name] = value
    if values and args.anonymous:
        raise ProfileError("--anonymous sends no credentials: drop it or the keys")
    unknown = sorted(set(values) - set(SECRET_NAMES.get(kind, ())))
    if unknown:
        raise ProfileError(f"{kind}:// storages take no {unknown[0].replace('_', ' ')}")
    return values


def _credentials_text(profile: StorageProfile) -> str:
    if profile.location.kind == "file":
        return "-"
    if profile.location.anonymous:
        return "none (anonymous)"
    if profile.secret_names:
        return "OS keyring (" + ", ".join(profile.secret_names) + ")"
    return "SDK defaults (environment, credential files)"


async def _add(args: argparse.Namespace) -> int:
    check_profile_name(args.name)
    location = _location(args)
    values = _secrets(args, location.kind)
    store = ProfileStore()
    profile = store.add(args.name, location, values, replace=args.replace)
    fmt.out(f"Saved storage {profile.name!r}: {terminal_safe(_shown_url(profile))}")
    fmt.out(f"  credentials: {_credentials_text(profile)}")
    fmt.out(f"  settings in: {store.path}")
    fmt.out(f"Check it with: bucket-chat storage test {profile.name}")
    return EXIT_OK


def _shown_url(profile: StorageProfile) -> str:
    loc = profile.location
    return loc.url() if loc.is_cloud else loc.bucket


async def _list(args: argparse.Namespace) -> int:
    store = ProfileStore()
    profiles = store.list()
    if args.json:
        doc = {p.name: {**p.as_json(), "credentials": _credentials_text(p)} for p in profiles}
        print(json_text(doc))
        return EXIT_OK
    if not profiles:
        fmt.out("No named storages (add one with 'bucket-chat storage add NAME URL').")
        return EXIT_OK
    width = max(len(terminal_safe(p.name)) for p in profiles)
    for p in profiles:
        fmt.out(f"{terminal_safe(p.name):{width}}  {terminal_safe(_shown_url(p))}")
        fmt.out(f"{'':{width}}  credentials: {terminal_safe(_credentials_text(p))}")
        queue = p.location.options.get("queue_url")
        if queue:
            fmt.out(f"{'':{width}}  notifications from: {terminal_safe(queue)}")
    return EXIT_OK


async def _remove(args: argparse.Namespace) -> int:
    profile = ProfileStore().remove(args.name)
    keys = " and its keys in the OS keyring" if profile.secret_names else ""
    fmt.out(f"Removed storage {profile.name!r}{keys}.")
    return EXIT_OK


# -- test ------------------------------------------------------------------------------------


async def _test(args: argparse.Namespace) -> int:
    spec = (
        args.target
        or getattr(args, "storage", None)
        or os.environ.get("BUCKET_CHAT_STORAGE")
        or str(paths.default_store_dir())
    )
    storage = open_storage(spec)
    try:
        return await storage_selftest(storage)
    finally:
        await storage.close()
