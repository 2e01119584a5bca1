"""The digest as one MIME message that mail clients show the way we drew it.

Built by hand rather than through Airflow's ``SmtpHook``, which produces an HTML-only
``multipart/mixed`` message (pictures then show up as attachments, and there is no
plain-text part). The structure here is the one clients expect::

    multipart/alternative
    ├── text/plain
    └── multipart/related
        ├── text/html            (<img src="cid:...">)
        └── image/png ...        (Content-ID: <...>, inline)

The Message-ID depends only on the ISO week, so every copy of one week's digest,
including a forced resend, carries the same id and can be recognised as the same mail;
a forced resend adds RFC 5322's resent fields, with a Resent-Message-ID of its own
(``delivery._resent``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from retention_pipeline.digest.render import RenderedDigest

_CID_REFERENCE = re.compile(r"""src=["']cid:([^"']+)["']""")
_DOMAIN = re.compile(r"^[A-Za-z0-9.-]+$")


def message_id_for(iso_week: str, domain: str) -> str:
    """The Message-ID of a week's digest: stable, so a resend is recognisably the same."""
    if not _DOMAIN.match(domain):
        raise ValueError(f"not a plain domain for a Message-ID: {domain!r}")
    return f"<retention-digest.{iso_week}@{domain}>"


def _check_images(rendered: RenderedDigest) -> None:
    referenced = set(_CID_REFERENCE.findall(rendered.html))
    attached = set(rendered.images)
    if referenced != attached:
        # A dangling cid: shows as a broken picture; an unreferenced one as an attachment.
        raise ValueError(
            f"cid references and images differ: referenced only {sorted(referenced - attached)}, "
            f"attached only {sorted(attached - referenced)}"
        )


def build_message(
    rendered: RenderedDigest,
    sender: str,
    recipients: Sequence[str],
    message_id_domain: str,
    *,
    iso_week: str | None = None,
    date: datetime | None = None,
) -> EmailMessage:
    """Assemble the digest email; ``date`` defaults to now (pass one for reproducible bytes).

    ``iso_week``, when given, must be the week the digest was rendered for: a cheap
    guard against mailing last week's rendering under this week's Message-ID.
    """
    if iso_week is not None and iso_week != rendered.iso_week:
        raise ValueError(f"rendered digest is for {rendered.iso_week}, not {iso_week}")
    if not recipients:
        raise ValueError("the digest needs at least one recipient")
    _check_images(rendered)

    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(date or datetime.now(UTC))
    message["Message-ID"] = message_id_for(rendered.iso_week, message_id_domain)
    message["Content-Language"] = rendered.language
    # An automated company-wide mail must not trigger vacation auto-replies to the sender.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message["X-Retention-Digest-Week"] = rendered.iso_week

    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    parts: Any = message.get_payload()
    html_part = parts[1]  # add_alternative made the message [text/plain, text/html]
    for cid, png in rendered.images.items():
        name = cid.split("@", 1)[0].split(".", 1)[0]
        html_part.add_related(
            png,
            maintype="image",
            subtype="png",
            cid=f"<{cid}>",
            disposition="inline",
            filename=f"{name}.png",
        )
    return message
