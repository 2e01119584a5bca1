"""Great Expectations gates: a suite from ``expectations/`` run against one table.

The suites are data under version control (``expectations/<suite>.json``, GX's own
suite format). GX is configured here, when a task runs, never at DAG parse time. A
failed expectation of severity ``critical`` (GX's default) raises
:class:`QualityGateFailed`, so the task fails and everything downstream stops; a
``warning`` is logged and kept in the Data Docs.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retention_pipeline.config import get_settings
from retention_pipeline.warehouse import WarehouseAddress

log = logging.getLogger(__name__)

# A gate validates each suite with GX's BOOLEAN_ONLY result format first: each column
# expectation then needs only its unexpected count, which GX computes for all of them in
# one query per table, where SUMMARY adds, per expectation, a query for a sample of the
# failing values that scans the whole table when there are none (dim_customers' suite:
# 4 queries on the table against 15; timings in bench/HISTORY.md, 2026-12-05). Only
# the expectations that failed, warning or critical, are then validated again, with
# SUMMARY, for the counts and samples the log, the alert and the Data Docs page report;
# their detailed results take the place of their boolean ones in the first result, so
# one page shows the whole suite. A passing expectation's row on that page shows it
# passed, without observed values.
PASS_FORMAT: dict[str, Any] = {"result_format": "BOOLEAN_ONLY"}
DETAIL_FORMAT: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 10}


# The validation results behind the Data Docs pages, a folder of the site (GX's JSON
# results, by suite, run and batch). The site's index lists the newest of them
# (RETENTION_DATA_DOCS_INDEX_LIMIT): building it lists the folder and reads each listed
# result back (costs in the README's Operations section). Older pages stay on disk,
# reachable from the logs and alerts that named them.
DOCS_SITE = "retention"
RESULTS_STORE = "retention_validation_results"
RESULTS_SUBDIR = "results"


class QualityGateFailed(RuntimeError):
    """A gate stopped the run; ``results`` keeps what failed, for the alert to report."""

    def __init__(self, message: str, results: list[GateResult] | None = None) -> None:
        super().__init__(message)
        self.results = list(results or [])


@dataclass
class Finding:
    expectation: str
    column: str | None
    kwargs: dict[str, Any]
    severity: str
    unexpected_count: int | None
    element_count: int | None
    sample: list[Any]
    observed: Any

    def describe(self, table: str) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items() if k not in ("batch_id", "column"))
        what = f"{self.expectation}({args})" if args else self.expectation
        where = f"{table}.{self.column}" if self.column else table
        text = f"[{self.severity}] {what} failed on {where}"
        if self.unexpected_count is not None:
            text += f": {self.unexpected_count} of {self.element_count} rows unexpected"
            if self.sample:
                text += f", e.g. {self.sample[:5]!r}"
        elif self.observed is not None:
            text += f": observed {self.observed!r}"
        return text


@dataclass
class GateResult:
    suite: str
    table: str
    success: bool
    evaluated: int
    findings: list[Finding] = field(default_factory=list)
    docs_path: Path | None = None
    # the Data Docs page of this very validation (docs_path is the site's index)
    page_url: str | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "critical"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity != "critical"]

    def summary(self) -> str:
        lines = [
            f"GX suite {self.suite} on {self.table}: {self.evaluated} expectations, "
            f"{len(self.errors)} failed, {len(self.warnings)} warnings"
        ]
        lines += ["  " + f.describe(self.table) for f in self.findings]
        if self.page_url:
            lines.append(f"  Data Docs: {self.page_url}")
        elif self.docs_path:
            lines.append(f"  Data Docs: file://{self.docs_path}")
        return "\n".join(lines)


def load_suite_file(suite_name: str, expectations_dir: Path | None = None) -> dict[str, Any]:
    folder = expectations_dir or get_settings().expectations_dir
    path = folder / f"{suite_name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite {path}")
    suite: dict[str, Any] = json.loads(path.read_text())
    return suite


def run_gate(
    address: WarehouseAddress,
    suite_name: str,
    schema: str,
    table: str,
    *,
    run_name: str,
    raise_on_failure: bool = True,
    docs_dir: Path | None = None,
    build_index: bool = True,
) -> GateResult:
    """Validate ``schema.table`` with the suite; raise if a critical expectation fails.

    ``build_index=False`` writes the validation's Data Docs page but leaves the site's
    index to :func:`build_docs_index`, for a task that runs several gates in a row.
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    spec = load_suite_file(suite_name)
    docs_dir = docs_dir or get_settings().outbox_dir / "data_docs"
    context = _docs_context(docs_dir)
    # add_sql, not add_postgres: the latter rejects unix-socket URLs (the embedded warehouse).
    datasource = context.data_sources.add_sql(
        name="warehouse", connection_string=address.sqlalchemy_url("psycopg2")
    )
    asset = datasource.add_table_asset(name=f"{schema}.{table}", table_name=table, schema_name=schema)
    batch_definition = asset.add_batch_definition_whole_table("whole table")
    suite = context.suites.add(
        gx.ExpectationSuite(name=suite_name, expectations=spec["expectations"], meta=spec.get("meta", {}))
    )
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_name} on {schema}.{table}", data=batch_definition, suite=suite)
    )

    def validate(validation: Any, result_format: dict[str, Any], checkpoint_name: str) -> Any:
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=checkpoint_name, validation_definitions=[validation], result_format=result_format
            )
        )
        return checkpoint.run(run_id=RunIdentifier(run_name=run_name))

    outcome = validate(validation, PASS_FORMAT, f"gate {suite_name}")
    failed_ids = {
        r.expectation_config.id for v in outcome.run_results.values() for r in v.results if not r.success
    }
    if failed_ids:
        # only now pay for the failing rows' counts and samples, and only for those that
        # failed (the suite's expectations keep the order of its file)
        positions = [i for i, e in enumerate(suite.expectations) if e.id in failed_ids]
        details_suite = context.suites.add(
            gx.ExpectationSuite(
                name=f"{suite_name} details", expectations=[spec["expectations"][i] for i in positions]
            )
        )
        original_id = {
            duplicate.id: suite.expectations[i].id
            for duplicate, i in zip(details_suite.expectations, positions, strict=True)
        }
        details_validation = context.validation_definitions.add(
            gx.ValidationDefinition(
                name=f"{suite_name} details on {schema}.{table}", data=batch_definition, suite=details_suite
            )
        )
        details = validate(details_validation, DETAIL_FORMAT, f"gate {suite_name}, details")
        _splice_details(outcome, details, original_id)
        # the Data Docs builder reads a validation's result back from GX's store, where
        # the checkpoint left the boolean one; the details run's own result has no page
        for identifier, validation_result in outcome.run_results.items():
            context.validation_results_store.set(identifier, validation_result)
        for identifier in details.run_results:
            context.validation_results_store.remove_key(identifier)
        _remove_empty_folders(docs_dir / RESULTS_SUBDIR / f"{suite_name} details")
    # the Data Docs pages of the result, details spliced in, and of the suite (what GX's
    # UpdateDataDocsAction builds, built here so that a failing gate gets one page, the
    # whole suite's, not one per validation run)
    pages = [*outcome.run_results, ExpectationSuiteIdentifier(name=suite_name)]
    with _docs_lock(docs_dir):
        context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=pages, build_index=build_index)
    result = _to_gate_result(outcome, suite_name, f"{schema}.{table}")
    index = docs_dir / "index.html"
    result.docs_path = index if index.exists() else None
    result.page_url = _validation_page(context, outcome)
    if result.errors:
        log.error("%s", result.summary())
        if raise_on_failure:
            raise QualityGateFailed(result.summary(), [result])
    elif result.warnings:
        log.warning("%s", result.summary())
    else:
        log.info("%s", result.summary())
    return result


