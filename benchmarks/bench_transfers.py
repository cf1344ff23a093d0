"""asyncpresign against the tools users would pick instead, side by side in one run.

    python benchmarks/bench_transfers.py [--quick] [--rounds 5] [--server rclone|seaweedfs]
                                         [--workloads ABC] [--clients NAME ...]

Starts its own server on 127.0.0.1 (rclone ``serve s3`` by default: the least
CPU per request, so more of the machine measures the client), then for each
round and workload runs every client in a fresh process, upload then download,
interleaved so that drift hits all alike, and verifies the bytes after the
timed part. Each child reports its own CPU and peak RSS (VmHWM; see
``peak_rss_mib``). Workloads: A) 1,000 x 16 KiB, B) 4 x 64 MiB, C) 10,000 x 1 KiB.
Presigned-URL peers get URLs signed before the clock starts; asyncpresign
signs as it goes, inside the timing. Every client's CPU is that of its timed
part (set-up and imports excluded; s5cmd's and rclone's whole process).

asyncpresign runs as a library (``TransferEngine.run`` over URLs it signs for
keys it is given) and, as ``asyncpresign-tree``, as the CLI runs it:
``upload_tree`` (each file's CRC64NVME signed in, multipart above 8 MiB) and
``download_prefix`` (the listing read, each object checked), which is also
what s5cmd and rclone do. The library client signs no checksum into its PUTs,
so SeaweedFS, which keeps a CRC64NVME only when an upload gives one, checks
its downloads by MD5; the tree client's are checked by CRC64NVME there, as
every object on AWS S3 is. rclone ``serve s3`` keeps no CRCs: there, every
client's check is MD5 (the server reads a file whole to hash it for every GET).

Writes ``benchmarks/results/transfers-SERVER.json`` (every run, with the
versions), ``benchmarks/results/RESULTS-SERVER.md`` (medians, same-round
ratios, and the issues' goals with the measured figures), and
``transfers-SERVER.png`` when matplotlib is installed (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
AK, SK, REGION, BUCKET = "BENCHAK", "BENCHSECRETKEY0123456789", "us-east-1", "bench"
WORKLOADS = {"A": (1000, 16 * 1024), "B": (4, 64 * 1024 * 1024), "C": (10_000, 1024)}
QUICK = {"A": (200, 16 * 1024), "B": (4, 64 * 1024 * 1024), "C": (1000, 1024)}
CLIENTS = [
    "recipe", "requests-16", "boto3", "s5cmd", "rclone", "obstore",
    "asyncpresign", "asyncpresign-4k", "asyncpresign-uvloop", "asyncpresign-noverify",
    "asyncpresign-md5", "asyncpresign-tree",
]
#: Workloads whose objects are spread over the rounds: each round moves the
#: next 1/rounds of them (C: 2,000 of the 10,000 in each of 5 rounds), so every
#: client moves all of C once in the run. Five whole rounds of C take about
#: 10 minutes on our 2 cores (boto3 alone 2 minutes a round), which no 15-minute
#: budget holds; 2,000 requests a run are plenty to measure per-request cost,
#: and every client gets the same slices in the same rounds.
SPREAD = {"C"}
#: A 4 KiB chunk is the default's behaviour for objects below 4 KiB (C): one
#: read each. The 4 KiB variant runs where the chunk size changes anything.
SKIP = {("C", "asyncpresign-4k")}
#: Diagnostics, not contenders, shown where bytes dominate (B): downloads with
#: no check ("noverify"; its uploads are the default's), and with MD5 in place of
#: the default CRC64NVME ("md5": uploads signed with Content-MD5, downloads
#: signed without ChecksumMode, so the check is the MD5 ETag's). Against rclone
#: serve s3, which keeps no CRCs, the default's check is MD5 too.
SKIP |= {(w, c) for w in "AC" for c in ("asyncpresign-noverify", "asyncpresign-md5")}


@dataclass
class Run:
    round: int
    workload: str
    client: str
    op: str
    ok: bool
    objects: int
    nbytes: int
    seconds: float
    cpu: float
    rss_mib: float
    server_cpu: float = 0.0
    note: str = ""


# -- the clients (each runs in its own process) --------------------------------------------


def presigned(endpoint: str, method: str, keys: list[str]) -> list[str]:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=AK,
        aws_secret_access_key=SK,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    op = "put_object" if method == "PUT" else "get_object"
    return [
        client.generate_presigned_url(op, Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=3600)
        for k in keys
    ]


def run_client(
    name: str, op: str, endpoint: str, *, folder: str, prefix: str, out: str
) -> float:
    names = sorted(os.listdir(folder))
    keys = [f"{prefix}/{n}" for n in names]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SK,
           "AWS_REGION": REGION}
    if name in ("recipe", "requests-16"):
        import requests

        urls = presigned(endpoint, "PUT" if op == "up" else "GET", keys)
        session = requests.Session()
        # requests' pool holds 10 connections; 16 threads need 16.
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=16))

        def one(i: int) -> None:
            if op == "up":
                with open(os.path.join(folder, names[i]), "rb") as f:
                    session.put(urls[i], data=f).raise_for_status()
            else:
                with session.get(urls[i], stream=True) as r, open(
                    os.path.join(out, names[i]), "wb"
                ) as f:
                    r.raise_for_status()
                    for block in r.iter_content(4096):
                        f.write(block)

        start = start_clock()
        if name == "recipe":
            for i in range(len(names)):
                one(i)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(16) as pool:
                list(pool.map(one, range(len(names))))
        return time.perf_counter() - start
    if name == "boto3":
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config
        from s3transfer.manager import TransferManager

        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=AK,
            aws_secret_access_key=SK, config=Config(max_pool_connections=16),
        )
        start = start_clock()
        with TransferManager(client, TransferConfig(max_concurrency=16)) as manager:
            futures = [
                manager.upload(os.path.join(folder, n), BUCKET, k) if op == "up"
                else manager.download(BUCKET, k, os.path.join(out, n))
                for n, k in zip(names, keys, strict=True)
            ]
            for future in futures:
                future.result()
        return time.perf_counter() - start
    if name == "s5cmd":
        command = (
            ["s5cmd", "--endpoint-url", endpoint, "cp", f"{folder}/*", f"s3://{BUCKET}/{prefix}/"]
            if op == "up"
            else ["s5cmd", "--endpoint-url", endpoint, "cp", f"s3://{BUCKET}/{prefix}/*", out + "/"]
        )
        start = start_clock()
        subprocess.run(command, env=env, check=True, capture_output=True)
        return time.perf_counter() - start
    if name == "rclone":
        remote = (f":s3,provider=Other,endpoint='{endpoint}',access_key_id={AK},"
                  f"secret_access_key={SK}:{BUCKET}/{prefix}")
        src, dst = (folder, remote) if op == "up" else (remote, out)
        start = start_clock()
        subprocess.run(["rclone", "copy", src, dst, "--transfers", "16", "--checkers", "16",
                        "--config", os.devnull], env=env, check=True, capture_output=True)
        return time.perf_counter() - start
    if name == "obstore":
        return obstore_client(op, endpoint, folder=folder, names=names, keys=keys, out=out)
    if name.startswith("ceiling"):
        return ceiling_client(name, endpoint, names=names, folder=folder, out=out)
    return asyncio_client(name, op, endpoint, folder=folder, names=names, keys=keys, out=out,
                          prefix=prefix)


def obstore_client(op: str, endpoint: str, *, folder: str, names: list[str],
                   keys: list[str], out: str) -> float:
    """obstore (Rust object_store) with its own signing, 16 requests in flight."""
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        BUCKET, endpoint=endpoint, access_key_id=AK, secret_access_key=SK, region=REGION,
        client_options={"allow_http": True}, virtual_hosted_style_request=False,
    )

    async def main() -> float:
        limit = asyncio.Semaphore(16)

        async def one(n: str, k: str) -> None:
            async with limit:
                if op == "up":
                    await obstore.put_async(store, k, Path(folder, n))
                else:
                    result = await obstore.get_async(store, k)
                    with open(os.path.join(out, n), "wb") as f:  # noqa: ASYNC230
                        async for block in result.stream():
                            f.write(block)

        start = start_clock()
        await asyncio.gather(*(one(n, k) for n, k in zip(names, keys, strict=True)))
        return time.perf_counter() - start

    return asyncio.run(main())


def ceiling_client(name: str, endpoint: str, *, names: list[str], folder: str,
                   out: str) -> float:
    """The machine's own limit: plain aiohttp from a trivial server (no S3, no
    signing), each body discarded or written to disk, at the given chunk size."""
    import aiohttp

    _, mode, chunk_text = name.split("-")
    chunk = 4096 if chunk_text == "4k" else 65536

    async def main() -> float:
        async with aiohttp.ClientSession() as session:
            start = start_clock()

            async def one(n: str) -> None:
                async with session.get(f"{endpoint}/{n}") as response:
                    if mode == "discard":
                        async for _ in response.content.iter_chunked(chunk):
                            pass
                    else:
                        with open(os.path.join(out, n), "wb") as f:  # noqa: ASYNC230
                            async for block in response.content.iter_chunked(chunk):
                                f.write(block)

            await asyncio.gather(*(one(n) for n in names))
            return time.perf_counter() - start

    return asyncio.run(main())


def asyncio_client(name: str, op: str, endpoint: str, *, folder: str, names: list[str],
                   keys: list[str], out: str, prefix: str) -> float:
    from asyncpresign import (
        Download,
        Signer,
        TransferEngine,
        Upload,
        download_prefix,
        upload_tree,
    )

    chunk = 4096 if name == "asyncpresign-4k" else 65536
    verify = name != "asyncpresign-noverify"
    checksum = "md5" if name == "asyncpresign-md5" else "crc64nvme"

    async def main() -> float:
        async with Signer(endpoint_url=endpoint, region=REGION, access_key=AK, secret_key=SK,
                          addressing_style="path",
                          checksum=None if checksum == "md5" else checksum) as signer:
            await signer.presign_get(BUCKET, "warm-up")  # learn the endpoint, untimed
            async with TransferEngine(chunk_size=chunk, verify=verify,
                                      checksum=checksum) as engine:
                if name == "asyncpresign-tree":
                    start = start_clock()
                    if op == "up":
                        result = await upload_tree(signer, engine, folder, BUCKET, prefix)
                    else:  # "prefix/": "r0/B/asyncpresign" must not take in "...-md5/"
                        result = await download_prefix(signer, engine, BUCKET, f"{prefix}/", out)
                    if not result.ok:
                        raise SystemExit(f"{len(result.failed)} failed: {result.failed[0].error}")
                    return time.perf_counter() - start
                start = start_clock()

                async def jobs() -> Any:
                    for n, k in zip(names, keys, strict=True):
                        if op == "up":
                            yield Upload(await signer.presign_put(BUCKET, k),
                                         os.path.join(folder, n))
                        else:
                            yield Download(await signer.presign_get(BUCKET, k),
                                           os.path.join(out, n))

                result = await engine.run(jobs(), keep_results=False)
                if not result.ok:
                    raise SystemExit(f"{len(result.failed)} failed: {result.failed[0].error}")
                return time.perf_counter() - start

    if name == "asyncpresign-uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


# -- the parent ----------------------------------------------------------------------------


_MODULES = {
    "recipe": ("requests", "boto3"),
    "requests": ("requests", "boto3"),
    "boto3": ("boto3", "s3transfer.manager"),
    "asyncpresign": ("asyncpresign", "aiobotocore.session", "uvloop"),
    "ceiling": ("aiohttp",),
    "obstore": ("obstore", "obstore.store"),
}


_CPU_AT_START = [0.0]


def start_clock() -> float:
    """Start the timed part: wall clock now, and the CPU from here on is the run's.
    Set-up before it (a client object, URLs signed in advance, a warm-up) is not
    counted in either, for any client; asyncpresign signs inside it."""
    _CPU_AT_START[0] = _cpu_now()
    return time.perf_counter()


def _cpu_now() -> float:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    tools = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + tools.ru_utime + tools.ru_stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CEILING_SERVER = """
import os, sys
from aiohttp import web
folder = sys.argv[2]
async def handle(request):
    return web.FileResponse(os.path.join(folder, request.match_info["name"]))
