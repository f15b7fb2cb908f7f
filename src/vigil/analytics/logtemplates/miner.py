"""The online template miner.

How it works, in three layers:

1. **Masking** (:mod:`.masking`): numbers, addresses, paths, ids... become ``<*>`` and the message
   is cut into units. Messages with the same masked units form a *leaf*; most lines of most logs
   already land in the right leaf here.
2. **Exact templates**: every new leaf starts as its own template (its units are the key).
3. **Learning word variables**: templates of the same length that differ at exactly one position
   are *siblings*. When one position has taken ``variable_threshold`` distinct word values across
   siblings, that position is a variable: the siblings merge into the oldest one (which keeps its
   id; the others point to it as their successor) and the position becomes ``<*>`` (keeping any
   common prefix/suffix, e.g. ``node-<*>``). Later lines with any value there match directly.
   The first unit of a message is never learned as a variable (it names the event far more often
   than it carries data), and a position is only learned when the rest of the message still has a
   constant word to anchor it, so lines such as ``normal`` / ``warning`` never collapse together.

Everything is deterministic for a given input order, and a snapshot holds the whole learned state
(caches excluded), so restoring and continuing gives the same ids as never having stopped.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal, NamedTuple

from vigil.analytics.logtemplates.masking import SOFT_DIGITS, WILDCARD, Masked, Masker, MaskPattern

Change = Literal["new", "changed", "none"]

# Building NamedTuples through tuple.__new__ skips their Python-level __new__ (a hot path).
_new_tuple = tuple.__new__

SNAPSHOT_VERSION = 1
# Message patterns (masked keys) remembered per miner; the oldest is forgotten beyond this. A
# forgotten pattern costs one template lookup when it comes back (and maps to the same template).
LEAF_LIMIT = 50_000
# Delimiters at which a learned variable may keep a common prefix or suffix ("node-<*>").
_AFFIX_DELIMITERS = frozenset("-_.:=/#@([{<'\"")
_AFFIX_CLOSERS = frozenset(")]}>'\".,;:")


@dataclass(frozen=True, slots=True)
class MinerConfig:
    """Settings of a :class:`TemplateMiner`; the defaults are meant for every log source.

    - ``extra_masks``: additional variable patterns (regular expressions over the whole message),
      applied before the built-in masking.
    - ``variable_threshold``: how many distinct word values one position must show across
      otherwise identical templates before it is treated as a variable.
    - ``message_cache_size``: exact messages remembered to skip masking on repeats.
    """

    extra_masks: tuple[MaskPattern, ...] = ()
    variable_threshold: int = 4
    message_cache_size: int = 20_000

    def to_dict(self) -> dict[str, Any]:
        return {
            "extra_masks": [{"name": m.name, "regex": m.regex} for m in self.extra_masks],
            "variable_threshold": self.variable_threshold,
            "message_cache_size": self.message_cache_size,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MinerConfig:
        return cls(
            extra_masks=tuple(MaskPattern(m["name"], m["regex"]) for m in data.get("extra_masks", [])),
            variable_threshold=int(data.get("variable_threshold", 4)),
            message_cache_size=int(data.get("message_cache_size", 20_000)),
        )


class Match(NamedTuple):
    """The result of :meth:`TemplateMiner.add` or :meth:`TemplateMiner.match`.

    ``parameters`` are the strings the ``<*>`` of ``template`` stand for, in order. ``change`` is
    ``"new"`` when this message created the template, ``"changed"`` when it made the template's
    text change (a merge or a new variable), otherwise ``"none"``.
    """

    template_id: int
    template: str
    parameters: tuple[str, ...]
    change: Change = "none"


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    """One entry of :meth:`TemplateMiner.templates`. ``successor`` is set on merged-away templates."""

    template_id: int
    template: str
    count: int
    successor: int | None


class _Template:
    __slots__ = (
        "affixes", "count", "key", "learned", "siblings", "soft", "successor", "template_id", "text",
        "units", "version",
    )

    def __init__(
        self,
        template_id: int,
        units: tuple[str, ...],
        key: tuple[str, ...],
        learned: tuple[int, ...] = (),
        affixes: dict[int, tuple[str, str]] | None = None,
        count: int = 0,
        successor: int | None = None,
        version: int = 0,
    ) -> None:
        self.template_id = template_id
        self.key = key  # lookup key; learned positions hold <*> + joiner
        self.learned = learned  # positions learned as variables, ascending
        self.affixes = affixes or {}
        self.count = count
        self.successor = successor
        self.version = version
        self.siblings: list[tuple[Any, ...]] = []  # the sibling keys it is registered under
        self.set_units(units)

    def set_units(self, units: tuple[str, ...]) -> None:
        # Display units: learned positions hold prefix<*>suffix + joiner.
        self.units = units
        self.text = "".join(units)
        # Numbered names shown literally, to be checked against every new value.
        self.soft = tuple(
            i for i, unit in enumerate(self.key) if SOFT_DIGITS in unit and i not in self.learned
        )


# Stands for "no template yet" in a leaf: its version never equals a leaf's version.
_UNSET = _Template(0, (), (), version=-2)


class _Leaf:
    """A message pattern's template, and what lets the next message of the pattern skip ``_add``.

    After ``_add`` has handled a message of this pattern, ``template`` is the template it resolved
    to at ``version``. While that version stands, another message of the pattern changes nothing
    unless it differs from ``watched`` at the ``watch`` positions: numbered names still shown
    literally (they would become variables) and learned variables with a prefix or suffix (a value
    that does not fit would widen them). Everywhere else a pattern's units are fixed by its key.
    """

    __slots__ = ("template", "template_id", "version", "watch", "watched")

    def __init__(self, template_id: int) -> None:
        self.template_id = template_id  # as first found; resolve it for the current template
        self.template = _UNSET
        self.version = -1
        self.watch: Callable[[tuple[str, ...]], Any] | None = None
        self.watched: Any = None

    def arm(self, template: _Template, units: tuple[str, ...]) -> None:
        self.template = template
        self.version = template.version
        positions = (*template.soft, *sorted(template.affixes))
        if positions:
            expected = list(units)
            for position in template.soft:
                expected[position] = template.units[position]
            self.watch = itemgetter(*positions)
            self.watched = self.watch(expected)
        else:
            self.watch = self.watched = None

    def forget(self) -> None:
        # Cached messages check that their leaf still points at their template.
        self.template = _UNSET
        self.version = -1


class TemplateMiner:
    """Online, incremental log template miner. See the package docstring for the API."""

    def __init__(self, config: MinerConfig | None = None) -> None:
        self.config = config or MinerConfig()
        self._masker = Masker(self.config.extra_masks)
        self._templates: dict[int, _Template] = {}
        self._by_key: dict[tuple[str, ...], _Template] = {}
        self._learned_sets: dict[int, list[tuple[int, ...]]] = {}
        # sibling key (position, key units before and after it, joiner) -> value there -> template
        # id. Live templates have distinct keys, so a group holds one template per value.
        self._siblings: dict[tuple[Any, ...], dict[str, int]] = {}
        # masked key -> leaf, oldest first (see LEAF_LIMIT)
        self._leaves: dict[tuple[str, ...], _Leaf] = {}
        self._leaf_order: deque[tuple[str, ...]] = deque()
        self._leaf_limit = LEAF_LIMIT
        self._next_id = 1
        self._changed: set[int] = set()
        # message -> (template, its version then, parameters, masked message, leaf)
        self._message_cache: dict[str, tuple[_Template, int, tuple[str, ...], Masked, _Leaf]] = {}
        self._message_cache_size = max(self.config.message_cache_size, 0)
        self._unit_classes: dict[str, int] = {}

    # ----------------------------------------------------------------------------------- API

    def add(self, message: str) -> Match:
        """Learn from ``message`` and return its template (see :class:`Match`)."""
        cache = self._message_cache
        cached = cache.get(message)
        if cached is not None:
            template, version, params, masked, cached_leaf = cached
            if template.version == version and cached_leaf.template is template:
                template.count += 1
                return _new_tuple(Match, (template.template_id, template.text, params, "none"))
        else:
            masked = self._masker.mask(message)
        leaf = self._leaves.get(masked[1])
        if leaf is not None:
            template = leaf.template
            watch = leaf.watch
            if template.version == leaf.version and (watch is None or watch(masked[0]) == leaf.watched):
                # The common case: a known message pattern whose template this line cannot change.
                template.count += 1
                params = masked[2] if not template.learned else self._parameters(template, masked)
                if self._message_cache_size:
                    if len(cache) >= self._message_cache_size:
                        cache.clear()
                    cache[message] = (template, template.version, params, masked, leaf)
                return _new_tuple(Match, (template.template_id, template.text, params, "none"))
        return self._add(message, masked, leaf)

    def _add(self, message: str, masked: Masked, leaf: _Leaf | None) -> Match:
        self._changed.clear()
        change: Change = "none"
        if leaf is None:
            found = self._lookup(masked.key)
            if found is None:
                found = self._create(masked)
                # A new template that merged straight into an older one changed that one.
                change = "new" if found.template_id == self._next_id - 1 else "changed"
            leaf = self._add_leaf(masked.key, found.template_id)
        template = self._resolve(leaf.template_id)
        if change == "none":
            if template.soft:
                template = self._generalise_soft(template, masked.units)
            if template.learned:
                self._fit_affixes(template, masked.units)
        template.count += 1
        if change == "none" and template.template_id in self._changed:
            change = "changed"
        params = self._parameters(template, masked)
        leaf.arm(template, masked.units)
        self._remember(message, masked, template, params, leaf)
        return Match(template.template_id, template.text, params, change)

    def match(self, message: str) -> Match | None:
        """Classify ``message`` without learning; ``None`` if no template fits it."""
        masked = self._masker.mask(message)
        leaf = self._leaves.get(masked.key)
        if leaf is not None:
            template: _Template | None = self._resolve(leaf.template_id)
        else:
            template = self._lookup(masked.key)
        if template is None:
            return None
        for position in template.learned:
            prefix, suffix = template.affixes.get(position, ("", ""))
            if not _fits(_content(masked.units[position]), prefix, suffix):
                return None
        return Match(template.template_id, template.text, self._parameters(template, masked), "none")

    def resolve(self, template_id: int) -> int:
        """Follow successor pointers from ``template_id`` to the template that absorbed it."""
        return self._resolve(template_id).template_id

    def template(self, template_id: int) -> str:
        """The current text of ``template_id`` (resolved through merges)."""
        return self._resolve(template_id).text

    def templates(self) -> list[TemplateInfo]:
        """Every template ever created, in id order, merged-away ones with their successor."""
        return [
            TemplateInfo(t.template_id, t.text, t.count, t.successor)
            for t in sorted(self._templates.values(), key=lambda t: t.template_id)
        ]

    def snapshot(self) -> dict[str, Any]:
        """The learned state as a JSON-serialisable dict (see :meth:`restore`)."""
        return {
            "version": SNAPSHOT_VERSION,
            "config": self.config.to_dict(),
            "next_id": self._next_id,
            "templates": [
                {
                    "id": t.template_id,
                    "units": list(t.units),
                    "key": list(t.key),
                    "learned": list(t.learned),
                    "affixes": [[p, a[0], a[1]] for p, a in sorted(t.affixes.items())],
                    "count": t.count,
                    "successor": t.successor,
                    "version": t.version,
                }
                for t in sorted(self._templates.values(), key=lambda t: t.template_id)
            ],
            "learned_sets": [[n, [list(s) for s in sets]] for n, sets in self._learned_sets.items()],
            "leaves": [[list(units), leaf.template_id] for units, leaf in self._leaves.items()],
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any]) -> TemplateMiner:
        """A miner that continues exactly where the one that produced ``snapshot`` stood."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported snapshot version {snapshot.get('version')!r}")
        miner = cls(MinerConfig.from_dict(snapshot["config"]))
        miner._next_id = int(snapshot["next_id"])
        for item in snapshot["templates"]:
            template = _Template(
                template_id=int(item["id"]),
                units=tuple(item["units"]),
                key=tuple(item["key"]),
                learned=tuple(item["learned"]),
                affixes={int(p): (pre, suf) for p, pre, suf in item["affixes"]},
                count=int(item["count"]),
                successor=item["successor"],
                version=int(item["version"]),
            )
            miner._templates[template.template_id] = template
        for length, sets in snapshot["learned_sets"]:
            miner._learned_sets[int(length)] = [tuple(s) for s in sets]
        for units, tid in snapshot["leaves"]:
            miner._add_leaf(tuple(units), int(tid))
        # Sibling groups are derived data: rebuilding them in id order reproduces the original
        # insertion order, which is all that determinism needs.
        for template in sorted(miner._templates.values(), key=lambda t: t.template_id):
            if template.successor is None:
                miner._by_key[template.key] = template
                miner._register_siblings(template, allow_merge=False)
        return miner

    # ------------------------------------------------------------------------------ internals

    def _resolve(self, template_id: int) -> _Template:
        template = self._templates[template_id]
        if template.successor is None:
            return template
        path = []
        while template.successor is not None:
            path.append(template)
            template = self._templates[template.successor]
        for visited in path[:-1]:
            visited.successor = template.template_id
        return template

    def _add_leaf(self, key: tuple[str, ...], template_id: int) -> _Leaf:
        leaf = self._leaves[key] = _Leaf(template_id)
        self._leaf_order.append(key)
        if len(self._leaf_order) > self._leaf_limit:
            self._leaves.pop(self._leaf_order.popleft()).forget()
        return leaf

    def _lookup(self, units: tuple[str, ...]) -> _Template | None:
        found = self._by_key.get(units)
        if found is not None:
            return found
        for positions in self._learned_sets.get(len(units), ()):
            key = list(units)
            for position in positions:
                key[position] = _wild(units[position])
            found = self._by_key.get(tuple(key))
            if found is not None:
                return found
        return None

    def _create(self, masked: Masked) -> _Template:
        template = _Template(self._next_id, masked.units, masked.key)
        self._next_id += 1
        self._templates[template.template_id] = template
        self._by_key[masked.key] = template
        self._register_siblings(template, allow_merge=True)
        return self._resolve(template.template_id)

    def _register_siblings(self, template: _Template, allow_merge: bool) -> None:
        key = template.key
        known = self._unit_classes
        classes = [known.get(unit) for unit in key]
        if None in classes:
            if len(known) >= _UNIT_CLASS_LIMIT:
                known.clear()
            classes = [known.get(unit) or self._new_unit_class(unit) for unit in key]
        anchors = [i for i, c in enumerate(classes) if c & _ANCHOR]  # type: ignore[operator]
        if not anchors:
            return
        lone_anchor = anchors[0] if len(anchors) == 1 else -1
        trigger: tuple[Any, ...] | None = None
        threshold = self.config.variable_threshold
        siblings = self._siblings
        registered = template.siblings
        template_id = template.template_id
        for position in range(1, len(key)):
            if not classes[position] & _CANDIDATE or position == lone_anchor:  # type: ignore[operator]
                continue
            unit = key[position]
            spaced = unit[-1] == " "
            sibling_key = (position, key[:position], key[position + 1 :], spaced)
            value = unit[:-1] if spaced else unit
            group = siblings.get(sibling_key)
            if group is None:
                siblings[sibling_key] = {value: template_id}
            else:
                group[value] = template_id
                if trigger is None and (len(group) >= threshold or self._is_variable(group)):
                    trigger = sibling_key
            registered.append(sibling_key)
        if allow_merge and trigger is not None:
            self._learn(trigger)

    def _is_variable(self, group: dict[str, int]) -> bool:
        # A value that fits the pattern of a masked sibling ("pwd" next to "<*>", "chdir(pwd)"
        # next to "chdir(<*>)") is data the masking did not recognise. Otherwise a position
        # needs enough distinct values to tell a variable from a few alternative wordings.
        if len(group) >= self.config.variable_threshold:
            return True
        if len(group) < 2:
            return False
        for masked_value in group:
            if WILDCARD in masked_value:
                parts = masked_value.split(WILDCARD)
                if any(v != masked_value and _fits_parts(v, parts) for v in group):
                    return True
        return False

    def _new_unit_class(self, unit: str) -> int:
        flags = _unit_class(unit)
        self._unit_classes[unit] = flags
        return flags

    def _unregister_siblings(self, template: _Template) -> None:
        # Called before a merge changes the template's key: its values are still those registered.
        for sibling_key in template.siblings:
            group = self._siblings.get(sibling_key)
            if group is None:
                continue
            value = _content(template.key[sibling_key[0]])
            if group.get(value) == template.template_id:
                del group[value]
            if not group:
                del self._siblings[sibling_key]
        template.siblings = []

    def _learn(self, sibling_key: tuple[Any, ...]) -> None:
        """Make position ``sibling_key[0]`` a variable for every template in that sibling group."""
        group = self._siblings.get(sibling_key, {})
        ids = sorted({self._resolve(tid).template_id for tid in group.values()})
        if len(ids) < 2:
            return
        self._merge([self._templates[tid] for tid in ids], extra_position=int(sibling_key[0]))

    def _generalise_soft(self, template: _Template, units: tuple[str, ...]) -> _Template:
        """A numbered name (``bglio78``) that shows a second value is a variable there."""
        for position in template.soft:
            if units[position] != template.units[position]:
                self._merge([template], position, _content(units[position]))
                return self._resolve(template.template_id)
        return template

    def _merge(
        self, members: list[_Template], extra_position: int | None, extra_value: str | None = None
    ) -> None:
        members = sorted(members, key=lambda t: t.template_id)
        survivor = members[0]
        positions: set[int] = {extra_position} if extra_position is not None else set()
        for member in members:
            positions.update(member.learned)
        for position, unit in enumerate(survivor.key):
            # Numbered names that differ between the merged templates are variables too.
            if SOFT_DIGITS in unit and len({m.units[position] for m in members}) > 1:
                positions.add(position)
        learned = tuple(sorted(positions))
        for member in members:
            self._unregister_siblings(member)
            if self._by_key.get(member.key) is member:
                del self._by_key[member.key]
        affixes: dict[int, tuple[str, str]] = {}
        key = list(survivor.key)
        units = list(survivor.units)
        for position in learned:
            values = []
            for member in members:
                if position in member.learned:
                    prefix, suffix = member.affixes.get(position, ("", ""))
                    values.append(prefix + WILDCARD + suffix)
                else:
                    values.append(_content(member.units[position]))
            if extra_value is not None and position == extra_position:
                values.append(extra_value)
            prefix, suffix = _common_affixes(values)
            affixes[position] = (prefix, suffix)
            key[position] = _wild(survivor.key[position])
            units[position] = prefix + key[position].replace(WILDCARD, WILDCARD + suffix, 1)
        for member in members[1:]:
            member.successor = survivor.template_id
            member.version += 1
            survivor.count += member.count
            member.count = 0
        survivor.learned = learned
        survivor.affixes = {p: a for p, a in affixes.items() if a != ("", "")}
        survivor.key = tuple(key)
        survivor.set_units(tuple(units))
        survivor.version += 1
        self._changed.add(survivor.template_id)
        sets = self._learned_sets.setdefault(len(key), [])
        if learned not in sets:
            sets.append(learned)
        existing = self._by_key.get(survivor.key)
        if existing is not None and existing is not survivor:
            # The generalised template coincides with one that already had a variable there.
            self._merge([survivor, existing], extra_position=None)
            return
        self._by_key[survivor.key] = survivor
        self._register_siblings(survivor, allow_merge=True)

    def _fit_affixes(self, template: _Template, units: tuple[str, ...]) -> None:
        """Widen a learned variable whose prefix/suffix does not fit a newly matched value."""
        for position, (prefix, suffix) in list(template.affixes.items()):
            value = _content(units[position])
            if _fits(value, prefix, suffix):
                continue
            prefix, suffix = _common_affixes([prefix + WILDCARD + suffix, value])
            if (prefix, suffix) == ("", ""):
                del template.affixes[position]
            else:
                template.affixes[position] = (prefix, suffix)
            joiner = template.key[position][len(WILDCARD) :]
            updated = list(template.units)
            updated[position] = prefix + WILDCARD + suffix + joiner
            template.set_units(tuple(updated))
            template.version += 1
            self._changed.add(template.template_id)

    def _parameters(self, template: _Template, masked: Masked) -> tuple[str, ...]:
        if not template.learned:
            return masked.params
        units = masked.units
        masked_params = masked.params
        params: list[str] = []
        consumed = 0
        for position in template.learned:
            before = "".join(units[:position]).count(WILDCARD)
            params += masked_params[consumed:before]
            consumed = before
            value = _content(units[position])
            inside = value.count(WILDCARD)
            for _ in range(inside):
                value = value.replace(WILDCARD, masked_params[consumed], 1)
                consumed += 1
            prefix, suffix = template.affixes.get(position, _NO_AFFIX)
            if (prefix or suffix) and _fits(value, prefix, suffix):
                value = value[len(prefix) : len(value) - len(suffix)]
            params.append(value)
        params += masked_params[consumed:]
        return tuple(params)

    def _remember(
        self, message: str, masked: Masked, template: _Template, params: tuple[str, ...], leaf: _Leaf
    ) -> None:
        limit = self._message_cache_size
        if limit <= 0:
            return
        if len(self._message_cache) >= limit:
            self._message_cache.clear()
        self._message_cache[message] = (template, template.version, params, masked, leaf)


