"""Choosing and testing a storage: the form used by the setup wizard and by Settings."""
