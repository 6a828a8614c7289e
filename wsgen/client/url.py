"""The address the client dials: :func:`websocket_url` (no I/O)."""
from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from wsgen.client.errors import BadURL

__all__ = ["DEFAULT_URL", "websocket_url"]

DEFAULT_URL = "ws://127.0.0.1:8765"

_BARE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]+(/.*)?")


def websocket_url(url: str) -> str:
    """The WebSocket address to dial for ``url``: ``ws://`` and ``wss://``
    addresses as given; a bare ``host:port`` as ``ws://host:port``; an HTTP
    server's address (``http://host:8000``, ``https://host/prefix``) becomes
    its WebSocket path (``ws://host:8000/ws``, ``wss://host/prefix/ws``), which
    serves the same protocol.

    Raises:
        BadURL: anything else (another scheme, no host, a port out of range).
    """
    expected = ("expected ws://host:port (or wss://, http://, https://, or a bare host:port), "
                "e.g. ws://127.0.0.1:8765")
    if "://" not in url and _BARE.fullmatch(url):
        url = "ws://" + url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:       # "Port out of range", a bad IPv6 literal
        raise BadURL(f"bad server address {url!r} ({exc}); {expected}") from None
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        what = ("no scheme" if not parts.scheme else
                f"scheme {parts.scheme}:// is not a WebSocket or HTTP one" if parts.scheme not in ("ws", "wss", "http", "https")
                else "no host")
        raise BadURL(f"bad server address {url!r} ({what}); {expected}")
    del port
    if parts.scheme not in ("http", "https"):
        return url
    path = parts.path.rstrip("/")
    if "/ws/" not in path + "/":   # /ws, /ws/<generator>, /prefix/ws stay
        path += "/ws"
    return urlunsplit(("ws" if parts.scheme == "http" else "wss", parts.netloc, path, parts.query, ""))
