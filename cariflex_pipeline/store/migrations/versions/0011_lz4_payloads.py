"""PostgreSQL compresses the OpenADR audit log's raw payloads with lz4 where the server has it.

Every event version is logged with its whole payload (kilobytes: a day of quarter hours), and a listing of
thousands of events logs megabytes at once; the default pglz spent three times as long compressing them as lz4
does. Only new rows are compressed the new way (PostgreSQL reads both). A server built without lz4 (it is
optional before PostgreSQL 16) keeps pglz, and SQLite stores text as it is: nothing to do for either.

Revision ID: 0011_lz4_payloads
Revises: 0010_openadr_sites
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_lz4_payloads"
down_revision = "0010_openadr_sites"
branch_labels = None
depends_on = None

_HAS_LZ4 = sa.text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")


def upgrade() -> None:
    _set_compression("lz4")


def downgrade() -> None:
    _set_compression("pglz")


def _set_compression(method: str) -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql" or not connection.execute(_HAS_LZ4).scalar():
        return
    op.execute(f"ALTER TABLE openadr_events ALTER COLUMN raw_payload SET COMPRESSION {method}")
