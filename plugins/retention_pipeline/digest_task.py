"""The weekly digest task and its operator commands: render from the marts, keep a copy
in the outbox, send once; preview without sending; resend on purpose.

The three entry points share one rendering path (``_render_week``) so a preview shows
exactly what the Monday run would send, in any language.
"""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retention_pipeline import warehouse
from retention_pipeline.config import Settings, get_settings

if TYPE_CHECKING:
    import sqlalchemy as sa

    from retention_pipeline.digest.render import RenderedDigest

log = logging.getLogger(__name__)


class DigestCommandError(RuntimeError):
    """An operator command cannot do what was asked (no SMTP connection, no recipient)."""


def _render_week(
    engine: sa.Engine,
    settings: Settings,
    iso_week: str,
    *,
    quality: Mapping[str, Any] | None,
    language: str | None = None,
    recipients: Sequence[str] | None = None,
) -> tuple[RenderedDigest, EmailMessage]:
    from retention_pipeline.digest.data import load_digest_data
    from retention_pipeline.digest.message import build_message
    from retention_pipeline.digest.render import render_digest

    data = load_digest_data(engine, iso_week, quality=quality, timezone=settings.timezone)
    rendered = render_digest(
        data,
        language or settings.digest_language,
        churn_target=settings.churn_rate_target,
        currency=settings.currency,
    )
    message = build_message(
        rendered,
        sender=settings.digest_sender,
        recipients=list(recipients or settings.digest_recipients),
        message_id_domain=settings.digest_sender.rpartition("@")[2] or "retention.local",
        iso_week=iso_week,
    )
    return rendered, message


def deliver_weekly_digest(iso_week: str, quality: dict[str, int], *, force: bool = False) -> dict[str, str]:
    from retention_pipeline.digest.delivery import send_digest, smtp_settings_from_airflow, write_outbox

    settings = get_settings()
    engine = warehouse.engine()
    try:
        rendered, message = _render_week(engine, settings, iso_week, quality=quality)
        paths = write_outbox(rendered, message, settings.outbox_dir / "digests", iso_week)
        result = {kind: str(path) for kind, path in paths.items()}
        result["subject"] = rendered.subject
        smtp = smtp_settings_from_airflow(settings.smtp_conn_id)
        if smtp is None:
            log.warning(
                "no Airflow connection %r: the digest of %s is in the outbox (%s) and was not emailed",
                settings.smtp_conn_id,
                iso_week,
                result.get("html"),
            )
            result["sent_to"] = ""
            return result
        sent = send_digest(engine, message, iso_week, list(settings.digest_recipients), smtp, force=force)
        result["sent_to"] = ",".join(sent)
        return result
    finally:
        engine.dispose()


def preview_digest(
    iso_week: str, out_dir: Path | None = None, language: str | None = None
) -> dict[str, Path]:
    """Render ``iso_week`` from the marts into ``out_dir`` (HTML, text, .eml).

    Sends nothing and never reads or writes the send ledger, so it is safe to run at
    any time, for any week the marts hold. The default folder is the outbox's
    ``previews/`` (``previews/<language>/`` when a language is asked for, so an English
    and a Russian preview of one week sit side by side), apart from ``digests/`` so a
    preview never overwrites the copy of what was actually sent.
    """
    from retention_pipeline.digest.delivery import write_outbox

    settings = get_settings()
    engine = warehouse.engine()
    try:
        rendered, message = _render_week(engine, settings, iso_week, quality=None, language=language)
    finally:
        engine.dispose()
    target = out_dir or settings.outbox_dir / "previews"
    if language:
        target = target / rendered.language if out_dir is None else target
    paths = write_outbox(rendered, message, target, iso_week)
    log.info("preview of the %s digest (%s): %s", iso_week, rendered.language, paths["html"])
    return paths


def _sent_copy(settings: Settings, iso_week: str) -> EmailMessage | None:
    path = settings.outbox_dir / "digests" / f"digest_{iso_week}.eml"
    if not path.is_file():
        return None
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    return parsed if isinstance(parsed, EmailMessage) else None


def resend_digest(iso_week: str, to: Sequence[str] = (), *, operator: str | None = None) -> list[str]:
    """Send ``iso_week``'s digest again, on purpose: ``force=True`` through the ledger.

    The message is the copy the weekly run kept in the outbox (what the company
    actually received), so a resend weeks later does not show today's customer
    stages under last month's date; only when that copy is missing is the week
    rendered again from the marts. Each recipient's ledger row gets ``attempts + 1``;
    the resend is logged at WARNING with who asked for it.
    """
    from retention_pipeline.digest.delivery import send_digest, smtp_settings_from_airflow
    from retention_pipeline.weeks import parse_iso_week

    parse_iso_week(iso_week)
    settings = get_settings()
    recipients = [r.strip() for r in to if r.strip()] or list(settings.digest_recipients)
    if not recipients:
        raise DigestCommandError("no recipient: pass --to or set RETENTION_DIGEST_RECIPIENTS")
    smtp = smtp_settings_from_airflow(settings.smtp_conn_id)
    if smtp is None:
        raise DigestCommandError(
            f"no Airflow connection {settings.smtp_conn_id!r} (set AIRFLOW_CONN_"
            f"{settings.smtp_conn_id.upper()}): nothing can be sent"
        )
    engine = warehouse.engine()
    try:
        message = _sent_copy(settings, iso_week)
        source = "the outbox copy of what was sent"
        if message is None:
            _, message = _render_week(engine, settings, iso_week, quality=None, recipients=recipients)
            source = "a new rendering from the marts (no outbox copy)"
        log.warning(
            "EXPLICIT RESEND of the %s digest to %s, requested by %s, using %s",
            iso_week,
            ", ".join(recipients),
            operator or "an operator",
            source,
        )
        return send_digest(engine, message, iso_week, recipients, smtp, force=True)
    finally:
        engine.dispose()
