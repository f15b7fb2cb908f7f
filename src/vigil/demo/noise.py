"""Deterministic noise as a pure function of (seed, key, time).

The fleet's metrics must look the same whether they are generated one 10 s sample at a time or
an hour of backfill at once, and the same for the same ``--seed``. So nothing here keeps state:
every value is a hash of its inputs (SplitMix64), and smooth noise interpolates hashed values
at fixed knots.
"""

from __future__ import annotations

import math
import zlib

_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """SplitMix64's finaliser: a cheap, well-spread 64-bit hash."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def key_hash(key: str) -> int:
    """A stable hash of a name (Python's ``hash`` of a str changes between processes)."""
    return zlib.crc32(key.encode("utf-8"))


def stable_seed(*parts: object) -> int:
    """An integer seed from any values, stable across processes."""
    h = 0
    for part in parts:
        h = _mix(h ^ key_hash(repr(part)))
    return h


def _hash(seed: int, key: int, k: int) -> int:
    return _mix(seed ^ ((key * 0x9E3779B97F4A7C15) & _MASK) ^ ((k * 0xC2B2AE3D27D4EB4F) & _MASK))


def uniform(seed: int, key: int, k: int) -> float:
    """A uniform number in [0, 1) for the integer ``k`` of series ``key``."""
    return _hash(seed, key, k) / 2.0**64


def symmetric(seed: int, key: int, k: int) -> float:
    """Roughly bell-shaped in [-1, 1]: the mean of three 21-bit uniforms from one hash."""
    h = _hash(seed, key, k)
    total = (h & 0x1FFFFF) + ((h >> 21) & 0x1FFFFF) + ((h >> 42) & 0x1FFFFF)
    return total / (1.5 * 0x1FFFFF) - 1.0


def smooth(seed: int, key: int, t: float, period_s: float) -> float:
    """Smooth noise in about [-1, 1] that changes over ``period_s``: cosine interpolation
    between hashed knots."""
    x = t / period_s
    k = math.floor(x)
    frac = x - k
    w = (1.0 - math.cos(frac * math.pi)) / 2.0
    return symmetric(seed, key, k) * (1.0 - w) + symmetric(seed, key, k + 1) * w


def jitter(seed: int, key: int, t: float) -> float:
    """White noise in about [-1, 1], one value per whole second."""
    return symmetric(seed, key + 7, int(t))


def diurnal(t: float, peak_hour_utc: float = 15.0) -> float:
    """The daily cycle in [-1, 1]: busiest at ``peak_hour_utc``, quietest twelve hours later."""
    hours = (t / 3600.0) % 24.0
    return math.cos((hours - peak_hour_utc) / 24.0 * 2.0 * math.pi)


def diurnal_integral(t: float, peak_hour_utc: float = 15.0) -> float:
    """∫ diurnal dt (seconds), for counters whose rate follows the daily cycle."""
    period = 86400.0
    return period / (2.0 * math.pi) * math.sin((t - peak_hour_utc * 3600.0) / period * 2.0 * math.pi)
