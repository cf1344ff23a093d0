import io

from asyncpresign import ProgressEvent, TransferResult
from asyncpresign._progress import ProgressDisplay, human_bytes


def test_plain_lines_report_objects_bytes_failures_and_transfers_in_flight() -> None:
    out = io.StringIO()
    display = ProgressDisplay("upload", mode="plain", total=3, interval=0.0, stream=out)
    display.in_flight = lambda: 2
    with display:
        display.on_bytes(ProgressEvent("u", 2048, 2048, None))
        display.on_bytes(ProgressEvent("u", -1024, 1024, None))  # a retry takes bytes back
        display.on_result(TransferResult(url="u", nbytes=1024))
        display.on_result(TransferResult(url="v", error=ValueError("x")))
    last = out.getvalue().splitlines()[-1]
    assert "2/3 (67%): 1 done" in last
    assert "1 failed" in last
    assert "ETA" in last
    assert "2 in flight" in last
    assert "1.0 KiB" in last


def test_quiet_mode_prints_nothing() -> None:
    out = io.StringIO()
    with ProgressDisplay("x", mode="quiet", stream=out, interval=0.0) as display:
        display.on_result(TransferResult(url="u"))
    assert out.getvalue() == ""


def test_human_bytes() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 * 1024**3) == "5.0 GiB"


def test_a_total_still_being_counted_shows_no_percentage_and_no_eta() -> None:
    display = ProgressDisplay("download", mode="quiet")
    display.set_total(1000, final=False)
    display.on_result(TransferResult(url="u"))
    assert "1/1000+:" in display.line()
    assert "ETA" not in display.line()
    display.set_total(4, final=True)
    display.on_skipped()
    line = display.line()
    assert "2/4 (50%): 1 done, 1 already done" in line
    assert "ETA" in line


def test_the_first_plain_line_comes_within_half_a_second() -> None:
    import time

    out = io.StringIO()
    display = ProgressDisplay("upload", mode="plain", interval=2.0, stream=out)
    with display:
        time.sleep(0.55)
        display.on_bytes(ProgressEvent("u", 1, 1, None))
    assert out.getvalue().startswith("upload: ")


def test_the_bandwidth_limit_shows_beside_the_rate_apart_from_request_throttling() -> None:
    display = ProgressDisplay("upload", mode="quiet")
    assert "limit" not in display.line()
    display.max_rate = 8 * 1024 * 1024
    assert "/s, limit 8.0 MiB/s," in display.line()
    assert "throttled" not in display.line()
    display.rate_limit = lambda: 12.0  # the adaptive request throttle: a different thing
    assert "throttled: 12 req/s" in display.line()
    assert "limit 8.0 MiB/s" in display.line()
