"""The sources file: what a deployment may say, and what it may not."""

from __future__ import annotations

import pytest

from retention_pipeline.entities import ENTITIES
from retention_pipeline.sources.config import SourceConfigError, load_sources
from retention_pipeline.sources.connections import sqlalchemy_url


def test_without_a_file_every_entity_comes_from_the_landing_folder():
    specs = load_sources(None)
    assert set(specs) == set(ENTITIES)
    assert {s.kind for s in specs.values()} == {"files"}


def test_a_file_names_sources_mappings_and_options(tmp_path):
    path = tmp_path / "sources.yml"
    path.write_text(
        """
orders:
  kind: sql
  conn_id: shop_db
  table: shop.orders
  overlap_minutes: 30
  mapping: {id: order_id, total: amount}
tickets:
  kind: zendesk
  conn_id: zendesk
  complaint_tag: klage
"""
    )
    specs = load_sources(path)
    orders, tickets = specs["orders"], specs["tickets"]
    assert (orders.kind, orders.table, orders.overlap_minutes) == ("sql", "shop.orders", 30)
    assert orders.source_name("amount") == "total" and orders.contract_name("id") == "order_id"
    assert orders.source_key == "sql:shop_db:shop.orders"
    assert tickets.options == {"complaint_tag": "klage"}
    assert specs["customers"].kind == "files"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("invoices: {kind: files}", "unknown entity 'invoices'"),
        ("orders: {kind: ftp}", "kind 'ftp' is not one of"),
        ("orders: {kind: sql, table: orders}", "needs a conn_id"),
        ("orders: {kind: sql, conn_id: db}", "exactly one of table or query"),
        ("orders: {kind: sql, conn_id: db, table: 'orders; drop table x'}", "not a plain"),
        ("orders: {kind: sql, conn_id: db, table: o, mapping: {total: price}}", "not a contract column"),
    ],
)
def test_mistakes_are_reported_before_anything_runs(tmp_path, text, message):
    path = tmp_path / "sources.yml"
    path.write_text(text)
    with pytest.raises(SourceConfigError, match=message):
        load_sources(path)


class _Conn:
    def __init__(self, conn_type, extra=None):
        self.conn_type, self.login, self.password = conn_type, "shop", "p@ss/word"
        self.host, self.port, self.schema = "db.internal", 3306, "shop"
        self.extra_dejson = extra or {}


def test_airflow_connections_become_urls_with_the_installed_drivers():
    assert sqlalchemy_url(_Conn("mysql")) == "mysql+pymysql://shop:p%40ss%2Fword@db.internal:3306/shop"
    assert sqlalchemy_url(_Conn("postgres", {"sslmode": "require"})).startswith("postgresql+psycopg://")
    assert sqlalchemy_url(_Conn("postgres", {"sslmode": "require"})).endswith("?sslmode=require")
