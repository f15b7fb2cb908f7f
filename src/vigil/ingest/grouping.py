"""Which error events are "the same error": the fingerprint that groups them.

In order of preference, as Sentry does it:

1. the SDK's own ``fingerprint`` list, where ``{{ default }}`` stands for the default grouping
   below (``{{ type }}``, ``{{ module }}``, ``{{ function }}``, ``{{ transaction }}``,
   ``{{ level }}`` and ``{{ message }}`` are understood too; anything else is literal);
2. the exception type plus the innermost in-app stack frames, as module (or file) and function —
   never line numbers, which move with every unrelated edit;
3. the exception type and its value, or the message, with variable parts masked, so
   "user 42 not found" and "user 7 not found" group together.
"""

from __future__ import annotations

import hashlib
import re

from vigil.domain.errors import ErrorEvent, StackFrame

# How many innermost frames identify an error: enough to tell call sites apart, few enough
# that a change far up the stack does not split a group.
GROUPING_FRAMES = 5
TITLE_LENGTH = 255

_VARIABLE = re.compile(r"^\{\{\s*(\w+)\s*\}\}$")
_MASKS = [
    re.compile(r"'[^']*'|\"[^\"]*\""),  # quoted values
    re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
    re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),  # e-mail addresses
    re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"),  # IPv4, with port
    re.compile(r"\b(?:0x)?[0-9a-fA-F]*\d[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b|\b0x[0-9a-fA-F]+\b"),  # hex ids
    re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*"),  # numbers, not digits inside names
]


def mask_variables(text: str) -> str:
    """The text with values that vary between occurrences replaced by ``<*>``."""
    for pattern in _MASKS:
        text = pattern.sub("<*>", text)
    return text


def grouping_frames(frames: list[StackFrame]) -> list[StackFrame]:
    """The innermost in-app frames (all frames when none is marked in-app), innermost last."""
    in_app = [frame for frame in frames if frame.in_app]
    return (in_app or frames)[-GROUPING_FRAMES:]


def _frame_key(frame: StackFrame) -> str:
    where = frame.module or frame.filename or "?"
    return f"{where}:{frame.function or '?'}"


def default_components(event: ErrorEvent) -> list[str]:
    if event.exception_type:
        frames = grouping_frames(event.frames)
        if frames:
            return ["exception", event.exception_type, *(_frame_key(f) for f in frames)]
        return ["exception", event.exception_type, mask_variables(event.exception_value or "")]
    if event.message:
        return ["message", mask_variables(event.message)]
    return ["empty", event.level]


def fingerprint_components(event: ErrorEvent) -> list[str]:
    if not event.fingerprint:
        return default_components(event)
    parts: list[str] = []
    top = grouping_frames(event.frames)[-1:] or [StackFrame()]
    for item in event.fingerprint:
        match = _VARIABLE.match(item.strip())
        name = match.group(1) if match else None
        if name == "default":
            parts.extend(default_components(event))
        elif name == "type":
            parts.append(event.exception_type or "")
        elif name == "module":
            parts.append(top[0].module or top[0].filename or "")
        elif name == "function":
            parts.append(top[0].function or "")
        elif name == "transaction":
            parts.append(event.transaction or "")
        elif name == "level":
            parts.append(event.level)
        elif name == "message":
            parts.append(mask_variables(event.message or event.exception_value or ""))
        else:
            parts.append(item)
    return parts


def fingerprint(event: ErrorEvent) -> str:
    """A 32-hex-digit digest of the grouping components."""
    joined = "\x1f".join(fingerprint_components(event))
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def title(event: ErrorEvent) -> str:
    if event.exception_type:
        text = (
            f"{event.exception_type}: {event.exception_value}"
            if event.exception_value
            else event.exception_type
        )
    elif event.message:
        text = event.message.strip().splitlines()[0] if event.message.strip() else event.message
    else:
        text = "<unlabeled event>"
    return text if len(text) <= TITLE_LENGTH else text[: TITLE_LENGTH - 1] + "…"


def culprit(event: ErrorEvent) -> str | None:
    """Where it happened: the innermost in-app frame, else the transaction."""
    frames = grouping_frames(event.frames)
    if frames:
        frame = frames[-1]
        return f"{frame.module or frame.filename or '?'} in {frame.function or '?'}"[:TITLE_LENGTH]
    return event.transaction[:TITLE_LENGTH] if event.transaction else None
