"""Settling a long-running process (``vigil up``, ``api``, ``worker``) once it has started.

A full garbage collection walks every object the collector tracks. After start-up that is
mostly what never goes away: imported modules, Pydantic models, the vector store's client,
settings. In the worker and the API processes that walk took 100–240 ms, and a full
collection came every few seconds under an alert storm, so every alert in flight waited that
long: a large part of the live-update p99 (``bench/ws_latency.py``). ``gc.freeze()`` moves
what exists now out of the collector's view, so later full collections only walk what was
allocated since (5–10 ms).
"""

from __future__ import annotations

import gc


def load_lazy_modules() -> None:
    """Import what would otherwise be imported on first use, so it is frozen with the rest
    (and the first use does not pay for the import)."""
    from vigil.collectors.base import source_types

    source_types()  # registers the built-in pull collectors


def freeze_startup_heap() -> int:
    """Collect once, then exclude every surviving object from later collections; returns how
    many objects were frozen. Call when start-up is done, before taking traffic."""
    load_lazy_modules()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
