"""Vector store over ChromaDB: embedded ``PersistentClient`` or a Chroma server (``HttpClient``).

Vigil always supplies embeddings. Collections are created with no embedding function at all,
because Chroma's default one downloads a model, which must never happen at run time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vigil.store.vectors.base import Metadata, VectorHit


class VectorStoreUnavailable(Exception):
    """The Chroma server cannot be reached."""


class ChromaVectorStore:
    def __init__(
        self,
        path: Path | None = None,
        url: str | None = None,
        tenant: str = "default_tenant",
        database: str = "default_database",
        collection_prefix: str = "vigil_",
    ) -> None:
        if (path is None) == (url is None):
            raise ValueError("give either a path (embedded) or a url (server)")
        self.path = path
        self.url = url
        self.tenant = tenant
        self.database = database
        self.collection_prefix = collection_prefix
        self._client: Any = None
        self._collections: dict[str, Any] = {}
        # Chroma's clients are synchronous; one lock keeps the embedded client single-threaded.
        self._lock = asyncio.Lock()

    @property
    def description(self) -> str:
        return f"chroma server ({self.url})" if self.url else f"embedded chroma ({self.path})"

    def _connect(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if self.url:
            parts = urlsplit(self.url)
            return chromadb.HttpClient(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or (443 if parts.scheme == "https" else 8000),
                ssl=parts.scheme == "https",
                tenant=self.tenant,
                database=self.database,
                settings=chroma_settings,
            )
        assert self.path is not None
        self.path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(self.path), settings=chroma_settings)

    async def _run(self, fn: Any, *args: Any) -> Any:
        async with self._lock:
            try:
                return await asyncio.to_thread(fn, *args)
            except Exception as exc:
                if self.url and _is_connection_error(exc):
                    raise VectorStoreUnavailable(f"cannot reach Chroma at {self.url}: {exc}") from exc
                raise

    async def start(self) -> None:
        if self._client is None:
            self._client = await self._run(self._connect)

    async def close(self) -> None:
        self._collections.clear()
        self._client = None

    async def ping(self) -> None:
        await self.start()
        await self._run(self._client.heartbeat)

    def _collection(self, name: str) -> Any:
        full = self.collection_prefix + name
        collection = self._collections.get(full)
        if collection is None:
            # embedding_function=None: Chroma must never embed (or download a model) for us.
            collection = self._client.get_or_create_collection(
                full, embedding_function=None, metadata={"hnsw:space": "cosine"}
            )
            self._collections[full] = collection
        return collection

    async def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        embeddings: Sequence[Sequence[float]],
        documents: Sequence[str] | None = None,
        metadatas: Sequence[Metadata] | None = None,
    ) -> None:
        if not ids:
            return
        await self.start()

        def run() -> None:
            self._collection(collection).upsert(
                ids=list(ids),
                embeddings=[list(map(float, e)) for e in embeddings],
                documents=list(documents) if documents is not None else None,
                metadatas=[dict(m) or {"_": 0} for m in metadatas] if metadatas is not None else None,
            )

        await self._run(run)

    async def query(
        self,
        collection: str,
        embedding: Sequence[float],
        limit: int = 10,
        where: dict[str, Any] | None = None,
    ) -> list[VectorHit]:
        await self.start()

        def run() -> list[VectorHit]:
            coll = self._collection(collection)
            result = coll.query(
                query_embeddings=[list(map(float, embedding))],
                n_results=limit,
                where=where or None,
                include=["documents", "metadatas", "distances"],
            )
            hits = []
            for i, hit_id in enumerate(result["ids"][0]):
                metadata = dict(result["metadatas"][0][i] or {})
                metadata.pop("_", None)
                hits.append(
                    VectorHit(
                        id=hit_id,
                        distance=float(result["distances"][0][i]),
                        document=(result["documents"][0][i] if result.get("documents") else None),
                        metadata=metadata,
                    )
                )
            return hits

        result: list[VectorHit] = await self._run(run)
        return result

    async def delete(self, collection: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        await self.start()
        await self._run(lambda: self._collection(collection).delete(ids=list(ids)))

    async def count(self, collection: str) -> int:
        await self.start()
        result: int = await self._run(lambda: self._collection(collection).count())
        return result


def _is_connection_error(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(s in text for s in ("connect", "refused", "timeout", "unreachable", "could not"))
