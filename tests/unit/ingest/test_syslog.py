"""Syslog parsing (RFC 5424, RFC 3164) and TCP framing (octet counting, newlines)."""

from __future__ import annotations

import pytest

from vigil.ingest.syslog import Framer, parse_syslog

NOW = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z


def test_rfc5424_examples_from_the_rfc() -> None:
    record = parse_syslog(
        b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
        b"\xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8",
        NOW,
    )
    assert (record.host, record.service, record.facility, record.level) == (
        "mymachine.example.com",
        "su",
        "auth",
        "critical",
    )
    assert record.message == "'su root' failed for lonvick on /dev/pts/8"
    assert record.time_ns == 1_065_910_455_003_000_000
    assert record.attributes["msgid"] == "ID47"

    record = parse_syslog(
        '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        'eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] An application event',
        NOW,
    )
    assert record.message == "An application event"
    assert record.attributes["structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "examplePriority@32473": {"class": "high"},
    }
    assert (record.facility, record.level) == ("local4", "notice")


def test_rfc5424_escapes_offsets_and_nil_values() -> None:
    record = parse_syslog(r'<14>1 2003-08-24T05:14:15.000003-07:00 - - 8710 - [a@1 x="q\"uote\]d"]', NOW)
    assert record.time_ns == 1_061_727_255_000_003_000
    assert record.host is None and record.service is None and record.message == ""
    assert record.attributes["structured_data"] == {"a@1": {"x": 'q"uote]d'}}
    assert record.attributes["procid"] == "8710"


def test_rfc3164() -> None:
    record = parse_syslog(
        b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed", NOW, received_from="10.1.1.1"
    )
    assert (record.host, record.service, record.facility, record.level) == (
        "mymachine",
        "su",
        "auth",
        "critical",
    )
    assert record.message == "'su root' failed"
    assert record.time_ns == 1_697_062_455 * 10**9  # 2023-10-11, the year nearest "now"
    record = parse_syslog(b"<13>Feb  5 17:32:18 sshd[1234]: Accepted password", NOW, received_from="10.1.1.1")
    assert (record.host, record.service, record.attributes["procid"]) == ("10.1.1.1", "sshd", "1234")
    record = parse_syslog(b"<30>2024-05-01T10:00:00+00:00 web1 nginx[12]: GET /", NOW)
    assert (record.host, record.service, record.level, record.time_ns) == (
        "web1",
        "nginx",
        "info",
        1_714_557_600 * 10**9,
    )


def test_a_year_boundary_picks_last_year_for_december_in_january() -> None:
    january = 1_704_067_200 * 10**9 + 3600 * 10**9  # 2024-01-01T01:00Z
    record = parse_syslog(b"<13>Dec 31 23:59:00 h app: x", january)
    assert record.time_ns == 1_704_067_140 * 10**9  # 2023-12-31T23:59:00Z


@pytest.mark.parametrize("raw", [b"no priority at all", b"<999>too big", b"<13"])
def test_anything_else_is_kept_whole(raw: bytes) -> None:
    record = parse_syslog(raw, NOW, received_from="h")
    assert record.message == raw.decode()
    assert (record.facility, record.level, record.host) == ("user", "notice", "h")


def test_framer_mixes_octet_counting_and_newlines_across_reads() -> None:
    framer = Framer()
    assert framer.feed(b"15 <13>hello wor") == []
    assert framer.feed(b"ld\n<14>line two\n5 ab") == [b"<13>hello world", b"<14>line two"]
    assert framer.feed(b"cde<13>tail") == [b"abcde"]
    assert framer.rest() == b"<13>tail"


def test_framer_handles_crlf_nul_and_huge_frames() -> None:
    framer = Framer()
    assert framer.feed(b"<13>a\r\n\x00<13>b\n") == [b"<13>a", b"<13>b"]
    big = framer.feed(b"<13>" + b"x" * 70_000)
    assert len(big) == 1 and len(big[0]) == 64 * 1024
