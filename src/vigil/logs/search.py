"""The read path: full-text search with filters, keyset pages, highlights, context and export.

Full text uses each database's own index: PostgreSQL ``websearch_to_tsquery('simple', q)``
against the generated ``search`` tsvector (GIN), SQLite FTS5 ``MATCH`` against
``log_lines_fts``. Both accept the same query language: words (all must appear),
``"quoted phrases"``, ``-excluded`` words, ``OR`` between alternatives. Highlights come from
``ts_headline`` / FTS5 ``highlight()`` and are returned as HTML-escaped text with ``<mark>``.
Pages are newest first, keyed on (time_ns, id), so every page costs the same at any depth.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, TextClause, bindparam, func, select, text, tuple_
from sqlalchemy.orm import aliased

from vigil.store.db import Database
from vigil.store.models.logs import LogLine, LogTemplate

# Markers that cannot occur in text we escape, swapped for <mark> after escaping.
_START, _STOP = "\x02", "\x03"
_FTS_TOKEN = re.compile(r'-?"[^"]*"?|\S+')


class QueryError(ValueError):
    """The search text cannot be turned into a query; the message says why."""


@dataclass(frozen=True, slots=True)
class LogFilters:
    q: str | None = None
    hosts: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    oses: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()  # of the line's template (classification)
    failure_types: tuple[str, ...] = ()
    template_id: int | None = None  # a cluster: lines of it and of templates merged into it
    start_ns: int | None = None
    end_ns: int | None = None


def fts5_query(q: str) -> str:
    """The websearch-style query as an FTS5 expression in which every user word is quoted, so
    FTS5 operators and punctuation in log text can never cause a syntax error."""
    positive: list[str] = []
    negative: list[str] = []
    pending_or = False
    for raw in _FTS_TOKEN.findall(q):
        if raw == "OR":
            pending_or = bool(positive)
            continue
        negate = raw.startswith("-") and len(raw) > 1
        token = raw[1:] if negate else raw
        prefix = token.endswith("*") and not token.startswith('"')
        token = token.strip('"').rstrip("*") if prefix else token.strip('"')
        if not token.strip():
            continue
        quoted = '"' + token.replace('"', '""') + '"' + ("*" if prefix else "")
        if negate:
            negative.append(quoted)
        elif pending_or and positive:
            positive[-1] = f"({positive[-1]} OR {quoted})"
            pending_or = False
        else:
            positive.append(quoted)
    if not positive:
        raise QueryError("q: needs at least one word that is not excluded with '-'")
    expression = " AND ".join(positive)
    for item in negative:
        expression = f"({expression}) NOT {item}"
    return expression


def _text_condition(db: Database, q: str, indexed: bool = True) -> ColumnElement[bool] | TextClause:
    fts5_query(q)  # the same rules on both databases: at least one word that is not excluded
    if not db.is_sqlite and not indexed:
        # The same test the planner cannot answer from the GIN index: it walks the time index
        # and checks each row's stored tsvector, stopping as soon as the page is full.
        return text("(log_lines.search || ''::tsvector) @@ websearch_to_tsquery('simple', :q)").bindparams(
            q=q
        )
    if db.is_sqlite:
        return LogLine.id.in_(
            select(text("rowid"))
            .select_from(text("log_lines_fts"))
            .where(text("log_lines_fts MATCH :fts").bindparams(fts=fts5_query(q)))
        )
    return text("log_lines.search @@ websearch_to_tsquery('simple', :q)").bindparams(q=q)


def conditions(
    db: Database, filters: LogFilters, *, text_indexed: bool = True
) -> list[ColumnElement[bool] | TextClause]:
    where: list[ColumnElement[bool] | TextClause] = []
    for column, values in (
        (LogLine.host, filters.hosts),
        (LogLine.service, filters.services),
        (LogLine.source, filters.sources),
        (LogLine.os, filters.oses),
        (LogLine.level, filters.levels),
    ):
        if len(values) == 1:
            where.append(column == values[0])
        elif values:
            where.append(column.in_(values))
    if filters.start_ns is not None:
        where.append(LogLine.time_ns >= filters.start_ns)
    if filters.end_ns is not None:
        where.append(LogLine.time_ns < filters.end_ns)
    if filters.template_id is not None:
        where.append(
            LogLine.template_id.in_(
                select(LogTemplate.id).where(LogTemplate.canonical_id == filters.template_id)
            )
        )
    canonical = aliased(LogTemplate)
    label_conditions = []
    if filters.failure_types:
        label_conditions.append(canonical.failure_type.in_(filters.failure_types))
    if filters.severities:
        label_conditions.append(canonical.severity.in_(filters.severities))
    if label_conditions:
        member = aliased(LogTemplate)
        where.append(
            LogLine.template_id.in_(
                select(member.id)
                .join(canonical, canonical.id == member.canonical_id)
                .where(*label_conditions)
            )
        )
    if filters.q and filters.q.strip():
        where.append(_text_condition(db, filters.q.strip(), indexed=text_indexed))
    return where


def _line_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "time": datetime.fromtimestamp(row.time_ns / 1e9, UTC).isoformat(),
        "time_ns": row.time_ns,
        "source": row.source,
        "host": row.host,
        "service": row.service,
        "level": row.level,
        "os": row.os,
        "facility": row.facility,
        "message": row.message,
        "template_id": row.template_id,
        "params": list(row.params or []),
        "attributes": dict(row.attributes or {}),
    }


_LINE_COLUMNS = (
    LogLine.id,
    LogLine.time_ns,
    LogLine.source,
    LogLine.host,
    LogLine.service,
    LogLine.level,
    LogLine.os,
    LogLine.facility,
    LogLine.message,
    LogLine.template_id,
    LogLine.params,
    LogLine.attributes,
)


# Text queries start with the newest lines and widen. First the newest FIRST_WINDOW_ROWS lines,
# tested row by row (PostgreSQL) down the time index: a common word fills
# the page there at once. Then wider time windows, where the full-text index finds rarer words.
# One query over everything would make the database collect and sort every match of a common
# word, or walk the whole time index for a rare one, before returning the newest 50.
FIRST_WINDOW_ROWS = 20_000
WIDER_WINDOWS = (8, 64, 512)  # multiples of the first window's time span


async def search(
    db: Database,
    filters: LogFilters,
    *,
    limit: int = 50,
    after: tuple[int, int] | None = None,
    highlight: bool = True,
) -> tuple[list[dict[str, Any]], tuple[int, int] | None]:
    """One page, newest first, and the key to pass as ``after`` for the next (None at the end)."""
    text_query = bool(filters.q and filters.q.strip())
    older = [tuple_(LogLine.time_ns, LogLine.id) < tuple_(after[0], after[1])] if after is not None else []

    def page(since: int | None, text_indexed: bool = True) -> Any:
        query = select(*_LINE_COLUMNS).where(*conditions(db, filters, text_indexed=text_indexed), *older)
        if since is not None:
            query = query.where(LogLine.time_ns >= since)
        return query.order_by(LogLine.time_ns.desc(), LogLine.id.desc()).limit(limit + 1)

    async with db.session() as session:
        if not text_query:
            rows = (await session.execute(page(None))).all()
        else:
            rows = await _text_page(session, db, filters, older, page, limit)
        items = [_line_dict(row) for row in rows[:limit]]
        await _attach_templates(session, items)
        if highlight and text_query and items:
            marks = await _highlights(session, db, str(filters.q).strip(), [item["id"] for item in items])
            for item in items:
                item["highlight"] = marks.get(item["id"], html.escape(item["message"]))
    next_key = (items[-1]["time_ns"], items[-1]["id"]) if len(rows) > limit else None
    return items, next_key


async def _text_page(
    session: Any, db: Database, filters: LogFilters, older: list[Any], page: Any, limit: int
) -> list[Any]:
    # Where the newest FIRST_WINDOW_ROWS lines begin (before the page's upper bound). Counted
    # among the lines of the one host/service/source asked for when that is the only filter (its
    # (column, time) index answers it), otherwise on the time index alone, so that counting
    # never costs more than the window itself.
    upper = [LogLine.time_ns < filters.end_ns] if filters.end_ns is not None else []
    single = [(c, v) for c, v in ((LogLine.host, filters.hosts), (LogLine.service, filters.services),
                                  (LogLine.source, filters.sources)) if v]  # fmt: skip
    others = (filters.oses, filters.levels, filters.severities, filters.failure_types, filters.template_id)
    if len(single) == 1 and len(single[0][1]) == 1 and not any(others):
        upper.append(single[0][0] == single[0][1][0])
    boundary = (
        await session.execute(
            select(LogLine.time_ns)
            .where(*older, *upper)
            .order_by(LogLine.time_ns.desc(), LogLine.id.desc())
            .offset(FIRST_WINDOW_ROWS)
            .limit(1)
        )
    ).scalar()
    if boundary is None:
        # Fewer lines than one window in all: the row-by-row test over them is the whole search.
        return list((await session.execute(page(None, text_indexed=db.is_sqlite))).all())
    rows = list((await session.execute(page(boundary, text_indexed=db.is_sqlite))).all())
    if len(rows) > limit:
        return rows
    newest = (await session.execute(select(func.max(LogLine.time_ns)).where(*older, *upper))).scalar()
    span = max(int(newest or boundary) - boundary, 1_000_000_000)
    for factor in WIDER_WINDOWS:
        since = boundary - span * factor
        if filters.start_ns is not None and since <= filters.start_ns:
            break
        rows = list((await session.execute(page(since))).all())
        if len(rows) > limit:
            return rows
    return list((await session.execute(page(None))).all())


async def _attach_templates(session: Any, items: list[dict[str, Any]]) -> None:
    """Each line's cluster: canonical id, template text and classification."""
    ids = {item["template_id"] for item in items if item["template_id"] is not None}
    if not ids:
        return
    member = aliased(LogTemplate)
    canonical = aliased(LogTemplate)
    rows = (
        await session.execute(
            select(
                member.id,
                canonical.id,
                canonical.template,
                canonical.failure_type,
                canonical.severity,
                canonical.component,
            )
            .join(canonical, canonical.id == member.canonical_id)
            .where(member.id.in_(ids))
        )
    ).all()
    by_id = {row[0]: row for row in rows}
    for item in items:
        row = by_id.get(item["template_id"])
        if row is None:
            continue
        item["template_id"] = row[1]
        item["template"] = row[2]
        item["failure_type"] = row[3]
        item["severity"] = row[4]
        item["component"] = row[5]


