"""log intelligence: log lines, templates, classifications, full-text index

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import vigil.store.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Only this much of a message is indexed for full-text search (to_tsvector has a 1 MB limit).
_FTS_PREFIX_CHARS = 100_000


def upgrade() -> None:
    op.create_table(
        "log_lines",
        sa.Column("id", _PK, autoincrement=True, nullable=False),
        sa.Column("time_ns", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("service", sa.String(length=255), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("os", sa.String(length=64), nullable=True),
        sa.Column("facility", sa.String(length=32), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("template_id", sa.BigInteger(), nullable=True),
        sa.Column("params", _JSON, nullable=False),
        sa.Column("attributes", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_lines")),
    )
    op.create_index("ix_log_lines_time", "log_lines", ["time_ns", "id"])
    op.create_index("ix_log_lines_host_time", "log_lines", ["host", "time_ns"])
    op.create_index("ix_log_lines_source_time", "log_lines", ["source", "time_ns"])
    op.create_index("ix_log_lines_service_time", "log_lines", ["service", "time_ns"])
    op.create_index("ix_log_lines_template_time", "log_lines", ["template_id", "time_ns"])

    op.create_table(
        "log_templates",
        sa.Column("id", _PK, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("local_id", sa.Integer(), nullable=False),
        sa.Column("canonical_id", sa.BigInteger(), nullable=True),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_ns", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ns", sa.BigInteger(), nullable=False),
        sa.Column("examples", _JSON, nullable=False),
        sa.Column("first_level", sa.String(length=16), nullable=True),
        sa.Column("failure_type", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("component", sa.String(length=64), nullable=True),
        sa.Column("label_method", sa.String(length=16), nullable=False),
        sa.Column("label_confidence", sa.Float(), nullable=False),
        sa.Column("label_reason", sa.Text(), nullable=True),
        sa.Column("labelled_by", sa.String(length=128), nullable=True),
        sa.Column("labelled_at", vigil.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("model_checked_at", vigil.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("embedded_template", sa.Text(), nullable=True),
        sa.Column("created_at", vigil.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", vigil.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_templates")),
        sa.UniqueConstraint("source", "local_id", name="uq_log_templates_source_local_id"),
    )
    op.create_index("ix_log_templates_canonical_id", "log_templates", ["canonical_id"])
    op.create_index("ix_log_templates_failure_type", "log_templates", ["failure_type"])

    op.create_table(
        "log_miner_state",
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.Column("last_line_id", sa.BigInteger(), nullable=False),
        sa.Column("templates", sa.Integer(), nullable=False),
        sa.Column("updated_at", vigil.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_log_miner_state")),
    )

    op.create_table(
        "log_processed_messages",
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("processed_at", vigil.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shard", "message_id", name=op.f("pk_log_processed_messages")),
    )
    op.create_index(
        "ix_log_processed_messages_processed_at", "log_processed_messages", ["processed_at"]
    )

    if op.get_bind().dialect.name == "postgresql":
        # 'simple': no stemming or stop words, so host names, codes and "not" stay searchable.
        op.execute(
            "ALTER TABLE log_lines ADD COLUMN search tsvector GENERATED ALWAYS AS "
            f"(to_tsvector('simple', left(message, {_FTS_PREFIX_CHARS}))) STORED"
        )
        op.execute("CREATE INDEX ix_log_lines_search ON log_lines USING gin (search)")
    else:
        # External-content FTS5: the text lives once (in log_lines); triggers keep the index.
        op.execute(
            "CREATE VIRTUAL TABLE log_lines_fts USING fts5(message, content='log_lines', "
            "content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER log_lines_fts_insert AFTER INSERT ON log_lines BEGIN "
            "INSERT INTO log_lines_fts(rowid, message) "
            f"VALUES (new.id, substr(new.message, 1, {_FTS_PREFIX_CHARS})); "
            "END"
        )
        op.execute(
            "CREATE TRIGGER log_lines_fts_delete AFTER DELETE ON log_lines BEGIN "
            "INSERT INTO log_lines_fts(log_lines_fts, rowid, message) "
            f"VALUES ('delete', old.id, substr(old.message, 1, {_FTS_PREFIX_CHARS})); "
            "END"
        )
        op.execute(
            "CREATE TRIGGER log_lines_fts_update AFTER UPDATE OF message ON log_lines BEGIN "
            "INSERT INTO log_lines_fts(log_lines_fts, rowid, message) "
            f"VALUES ('delete', old.id, substr(old.message, 1, {_FTS_PREFIX_CHARS})); "
            "INSERT INTO log_lines_fts(rowid, message) "
            f"VALUES (new.id, substr(new.message, 1, {_FTS_PREFIX_CHARS})); "
            "END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for trigger in ("log_lines_fts_insert", "log_lines_fts_delete", "log_lines_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS log_lines_fts")
    op.drop_table("log_processed_messages")
    op.drop_table("log_miner_state")
    op.drop_table("log_templates")
    op.drop_table("log_lines")
