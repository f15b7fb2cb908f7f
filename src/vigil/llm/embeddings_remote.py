"""Embeddings from remote endpoints: OpenAI-compatible ``POST /v1/embeddings`` and Ollama's
``POST /api/embed``.

Both clients batch their input, time out, and retry what is worth retrying (429 rate limits,
5xx, connection errors) with exponential backoff that honours ``Retry-After``; a 429 that says
the quota is exhausted, and every other 4xx, fails at once with the server's message.
Vectors are normalised to unit length, as the :class:`~vigil.llm.embeddings.Embedder`
protocol promises.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class EmbeddingError(Exception):
    """The endpoint refused or failed the request; the message says why."""


def _unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(float(v) * float(v) for v in vector))
    if norm == 0.0:
        return [float(v) for v in vector]
    return [float(v) / norm for v in vector]


def _error_message(response: httpx.Response) -> tuple[str, str | None]:
    """(message, code) from an OpenAI ``{"error": {...}}`` or Ollama ``{"error": "..."}`` body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase, None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error), error.get("code") or error.get("type")
    if isinstance(error, str):
        return error, None
    return str(body)[:300], None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class _RemoteEmbedder:
    name: str
    dimensions: int

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        batch_size: int = 128,
        backoff_s: float = 0.5,
        max_backoff_s: float = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.model = model
        self.max_retries = max_retries
        self.batch_size = batch_size
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            transport=transport,
        )
        self.dimensions = 0  # known after the first answer

    async def close(self) -> None:
        await self._client.aclose()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(await self._embed_batch(list(texts[start : start + self.batch_size])))
        if vectors:
            self.dimensions = len(vectors[0])
        return vectors

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

    async def _post(self, url: str, body: dict[str, Any]) -> Any:
        attempt = 0
        while True:
            wait = min(self.max_backoff_s, self.backoff_s * 2**attempt)
            try:
                response = await self._client.post(url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt >= self.max_retries:
                    raise EmbeddingError(
                        f"{self.name}: cannot reach {url}: {type(exc).__name__}: {exc}"
                    ) from exc
            else:
                if response.status_code < 300:
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise EmbeddingError(f"{self.name}: {url} answered with invalid JSON") from exc
                message, code = _error_message(response)
                retryable = response.status_code in RETRY_STATUSES and code != "insufficient_quota"
                if not retryable or attempt >= self.max_retries:
                    raise EmbeddingError(f"{self.name}: {url} answered {response.status_code}: {message}")
                wait = min(self.max_backoff_s, _retry_after(response) or wait)
            attempt += 1
            await asyncio.sleep(wait)


class OpenAIEmbedder(_RemoteEmbedder):
    """Any OpenAI-compatible embeddings endpoint (OpenAI, vLLM, llama.cpp server, Ollama /v1).

    ``url`` is the API base, with or without ``/v1`` (``https://api.openai.com/v1``)."""

    def __init__(self, url: str, model: str = "text-embedding-3-small", **kwargs: Any) -> None:
        super().__init__(url, model, **kwargs)
        self.name = f"openai:{model}"
        base = url.rstrip("/")
        self.endpoint = f"{base}/embeddings" if base.endswith("/v1") else f"{base}/v1/embeddings"

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        body = await self._post(
            self.endpoint, {"model": self.model, "input": texts, "encoding_format": "float"}
        )
        try:
            items = sorted(body["data"], key=lambda item: int(item["index"]))
            vectors = [_unit(item["embedding"]) for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError(f"{self.name}: unexpected answer shape: {str(body)[:200]}") from exc
        if len(vectors) != len(texts):
            raise EmbeddingError(f"{self.name}: asked for {len(texts)} vectors, got {len(vectors)}")
        return vectors


class OllamaEmbedder(_RemoteEmbedder):
    """Ollama's native batch endpoint ``POST /api/embed`` (default ``http://localhost:11434``)."""

    def __init__(
        self, url: str = "http://localhost:11434", model: str = "nomic-embed-text", **kwargs: Any
    ) -> None:
        super().__init__(url, model, **kwargs)
        self.name = f"ollama:{model}"
        self.endpoint = f"{url.rstrip('/')}/api/embed"

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        body = await self._post(self.endpoint, {"model": self.model, "input": texts, "truncate": True})
        try:
            vectors = [_unit(v) for v in body["embeddings"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError(f"{self.name}: unexpected answer shape: {str(body)[:200]}") from exc
        if len(vectors) != len(texts):
            raise EmbeddingError(f"{self.name}: asked for {len(texts)} vectors, got {len(vectors)}")
        return vectors
