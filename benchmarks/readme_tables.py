"""Copy the transfer benchmark's summary into benchmarks/README.md, between its markers.

    python benchmarks/readme_tables.py [SERVER ...]     (default: rclone seaweedfs)

For each server whose results exist, the block between ``<!-- bench:SERVER -->``
and ``<!-- /bench:SERVER -->`` is replaced by: the run's header (date, rounds,
versions), asyncpresign against its closest peers per workload with the
same-round ratios, and the issues' goals with the measured figures. The full
table stays in ``benchmarks/results/RESULTS-SERVER.md``.
"""

from __future__ import annotations

import json
import re
import statistics
import sys

import bench_transfers as bt

README = bt.HERE / "README.md"
PEERS = ("s5cmd", "obstore", "rclone", "recipe")


def rate(runs: list[bt.Run], workload: str, op: str, client: str) -> str:
    mine = [r for r in runs if (r.workload, r.op, r.client) == (workload, op, client)
            and r.ok and r.seconds]
    if not mine:
        return "n/a"
    if workload == "B":
        return f"{statistics.median(r.nbytes / 1e6 / r.seconds for r in mine):,.0f} MB/s"
    return f"{statistics.median(r.objects / r.seconds for r in mine):,.0f}"


def ratio(runs: list[bt.Run], workload: str, op: str, other: str) -> str:
    value = bt.same_round_ratio(runs, workload, op, "asyncpresign", other)
    return f"{value:.2f}x" if value else "n/a"


def summary(server: str) -> list[str]:
    data = json.loads((bt.RESULTS / f"transfers-{server}.json").read_text())
    runs = [bt.Run(**r) for r in data["runs"]]
    header = (bt.RESULTS / f"RESULTS-{server}.md").read_text().splitlines()[0]
    lines = [
        header,
        "",
        "| workload | asyncpresign | its CLI path (tree) | s5cmd | obstore | rclone "
        "| original recipe | vs s5cmd | vs recipe | asyncpresign CPU per object |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for workload in ("A", "B", "C"):
        for op in ("up", "down"):
            per_gb = workload == "B"  # per GB says more than per object here
            value = bt.median_cpu(runs, workload, op, "asyncpresign",
                                  per="GB" if per_gb else "object")
            cpu = ("n/a" if value is None
                   else f"{value:.2f} s/GB" if per_gb else f"{value:.2f} ms")
            lines.append(
                f"| {workload} {op} | {rate(runs, workload, op, 'asyncpresign')} | "
                f"{rate(runs, workload, op, 'asyncpresign-tree')} | "
                + " | ".join(rate(runs, workload, op, p) for p in PEERS)
                + f" | {ratio(runs, workload, op, 's5cmd')} | "
                f"{ratio(runs, workload, op, 'recipe')} | {cpu} |"
            )
    return [*lines, "", *bt.goals(runs)]


def main(servers: list[str]) -> None:
    text = README.read_text()
    for server in servers:
        if not (bt.RESULTS / f"transfers-{server}.json").exists():
            print(f"no results for {server}: README block left as it was")
            continue
        start, end = f"<!-- bench:{server} -->", f"<!-- /bench:{server} -->"
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        if not pattern.search(text):
            print(f"README has no {start} … {end} block")
            continue
        block = "\n".join([start, *summary(server), end])
        text = pattern.sub(lambda _, block=block: block, text)
    README.write_text(text)


if __name__ == "__main__":
    main(sys.argv[1:] or ["rclone", "seaweedfs"])
