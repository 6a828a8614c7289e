"""Who may connect: the rules the WebSocket handshake and the HTTP app share.

Each rule is written once here, so that the two paths cannot drift apart:

* :func:`token_ok`: the bearer token (``Authorization: Bearer <token>``,
  else ``?token=<token>``).

Nothing here logs: the token must never reach a log line.
"""
from __future__ import annotations

import hmac
import re

__all__ = ["bearer_token", "token_ok"]

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
