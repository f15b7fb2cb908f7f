"""The chat provider protocol, and ``LLM``: the one object features use to talk to a model.

Providers (``openai_compat.OpenAICompatProvider``, ``ollama.OllamaProvider``) translate a
``ChatRequest`` to their wire format and classify failures into the ``LLMError`` family. Everything
that must behave the same whatever the provider lives in ``LLM``: a concurrency limit, a per-attempt
deadline, retries with backoff that honour ``retry-after`` (429 rate limits and 5xx yes, exhausted
quota and bad requests no), a last-resort prompt budget, and usage accounting per feature.

"No LLM configured" is not an error: ``build_llm`` (``vigil.llm.factory``) returns ``None`` and
every feature falls back to its deterministic path, labelled ``generated_by: "rules"``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

from vigil.llm.budget import estimate_messages_tokens, fit_messages
from vigil.llm.usage import Pricing, UsageEvent, UsageSink

log = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant", "tool"]
TextCallback = Callable[[str], Awaitable[None] | None]


# --- request and result shapes -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for. ``arguments`` is None when the model sent invalid JSON
    (OpenAI sends arguments as a string that non-strict models may garble); ``raw_arguments``
    keeps what was sent so the caller can report it back to the model."""

    id: str | None
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # role "tool": which call this answers
    name: str | None = None  # role "tool": the tool's name (Ollama wants it)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    # "auto" | "none" | "required" | the name of one tool to force
    tool_choice: str | None = None
    # A JSON Schema the answer must follow (OpenAI response_format json_schema, Ollama format).
    json_schema: dict[str, Any] | None = None
    schema_name: str = "answer"
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ChatResult:
    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None  # stop | length | tool_calls | content_filter | ...
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    refusal: str | None = None  # OpenAI structured outputs: the model declined


# --- errors -------------------------------------------------------------------------------------


