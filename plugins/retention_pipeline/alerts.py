"""Tell the data team when a DAG fails: by email and/or a Slack-compatible webhook.

:func:`on_failure` is the ``on_failure_callback`` of both DAGs' default args: Airflow
calls it in the task's process once the task has failed for good (retries exhausted).
The alert names the DAG, the task, the run and its data interval, and, when a quality
gate stopped the run, each failed check with its counts (the ``results`` a
:class:`~retention_pipeline.quality.QualityGateFailed` carries), so the reader knows
what broke without opening Airflow.

Email goes through the same Airflow SMTP connection as the digest
(``RETENTION_SMTP_CONN_ID``) to ``RETENTION_ALERT_RECIPIENTS``; the webhook
(``RETENTION_ALERT_WEBHOOK_URL``) receives ``{"text": ...}``, which Slack, Mattermost
and Teams' incoming webhooks all accept. An alert that cannot be delivered is logged,
never raised: the task has failed already, and a broken alert channel must not hide why.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from retention_pipeline.config import get_settings

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 6000


@dataclass(frozen=True)
class Alert:
    subject: str
    text: str


def _iso(moment: Any) -> str:
    return moment.isoformat() if isinstance(moment, datetime) else str(moment or "no interval")


def build_alert(
    *,
    dag_id: str,
    task_id: str,
    run_id: str | None,
    interval_start: datetime | None,
    interval_end: datetime | None,
    exception: BaseException | str | None,
    try_number: int | None = None,
) -> Alert:
    """The alert's text: what failed, where, for which interval, and which checks."""
    from retention_pipeline.weeks import iso_week_of

    settings = get_settings()
    week = ""
    if dag_id == "retention_weekly" and isinstance(interval_start, datetime):
        week = f" for {iso_week_of(interval_start, settings.timezone)}"
    results = list(getattr(exception, "results", None) or [])
    failed = [(r, f) for r in results for f in r.errors]
    subject = f"[retention] {dag_id}.{task_id} failed{week}"
    if failed:
        subject += f": {len(failed)} failed check{'s' if len(failed) != 1 else ''}"
    lines = [
        f"DAG:      {dag_id}",
        f"Task:     {task_id}" + (f" (try {try_number})" if try_number else ""),
        f"Run:      {run_id or '-'}",
        f"Interval: {_iso(interval_start)} .. {_iso(interval_end)}",
        "",
    ]
    if failed:
        lines.append(f"Failed checks ({len(failed)}):")
        for result, finding in failed:
            lines.append(f"  - {finding.describe(result.table)}")
        warnings = sum(len(r.warnings) for r in results)
        if warnings:
            lines.append(f"Warnings: {warnings} (see the Data Docs)")
        for r in results:
            page = r.page_url or (f"file://{r.docs_path}" if r.docs_path else None)
            if page:
                lines.append(f"Data Docs ({r.suite}): {page}")
        lines.append("")
    error = str(exception) if exception is not None else "unknown error (see the task log)"
    if len(error) > MAX_ERROR_CHARS:
        error = error[:MAX_ERROR_CHARS] + " [...]"
    lines += [
        "Error:",
        error,
        "",
        "Nothing downstream of the failed task ran: BI keeps the last published marts, "
        "and no digest or call list went out for this run.",
    ]
    return Alert(subject=subject, text="\n".join(lines))


def send_email(alert: Alert, recipients: tuple[str, ...], conn_id: str, sender: str) -> bool:
    from retention_pipeline.digest.delivery import smtp_settings_from_airflow

    smtp = smtp_settings_from_airflow(conn_id)
    if smtp is None:
        log.warning("no Airflow connection %r: the alert was not emailed", conn_id)
        return False
    message = EmailMessage()
    message["Subject"] = alert.subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "retention.local")
    message.set_content(alert.text)
    context = ssl.create_default_context()
    if not smtp.verify_certificate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    client: smtplib.SMTP
    if smtp.ssl:
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    with client:
        if smtp.starttls and not smtp.ssl:
            client.starttls(context=context)
            client.ehlo()
        if smtp.login:
            client.login(smtp.login, smtp.password or "")
        client.send_message(message, to_addrs=list(recipients))
    return True


def send_webhook(alert: Alert, url: str, timeout: float = 10.0) -> bool:
    body = json.dumps({"text": f"*{alert.subject}*\n```\n{alert.text}\n```"}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return 200 <= int(response.status) < 300


def deliver(alert: Alert) -> dict[str, bool]:
    """Send the alert on every configured channel; report which ones took it."""
    settings = get_settings()
    delivered: dict[str, bool] = {}
    if settings.alert_recipients:
        try:
            delivered["email"] = send_email(
                alert, settings.alert_recipients, settings.smtp_conn_id, settings.digest_sender
            )
        except Exception:
            log.exception("the alert email could not be sent")
            delivered["email"] = False
    if settings.alert_webhook_url:
        try:
            delivered["webhook"] = send_webhook(alert, settings.alert_webhook_url)
        except Exception:
            log.exception("the alert webhook could not be called")
            delivered["webhook"] = False
    if not delivered:
        log.warning("no alert channel configured (RETENTION_ALERT_RECIPIENTS, RETENTION_ALERT_WEBHOOK_URL)")
    log.error("%s\n%s", alert.subject, alert.text)
    return delivered


def on_failure(context: Any) -> None:
    """``on_failure_callback`` of the DAGs: never raises."""
    try:
        ti = context.get("task_instance") or context.get("ti")
        dag_run = context.get("dag_run")
        alert = build_alert(
            dag_id=str(getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")),
            task_id=str(getattr(ti, "task_id", "?")),
            run_id=context.get("run_id") or getattr(dag_run, "run_id", None),
            interval_start=context.get("data_interval_start"),
            interval_end=context.get("data_interval_end"),
            exception=context.get("exception"),
            try_number=getattr(ti, "try_number", None),
        )
        deliver(alert)
    except Exception:
        log.exception("the failure alert itself failed")


class DigestLate(RuntimeError):
    pass


def check_digest_delivered(iso_week: str, interval_end: datetime | None = None) -> dict[str, str]:
    """The digest watch: by the deadline, every distribution list must have the week's
    digest in ``ops.digest_sends`` as sent; otherwise alert the data team and fail.

    It reads the ledger rather than the weekly run's state, so it also catches a run that
    succeeded without sending (no SMTP connection) and one that never started.
    """
    from retention_pipeline import warehouse

    settings = get_settings()
    warehouse.bootstrap()
    with warehouse.connect() as conn:
        sent = {
            r[0]
            for r in conn.execute(
                "select recipient from ops.digest_sends where iso_week = %s and status = 'sent'", (iso_week,)
            ).fetchall()
        }
    missing = [r for r in settings.digest_recipients if r not in sent]
    if not missing:
        log.info("digest %s was delivered to %s", iso_week, ", ".join(sorted(sent)))
        return {"iso_week": iso_week, "sent_to": ",".join(sorted(sent))}
    alert = build_alert(
        dag_id="retention_digest_watch",
        task_id="check_digest_delivered",
        run_id=None,
        interval_start=None,
        interval_end=interval_end,
        exception=(
            f"the customer digest of {iso_week} has not been sent to {', '.join(missing)} by the "
            f"deadline (Monday {settings.digest_deadline_hour:02d}:00 {settings.timezone}): check "
            "retention_weekly's run for that week and ops.digest_sends"
        ),
    )
    deliver(alert)
    raise DigestLate(alert.text)
