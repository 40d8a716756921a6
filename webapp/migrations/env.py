"""Alembic environment: runs on the connection that webapp.db.upgrade_database hands over.

That connection already holds the migration advisory lock inside an open transaction, so this
file neither connects nor commits by itself. Use `flask --app webapp migrate`.
"""

from alembic import context

from webapp.models import Base

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "Run migrations with `flask --app webapp migrate` (webapp.db.upgrade_database), which "
        "takes the advisory lock that keeps concurrent instances from migrating twice."
    )

context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
