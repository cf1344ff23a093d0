"""Micro-benchmark: µs per presigned URL, asyncpresign's QuerySigner vs botocore.

Run with ``python benchmarks/bench_sigv4_micro.py [N]`` (N keys, default 20000).
Prints the median and best of several runs and the speed-up over botocore
measured in the same run; on this shared machine read the median and the
ratio, not the absolute numbers. SHA-NI makes SHA-256 several times faster.
"""

from __future__ import annotations

import datetime
import statistics
import sys
import time
from collections.abc import Callable
from unittest import mock

import botocore.session
from botocore.config import Config

from asyncpresign._sigv4 import BucketEndpoint, QuerySigner, SigningCredentials

BUCKET = "bench-bucket"
NOW = datetime.datetime(2024, 5, 6, 7, 8, 9)


def _timings(repeats: int, n: int, run: Callable[[], object]) -> tuple[float, float]:
    """Median and best µs per URL over ``repeats`` runs of ``n`` URLs each."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples), min(samples)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    keys = [f"datasets/2024/05/part-{i:06d}.parquet" for i in range(n)]
    odd_keys = [f"photos/été {i} (copy)+1.jpg" for i in range(n)]
    client = botocore.session.get_session().create_client(
        "s3",
        region_name="eu-west-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_session_token="FQoGZXIvYXdzEJr//////////wEaDEXAMPLETOKEN+/=",
        config=Config(
            signature_version="s3v4",
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    credentials = SigningCredentials(
        access_key="AKIDEXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        token="FQoGZXIvYXdzEJr//////////wEaDEXAMPLETOKEN+/=",
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW):
        probe = client.generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": "probe"}, ExpiresIn=3600
        )
        endpoint = BucketEndpoint.from_presigned_url(probe, "probe")
        signer = QuerySigner("eu-west-1")

        def one_by_one(ks: list[str]) -> Callable[[], list[str]]:
            def run() -> list[str]:
                presign = signer.presign
                return [
                    presign(
                        method="GET",
                        endpoint=endpoint,
                        key=k,
                        credentials=credentials,
                        expires=3600,
                        now=NOW,
                    )
                    for k in ks
                ]

            return run

        def one_by_one_fresh_clock() -> object:
            presign = signer.presign
            utcnow = datetime.datetime.now
            utc = datetime.timezone.utc
            return [
                presign(
                    method="GET",
                    endpoint=endpoint,
                    key=k,
                    credentials=credentials,
                    expires=3600,
                    now=utcnow(utc),
                )
                for k in keys
            ]

        def many(ks: list[str]) -> Callable[[], object]:
            def run() -> object:
                return signer.presign_many(
                    method="GET",
                    endpoint=endpoint,
                    keys=ks,
                    credentials=credentials,
                    expires=3600,
                    now=NOW,
                )

            return run

        def many_put() -> object:
            return signer.presign_many(
                method="PUT",
                endpoint=endpoint,
                keys=keys,
                credentials=credentials,
                expires=3600,
                now=NOW,
                headers={"content-type": "application/octet-stream"},
            )

        bn = min(n, 2000)

        def botocore_run(ks: list[str]) -> list[str]:
            return [
                client.generate_presigned_url(
                    "get_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=3600
                )
                for k in ks
            ]

        # Same clock, same credentials: the URLs must be identical, not just similar.
        assert one_by_one(keys[:50] + odd_keys[:50])() == botocore_run(keys[:50] + odd_keys[:50])
        rows = [
            ("presign one by one (ascii keys)", _timings(15, n, one_by_one(keys))),
            ("presign one by one (unicode/space keys)", _timings(15, n, one_by_one(odd_keys))),
            ("presign one by one, datetime.now() each", _timings(15, n, one_by_one_fresh_clock)),
            ("presign_many (ascii keys)", _timings(15, n, many(keys))),
            ("presign_many (unicode/space keys)", _timings(15, n, many(odd_keys))),
            ("presign_many PUT + content-type", _timings(15, n, many_put)),
        ]
        baseline, _ = _timings(3, bn, lambda: botocore_run(keys[:bn]))
    print(f"{'':42s} {'median':>8s} {'best':>8s}  (µs/URL)  vs botocore")
    for label, (median, best) in rows:
        print(f"{label:42s} {median:8.2f} {best:8.2f}  {baseline / median:17.0f}x")
    print(f"{'botocore generate_presigned_url':42s} {baseline:8.2f}")


if __name__ == "__main__":
    main()
