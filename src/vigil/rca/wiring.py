"""The RCA service of a process, built once per ``Backends`` from its settings."""

from __future__ import annotations

import logging
import weakref

from vigil.backends import Backends
from vigil.config import SettingsError
from vigil.llm.embeddings import Embedder
from vigil.llm.factory import llm_for
from vigil.rca.service import RCAService

log = logging.getLogger(__name__)

_services: dict[int, tuple[weakref.ref[Backends], RCAService]] = {}


def embedder_for(backends: Backends) -> Embedder | None:
    """The configured embedder, or None (similar incidents are then not searched) when it
    cannot be built (e.g. ``VIGIL_EMBEDDINGS=local`` without the optional extra)."""
    from vigil.llm.embedder_factory import build_embedder

    try:
        return build_embedder(backends.settings)
    except SettingsError as exc:
        log.warning("similar incidents disabled: %s", exc)
        return None


def rca_service_for(backends: Backends) -> RCAService:
    entry = _services.get(id(backends))
    if entry is not None and entry[0]() is backends:
        return entry[1]
    service = RCAService.build(backends.db, backends.vectors, embedder_for(backends), llm_for(backends))
    _services[id(backends)] = (weakref.ref(backends), service)
    return service