def _content(unit: str) -> str:
    return unit[:-1] if unit.endswith(" ") else unit


def _wild(unit: str) -> str:
    return WILDCARD + " " if unit.endswith(" ") else WILDCARD


_ALNUM = re.compile(r"[^\W_]")
_ALPHA = re.compile(r"[^\W\d_]")


# Bit flags of a unit; 4 is always set so that a known class is never 0 (falsy).
_CANDIDATE = 1
_ANCHOR = 2
_CLASSIFIED = 4
_UNIT_CLASS_LIMIT = 100_000


def _unit_class(unit: str) -> int:
    """Bit flags: _CANDIDATE (may turn out to be a variable: anything but bare punctuation) and
    _ANCHOR (certainly constant text: a word without any variable part)."""
    flags = _CLASSIFIED
    if WILDCARD in unit or _ALNUM.search(unit) is not None:
        flags |= _CANDIDATE
    if WILDCARD not in unit and SOFT_DIGITS not in unit and _ALPHA.search(unit) is not None:
        flags |= _ANCHOR
    return flags


_NO_AFFIX = ("", "")


def _fits_parts(value: str, parts: list[str]) -> bool:
    """Whether ``value`` reads as ``parts`` joined by wildcards, each standing for >= 1 character.

    The same answer as a full match of ``.+`` between the escaped parts, without compiling a
    pattern per masked value: each inner part is placed as early as it can be, which never
    takes room a later part needs.
    """
    first, last = parts[0], parts[-1]
    end = len(value) - len(last)
    if not value.startswith(first) or not value.endswith(last):
        return False
    position = len(first)
    for part in parts[1:-1]:
        found = value.find(part, position + 1, end - 1)
        if found < 0:
            return False
        position = found + len(part)
    return end - position >= 1