app = web.Application()
app.router.add_get("/{name}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_ceiling(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", CEILING_SERVER, str(port), str(folder)])
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the ceiling server did not start")


class Server:
    """The S3 server under test on 127.0.0.1 (rclone ``serve s3`` or SeaweedFS), with
    its CPU time read from /proc, so each run reports what the server spent."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self._local: Any = None
        self._process: subprocess.Popen[bytes] | None = None
        if kind == "rclone":
            self._process, self.endpoint = _start_rclone(root / "server")
            self.pid = self._process.pid
        else:
            from asyncpresign.testing import LocalS3

            self._local = LocalS3(access_key=AK, secret_key=SK).start()
            self.endpoint, self.pid = self._local.endpoint_url, self._local.pid
            import boto3

            boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                         aws_access_key_id=AK, aws_secret_access_key=SK,
                         ).create_bucket(Bucket=BUCKET)

    def cpu(self) -> float:
        return process_cpu(self.pid)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
        if self._local is not None:
            self._local.stop()


def _start_rclone(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    (data / BUCKET).mkdir(parents=True)
    process = subprocess.Popen(
        ["rclone", "serve", "s3", "--config", os.devnull, "--addr", f"127.0.0.1:{port}",
         "--auth-key", f"{AK},{SK}", str(data)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    process.kill()
    raise SystemExit("rclone serve s3 did not start")


def child(args: list[str]) -> tuple[float, float, float, str]:
    """Run one client in a fresh process: (seconds, transfer CPU s and peak RSS MiB it
    reported, error).

    The disk is synced first, so that no client runs while the last one's writes
    (the server's objects after an upload, the files of a download) are still
    going to disk: on this VM that showed as CPU of whichever client ran then.
    Seen: the same 256 MiB download, run after an upload, took 0.37-1.23 s of
    CPU without the sync and 0.39-0.42 s with it; the small-object workloads'
    CPU per object fell from about 1 ms (every client) to 0.3-0.7 ms."""
    os.sync()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        code = subprocess.call([sys.executable, __file__, "--client", *args],
                               stdout=out, stderr=err)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    result = stdout.strip().splitlines()[-1].split() if stdout.strip() else []
    if len(result) != 3:
        return 0.0, 0.0, 0.0, stderr.strip() or f"exit status {code}"
    # A tool that crashes on its way out (obstore, seen: SIGABRT at interpreter exit)
    # after reporting a finished, verified transfer keeps its figures, with a note.
    seconds, cpu, rss = result
    return float(seconds), float(cpu), float(rss), "" if code == 0 else f"exit status {code}"


def peak_rss_mib() -> float:
    """This process's peak RSS since its exec (VmHWM), or its tools' if larger.

    Not the parent's ``wait4``: Linux folds the RSS a child had before exec -
    the parent's own, when forked - into its ru_maxrss, so every client would
    report the benchmark's peak instead of its own."""
    import resource

    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            own = int(line.split()[1]) / 1024
            break
    tools = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return max(own, tools)


def same_files(a: Path, b: Path) -> bool:
    names = sorted(os.listdir(a))
    return names == sorted(os.listdir(b)) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names
    )


