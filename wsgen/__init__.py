"""wsgen: a WebSocket server that streams synthetic time series.

In-process use::

    import wsgen
    gen = wsgen.create("sine", {"amplitude": 2.0}, seed=1)
    block = gen.take(1000)        # block.values: float64 (1000,), block.labels: None
    gen.update({"frequency": 5})  # phase-continuous from sample 1000 on
"""
from .generators import (ANOMALY_KINDS, GENERATORS, Block, Generator, InvalidParams, UnknownGenerator,
                         catalogue, create)
from .scoring import ScoringError, score

__version__ = "0.1.0"
__all__ = ["ANOMALY_KINDS", "Block", "GENERATORS", "Generator", "InvalidParams", "ScoringError",
           "UnknownGenerator", "__version__", "catalogue", "create", "score"]