def _fits(value: str, prefix: str, suffix: str) -> bool:
    return len(value) > len(prefix) + len(suffix) and value.startswith(prefix) and value.endswith(suffix)


def _common_affixes(values: list[str]) -> tuple[str, str]:
    """The prefix and suffix all ``values`` share, cut back to a delimiter (``node-`` of ``node-D3``)."""
    # An existing wildcard must stay whole: make it one opaque character while comparing.
    values = [v.replace(WILDCARD, "\x00") for v in values]
    first = values[0]
    prefix_length = len(first)
    suffix_length = len(first)
    for value in values[1:]:
        limit = min(prefix_length, len(value))
        i = 0
        while i < limit and first[i] == value[i]:
            i += 1
        prefix_length = i
        limit = min(suffix_length, len(value))
        j = 0
        while j < limit and first[-1 - j] == value[-1 - j]:
            j += 1
        suffix_length = j
    prefix = first[:prefix_length]
    while prefix and prefix[-1] not in _AFFIX_DELIMITERS:
        prefix = prefix[:-1]
    suffix = first[len(first) - suffix_length :] if suffix_length else ""
    while suffix and suffix[0] not in _AFFIX_CLOSERS:
        suffix = suffix[1:]
    # A wildcard inside an affix would hide part of the value; keep affixes literal.
    if "\x00" in prefix:
        prefix = prefix[: prefix.index("\x00")]
        while prefix and prefix[-1] not in _AFFIX_DELIMITERS:
            prefix = prefix[:-1]
    if "\x00" in suffix:
        suffix = suffix[suffix.rindex("\x00") + 1 :]
        while suffix and suffix[0] not in _AFFIX_CLOSERS:
            suffix = suffix[1:]
    return prefix, suffix
