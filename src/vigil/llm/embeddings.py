"""The embedding provider protocol: text in, vectors out. Vigil embeds everything itself
(Chroma never does), so every provider here must work offline unless the user configured a
remote endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Embedder(Protocol):
    name: str  # e.g. "lexical", "local:all-MiniLM-L6-v2", "openai:text-embedding-3-small"
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text, in order."""
