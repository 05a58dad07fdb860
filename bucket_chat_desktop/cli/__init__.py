"""The ``bucket-chat`` command."""
