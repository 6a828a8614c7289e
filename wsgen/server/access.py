"""Who may connect: the rules the WebSocket handshake and the HTTP app share.

Each rule is written once here, so that the two paths cannot drift apart:

* :func:`token_ok`: the bearer token (``Authorization: Bearer <token>``,
  else ``?token=<token>``);
* :func:`host_allowed`: the DNS-rebinding guard on the ``Host`` header
  (loopback names, and the operator's ``--allow-host`` names).

Nothing here logs: the token must never reach a log line.
"""
from __future__ import annotations

import hmac
import ipaddress
import re
from typing import Iterable
from urllib.parse import urlsplit

__all__ = ["HOST_REFUSED", "LOOPBACK_NAMES", "bearer_token", "host_allowed", "loopback_bound", "token_ok"]

#: An ``Authorization`` value of the Bearer scheme (RFC 9110 section 11.4,
#: RFC 6750 section 2.1): the scheme name in any case, one or more spaces
#: or tabs, the token (no whitespace in it).
_BEARER = re.compile(r"bearer[ \t]+(\S+)", re.IGNORECASE | re.ASCII)


def bearer_token(authorization: list[str]) -> str | None:
    """The token of a request's ``Authorization`` header if it uses the
    Bearer scheme, else None.

    ``authorization`` holds every value of the header in the request. The
    scheme is matched case-insensitively (``bearer``, ``BEARER``: RFC 9110
    section 11.1) and may be followed by several spaces or tabs. A header
    given more than once counts as absent (its values could disagree), as
    does another scheme (``Basic ...``) or a scheme with no token.
    """
    if len(authorization) != 1:
        return None
    m = _BEARER.fullmatch(authorization[0].strip(" \t"))
    return m.group(1) if m else None


def token_ok(expected: str, authorization: list[str], query_token: str | None) -> bool:
    """Whether a request carries the server's token ``expected``.

    The token is taken from the Bearer ``Authorization`` header
    (:func:`bearer_token`; every value of the header in ``authorization``),
    else from the ``token`` query parameter (``query_token``, None when
    absent), for clients that cannot set headers (a browser's WebSocket or
    EventSource). The comparison takes the same time whatever the guess.
    """
    given = bearer_token(authorization)
    if given is None:
        given = query_token or ""
    return hmac.compare_digest(given.encode(), expected.encode())


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

#: Why a Host was refused (the WebSocket 403 and HTTP 400 answers say it).
HOST_REFUSED = ("Host not allowed: a server bound to a loopback address answers only to localhost, a loopback "
                "address (127.x.x.x, [::1]) or a name given with --allow-host")


def _is_loopback(name: str) -> bool:
    """``localhost`` or a literal loopback address (``127.x.x.x``, ``::1``);
    never a name that merely starts with or contains one
    (``127.0.0.1.evil.example``)."""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def loopback_bound(bind_host: str) -> bool:
    """Whether a server bound to ``bind_host`` is reachable from this machine
    only (``localhost``, ``::1``, any 127.x.x.x)."""
    return _is_loopback(bind_host.strip("[]").lower())


def host_allowed(bind_host: str, host_header: str | None, allowed: Iterable[str] = ()) -> bool:
    """DNS-rebinding guard: a server bound to a loopback address accepts only
    a loopback name in the Host header (``localhost``, a literal loopback
    address such as ``127.0.0.2`` or ``[::1]``, with or without a port) or
    one of the names in ``allowed`` (``--allow-host``, compared without case
    and port). A page on evil.example that resolves to 127.0.0.1 still sends
    Host: evil.example, and ``127.0.0.1.evil.example`` is not a loopback
    address. Other bindings accept any Host.

    ``host_header``: the header's value (``name[:port]``), None when absent
    or repeated (then refused on a loopback-bound server).
    """
    if not loopback_bound(bind_host):
        return True
    try:
        name = urlsplit("//" + (host_header or "")).hostname   # lower case, no port, no brackets
    except ValueError:
        return False
    if not name:
        return False
    return _is_loopback(name) or name in {a.lower() for a in allowed}
