"""outbound: undeliverable addresses (bounces), the auto-reply rate-limit index, and what the
mailer needs to compose a queued reply (recipient display name, References)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "undeliverable",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("outbox_message_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("diagnostic", sa.String(), nullable=False),
        sa.Column("marked_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("undeliverable", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_undeliverable_address"), ["address"], unique=False)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recipient_name", sa.String(), nullable=True))
        batch_op.add_column(
            sa.Column("references", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.create_index(
            "ix_outbox_recipient_created", ["recipient", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_recipient_created")
        batch_op.drop_column("references")
        batch_op.drop_column("recipient_name")
    with op.batch_alter_table("undeliverable", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_undeliverable_address"))
    op.drop_table("undeliverable")
