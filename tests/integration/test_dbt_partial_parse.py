"""dbt parses the whole project again whenever the vars or the connection differ from its
last invocation's. The pipeline keeps one partial-parse file per connection and vars
(dbt_config.kept_partial_parse), so going back to a week already run, or the freshness
check after a build, reuses its own file instead of parsing every file again.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import pytest

from retention_pipeline.config import get_settings
from retention_pipeline.dbt_config import export_dbt_env, kept_partial_parse_file, run_dbt
from retention_pipeline.weekly_tasks import source_freshness

pytestmark = pytest.mark.integration

# vars no other test passes: each pair's first parse here is a whole one
W46 = {"as_of": "2026-11-16T00:00:00+00:00", "asked_by": "test_dbt_partial_parse"}
W47 = {"as_of": "2026-11-23T00:00:00+00:00", "asked_by": "test_dbt_partial_parse"}


def _files_parsed(vars_: dict[str, str] | None = None) -> int:
    """Run `dbt parse` through run_dbt; how many of the project's files dbt parsed."""
    run_dbt(["parse", "--quiet"], vars_=vars_)
    perf = json.loads((get_settings().dbt_project_dir / "target" / "perf_info.json").read_text())
    assert perf["path_count"] > 100
    return int(perf["parsed_path_count"])


def test_going_back_to_earlier_vars_parses_no_file_again_and_the_freshness_check_keeps_its_file(warehouse_db):
    # the first time each pair is seen, dbt parses everything (the project's file was
    # written for other vars)
    assert _files_parsed(W46) > 100
    assert _files_parsed(W47) > 100
    # back to the first week: dbt's own single file is W47's, the kept W46 one is put back
    assert _files_parsed(W46) == 0
    # the freshness check (no vars, its own temporary target, started from the project's
    # file, now W46's) keeps the file that a vars-less run_dbt on this connection reuses
    vars_less = kept_partial_parse_file(export_dbt_env())
    vars_less.unlink(missing_ok=True)
    source_freshness(datetime(2026, 11, 23, tzinfo=UTC))
    assert vars_less.exists()
    assert _files_parsed() == 0


def test_the_kept_file_is_chosen_by_the_connection_and_the_vars_target_and_profile_flags():
    env = {"RETENTION_DBT_HOST": "/run/pg", "RETENTION_DBT_PORT": "5432", "RETENTION_DBT_DBNAME": "a"}
    plain = kept_partial_parse_file(env, ["build", "--project-dir", "/p"])
    assert plain == kept_partial_parse_file(env, ["parse", "--target-path", "/tmp/t"])
    assert plain != kept_partial_parse_file({**env, "RETENTION_DBT_DBNAME": "b"}, ["build"])
    week = kept_partial_parse_file(env, ["build", "--vars", json.dumps(W46)])
    assert week != plain
    assert week == kept_partial_parse_file(env, [f"--vars={json.dumps(W46)}", "run"])
    assert week != kept_partial_parse_file(env, ["build", "--vars", json.dumps(W47)])
    assert plain != kept_partial_parse_file(env, ["build", "--target", "prod"])


def test_an_invocation_that_fails_before_parsing_keeps_no_file_under_its_key(warehouse_db):
    # dbt stops at the profile (no such target), before it parses: the file it was
    # given is another pair's and must not be kept as this one's
    args = ["parse", "--quiet", "--target", "no_such_target"]
    kept = kept_partial_parse_file(export_dbt_env(), args)
    kept.unlink(missing_ok=True)
    if not (get_settings().dbt_project_dir / "target" / "partial_parse.msgpack").exists():
        _files_parsed()  # the project's own file, which dbt is then given
    with pytest.raises(subprocess.CalledProcessError):
        run_dbt(args)
    assert not kept.exists()
