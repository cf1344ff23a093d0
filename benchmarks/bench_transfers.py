"""asyncpresign against the tools users would pick instead, side by side in one run.

    python benchmarks/bench_transfers.py [--quick] [--rounds 5] [--server rclone|seaweedfs]

Starts its own server on 127.0.0.1 (rclone ``serve s3`` by default: the least
CPU per request, so more of the machine measures the client), then for each
round and workload runs every client in a fresh process, upload then download,
interleaved so that drift hits all alike, and verifies the bytes after the
timed part. Client CPU and peak RSS come from the child's own rusage
(``os.wait4``). Workloads: A) 1,000 x 16 KiB, B) 4 x 64 MiB, C) 10,000 x 1 KiB.
Presigned-URL peers get URLs signed before the clock starts; asyncpresign
signs as it goes, inside the timing.

Writes ``benchmarks/results/transfers.json`` (every run) and
``benchmarks/results/RESULTS.md`` (medians and ratios), and a PNG chart when
matplotlib is installed (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import asyncio
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
QUICK = {"A": (200, 16 * 1024), "B": (2, 16 * 1024 * 1024), "C": (1000, 1024)}
CLIENTS = [
    "recipe", "requests-16", "boto3", "s5cmd", "rclone",
    "asyncpresign", "asyncpresign-4k", "asyncpresign-uvloop",
]


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

        start = time.perf_counter()
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
        start = time.perf_counter()
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
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        return time.perf_counter() - start
    if name == "rclone":
        remote = (f":s3,provider=Other,endpoint='{endpoint}',access_key_id={AK},"
                  f"secret_access_key={SK}:{BUCKET}/{prefix}")
        src, dst = (folder, remote) if op == "up" else (remote, out)
        start = time.perf_counter()
        subprocess.run(["rclone", "copy", src, dst, "--transfers", "16", "--checkers", "16",
                        "--config", os.devnull], env=env, check=True, capture_output=True)
        return time.perf_counter() - start
    if name.startswith("ceiling"):
        return ceiling_client(name, endpoint, names=names, folder=folder, out=out)
    return asyncio_client(name, op, endpoint, folder=folder, names=names, keys=keys, out=out)


def ceiling_client(name: str, endpoint: str, *, names: list[str], folder: str,
                   out: str) -> float:
    """The machine's own limit: plain aiohttp from a trivial server (no S3, no
    signing), each body discarded or written to disk, at the given chunk size."""
    import aiohttp

    _, mode, chunk_text = name.split("-")
    chunk = 4096 if chunk_text == "4k" else 65536

    async def main() -> float:
        async with aiohttp.ClientSession() as session:
            start = time.perf_counter()

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
                   keys: list[str], out: str) -> float:
    from asyncpresign import Download, Signer, TransferEngine, Upload

    chunk = 4096 if name == "asyncpresign-4k" else 65536

    async def main() -> float:
        async with Signer(endpoint_url=endpoint, region=REGION, access_key=AK, secret_key=SK,
                          addressing_style="path") as signer:
            await signer.presign_get(BUCKET, "warm-up")  # learn the endpoint, untimed
            async with TransferEngine(chunk_size=chunk) as engine:
                start = time.perf_counter()

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
}


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


def start_rclone(data: Path) -> tuple[subprocess.Popen[bytes], str]:
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
    """Run one client in a fresh process: (seconds and transfer CPU s it reported, peak
    RSS MiB of the process from os.wait4, error)."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--client", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    stdout = process.stdout.read() if process.stdout else b""
    stderr = process.stderr.read() if process.stderr else b""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        total_cpu = usage.ru_utime + usage.ru_stime
        return 0.0, total_cpu, usage.ru_maxrss / 1024, stderr.decode()[-300:]
    seconds, cpu = stdout.decode().strip().splitlines()[-1].split()
    return float(seconds), float(cpu), usage.ru_maxrss / 1024, ""


def same_files(a: Path, b: Path) -> bool:
    names = sorted(os.listdir(a))
    return names == sorted(os.listdir(b)) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names
    )


