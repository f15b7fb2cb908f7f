"""The built-in lexical embedder: unit vectors, and ops concepts that bridge vocabularies."""

from __future__ import annotations

import math

from vigil.llm.embeddings import Embedder
from vigil.llm.embeddings_lexical import LexicalEmbedder, stem

TEMPLATES = [
    "No space left on device",
    "Failed password for <*> from <*> port <*> ssh2",
    "Accepted publickey for <*> from <*> port <*> ssh2",
    "GET <*> HTTP/1.1 <*> <*>",
    "Started Session <*> of user <*>.",
    "Connection timed out after <*> ms",
    "Out of memory: Killed process <*>",
]


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _nearest(embedder: LexicalEmbedder, query: str) -> str:
    q = embedder.vector(query)
    return max(TEMPLATES, key=lambda t: _cos(q, embedder.vector(t)))


async def test_protocol_and_unit_vectors() -> None:
    embedder = LexicalEmbedder()
    assert isinstance(embedder, Embedder)
    vectors = await embedder.embed(["No space left on device", "", "<*> <*>"])
    assert len(vectors) == 3 and all(len(v) == embedder.dimensions for v in vectors)
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-9) for v in vectors)
    assert vectors[0] == embedder.vector("No space left on device")  # deterministic


def test_concepts_bridge_different_words() -> None:
    embedder = LexicalEmbedder()
    assert _nearest(embedder, "disk errors") == "No space left on device"
    assert _nearest(embedder, "login failures") == "Failed password for <*> from <*> port <*> ssh2"
    assert _nearest(embedder, "memory problems") == "Out of memory: Killed process <*>"
    assert _nearest(embedder, "slow responses") == "Connection timed out after <*> ms"
    assert _nearest(embedder, "disk errors") != _nearest(embedder, "login failures")


def test_similar_wording_scores_higher_than_unrelated() -> None:
    embedder = LexicalEmbedder()
    a = embedder.vector("Failed password for root from 10.0.0.1 port 22 ssh2")
    b = embedder.vector("Failed password for admin from 10.9.9.9 port 2222 ssh2")
    c = embedder.vector("GET /index.html HTTP/1.1 200 512")
    assert _cos(a, b) > 0.8 > _cos(a, c)


def test_stem() -> None:
    assert stem("errors") == "error" and stem("failed") == "fail" and stem("timeouts") == "timeout"
    assert stem("dies") == "dies" and stem("policies") == "policy" and stem("disk") == "disk"
