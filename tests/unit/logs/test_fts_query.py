"""The websearch-style query language turned into safe FTS5 expressions."""

from __future__ import annotations

import sqlite3

import pytest

from vigil.logs.search import QueryError, fts5_query, highlight_pattern, highlight_text


def test_words_phrases_exclusions_alternatives() -> None:
    assert fts5_query("disk full") == '"disk" AND "full"'
    assert fts5_query('"no space" left') == '"no space" AND "left"'
    assert fts5_query("password -root") == '("password") NOT "root"'
    assert fts5_query("timeout OR refused") == '("timeout" OR "refused")'
    assert fts5_query("conn*") == '"conn"*'


def test_operators_and_punctuation_are_text() -> None:
    assert fts5_query('NEAR( AND "x') == '"NEAR(" AND "AND" AND "x"'
    assert fts5_query('say "hi') == '"say" AND "hi"'
    with pytest.raises(QueryError):
        fts5_query("-only -negative")
    with pytest.raises(QueryError):
        fts5_query('  ""  ')


@pytest.mark.parametrize(
    "q", ['NEAR( "unclosed * AND /dev/sda1:', "a OR", "OR b", 'x"y', "10.0.0.1 -", "***"]
)
def test_every_expression_is_valid_fts5(q: str) -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(message)")
    db.execute("INSERT INTO t VALUES ('write error on /dev/sda1: No space left; 10.0.0.1 unclosed NEAR')")
    try:
        expression = fts5_query(q)
    except QueryError:
        return
    db.execute("SELECT rowid FROM t WHERE t MATCH ?", (expression,)).fetchall()


def test_highlights_mark_what_the_query_matches() -> None:
    def mark(q: str, message: str) -> str:
        return highlight_text(message, highlight_pattern(q))

    assert mark("space device", "write on /dev/sda1: No space left on device") == (
        "write on /dev/sda1: No <mark>space</mark> left on <mark>device</mark>"
    )
    assert mark('"failed password" -root', "Failed password for <root>") == (
        "<mark>Failed password</mark> for &lt;root&gt;"  # escaped, the excluded word unmarked
    )
    assert mark("conn*", "Connection refused") == "<mark>Conn</mark>ection refused"
    assert mark("err", "error err") == "error <mark>err</mark>"  # whole tokens only
    assert mark("10.0.0.1", "from 10.0.0.1 port 22") == "from <mark>10.0.0.1</mark> port 22"
    assert mark("-x", "<b>") == "&lt;b&gt;"
