import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncpresign import InvalidArgumentError
from asyncpresign._validation import (
    check_bucket,
    check_chunk_size,
    check_http_url,
    check_key,
    check_new_bucket,
    expires_seconds,
)


@pytest.mark.parametrize("name", ["abc", "my-bucket", "my.bucket.name", "a" * 63, "0bucket9"])
def test_valid_bucket_names_pass(name: str) -> None:
    assert check_bucket(name) == name


# "a" * 64, "My-Bucket", "under_score" and "bucket-s3alias" were refused here
# before issue #17: S3 serves object requests on legacy us-east-1 names and on
# access point aliases, so they are accepted now (see the tests below).
@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 256, "-start", "end-", "_Start", "End_", "two..dots", "a.-b", "A-.b",
     "192.168.1.1", "xn--punycode", "with space", "Legacy Name", "ünï", ""],
)
def test_invalid_bucket_names_raise_a_value_error_naming_the_bucket(name: str) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid bucket name") as info:
        check_bucket(name)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "name", ["my-ap-hrzrlukc5m36ft7okagglf3gmwluquse1b-s3alias", "ap-abc123-s3alias"]
)
def test_access_point_aliases_are_accepted(name: str) -> None:
    assert check_bucket(name) == name


@pytest.mark.parametrize("name", ["my-olap-x1y2z3abcdefgh--ol-s3", "olap-abc--ol-s3"])
def test_object_lambda_access_point_aliases_are_accepted(name: str) -> None:
    assert check_bucket(name) == name


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:s3:us-east-1:123456789012:accesspoint/my-ap",
        "arn:aws:s3:eu-west-1:123456789012:accesspoint:my-ap",
        "arn:aws-cn:s3:cn-north-1:123456789012:accesspoint/ap1",
        "arn:aws-us-gov:s3:us-gov-west-1:123456789012:accesspoint/ap-2",
    ],
)
def test_access_point_arns_are_accepted(arn: str) -> None:
    assert check_bucket(arn) == arn


def test_object_lambda_access_point_arns_are_accepted() -> None:
    arn = "arn:aws:s3-object-lambda:us-east-1:123456789012:accesspoint/my-olap"
    assert check_bucket(arn) == arn


def test_outposts_access_point_arns_are_accepted() -> None:
    arn = (
        "arn:aws:s3-outposts:us-west-2:123456789012:outpost/op-01ac5d28a6a232904/"
        "accesspoint/my-ap"
    )
    assert check_bucket(arn) == arn


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:s3:::my-bucket",  # a bucket's ARN: give its name
        "arn:aws:s3:us-east-1:12345:accesspoint/my-ap",  # account is 12 digits
        "arn:aws:s3:us-east-1:123456789012:accesspoint/My_AP",
        "arn:aws:s3:us-east-1:123456789012:accesspoint/ab",  # names are 3-50 characters
        "arn:aws:s3:us-east-1:123456789012:accesspoint/" + "a" * 51,
        "arn:aws:s3:us-east-1:123456789012:bucket/my-bucket",
        "arn:aws:iam::123456789012:role/x",
        "arn:aws:s3-outposts:us-west-2:123456789012:outpost/op-1/bucket/my-bucket",
    ],
)
def test_other_arns_are_refused_with_the_shape_expected(arn: str) -> None:
    with pytest.raises(InvalidArgumentError, match="not an S3 access point ARN; expected arn:"):
        check_bucket(arn)


def test_multi_region_access_point_arns_are_refused_as_needing_sigv4a() -> None:
    with pytest.raises(InvalidArgumentError, match="SigV4A"):
        check_bucket("arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap")


@pytest.mark.parametrize(
    "name", ["My-Bucket", "under_score", "Legacy.Bucket_2010", "A" * 255, "a" * 64, "a" * 255]
)
def test_legacy_us_east_1_names_with_capitals_underscores_or_up_to_255_characters_are_accepted(
    name: str,
) -> None:
    assert check_bucket(name) == name


@pytest.mark.parametrize("prefix", ["xn--", "sthree-", "amzn-s3-demo-", "XN--", "Sthree-"])
def test_names_with_a_prefix_s3_reserves_are_refused(prefix: str) -> None:
    with pytest.raises(InvalidArgumentError, match="S3 reserves the prefix"):
        check_bucket(prefix + "bucket")


@pytest.mark.parametrize("suffix", [".mrap", "--table-s3"])
def test_names_with_a_suffix_s3_reserves_are_refused(suffix: str) -> None:
    with pytest.raises(InvalidArgumentError, match="S3 reserves the suffix"):
        check_bucket("my-bucket" + suffix)


