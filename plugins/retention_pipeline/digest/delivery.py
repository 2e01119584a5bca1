"""Send the digest exactly once per (ISO week, recipient), and keep a copy on disk.

The ledger ``ops.digest_sends`` is written *before* the side effect and completed
after it (ARCHITECTURE: ledger contract):

1. in one short transaction, insert the (week, recipient) row or lock the existing one;
   a row already ``sent`` is skipped unless ``force``; otherwise it becomes ``sending``
   (attempts + 1) and that is committed *before* the mail goes out;
2. one SMTP transaction for that recipient;
3. the row becomes ``sent`` (or ``failed`` with the error, and the exception goes on, so
   the Airflow task fails and its retry sends only what is not ``sent``).

A row still ``sending`` at step 1 means a run died between 1 and 3: the mail may or
may not have left. It is sent again (a missing company digest is worse than a
duplicate) with a warning. To make "died" the only way a row can be ``sending`` when
we look at it, a whole send holds a PostgreSQL advisory lock on the week: a second
concurrent run for the same week stops instead of racing the first (with a
transaction-pooling proxy such as PgBouncer in between, session locks do not hold;
point the engine at PostgreSQL directly).

There are no retries in here on purpose: Airflow's task retry is the one retry policy,
and Airflow's ``SmtpHook`` is not used because it retries a send up to five times itself.
"""

from __future__ import annotations

import base64
import logging
import os
import smtplib
import ssl
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from retention_pipeline.digest.render import RenderedDigest
from retention_pipeline.weeks import parse_iso_week

log = logging.getLogger(__name__)

LEDGER = "ops.digest_sends"
MAX_ERROR_CHARS = 2000


