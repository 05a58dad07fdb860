"""Frozen entry point of ``bucket-chat``, the console executable."""

from bucket_chat_desktop.cli.main import main

raise SystemExit(main())
