"""docker-compose.yml is valid Compose and consistent with the project."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_validates_against_the_compose_specification():
    # check-jsonschema vendors the Compose Specification's JSON schema
    schema_file = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(_compose(), schema)


def test_compose_runs_the_same_airflow_as_pyproject_with_every_component():
    pyproject = (ROOT / "pyproject.toml").read_text()
    airflow_minor = re.search(r'"apache-airflow==(\d+\.\d+)\.\*"', pyproject).group(1)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"FROM apache/airflow:{re.escape(airflow_minor)}\.\d+-python3\.11", dockerfile)
    services = _compose()["services"]
    commands = {name: " ".join(svc.get("command", [])) for name, svc in services.items()}
    for component in ("api-server", "scheduler", "dag-processor", "triggerer", "celery worker"):
        assert any(component in c for c in commands.values()), component
    for name in ("redis", "warehouse", "airflow-db", "mailpit", "metabase"):
        assert name in services
    worker = services["airflow-worker"]
    env = worker["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["RETENTION_WAREHOUSE_URL"].startswith("postgresql://")
    assert "AIRFLOW_CONN_SMTP_DEFAULT" in env
    mounts = " ".join(worker["volumes"])
    for folder in ("./dags", "./dbt_project", "./expectations", "./plugins"):
        assert folder in mounts


def test_no_secret_is_committed_in_the_compose_file():
    text = (ROOT / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET|FERNET_KEY)\s*:", line):
            assert "${" in line, line