def _safe_marked(marked: str) -> str:
    return html.escape(marked).replace(_START, "<mark>").replace(_STOP, "</mark>")


_TOKEN_CHAR = r"0-9A-Za-z\u0080-\uffff"


def highlight_pattern(q: str) -> re.Pattern[str] | None:
    """A regex marking what an FTS5 query matches in a message (the words and phrases it
    requires, case-insensitive, on unicode61 token boundaries)."""
    parts = []
    for raw in _FTS_TOKEN.findall(q):
        if raw == "OR" or (raw.startswith("-") and len(raw) > 1):
            continue
        prefix = raw.endswith("*") and not raw.startswith('"')
        words = re.findall(f"[{_TOKEN_CHAR}]+", raw.strip('"').rstrip("*"))
        if not words:
            continue
        body = f"[^{_TOKEN_CHAR}]+".join(re.escape(w) for w in words)
        tail = "" if prefix else f"(?![{_TOKEN_CHAR}])"
        parts.append(f"(?<![{_TOKEN_CHAR}]){body}{tail}")
    if not parts:
        return None
    return re.compile("|".join(parts), re.IGNORECASE)


def highlight_text(message: str, pattern: re.Pattern[str] | None) -> str:
    if pattern is None:
        return html.escape(message)
    marked = pattern.sub(lambda m: f"{_START}{m.group(0)}{_STOP}", message)
    return _safe_marked(marked)


