"""wsgen's exceptions: one root, so that ``except wsgen.WsgenError`` catches
every error wsgen raises on purpose.

The tree (each class lives beside the code that raises it; this module only
holds the root)::

    WsgenError
    ├── InvalidParams (ValueError)        wsgen.engine.params: a parameter out of its bounds; .details
    ├── UnknownGenerator (KeyError)       wsgen.engine.registry: no generator of that name
    ├── DatasetError (ValueError)         wsgen.engine.datasets: a recorded series that cannot be read (row, column)
    ├── ProtocolError                     wsgen.protocol.messages: a client message refused; .code, .details
    ├── ScoringError (ValueError)         wsgen.scoring.figures: truth or detections that cannot be scored
    ├── OutOfRange (ValueError)           wsgen.scoring.live: a detection outside the samples sent
    ├── DefinitionError (ValueError)      wsgen.scoring.offline: a stream definition that cannot be regenerated
    ├── NamedError                        wsgen.streams.named: a named stream's change refused; .code
    ├── ScenarioError (ValueError)        wsgen.streams.scenario: a scenario file refused (file, stream, field)
    └── client errors                     wsgen.client (wsgen.client.errors)
        ├── ServerError                   an ``error`` reply from the server; .code, .message, .details, .id
        ├── ConnectionLost (ConnectionError)  the connection dropped and will not be restored
        ├── ClientClosed (ConnectionError)    the client was closed
        └── BadURL (ValueError)           a server address the client cannot use

Errors of the client's peer (a close, a refused handshake) stay the
``websockets`` exceptions they are.
"""
from __future__ import annotations

__all__ = ["WsgenError"]


class WsgenError(Exception):
    """Root of every exception wsgen raises on purpose (the tree is in this
    module's docstring)."""
