"""Bucket Chat Desktop: serverless, tamper-evident chat over folders and buckets."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bucket-chat-desktop")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"  # metadata missing: a broken install or bundle