def _docs_context(docs_dir: Path) -> Any:
    """An ephemeral GX context whose validation results and Data Docs site are folders.

    The results are kept on disk next to their pages, not in the context's memory: the
    site's index is rebuilt from the results store, so with an in-memory store each
    gate's index listed its own validation only.
    """
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.add_store(
        RESULTS_STORE,
        {
            "class_name": "ValidationResultsStore",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir / RESULTS_SUBDIR),
            },
        },
    )
    context.validation_results_store_name = RESULTS_STORE
    context.add_data_docs_site(
        DOCS_SITE,
        {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {
                "class_name": "KeepingSiteIndexBuilder",
                "module_name": __name__,
                "validation_results_limit": get_settings().data_docs_index_limit,
                "view": {"class_name": "CompiledOnceJinjaIndexPageView", "module_name": __name__},
            },
            # merged into GX's default sections: their builder and view change, their
            # stores and renderers stay (SiteBuilder takes the key; GX's TypedDict of a
            # site's config leaves it out)
            "site_section_builders": {  # type: ignore[typeddict-unknown-key]
                name: {  # a dict each: GX sets keys in some
                    "class_name": "AskedPagesSiteSectionBuilder",
                    "module_name": __name__,
                    "view": {"class_name": "CompiledOnceJinjaPageView", "module_name": __name__},
                }
                for name in ("expectations", "validations", "profiling")
            },
        },
    )
    return context


