"""Rule-based classification of log templates: failure type, severity and component.

Pure code, meant to run once per new template (not per line). The rules are general phrases
operators use for each kind of failure, not tuned to any data set; each rule carries a weight
that becomes the confidence of the label. Templates the rules cannot place with confidence are
exactly the ones worth asking a model about (see ``Classification.confidence``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

FAILURE_TYPES: Final = (
    "disk_space",
    "out_of_memory",
    "service_crash",
    "auth_failure",
    "network",
    "timeout",
    "config_error",
    "hardware",
    "dependency_down",
    "none",
)
SEVERITIES: Final = ("critical", "high", "medium", "low")

# Below this confidence a rule label is a guess: a configured model gets asked.
CONFIDENT: Final = 0.7


@dataclass(frozen=True, slots=True)
class Classification:
    failure_type: str  # one of FAILURE_TYPES
    severity: str  # one of SEVERITIES
    component: str | None
    confidence: float  # 0..1
    method: str = "rule"  # rule | model | operator
    reason: str | None = None  # what decided it (the rule that matched, the model's note...)

    @property
    def is_error(self) -> bool:
        """An error-class template: a known failure, or anything of high severity."""
        return self.failure_type != "none" or self.severity in ("critical", "high")


def _rules(*pairs: tuple[str, float]) -> tuple[tuple[re.Pattern[str], float], ...]:
    return tuple((re.compile(pattern, re.IGNORECASE), weight) for pattern, weight in pairs)


# (pattern, weight). Patterns see the template text, where variables read as "<*>".
_FAILURE_RULES: Final[dict[str, tuple[tuple[re.Pattern[str], float], ...]]] = {
    "disk_space": _rules(
        (r"no space left", 0.95),
        (r"\bdisk (is )?full\b|\bdevice full\b|\bfile ?system (is )?full\b|\bvolume (is )?full\b", 0.9),
        (r"\benospc\b|\bquota exceeded\b|\bdisk quota\b|\bover quota\b", 0.9),
        (r"\b(file ?system|disk|volume|partition)\b.*\b(is|are) (almost |nearly )?full\b", 0.85),
        (r"\b(not enough|insufficient|low|out of) (free )?(disk|storage|space)\b", 0.85),
        (r"\bno (free )?inodes?\b|\binodes? exhausted\b", 0.85),
        (r"\bdisk space\b|\bstorage space\b|\bfree space\b", 0.6),
    ),
    "out_of_memory": _rules(
        (r"\bout of memory\b|\boom[- ]?kill|\boomkilled\b|\boutofmemoryerror\b", 0.95),
        (r"cannot allocate memory|memory allocation failed|\benomem\b|\bmalloc\b.*\bfail", 0.9),
        (r"java heap space|memory exhausted|memory limit exceeded|exceeded memory limit", 0.9),
        (r"\bkilled process\b.*\b(rss|vm)\b", 0.85),
        (r"\b(low|insufficient|not enough) memory\b|\bmemory pressure\b", 0.75),
        (r"\bswap(ping)? (space )?(full|exhausted)\b", 0.75),
    ),
    "service_crash": _rules(
        (r"\bsegfault\b|segmentation fault|\bcore dumped\b|\bsigsegv\b|\bsigabrt\b|\bsigbus\b", 0.95),
        (r"\bkernel panic\b|\bpanic:|\bpanicked\b", 0.95),
        (r"\bcrash(ed|ing)?\b|terminated unexpectedly|exited unexpectedly|died unexpectedly", 0.85),
        (r"\bunhandled exception\b|\buncaught exception\b|\btraceback\b|\bfatal (error|exception)\b", 0.8),
        (r"main process exited|exited with (exit )?(code|status) <\*>|failed with result", 0.7),
        (r"\bkilled by signal\b|\bterminated by signal\b|\babort(ed)?\b", 0.7),
        (r"\brestart(ing)? (loop|too quickly)|\bback-?off restarting\b|\bcrashloop", 0.85),
    ),
    "auth_failure": _rules(
        (r"authentication (failure|failed|error)|auth(entication)? fail|failed password", 0.95),
        (r"\binvalid (user|password|credentials|api key|token)\b|\bincorrect password\b", 0.9),
        (r"\blogin (failed|failure|incorrect)\b|\bfailed login\b|\bbad password\b", 0.9),
        (r"\bunauthori[sz]ed\b|\baccess denied\b|\bnot authori[sz]ed\b|\b401\b|\bforbidden\b", 0.8),
        (r"\b(token|session|certificate|credentials?) (has )?expired\b", 0.75),
        (r"\bpermission denied\b", 0.6),
    ),
    "network": _rules(
        (r"network is unreachable|no route to host|host (is )?unreachable|\behostunreach\b", 0.95),
        (r"connection reset|\beconnreset\b|broken pipe|\bepipe\b|connection (lost|dropped)", 0.85),
        (r"name resolution|could not resolve|unknown host|\bnxdomain\b", 0.85),
        (r"\bdns\b.*\b(fail|error|timeout)", 0.8),
        (r"\blink (is )?down\b|\binterface\b.*\bdown\b|\bcarrier lost\b|\bpacket loss\b", 0.85),
        (r"\b(tls|ssl) (handshake )?(error|fail)|handshake failed", 0.7),
        (r"\bsocket (error|exception)\b|\bnetwork (error|failure|problem)\b", 0.75),
    ),
    "timeout": _rules(
        (r"\btimed? ?out\b|\btimeout (expired|exceeded|reached|occurred)\b|\betimedout\b", 0.9),
        (r"deadline exceeded|took too long|no response (within|after)|request timeout|\b504\b", 0.9),
        (r"\btimeout\b", 0.65),
    ),
    "config_error": _rules(
        (r"\b(invalid|bad|malformed) (config(uration)?|setting|option|directive|parameter|value)\b", 0.9),
        (r"\bconfig(uration)? (file )?(error|invalid|missing|not found)\b|\bmisconfigur", 0.9),
        (r"\bunknown (option|directive|parameter|setting|key)\b|\bunrecognized (option|argument)\b", 0.85),
        (r"\bmissing (required )?(parameter|option|setting|key|argument|environment variable)\b", 0.85),
        (r"\bsyntax error\b|\bparse error\b|\bcannot parse\b|\bfailed to parse\b", 0.7),
        (r"\bnot configured\b|\bno such file or directory\b", 0.55),
    ),
    "hardware": _rules(
        (r"\bhardware error\b|\bmachine check\b|\bmce\b|\buncorrectable\b|\becc error", 0.95),
        (r"\bi/?o error\b|\bbad (sector|block)s?\b|\bmedium error\b|\bread error\b|\bwrite error\b", 0.85),
        (r"\bsmart\b.*\b(fail|error|warning)|\bdisk (failure|failed|error)\b|\braid\b.*\bdegraded\b", 0.9),
        (r"\b(over ?heat(ing)?|thermal|temperature)\b.*\b(critical|high|exceed|above|throttl)", 0.85),
        (r"\bfan\b.*\b(fail|stopped|error)|\bpower supply\b.*\b(fail|lost|error)|\bpsu\b.*fail", 0.9),
        (r"\bpcie?\b.*\berror\b|\bnvme\b.*\berror\b|\bsata link\b.*\bdown\b", 0.8),
        (r"\b(ext[234]|xfs|btrfs)(-fs)? error\b|\bfile ?system error\b|\bjournal (aborted|error)\b", 0.8),
    ),
    "dependency_down": _rules(
        (r"connection refused|\beconnrefused\b", 0.9),
        (r"(could not|cannot|can't|unable to|failed to) connect( to)?\b", 0.85),
        (r"service (temporarily )?unavailable|\b503\b|no healthy upstream", 0.85),
        (r"upstream .*(down|unavailable)", 0.85),
        (r"\b(database|db|backend|broker|upstream|dependency) (is )?(down|unavailable|unreachable)", 0.9),
        (r"circuit breaker (is )?open", 0.85),
        (r"\blost connection to\b|\bconnection to <\*> (lost|failed|closed)\b", 0.75),
    ),
}

_DEFAULT_SEVERITY: Final = {
    "disk_space": "high",
    "out_of_memory": "high",
    "service_crash": "critical",
    "auth_failure": "medium",
    "network": "medium",
    "timeout": "medium",
    "config_error": "medium",
    "hardware": "high",
    "dependency_down": "high",
    "none": "low",
}

_CRITICAL_WORDS: Final = re.compile(r"\b(fatal|critical|emerg(ency)?|panic)\b", re.IGNORECASE)
_ERROR_WORDS: Final = re.compile(
    r"\b(error|err|errors|fail(ed|ure|ing)?|exception|refused|denied|cannot|unable|invalid)\b", re.IGNORECASE
)
_WARNING_WORDS: Final = re.compile(r"\b(warn(ing)?|deprecated|retry(ing)?|degraded|slow)\b", re.IGNORECASE)
# Messages saying something went fine are not failures even when they name one ("timeout set").
_BENIGN: Final = re.compile(
    r"\b(succeeded|successful(ly)?|success|completed|recovered|restored|resolved|ok|established|"
    r"accepted|started|set to|configured|enabled)\b",
    re.IGNORECASE,
)

# (pattern, component): the first that matches names the component.
_COMPONENTS: Final = tuple(
    (re.compile(pattern, re.IGNORECASE), name)
    for pattern, name in (
        (r"\b(sshd?\d?|pam_\w+|login|sudo|su|kerberos|ldap|oauth|auth)\b", "auth"),
        (r"\b(postgres(ql)?|mysql|mariadb|mongo(db)?|redis|oracle|sql|database|db)\b", "database"),
        (r"\b(kafka|rabbitmq|amqp|broker|queue|nats)\b", "messaging"),
        (r"\b(nginx|apache|httpd|http|haproxy|envoy|upstream|proxy|load ?balancer)\b", "web"),
        (r"\b(kubelet|kubernetes|k8s|pod|container|docker|containerd|cri-o)\b", "container"),
        (r"\b(oom|memory|heap|swap|malloc)\b", "memory"),
        (r"\b(disk|file ?system|volume|inodes?|ext[234](-fs)?|xfs|nfs|raid|sd[a-z]\d*|nvme)\b", "storage"),
        (r"\b(storage|quota|no space)\b", "storage"),
        (r"\b(eth\d*|interface|link|dns|tcp|udp|socket|network|route|packet|tls|ssl)\b", "network"),
        (r"\b(kernel|cpu|mce|pcie?|fan|psu|power supply|temperature|thermal|bios|firmware)\b", "hardware"),
        (r"\b(systemd|init|cron|scheduler|supervisor)\b", "system"),
    )
)


def classify(template: str, level: str | None = None, service: str | None = None) -> Classification:
    """Label a template from its text, the level of the line that created it, and its service."""
    text = template.replace("<*>", " <*> ")
    best_type, best_score, best_reason = "none", 0.0, None
    for failure_type, rules in _FAILURE_RULES.items():
        matched = []
        for pattern, weight in rules:
            found = pattern.search(text)
            if found:
                matched.append((weight, f"{failure_type}: {found.group(0).strip()!r}"))
        if not matched:
            continue
        top_weight, top_pattern = max(matched)
        # Several independent phrases for the same failure make it more certain.
        score = min(0.98, top_weight + 0.03 * (len(matched) - 1))
        if score > best_score:
            best_type, best_score, best_reason = failure_type, score, top_pattern

    level = (level or "").lower() or None
    errorish = bool(_ERROR_WORDS.search(text)) or level in ("error", "critical")
    if best_type != "none" and _BENIGN.search(text) and not errorish:
        # "connection timeout set to <*>", "disk space check completed": names a failure, reports none.
        best_type, best_score, best_reason = "none", 0.6, "benign wording"

    severity = _severity(best_type, text, level)
    component = _component(text) or (service or None)
    if best_type == "none":
        if errorish:
            # An error we cannot name: low confidence, worth a model's opinion.
            return Classification("none", severity, component, 0.35, "rule", "error wording, no known type")
        confidence = best_score or (0.75 if not _WARNING_WORDS.search(text) else 0.5)
        return Classification("none", severity, component, confidence, "rule", best_reason)
    return Classification(best_type, severity, component, round(best_score, 3), "rule", best_reason)


def _severity(failure_type: str, text: str, level: str | None) -> str:
    if level == "critical" or _CRITICAL_WORDS.search(text):
        return "critical"
    if failure_type != "none":
        return _DEFAULT_SEVERITY[failure_type]
    if level == "error" or _ERROR_WORDS.search(text):
        return "medium"
    return "low"


def _component(text: str) -> str | None:
    for pattern, name in _COMPONENTS:
        if pattern.search(text):
            return name
    return None
