"""The generator contract shared by every kind.

A generator is a pure function of the sample index ``n`` (0, 1, 2, ...) given
its parameters, its seed and the history of live updates. It knows nothing of
wall-clock time or sockets: the server decides *when* samples are taken, the
generator decides *what* they are.

Guarantees every generator keeps:

* ``take(m)`` returns ``m`` samples as a float64 array (and, for anomaly
  kinds, a boolean label array of the same shape). Taking 1+1+1 samples gives
  the same values as taking 3, bit for bit, for any split.
* The same seed, parameters and updates (applied at the same sample indices)
  give bitwise identical streams whatever the block sizes.
* ``seek(n)`` moves to sample ``n`` without generating the samples between,
  where the maths allows (waveforms and per-sample draws jump directly; the
  event-based anomaly kinds replay their events, not their samples).
* ``update(changes)`` validates the changes merged with the current
  parameters and applies them from the next sample (``seq``) on.
"""
from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from wsgen.engine.params import GeneratorParams, resolve_aliases, validate_params

#: Seeds drawn by the server stay below 2**53 so JavaScript clients can hold
#: them exactly; any integer in [0, 2**64) is accepted from users.
SEED_DRAW_LIMIT = 2**53
#: Seeds are integers in [0, SEED_LIMIT): the one seed rule, on every transport.
SEED_LIMIT = 2**64
SEED_RULE = "must be an integer in [0, 2**64)"


def draw_seed() -> int:
    """A fresh random seed in [0, 2**53) from the OS entropy source."""
    return secrets.randbelow(SEED_DRAW_LIMIT)


def check_seed(seed: int | None) -> int:
    """``seed`` as an int, or a drawn one (:func:`draw_seed`) when None.

    Raises ValueError unless ``seed`` is an integer in [0, 2**64).
    """
    if seed is None:
        return draw_seed()
    if not 0 <= int(seed) < SEED_LIMIT:
        raise ValueError(f"seed {SEED_RULE}, got {seed!r}")
    return int(seed)


@dataclass(slots=True)
class Block:
    """A run of consecutive samples (read-only by convention: not frozen,
    because a frozen dataclass costs half a microsecond more to build, and a
    block is built for every data message).

    Attributes:
        seq: index of the first sample (0-based sequence number).
        values: float64 array, shape (m,).
        labels: bool array, shape (m,), True exactly where the sample is an
            anomaly; ``None`` for kinds that have no anomalies.
    """

    seq: int
    values: np.ndarray
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values)


def box_muller(u: np.ndarray) -> np.ndarray:
    """Standard normal draws from uniform pairs: ``u`` of shape (m, 2) in
    [0, 1) gives m values ``sqrt(-2 ln(1 - u0)) * cos(2 pi u1)`` (Box and
    Muller, 1958, its cosine branch), computed in place so that every kind
    drawing normals (``normal``, ``random-walk``, ``ou``, a composition's
    noise and ``variance-change``) gets the same bits."""
    r = np.log1p(-u[:, 0])
    r *= -2.0
    np.sqrt(r, out=r)
    a = u[:, 1] * (2.0 * math.pi)
    np.cos(a, out=a)
    r *= a
    return r


class RandomStream:
    """A seeded stream of uniform doubles in [0, 1), ``draws`` per sample.

    Sample ``n`` always uses the doubles at positions ``draws*n .. draws*n +
    draws - 1`` of the PCG64 stream seeded by ``SeedSequence(seed,
    spawn_key)``, where ``spawn_key`` is ``(key,)`` for an int ``key`` (each
    kind's own key) or ``key`` itself for a tuple (a composition's parts,
    count windows, channels). So the values do not depend on how samples are
    split into blocks, and a jump to any sample is a PCG64 ``advance``
    (O(log n)), not a replay.
    """

    def __init__(self, seed: int, key: int | tuple[int, ...], draws: int = 1) -> None:
        spawn_key = tuple(key) if isinstance(key, tuple) else (key,)
        self._bitgen = np.random.PCG64(np.random.SeedSequence(seed, spawn_key=spawn_key))
        self._initial_state = self._bitgen.state
        self._gen = np.random.Generator(self._bitgen)
        self._draws = draws
        self._next = 0  # index of the next sample whose draws are unread

    def uniforms(self, n: int, m: int) -> np.ndarray:
        """Doubles for samples n .. n+m-1, shape (m,) or (m, draws)."""
        if n != self._next:
            self._jump(n)
        out = self._gen.random(m * self._draws)
        self._next = n + m
        return out if self._draws == 1 else out.reshape(m, self._draws)

    def one(self, n: int):
        """The doubles of sample ``n`` as Python floats: a float when
        ``draws`` is 1, else a tuple (the fast path of ``uniforms(n, 1)``,
        same values)."""
        if n != self._next:
            self._jump(n)
        self._next = n + 1
        random = self._gen.random
        if self._draws == 1:
            return random()
        if self._draws == 2:
            return random(), random()
        return tuple([random() for _ in range(self._draws)])

    def at(self, positions: np.ndarray) -> np.ndarray:
        """Doubles of the given sample indices (ascending): shape (k,) or
        (k, draws). Reads the span between them when it is short, else
        jumps to each."""
        k = len(positions)
        if k == 0:
            return np.empty((0,) if self._draws == 1 else (0, self._draws))
        lo, hi = int(positions[0]), int(positions[-1]) + 1
        if hi - lo <= 64 * k + 4096:
            return self.uniforms(lo, hi - lo)[positions - lo]
        return np.concatenate([self.uniforms(int(p), 1) for p in positions])

    def normals(self, n: int, m: int) -> np.ndarray:
        """Standard normals of samples n .. n+m-1 (:func:`box_muller` on the
        two doubles of each; needs ``draws == 2``)."""
        return box_muller(self.uniforms(n, m))

    def _jump(self, n: int) -> None:
        if n < self._next:
            self._bitgen.state = self._initial_state
            self._next = 0
        self._bitgen.advance((n - self._next) * self._draws)
        self._next = n


