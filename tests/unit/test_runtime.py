"""Settling a started process: what exists is frozen out of later garbage collections."""

from __future__ import annotations

import gc
import sys

from vigil.runtime import freeze_startup_heap


def test_freeze_moves_the_live_heap_out_of_collections_and_loads_lazy_modules() -> None:
    before = {"a container": ["the collector tracks it"]}
    try:
        frozen = freeze_startup_heap()
        after: dict[str, list[str]] = {"made later": []}
        assert frozen == gc.get_freeze_count() > 0
        tracked = {id(o) for o in gc.get_objects()}
        assert id(before) not in tracked  # frozen: later collections skip it
        assert id(after) in tracked
        assert "vigil.collectors.snmp" in sys.modules  # built-in collectors, imported up front
    finally:
        gc.unfreeze()
