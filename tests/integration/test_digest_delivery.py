"""The digest against a real SMTP server (aiosmtpd) and a real PostgreSQL ledger.

What is checked: the MIME structure a mail server receives; exactly one mail per
(week, recipient) across re-runs; ``force`` resends and says so; an SMTP failure
marks the row failed and raises, and the retry sends only what is missing; a row
left ``sending`` by a crash is resent with a warning; two concurrent sends of one
week do not race; and the whole path from marts to mailbox without contact data.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
import smtplib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from retention_pipeline.digest.data import DigestDataError, load_digest_data
from retention_pipeline.digest.delivery import DigestSendInProgress, SmtpSettings, send_digest
from retention_pipeline.digest.message import build_message
from retention_pipeline.digest.render import render_digest
from retention_pipeline.digest.sample import sample_digest_data

pytestmark = pytest.mark.integration

WEEK = "2026-W47"
SENDER = "retention-digest@example.com"


# --- the warehouse: a fresh database on the real server (see tests/conftest.py) ---


@pytest.fixture
def digest_engine(warehouse_db) -> Iterator[sa.Engine]:
    """An engine on the test's own database, ops ledgers bootstrapped."""
    engine = sa.create_engine(warehouse_db.sqlalchemy_url("psycopg"))
    yield engine
    engine.dispose()


@pytest.fixture
def ledger(digest_engine: sa.Engine) -> Iterator[sa.Engine]:
    yield digest_engine


def _ledger_rows(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select * from ops.digest_sends where iso_week = :w order by recipient"), {"w": WEEK}
        ).mappings()
        return {r["recipient"]: dict(r) for r in rows}


# --- the mail server: a real SMTP server on a free local port ---


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    def parsed(self) -> EmailMessage:
        msg = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class RecordingHandler:
    """Stores every accepted message; answers 451 for the addresses in ``fail_for``."""

    received: list[Received] = field(default_factory=list)
    fail_for: set[str] = field(default_factory=set)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail_for & set(envelope.rcpt_tos):
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 OK"

    def to(self, recipient: str) -> list[Received]:
        return [r for r in self.received if recipient in r.rcpt_tos]


@pytest.fixture
def mail_server(free_port: Callable[[], int]) -> Iterator[tuple[RecordingHandler, SmtpSettings]]:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, SmtpSettings(host="127.0.0.1", port=port, starttls=False, ssl=False, timeout=5)
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def digest_message() -> EmailMessage:
    rendered = render_digest(sample_digest_data(WEEK), "en")
    return build_message(rendered, SENDER, ["everyone@example.com"], "example.com")


# --- the ledger protocol ---


def test_delivered_message_has_the_mail_client_structure(
    ledger: sa.Engine, mail_server: tuple[RecordingHandler, SmtpSettings], digest_message: EmailMessage
) -> None:
    handler, smtp = mail_server
    assert send_digest(ledger, digest_message, WEEK, ["everyone@example.com"], smtp) == [
        "everyone@example.com"
    ]

    [received] = handler.received
    assert received.mail_from == SENDER and received.rcpt_tos == ["everyone@example.com"]
    msg = received.parsed()
    assert msg.get_content_type() == "multipart/alternative"
    plain, related = msg.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html, *images = related.iter_parts()
    assert html.get_content_type() == "text/html"
    assert images and all(p.get_content_type() == "image/png" for p in images)
    cids = {p["Content-ID"].strip("<>") for p in images}
    assert set(re.findall(r'src="cid:([^"]+)"', html.get_content())) == cids
    assert msg["Message-ID"] == digest_message["Message-ID"]

    row = _ledger_rows(ledger)["everyone@example.com"]
    assert (row["status"], row["attempts"], row["error"]) == ("sent", 1, None)
    assert row["message_id"] == "<retention-digest.2026-W47@example.com>"
    assert row["subject"] == digest_message["Subject"] and row["sent_at"] is not None


def test_second_send_for_the_same_week_sends_nothing(
    ledger: sa.Engine, mail_server: tuple[RecordingHandler, SmtpSettings], digest_message: EmailMessage
) -> None:
    handler, smtp = mail_server
    recipients = ["everyone@example.com", "board@example.com"]
    assert send_digest(ledger, digest_message, WEEK, recipients, smtp) == recipients
    assert send_digest(ledger, digest_message, WEEK, recipients, smtp) == []
    assert len(handler.received) == 2
    assert {r: row["attempts"] for r, row in _ledger_rows(ledger).items()} == {
        "board@example.com": 1,
        "everyone@example.com": 1,
    }


