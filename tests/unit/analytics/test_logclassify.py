"""Rule classification of log templates: each failure type from phrasings seen in real logs."""

from __future__ import annotations

import pytest

from vigil.analytics.logclassify import CONFIDENT, FAILURE_TYPES, SEVERITIES, classify


@pytest.mark.parametrize(
    ("template", "failure_type"),
    [
        ("write error: No space left on device", "disk_space"),
        ("Filesystem /var is full", "disk_space"),
        ("Disk quota exceeded for user <*>", "disk_space"),
        ("Out of memory: Killed process <*> (java) total-vm:<*>, anon-rss:<*>", "out_of_memory"),
        ("java.lang.OutOfMemoryError: Java heap space", "out_of_memory"),
        ("fork failed: Cannot allocate memory", "out_of_memory"),
        ("<*>[<*>]: segfault at <*> ip <*> sp <*> error <*> in libc.so.6", "service_crash"),
        ("nginx.service: Main process exited, code=dumped, status=11/SEGV", "service_crash"),
        ("Back-off restarting failed container <*> in pod <*>", "service_crash"),
        ("Failed password for invalid user <*> from <*> port <*> ssh2", "auth_failure"),
        ("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 rhost=<*>", "auth_failure"),
        ("Network is unreachable", "network"),
        ("eth0: Link is Down", "network"),
        ("read: connection reset by peer", "network"),
        ("upstream timed out (110: Connection timed out) while reading response header", "timeout"),
        ("context deadline exceeded", "timeout"),
        ("Invalid configuration value for key <*>", "config_error"),
        ("unknown directive <*> in <*>", "config_error"),
        ("mce: [Hardware Error]: Machine check events logged", "hardware"),
        ("end_request: I/O error, dev <*>, sector <*>", "hardware"),
        ("CPU temperature above threshold, cpu clock throttled", "hardware"),
        ("connect() failed (111: Connection refused) while connecting to upstream", "dependency_down"),
        ("Could not connect to database server at <*>", "dependency_down"),
        ("Accepted publickey for <*> from <*> port <*> ssh2", "none"),
        ("Started Session <*> of user <*>.", "none"),
    ],
)
def test_failure_types(template: str, failure_type: str) -> None:
    result = classify(template)
    assert result.failure_type == failure_type, result
    assert result.method == "rule"
    if failure_type != "none":
        assert result.confidence >= CONFIDENT
        assert result.reason and result.reason.startswith(failure_type)


def test_benign_wording_is_not_a_failure() -> None:
    assert classify("connection timeout set to <*> seconds").failure_type == "none"
    assert classify("disk space check completed").failure_type == "none"
    # ...unless the line itself is an error.
    assert classify("request timeout, retry succeeded", level="error").failure_type == "timeout"


def test_unknown_errors_have_low_confidence() -> None:
    result = classify("Unexpected error while handling request <*>")
    assert result.failure_type == "none"
    assert result.severity == "medium"
    assert result.confidence < CONFIDENT  # a model should be asked about these
    assert result.is_error is False


def test_severity_from_type_level_and_words() -> None:
    assert classify("No space left on device").severity == "high"
    assert classify("segfault at <*>").severity == "critical"
    assert classify("FATAL: could not connect to server <*>").severity == "critical"
    assert classify("Failed password for <*> from <*>").severity == "medium"
    assert classify("worker <*> started", level="info").severity == "low"
    assert classify("worker <*> started", level="critical").severity == "critical"
    assert classify("job <*> finished", level="error").severity == "medium"
    for template in ("a", "No space left on device", "error <*>"):
        result = classify(template)
        assert result.severity in SEVERITIES and result.failure_type in FAILURE_TYPES


def test_component_from_text_then_service() -> None:
    assert classify("Failed password for <*> from <*> port <*> ssh2").component == "auth"
    assert classify("No space left on device").component == "storage"
    assert classify("Out of memory: Killed process <*>").component == "memory"
    assert classify("Could not connect to postgres at <*>").component == "database"
    assert classify("request <*> handled in <*>", service="checkout").component == "checkout"
    assert classify("request <*> handled in <*>").component is None


def test_error_class() -> None:
    assert classify("No space left on device").is_error
    assert classify("kernel panic - not syncing").is_error
    assert not classify("Started Session <*> of user <*>.").is_error
