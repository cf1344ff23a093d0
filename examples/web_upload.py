"""Browser uploads straight to the bucket, handed out by an aiohttp.web app.

    python examples/web_upload.py            # starts a local S3 and the app, prints the address

The app holds the credentials and signs; the browser gets only presigned
requests, and the file never passes through the app. Two ways on one page:

1. a plain HTML form (``asyncpresign.html.post_form``) posting to the bucket,
   submitted with ``fetch`` so the page can show the server's answer (S3
   enforces the policy's size and type limits), with the browser redirect as
   the fallback without JavaScript;
2. a small script that asks the app's JSON endpoint for a presigned PUT and
   uploads with XMLHttpRequest, showing progress.

Both cross origins (page on the app, upload to the bucket), so the bucket
gets CORS rules for the app's origin via ``Signer.ensure_bucket(cors_origins=...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import socket
from html import escape

from aiohttp import web

from asyncpresign import Signer
from asyncpresign.html import post_form
from asyncpresign.testing import LocalS3

MAX_BYTES = 1024 * 1024  # the policy's limit, enforced by the S3 server
SIGNER: web.AppKey[Signer] = web.AppKey("signer", Signer)
BUCKET: web.AppKey[str] = web.AppKey("bucket", str)
ORIGIN: web.AppKey[str] = web.AppKey("origin", str)

SCRIPT = """
const show = (text) => { document.getElementById('status').textContent = text; };
const form = document.getElementById('asyncpresign-upload');
form.addEventListener('submit', async (event) => {
  event.preventDefault();
  // 'manual': the bucket's redirect back to the app is success, not a page to fetch.
  const answer = await fetch(form.action, {
    method: 'POST', body: new FormData(form), redirect: 'manual'
  });
  if (answer.type === 'opaqueredirect' || answer.ok) {
    show('Uploaded with the form.'); location.reload(); return;
  }
  const body = await answer.text();
  {
    const code = (body.match(/<Code>([^<]*)/) || [])[1] || answer.status;
    const message = code === 'EntityTooLarge'
      ? 'Rejected by the server: the file is larger than the upload limit.'
      : 'Rejected by the server: ' + code;
    show(message);
  }
});
document.getElementById('put-button').addEventListener('click', async () => {
  const file = document.getElementById('put-file').files[0];
  if (!file) { show('Choose a file first.'); return; }
  const signed = await (await fetch('/api/presign-put', {
    method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({name: file.name, type: file.type || 'application/octet-stream'})
  })).json();
  const xhr = new XMLHttpRequest();
  xhr.open('PUT', signed.url);
  for (const [name, value] of Object.entries(signed.headers)) xhr.setRequestHeader(name, value);
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) {
      document.getElementById('progress').value = e.loaded / e.total * 100;
    }
  };
  xhr.onload = () => {
    if (xhr.status === 200) { show('Uploaded with a presigned PUT.'); location.reload(); }
    else show('Rejected by the server: HTTP ' + xhr.status);
  };
  xhr.onerror = () => show('Upload failed (network or CORS).');
  xhr.send(file);
});
"""


async def index(request: web.Request) -> web.Response:
    signer, bucket = request.app[SIGNER], request.app[BUCKET]
    done_url = f"{request.app[ORIGIN]}/"
    post = await signer.presign_post(
        bucket,
        "uploads/${filename}",
        expires_in=600,
        # A Content-Type field the policy lets be anything ("starts-with" "").
        fields={"success_action_redirect": done_url, "Content-Type": "application/octet-stream"},
        conditions=[["starts-with", "$Content-Type", ""]],
        content_length_range=(1, MAX_BYTES),
    )
    form = post_form(post, redirect=done_url, submit_label="Upload with the form")
    listed = await signer.client.list_objects_v2(Bucket=bucket, Prefix="uploads/")
    rows = []
    for item in listed.get("Contents", []):
        # A link the browser follows: it can send no headers, so no ChecksumMode.
        link = await signer.presign_get(bucket, item["Key"], expires_in=600, ChecksumMode=None)
        rows.append(
            f'<li><a href="{escape(link.url)}">{escape(item["Key"])}</a> '
            f"({item['Size']} bytes)</li>"
        )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>asyncpresign upload</title>
<style>body{{font-family:sans-serif;max-width:46rem;margin:2rem auto}}
section{{border:1px solid #ccc;padding:1rem;margin:1rem 0;border-radius:.5rem}}</style></head>
<body><h1>Upload straight to the bucket</h1>
<p>Files up to {MAX_BYTES // 1024} KiB. The app signs; the bytes go to the bucket.</p>
<section><h2>1. HTML form (presigned POST)</h2>
{form}
</section>
<section><h2>2. Presigned PUT with progress</h2>
<input type="file" id="put-file"> <button id="put-button">Upload with PUT</button>
<progress id="progress" max="100" value="0"></progress></section>
<p id="status" role="status"></p>
<h2>Uploaded</h2><ul id="uploaded">{"".join(rows) or "<li>nothing yet</li>"}</ul>
<script>{SCRIPT}</script></body></html>"""
    return web.Response(text=page, content_type="text/html")


async def presign_put(request: web.Request) -> web.Response:
    body = await request.json()
    name = str(body.get("name") or "file").replace("/", "_")[:200]
    content_type = str(body.get("type") or "application/octet-stream")[:200]
    put = await request.app[SIGNER].presign_put(
        request.app[BUCKET],
        f"uploads/{secrets.token_hex(4)}-{name}",
        expires_in=300,
        content_type=content_type,
    )
    return web.Response(
        text=json.dumps({"url": put.url, "headers": dict(put.headers)}),
        content_type="application/json",
    )


def create_app(signer: Signer, bucket: str, origin: str) -> web.Application:
    """The app: ``signer`` (open) signs for ``bucket``; ``origin`` is the app's own
    address, where the form's redirect comes back to."""
    app = web.Application()
    app[SIGNER] = signer
    app[BUCKET] = bucket
    app[ORIGIN] = origin
    app.router.add_get("/", index)
    app.router.add_post("/api/presign-put", presign_put)
    return app


async def serve(port: int = 0) -> None:
    """Start a local S3 and the app on 127.0.0.1; run until interrupted."""
    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    origin = f"http://127.0.0.1:{port}"
    async with LocalS3() as s3, s3.signer() as signer:
        await signer.ensure_bucket("uploads", cors_origins=[origin])
        runner = web.AppRunner(create_app(signer, "uploads", origin))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print(f"upload page: {origin}/  (local S3 at {s3.endpoint_url}; Ctrl-C stops both)")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