class LLMError(Exception):
    """A model call failed. ``retryable`` says whether trying again may help."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class LLMUnavailable(LLMError):
    """Cannot reach the server, it timed out, or it answered 5xx/overloaded."""

    retryable = True


class LLMRateLimited(LLMError):
    """429 rate_limit_exceeded: slow down and retry."""

    retryable = True


class LLMQuotaExceeded(LLMError):
    """429 insufficient_quota: a billing problem, retrying cannot help."""


class LLMRequestRejected(LLMError):
    """4xx: bad request, bad key, unknown model, context too long. Retrying cannot help."""


class LLMBadResponse(LLMError):
    """The server answered 2xx with something that is not the documented shape."""

    retryable = True


# --- the provider protocol ----------------------------------------------------------------------


@runtime_checkable
class ChatProvider(Protocol):
    name: str  # "openai" | "ollama"
    model: str
    base_url: str

    async def chat(self, request: ChatRequest, on_text: TextCallback | None = None) -> ChatResult:
        """One call. With ``on_text`` the answer is streamed and each text fragment handed to it
        as it arrives; the assembled result is returned either way. Raises ``LLMError``s."""

    async def list_models(self) -> list[str]: ...

    async def aclose(self) -> None: ...


# --- the service features use -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LLMOptions:
    timeout_s: float = 60.0  # per attempt, whole response
    max_retries: int = 3  # attempts after the first, for retryable errors only
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    max_retry_after_s: float = 60.0  # a server asking for longer than this is not waited for
    concurrency: int = 4  # calls in flight per process
    max_prompt_tokens: int = 6000  # estimated; prompts are fitted to this with notices
    max_completion_tokens: int = 800
    temperature: float = 0.1


class LLM:
    """A configured model: what features call. Thread of control per call:
    budget → concurrency slot → attempts (deadline each) with backoff → usage recorded."""

    def __init__(
        self,
        provider: ChatProvider,
        options: LLMOptions | None = None,
        usage: UsageSink | None = None,
        pricing: Pricing | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.provider = provider
        self.options = options or LLMOptions()
        self.usage = usage
        self.pricing = pricing or Pricing()
        self._slots = asyncio.Semaphore(self.options.concurrency)
        self._sleep = sleep

    @property
    def model(self) -> str:
        return self.provider.model

    @property
    def generated_by(self) -> str:
        """How results made with this model are labelled in the API."""
        return f"model:{self.provider.model}"

    async def aclose(self) -> None:
        await self.provider.aclose()

    async def chat(
        self, feature: str, request: ChatRequest, on_text: TextCallback | None = None
    ) -> ChatResult:
        """Call the model for ``feature`` (classification, second_opinion, summary, rca, copilot...)."""
        request = self._within_budget(request)
        async with self._slots:
            return await self._attempts(feature, request, on_text)

    def _within_budget(self, request: ChatRequest) -> ChatRequest:
        # Prompt builders fit their evidence to the budget with notices; this is the safety net
        # for callers that did not (e.g. a long chat history), so a call never fails on size.
        messages, notices = fit_messages(request.messages, self.options.max_prompt_tokens)
        if notices:
            log.info("prompt cut to the token budget: %s", "; ".join(notices))
            request = replace(request, messages=tuple(messages))
        if request.max_tokens is None:
            request = replace(request, max_tokens=self.options.max_completion_tokens)
        if request.temperature is None:
            request = replace(request, temperature=self.options.temperature)
        return request

    async def _attempts(
        self, feature: str, request: ChatRequest, on_text: TextCallback | None
    ) -> ChatResult:
        streamed_any = False

        async def relay(text: str) -> None:
            nonlocal streamed_any
            streamed_any = True
            if on_text is not None:
                outcome = on_text(text)
                if outcome is not None:
                    await outcome

        attempt = 0
        while True:
            attempt += 1
            begin = time.perf_counter()
            try:
                async with asyncio.timeout(self.options.timeout_s):
                    result = await self.provider.chat(request, relay if on_text is not None else None)
            except TimeoutError:
                error: LLMError = LLMUnavailable(f"no complete answer within {self.options.timeout_s:g}s")
            except LLMError as exc:
                error = exc
            else:
                await self._record(feature, result.usage, begin, "ok", None, request)
                return result
            # Once text has reached the caller, a retry would repeat it: give up instead.
            retry = error.retryable and attempt <= self.options.max_retries and not streamed_any
            delay = self._delay(attempt, error) if retry else None
            if retry and delay is None:
                retry = False  # the server asked us to wait longer than we are willing to
            await self._record(feature, None, begin, "retry" if retry else "error", error, request)
            if not retry:
                raise error
            assert delay is not None
            log.info(
                "LLM %s call for %s failed (%s); retry %d/%d in %.2fs",
                self.provider.name, feature, error, attempt, self.options.max_retries, delay,
            )
            await self._sleep(delay)

    def _delay(self, attempt: int, error: LLMError) -> float | None:
        if error.retry_after is not None:
            if error.retry_after > self.options.max_retry_after_s:
                return None
            return max(0.0, error.retry_after)
        # Exponential backoff with full jitter, so replicas do not retry in lockstep.
        ceiling = min(self.options.backoff_max_s, self.options.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def record_invalid_output(self, feature: str, reason: str) -> None:
        """The structured-output layer rejected an answer (bad JSON, schema, citations)."""
        if self.usage is None:
            return
        await self.usage.record(
            UsageEvent(
                feature=feature, provider=self.provider.name, model=self.provider.model,
                prompt_tokens=0, completion_tokens=0, cost_usd=0.0, latency_ms=0.0,
                outcome="invalid_output", error=reason[:500],
            )
        )

    async def _record(
        self,
        feature: str,
        usage: Usage | None,
        begin: float,
        outcome: str,
        error: LLMError | None,
        request: ChatRequest,
    ) -> None:
        if self.usage is None:
            return
        if usage is None:
            usage = Usage()
        elif usage.prompt_tokens == 0 and outcome == "ok":
            # Some servers (streams without include_usage) report nothing: estimate, so cost
            # accounting is approximately right rather than silently zero.
            usage = Usage(estimate_messages_tokens(request.messages), usage.completion_tokens)
        await self.usage.record(
            UsageEvent(
                feature=feature,
                provider=self.provider.name,
                model=self.provider.model,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cost_usd=self.pricing.cost(usage.prompt_tokens, usage.completion_tokens),
                latency_ms=(time.perf_counter() - begin) * 1000,
                outcome=outcome,
                error=None if error is None else f"{type(error).__name__}: {error}"[:500],
            )
        )