class Generator:
    """Base class of every generator kind.

    Subclasses set ``name``, ``Params`` (a :class:`GeneratorParams` model),
    ``anomalous`` and implement ``_render(n, m)``, which returns the values
    (and labels) of samples ``n .. n+m-1`` from the state anchored at the
    last update; ``_on_update(old, new, at)`` re-anchors that state.

    Args:
        params: parameter values; omitted fields take their defaults.
        seed: integer in [0, 2**64); ``None`` draws one (read it back from
            ``seed``).
        start_seq: index of the first sample to produce.

    Raises:
        InvalidParams: when a parameter is invalid (each error names the
            field, the value given and what is allowed).
    """

    name: ClassVar[str]
    Params: ClassVar[type[GeneratorParams]]
    anomalous: ClassVar[bool] = False
    #: Kinds whose ``_render(n, m)`` depends only on the sample indices and
    #: the parameters (not on the order of calls) set this to a block size:
    #: ``take`` of fewer samples is then served from a block rendered ahead
    #: (the same values, since blocks of any split are bit-identical), so a
    #: paced stream costs one vectorised render per ``render_ahead`` samples
    #: instead of numpy calls on one element per message. 0: off. Only for
    #: kinds without labels.
    render_ahead: ClassVar[int] = 0
    #: Most samples one ``take`` should hold for it to cost the server's
    #: event loop a few milliseconds at most (a kind whose samples can be
    #: dear, by its parameters, says so; None: no limit). The server's
    #: renders respect it; ``take`` itself does not.
    render_limit: int | None = None

    def __init__(self, params: Mapping[str, Any] | GeneratorParams | None = None,
                 seed: int | None = None, start_seq: int = 0) -> None:
        if isinstance(params, GeneratorParams):
            params = params.model_dump()
        self.params: GeneratorParams = validate_params(self.Params, dict(params or {}))
        self.seed: int = check_seed(seed)
        #: index of the next sample. A kind with ``render_ahead`` has no
        #: other state that moves with it: the server's fan-out pass
        #: (wsgen.protocol.fanout) advances it directly.
        self.seq: int = 0
        #: bumped by every :meth:`update`: samples from ``seq`` on may differ
        #: from what was computed before
        self.version: int = 0
        self._ahead: np.ndarray | None = None   # values rendered ahead from _ahead_seq (render_ahead)
        self._ahead_seq = 0
        self._setup()
        if start_seq:
            self.seek(start_seq)

    # -- subclass hooks -------------------------------------------------
    def _setup(self) -> None:
        """Create random streams and anchored state from ``self.params``."""

    def _render(self, n: int, m: int) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def _on_update(self, old: GeneratorParams, new: GeneratorParams, at: int) -> None:
        """Re-anchor state so that sample ``at`` is the first under ``new``."""

    def _advance_to(self, n: int) -> None:
        """Bring event state forward to sample ``n`` (used by ``seek``)."""

    # -- public API -----------------------------------------------------
    def take(self, m: int) -> Block:
        """Produce the next ``m`` samples (m >= 0) as a :class:`Block`."""
        if m < 0:
            raise ValueError(f"m must be >= 0, got {m}")
        n = self.seq
        if m < self.render_ahead:
            ahead, i = self._ahead, n - self._ahead_seq
            if ahead is None or i < 0 or i + m > len(ahead):
                ahead, i = self._render(n, self.render_ahead)[0], 0
                self._ahead, self._ahead_seq = ahead, n
            values, labels = ahead[i:i + m].copy(), None
        else:
            values, labels = self._render(n, m)
        block = Block(n, values, labels)
        self.seq = n + m
        return block

    def peek(self, m: int) -> np.ndarray:
        """Values of the next ``m`` samples (``seq`` .. ``seq + m - 1``)
        without advancing, for a kind with :attr:`render_ahead` (a function
        of the sample index): the values :meth:`take` gives them, bit for
        bit. wsgen.protocol.fanout writes their messages ahead with it.

        Raises:
            ValueError: for a kind without ``render_ahead``, or ``m < 1``.
        """
        if self.render_ahead < 2 or m < 1:
            raise ValueError(f"peek needs a kind with render_ahead and m >= 1 ({self.name}, m={m})")
        return self._render(self.seq, m)[0]

    def seek(self, n: int) -> None:
        """Move forward to sample ``n`` (n >= seq) without producing the
        samples between. Used to resume a stream (``start_seq``) and to drop
        samples under backpressure."""
        if n < self.seq:
            raise ValueError(f"can only seek forward: seq is {self.seq}, asked for {n}")
        self._advance_to(n)
        self.seq = n

    def update(self, changes: Mapping[str, Any]) -> GeneratorParams:
        """Apply a partial parameter change from sample ``seq`` on.

        The changes are validated merged with the current parameters; on
        error nothing changes. Returns the full new parameters.
        """
        if not isinstance(changes, Mapping):
            validate_params(self.Params, changes)  # raises InvalidParams naming "params"
        merged = {**self.params.model_dump(), **resolve_aliases(self.Params, changes)}
        new = validate_params(self.Params, merged)
        old, self.params = self.params, new
        self._on_update(old, new, self.seq)
        self._ahead = None        # rendered with the old parameters
        self.version += 1
        return new

    @property
    def sample_interval(self) -> float:
        """Seconds of stream time between samples (``interval``)."""
        return self.params.sample_interval

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} seq={self.seq} seed={self.seed} {self.params!r}>"