def run_ceiling(r: int, root: Path, source: Path, workload: tuple[int, int],
                runs: list[Run]) -> None:
    ceiling, ceiling_url = start_ceiling(source)
    try:
        count, size = workload
        for name in ("ceiling-discard-4k", "ceiling-discard-64k",
                     "ceiling-write-4k", "ceiling-write-64k"):
            out = root / "out" / f"r{r}-{name}"
            out.mkdir(parents=True)
            seconds, cpu, rss, error = child(
                [name, "down", ceiling_url, str(source), "", str(out)]
            )
            runs.append(Run(r, "B", name, "down", not error, count, count * size,
                            seconds, cpu, rss, error[-200:]))
            print(f"round {r} B {name:20} down "
                  f"{count * size / 1e6 / seconds if seconds else 0:8.1f} MB/s", flush=True)
            shutil.rmtree(out)
    finally:
        ceiling.terminate()
        ceiling.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--clients", nargs="*", default=CLIENTS)
    parser.add_argument("--client", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        name, op, endpoint, folder, prefix, out = args.client
        for module in _MODULES.get(name.split("-")[0], ()):
            importlib.import_module(module)  # imports are start-up, not transfer CPU
        before = _cpu_now()
        seconds = run_client(name, op, endpoint, folder=folder, prefix=prefix, out=out)
        # CPU of the transfer itself (this process and the tool it ran), without the
        # interpreter's start-up and imports, which would swamp small workloads.
        print(seconds, _cpu_now() - before)
        return
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    workloads = QUICK if args.quick else WORKLOADS
    rounds = args.rounds or (1 if args.quick else 5)
    clients = [c for c in args.clients if c.split("-")[0] != "s5cmd" or shutil.which("s5cmd")]
    root = Path(tempfile.mkdtemp(prefix="asyncpresign-bench-"))
    runs: list[Run] = []
    server, endpoint = start_rclone(root / "server")
    try:
        sources = {}
        for w, (count, size) in workloads.items():
            folder = root / f"src-{w}"
            folder.mkdir()
            for i in range(count):
                (folder / f"o{i:05d}").write_bytes(os.urandom(size))
            sources[w] = folder
        for r in range(rounds):
            for w, (count, size) in workloads.items():
                for name in clients:
                    prefix = f"r{r}/{w}/{name}"
                    out = root / "out" / prefix
                    out.mkdir(parents=True)
                    for op in ("up", "down"):
                        seconds, cpu, rss, error = child(
                            [name, op, endpoint, str(sources[w]), prefix, str(out)]
                        )
                        ok = not error and (op == "up" or same_files(sources[w], out))
                        runs.append(Run(r, w, name, op, ok, count, count * size, seconds,
                                        cpu, rss, error.strip().splitlines()[-1] if error else ""))
                        print(f"round {r} {w} {name:20} {op:4} "
                              f"{count / seconds if seconds else 0:8.0f} obj/s "
                              f"{count * size / 1e6 / seconds if seconds else 0:8.1f} MB/s "
                              f"cpu {cpu:6.2f}s rss {rss:6.0f} MiB {'ok' if ok else 'FAILED'}",
                              flush=True)
                    shutil.rmtree(out)
            # The ceiling, in the same round: B's objects from a trivial server.
            run_ceiling(r, root, sources["B"], workloads["B"], runs)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(root, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "transfers.json").write_text(json.dumps([asdict(r) for r in runs], indent=1))
    report(runs, rounds)


def report(runs: list[Run], rounds: int) -> None:
    import platform

    lines = [
        f"Transfers through presigned URLs against rclone serve s3 on 127.0.0.1, "
        f"{time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, {rounds} round(s), "
        "2 shared cores (client and server). Medians; ratios to the original recipe and to "
        "s5cmd use the medians of the same runs.",
        "",
        "| workload | op | client | objects/s | MB/s | range MB/s | CPU ms/object | CPU s/GB | "
        "peak RSS MiB | vs recipe | vs s5cmd |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r.workload, r.op) for r in runs}, key=lambda k: (k[0], k[1] != "up"))
    for workload, op in keys:
        def median_rate(client: str, workload: str = workload, op: str = op) -> float | None:
            rates = [r.objects / r.seconds for r in runs if r.workload == workload and
                     r.op == op and r.client == client and r.ok and r.seconds]
            return statistics.median(rates) if rates else None

        recipe, s5cmd = median_rate("recipe"), median_rate("s5cmd")
        for client in dict.fromkeys(r.client for r in runs):
            ran = [r for r in runs if (r.workload, r.op, r.client) == (workload, op, client)]
            if not ran:
                continue  # this client has no such run (the ceiling is B down only)
            mine = [r for r in ran if r.ok and r.seconds]
            if not mine:
                lines.append(f"| {workload} | {op} | {client} | failed | | | | | | | |")
                continue
            rate = statistics.median(r.objects / r.seconds for r in mine)
            mbs = [r.nbytes / 1e6 / r.seconds for r in mine]
            cpu = statistics.median(r.cpu for r in mine)
            lines.append(
                f"| {workload} | {op} | {client} | {rate:.0f} | {statistics.median(mbs):.0f} | "
                f"{min(mbs):.0f}-{max(mbs):.0f} | {cpu / mine[0].objects * 1e3:.2f} | "
                f"{cpu / (mine[0].nbytes / 1e9):.2f} | "
                f"{statistics.median(r.rss_mib for r in mine):.0f} | "
                f"{rate / recipe if recipe else 0:.2f}x | {rate / s5cmd if s5cmd else 0:.2f}x |"
            )
    (RESULTS / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    chart(runs)


def chart(runs: list[Run]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart (pip install 'asyncpresign[bench]')")
        return
    groups = sorted({(r.workload, r.op) for r in runs})
    clients = list(dict.fromkeys(r.client for r in runs))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 4.5))
    for ax, (workload, op) in zip(axes, groups, strict=True):
        values = []
        for client in clients:
            rates = [r.objects / r.seconds for r in runs if (r.workload, r.op, r.client) ==
                     (workload, op, client) and r.ok and r.seconds]
            values.append(statistics.median(rates) if rates else 0)
        ax.barh(clients, values)
        ax.set_title(f"{workload} {op} (objects/s)", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "transfers.png", dpi=110)


if __name__ == "__main__":
    main()
