"""The client's exceptions (their place in wsgen's tree is drawn in
:mod:`wsgen.errors`)::

    WsgenError
    ├── ServerError                   an ``error`` reply from the server; .code, .message, .details, .id
    ├── ConnectionLost (ConnectionError)  the connection dropped and will not be restored
    ├── ClientClosed (ConnectionError)    the client was closed
    └── BadURL (ValueError)           a server address the client cannot use
"""
from __future__ import annotations

from typing import Any, Mapping

from wsgen.errors import WsgenError

__all__ = ["BadURL", "ClientClosed", "ConnectionLost", "ServerError", "WsgenError"]


class ServerError(WsgenError):
    """An ``error`` reply from the server.

    Attributes:
        code: stable error code (``unknown_generator``, ``invalid_params``,
            ``duplicate_id``, ``unknown_id``, ``limit_reached``,
            ``invalid_message``, ...).
        message: human-readable explanation.
        details: for validation errors, one dict per problem with ``field``,
            ``value`` and ``message``; otherwise ``None``.
        id: the subscription id the error is about (or ``None``).
    """

    def __init__(self, code: str, message: str, details: list[dict[str, Any]] | None = None,
                 id: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.details, self.id = code, message, details, id

    @classmethod
    def from_message(cls, msg: Mapping[str, Any]) -> "ServerError":
        return cls(str(msg.get("code")), str(msg.get("message")), msg.get("details"), msg.get("id"))


class ConnectionLost(WsgenError, ConnectionError):
    """The connection dropped and will not be restored."""


class ClientClosed(WsgenError, ConnectionError):
    """The client was closed (:meth:`Client.close`)."""


class BadURL(WsgenError, ValueError):
    """A server address that is not one :func:`websocket_url` understands;
    ``str()`` is one line saying what is expected."""