class DigestSendInProgress(RuntimeError):
    """Another process is sending this week's digest right now."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    ssl: bool = False  # implicit TLS from the first byte (SMTPS, usually port 465)
    timeout: float = 30.0
    verify_certificate: bool = True


def _flag(value: Any) -> bool:
    # Extras set through a connection URI arrive as strings, and bool("false") is True.
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def smtp_settings_from_airflow(conn_id: str) -> SmtpSettings | None:
    """Read an Airflow SMTP connection the way ``apache-airflow-providers-smtp`` defines it.

    None when no such connection is defined: the caller then keeps the digest in the
    outbox only (the local demo has no mail server). Any other lookup error raises.

    Provider semantics: TLS is on unless the extra ``disable_ssl`` is true (then
    ``smtplib.SMTP_SSL``), STARTTLS is on unless ``disable_tls`` is true, ``timeout``
    defaults to 30 s, and ``ssl_context: "none"`` skips certificate validation. A local
    mail catcher therefore needs both ``disable_ssl`` and ``disable_tls``.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    extra = conn.extra_dejson
    use_ssl = not _flag(extra.get("disable_ssl", False))
    starttls = not _flag(extra.get("disable_tls", False)) and not use_ssl
    return SmtpSettings(
        host=conn.host or "localhost",
        port=int(conn.port) if conn.port else (465 if use_ssl else 25),
        login=conn.login or None,
        password=conn.password or None,
        starttls=starttls,
        ssl=use_ssl,
        timeout=float(extra.get("timeout", 30)),
        verify_certificate=str(extra.get("ssl_context", "default")).lower() != "none",
    )


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not settings.verify_certificate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _SmtpSession:
    """One connection, opened on first use: a week already sent never touches the server."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        client: smtplib.SMTP
        if s.ssl:
            client = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=_tls_context(s))
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            if s.starttls:
                client.starttls(context=_tls_context(s))
                client.ehlo()
        if s.login:
            client.login(s.login, s.password or "")
        return client

    def send(self, message: EmailMessage, recipient: str) -> None:
        if self.client is None:
            self.client = self._connect()
        refused = self.client.send_message(message, to_addrs=[recipient])
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)

    def close(self, *, clean: bool) -> None:
        if self.client is None:
            return
        try:
            if clean:
                self.client.quit()
            else:
                self.client.close()
        except (smtplib.SMTPException, OSError):
            self.client.close()
        self.client = None


@contextmanager
def _week_lock(engine: sa.Engine, iso_week: str) -> Iterator[None]:
    key = f"{LEDGER}:{iso_week}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        got = conn.execute(
            sa.text("select pg_try_advisory_lock(hashtextextended(:key, 0))"), {"key": key}
        ).scalar()
        if not got:
            raise DigestSendInProgress(
                f"another process is sending the digest for {iso_week}; not sending in parallel"
            )
        try:
            yield
        finally:
            # Session locks outlive the checkout: a pooled connection would keep it.
            conn.execute(sa.text("select pg_advisory_unlock(hashtextextended(:key, 0))"), {"key": key})


def _claim(
    engine: sa.Engine,
    iso_week: str,
    recipient: str,
    message_id: str,
    subject: str,
    force: bool,
) -> bool:
    """Step 1 of the ledger protocol; True when this recipient should get the mail now."""
    keys = {"week": iso_week, "recipient": recipient, "message_id": message_id, "subject": subject}
    with engine.begin() as conn:
        fresh = conn.execute(
            sa.text(
                f"insert into {LEDGER} (iso_week, recipient, status, message_id, subject, "
                "attempts, started_at) values (:week, :recipient, 'sending', :message_id, "
                ":subject, 1, now()) on conflict (iso_week, recipient) do nothing returning 1"
            ),
            keys,
        ).scalar()
        if fresh:
            return True
        row: Any = conn.execute(
            sa.text(
                f"select status, attempts, error, sent_at from {LEDGER} "
                "where iso_week = :week and recipient = :recipient for update"
            ),
            keys,
        ).one()
        status, attempts, error, sent_at = row
        if status == "sent" and not force:
            log.info("digest %s already sent to %s at %s; skipping", iso_week, recipient, sent_at)
            return False
        if status == "sent":
            log.warning(
                "FORCED RESEND of digest %s to %s: it was already sent at %s "
                "(attempt %d); recipients will get it twice",
                iso_week,
                recipient,
                sent_at,
                attempts + 1,
            )
        elif status == "sending":
            log.warning(
                "digest %s to %s was left 'sending' by an interrupted run (attempt %d); "
                "sending again, a duplicate is possible",
                iso_week,
                recipient,
                attempts,
            )
        else:
            log.info("digest %s to %s failed before (%s); sending again", iso_week, recipient, error)
        conn.execute(
            sa.text(
                f"update {LEDGER} set status = 'sending', attempts = attempts + 1, "
                "message_id = :message_id, subject = :subject, error = null, "
                "started_at = now(), sent_at = null "
                "where iso_week = :week and recipient = :recipient"
            ),
            keys,
        )
    return True


def _resent(message: EmailMessage, recipient: str) -> EmailMessage:
    """``message`` with the resent fields of RFC 5322 (3.6.6), for a deliberate resend
    (``force``: an operator reintroducing a week's digest, to its recipients or to new
    ones).

    The Message-ID stays the week's, so the copy is recognisably the same digest;
    ``Resent-Message-ID`` is new for each resend, and ``Resent-Date``, ``Resent-From``
    and ``Resent-To`` say when, by whom and to whom it went again. The weekly run's
    sends, a retry after a failed or interrupted one included, carry none of these.
    """
    resent = deepcopy(message)
    sender = str(message["From"] or "")
    domain = str(message["Message-ID"] or "").rpartition("@")[2].rstrip(">") or None
    resent["Resent-Date"] = format_datetime(datetime.now(UTC))
    if sender:
        resent["Resent-From"] = sender
    resent["Resent-To"] = recipient
    resent["Resent-Message-ID"] = make_msgid("retention-digest-resend", domain=domain)
    return resent


def _finish(engine: sa.Engine, iso_week: str, recipient: str, error: str | None) -> None:
    """Step 3: ``sent`` with the time, or ``failed`` with the error."""
    sent_at = "now()" if error is None else "null"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"update {LEDGER} set status = :status, error = :error, sent_at = {sent_at} "
                "where iso_week = :week and recipient = :recipient"
            ),
            {
                "status": "sent" if error is None else "failed",
                "error": None if error is None else error[:MAX_ERROR_CHARS],
                "week": iso_week,
                "recipient": recipient,
            },
        )


def send_digest(
    engine: sa.Engine,
    message: EmailMessage,
    iso_week: str,
    recipients: Sequence[str],
    smtp: SmtpSettings,
    force: bool = False,
) -> list[str]:
    """Send ``message`` to each recipient not yet served for ``iso_week``; return those sent now.

    Each entry of ``recipients`` is one SMTP transaction and one ledger row; a
    distribution list address is one recipient. On any delivery error the current
    recipient is marked ``failed`` and the error is re-raised; recipients already sent
    in this call stay ``sent``. ``force`` resends to recipients already ``sent``.
    """
    parse_iso_week(iso_week)
    stamped = message.get("X-Retention-Digest-Week")
    if stamped is not None and stamped != iso_week:
        raise ValueError(f"message is the digest for {stamped}, not {iso_week}")
    targets = list(dict.fromkeys(r.strip() for r in recipients if r.strip()))
    if not targets:
        raise ValueError("the digest needs at least one recipient")
    message_id = str(message["Message-ID"] or "")
    subject = str(message["Subject"] or "")

    sent: list[str] = []
    session = _SmtpSession(smtp)
    ok = False
    with _week_lock(engine, iso_week):
        try:
            for recipient in targets:
                if not _claim(engine, iso_week, recipient, message_id, subject, force):
                    continue
                try:
                    session.send(_resent(message, recipient) if force else message, recipient)
                except Exception as exc:
                    _finish(engine, iso_week, recipient, f"{type(exc).__name__}: {exc}")
                    log.error("digest %s to %s failed: %s", iso_week, recipient, exc)
                    raise
                _finish(engine, iso_week, recipient, None)
                sent.append(recipient)
                log.info("digest %s sent to %s (%s)", iso_week, recipient, message_id)
            ok = True
        finally:
            session.close(clean=ok)
    return sent


def _write_atomically(path: Path, data: bytes) -> None:
    # A reader (or a re-run) never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def browser_html(rendered: RenderedDigest) -> str:
    """The HTML with pictures inlined as data: URIs, so the file opens in a browser."""
    html = rendered.html
    for cid, png in rendered.images.items():
        html = html.replace(f"cid:{cid}", "data:image/png;base64," + base64.b64encode(png).decode())
    return html


def write_outbox(
    rendered: RenderedDigest, message: EmailMessage, outbox_dir: Path, iso_week: str
) -> dict[str, Path]:
    """Write ``digest_<week>.html``, ``.txt`` and ``.eml``; re-running overwrites them."""
    parse_iso_week(iso_week)
    outbox_dir = Path(outbox_dir)
    outbox_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "html": outbox_dir / f"digest_{iso_week}.html",
        "txt": outbox_dir / f"digest_{iso_week}.txt",
        "eml": outbox_dir / f"digest_{iso_week}.eml",
    }
    _write_atomically(paths["html"], browser_html(rendered).encode("utf-8"))
    _write_atomically(paths["txt"], rendered.text.encode("utf-8"))
    _write_atomically(paths["eml"], message.as_bytes(policy=policy.SMTP))
    return paths
