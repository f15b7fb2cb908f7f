"""The one place settings choose the LLM provider. ``None`` means "no LLM": a normal mode."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from vigil.config import Settings, redact
from vigil.llm.client import LLM, ChatProvider, LLMOptions
from vigil.llm.usage import Pricing, UsageSink

if TYPE_CHECKING:
    from vigil.backends import Backends
    from vigil.llm.classifier import LLMTemplateClassifier as TemplateClassifierImpl
    from vigil.llm.second_opinion import LLMSecondOpinion as SecondOpinionImpl
    from vigil.llm.summarizer import LLMIncidentSummarizer as SummarizerImpl
    from vigil.store.db import Database

RULES = "rules"  # ``generated_by`` of every result made without a model


def llm_options(settings: Settings) -> LLMOptions:
    return LLMOptions(
        timeout_s=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
        concurrency=settings.llm_concurrency,
        max_prompt_tokens=settings.llm_max_prompt_tokens,
        max_completion_tokens=settings.llm_max_completion_tokens,
    )


def build_provider(settings: Settings) -> ChatProvider | None:
    if settings.llm_provider == "none" or not settings.llm_model:
        return None
    if settings.llm_provider == "ollama":
        from vigil.llm.ollama import OllamaProvider

        return OllamaProvider(settings.llm_base_url, settings.llm_model, timeout_s=settings.llm_timeout_s)
    from vigil.llm.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(
        settings.llm_base_url or "https://api.openai.com/v1",
        settings.llm_model,
        settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        timeout_s=settings.llm_timeout_s,
    )


def build_llm(settings: Settings, usage: UsageSink | None = None) -> LLM | None:
    provider = build_provider(settings)
    if provider is None:
        return None
    pricing = Pricing(settings.llm_price_input_per_mtok, settings.llm_price_output_per_mtok)
    return LLM(provider, llm_options(settings), usage, pricing)


def build_llm_for(settings: Settings, db: Database) -> LLM | None:
    """The LLM of a running process, recording usage in its database."""
    from vigil.llm.usage import DatabaseUsage

    return build_llm(settings, DatabaseUsage(db))


def describe(settings: Settings) -> dict[str, Any]:
    """What is configured, safe to show (no key)."""
    configured = settings.llm_provider != "none"
    return {
        "configured": configured,
        "provider": settings.llm_provider,
        "model": settings.llm_model if configured else None,
        "base_url": redact(settings.llm_base_url) if configured else None,
        "generated_by": f"model:{settings.llm_model}" if configured else RULES,
        "max_prompt_tokens": settings.llm_max_prompt_tokens,
        "max_completion_tokens": settings.llm_max_completion_tokens,
        "concurrency": settings.llm_concurrency,
        "timeout_s": settings.llm_timeout_s,
        "max_retries": settings.llm_max_retries,
    }


_shared: dict[int, tuple[weakref.ref[Backends], LLM | None]] = {}


def llm_for(backends: Backends) -> LLM | None:
    """The process's one LLM for these backends (one concurrency limit for every feature), or
    None when no model is configured. Usage is recorded in the backends' database."""
    entry = _shared.get(id(backends))
    if entry is not None and entry[0]() is backends:
        return entry[1]
    llm = build_llm_for(backends.settings, backends.db)
    _shared[id(backends)] = (weakref.ref(backends), llm)
    return llm


def template_classifier(backends: Backends) -> TemplateClassifierImpl | None:
    """The log stage's ``TemplateClassifier`` when a model is configured."""
    llm = llm_for(backends)
    if llm is None:
        return None
    from vigil.llm.classifier import LLMTemplateClassifier

    return LLMTemplateClassifier(llm)


def second_opinion(backends: Backends) -> SecondOpinionImpl | None:
    """The detect stage's ``SecondOpinion`` when a model is configured."""
    llm = llm_for(backends)
    if llm is None:
        return None
    from vigil.llm.second_opinion import LLMSecondOpinion

    return LLMSecondOpinion(llm)


def incident_summarizer(backends: Backends) -> SummarizerImpl | None:
    """The alerting ``IncidentSummarizer`` when a model is configured (rules otherwise)."""
    llm = llm_for(backends)
    if llm is None:
        return None
    from vigil.llm.summarizer import LLMIncidentSummarizer

    return LLMIncidentSummarizer(llm)
