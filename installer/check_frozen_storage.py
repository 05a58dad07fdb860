"""Open s3://, gs:// and az:// storages with the FROZEN ``bucket-chat``, against emulators.

    .venv/bin/python installer/check_frozen_storage.py dist/bucket-chat/bucket-chat [--require]

``--smoke`` proves that each fsspec backend imports and resolves inside the bundle; this
goes further: it starts the emulators the integration tests use (moto_server,
fake-gcs-server, azurite - see tests/integration/_emulators.py), makes a bucket in each
and runs ``bucket-chat storage test URL`` from the bundle: a create-only write, read,
list and the overwrite probe, through the frozen botocore/aiohttp, Google and Azure
SDKs. One line per backend; exit 0 when every backend that ran works. An emulator that
is not installed is skipped, or fails the check with ``--require``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
EMULATORS = ROOT / "tests" / "integration" / "_emulators.py"


def load_emulators() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bucket_chat_emulators", EMULATORS)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {EMULATORS}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def base_env(home: Path, closed: str) -> dict[str, str]:
    """The user's environment minus any cloud credentials, with metadata servers off."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "AZURE_", "GOOGLE_", "GCE_", "BUCKET_CHAT_"))
        and k != "STORAGE_EMULATOR_HOST"
    }
    env.update(
        BUCKET_CHAT_HOME=str(home),
        AWS_EC2_METADATA_DISABLED="true",
        GCE_METADATA_HOST=closed,
        GCE_METADATA_IP=closed,
        NO_GCE_CHECK="true",
        AZURE_POD_IDENTITY_AUTHORITY_HOST=f"http://{closed}",
    )
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exe", type=Path, help="the frozen bucket-chat executable")
    parser.add_argument("--require", action="store_true", help="a missing emulator fails")
    args = parser.parse_args(argv)
    try:
        emu = load_emulators()
    except (ImportError, OSError) as exc:
        print(f"skip storage backends: no emulator helpers ({exc})")
        return 1 if args.require else 0

    makers = {"s3": emu.moto_emulator, "gs": emu.gcs_emulator, "az": emu.azurite_emulator}
    failures = 0
    with tempfile.TemporaryDirectory(prefix="bucket-chat-frozen-storage-") as tmp:
        tmp_path = Path(tmp)
        procs = {}
        for kind, make in makers.items():
            try:
                proc = make(tmp_path)
                proc.start()
                procs[kind] = proc
            except Exception as exc:  # not installed here: report, maybe fail
                status = "FAIL" if args.require else "skip"
                failures += args.require
                print(f"{status} {kind}: emulator not available: {exc}")
        try:
            closed = f"127.0.0.1:{emu.closed_port()}"
            for kind, proc in procs.items():
                failures += not check(emu, kind, proc, args.exe, tmp_path, closed)
        finally:
            for proc in procs.values():
                proc.stop()
    return 1 if failures else 0


def check(emu: ModuleType, kind: str, proc: object, exe: Path, tmp: Path, closed: str) -> bool:
    started = time.monotonic()
    bucket = f"frozen-{uuid.uuid4().hex[:12]}"
    home = tmp / f"home-{kind}"
    env = base_env(home, closed)
    try:
        proc.wait_ready()  # type: ignore[attr-defined]
        endpoint = proc.endpoint  # type: ignore[attr-defined]
        if kind == "s3":
            admin, _ = emu.s3_setup(endpoint)
            emu.s3_create_bucket(endpoint, admin, bucket)
            url = f"s3://{bucket}/frozen?endpoint_url={endpoint}&region={emu.S3_REGION}"
            env.update(
                AWS_ACCESS_KEY_ID=admin.access_key_id,
                AWS_SECRET_ACCESS_KEY=admin.secret_access_key,
            )
        elif kind == "gs":
            emu.gcs_create_bucket(endpoint, bucket)
            url = f"gs://{bucket}/frozen?endpoint_url={endpoint}"
        else:
            emu.az_create_container(endpoint, bucket)
            url = (
                f"az://{bucket}/frozen?account_name={emu.AZ_ACCOUNT}"
                f"&endpoint_url={endpoint}/{emu.AZ_ACCOUNT}"
            )
            env["AZURE_STORAGE_CONNECTION_STRING"] = emu.az_connection_string(endpoint)
    except Exception as exc:
        print(f"FAIL {kind}: emulator set-up: {type(exc).__name__}: {exc}")
        return False
    run = subprocess.run(
        [str(exe), "storage", "test", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    seconds = time.monotonic() - started
    if run.returncode != 0 or "Storage works" not in run.stdout:
        print(f"FAIL {kind}: bucket-chat storage test exited {run.returncode}")
        print("     " + (run.stdout + run.stderr).strip().replace("\n", "\n     "))
        return False
    print(f"ok   {kind}: frozen 'bucket-chat storage test {url.split('?')[0]}' ({seconds:.1f} s)")
    return True


if __name__ == "__main__":
    sys.exit(main())
