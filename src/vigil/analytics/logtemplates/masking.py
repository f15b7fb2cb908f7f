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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import add, itemgetter
from typing import Any, NamedTuple

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
_ASCII_DIGIT = re.compile(r"[0-9]")
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
_BOOLEANS = frozenset({"true", "false", "null", "TRUE", "FALSE", "NULL", "True", "False"})

# What a token means to the unit folding of "0 bytes" / "6147 bytes (6.00 KB)".
_PLAIN, _UNIT_WORD, _BARE_NUMBER, _OPEN_NUMBER = 0, 1, 2, 3

Span = tuple[int, int]
# A token's units (each with its trailing joiner), their keys, the variable spans in the token,
# and its kind for unit folding (_PLAIN, _UNIT_WORD, _BARE_NUMBER or _OPEN_NUMBER).
_TokenEntry = tuple[tuple[str, ...], tuple[str, ...], tuple[Span, ...], int]
# A message's units, keys and parameter references (see Masker._layout).
_Layout = tuple[
    tuple[str, ...],
    tuple[str, ...],
    tuple[tuple[int, int, int, int], ...],
    tuple[tuple[int, int, int | None], ...] | None,
]


class _Plan(NamedTuple):
    """How every message of one digit shape masks: its units and keys, a getter that cuts the
    parameters out of a message (``None`` without parameters), and a getter for the parts outside
    the parameters that hold digits, with their values when the plan was made (a message whose
    digits differ there, e.g. ``ssh3`` for ``ssh2``, needs a plan of its own)."""

    units: tuple[str, ...]
    keys: tuple[str, ...]
    params_of: Callable[[str], Any] | None
    param_count: int
    constants_of: Callable[[str], Any] | None
    constants: Any


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
    """Masks the variables of a message and cuts it into units (see the module docstring).

    Every cache lives in the instance and holds at most ``cache_size`` entries (a full cache is
    emptied and refills), so a fresh masker starts cold and a long-running one stays bounded.
    """

    def __init__(self, extra_patterns: Sequence[MaskPattern] = (), cache_size: int = 50_000) -> None:
        self._extra = tuple(extra_patterns)
        self._line_re = re.compile("|".join(f"(?:{p})" for p in _LINE_PATTERNS))
        self._user_re = (
            re.compile("|".join(f"(?:{p.regex})" for p in self._extra)) if self._extra else None
        )
        self._cache_size = max(cache_size, 1)
        # message digit shape -> plan
        self._plans: dict[bytes, _Plan] = {}
        # Token entries are numbered; a token finds its number by its digit shape when its entry
        # is the same for every token of that shape, otherwise by its text (``ssh2``).
        self._entries: list[_TokenEntry] = []
        self._entry_ids: dict[_TokenEntry, int] = {}
        self._shape_ids: dict[bytes, int] = {}
        self._token_ids: dict[str, int] = {}
        # entry numbers of a message's tokens -> its layout
        self._layouts: dict[tuple[int, ...], _Layout] = {}
        # token digit shape -> variable spans
        self._spans: dict[bytes, list[Span]] = {}
        self._soft_keys: dict[str, str] = {}

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
        if plan is not None and plan is not _SEEN_ONCE:
            units, keys, params_of, count, constants_of, constants = plan
            if constants_of is None or constants_of(message) == constants:
                if count > 1:
                    params = params_of(message)  # type: ignore[misc]
                elif count:
                    params = (params_of(message),)  # type: ignore[misc]
                else:
                    params = ()
                return _new_tuple(Masked, (units, keys, params))
        return self._mask_new_shape(message, work, shape, plan is not None)

    def _mask_new_shape(self, message: str, work: str, shape: bytes, seen: bool) -> Masked:
        """Mask a message whose shape has no plan that fits. A plan is made the second time a
        shape comes (most shapes come once: a plan would cost more than it saves)."""
        if len(self._shape_ids) + len(self._token_ids) + len(self._layouts) >= self._cache_size:
            self._clear_token_caches()
        token_shapes = shape
        # The timestamp patterns all hold "d:dd:dd"; in an ASCII message's shape that reads "0:00:00".
        if b"0:00:00" in shape if work.isascii() else _CLOCK_RE.search(work) is not None:
            work = self._line_re.sub(_blank, work)
            token_shapes = work.encode("utf-8", "surrogatepass").translate(_SHAPE)
        tokens = work.split()
        shapes = token_shapes.split()
        if len(shapes) != len(tokens):
            # Whitespace that bytes.split does not know (U+00A0, U+001C...): shape each token.
            shapes = [token.encode("utf-8", "surrogatepass").translate(_SHAPE) for token in tokens]
        ids: list[Any] = list(map(self._shape_ids.get, shapes))
        if None in ids:
            token_ids = self._token_ids
            for index, entry_id in enumerate(ids):
                if entry_id is None:
                    token = tokens[index]
                    entry_id = token_ids.get(token)
                    ids[index] = self._new_entry_id(token, shapes[index]) if entry_id is None else entry_id
        key: tuple[int, ...] = tuple(ids)
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layouts[key] = self._layout(key)
        units, keys, refs, token_refs = layout
        if not seen:
            self._plans[shape] = _SEEN_ONCE
            if token_refs is not None and work is message:
                # Every parameter lies inside one token: cut it out of the token.
                return _new_tuple(Masked, (units, keys, tuple([tokens[i][a:b] for i, a, b in token_refs])))
        spans: list[Span] = []
        if refs:
            lengths = list(map(len, tokens))
            if sum(lengths) + len(lengths) - 1 == len(work):
                # One whitespace character between tokens: starts follow from the lengths.
                starts = list(accumulate(map(add, lengths, repeat(1)), initial=0))
            else:
                starts = []
                position = 0
                for token in tokens:
                    position = work.find(token, position)
                    starts.append(position)
                    position += len(token)
            spans = [(starts[i] + a, starts[j] + lengths[j] + b) for i, a, j, b in refs]
        if seen:
            self._remember_plan(message, shape, units, keys, spans)
        return _new_tuple(Masked, (units, keys, tuple([message[a:b] for a, b in spans])))

    def _remember_plan(
        self, message: str, shape: bytes, units: tuple[str, ...], keys: tuple[str, ...], spans: list[Span]
    ) -> None:
        params_of = itemgetter(*[slice(a, b) for a, b in spans]) if spans else None
        # Outside the parameters, a message of the same shape differs only in its digits.
        segments = []
        end = 0
        if message.isascii():
            # Positions in the shape are positions in the message, and every digit reads "0".
            for start, stop in spans:
                if start > end and shape.find(b"0", end, start) >= 0:
                    segments.append(slice(end, start))
                end = stop
            if shape.find(b"0", end) >= 0:
                segments.append(slice(end, len(message)))
        else:
            for start, stop in spans:
                if start > end and _ASCII_DIGIT.search(message, end, start):
                    segments.append(slice(end, start))
                end = stop
            if _ASCII_DIGIT.search(message, end):
                segments.append(slice(end, len(message)))
        constants_of = itemgetter(*segments) if segments else None
        constants = constants_of(message) if constants_of is not None else None
        if len(self._plans) >= self._cache_size:
            self._plans.clear()
        self._plans[shape] = _new_tuple(_Plan, (units, keys, params_of, len(spans), constants_of, constants))

    def _clear_token_caches(self) -> None:
        # Entry numbers are only meaningful together, so these caches are emptied together.
        self._entries.clear()
        self._entry_ids.clear()
        self._shape_ids.clear()
        self._token_ids.clear()
        self._layouts.clear()
        self._spans.clear()
        self._soft_keys.clear()

    def _new_entry_id(self, token: str, shape: bytes) -> int:
        size = len(token)
        if token.isalpha() and token not in _BOOLEANS:
            # A plain word (most tokens): no pattern can match inside it.
            word_unit = (token + " ",)
            kind = _UNIT_WORD if token in _UNIT_LETTERS or token.lower() in _UNIT_WORDS else _PLAIN
            return self._entry_id((word_unit, word_unit, (), kind), token, shape)
        simple = _SIMPLE_NUMBER.fullmatch(token) or _SIMPLE_PATH.fullmatch(token)
        if simple is not None:
            # A lone number, hex value or path with brackets or punctuation around it: what
            # _token_entry would find, without its general scan (one-off hex values are common).
            start, end = simple.span("value")
            unit = token[:start] + WILDCARD + token[end:] + " "
            units: tuple[str, ...] = (unit,)
            keys = units
            kind = _PLAIN
            if units == _BARE_WILDCARD:
                kind = _BARE_NUMBER
            elif units == _OPEN_WILDCARD:
                kind = _OPEN_NUMBER
            return self._entry_id((units, keys, ((start, end - size),), kind), token, shape)
        units, keys, spans, kind = self._token_entry(token, simple_tried=True)
        # Span ends counted from the token's end: "(123)" and "(45678)" share one entry.
        entry = (units, keys, tuple([(a, b - size) for a, b in spans]), kind)
        if _DIGIT.search("".join(units)):
            # Digits outside the variables ("ssh2"): other tokens of this shape read differently.
            return self._entry_id(entry, token, None)
        return self._entry_id(entry, token, shape)

    def _entry_id(self, entry: _TokenEntry, token: str, shape: bytes | None) -> int:
        """Number ``entry`` and file it under ``shape``, or under ``token`` if ``shape`` is None."""
        entry_id = self._entry_ids.get(entry)
        if entry_id is None:
            entry_id = self._entry_ids[entry] = len(self._entries)
            self._entries.append(entry)
        if shape is None:
            self._token_ids[token] = entry_id
        else:
            self._shape_ids[shape] = entry_id
        return entry_id

    def _layout(self, ids: tuple[int, ...]) -> _Layout:
        """Units, keys and parameter references of a message whose tokens have these entries.

        A reference ``(i, a, j, b)`` is the span from ``a`` characters after the start of token
        ``i`` to ``b`` (<= 0) characters from the end of token ``j``. When every parameter lies
        in one token, they are also given as slices ``(i, a, b or None)`` of their tokens.
        """
        entries = self._entries
        units: list[str] = []
        keys: list[str] = []
        refs: list[tuple[int, int, int, int]] = []
        # Folding "0 bytes", "<1 sec" and "6147 bytes (6.00 KB)" into one variable: token
        # indexes of the last bare number, of a number that took its unit, and of a "(<*>" after it.
        bare = folded = echo = -2
        number_units = number_refs = 0
        for index, entry_id in enumerate(ids):
            entry_units, entry_keys, entry_spans, kind = entries[entry_id]
            if kind == _UNIT_WORD:
                token = entry_units[0][:-1]  # a unit word is one unit: the token itself
                # Punctuation after the unit stays in the template ("<*>, got", "free <*>)"),
                # except the ")" that closes an echo "(6.00 KB)".
                closes_echo = echo == index - 1 and token.rstrip(",;:.")[-1] == ")"
                if bare == index - 1 or closes_echo:
                    word = token.rstrip(",;:.") if closes_echo else token.rstrip(",;:.)]}'\"")
                    trailing = token[len(word) :]
                    first = refs[number_refs]
                    refs[number_refs] = (first[0], first[1], index, -len(trailing))
                    del units[number_units + 1 :], keys[number_units + 1 :], refs[number_refs + 1 :]
                    units[number_units] = keys[number_units] = WILDCARD + trailing + " "
                    if bare == index - 1:
                        folded = index
                    continue
            elif kind == _BARE_NUMBER:
                bare = index
                number_units = len(units)
                number_refs = len(refs)
            elif kind == _OPEN_NUMBER and folded == index - 1:
                echo = index
            units += entry_units
            keys += entry_keys
            for a, b in entry_spans:
                refs.append((index, a, index, b))
        if units:
            units[-1] = units[-1][:-1]
            keys[-1] = keys[-1][:-1]
        unit_tuple = tuple(units)
        token_refs = None
        if all(i == j for i, _, j, _ in refs):
            token_refs = tuple([(i, a, b if b < 0 else None) for i, a, _, b in refs])
        return unit_tuple, unit_tuple if keys == units else tuple(keys), tuple(refs), token_refs

    def _token_entry(self, token: str, simple_tried: bool = False) -> _TokenEntry:
        token_units, spans = self._mask_token(token, simple_tried)
        units = (*token_units[:-1], token_units[-1] + " ")
        if units == _BARE_WILDCARD:
            return _BARE_WILDCARD, _BARE_WILDCARD, tuple(spans), _BARE_NUMBER
        if units == _OPEN_WILDCARD:
            return _OPEN_WILDCARD, _OPEN_WILDCARD, tuple(spans), _OPEN_NUMBER
        keys = units if not _DIGIT.search("".join(units)) else tuple(self._soft_key(u) for u in units)
        word = token.rstrip(",;:.").rstrip(")")
        unit_word = word in _UNIT_LETTERS or word.lower() in _UNIT_WORDS
        return units, keys, tuple(spans), _UNIT_WORD if unit_word else _PLAIN

    def _mask_token(self, token: str, simple_tried: bool = False) -> tuple[tuple[str, ...], list[Span]]:
        """Mask one whitespace-free token: its units (without the trailing joiner) and spans.

        ``simple_tried``: the caller knows the token is no lone number or path (_SIMPLE_*).
        """
        if token in _EMPTY_VALUES:
            # A bare "()" or "[]" is a value that happens to be empty ("from 1.2.3.4 () at").
            return (token[0] + WILDCARD + token[1],), [(1, 1)]
        has_placeholder = _PLACEHOLDER in token
        if not has_placeholder and not _MAYBE_VARIABLE.search(token):
            return _split_key_value(token), []
        simple = None
        if not has_placeholder and not simple_tried:
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
            cached = self._spans.get(shape)
            if cached is None:
                # Same spans for every token of this digit shape: scan the shape itself.
                cached = self._spans[shape] = self._find_spans(shape.decode("utf-8", "surrogatepass"))
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
        scanner = _scanner(_possible_patterns(token))
        if scanner is None:
            return []
        spans: list[Span] = []
        for match in scanner.finditer(token):
            kind = match.lastgroup
            start, end = match.span()
            if kind in _NEEDS_DIGIT:
                text = match.group(0)
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

    def _soft_key(self, unit: str) -> str:
        key = self._soft_keys.get(unit)
        if key is None:
            if _DIGIT.search(unit):
                key = _DIGIT_RUN.sub(SOFT_DIGITS, unit.replace(WILDCARD, "\x00")).replace("\x00", WILDCARD)
            else:
                key = unit
            self._soft_keys[unit] = key
        return key


