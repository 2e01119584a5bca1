"""The weekly digest task: render from the marts, keep a copy in the outbox, send once."""

from __future__ import annotations

import logging

from retention_pipeline import warehouse
from retention_pipeline.config import get_settings

log = logging.getLogger(__name__)


def deliver_weekly_digest(iso_week: str, quality: dict[str, int], *, force: bool = False) -> dict[str, str]:
    from retention_pipeline.digest.data import load_digest_data
    from retention_pipeline.digest.delivery import send_digest, smtp_settings_from_airflow, write_outbox
    from retention_pipeline.digest.message import build_message
    from retention_pipeline.digest.render import render_digest

    settings = get_settings()
    engine = warehouse.engine()
    data = load_digest_data(engine, iso_week, quality=quality)
    rendered = render_digest(data, settings.digest_language)
    message = build_message(
        rendered,
        sender=settings.digest_sender,
        recipients=list(settings.digest_recipients),
        message_id_domain=settings.digest_sender.rpartition("@")[2] or "retention.local",
        iso_week=iso_week,
    )
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
