"""drop ix_outbox_recipient: ix_outbox_recipient_created (recipient, created_at) serves every
query on outbox.recipient (the auto-reply rate limit, the only one), and each outbox INSERT in
the intake transaction paid for updating both

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_recipient")


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_recipient", ["recipient"], unique=False)