# Marks a message shape seen once, without a plan yet (see Masker._mask_new_shape).
_SEEN_ONCE: Any = object()

# Compiled scanners by which token patterns they hold. This is compiled code, not data: a scanner
# depends only on its key (one of at most 2**15), like the entries of the re module's own cache.
_SCANNERS: dict[tuple[bool, ...], re.Pattern[str] | None] = {}


def _scanner(possible: tuple[bool, ...]) -> re.Pattern[str] | None:
    """The token patterns flagged in ``possible`` as one alternation (``None`` if there are none).

    Leaving out patterns that cannot match anywhere in a token changes no match (the scan still
    takes the leftmost match, the first pattern first) and makes the scan several times cheaper.
    """
    try:
        return _SCANNERS[possible]
    except KeyError:
        pass
    enabled = [f"(?P<{name}>{rx})" for (name, rx), on in zip(_TOKEN_PATTERNS, possible, strict=True) if on]
    scanner = re.compile("|".join(enabled)) if enabled else None
    _SCANNERS[possible] = scanner
    return scanner


def _possible_patterns(token: str) -> tuple[bool, ...]:
    """For each of _TOKEN_PATTERNS, in order: whether the token has what a match needs."""
    colon = ":" in token
    dash = "-" in token
    dots = token.count(".")
    size = len(token)
    return (
        "=" in token,  # kv: a value after "="
        "://" in token,  # url
        "@" in token,  # email
        dash and size >= 36,  # uuid
        size >= 17 and (colon or dash),  # mac
        dots >= 3,  # ipv4
        colon,  # ipv6
        colon,  # hostport
        dots >= 2,  # fqdn
        "/" in token or "\\" in token,  # path
        "_" in token,  # ident
        dots > 0 and "v" in token,  # version
        size >= 8,  # hex
        "ru" in token or "RU" in token or "als" in token or "ALS" in token or "ul" in token or "UL" in token,
        _DIGIT.search(token) is not None,  # number
    )


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


def _split_key_value(token: str) -> tuple[str, ...]:
    if "=" not in token:
        return (token,)
    match = _KEY_VALUE.match(token)
    if match is None:
        return (token,)
    return match.group(1), match.group(2)
