"""sources.host and sources.fetched_by: politeness per host across fetch workers

A feed is not claimed while another worker holds a lease on a feed of the same host or
fetched there less than the per-host interval ago (see sources.claim_due). Existing rows
get their host from their URL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("fetched_by", sa.Text(), nullable=True))
        batch_op.create_index("ix_sources_host", ["host"], unique=False)
    conn = op.get_bind()
    table = sa.table("sources", sa.column("id", sa.Integer()), sa.column("url", sa.Text()),
                     sa.column("host", sa.Text()))  # fmt: skip
    rows = [
        {"row_id": r.id, "host": (urlsplit(r.url).hostname or "").lower()}
        for r in conn.execute(sa.select(table.c.id, table.c.url))
    ]
    if rows:
        conn.execute(
            table.update()
            .where(table.c.id == sa.bindparam("row_id"))
            .values(host=sa.bindparam("host")),
            rows,
        )


def downgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_index("ix_sources_host")
        batch_op.drop_column("fetched_by")
        batch_op.drop_column("host")
