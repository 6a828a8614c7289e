"""The uninterrupted stream a test compares the server's output with."""
from __future__ import annotations

import numpy as np

import wsgen


def engine(name, params, seed, n, updates=()):
    """Values (and labels, or None) of samples 0..n-1 of ``name`` with
    ``params`` and ``seed``; ``updates``: (seq, changes) applied at those seqs."""
    gen = wsgen.create(name, params, seed=seed)
    blocks = []
    for at, changes in sorted(updates, key=lambda u: u[0]):
        blocks.append(gen.take(at - gen.seq))
        gen.update(changes)
    blocks.append(gen.take(n - gen.seq))
    values = np.concatenate([b.values for b in blocks])
    labels = None if blocks[0].labels is None else np.concatenate([b.labels for b in blocks])
    return values, labels