def measure_client(server: Server, name: str, *, r: int, w: str, source: Path, prefix: str,
                   out: Path, size: int) -> list[Run]:
    """One client's upload of ``source`` under ``prefix``, then its download into ``out``."""
    objects = len(os.listdir(source))
    runs = []
    for op in ("up", "down"):
        server_before = server.cpu()
        seconds, cpu, rss, error = child(
            [name, op, server.endpoint, str(source), prefix, str(out)]
        )
        server_cpu = server.cpu() - server_before
        ok = seconds > 0 and (op == "up" or same_files(source, out))
        if error:
            print(error[-2000:], file=sys.stderr)
        runs.append(Run(r, w, name, op, ok, objects, objects * size, seconds,
                        cpu, rss, server_cpu, _last_line(error)))
        print(f"round {r} {w} {name:20} {op:4} "
              f"{objects / seconds if seconds else 0:8.0f} obj/s "
              f"{objects * size / 1e6 / seconds if seconds else 0:8.1f} MB/s "
              f"cpu {cpu:6.2f}s server {server_cpu:6.2f}s "
              f"rss {rss:6.0f} MiB {'ok' if ok else 'FAILED'}",
              flush=True)
    return runs


def run_ceiling(r: int, root: Path, source: Path, workload: tuple[int, int],
                runs: list[Run]) -> None:
    ceiling, ceiling_url = start_ceiling(source)
    try:
        count, size = workload
        for name in ("ceiling-discard-4k", "ceiling-discard-64k",
                     "ceiling-write-4k", "ceiling-write-64k"):
            out = root / "out" / f"r{r}-{name}"
            out.mkdir(parents=True)
            server_before = process_cpu(ceiling.pid)
            seconds, cpu, rss, error = child(
                [name, "down", ceiling_url, str(source), "", str(out)]
            )
            runs.append(Run(r, "B", name, "down", seconds > 0, count, count * size,
                            seconds, cpu, rss, process_cpu(ceiling.pid) - server_before,
                            _last_line(error)))
            print(f"round {r} B {name:20} down "
                  f"{count * size / 1e6 / seconds if seconds else 0:8.1f} MB/s", flush=True)
            shutil.rmtree(out)
    finally:
        ceiling.terminate()
        ceiling.wait(10)


