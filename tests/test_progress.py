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
    assert "1/3 done" in last
    assert "1 failed" in last
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
