"""Streams through a pipe: ``producer | upload - s3://...`` and
``download s3://... - | consumer``, against s5cmd (``pipe``/``cat``) and rclone
(``rcat``/``cat``), with asyncpresign's own file upload and download beside
them, side by side in one run.

    python benchmarks/bench_streams.py [--mib 256] [--rounds 3] [--server rclone|seaweedfs]

Each command is a whole process (start-up included), fed from or drained into
a pipe by this script; the methods alternate every round and the table gives
same-round medians: MB/s, the command's CPU seconds per GB (user + system of
the child, from wait4), its peak RSS, and the ratio against s5cmd.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_transfers import AK, BUCKET, REGION, SK, Server

CHUNK = 1 << 20


def _env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK, AWS_DEFAULT_REGION=REGION,
               AWS_ENDPOINT_URL=endpoint, AWS_CONFIG_FILE=os.devnull,
               AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    return env


def _rclone_remote(endpoint: str, key: str) -> str:
    return (f":s3,provider=Other,endpoint='{endpoint}',access_key_id={AK},"
            f"secret_access_key={SK}:{BUCKET}/{key}")


def commands(endpoint: str, key: str, source: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (argv, how its data flows: "stdin", "stdout" or "file")."""
    me = [sys.executable, "-m", "asyncpresign"]
    uri = f"s3://{BUCKET}/{key}"
    found = {
        "asyncpresign upload -": ([*me, "upload", "-", uri, "--quiet"], "stdin"),
        "asyncpresign upload FILE": ([*me, "upload", str(source), uri, "--quiet"], "file"),
        "s5cmd pipe": (["s5cmd", "--endpoint-url", endpoint, "pipe", uri], "stdin"),
        "rclone rcat": (["rclone", "rcat", _rclone_remote(endpoint, key), "--config",
                         os.devnull], "stdin"),
        "asyncpresign download -": ([*me, "download", uri, "-", "--quiet"], "stdout"),
        "asyncpresign download FILE": (
            [*me, "download", uri, str(source.with_suffix(".out")), "--quiet"], "file"),
        "s5cmd cat": (["s5cmd", "--endpoint-url", endpoint, "cat", uri], "stdout"),
        "rclone cat": (["rclone", "cat", _rclone_remote(endpoint, key), "--config",
                        os.devnull], "stdout"),
    }
    return {name: spec for name, spec in found.items() if shutil.which(spec[0][0])}


def run(
    argv: list[str], flow: str, env: dict[str, str], source: Path
) -> tuple[float, float, float]:
    """(seconds, CPU seconds, peak RSS MiB) of one command, its pipe fed or drained here."""
    stdin = subprocess.PIPE if flow == "stdin" else subprocess.DEVNULL
    stdout = subprocess.PIPE if flow == "stdout" else subprocess.DEVNULL
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                               env=env)
    drained = [0]

    def feed() -> None:
        assert process.stdin is not None
        with open(source, "rb") as f, process.stdin:
            while data := f.read(CHUNK):
                process.stdin.write(data)

    def drain() -> None:
        assert process.stdout is not None
        while data := process.stdout.read(CHUNK):
            drained[0] += len(data)

    pump = threading.Thread(target=feed if flow == "stdin" else drain if flow == "stdout"
                            else lambda: None)
    pump.start()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    pump.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        err = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{argv[:3]} failed ({process.returncode}): {err[-500:]}")
    if flow == "stdout" and drained[0] != source.stat().st_size:
        raise SystemExit(f"{argv[:3]} wrote {drained[0]} bytes, not {source.stat().st_size}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", choices=("rclone", "seaweedfs"), default="rclone")
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="asyncpresign-bench-streams-") as tmp:
        source = Path(tmp, "source.bin")
        with open(source, "wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(1 << 20))
        server = Server(args.server, Path(tmp))
        try:
            env = _env(server.endpoint)
            names = list(commands(server.endpoint, "x", source))
            results: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
            for round_number in range(args.rounds):
                # Every upload writes the key the downloads then read back.
                order = names if round_number % 2 == 0 else names[::-1]
                ups = [n for n in order if "upload" in n or "pipe" in n or "rcat" in n]
                downs = [n for n in order if n not in ups]
                for name in ups + downs:
                    argv, flow = commands(server.endpoint, "stream.bin", source)[name]
                    results[name].append(run(argv, flow, env, source))
        finally:
            server.stop()
    print(f"{args.mib} MiB through a pipe, {args.rounds} rounds, server {args.server}, "
          f"{os.cpu_count()} cores; medians\n")
    print("| command | MB/s | CPU s/GB | peak RSS MiB | vs s5cmd |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        seconds = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rss = max(r[2] for r in runs)
        peer = "s5cmd pipe" if any(w in name for w in ("upload", "pipe", "rcat")) else "s5cmd cat"
        ratio = ""
        if results.get(peer):
            ratios = [p[0] / r[0] for r, p in zip(runs, results[peer], strict=True)]
            ratio = f"{statistics.median(ratios):.2f}x"
        print(f"| {name} | {size / 1e6 / seconds:.0f} | {cpu / (size / 1e9):.2f} | "
              f"{rss:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