def build_docs_index(docs_dir: Path | None = None) -> Path:
    """Rebuild the Data Docs site's index from the results folder, writing no page.

    Returns the index's path.
    """
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    docs_dir = docs_dir or get_settings().outbox_dir / "data_docs"
    context = _docs_context(docs_dir)
    # GX builds a page for every stored resource when given no resources: one it has
    # no source for makes it build no page, and then the index
    no_page = [ExpectationSuiteIdentifier(name="retention: index only")]
    with _docs_lock(docs_dir):
        context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=no_page, build_index=True)
    return docs_dir / "index.html"


def __getattr__(name: str) -> Any:
    """The Data Docs classes the site's config names, built on first use so that importing
    this module stays free of GX.

    ``KeepingSiteIndexBuilder``: each gate runs in its own ephemeral GX context, and GX's
    index builder deletes every page whose source its context does not know: every other
    suite's expectations page (a context holds its gate's suite only), and every
    validation page older than the results folder (pages written before 2026-12-07). This
    builder keeps them; a kept page whose result is not in the folder is left out of the
    index, with GX's warning "Validation result not found".

    ``AskedPagesSiteSectionBuilder``: GX's section builder, which lists every key of its
    source store and then skips those it was not asked for. A gate asks for its own
    result and suite, and the results store holds every gate's result of every run, so
    each gate's pages cost more with every week kept (on the test home after ~20 weekly
    runs, listing and parsing the keys was ~40% of the Data Docs build). This builder
    gives GX only the asked keys that the store has; asked for nothing, it lists all as
    GX does. The index still reads every result: it lists them.

    ``CompiledOnceJinjaPageView`` and ``CompiledOnceJinjaIndexPageView``: GX's views, whose
    Jinja environments share one in-memory bytecode cache. GX builds a new view, and so a
    new Jinja environment with an empty template cache, for every Data Docs build, and
    compiles each of its ~40 templates again: three quarters of a build's time, and a
    build runs for every gate (a weekly run's ~10, every ingest batch's). Every view
    these classes make has GX's one configuration, so the compiled code is the same.
    """
    if name == "KeepingSiteIndexBuilder":
        from great_expectations.render.renderer.site_builder import DefaultSiteIndexBuilder

        class KeepingSiteIndexBuilder(DefaultSiteIndexBuilder):
            def build(self, skip_and_clean_missing: bool = True, build_index: bool = True) -> Any:
                return super().build(skip_and_clean_missing=False, build_index=build_index)

        globals()[name] = KeepingSiteIndexBuilder
        return KeepingSiteIndexBuilder
    if name == "AskedPagesSiteSectionBuilder":
        from great_expectations.render.renderer.site_builder import DefaultSiteSectionBuilder

        class AskedPagesSiteSectionBuilder(DefaultSiteSectionBuilder):
            def build(self, resource_identifiers: Any = None) -> None:
                store = self.source_store
                if not resource_identifiers:
                    return super().build(resource_identifiers)
                asked = [
                    k for k in resource_identifiers if isinstance(k, store.key_class) and store.has_key(k)
                ]
                store.list_keys = lambda *args, **kwargs: list(asked)  # this build's listing only
                try:
                    return super().build(resource_identifiers)
                finally:
                    del store.list_keys  # the store's own method again

        globals()[name] = AskedPagesSiteSectionBuilder
        return AskedPagesSiteSectionBuilder
    if name in ("CompiledOnceJinjaPageView", "CompiledOnceJinjaIndexPageView"):
        from great_expectations.render.view.view import DefaultJinjaIndexPageView, DefaultJinjaPageView

        for gx_view in (DefaultJinjaPageView, DefaultJinjaIndexPageView):
            view = _compiled_once(gx_view)
            globals()[view.__name__] = view
        return globals()[name]
    raise AttributeError(name)