def _last_line(error: str) -> str:
    return error.strip().splitlines()[-1][:300] if error.strip() else ""


def client_main(args: list[str]) -> None:
    name, op, endpoint, folder, prefix, out = args
    for module in _MODULES.get(name.split("-", maxsplit=1)[0], ()):
        importlib.import_module(module)  # imports are start-up, not transfer CPU
    seconds = run_client(name, op, endpoint, folder=folder, prefix=prefix, out=out)
    # CPU of the timed part (this process and the tool it ran), without the
    # interpreter's start-up, imports and set-up, which would swamp small
    # workloads. s5cmd and rclone are timed whole, their start-up included.
    print(seconds, _cpu_now() - _CPU_AT_START[0], peak_rss_mib())


def work_folder(path: str | None) -> Path:
    """The run's folder for sources, downloads and the server's data: ``path``
    (new), or a temporary one."""
    if path is None:
        return Path(tempfile.mkdtemp(prefix="asyncpresign-bench-"))
    Path(path).mkdir(parents=True)
    return Path(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--server", choices=("rclone", "seaweedfs"), default="rclone")
    parser.add_argument("--workloads", default="ABC")
    parser.add_argument("--clients", nargs="*", default=CLIENTS)
    parser.add_argument(
        "--workdir", help="a new folder for the run's files, kept afterwards (default: a "
        "temporary one, deleted at the end)",
    )
    parser.add_argument("--client", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client)
        return
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    workloads = {w: n for w, n in (QUICK if args.quick else WORKLOADS).items()
                 if w in args.workloads}
    rounds = args.rounds or (1 if args.quick else 5)
    clients = [c for c in args.clients if c.split("-")[0] != "s5cmd" or shutil.which("s5cmd")]
    root = work_folder(args.workdir)
    runs: list[Run] = []
    started = time.perf_counter()
    server = Server(args.server, root)
    try:
        sources: dict[str, list[Path]] = {}
        for w, (count, size) in workloads.items():
            parts = rounds if w in SPREAD else 1
            sources[w] = []
            for part in range(parts):
                folder = root / f"src-{w}" / f"part{part}"
                folder.mkdir(parents=True)
                for i in range(part * count // parts, (part + 1) * count // parts):
                    (folder / f"o{i:05d}").write_bytes(os.urandom(size))
                sources[w].append(folder)
        for r in range(rounds):
            # Each round starts the client order one place later, so no client is
            # always the one that runs after a given other.
            order = clients[r % len(clients):] + clients[:r % len(clients)]
            for w, (_, size) in workloads.items():
                for name in order:
                    if (w, name) in SKIP:
                        continue
                    source = sources[w][r % len(sources[w])]
                    prefix = f"r{r}/{w}/{name}"
                    out = root / "out" / prefix
                    out.mkdir(parents=True)
                    runs += measure_client(server, name, r=r, w=w, source=source,
                                           prefix=prefix, out=out, size=size)
                    # A's and C's downloads stay until the run is over. ext4 without
                    # a journal (this VM's disk) passes over every inode freed in the
                    # last minute (six, while its block is not on disk) each time it
                    # makes a file: seen here, a 16 KiB file cost 0.55 ms of system
                    # CPU to make after the bench had deleted a run's thousands,
                    # 0.06 ms on a disk left alone. The client after a deletion paid
                    # for it. B's are 4 files.
                    if w == "B":
                        shutil.rmtree(out)
            if "B" in workloads:
                # The ceiling, in the same round: B's objects from a trivial server.
                run_ceiling(r, root, sources["B"][0], workloads["B"], runs)
    finally:
        server.stop()
        if not args.workdir:  # kept: make bench deletes it after its last run
            shutil.rmtree(root, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"transfers-{args.server}.json").write_text(
        json.dumps({"versions": versions(), "runs": [asdict(r) for r in runs]}, indent=1)
    )
    report(runs, rounds, args.server, time.perf_counter() - started)


def versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("asyncpresign", "aiohttp", "uvloop", "requests", "boto3", "obstore"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    for tool, command in (("s5cmd", ["s5cmd", "version"]), ("rclone", ["rclone", "version"]),
                          ("seaweedfs", ["weed", "version"])):
        with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
            words = subprocess.run(command, check=False, capture_output=True, text=True,
                                   timeout=30).stdout.split()
            found[tool] = words[2] if tool == "seaweedfs" else words[1 if tool == "rclone" else 0]
    return found


def _median_rate(runs: list[Run], workload: str, op: str, client: str,
                 round_: int | None = None) -> float | None:
    rates = [r.objects / r.seconds for r in runs if (r.workload, r.op, r.client) ==
             (workload, op, client) and r.ok and r.seconds and round_ in (None, r.round)]
    return statistics.median(rates) if rates else None


def same_round_ratio(runs: list[Run], workload: str, op: str, client: str,
                     other: str) -> float | None:
    """The median over rounds of client's rate / other's rate in the same round."""
    ratios = []
    for round_ in sorted({r.round for r in runs}):
        mine = _median_rate(runs, workload, op, client, round_)
        theirs = _median_rate(runs, workload, op, other, round_)
        if mine and theirs:
            ratios.append(mine / theirs)
    return statistics.median(ratios) if ratios else None


def report(runs: list[Run], rounds: int, server: str, elapsed: float) -> None:
    found = versions()
    shown = ", ".join(f"{k} {v}" for k, v in found.items())
    lines = [
        f"Transfers through presigned URLs against {SERVER_NAMES[server]} on 127.0.0.1, "
        f"{time.strftime('%Y-%m-%d')}, {rounds} round(s) in {elapsed / 60:.1f} min, "
        "2 shared cores (client and server). Versions: " + shown + ".",
        "",
        "Medians over the rounds. Ratios are taken within each round, then their median. "
        "CPU is the client's own (user + system, the tool's child processes included, "
        "start-up and imports excluded); server CPU is the server's for the same run. "
        "C's objects are spread over the rounds: each run moves that round's slice "
        f"({_objects_per_run(runs, 'C')} objects), so every client moves all of C once "
        "(see SPREAD in the script).",
        "",
        "| workload | op | client | objects/s | MB/s | range MB/s | CPU ms/object | CPU s/GB | "
        "server CPU s | peak RSS MiB | vs recipe | vs s5cmd |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r.workload, r.op) for r in runs}, key=lambda k: (k[0], k[1] != "up"))
    for workload, op in keys:
        for client in dict.fromkeys(r.client for r in runs):
            ran = [r for r in runs if (r.workload, r.op, r.client) == (workload, op, client)]
            if not ran:
                continue  # this client has no such run (the ceiling is B down only)
            mine = [r for r in ran if r.ok and r.seconds]
            if not mine:
                lines.append(f"| {workload} | {op} | {client} | failed: {ran[-1].note} "
                             "| | | | | | | | |")
                continue
            rate = statistics.median(r.objects / r.seconds for r in mine)
            mbs = [r.nbytes / 1e6 / r.seconds for r in mine]
            cpu = statistics.median(r.cpu for r in mine)
            vs_recipe = same_round_ratio(runs, workload, op, client, "recipe")
            vs_s5cmd = same_round_ratio(runs, workload, op, client, "s5cmd")
            mark = ""
            lines.append(
                f"| {workload} | {op} | {client}{mark} | {rate:.0f} | "
                f"{statistics.median(mbs):.0f} | {min(mbs):.0f}-{max(mbs):.0f} | "
                f"{cpu / mine[0].objects * 1e3:.2f} | {cpu / (mine[0].nbytes / 1e9):.2f} | "
                f"{statistics.median(r.server_cpu for r in mine):.2f} | "
                f"{statistics.median(r.rss_mib for r in mine):.0f} | "
                f"{f'{vs_recipe:.2f}x' if vs_recipe else ''} | "
                f"{f'{vs_s5cmd:.2f}x' if vs_s5cmd else ''} |"
            )
    lines += ["", *goals(runs)]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"RESULTS-{server}.md").write_text(text)
    print(text)
    chart(runs, server, found)


def _objects_per_run(runs: list[Run], workload: str) -> str:
    counts = sorted({r.objects for r in runs if r.workload == workload})
    return "/".join(str(c) for c in counts) or "no"


SERVER_NAMES = {"rclone": "rclone serve s3", "seaweedfs": "SeaweedFS (weed mini)"}


def goals(runs: list[Run]) -> list[str]:
    """The issues' goals for asyncpresign at its defaults, each with the measured figure:
    #7's, #14's (CPU per small object) and #15's (large downloads, checked)."""
    me = "asyncpresign"
    rows: list[tuple[str, float | None, float, str]] = []
    for workload in ("A", "C"):
        for op in ("up", "down"):
            rows.append((f"{workload} {op} vs s5cmd (#7, #14)", same_round_ratio(
                runs, workload, op, me, "s5cmd"), 1.2, "x"))
            rows.append((f"{workload} {op} vs recipe (#7)", same_round_ratio(
                runs, workload, op, me, "recipe"), 4.0, "x"))
    rows.append(("B down vs s5cmd (#7)", same_round_ratio(runs, "B", "down", me, "s5cmd"),
                 1.0, "x"))
    # #15 is about downloads checked by CRC64NVME: the tree client's objects carry
    # one where the server keeps it (SeaweedFS; rclone serve s3 keeps none: MD5).
    tree = f"{me}-tree"
    rows.append(("B down vs rclone, the CLI's path (#15)",
                 same_round_ratio(runs, "B", "down", tree, "rclone"), 1.0, "x"))
    rows.append(("B down client CPU, the CLI's path (#15)",
                 median_cpu(runs, "B", "down", tree, per="GB"), -3.0, " s/GB"))
    rows.append(("B down vs the disk-writing ceiling (64 KiB) (#7)",
                 same_round_ratio(runs, "B", "down", me, "ceiling-write-64k"), 0.9, "x"))
    peers = {r.client for r in runs if not r.client.startswith(("asyncpresign", "ceiling"))}
    best: list[float] = []
    for round_ in sorted({r.round for r in runs}):
        mine = _median_rate(runs, "B", "up", me, round_)
        theirs = [x for p in peers if (x := _median_rate(runs, "B", "up", p, round_))]
        if mine and theirs:
            best.append(mine / max(theirs))
    rows.append(("B up vs the fastest peer (#7)", statistics.median(best) if best else None,
                 0.9, "x"))
    for workload in ("A", "C"):
        for op, most in (("up", 0.30), ("down", 0.40)):
            rows.append((f"{workload} {op} client CPU per object (#14)",
                         median_cpu(runs, workload, op, me, per="object"), -most, " ms"))
    rows.append(("B down at 4 KiB chunks vs recipe (#7)",
                 same_round_ratio(runs, "B", "down", f"{me}-4k", "recipe"), 1.4, "x"))
    rss = {w: [r.rss_mib for r in runs if (r.workload, r.client) == (w, me) and r.ok]
           for w in ("A", "C")}
    growth = (statistics.median(rss["C"]) / statistics.median(rss["A"])
              if rss["A"] and rss["C"] else None)
    rows.append((f"peak RSS, a C run ({_objects_per_run(runs, 'C')} objects) / an A run "
                 f"({_objects_per_run(runs, 'A')}) (#7)", growth, -1.15, "x"))
    out = ["Goals (issues #7, #14, #15), asyncpresign at its defaults:", "",
           "| goal | measured | target | met |", "|---|---|---|---|"]
    for name, value, target, unit in rows:
        if value is None:
            out.append(f"| {name} | not measured | | |")
            continue
        met = value <= -target if target < 0 else value >= target
        sign = "<=" if target < 0 else ">="
        out.append(f"| {name} | {value:.2f}{unit} | {sign} {abs(target):g}{unit} | "
                   f"{'yes' if met else 'no'} |")
    return out


def median_cpu(runs: list[Run], workload: str, op: str, client: str, *,
                per: str) -> float | None:
    """The client's median CPU in ms per object, or s per GB."""
    mine = [r for r in runs if (r.workload, r.op, r.client) == (workload, op, client)
            and r.ok and r.objects]
    if not mine:
        return None
    if per == "GB":
        return statistics.median(r.cpu / (r.nbytes / 1e9) for r in mine)
    return statistics.median(r.cpu / r.objects * 1e3 for r in mine)


def chart(runs: list[Run], server: str, found: dict[str, str]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart (pip install 'asyncpresign[bench]')")
        return
    groups = sorted({(r.workload, r.op) for r in runs}, key=lambda k: (k[0], k[1] != "up"))
    clients = list(dict.fromkeys(r.client for r in runs))
    fig, axes = plt.subplots(2, (len(groups) + 1) // 2, figsize=(13, 7.5), squeeze=False)
    for ax, (workload, op) in zip(axes.T.flat, groups, strict=False):
        shown, values, colours = [], [], []
        for client in clients:
            mine = [r for r in runs if (r.workload, r.op, r.client) == (workload, op, client)
                    and r.ok and r.seconds]
            if not mine:
                continue
            per = (lambda r: r.nbytes / 1e6 / r.seconds) if workload == "B" else (
                lambda r: r.objects / r.seconds)
            shown.append(client)
            values.append(statistics.median(per(r) for r in mine))
            colours.append("tab:orange" if client.startswith("asyncpresign") else
                           "tab:gray" if client.startswith("ceiling") else "tab:blue")
        ax.barh(shown, values, color=colours)
        ax.invert_yaxis()
        ax.set_title(f"{workload} {op} ({'MB/s' if workload == 'B' else 'objects/s'})",
                     fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.T.flat)[len(groups):]:
        ax.axis("off")
    fig.suptitle(
        f"asyncpresign and its peers against {SERVER_NAMES[server]}, "
        f"{time.strftime('%Y-%m-%d')} (medians; A 1,000 x 16 KiB, B 4 x 64 MiB, "
        f"C 10,000 x 1 KiB; Python {found['python']}, 2 cores)", fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(RESULTS / f"transfers-{server}.png", dpi=100)


if __name__ == "__main__":
    main()
