"""Token budgets: fit a prompt to a limit, and say in the prompt what was left out.

No tokenizer ships offline for every model, so sizes are estimated: words and numbers are split
the way BPE tokenizers roughly do (long words into several tokens, digits in groups of three,
each punctuation mark one token). The estimate errs high for English and close for logs, which
is the safe side; the real counts come back from the server and are what usage records.

Cutting silently would let the model reason as if it saw everything, so every cut leaves an
explicit notice in the prompt, e.g. ``[truncated: 37 of 120 log lines omitted to fit the token
budget]``, and the notices are returned so results can record them too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vigil.llm.client import Message

_PIECES = re.compile(r"[^\W\d_]+|\d+|[^\w\s]|_")
MESSAGE_OVERHEAD_TOKENS = 4  # role markers and separators per chat message


def estimate_tokens(text: str | None) -> int:
    if not text:
        return 0
    total = 0
    for piece in _PIECES.findall(text):
        if piece[0].isdigit():
            total += math.ceil(len(piece) / 3)
        elif piece[0].isalpha():
            total += math.ceil(len(piece) / 5) if len(piece) > 5 else 1
        else:
            total += 1
    return total


def estimate_messages_tokens(messages: Sequence[Message]) -> int:
    total = 0
    for message in messages:
        total += MESSAGE_OVERHEAD_TOKENS + estimate_tokens(message.content)
        for call in message.tool_calls:
            total += estimate_tokens(call.name) + estimate_tokens(call.raw_arguments)
    return total


def truncate_text(text: str, max_tokens: int) -> tuple[str, bool]:
    """``text`` cut at a word boundary to at most ``max_tokens`` (estimated); True if cut."""
    if estimate_tokens(text) <= max_tokens:
        return text, False
    if max_tokens <= 0:
        return "", True
    lo, hi = 0, len(text)
    # Binary search on the prefix length: the estimate is monotonic in the prefix.
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate_tokens(text[:mid]) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    cut = text[:lo]
    space = cut.rfind(" ")
    if space > len(cut) * 0.8:
        cut = cut[:space]
    return cut.rstrip() + " …", True


@dataclass(slots=True)
class Section:
    """A block of a prompt: a heading and items, most important first.

    When the prompt is over budget, sections with the lowest ``priority`` lose items from the
    end first, never going below ``min_items``; each item is also capped at
    ``max_item_tokens``.
    """

    title: str
    items: Sequence[str]
    priority: int = 0
    min_items: int = 1
    unit: str = "items"  # what an item is, for the notice: "log lines", "evidence items"
    max_item_tokens: int = 400


@dataclass(slots=True)
class Fitted:
    text: str
    notices: list[str] = field(default_factory=list)
    estimated_tokens: int = 0


def fit_sections(sections: Sequence[Section], budget_tokens: int) -> Fitted:
    """Render sections as ``## title`` blocks within ``budget_tokens``, cutting with notices."""
    notices: list[str] = []
    kept: list[list[str]] = []
    for section in sections:
        items = []
        for item in section.items:
            cut, was_cut = truncate_text(item, section.max_item_tokens)
            items.append(cut + " [truncated]" if was_cut else item)
        kept.append(items)
    sizes = [[estimate_tokens(i) + 1 for i in items] for items in kept]
    headers = [estimate_tokens(s.title) + 3 for s in sections]
    notice_allowance = 16  # tokens a notice line takes
    total = sum(headers) + sum(sum(s) for s in sizes)

    order = sorted(range(len(sections)), key=lambda i: sections[i].priority)
    for index in order:
        section = sections[index]
        while total > budget_tokens and len(kept[index]) > section.min_items:
            kept[index].pop()
            total -= sizes[index].pop()
        if len(kept[index]) < len(section.items):
            total += notice_allowance
        if total <= budget_tokens:
            break

    blocks: list[str] = []
    for index, section in enumerate(sections):
        lines = [f"## {section.title}"]
        if section.items:
            lines.extend(kept[index])
        else:
            lines.append("(none)")
        omitted = len(section.items) - len(kept[index])
        if omitted:
            notice = (
                f"[truncated: {omitted} of {len(section.items)} {section.unit} omitted "
                "to fit the token budget]"
            )
            lines.append(notice)
            notices.append(f"{section.title}: {omitted} of {len(section.items)} {section.unit} omitted")
        blocks.append("\n".join(lines))
    text = "\n\n".join(blocks)
    if estimate_tokens(text) > budget_tokens:
        # Even the minimum of every section does not fit: cut the text itself, visibly.
        text, _ = truncate_text(text, max(0, budget_tokens - notice_allowance))
        text += "\n[truncated: the rest of this prompt was cut to fit the token budget]"
        notices.append("prompt cut to fit the token budget")
    return Fitted(text, notices, estimate_tokens(text))


def fit_messages(messages: Sequence[Message], budget_tokens: int) -> tuple[list[Message], list[str]]:
    """A conversation within budget: oldest turns between the first system message and the last
    message are dropped first, then the longest remaining message is cut. Notices say so."""
    result = list(messages)
    notices: list[str] = []
    if estimate_messages_tokens(result) <= budget_tokens:
        return result, notices
    first = 1 if result and result[0].role == "system" else 0
    dropped = 0
    # Drop whole turns: a message plus the tool replies that answer it (OpenAI rejects orphaned
    # tool messages), never the last message, which is what the model must answer.
    while estimate_messages_tokens(result) > budget_tokens and len(result) - first > 1:
        end = first + 1
        while end < len(result) - 1 and result[end].role == "tool":
            end += 1
        if end >= len(result):
            break
        dropped += end - first
        del result[first:end]
    if dropped:
        note = f"[truncated: {dropped} earlier messages omitted to fit the token budget]"
        from vigil.llm.client import Message as _Message

        result.insert(first, _Message("system", note))
        notices.append(f"{dropped} earlier messages omitted")
    cut_already: set[int] = set()
    while estimate_messages_tokens(result) > budget_tokens:
        candidates = [i for i in range(len(result)) if i not in cut_already and result[i].content]
        if not candidates:
            break
        longest = max(candidates, key=lambda i: estimate_tokens(result[i].content))
        cut_already.add(longest)  # each message is cut at most once, so this always ends
        content = result[longest].content or ""
        size = estimate_tokens(content)
        excess = estimate_messages_tokens(result) - budget_tokens
        notice = f"\n[truncated: this message was cut from ~{size} tokens to fit the token budget]"
        target = max(0, size - excess - estimate_tokens(notice) - 1)
        cut, _ = truncate_text(content, target)
        result[longest] = replace(result[longest], content=cut + notice)
        notices.append(f"a {result[longest].role} message cut from ~{size} to ~{target} tokens")
    return result, notices
