"""Any OpenAI-compatible Chat Completions endpoint: OpenAI, vLLM, llama.cpp server, Ollama's /v1.

``POST {base}/chat/completions`` with tools, ``response_format: json_schema`` for structured
answers, and server-sent-event streaming (``stream_options.include_usage`` so streamed calls are
accounted too). Errors follow OpenAI's envelope ``{"error": {"message", "type", "code"}}``: 429
``rate_limit_exceeded`` and 5xx are retryable, 429 ``insufficient_quota`` and other 4xx are not.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx

from vigil.llm.client import (
    ChatRequest,
    ChatResult,
    LLMBadResponse,
    LLMError,
    LLMQuotaExceeded,
    LLMRateLimited,
    LLMRequestRejected,
    LLMUnavailable,
    Message,
    TextCallback,
    ToolCall,
    Usage,
)
from vigil.llm.http import make_http_client, retry_after, transport_error


def normalise_base_url(url: str) -> str:
    """``http://host:8000`` → ``http://host:8000/v1``; a URL with a path is used as given
    (``https://api.openai.com/v1``, ``http://localhost:11434/v1``, a proxy's own prefix)."""
    url = url.rstrip("/")
    return url + "/v1" if urlsplit(url).path in ("", "/") else url


class OpenAICompatProvider:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 60.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = http or make_http_client(timeout_s, headers)
        if http is not None and api_key:
            self._http.headers.update(headers)
        # OpenAI's reasoning models only accept max_completion_tokens; many compatible servers
        # only know the older max_tokens.
        self._max_tokens_key = (
            "max_completion_tokens" if urlsplit(self.base_url).hostname == "api.openai.com" else "max_tokens"
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def list_models(self) -> list[str]:
        url = f"{self.base_url}/models"
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise transport_error(exc, url) from exc
        if response.status_code >= 400:
            raise _status_error(response)
        try:
            return [str(m["id"]) for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise LLMBadResponse(f"{url}: unexpected models list: {response.text[:200]}") from exc

    def payload(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [_message(m) for m in request.messages],
        }
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in request.tools
            ]
            if request.tool_choice in ("auto", "none", "required"):
                body["tool_choice"] = request.tool_choice
            elif request.tool_choice:
                body["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice}}
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "strict": True, "schema": request.json_schema},
            }
        if request.max_tokens is not None:
            body[self._max_tokens_key] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.seed is not None:
            body["seed"] = request.seed
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def chat(self, request: ChatRequest, on_text: TextCallback | None = None) -> ChatResult:
        url = f"{self.base_url}/chat/completions"
        body = self.payload(request, stream=on_text is not None)
        try:
            if on_text is None:
                response = await self._http.post(url, json=body)
                if response.status_code >= 400:
                    raise _status_error(response)
                return _parse_completion(response, url)
            async with self._http.stream("POST", url, json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _status_error(response)
                return await _read_stream(response, url, on_text)
        except httpx.HTTPError as exc:
            raise transport_error(exc, url) from exc


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id or f"call_{i}",
                "type": "function",
                "function": {"name": c.name, "arguments": c.raw_arguments},
            }
            for i, c in enumerate(m.tool_calls)
        ]
    if m.role == "tool":
        out["tool_call_id"] = m.tool_call_id
    return out


def _tool_call(call_id: str | None, name: str, raw: str) -> ToolCall:
    try:
        arguments = json.loads(raw) if raw.strip() else {}
    except ValueError:
        arguments = None
    if arguments is not None and not isinstance(arguments, dict):
        arguments = None
    return ToolCall(call_id, name, arguments, raw)


def _parse_completion(response: httpx.Response, url: str) -> ChatResult:
    try:
        data = response.json()
        if isinstance(data, dict) and data.get("error"):
            raise _error_from_body(None, data, response.headers)
        choice = data["choices"][0]
        message = choice["message"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LLMBadResponse(f"{url}: not a chat completion: {response.text[:200]!r}") from exc
    calls = tuple(
        _tool_call(c.get("id"), c["function"]["name"], c["function"].get("arguments") or "")
        for c in message.get("tool_calls") or []
    )
    return ChatResult(
        content=message.get("content"),
        tool_calls=calls,
        finish_reason=choice.get("finish_reason"),
        usage=_usage(data.get("usage")),
        model=str(data.get("model") or ""),
        refusal=message.get("refusal"),
    )


def _usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


async def _read_stream(response: httpx.Response, url: str, on_text: TextCallback) -> ChatResult:
    text: list[str] = []
    refusal: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish_reason: str | None = None
    usage = Usage()
    model = ""
    done = False
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, ": keep-alive" comments, "event:" lines
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise LLMBadResponse(f"{url}: undecodable stream event {data[:200]!r}") from exc
        if chunk.get("error"):
            raise _error_from_body(None, chunk, response.headers)
        model = chunk.get("model") or model
        if chunk.get("usage"):
            usage = _usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if piece := delta.get("content"):
                text.append(piece)
                outcome = on_text(piece)
                if outcome is not None:
                    await outcome
            if piece := delta.get("refusal"):
                refusal.append(piece)
            for fragment in delta.get("tool_calls") or []:
                slot = calls.setdefault(int(fragment.get("index", 0)), {"id": None, "name": "", "args": []})
                slot["id"] = fragment.get("id") or slot["id"]
                function = fragment.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["args"].append(function.get("arguments") or "")
            if choice.get("finish_reason"):
                finish_reason = choice["finish_reason"]
    if not done and finish_reason is None:
        raise LLMUnavailable(f"{url}: the stream ended before the answer was complete")
    return ChatResult(
        content="".join(text) if text or not calls else None,
        tool_calls=tuple(
            _tool_call(slot["id"], slot["name"], "".join(slot["args"])) for _, slot in sorted(calls.items())
        ),
        finish_reason=finish_reason,
        usage=usage,
        model=model,
        refusal="".join(refusal) or None,
    )


def _status_error(response: httpx.Response) -> LLMError:
    try:
        body = response.json()
    except ValueError:
        body = {"error": {"message": response.text[:300]}}
    return _error_from_body(response.status_code, body, response.headers)


def _error_from_body(status: int | None, body: Any, headers: httpx.Headers) -> LLMError:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        code = error.get("code") or error.get("type")
    else:
        message, code = str(error or body), None
    code = str(code) if code is not None else None
    where = f"HTTP {status}" if status is not None else "stream error"
    text = f"{where}{f' {code}' if code else ''}: {message}".strip()
    wait = retry_after(headers)
    if code == "insufficient_quota":
        return LLMQuotaExceeded(text, status=status, code=code)
    if status == 429 or code == "rate_limit_exceeded":
        return LLMRateLimited(text, status=status, code=code, retry_after=wait)
    if status is None or status >= 500 or status == 408:
        return LLMUnavailable(text, status=status, code=code, retry_after=wait)
    return LLMRequestRejected(text, status=status, code=code)
