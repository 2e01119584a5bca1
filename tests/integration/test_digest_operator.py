"""The digest's optional sections read from real tables, and the operator commands
(``retention digest preview`` / ``resend``) against a real PostgreSQL and a real SMTP
server (aiosmtpd on 127.0.0.1).

The marts are created by hand with the columns the dbt models document, in the
test's own database (fresh per test), under their real schema names.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from retention_pipeline.cli import main as cli
from retention_pipeline.digest.data import load_digest_data
from retention_pipeline.digest_task import DigestCommandError, deliver_weekly_digest, resend_digest

pytestmark = pytest.mark.integration

WEEK = "2026-W47"  # 2026-11-16 .. 2026-11-23

BASE_MARTS = """
create schema if not exists marts;
create table marts.rpt_weekly_kpis (
    iso_week text, week_start date, week_end date, customers_at_start bigint, customers_at_end bigint,
    active_customers bigint, new_customers bigint, churned_customers bigint, reactivated_customers bigint,
    potential_or_churned_at_start bigint, churn_rate numeric, retention_rate numeric,
    reactivation_rate numeric, revenue numeric, orders bigint, arpu numeric, average_check numeric,
    survey_responses bigint, nps numeric, csi numeric
);
insert into marts.rpt_weekly_kpis values
    ('2026-W46', '2026-11-09', '2026-11-16', 30, 30, 20, 2, 1, 1, 8, 0.030, 0.96, 0.1, 1000, 20,
     50, 50, 5, 20, 2.0),
    ('2026-W47', '2026-11-16', '2026-11-23', 30, 31, 21, 3, 2, 1, 8, 0.021, 0.97, 0.1, 1100, 22,
     52.38, 50, 6, 25, 2.1);
create table marts.dim_customers (
    customer_id text, full_name text, email text, phone text, manager_id text, churn_stage text,
    value_tier text, rfm_segment text, intervention_level text, intervention_priority int,
    net_revenue numeric, open_complaints int, as_of date
);
-- C1-C4 At risk, C5-C8 Loyal, C9-C10 Champions, C11-C12 Lost; M1 has C1-C6, M2 the rest;
-- C13 ordered for the first time this week, C14 never ordered
insert into marts.dim_customers
select 'C' || g, 'Name ' || g, 'c' || g || '@mail.example.org', '+49 170 000 ' || g,
       case when g <= 6 then 'M1' else 'M2' end,
       case when g in (1, 2, 3, 5, 6, 11) then 'churned' when g = 14 then null else 'active' end,
       'C',
       case when g <= 4 then 'At risk' when g <= 8 then 'Loyal' when g <= 10 then 'Champions'
            when g <= 12 then 'Lost' else 'New' end,
       'green', 1, 10, 0, date '2026-11-23'
from generate_series(1, 14) as g;
create table marts.rpt_cohort_retention_monthly (
    cohort_month date, months_since_first int, cohort_size bigint, retained_customers bigint,
    customer_retention numeric, revenue numeric, revenue_retention numeric
);
insert into marts.rpt_cohort_retention_monthly values
    ('2026-08-01', 0, 10, 10, 1, 100, 1), ('2026-08-01', 1, 10, 4, 0.4, 40, 0.4),
    ('2026-08-01', 2, 10, 3, 0.3, 30, 0.3),
    ('2026-09-01', 0, 10, 10, 1, 100, 1), ('2026-09-01', 1, 10, 1, 0.1, 10, 0.1);
