"""The command line against a server that says what it likes: its text reaches
the terminal escaped, and a listing's answer outside what was asked for is
never acted on (the real command, in a subprocess, against a raw server)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from .rawserver import Reply, Request, Serve, head_bytes
from .test_cli import base_env, cli

pytestmark = pytest.mark.anyio


def env_for(url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **base_env(tmp_path),
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEX",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": url,
    }


def xml(status: int, body: str) -> Reply:
    data = body.encode()
    return Reply([head_bytes(f"HTTP/1.1 {status} Whatever", f"Content-Length: {len(data)}",
                             "Content-Type: application/xml") + data])


async def test_a_server_error_message_on_the_error_line_cannot_forge_lines_or_reorder_text(
    serve: Serve, tmp_path: Path
) -> None:
    """A listing's 403 whose message held a newline forged a line of output (a
    summary of its own), CSI (\\x9b) reached the terminal, U+202E reversed what
    followed it: the top-level error line printed the server's text raw."""
    forged = ("denied\ndownload: 2 done, 0 already done, 0 failed of 2; 20 B in 0.1 s"
              "\x9b2J\u202egpj.exe \u2066é 日本")

    def answer(request: Request) -> Reply:
        if request.method == "HEAD":
            return Reply([head_bytes("HTTP/1.1 404 Not Found", "Content-Length: 0")])
        return xml(403, f"<Error><Code>AccessDenied</Code><Message>{forged}</Message></Error>")

    server = await serve(answer)
    env = env_for(server.url, tmp_path)
    done = await anyio.to_thread.run_sync(
        lambda: cli("download", "s3://bkt/p/", str(tmp_path / "out"), env=env, check=1)
    )
    [line] = done.stderr.splitlines()
    assert line.startswith("asyncpresign: error: could not list s3://bkt/p/: HTTP 403 "
                           "AccessDenied: denied\\ndownload: 2 done")
    assert line.endswith("\\x9b2J\\u202egpj.exe \\u2066é 日本")
    assert "\x9b" not in done.stderr
    assert "\u202e" not in done.stderr
    assert "\u2066" not in done.stderr