async def _highlights(session: Any, db: Database, q: str, ids: Sequence[int]) -> dict[int, str]:
    if db.is_sqlite:
        # FTS5's highlight() re-runs the whole query to mark 50 rows (seconds for a common
        # word over millions of lines); marking the same tokens here costs microseconds.
        pattern = highlight_pattern(q)
        rows = (
            await session.execute(select(LogLine.id, LogLine.message).where(LogLine.id.in_(list(ids))))
        ).all()
        return {int(row[0]): highlight_text(str(row[1]), pattern) for row in rows}
    else:
        statement = text(
            "SELECT id, ts_headline('simple', message, websearch_to_tsquery('simple', :q), :options) "
            "FROM log_lines WHERE id IN :ids"
        ).bindparams(bindparam("ids", expanding=True))
        options = f"StartSel={_START}, StopSel={_STOP}, HighlightAll=true"
        params: dict[str, Any] = {"q": q, "options": options, "ids": list(ids)}
    rows = (await session.execute(statement, params)).all()
    return {int(row[0]): _safe_marked(str(row[1])) for row in rows}


async def iter_lines(
    db: Database, filters: LogFilters, *, chunk: int = 2000, max_rows: int | None = None
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every matching line, newest first, in chunks (keyset pages: constant memory)."""
    after: tuple[int, int] | None = None
    sent = 0
    while True:
        size = chunk if max_rows is None else min(chunk, max_rows - sent)
        if size <= 0:
            return
        items, after = await search(db, filters, limit=size, after=after, highlight=False)
        if items:
            yield items
            sent += len(items)
        if after is None:
            return


async def get_line(db: Database, line_id: int) -> dict[str, Any] | None:
    async with db.session() as session:
        row = (await session.execute(select(*_LINE_COLUMNS).where(LogLine.id == line_id))).first()
        if row is None:
            return None
        items = [_line_dict(row)]
        await _attach_templates(session, items)
    return items[0]


async def context(
    db: Database, line_id: int, before: int, after: int, by: str = "host"
) -> dict[str, Any] | None:
    """The line, and up to ``before``/``after`` lines around it from the same host (or source)."""
    line = await get_line(db, line_id)
    if line is None:
        return None
    if by == "host" and line["host"] is not None:
        same = LogLine.host == line["host"]
    else:
        by = "source"
        same = LogLine.source == line["source"]
    key = tuple_(LogLine.time_ns, LogLine.id)
    here = tuple_(line["time_ns"], line["id"])
    async with db.session() as session:
        earlier = (
            await session.execute(
                select(*_LINE_COLUMNS)
                .where(same, key < here)
                .order_by(LogLine.time_ns.desc(), LogLine.id.desc())
                .limit(before)
            )
        ).all()
        later = (
            await session.execute(
                select(*_LINE_COLUMNS)
                .where(same, key > here)
                .order_by(LogLine.time_ns.asc(), LogLine.id.asc())
                .limit(after)
            )
        ).all()
        before_items = [_line_dict(r) for r in reversed(earlier)]
        after_items = [_line_dict(r) for r in later]
        await _attach_templates(session, before_items + after_items)
    return {"line": line, "by": by, "before": before_items, "after": after_items}
