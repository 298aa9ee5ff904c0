"""Persistence: SQLAlchemy Core tables, Alembic migrations, repositories and the unit of work."""
