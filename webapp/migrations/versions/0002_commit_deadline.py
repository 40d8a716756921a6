"""Refuse to commit a write after the request that made it gave up on it.

A request that waits past its budget answers 503 "nothing was saved" and cuts its connection
(webapp/db.py). If PostgreSQL was paused rather than down, the COMMIT it had already sent
sits in the server's socket buffer and would run when the server resumes, saving a write the
visitor was told failed. db.py stamps each commit of a request with a deadline
(`webapp.commit_deadline`, local to the transaction); these deferred triggers run at COMMIT
and refuse it once that deadline has passed. Without the setting (migrations, the sweep,
psql) nothing is checked.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("restaurants", "reviews")

CHECK_FUNCTION = """
CREATE FUNCTION refuse_commit_past_deadline() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := NULLIF(current_setting('webapp.commit_deadline', true), '');
BEGIN
    IF deadline IS NOT NULL AND clock_timestamp() > deadline THEN
        RAISE EXCEPTION 'commit refused: the request gave up at %', deadline
            USING ERRCODE = 'query_canceled';
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(CHECK_FUNCTION)
    for table in TABLES:
        op.execute(
            f"CREATE CONSTRAINT TRIGGER {table}_commit_deadline "
            f"AFTER INSERT OR UPDATE OR DELETE ON {table} "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
            "EXECUTE FUNCTION refuse_commit_past_deadline()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_commit_deadline ON {table}")
    op.execute("DROP FUNCTION refuse_commit_past_deadline()")