@pytest.mark.parametrize("name", ["my-bucket--usw2-az1--x-s3", "logs--use1-az4--x-s3"])
def test_directory_bucket_names_are_accepted(name: str) -> None:
    assert check_bucket(name) == name


@pytest.mark.parametrize("name", ["abc", "my-bucket", "my.bucket.name", "a" * 63])
def test_new_general_purpose_bucket_names_can_be_created(name: str) -> None:
    assert check_new_bucket(name) == name


@pytest.mark.parametrize(
    "name",
    ["My-Bucket", "under_score", "a" * 64, "ap-abc123-s3alias", "olap-abc--ol-s3",
     "my-bucket--usw2-az1--x-s3", "arn:aws:s3:us-east-1:123456789012:accesspoint/my-ap"],
)
def test_names_that_can_be_signed_for_but_not_created_are_refused_for_creation(
    name: str,
) -> None:
    check_bucket(name)
    with pytest.raises(InvalidArgumentError, match="cannot create bucket"):
        check_new_bucket(name)


def test_creation_keeps_the_signing_rules_too() -> None:
    with pytest.raises(InvalidArgumentError, match="invalid bucket name"):
        check_new_bucket("two..dots")


def test_empty_key_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="must not be empty"):
        check_key("")


def test_key_over_1024_utf8_bytes_is_rejected() -> None:
    check_key("é" * 512)  # 1024 bytes: the limit itself is fine
    with pytest.raises(InvalidArgumentError, match="1025 bytes"):
        check_key("é" * 512 + "x")


def test_key_with_a_lone_surrogate_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="surrogate"):
        check_key("bad\ud800key")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(1, 1), (3600, 3600), (604800, 604800), (dt.timedelta(hours=2), 7200), (90.7, 90)],
)
def test_expiry_accepts_seconds_and_timedeltas_within_seven_days(
    value: float | dt.timedelta, seconds: int
) -> None:
    assert expires_seconds(value) == seconds


@pytest.mark.parametrize("value", [0, -5, 604801, dt.timedelta(days=8), dt.timedelta(0)])
def test_expiry_outside_one_second_to_seven_days_is_rejected(value: float | dt.timedelta) -> None:
    with pytest.raises(InvalidArgumentError, match="7 days"):
        expires_seconds(value)


def test_expiry_of_a_wrong_type_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="seconds or a timedelta"):
        expires_seconds("3600")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [4096, 65536, 8 * 1024 * 1024])
def test_chunk_sizes_from_4_kib_to_8_mib_are_accepted(size: int) -> None:
    assert check_chunk_size(size) == size


@pytest.mark.parametrize("size", [0, 4095, 8 * 1024 * 1024 + 1, -1])
def test_chunk_sizes_outside_the_range_are_rejected(size: int) -> None:
    with pytest.raises(InvalidArgumentError, match="chunk_size"):
        check_chunk_size(size)


@pytest.mark.parametrize("url", ["not a url", "ftp://host/x", "/relative/path", "http://", ""])
def test_non_http_urls_are_rejected(url: str) -> None:
    with pytest.raises(InvalidArgumentError):
        check_http_url(url)


def test_rejected_url_does_not_echo_its_signature() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        check_http_url("ftp://h/k?X-Amz-Signature=deadbeefcafe")
    assert "deadbeefcafe" not in str(info.value)


def _judged_by_urlsplit(url: str) -> bool:
    """What check_http_url must decide: urlsplit's reading of the whole URL."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


_AUTHORITIES = [
    "http://h", "https://h:9000", "http://[::1]:80", "http://[::1", "http://", "https://:80",
    "http://u:p@h", "http://@", "HTTP://h", "http://h\t", "http://\nh", "http://h h",
    "ftp://h", "http:/h", "http://h:99999", "http://[v1.x]", "http://\u210c/",
]


@given(
    authority=st.sampled_from(_AUTHORITIES),
    rest=st.text(alphabet="/?#&=ab\t\n %.:@[]", max_size=12),
)
def test_the_url_check_judges_every_url_as_urlsplit_does_however_warm_its_cache(
    authority: str, rest: str
) -> None:
    """URLs are judged by their start once one like it has passed: the judgement
    must be urlsplit's for every URL, the first time and after."""
    url = authority + rest
    expected = _judged_by_urlsplit(url)
    for _ in range(2):
        try:
            check_http_url(url)
            passed = True
        except InvalidArgumentError:
            passed = False
        assert passed == expected, url
