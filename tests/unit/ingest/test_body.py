"""Request bodies: limits on the wire and after decompression, every supported encoding."""

from __future__ import annotations

import base64
import gzip
import zlib
from collections.abc import AsyncIterator

import pytest

from vigil.ingest.body import BodyError, check_content_length, decompress, legacy_sentry_body, read_limited

DATA = b"cpu,host=a v=1 1\n" * 200


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        (None, DATA),
        ("identity", DATA),
        ("gzip", gzip.compress(DATA)),
        ("x-gzip", gzip.compress(DATA)),
        ("GZIP", gzip.compress(DATA)),
        ("deflate", zlib.compress(DATA)),
        ("deflate", _raw_deflate(DATA)),
    ],
)
def test_supported_encodings_round_trip(encoding: str | None, encoded: bytes) -> None:
    assert decompress(encoded, encoding, len(DATA)) == DATA


def test_concatenated_gzip_members_are_all_read() -> None:
    assert decompress(gzip.compress(b"a\n") + gzip.compress(b"b\n"), "gzip", 100) == b"a\nb\n"


def test_a_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000
    with pytest.raises(BodyError) as caught:
        decompress(bomb, "gzip", 1024 * 1024)
    assert caught.value.status == 413
    assert "decompressed" in caught.value.message


def test_output_exactly_at_the_limit_is_fine() -> None:
    assert decompress(gzip.compress(DATA), "gzip", len(DATA)) == DATA
    with pytest.raises(BodyError):
        decompress(gzip.compress(DATA), "gzip", len(DATA) - 1)


@pytest.mark.parametrize("body", [b"not gzip at all", gzip.compress(DATA)[:30]])
def test_corrupt_or_truncated_data_is_400(body: bytes) -> None:
    with pytest.raises(BodyError) as caught:
        decompress(body, "gzip", 10_000)
    assert caught.value.status == 400


def test_unknown_encoding_is_415() -> None:
    with pytest.raises(BodyError) as caught:
        decompress(DATA, "br", 10_000)
    assert caught.value.status == 415
    assert "br" in caught.value.message


def test_declared_length_over_the_limit_is_413_before_reading() -> None:
    check_content_length("10", 10)
    check_content_length(None, 10)
    with pytest.raises(BodyError) as caught:
        check_content_length("11", 10)
    assert caught.value.status == 413
    with pytest.raises(BodyError) as bad:
        check_content_length("ten", 10)
    assert bad.value.status == 400


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_streamed_bodies_are_counted_against_the_limit() -> None:
    assert await read_limited(_chunks(b"abc", b"def"), 6) == b"abcdef"
    with pytest.raises(BodyError) as caught:
        await read_limited(_chunks(b"abc", b"defg"), 6)
    assert caught.value.status == 413


def test_legacy_sentry_bodies_are_base64_zlib() -> None:
    event = b'{"event_id": "0123456789abcdef0123456789abcdef"}'
    assert legacy_sentry_body(base64.b64encode(zlib.compress(event)), 10_000) == event
    assert legacy_sentry_body(event, 10_000) == event
    assert legacy_sentry_body(b"@@@ not base64", 10_000) == b"@@@ not base64"
