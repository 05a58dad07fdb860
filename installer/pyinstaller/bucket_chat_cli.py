"""Frozen entry point of ``bucket-chat``, the console executable."""

import multiprocessing

# First: a worker process of a cold read (sync/verifier.py, started by ``spawn``) is this
# executable run again with ``--multiprocessing-fork``; it becomes that worker here.
multiprocessing.freeze_support()

from bucket_chat_desktop.cli.main import main  # noqa: E402

raise SystemExit(main())
