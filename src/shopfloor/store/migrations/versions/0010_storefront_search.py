"""storefront search: SQLite FTS5 index of the catalog, PostgreSQL full-text index

Revision ID: 0010_storefront_search
Revises: 0009_integrations
"""
from alembic import op

revision = "0010_storefront_search"
down_revision = "0009_integrations"
branch_labels = None
depends_on = None

_SQLITE_UP = [
    "CREATE VIRTUAL TABLE sku_search USING fts5(sku UNINDEXED, name, category, tokenize='unicode61')",
    "INSERT INTO sku_search (sku, name, category) SELECT sku, name, category FROM skus",
    "CREATE TRIGGER skus_search_insert AFTER INSERT ON skus BEGIN "
    "INSERT INTO sku_search (sku, name, category) VALUES (new.sku, new.name, new.category); END",
    "CREATE TRIGGER skus_search_update AFTER UPDATE OF name, category ON skus BEGIN "
    "DELETE FROM sku_search WHERE sku = old.sku; "
    "INSERT INTO sku_search (sku, name, category) VALUES (new.sku, new.name, new.category); END",
    "CREATE TRIGGER skus_search_delete AFTER DELETE ON skus BEGIN DELETE FROM sku_search WHERE sku = old.sku; END",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE_UP:
            op.execute(statement)
    else:
        op.execute("CREATE INDEX ix_skus_search ON skus "
                   "USING gin (to_tsvector('simple', name || ' ' || category))")
    op.create_index("ix_skus_category_sku", "skus", ["category", "sku"])


def downgrade() -> None:
    op.drop_index("ix_skus_category_sku", table_name="skus")
    if op.get_bind().dialect.name == "sqlite":
        for name in ("skus_search_insert", "skus_search_update", "skus_search_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS sku_search")
    else:
        op.execute("DROP INDEX IF EXISTS ix_skus_search")
