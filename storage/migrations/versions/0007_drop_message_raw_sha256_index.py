"""drop ix_message_raw_sha256: nothing queries message.raw_sha256 (a message without a
Message-ID is deduped by the id intake/mime.py derives from the same sha256, under the
unique message.message_id), and the random hash put one more page in the WAL for nearly
every message the intake transaction stores (about 5 of 49 frames per batch of 4)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_raw_sha256")


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index("ix_message_raw_sha256", ["raw_sha256"], unique=False)