def test_force_sends_again_and_says_so_loudly(
    ledger: sa.Engine,
    mail_server: tuple[RecordingHandler, SmtpSettings],
    digest_message: EmailMessage,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, smtp = mail_server
    send_digest(ledger, digest_message, WEEK, ["everyone@example.com"], smtp)
    with caplog.at_level(logging.WARNING, logger="retention_pipeline.digest.delivery"):
        sent = send_digest(ledger, digest_message, WEEK, ["everyone@example.com"], smtp, force=True)
    assert sent == ["everyone@example.com"]
    assert len(handler.to("everyone@example.com")) == 2
    first, again = (r.parsed() for r in handler.to("everyone@example.com"))
    # the same digest (same Message-ID), marked as resent the RFC 5322 way
    assert again["Message-ID"] == first["Message-ID"] == digest_message["Message-ID"]
    assert first["Resent-Message-ID"] is None and first["Resent-Date"] is None
    assert again["Resent-Message-ID"] not in (None, again["Message-ID"])
    assert again["Resent-To"] == "everyone@example.com" and again["Resent-From"] == first["From"]
    assert again["Resent-Date"] is not None
    assert again.get_body(("plain",)).get_content() == first.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    forced = [r for r in caplog.records if "FORCED RESEND" in r.getMessage()]
    assert len(forced) == 1 and forced[0].levelno == logging.WARNING
    row = _ledger_rows(ledger)["everyone@example.com"]
    assert (row["status"], row["attempts"]) == ("sent", 2)


def test_smtp_failure_marks_failed_and_the_retry_sends_exactly_once(
    ledger: sa.Engine, mail_server: tuple[RecordingHandler, SmtpSettings], digest_message: EmailMessage
) -> None:
    handler, smtp = mail_server
    recipients = ["everyone@example.com", "board@example.com", "sales@example.com"]
    handler.fail_for = {"board@example.com"}

    with pytest.raises(smtplib.SMTPDataError) as failure:
        send_digest(ledger, digest_message, WEEK, recipients, smtp)
    assert failure.value.smtp_code == 451
    rows = _ledger_rows(ledger)
    assert rows["everyone@example.com"]["status"] == "sent"
    assert rows["board@example.com"]["status"] == "failed"
    assert "451" in rows["board@example.com"]["error"]
    assert "sales@example.com" not in rows  # never claimed: the task stopped at the failure
    assert [r.rcpt_tos for r in handler.received] == [["everyone@example.com"]]

    handler.fail_for = set()  # the server recovered; Airflow retries the task
    assert send_digest(ledger, digest_message, WEEK, recipients, smtp) == [
        "board@example.com",
        "sales@example.com",
    ]
    for recipient in recipients:
        assert len(handler.to(recipient)) == 1, recipient
    rows = _ledger_rows(ledger)
    assert {r: (row["status"], row["attempts"], row["error"]) for r, row in rows.items()} == {
        "board@example.com": ("sent", 2, None),
        "everyone@example.com": ("sent", 1, None),
        "sales@example.com": ("sent", 1, None),
    }


def test_unreachable_server_marks_failed_and_raises(
    ledger: sa.Engine, digest_message: EmailMessage, free_port: Callable[[], int]
) -> None:
    closed = SmtpSettings(host="127.0.0.1", port=free_port(), timeout=2)
    with pytest.raises(OSError):
        send_digest(ledger, digest_message, WEEK, ["everyone@example.com"], closed)
    row = _ledger_rows(ledger)["everyone@example.com"]
    assert row["status"] == "failed" and row["sent_at"] is None


def test_row_left_sending_by_a_crash_is_sent_with_a_warning(
    ledger: sa.Engine,
    mail_server: tuple[RecordingHandler, SmtpSettings],
    digest_message: EmailMessage,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, smtp = mail_server
    with ledger.begin() as conn:  # what a worker killed between claim and send leaves behind
        conn.execute(
            sa.text(
                "insert into ops.digest_sends (iso_week, recipient, status, message_id, subject, "
                "attempts, started_at) values (:w, 'everyone@example.com', 'sending', 'x', 'y', 1, now())"
            ),
            {"w": WEEK},
        )
    with caplog.at_level(logging.WARNING, logger="retention_pipeline.digest.delivery"):
        assert send_digest(ledger, digest_message, WEEK, ["everyone@example.com"], smtp) == [
            "everyone@example.com"
        ]
    assert any("duplicate is possible" in r.getMessage() for r in caplog.records)
    assert len(handler.received) == 1
    row = _ledger_rows(ledger)["everyone@example.com"]
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert row["message_id"] == digest_message["Message-ID"]


def test_a_concurrent_send_of_the_same_week_is_refused(
    ledger: sa.Engine, mail_server: tuple[RecordingHandler, SmtpSettings], digest_message: EmailMessage
) -> None:
    handler, smtp = mail_server
    key = f"ops.digest_sends:{WEEK}"
    with ledger.connect().execution_options(isolation_level="AUTOCOMMIT") as other:
        assert other.execute(
            sa.text("select pg_try_advisory_lock(hashtextextended(:k, 0))"), {"k": key}
        ).scalar()
        try:
            with pytest.raises(DigestSendInProgress):
                send_digest(ledger, digest_message, WEEK, ["everyone@example.com"], smtp)
        finally:
            other.execute(sa.text("select pg_advisory_unlock(hashtextextended(:k, 0))"), {"k": key})
    assert handler.received == [] and _ledger_rows(ledger) == {}
    # the lock is released after a send, so the next run can proceed
    assert send_digest(ledger, digest_message, WEEK, ["everyone@example.com"], smtp)
    assert send_digest(ledger, digest_message, WEEK, ["other@example.com"], smtp)


def test_message_of_another_week_is_refused(
    ledger: sa.Engine, mail_server: tuple[RecordingHandler, SmtpSettings], digest_message: EmailMessage
) -> None:
    _, smtp = mail_server
    with pytest.raises(ValueError, match="not 2026-W48"):
        send_digest(ledger, digest_message, "2026-W48", ["everyone@example.com"], smtp)


# --- from marts to mailbox ---

MARTS_DDL = """
create table {m}.rpt_weekly_kpis (
    iso_week text, week_start date, week_end date, customers_at_start bigint, customers_at_end bigint,
    active_customers bigint, new_customers bigint, churned_customers bigint, reactivated_customers bigint,
    potential_or_churned_at_start bigint, churn_rate numeric, retention_rate numeric,
    reactivation_rate numeric, revenue numeric, orders bigint, arpu numeric, average_check numeric,
    survey_responses bigint, nps numeric, csi numeric
);
create table {m}.dim_customers (
    customer_id text, full_name text, email text, phone text, manager_id text, churn_stage text,
    value_tier text, rfm_segment text, intervention_level text, intervention_priority int,
    net_revenue numeric, open_complaints int, as_of date
);
create table {m}.rpt_cohort_retention_monthly (
    cohort_month date, months_since_first int, cohort_size bigint, retained_customers bigint,
    customer_retention numeric, revenue numeric, revenue_retention numeric
);
create table {m}.rpt_survey_comments (
    response_id text, submitted_at timestamptz, score int, score_group text, comment text,
    channel text, manager_id text
);
create table {r}.orders (order_id text, _batch_id bigint not null, _loaded_at timestamptz not null);
create table {r}.surveys (response_id text, _batch_id bigint not null, _loaded_at timestamptz not null);
"""


@pytest.fixture
def marts(digest_engine: sa.Engine) -> Iterator[tuple[str, str]]:
    """Throwaway marts and raw schemas with a small, known week in them."""
    suffix = uuid.uuid4().hex[:8]
    m, r = f"digest_marts_{suffix}", f"digest_raw_{suffix}"
    with digest_engine.begin() as conn:
        conn.execute(sa.text(f"create schema {m}; create schema {r};"))
        conn.execute(sa.text(MARTS_DDL.format(m=m, r=r)))
        conn.execute(
            sa.text(
                f"""
                insert into {m}.rpt_weekly_kpis
                select 'prev' || g, date '2026-11-16' - 7 * g, date '2026-11-23' - 7 * g,
                       2000, 2000, 1200 - g, 40, 30, 10, 400, 0.015, 0.97, 0.025, 50000.5, 700,
                       41.6, 71.4, 50, 30, 3.1
                from generate_series(1, 14) as g;
                update {m}.rpt_weekly_kpis set iso_week = to_char(week_start, 'IYYY-"W"IW');
                insert into {m}.rpt_weekly_kpis values ('2026-W47', '2026-11-16', '2026-11-23',
                       2000, 2010, 1234, 56, 33, 37, 400, 0.021, 0.955, 0.0925, 110000, 1600,
                       89.14, 68.75, 120, 40, 3.25);
                insert into {m}.dim_customers
                select 'C' || g, 'Customer Name' || g, 'customer' || g || '@mail.example.org',
                       '+7 900 000-' || lpad(g::text, 4, '0'), 'M1',
                       (array['active', 'churn risk', 'potential churn', 'churned', null])[1 + g % 5],
                       (array['A', 'B', 'C', 'D'])[1 + g % 4], 'Loyal',
                       (array['red', 'orange', 'amber', 'yellow', 'green'])[1 + g % 5], g, 100,
                       g % 2, date '2026-11-23'
                from generate_series(1, 40) as g;
                insert into {m}.rpt_cohort_retention_monthly
                select make_date(2025, 1, 1) + make_interval(months => c), k, 100 + c, 50,
                       case when k = 0 then 1 else 0.5 / k end, 1000, 0.5
                from generate_series(0, 22) as c, generate_series(0, 14) as k
                where make_date(2025, 1, 1) + make_interval(months => c + k) < date '2026-12-01';
                insert into {m}.rpt_survey_comments
                select 'R' || g, timestamptz '2026-11-16 00:00+00' + g * interval '5 hours',
                       case when g % 2 = 0 then g % 7 else 9 + g % 2 end,
                       case when g % 2 = 0 then 'detractor' else 'promoter' end,
                       'comment ' || g || ' mail me: customer' || g || '@mail.example.org',
                       'email', 'M1'
                from generate_series(1, 20) as g;
                insert into {m}.rpt_survey_comments values
                    ('OLD', '2026-11-15 23:00+00', 0, 'detractor', 'last week', 'email', 'M1'),
                    ('EMPTY', '2026-11-17 10:00+00', 0, 'detractor', '  ', 'email', 'M1');
                insert into {r}.orders values ('O1', 2, '2026-11-23 01:00+00'), ('O2', 1, '2026-11-22 01:00+00');
                insert into {r}.surveys values ('R1', 3, '2026-11-23 03:30+00');
                """
            )
        )
    yield m, r
    with digest_engine.begin() as conn:
        conn.execute(sa.text(f"drop schema {m} cascade; drop schema {r} cascade;"))


def test_from_marts_to_mailbox(
    ledger: sa.Engine, marts: tuple[str, str], mail_server: tuple[RecordingHandler, SmtpSettings]
) -> None:
    m, r = marts
    handler, smtp = mail_server
    data = load_digest_data(
        ledger, WEEK, quality={"expectations": 12, "warnings": 0}, marts_schema=m, raw_schema=r
    )

    assert data.week.active_customers == 1234 and data.week.churn_rate == pytest.approx(0.021)
    assert data.previous is not None and data.previous.iso_week == "2026-W46"
    assert len(data.history) == 12 and data.history[-1].iso_week == WEEK
    assert data.stage_counts == {
        "active": 8,
        "churn risk": 8,
        "potential churn": 8,
        "churned": 8,
        "no orders": 8,
    }
    assert data.risk_count(("red",)) == 8 and sum(data.risk_counts.values()) == 40
    assert data.urgent_with_open_complaint == 8  # red/orange with g odd
    assert len(data.cohorts.cohort_months) == 12 and data.cohorts.periods == tuple(range(12))
    assert data.cohorts.cohort_months[-1].isoformat() == "2026-11-01"
    assert len(data.detractor_comments) == 5 and len(data.promoter_comments) == 3
    assert [c.score for c in data.detractor_comments] == sorted(c.score for c in data.detractor_comments)
    assert all(c.comment.startswith("comment") for c in data.detractor_comments)  # not last week's, not blank
    assert data.quality == {
        "checks_passed": True,
        "freshness": datetime(2026, 11, 23, 3, 30, tzinfo=UTC),
        "checks": 12,
        "warnings": 0,
    }

    rendered = render_digest(data, "ru")
    message = build_message(rendered, SENDER, ["everyone@example.com"], "example.com")
    assert send_digest(ledger, message, WEEK, ["everyone@example.com"], smtp) == ["everyone@example.com"]
    [received] = handler.received
    wire = received.content.decode("ascii")  # every part is transfer-encoded
    delivered = received.parsed()
    plain, related = delivered.iter_parts()
    texts = [plain.get_content(), next(related.iter_parts()).get_content(), str(delivered["Subject"])]
    for text in texts:
        assert "mail.example.org" not in text and "Customer Name" not in text and "+7 900" not in text
    assert "mail.example.org" not in wire
    assert "[email hidden]" in texts[0]


def test_a_week_the_marts_do_not_have(ledger: sa.Engine, marts: tuple[str, str]) -> None:
    m, r = marts
    with pytest.raises(DigestDataError, match="2026-W52 is not in"):
        load_digest_data(ledger, "2026-W52", marts_schema=m, raw_schema=r)
    with pytest.raises(ValueError, match="not an ISO week"):
        load_digest_data(ledger, "2026-47", marts_schema=m, raw_schema=r)
