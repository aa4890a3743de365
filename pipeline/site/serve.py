"""Serving the built site over HTTP (``invoke site.serve``, the demo)."""

from __future__ import annotations

import contextlib
import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipeline.errors import SiteError


def site_server(output: Path, bind: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server for ``output``, bound (the port is known) but not serving yet.

    Raises:
        SiteError: the address is in use or cannot be bound.
    """
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(output))
    try:
        return ThreadingHTTPServer((bind, port), handler)
    except OSError as e:
        raise SiteError(
            f"--bind {bind} --port {port}: cannot listen: {e.strerror}",
            hint="pick another --port (0 picks a free one)",
        ) from e


def serve_forever(server: ThreadingHTTPServer, output: Path) -> None:
    """Serve until interrupted (Ctrl-C), printing the URL."""
    host, port = server.server_address[:2]
    print(f"serving {output} at http://{host!s}:{port}/  (Ctrl-C stops)", flush=True)
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def serve_site(output: Path, bind: str, port: int) -> None:
    """Serve ``output`` over HTTP until interrupted, printing the URL (``invoke site.serve``).

    Raises:
        SiteError: the address is in use or cannot be bound.
    """
    serve_forever(site_server(output, bind, port), output)
