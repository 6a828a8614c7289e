"""wsgen: a WebSocket server that streams synthetic time series.

In-process use::

    import wsgen
    gen = wsgen.create("sine", {"amplitude": 2.0}, seed=1)
    block = gen.take(1000)        # block.values: float64 (1000,), block.labels: None
    gen.update({"frequency": 5})  # phase-continuous from sample 1000 on
"""
from wsgen.engine import (ANOMALY_KINDS, GENERATORS, Block, Generator, InvalidParams, UnknownGenerator,
                         catalogue, create)
from wsgen.errors import WsgenError
from wsgen.scoring.figures import ScoringError, score

__version__ = "0.1.0"
__all__ = ["ANOMALY_KINDS", "Block", "GENERATORS", "Generator", "InvalidParams", "ScoringError",
           "UnknownGenerator", "WsgenError", "__version__", "catalogue", "create", "score"]
