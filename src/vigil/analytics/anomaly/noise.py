"""Noise control: turn any 0..1 score stream into few, stable open/update/resolve transitions.

A small state machine per series, independent of the detector that produced the scores:

* **warm-up** -- the first ``warmup_points`` points of a series never open anything;
* **hysteresis** -- a finding opens when the score reaches ``enter`` and resolves only when it
  falls below ``leave`` (< ``enter``), so a score hovering near one threshold does not flap;
* **minimum duration** -- the score must stay at or above ``enter`` for ``min_points``
  consecutive points *and* ``min_duration_s`` seconds before the finding opens;
* **cooldown** -- after a resolve, nothing opens again for ``cooldown_s`` seconds.

While open, an ``update`` is emitted each time the peak score rises, so a growing problem is
reported without a transition per point.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

TransitionKind = Literal["open", "update", "resolve"]


@dataclass(frozen=True, slots=True)
class NoiseConfig:
    enter: float = 0.6
    leave: float = 0.3
    min_points: int = 2
    min_duration_s: float = 0.0
    cooldown_s: float = 900.0
    warmup_points: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.leave < self.enter <= 1.0:
            raise ValueError("need 0 <= leave < enter <= 1")


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of a series' finding: what the pipeline turns into a Finding event."""

    kind: TransitionKind
    time: float  # time of the point that caused the transition (seconds)
    started_at: float  # when the score first reached ``enter`` for this finding
    score: float  # score of this point
    peak: float  # highest score since ``started_at``


_IDLE, _PENDING, _OPEN = 0, 1, 2
_STATE = struct.Struct("<Bqdddq")  # mode, points seen, started, peak, cooldown until, points pending


class NoiseGate:
    """Per-series noise control over a score stream; feed ``update(t, score)`` in time order."""

    __slots__ = ("_cooldown_until", "_mode", "_n_pending", "_peak", "_seen", "_started", "config")

    def __init__(self, config: NoiseConfig | None = None) -> None:
        self.config = config or NoiseConfig()
        self._mode = _IDLE
        self._seen = 0
        self._started = 0.0
        self._peak = 0.0
        self._cooldown_until = float("-inf")
        self._n_pending = 0

    @property
    def is_open(self) -> bool:
        return self._mode == _OPEN

    def update(self, t: float, score: float) -> Transition | None:
        """Feed one score; returns the transition it causes, if any."""
        cfg = self.config
        self._seen += 1
        if self._seen <= cfg.warmup_points:
            return None
        if self._mode == _OPEN:
            if score < cfg.leave:
                self._mode = _IDLE
                self._cooldown_until = t + cfg.cooldown_s
                return Transition("resolve", t, self._started, score, self._peak)
            if score > self._peak:
                self._peak = score
                return Transition("update", t, self._started, score, self._peak)
            return None
        if score < cfg.enter or t < self._cooldown_until:
            self._mode = _IDLE
            self._n_pending = 0
            return None
        if self._mode == _IDLE:
            self._mode = _PENDING
            self._started = t
            self._peak = score
            self._n_pending = 0
        self._n_pending += 1
        self._peak = max(self._peak, score)
        if self._n_pending >= cfg.min_points and t - self._started >= cfg.min_duration_s:
            self._mode = _OPEN
            return Transition("open", t, self._started, score, self._peak)
        return None

    def to_bytes(self) -> bytes:
        """State only (the config belongs to the caller): 41 bytes."""
        return _STATE.pack(
            self._mode, self._seen, self._started, self._peak, self._cooldown_until, self._n_pending
        )

    @classmethod
    def from_bytes(cls, data: bytes, config: NoiseConfig | None = None) -> NoiseGate:
        gate = cls(config)
        (
            gate._mode,
            gate._seen,
            gate._started,
            gate._peak,
            gate._cooldown_until,
            gate._n_pending,
        ) = _STATE.unpack(data)
        return gate
