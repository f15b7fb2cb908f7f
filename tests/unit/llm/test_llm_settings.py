"""LLM settings: "none" is the default and a normal mode; a provider needs a model; URLs checked."""

from __future__ import annotations

import pytest

from vigil.config import SettingsError, load_settings
from vigil.llm.factory import build_llm, describe
from vigil.llm.ollama import OllamaProvider
from vigil.llm.openai_compat import OpenAICompatProvider, normalise_base_url


def test_no_llm_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIL_LLM_PROVIDER", raising=False)
    settings = load_settings()
    assert settings.llm_provider == "none"
    assert build_llm(settings) is None
    info = describe(settings)
    assert info["configured"] is False and info["generated_by"] == "rules" and info["model"] is None


def test_a_provider_needs_a_model() -> None:
    with pytest.raises(SettingsError, match="VIGIL_LLM_MODEL is required when VIGIL_LLM_PROVIDER=ollama"):
        load_settings(llm_provider="ollama")


def test_bad_urls_and_providers_are_named() -> None:
    with pytest.raises(SettingsError, match="VIGIL_LLM_BASE_URL must start with"):
        load_settings(llm_provider="openai", llm_model="m", llm_base_url="ftp://x")
    with pytest.raises(SettingsError, match="VIGIL_LLM_PROVIDER"):
        load_settings(llm_provider="anthropic", llm_model="m")


def test_providers_from_settings() -> None:
    openai = build_llm(load_settings(llm_provider="openai", llm_model="gpt-4o-mini", llm_api_key="sk-secret"))
    assert openai is not None and isinstance(openai.provider, OpenAICompatProvider)
    assert openai.provider.base_url == "https://api.openai.com/v1"
    assert openai.generated_by == "model:gpt-4o-mini"
    ollama = build_llm(load_settings(llm_provider="ollama", llm_model="llama3.1", llm_base_url="http://gpu:11434/"))
    assert ollama is not None and isinstance(ollama.provider, OllamaProvider)
    assert ollama.provider.base_url == "http://gpu:11434"
    info = describe(load_settings(llm_provider="openai", llm_model="m", llm_base_url="http://u:pw@h:8000/v1"))
    assert info["base_url"] == "http://u:***@h:8000/v1" and "sk-" not in str(info)


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("http://vllm:8000", "http://vllm:8000/v1"),
        ("http://localhost:11434/v1/", "http://localhost:11434/v1"),
        ("https://proxy.example/openai/v1", "https://proxy.example/openai/v1"),
    ],
)
def test_openai_base_urls(given: str, used: str) -> None:
    assert normalise_base_url(given) == used