create table marts.rpt_survey_comments (
    response_id text, submitted_at timestamptz, score int, score_group text, comment text,
    channel text, manager_id text
);
"""

SECTION_MARTS = """
create table marts.fct_customer_weekly_status (
    customer_id text, week_start date, churn_stage text, value_tier text, rfm_segment text,
    intervention_level text
);
-- last week (the row of week 2026-11-09 holds the stage at that week's end): C1, C5, C11, C12 churned
insert into marts.fct_customer_weekly_status
select 'C' || g, date '2026-11-09',
       case when g in (1, 5, 11, 12) then 'churned' else 'active' end, 'C', 'x', 'green'
from generate_series(1, 12) as g;
-- this week's rows say everyone churned: reading them as "last week" would be wrong
insert into marts.fct_customer_weekly_status
select 'C' || g, date '2026-11-16', 'churned', 'C', 'x', 'red' from generate_series(1, 13) as g;

create table marts.rpt_stage_transitions (
    iso_week text, week_start date, from_stage text, to_stage text, customers bigint
);
insert into marts.rpt_stage_transitions values
    ('2026-W47', '2026-11-16', 'new', 'active', 3),
    ('2026-W47', '2026-11-16', 'active', 'active', 100),
    ('2026-W47', '2026-11-16', 'active', 'churn risk', 5),
    ('2026-W47', '2026-11-16', 'potential churn', 'churned', 4),
    ('2026-W47', '2026-11-16', 'churn risk', 'active', 2),
    ('2026-W46', '2026-11-09', 'active', 'churn risk', 99);

create schema if not exists staging;
create table staging.stg_helpdesk__tickets (
    ticket_id text, customer_id text, created_at timestamptz, subject text, ticket_type text,
    is_complaint boolean
);
insert into staging.stg_helpdesk__tickets values
    ('T1', 'C1', '2026-11-16 09:00+00', 'Late delivery', 'complaint', true),
    ('T2', 'C2', '2026-11-17 09:00+00', '  Late delivery ', 'complaint', true),
    ('T3', 'C3', '2026-11-18 09:00+00', 'Late delivery', 'complaint', true),
    ('T4', 'C4', '2026-11-19 09:00+00', 'Refund stuck, call +49 170 1234567', 'complaint', true),
    ('T5', 'C5', '2026-11-22 23:59+00', 'Refund stuck, call +49 170 1234567', 'complaint', true),
    ('T6', 'C6', '2026-11-18 09:00+00', 'Late delivery', 'question', false),
    ('T7', 'C7', '2026-11-15 23:00+00', 'Broken box', 'complaint', true),
    ('T8', 'C8', '2026-11-23 00:00+00', 'Broken box', 'complaint', true),
    ('T9', 'C9', '2026-11-20 09:00+00', '', 'complaint', true);

create table marts.rpt_service_quality (
    iso_week text, manager_id text, tickets bigint, sla_breach_rate numeric
);
insert into marts.rpt_service_quality values
    ('2026-W47', 'M1', 10, 0.1), ('2026-W47', 'M2', 30, 0.2), ('2026-W46', 'M1', 10, 0.9);

create table marts.rpt_campaign_results (
    campaign text, variant text, pushed bigint, reached bigint, agreed_to_return bigint,
    converted bigint, conversion_rate numeric, uplift numeric, uplift_ci_low numeric,
    uplift_ci_high numeric, retention_cost numeric
);
insert into marts.rpt_campaign_results values
    ('2026-W45', 'A', 50, 40, 25, 8, 0.16, 0.05, 0.01, 0.09, 20),
    ('2026-W45', 'B', 50, 35, 20, 5, 0.10, -0.01, -0.05, 0.03, 32),
    ('2026-W44', 'A', 10, 1, 1, 1, 0.1, 0, 0, 0, 1),
    ('2026-W48', 'A', 9, 9, 9, 9, 1, 1, 1, 1, 1);
"""


@pytest.fixture
def engine(warehouse_db: Any) -> Iterator[sa.Engine]:
    eng = sa.create_engine(warehouse_db.sqlalchemy_url("psycopg"))
    with eng.begin() as conn:
        conn.execute(sa.text(BASE_MARTS))
    yield eng
    eng.dispose()


@pytest.fixture
def sections(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        conn.execute(sa.text(SECTION_MARTS))
    return engine


def test_without_the_optional_marts_the_digest_still_loads(engine: sa.Engine) -> None:
    data = load_digest_data(engine, WEEK)
    assert data.week.churn_rate == pytest.approx(0.021)
    assert data.stage_flows is None
    assert data.segment_hot_spots is None and data.manager_hot_spots is None
    assert data.sla_breach_rate is None and data.campaign is None
    # no staging view yet: the helpdesk's raw table (bootstrapped, empty) answers
    assert data.complaint_themes == () and data.complaints == 0
    # the cohort hot spot needs only the cohort mart: Sep's month 1 (10%) vs Aug's (40%)
    assert data.cohort_hot_spot is not None
    assert data.cohort_hot_spot.cohort_month == date(2026, 9, 1)
    assert data.cohort_hot_spot.months_since_first == 1


def test_complaints_from_raw_tickets_when_staging_is_not_built(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into raw.tickets (ticket_id, customer_id, created_at, status, priority, type, "
                "subject, updated_at, _batch_id, _loaded_at) values "
                "('T1', 'C1', '2026-11-17 10:00+00', 'open', 'high', 'complaint', 'Late delivery', "
                "'2026-11-17 10:00+00', 1, now()), "
                "('T2', 'C1', '2026-11-17 11:00+00', 'open', 'high', 'question', 'Late delivery', "
                "'2026-11-17 11:00+00', 1, now())"
            )
        )
    data = load_digest_data(engine, WEEK)
    assert data.complaints == 1
    assert [(t.subject, t.tickets) for t in data.complaint_themes or ()] == [("Late delivery", 1)]


def test_optional_sections_from_real_tables(sections: sa.Engine) -> None:
    data = load_digest_data(sections, WEEK)

    assert data.stage_flows is not None
    assert sorted((f.from_stage, f.to_stage, f.customers) for f in data.stage_flows) == [
        ("active", "active", 100),
        ("active", "churn risk", 5),
        ("churn risk", "active", 2),
        ("new", "active", 3),
        ("potential churn", "churned", 4),
    ]

    assert data.segment_hot_spots is not None
    assert [(s.group, s.customers, s.churned_before, s.churned_now) for s in data.segment_hot_spots] == [
        ("At risk", 4, 1, 3),  # +50 pp
        ("Loyal", 4, 1, 2),  # +25 pp; Lost fell, Champions stayed, C13 has no last week
    ]
    assert data.manager_hot_spots is not None
    assert [(s.group, s.customers, s.churned_before, s.churned_now) for s in data.manager_hot_spots] == [
        ("M1", 6, 2, 5)
    ]

    # in the week only (not T7 before it, not T8 at its exclusive end), complaints only
    # (not the question T6), whitespace-insensitive; blank subjects count in the total
    assert data.complaints == 6
    assert [(t.subject, t.tickets) for t in data.complaint_themes or ()] == [
        ("Late delivery", 3),
        ("Refund stuck, call +49 170 1234567", 2),
    ]
    assert data.sla_breach_rate == pytest.approx((10 * 0.1 + 30 * 0.2) / 40)

    assert data.campaign is not None and data.campaign.campaign == "2026-W45"  # not W48, after the week
    assert [(v.variant, v.pushed, v.converted) for v in data.campaign.variants] == [
        ("A", 50, 8),
        ("B", 50, 5),
    ]
    assert data.campaign.variants[1].uplift_ci_low == pytest.approx(-0.05)


def test_render_of_the_sections_masks_ticket_contacts(sections: sa.Engine) -> None:
    from retention_pipeline.digest.render import render_digest

    out = render_digest(load_digest_data(sections, WEEK), "en", churn_target=0.02)
    assert "1234567" not in out.text and "1234567" not in out.html
    assert "Refund stuck, call [phone hidden]" in out.text
    assert "Manager M1" in out.text and "At risk" in out.text
    assert any(cid.startswith("flows.") for cid in out.images)


# --- operator commands ---


@dataclass
class Mailbox:
    received: list[tuple[list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 OK"


@pytest.fixture
def mailbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    """A real SMTP server, reachable through the Airflow connection the digest uses."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("RETENTION_SMTP_CONN_ID", "digest_smtp_test")
    monkeypatch.setenv(
        "AIRFLOW_CONN_DIGEST_SMTP_TEST",
        f"smtp://127.0.0.1:{port}?disable_ssl=true&disable_tls=true&timeout=5",
    )
    saved = dict(os.environ)  # the resend command adds Airflow's local settings
    try:
        yield box
    finally:
        controller.stop()
        os.environ.clear()
        os.environ.update(saved)


def _ledger(engine: sa.Engine) -> dict[str, tuple[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select recipient, status, attempts from ops.digest_sends where iso_week = :w"),
            {"w": WEEK},
        )
        return {r: (s, a) for r, s, a in rows}


def test_preview_writes_files_and_neither_sends_nor_touches_the_ledger(
    sections: sa.Engine, mailbox: Mailbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(["digest", "preview", "--week", WEEK, "--out", str(tmp_path / "preview"), "--language", "ru"])
    html = (tmp_path / "preview" / f"digest_{WEEK}.html").read_text(encoding="utf-8")
    text = (tmp_path / "preview" / f"digest_{WEEK}.txt").read_text(encoding="utf-8")
    assert (tmp_path / "preview" / f"digest_{WEEK}.eml").stat().st_size > 0
    assert 'lang="ru"' in html and "data:image/png;base64," in html and "cid:" not in html
    assert "Как клиенты переходили между стадиями" in text and "Последняя кампания обзвона" in text
    assert f"digest_{WEEK}.html" in capsys.readouterr().out
    assert mailbox.received == [] and _ledger(sections) == {}
    # and it did not overwrite the sent copy's folder
    assert not (Path(os.environ["RETENTION_OUTBOX_DIR"]) / "digests").exists()


def test_preview_default_folder(sections: sa.Engine, mailbox: Mailbox) -> None:
    cli(["digest", "preview", "--week", WEEK])
    assert (Path(os.environ["RETENTION_OUTBOX_DIR"]) / "previews" / f"digest_{WEEK}.html").is_file()
    assert mailbox.received == [] and _ledger(sections) == {}


class Records(logging.Handler):
    """Collects the task module's records itself: Airflow, once imported, routes the
    root logger through structlog, past pytest's log capture."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def task_log() -> Iterator[Records]:
    records = Records()
    logger = logging.getLogger("retention_pipeline.digest_task")
    logger.addHandler(records)
    try:
        yield records
    finally:
        logger.removeHandler(records)


def test_resend_is_explicit_logged_and_ledgered(
    sections: sa.Engine, mailbox: Mailbox, task_log: Records
) -> None:
    first = deliver_weekly_digest(WEEK, {"expectations": 3, "warnings": 0})
    assert first["sent_to"] == "everyone@example.com"
    assert _ledger(sections) == {"everyone@example.com": ("sent", 1)}
    # the weekly run again: the ledger keeps it from going out twice
    assert deliver_weekly_digest(WEEK, {"expectations": 3, "warnings": 0})["sent_to"] == ""
    assert len(mailbox.received) == 1

    cli(["digest", "resend", "--week", WEEK])
    assert len(mailbox.received) == 2
    assert _ledger(sections) == {"everyone@example.com": ("sent", 2)}
    assert any("EXPLICIT RESEND" in m and "outbox copy" in m for m in task_log.messages)
    sent, resent = (email.message_from_bytes(c, policy=email.policy.default) for _, c in mailbox.received)
    # the same mail the company got: same id, same subject, same checked-data footer
    assert resent["Message-ID"] == sent["Message-ID"] and resent["Subject"] == sent["Subject"]
    assert "3 checks" in resent.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    cli(["digest", "resend", "--week", WEEK, "--to", "ops@example.com"])
    assert mailbox.received[-1][0] == ["ops@example.com"]
    # a resend, to a new recipient too, says so the RFC 5322 way
    to_ops = email.message_from_bytes(mailbox.received[-1][1], policy=email.policy.default)
    assert to_ops["Resent-To"] == "ops@example.com" and to_ops["Message-ID"] == sent["Message-ID"]
    assert resent["Resent-To"] == "everyone@example.com" and sent["Resent-To"] is None
    assert _ledger(sections) == {"everyone@example.com": ("sent", 2), "ops@example.com": ("sent", 1)}

    # without the outbox copy the week is rendered again from the marts
    Path(first["eml"]).unlink()
    task_log.messages.clear()
    assert resend_digest(WEEK) == ["everyone@example.com"]
    assert any("new rendering from the marts" in m for m in task_log.messages)
    assert _ledger(sections)["everyone@example.com"] == ("sent", 3)
    assert len(mailbox.received) == 4


def test_resend_without_an_smtp_connection_says_so(
    sections: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_SMTP_CONN_ID", "digest_smtp_nowhere")
    monkeypatch.delenv("AIRFLOW_CONN_DIGEST_SMTP_NOWHERE", raising=False)
    with pytest.raises(DigestCommandError, match="no Airflow connection 'digest_smtp_nowhere'"):
        resend_digest(WEEK)
    assert _ledger(sections) == {}
