"""Submission tokens (a form posted twice saves once) and the photo's size in pixels.

Each rendered form carries a one-time token (webapp/forms.py); the row it saves keeps it under
a unique constraint, so concurrent posts of the same form, on any worker or instance, insert
one row and the others find it. Rows saved before have no token (NULLs never conflict), and
their photos no recorded size (the page then lets CSS size them).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TOKEN_TABLES = ("restaurants", "reviews")
PHOTO_SIZE_COLUMNS = ("photo_width", "photo_height")


def upgrade() -> None:
    for table in TOKEN_TABLES:
        op.add_column(table, sa.Column("submission_token", sa.Uuid(), nullable=True))
        op.create_unique_constraint(
            f"uq_{table}_submission_token", table, ["submission_token"]
        )
    for column in PHOTO_SIZE_COLUMNS:
        op.add_column("reviews", sa.Column(column, sa.Integer(), nullable=True))


def downgrade() -> None:
    for column in PHOTO_SIZE_COLUMNS:
        op.drop_column("reviews", column)
    for table in TOKEN_TABLES:
        op.drop_constraint(f"uq_{table}_submission_token", table, type_="unique")
        op.drop_column(table, "submission_token")
