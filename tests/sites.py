"""Starting a test's aiohttp app on a free 127.0.0.1 port."""

from __future__ import annotations

import ssl

from aiohttp import web


async def start_local_site(runner: web.AppRunner, ssl_context: ssl.SSLContext | None = None) -> int:
    """Set ``runner`` up on 127.0.0.1, a port the OS picks, and return that port."""
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    server = site._server
    assert server is not None
    assert server.sockets
    port: int = server.sockets[0].getsockname()[1]
    return port
