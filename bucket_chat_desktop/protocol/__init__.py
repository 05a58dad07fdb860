"""Bucket Chat Protocol v1, sans I/O.

Everything here is pure and synchronous: it turns bytes read from storage into verified
values (or precise findings) and turns what the user writes into signed bytes to store.
No asyncio, no file system, no clock and no randomness unless passed in by the caller.
"""
