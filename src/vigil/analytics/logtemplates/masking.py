"""Turning a log message into template units: built-in and user-supplied variable masking.

A message is split on whitespace into tokens; every token is masked on its own and then cut into
*units*: a ``key=value``
token becomes the two units ``key=`` and ``value`` so that a value made of letters (a user name,
a state) can later be learned as a variable while its key stays constant. Each unit string carries
its own trailing joiner (``" "`` when whitespace followed it, ``""`` when it was glued to the next
unit), so ``"".join(units)`` is the message text with whitespace normalised to single spaces.

Masking is deliberately conservative: it replaces only what is a variable in any log source
(numbers, addresses, paths, identifiers with long digit runs, ...). Words that merely *might* be
variables (``root``, ``node-D3``, ``U11``) are left alone; the miner learns them from how they vary.

Speed comes from two caches. Built-in masking decisions depend only on *where* the digits of a
message are, not on which digits they are, so the result for a whole message is cached under its
digit shape (every digit written as ``0``) as a plan: the units, and the character spans to cut
the parameters from. A plan is reused when the message's constant parts repeat too (``ssh2`` must
still read ``ssh2``). Messages whose shape is new go through the token path, which caches words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

WILDCARD = "<*>"
SOFT_DIGITS = "<#>"

# A private-use character stands for a value masked by a whole-line pattern, so that the token
# pass can see it as one opaque variable even when the match contained spaces.
_PLACEHOLDER = "\ue000"

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
_WEEKDAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"
_CLOCK = r"\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?"

# Patterns that may span whitespace, applied to the whole line (only when it contains a clock).
_LINE_PATTERNS: tuple[str, ...] = (
    # "Fri Jun 17 07:07:00 2005", "Jun 17 07:07:00", "Fri Jul 01 08:16:53 PDT 2005"
    rf"(?:{_WEEKDAY},? +)?{_MONTH} +\d{{1,2}},?(?: +\d{{4}})? +{_CLOCK}(?: +[A-Z]{{3,4}})?(?: +\d{{4}})?",
    # "17 Jun 2005 07:07:00"
    rf"\d{{1,2}} +{_MONTH} +\d{{4}} +{_CLOCK}",
    # "2005-06-17 07:07:00,123", "2005/06/17 07:07:00 +0200"
    rf"\d{{4}}[-/]\d{{1,2}}[-/]\d{{1,2}}[ T]+{_CLOCK}(?: ?(?:Z|[+-]\d{{2}}:?\d{{2}}))?",
)

# Per-token variable patterns, tried left to right at each position (first alternative wins).
# Group names matter: a match of a group listed in _NEEDS_DIGIT is a variable only if it
# contains a digit (a domain name or an identifier without digits is most likely constant).
_TOKEN_PATTERNS: tuple[tuple[str, str], ...] = (
    # The value of key=value, when it holds a digit, is one variable up to "," or ";"
    # ("steps=1514038440000##7007", "manager=com.example.c@8a2a501").
    ("kv", r"(?<==)(?=[^\s,;=]*\d)[^\s,;=]+"),
    ("url", r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>()\[\]{}]*[^\s'\"<>()\[\]{}.,;:]"),
    ("email", r"[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+"),
    ("uuid", r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    ("mac", r"(?<![\w:])(?:[0-9A-Fa-f]{2}[:\-]){5,}[0-9A-Fa-f]{2}(?![\w:])"),
    # ip, ip:port, /ip:port and Java's host/ip:port
    ("ipv4", r"(?:[A-Za-z][\w.\-]*/|/)?(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?![\d])(?!\.\w)"),
    ("ipv6", r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){2,7}(?::|[0-9a-fA-F]{1,4})(?:%\w+)?(?![\w:])"
             r"|(?<![\w:])(?:[0-9a-fA-F]{1,4}:){1,6}:(?:[0-9a-fA-F]{1,4}:?){1,6}(?![\w:])"),
    # host.domain:port, host-name-1:port (a bare word:number is usually key:value, not a host)
    ("hostport", r"(?<![\w.\-])(?:[A-Za-z0-9\-]+\.)+[A-Za-z0-9\-]+:\d{1,5}(?![\w])"
                 r"|(?<![\w.\-])[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)+:\d{1,5}(?![\w])"),
    ("fqdn", r"(?<![\w.\-])(?:[A-Za-z0-9\-]+\.){2,}[A-Za-z]{2,}(?![\w\-])"),
    ("path", r"(?<![\w./])(?:[A-Za-z]:)?(?:~|\.{1,2})?/[\w.\-*@+%~$]+(?:/[\w.\-*@+%~$]*)*"
             r"|(?<![\w])[A-Za-z]:\\[^\s'\"<>()\[\]{}]*"
             r"|(?<![\w./])[\w.\-]+(?:/[\w.\-]+){2,}/?"),
    ("ident", r"(?<![\w\-])[A-Za-z][A-Za-z0-9]*_[\w\-]*"),
    ("version", r"(?<![\w.])v\d+(?:\.\d+)+[a-z]*"),
    ("hex", r"(?<![\w.])[0-9a-fA-F]{8,}(?![\w])"),
    ("boolean", r"(?<![\w.\-])(?:true|false|null|TRUE|FALSE|NULL|True|False)(?![\w\-])"),
    ("number", r"(?:^[<>~]|(?<![\w.+\-])[-+](?=\d)|(?<![\w]))(?:0[xX][0-9a-fA-F]+|\d[\w.:\-]*)"),
)
_NEEDS_DIGIT = frozenset({"fqdn", "ident", "hex"})
# Identifiers such as attempt_1445144423722_0020_m_000000_0 are variables; jk2_init is not.
_LONG_DIGIT_RUN = re.compile(r"\d{3,}")
_DIGIT = re.compile(r"\d")
# Characters after which a number-like match may not end (they belong to the text around it).
_TRAILING = ".:-"
_CLOSING = ")]}>'\".:"
# "<*>.<*>" is one variable (a version, a time with its date), not two.
_JOINABLE = frozenset(".:/")

# A quick filter: tokens without any of these characters cannot contain a built-in variable.
_MAYBE_VARIABLE = re.compile(r"[\d/@\\]|true|false|null|TRUE|FALSE|NULL|True|False")

# Abbreviated units that belong to the number before them ("0 bytes", "<1 sec", "12 ms").
# Spelled-out units ("seconds") are kept: they read as prose and labellers keep them.
_UNIT_WORDS = frozenset(
    {"bytes", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib", "ms", "sec", "secs", "us", "ns",
     "min", "mins"}
)
# Single letters are units only in their usual case ("5 B", "3 s"; not "5 b").
_UNIT_LETTERS = frozenset({"B", "s"})
_EMPTY_VALUES = frozenset({"()", "[]", "{}", "<>"})
_KEY_VALUE = re.compile(r"^([^=\s]*[A-Za-z][^=\s]*=)(.+)$")


_DIGIT_RUN = re.compile(r"\d+")
# Building NamedTuples through tuple.__new__ skips their Python-level __new__ (a hot path).
_new_tuple = tuple.__new__
_SIMPLE_NUMBER = re.compile(
    r"[(\[{]?(?P<value>[-+]?(?:0[xX][0-9a-fA-F]+|\d[0-9a-fA-F]*(?:\.\d+)?))[)\]},;:.]*"
)
_SIMPLE_PATH = re.compile(r"[(\[{'\"]?(?P<value>/[A-Za-z_][\w.\-*@+%~$]*(?:/[\w.\-*@+%~$]*)+)[)\]},;:'\"]*")
_SHAPE = bytes.maketrans(b"123456789", b"000000000")
# Cheap guard for the whole-line timestamp patterns: they all contain "d:dd:dd".
_CLOCK_RE = re.compile(r"\d:\d\d:\d\d")
_PLACEHOLDER_RUN = re.compile(_PLACEHOLDER + "+")
_WILDCARD_UNIT = WILDCARD + " "
_BARE_WILDCARD = (_WILDCARD_UNIT,)
_OPEN_WILDCARD = ("(" + _WILDCARD_UNIT,)

Span = tuple[int, int]
# A token's units (each with its trailing joiner), their keys, the variable spans relative to the
# token, and whether the token is a unit word ("bytes") that may fold into the number before it.
_TokenEntry = tuple[tuple[str, ...], tuple[str, ...], tuple[Span, ...], bool]
# A message plan: units, keys, parameter spans, and the constant digit runs it was built with.
_Plan = tuple[tuple[str, ...], tuple[str, ...], tuple[Span, ...], tuple[tuple[int, int, str], ...]]


@dataclass(frozen=True, slots=True)
class MaskPattern:
    """A user-supplied variable pattern: every match of ``regex`` in a message becomes ``<*>``.

    The pattern is applied to the whole message before tokenisation, so it may span spaces.
    ``name`` only documents intent (it is kept in snapshots).
    """

    name: str
    regex: str


class Masked(NamedTuple):
    """A message cut into template units, with the values its ``<*>`` units stand for.

    ``key`` equals ``units`` except that digit runs left in unmasked words are replaced by
    ``<#>``: ``bglio78`` and ``bglio617`` (numbered names) share the key ``bglio<#>``, while
    ``ee0`` and ``alt0`` stay apart. The miner groups by ``key`` and shows ``units``.
    """

    units: tuple[str, ...]
    key: tuple[str, ...]
    params: tuple[str, ...]


class Masker:
    """Masks the variables of a message and cuts it into units (see the module docstring)."""

    def __init__(self, extra_patterns: Sequence[MaskPattern] = (), cache_size: int = 50_000) -> None:
        self._extra = tuple(extra_patterns)
        self._line_re = re.compile("|".join(f"(?:{p})" for p in _LINE_PATTERNS))
        self._user_re = (
            re.compile("|".join(f"(?:{p.regex})" for p in self._extra)) if self._extra else None
        )
        self._token_re = re.compile("|".join(f"(?P<{name}>{rx})" for name, rx in _TOKEN_PATTERNS))
        self._cache_size = cache_size
        self._tokens: dict[str, _TokenEntry] = {}
        self._shapes: dict[bytes, list[Span]] = {}
        self._shaped: dict[bytes, _TokenEntry] = {}
        self._plans: dict[bytes, _Plan] = {}

    @property
    def extra_patterns(self) -> tuple[MaskPattern, ...]:
        return self._extra

    def mask(self, message: str) -> Masked:
        work = message
        if self._user_re is not None:
            # User patterns may care about exact digits, so they run before the shape is taken.
            work = self._user_re.sub(_blank, message)
        shape = work.encode("utf-8", "surrogatepass").translate(_SHAPE)
        plan = self._plans.get(shape)
        if plan is not None:
            units, keys, spans, constants = plan
            if not constants or all(message[a:b] == text for a, b, text in constants):
                return _new_tuple(Masked, (units, keys, tuple([message[a:b] for a, b in spans])))
        if _CLOCK_RE.search(work):
            work = self._line_re.sub(_blank, work)
        units_list, keys_list, spans_list = self._mask_tokens(work)
        plan = (tuple(units_list), tuple(keys_list), tuple(spans_list), _constant_digits(message, spans_list))
        if len(self._plans) >= self._cache_size:
            self._plans.clear()
        self._plans[shape] = plan
        return Masked(plan[0], plan[1], tuple([message[a:b] for a, b in spans_list]))

    def _mask_tokens(self, work: str) -> tuple[list[str], list[str], list[Span]]:
        units: list[str] = []
        keys: list[str] = []
        spans: list[Span] = []
        cached = self._tokens.get
        position = 0
        # Folding "0 bytes", "<1 sec" and "6147 bytes (6.00 KB)" into one variable: token
        # indexes of the last bare number, of a number that took its unit, and of a "(<*>" after it.
        bare = folded = echo = -2
        number_units = number_spans = 0
        for index, token in enumerate(work.split()):
            start = work.find(token, position)
            position = start + len(token)
            entry = cached(token) or self._cached_entry(token)
            token_units = entry[0]
            if entry[3]:
                # Punctuation after the unit stays in the template ("<*>, got", "free <*>)"),
                # except the ")" that closes an echo "(6.00 KB)".
                closes_echo = echo == index - 1 and token.rstrip(",;:.")[-1] == ")"
                word = token.rstrip(",;:.") if closes_echo else token.rstrip(",;:.)]}'\"")
                if bare == index - 1 or closes_echo:
                    trailing = token[len(word) :]
                    spans[number_spans] = (spans[number_spans][0], position - len(trailing))
                    del units[number_units + 1 :], keys[number_units + 1 :], spans[number_spans + 1 :]
                    units[number_units] = keys[number_units] = WILDCARD + trailing + " "
                    if bare == index - 1:
                        folded = index
                    continue
            if token_units is _BARE_WILDCARD:
                bare = index
                number_units = len(units)
                number_spans = len(spans)
            elif token_units is _OPEN_WILDCARD and folded == index - 1:
                echo = index
            units += token_units
            keys += entry[1]
            if entry[2]:
                for a, b in entry[2]:
                    spans.append((start + a, start + b))
        if units:
            units[-1] = units[-1][:-1]
            keys[-1] = keys[-1][:-1]
        return units, keys, spans

    def _cached_entry(self, token: str) -> _TokenEntry:
        shape = token.encode("utf-8", "surrogatepass").translate(_SHAPE)
        entry = self._shaped.get(shape)
        if entry is not None:
            return entry
        entry = self._token_entry(token)
        if entry[2] and not _DIGIT.search("".join(entry[0])):
            # Variables with no digit left around them ("blk_<*>", "<*>:"): every token of this
            # digit shape masks the same way, so remember the shape rather than the one-off token.
            if len(self._shaped) >= self._cache_size:
                self._shaped.clear()
            self._shaped[shape] = entry
        elif not entry[2]:
            if len(self._tokens) >= self._cache_size:
                self._tokens.clear()
            self._tokens[token] = entry
        return entry

    def _token_entry(self, token: str) -> _TokenEntry:
        token_units, spans = self._mask_token(token)
        units = (*token_units[:-1], token_units[-1] + " ")
        # Shared tuples let the token loop recognise a bare number or "(<*>" by identity.
        if units == _BARE_WILDCARD:
            units = _BARE_WILDCARD
        elif units == _OPEN_WILDCARD:
            units = _OPEN_WILDCARD
        keys = units if not _DIGIT.search("".join(units)) else tuple(_soft_key(u) for u in units)
        word = token.rstrip(",;:.").rstrip(")")
        return units, keys, tuple(spans), word in _UNIT_LETTERS or word.lower() in _UNIT_WORDS

    def _mask_token(self, token: str) -> tuple[tuple[str, ...], list[Span]]:
        """Mask one whitespace-free token: its units (without the trailing joiner) and spans."""
        if token in _EMPTY_VALUES:
            # A bare "()" or "[]" is a value that happens to be empty ("from 1.2.3.4 () at").
            return (token[0] + WILDCARD + token[1],), [(1, 1)]
        has_placeholder = _PLACEHOLDER in token
        if not has_placeholder and not _MAYBE_VARIABLE.search(token):
            return _split_key_value(token), []
        simple = None
        if not has_placeholder:
            simple = _SIMPLE_NUMBER.fullmatch(token) or _SIMPLE_PATH.fullmatch(token)
        if simple is not None:
            # The common one-off shapes (0x1b70b860, 003a90fc, (35591533), /a/b/c:) match no other
            # pattern first, so the general scan would find exactly this span.
            spans = [simple.span("value")]
        elif has_placeholder:
            spans = self._find_spans(token)
            spans += [m.span() for m in _PLACEHOLDER_RUN.finditer(token)]
            spans = _union(spans)
        else:
            shape = token.encode("utf-8", "surrogatepass").translate(_SHAPE)
            cached = self._shapes.get(shape)
            if cached is None:
                # Same spans for every token of this digit shape: scan the shape itself.
                cached = self._find_spans(shape.decode("utf-8", "surrogatepass"))
                if len(self._shapes) >= self._cache_size:
                    self._shapes.clear()
                self._shapes[shape] = cached
            spans = cached
        if len(spans) == 1 and spans[0] == (0, len(token)):
            return (WILDCARD,), spans
        pieces: list[str] = []
        position = 0
        for start, end in spans:
            pieces.append(token[position:start])
            pieces.append(WILDCARD)
            position = end
        pieces.append(token[position:])
        return _split_key_value("".join(pieces)), spans

    def _find_spans(self, token: str) -> list[Span]:
        spans: list[Span] = []
        for match in self._token_re.finditer(token):
            kind = match.lastgroup
            start, end = match.span()
            text = match.group(0)
            if kind in _NEEDS_DIGIT:
                if not _DIGIT.search(text):
                    continue
                if kind == "ident" and not _LONG_DIGIT_RUN.search(text):
                    continue
            if kind == "number" or kind == "version":
                while end > start + 1 and token[end - 1] in _TRAILING:
                    end -= 1
            elif kind == "kv":
                while end > start + 1 and token[end - 1] in _CLOSING:
                    end -= 1
            if spans and start - spans[-1][1] <= 1 and (
                start == spans[-1][1] or token[start - 1] in _JOINABLE
            ):
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
        return spans


def _blank(match: re.Match[str]) -> str:
    # Same length as the match, so offsets into the original message stay valid.
    return _PLACEHOLDER * (match.end() - match.start())


def _union(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _constant_digits(message: str, spans: list[Span]) -> tuple[tuple[int, int, str], ...]:
    """Digit runs outside every variable span: a plan only fits messages that repeat them."""
    found = []
    index = 0
    for match in _DIGIT_RUN.finditer(message):
        start, end = match.span()
        while index < len(spans) and spans[index][1] <= start:
            index += 1
        if index < len(spans) and spans[index][0] <= start:
            continue
        found.append((start, end, match.group()))
    return tuple(found)


_SOFT_KEYS: dict[str, str] = {}


def _soft_key(unit: str) -> str:
    key = _SOFT_KEYS.get(unit)
    if key is None:
        if _DIGIT.search(unit):
            key = _DIGIT_RUN.sub(SOFT_DIGITS, unit.replace(WILDCARD, "\x00")).replace("\x00", WILDCARD)
        else:
            key = unit
        if len(_SOFT_KEYS) > 50_000:
            _SOFT_KEYS.clear()
        _SOFT_KEYS[unit] = key
    return key


def _split_key_value(token: str) -> tuple[str, ...]:
    if "=" not in token:
        return (token,)
    match = _KEY_VALUE.match(token)
    if match is None:
        return (token,)
    return match.group(1), match.group(2)


