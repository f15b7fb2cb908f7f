"""A built-in embedder that needs no model: hashed words, character n-grams and ops concepts.

Three kinds of features, hashed (signed) into a fixed-size vector:

- word stems (``errors`` → ``error``), the strongest signal for near-identical wording;
- character trigrams of each word, so spelling variants and compounds still overlap
  (``timeout`` / ``timed-out``, ``postgres`` / ``postgresql``);
- concepts from a small table of operations vocabulary, so different words for the same thing
  meet: "disk errors" and "No space left on device" share the ``storage`` concept although
  they share no word.

It is a lexical model: it knows only the concepts in its table. It exists so semantic search
works on every installation; the local sentence model or a remote endpoint does better.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from typing import Final

# concept -> words (stems, lower case) and phrases that evoke it.
CONCEPTS: Final[dict[str, tuple[str, ...]]] = {
    "storage": (
        "disk",
        "disks",
        "storage",
        "space",
        "filesystem",
        "fs",
        "volume",
        "partition",
        "inode",
        "quota",
        "enospc",
        "mount",
        "ext4",
        "xfs",
        "sda",
        "nvme",
        "no space",
        "device full",
        "free space",
        "write error",
    ),
    "memory": (
        "memory",
        "oom",
        "ram",
        "heap",
        "swap",
        "malloc",
        "allocate",
        "allocation",
        "rss",
        "enomem",
        "out of memory",
        "oom-killer",
        "gc",
        "leak",
    ),
    "crash": (
        "crash",
        "segfault",
        "panic",
        "core",
        "dump",
        "abort",
        "fatal",
        "sigsegv",
        "sigabrt",
        "traceback",
        "exception",
        "killed",
        "terminat",
        "exit",
        "died",
        "restart",
    ),
    "auth": (
        "auth",
        "authentication",
        "authenticat",
        "login",
        "logon",
        "password",
        "credential",
        "unauthorized",
        "unauthorised",
        "denied",
        "permission",
        "token",
        "sshd",
        "pam",
        "forbidden",
        "invalid user",
        "sudo",
        "privilege",
        "access",
    ),
    "network": (
        "network",
        "connection",
        "connect",
        "socket",
        "tcp",
        "udp",
        "dns",
        "resolve",
        "unreachable",
        "route",
        "packet",
        "link",
        "interface",
        "eth0",
        "reset",
        "hostname",
        "port",
        "tls",
        "ssl",
    ),
    "timeout": (
        "timeout",
        "timed out",
        "time out",
        "deadline",
        "slow",
        "latency",
        "took too long",
        "hang",
        "stuck",
        "expired",
        "etimedout",
    ),
    "config": (
        "config",
        "configuration",
        "setting",
        "option",
        "parameter",
        "directive",
        "syntax",
        "parse",
        "missing",
        "unknown",
        "misconfigured",
        "env",
    ),
    "hardware": (
        "hardware",
        "cpu",
        "fan",
        "temperature",
        "thermal",
        "power",
        "psu",
        "mce",
        "ecc",
        "sector",
        "smart",
        "raid",
        "firmware",
        "bios",
        "machine check",
        "i/o error",
        "overheat",
    ),
    "dependency": (
        "upstream",
        "backend",
        "database",
        "db",
        "unavailable",
        "refused",
        "down",
        "dependency",
        "service unavailable",
        "503",
        "circuit",
        "broker",
        "postgres",
        "mysql",
        "redis",
    ),
    "failure": (
        "error",
        "fail",
        "failure",
        "err",
        "problem",
        "fault",
        "bad",
        "broken",
        "cannot",
        "unable",
        "invalid",
        "critical",
        "warn",
        "warning",
    ),
    "lifecycle": (
        "start",
        "stop",
        "shutdown",
        "boot",
        "reboot",
        "launch",
        "init",
        "ready",
        "running",
        "stopped",
        "started",
    ),
    "session": (
        "session",
        "user",
        "logged",
        "logout",
        "login",
        "connected",
        "disconnect",
        "opened",
        "closed",
    ),
    "http": ("request", "response", "http", "get", "post", "put", "status", "url", "api", "endpoint"),
}

# Concepts that say little about *what* happened weigh less than the specific ones.
_CONCEPT_WEIGHT: Final = {"failure": 0.8, "lifecycle": 1.2, "session": 1.2, "http": 1.2}
_SPECIFIC_CONCEPT_WEIGHT: Final = 2.5
_WORD_WEIGHT: Final = 1.0
_TRIGRAM_WEIGHT: Final = 0.35

_WORD = re.compile(r"[a-z][a-z0-9_]*(?:[./-][a-z0-9_]+)*")
_SUFFIXES: Final = ("ations", "ation", "ings", "ing", "ies", "ed", "es", "s")


def stem(word: str) -> str:
    """A crude English stem, enough to meet "errors"/"error" and "failed"/"fail"."""
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _build_concept_index() -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    words: dict[str, set[str]] = {}
    phrases: list[tuple[str, str]] = []
    for concept, terms in CONCEPTS.items():
        for term in terms:
            if " " in term or "/" in term:
                phrases.append((term, concept))
            else:
                words.setdefault(stem(term), set()).add(concept)
                words.setdefault(term, set()).add(concept)
    return words, phrases


_CONCEPT_WORDS, _CONCEPT_PHRASES = _build_concept_index()
# Prefixes in the table ("terminat", "authenticat") match any word starting with them.
_CONCEPT_PREFIXES: Final = tuple(sorted(w for w in _CONCEPT_WORDS if len(w) >= 7))


def _hash(feature: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dimensions, (1.0 if value >> 63 else -1.0)


class LexicalEmbedder:
    """The :class:`~vigil.llm.embeddings.Embedder` that is always available."""

    name = "lexical-v1"

    def __init__(self, dimensions: int = 512) -> None:
        self.dimensions = dimensions

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.vector(text) for text in texts]

    def features(self, text: str) -> dict[str, float]:
        lowered = text.lower().replace("<*>", " ")
        features: dict[str, float] = {}
        concepts: dict[str, float] = {}
        for word in _WORD.findall(lowered):
            if len(word) < 2:
                continue
            stemmed = stem(word)
            features["w:" + stemmed] = features.get("w:" + stemmed, 0.0) + _WORD_WEIGHT
            padded = f"#{stemmed}#"
            for i in range(len(padded) - 2):
                key = "t:" + padded[i : i + 3]
                features[key] = features.get(key, 0.0) + _TRIGRAM_WEIGHT
            found = _CONCEPT_WORDS.get(stemmed) or _CONCEPT_WORDS.get(word)
            if not found:
                found = {c for p in _CONCEPT_PREFIXES if word.startswith(p) for c in _CONCEPT_WORDS[p]}
            for concept in found:
                concepts[concept] = 1.0
        for phrase, concept in _CONCEPT_PHRASES:
            if phrase in lowered:
                concepts[concept] = 1.0
        for concept in concepts:
            features["c:" + concept] = _CONCEPT_WEIGHT.get(concept, _SPECIFIC_CONCEPT_WEIGHT)
        return features

    def vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for feature, weight in self.features(text).items():
            index, sign = _hash(feature, self.dimensions)
            vector[index] += sign * weight
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0.0:
            # An empty text still gets a unit vector (the vector stores reject zero vectors).
            vector[0] = 1.0
            return vector
        return [v / norm for v in vector]
