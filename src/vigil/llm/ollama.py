"""Ollama's native chat API: ``POST /api/chat``.

Differences from the OpenAI shape that matter here: streaming is the default (NDJSON, one object
per line, the last one ``"done": true`` with token counts ``prompt_eval_count``/``eval_count``),
structured output is ``"format": <JSON Schema>``, tool-call ``arguments`` arrive as a JSON object
(not a string) and usually without an id, sampling settings go in ``options``. Errors are
``{"error": "..."}`` — also as a last stream line when something fails mid-answer; a full queue
answers 503, never 429.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from vigil.llm.client import (
    ChatRequest,
    ChatResult,
    LLMBadResponse,
    LLMError,
    LLMRateLimited,
    LLMRequestRejected,
    LLMUnavailable,
    Message,
    TextCallback,
    ToolCall,
    Usage,
)
from vigil.llm.http import make_http_client, retry_after, transport_error

DEFAULT_URL = "http://localhost:11434"


class OllamaProvider:
    name = "ollama"

    def __init__(
        self,
        base_url: str | None,
        model: str,
        *,
        timeout_s: float = 60.0,
        keep_alive: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        base = (base_url or DEFAULT_URL).rstrip("/")
        self.base_url = base.removesuffix("/api")
        self.model = model
        self.keep_alive = keep_alive
        self._http = http or make_http_client(timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def list_models(self) -> list[str]:
        url = f"{self.base_url}/api/tags"
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise transport_error(exc, url) from exc
        if response.status_code >= 400:
            raise _status_error(response)
        try:
            return [str(m["name"]) for m in response.json()["models"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise LLMBadResponse(f"{url}: unexpected model list: {response.text[:200]}") from exc

    def payload(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [_message(m) for m in request.messages],
            "stream": stream,
        }
        tools = request.tools
        if request.tool_choice == "none":
            tools = ()
        elif request.tool_choice not in (None, "auto", "required"):
            # Ollama has no tool_choice: offering only the named tool is the closest equivalent.
            tools = tuple(t for t in tools if t.name == request.tool_choice)
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in tools
            ]
        if request.json_schema is not None:
            body["format"] = request.json_schema
        options: dict[str, Any] = {}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        if request.seed is not None:
            options["seed"] = request.seed
        if options:
            body["options"] = options
        if self.keep_alive:
            body["keep_alive"] = self.keep_alive
        return body

    async def chat(self, request: ChatRequest, on_text: TextCallback | None = None) -> ChatResult:
        url = f"{self.base_url}/api/chat"
        # Older servers refuse to stream when tools are offered.
        stream = on_text is not None and not request.tools
        body = self.payload(request, stream)
        try:
            if not stream:
                response = await self._http.post(url, json=body)
                if response.status_code >= 400:
                    raise _status_error(response)
                result = _parse_final(_json(response, url), url)
                if on_text is not None and result.content:
                    outcome = on_text(result.content)
                    if outcome is not None:
                        await outcome
                return result
            async with self._http.stream("POST", url, json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _status_error(response)
                return await _read_stream(response, url, on_text)
        except httpx.HTTPError as exc:
            raise transport_error(exc, url) from exc


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content or ""}
    if m.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": c.name, "arguments": c.arguments if c.arguments is not None else {}}}
            for c in m.tool_calls
        ]
    if m.role == "tool" and m.name:
        out["tool_name"] = m.name
    return out


def _json(response: httpx.Response, url: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise LLMBadResponse(f"{url}: not JSON: {response.text[:200]!r}") from exc
    if not isinstance(data, dict):
        raise LLMBadResponse(f"{url}: not a chat response: {response.text[:200]!r}")
    if data.get("error"):
        raise _error(None, str(data["error"]), response.headers)
    return data


def _tool_calls(message: dict[str, Any], start: int) -> list[ToolCall]:
    calls = []
    for i, call in enumerate(message.get("tool_calls") or [], start=start):
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if isinstance(arguments, str):  # some versions and proxies send a string after all
            raw = arguments
            try:
                arguments = json.loads(arguments)
            except ValueError:
                arguments = None
        else:
            raw = json.dumps(arguments if arguments is not None else {})
        if arguments is not None and not isinstance(arguments, dict):
            arguments = None
        calls.append(ToolCall(call.get("id") or f"call_{i}", str(function.get("name") or ""), arguments, raw))
    return calls


def _parse_final(data: dict[str, Any], url: str) -> ChatResult:
    message = data.get("message")
    if not isinstance(message, dict):
        raise LLMBadResponse(f"{url}: chat response without a message: {str(data)[:200]!r}")
    return _result(data, message.get("content") or "", _tool_calls(message, 0))


def _result(final: dict[str, Any], content: str, calls: list[ToolCall]) -> ChatResult:
    return ChatResult(
        content=content if content or not calls else None,
        tool_calls=tuple(calls),
        finish_reason="tool_calls" if calls else final.get("done_reason") or "stop",
        usage=Usage(int(final.get("prompt_eval_count") or 0), int(final.get("eval_count") or 0)),
        model=str(final.get("model") or ""),
    )


async def _read_stream(response: httpx.Response, url: str, on_text: TextCallback | None) -> ChatResult:
    text: list[str] = []
    calls: list[ToolCall] = []
    async for line in response.aiter_lines():
        if not line.strip():
            continue
        try:
            chunk = json.loads(line)
        except ValueError as exc:
            raise LLMBadResponse(f"{url}: undecodable stream line {line[:200]!r}") from exc
        if not isinstance(chunk, dict):
            raise LLMBadResponse(f"{url}: unexpected stream line {line[:200]!r}")
        if chunk.get("error"):
            # Errors after the response started arrive as a last line, with a 200 status.
            raise LLMUnavailable(f"stream error: {chunk['error']}")
        message = chunk.get("message") or {}
        calls.extend(_tool_calls(message, len(calls)))
        if piece := message.get("content"):
            text.append(piece)
            if on_text is not None:
                outcome = on_text(piece)
                if outcome is not None:
                    await outcome
        if chunk.get("done"):
            return _result(chunk, "".join(text), calls)
    raise LLMUnavailable(f"{url}: the stream ended before the answer was complete")


def _status_error(response: httpx.Response) -> LLMError:
    try:
        body = response.json()
        message = str(body.get("error") if isinstance(body, dict) else body)
    except ValueError:
        message = response.text[:300]
    return _error(response.status_code, message, response.headers)


def _error(status: int | None, message: str, headers: httpx.Headers) -> LLMError:
    text = f"{f'HTTP {status}' if status else 'error'}: {message}"
    if status == 429:  # not Ollama itself, but proxies in front of it
        return LLMRateLimited(text, status=status, retry_after=retry_after(headers))
    if status is None or status >= 500 or status == 408:
        return LLMUnavailable(text, status=status, retry_after=retry_after(headers))
    return LLMRequestRejected(text, status=status)
