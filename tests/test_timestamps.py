"""The Signer's client reads S3's timestamps (every ``LastModified`` of a listing)
with ``datetime.fromisoformat`` instead of botocore's dateutil path: the same
instant for every input, botocore's own answer for every other form."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.utils import parse_timestamp as botocore_parse_timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncpresign import Signer
from asyncpresign._signer import parse_timestamp

UTC = dt.timezone.utc
instants = st.datetimes(
    min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59)
)


def s3_form(moment: dt.datetime, digits: int) -> str:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{moment.microsecond:06d}"[:digits]
    return text + "Z"


@settings(max_examples=500, deadline=None)
@given(moment=instants, digits=st.sampled_from([0, 3, 6]))
def test_an_s3_timestamp_reads_as_the_instant_botocore_reads(
    moment: dt.datetime, digits: int
) -> None:
    text = s3_form(moment, digits)
    mine = parse_timestamp(text)
    assert mine == botocore_parse_timestamp(text)
    assert mine.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        "Mon, 30 Nov 2026 18:50:00 GMT",  # an HTTP date (Last-Modified of a HEAD)
        "2026-11-30T18:50:00+02:00",  # an offset, not Z
        "2026-11-30T18:50:00.12Z",  # two fraction digits
        "2026-11-30 18:50:00Z",
        1796064600,
        "1796064600",
        "2024-02-29T00:00:00Z",
    ],
)
def test_other_forms_are_read_as_botocore_reads_them(value: object) -> None:
    assert parse_timestamp(value) == botocore_parse_timestamp(value)


@pytest.mark.parametrize(
    "value",
    [
        "2026-02-30T00:00:00Z",  # no such day
        "2026-11-30T24:00:00Z",
        "2026-11-30T23:59:60Z",  # a leap second
        "\uff12\uff10\uff12\uff16-11-30T18:50:00Z",  # fullwidth digits
        "not a time",
    ],
)
def test_what_fromisoformat_refuses_gets_botocores_own_answer(value: str) -> None:
    try:
        expected: object = botocore_parse_timestamp(value)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            parse_timestamp(value)
    else:
        assert parse_timestamp(value) == expected


@pytest.mark.anyio
async def test_a_listing_and_a_head_give_an_object_the_same_last_modified(
    signer: Signer, bucket: str
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="when", Body=b"x")
    page = await signer.client.list_objects_v2(Bucket=bucket, Prefix="when")
    listed = page["Contents"][0]["LastModified"]
    head = await signer.client.head_object(Bucket=bucket, Key="when")
    assert listed.tzinfo is UTC  # read by fromisoformat, not dateutil
    assert listed.replace(microsecond=0) == head["LastModified"]
    assert abs(listed - dt.datetime.now(UTC)) < dt.timedelta(minutes=5)
