"""`dbt run --empty` builds every model with zero rows from each ref and source: the cheap
check a CI job runs on a changed project (every model's SQL and its hooks, against the real
warehouse, in seconds) before it spends a real build. Under ``--empty`` dbt renders each
ref and source as an aliased subquery, so SQL that puts its own alias after one fails
there and only there.
"""

from __future__ import annotations

import json

import pytest

from retention_pipeline import warehouse
from retention_pipeline.dbt_config import ensure_manifest, run_dbt

pytestmark = pytest.mark.integration

VARS = {"as_of": "2026-11-23T00:00:00+00:00"}


def test_every_model_and_its_hooks_run_under_dbt_run_empty(warehouse_db):
    run_dbt(["seed", "--quiet"])
    # the first run creates the incremental models; the second runs their incremental
    # branches and pre-hooks (stale period ends, redone step tails) on what it created
    run_dbt(["run", "--empty", "--quiet"], vars_=VARS)
    run_dbt(["run", "--empty", "--quiet"], vars_=VARS)

    nodes = json.loads(ensure_manifest().read_text())["nodes"].values()
    models = {
        (node["schema"], node.get("alias") or node["name"])
        for node in nodes
        if node["resource_type"] == "model" and node["config"].get("materialized") != "ephemeral"
    }
    with warehouse.connect() as conn:
        built = set(
            conn.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_schema in ('staging', 'intermediate', 'marts')"
            ).fetchall()
        )
    assert len(models) >= 30
    assert models <= built, sorted(models - built)
