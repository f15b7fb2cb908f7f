"""Choosing the embedder from settings (``VIGIL_EMBEDDINGS`` and friends), in one place.

- ``lexical`` (default): built in, no model, always available.
- ``local``: all-MiniLM-L6-v2 from the optional extra ``embeddings`` (numpy runtime).
- ``openai``: an OpenAI-compatible endpoint (``VIGIL_EMBEDDINGS_URL``, default OpenAI's API;
  ``VIGIL_EMBEDDINGS_MODEL``, ``VIGIL_EMBEDDINGS_API_KEY``).
- ``ollama``: Ollama's ``/api/embed`` (``VIGIL_EMBEDDINGS_URL``, default localhost:11434).
"""

from __future__ import annotations

import re

from vigil.config import Settings, SettingsError
from vigil.llm.embeddings import Embedder


def build_embedder(settings: Settings) -> Embedder:
    """The configured embedder; SettingsError naming the setting when it cannot be built."""
    kind = settings.embeddings
    if kind == "lexical":
        from vigil.llm.embeddings_lexical import LexicalEmbedder

        return LexicalEmbedder()
    if kind == "local":
        from vigil.llm.embeddings_local import LocalEmbedder, LocalModelUnavailable

        try:
            return LocalEmbedder()
        except LocalModelUnavailable as exc:
            raise SettingsError(f"VIGIL_EMBEDDINGS=local: {exc}") from exc
    api_key = settings.embeddings_api_key.get_secret_value() if settings.embeddings_api_key else None
    if kind == "openai":
        from vigil.llm.embeddings_remote import OpenAIEmbedder

        if not settings.embeddings_model:
            raise SettingsError("VIGIL_EMBEDDINGS_MODEL is required when VIGIL_EMBEDDINGS=openai")
        return OpenAIEmbedder(
            settings.embeddings_url or "https://api.openai.com/v1", settings.embeddings_model, api_key=api_key
        )
    if kind == "ollama":
        from vigil.llm.embeddings_remote import OllamaEmbedder

        return OllamaEmbedder(
            settings.embeddings_url or "http://localhost:11434",
            settings.embeddings_model or "nomic-embed-text",
            api_key=api_key,
        )
    raise SettingsError(f"VIGIL_EMBEDDINGS: unknown provider {kind!r}")


def collection_suffix(embedder: Embedder) -> str:
    """A vector-collection-safe tag for an embedder, so vectors of different models (and
    dimensions) never share a collection: switching providers starts a fresh index."""
    slug = re.sub(r"[^a-zA-Z0-9]+", "_", embedder.name).strip("_").lower()
    return slug[:48] or "embedder"