def _compiled_once(gx_view: type) -> type:
    """``gx_view`` with the process's shared Jinja bytecode cache on its environment
    (Jinja still checks each template's source against the code it has for it)."""

    class View(gx_view):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.env.bytecode_cache = _template_code()

    View.__name__ = View.__qualname__ = gx_view.__name__.replace("Default", "CompiledOnce")
    return View


@functools.cache
def _template_code() -> Any:
    import jinja2
    import jinja2.bccache

    class InMemoryBytecodeCache(jinja2.BytecodeCache):
        def __init__(self) -> None:
            self.code: dict[str, bytes] = {}

        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            if bucket.key in self.code:
                bucket.bytecode_from_string(self.code[bucket.key])

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            self.code[bucket.key] = bucket.bytecode_to_string()

    return InMemoryBytecodeCache()


@contextlib.contextmanager
def _docs_lock(docs_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the Data Docs folder (an advisory ``flock`` on a file in
    it), so that two gates never write to the site at the same time. Gates can run at
    the same time (the ingest DAG validates its entities' batches in parallel tasks, and
    an ingest run can overlap the weekly one); with one index build at a time, the last
    one lists every result stored before it, and each gate stores its result first."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    with open(docs_dir / ".index.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_empty_folders(top: Path) -> None:
    """Remove ``top`` and the folders under it that hold no file (GX's store removes a
    result's file, not the folders of its suite, run and time)."""
    for folder, _subfolders, _files in os.walk(top, topdown=False):
        with contextlib.suppress(OSError):  # not empty: another run's result is in it
            os.rmdir(folder)


def _validation_page(context: Any, outcome: Any) -> str | None:
    """The file:// URL of this run's validation page, so a log line opens the right one."""
    for identifier in outcome.run_results:
        for site in context.get_docs_sites_urls(resource_identifier=identifier, site_name=DOCS_SITE):
            url = site.get("site_url")
            if url:
                return str(url)
    return None


def _splice_details(outcome: Any, details: Any, original_id: dict[str | None, str | None]) -> None:
    """Put each detailed result in the place of its expectation's boolean one in ``outcome``.

    ``original_id`` maps an expectation of the details suite to the one of the gate's
    suite it was copied from; a result the details run did not give is left as it was.
    """
    detailed: dict[str | None, Any] = {}
    for validation_result in details.run_results.values():
        for r in validation_result.results:
            expectation_id = original_id[r.expectation_config.id]
            r.expectation_config.id = expectation_id
            detailed[expectation_id] = r
    for validation_result in outcome.run_results.values():
        validation_result.results = [
            detailed.get(r.expectation_config.id, r) for r in validation_result.results
        ]


def _to_gate_result(outcome: Any, suite_name: str, table: str) -> GateResult:
    findings: list[Finding] = []
    evaluated = 0
    for validation_result in outcome.run_results.values():
        for r in validation_result.results:
            evaluated += 1
            if r.success:
                continue
            config = r.expectation_config
            kwargs = {k: v for k, v in dict(config.kwargs).items() if v is not None}
            res = r.result or {}
            severity = getattr(config, "severity", "critical")
            severity = getattr(severity, "value", severity)
            findings.append(
                Finding(
                    expectation=config.type,
                    column=kwargs.get("column"),
                    kwargs=kwargs,
                    severity=str(severity),
                    unexpected_count=res.get("unexpected_count"),
                    element_count=res.get("element_count"),
                    sample=list(res.get("partial_unexpected_list") or []),
                    observed=res.get("observed_value"),
                )
            )
    return GateResult(
        suite=suite_name,
        table=table,
        success=not any(f.severity == "critical" for f in findings),
        evaluated=evaluated,
        findings=findings,
    )
