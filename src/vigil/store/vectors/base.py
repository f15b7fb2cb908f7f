"""The vector store protocol over ChromaDB. Vigil always supplies the embeddings itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Metadata = dict[str, str | int | float | bool]


@dataclass(slots=True)
class VectorHit:
    id: str
    distance: float
    document: str | None
    metadata: Metadata = field(default_factory=dict)


@runtime_checkable
class VectorStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    async def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        embeddings: Sequence[Sequence[float]],
        documents: Sequence[str] | None = None,
        metadatas: Sequence[Metadata] | None = None,
    ) -> None: ...

    async def query(
        self,
        collection: str,
        embedding: Sequence[float],
        limit: int = 10,
        where: dict[str, Any] | None = None,
    ) -> list[VectorHit]: ...

    async def delete(self, collection: str, ids: Sequence[str]) -> None: ...

    async def count(self, collection: str) -> int: ...
