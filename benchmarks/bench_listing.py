"""What reading a listing costs per object: botocore's parser of a ListObjectsV2 page
of 1,000 keys, with botocore's own timestamp parser (dateutil) and with the one the
Signer gives its client (``datetime.fromisoformat`` for S3's form), side by side.

    python benchmarks/bench_listing.py [--rounds 7] [--keys 1000]

No server: the page is built here as S3 sends it, so only the parse is timed.
Every ``download``, ``sync`` and ``copy`` of a prefix reads its listing this way.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from typing import Any

import botocore.session
from botocore.parsers import RestXMLParser
from botocore.utils import parse_timestamp as botocore_parse_timestamp

from asyncpresign._signer import parse_timestamp


def page(keys: int) -> bytes:
    start = dt.datetime(2026, 11, 30, 18, 50, tzinfo=dt.timezone.utc)
    items = "".join(
        f"<Contents><Key>data/part-{i:06d}.parquet</Key>"
        f"<LastModified>{(start + dt.timedelta(seconds=i)).strftime('%Y-%m-%dT%H:%M:%S')}"
        f".{i % 1000:03d}Z</LastModified><ETag>&quot;{i:032x}&quot;</ETag>"
        f"<Size>{16384 + i}</Size><StorageClass>STANDARD</StorageClass></Contents>"
        for i in range(keys)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>bench</Name><Prefix>data/</Prefix><KeyCount>{keys}</KeyCount>"
        f"<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>{items}</ListBucketResult>"
    ).encode()


def seconds_to_parse(parser: RestXMLParser, shape: Any, body: bytes) -> float:
    response = {"body": body, "headers": {}, "status_code": 200}
    start = time.process_time()
    parsed = parser.parse(response, shape)
    took = time.process_time() - start
    assert len(parsed["Contents"]) == body.count(b"<Contents>")
    return took


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--rounds", type=int, default=7)
    cli.add_argument("--keys", type=int, default=1000)
    args = cli.parse_args()
    model = botocore.session.get_session().get_service_model("s3")
    shape = model.operation_model("ListObjectsV2").output_shape
    body = page(args.keys)
    parsers = {
        "botocore (dateutil)": RestXMLParser(timestamp_parser=botocore_parse_timestamp),
        "asyncpresign's Signer (fromisoformat)": RestXMLParser(timestamp_parser=parse_timestamp),
    }
    times: dict[str, list[float]] = {name: [] for name in parsers}
    for _ in range(args.rounds):  # alternated, so drift hits both alike
        for name, parser in parsers.items():
            times[name].append(seconds_to_parse(parser, shape, body))
    base = statistics.median(times["botocore (dateutil)"])
    print(f"Parsing a ListObjectsV2 page of {args.keys:,} keys, CPU, median of "
          f"{args.rounds} alternated rounds\n")
    print("| timestamps read by | µs per key | vs botocore |")
    print("|---|---|---|")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"| {name} | {median / args.keys * 1e6:.1f} | {base / median:.2f}x |")


if __name__ == "__main__":
    main()
