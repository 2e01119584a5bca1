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


async def digest_deadline_missed(context: dict[str, Any] | None = None, **_: Any) -> None:
    """Deadline callback of the weekly DAG (an ``AsyncCallback``: it runs in the triggerer).

    Airflow calls it when a weekly run has not finished ``RETENTION_DIGEST_DEADLINE_HOURS``
    after it was queued (the Monday the week ended), i.e. the company did not get its
    digest in time, whether the run is stuck, slow or failed. Never raises.
    """
    import asyncio

    try:
        run = (context or {}).get("dag_run") or {}
        deadline = ((context or {}).get("deadline") or {}).get("deadline_time")
        alert = build_alert(
            dag_id=str(run.get("dag_id", "retention_weekly")),
            task_id="(deadline)",
            run_id=run.get("dag_run_id") or run.get("run_id"),
            interval_start=_parse_time(run.get("data_interval_start")),
            interval_end=_parse_time(run.get("data_interval_end")),
            exception=(
                f"the weekly run had not finished by its deadline {deadline} "
                f"(state {run.get('state', '?')}): the digest and the call list are late"
            ),
        )
        await asyncio.to_thread(deliver, alert)
    except Exception:
        log.exception("the deadline alert itself failed")


def _parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
