"""The digest as a MIME message, and its copy in the outbox."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from retention_pipeline.digest.delivery import write_outbox
from retention_pipeline.digest.message import build_message, message_id_for
from retention_pipeline.digest.render import RenderedDigest, render_digest
from retention_pipeline.digest.sample import sample_digest_data

SENDER = "Retention digest <digest@example.com>"
RECIPIENTS = ["everyone@example.com"]


@pytest.fixture(scope="module")
def rendered() -> RenderedDigest:
    return render_digest(sample_digest_data("2026-W47"), "en")


def _parse(message: EmailMessage) -> EmailMessage:
    # Round-trip through bytes: check what a mail client receives, not our objects.
    parsed = email.message_from_bytes(message.as_bytes(policy=email.policy.SMTP), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _lf(text: str) -> str:
    # On the wire lines end in CRLF; quoted-printable parts keep them when decoded.
    return text.replace("\r\n", "\n")


def test_mime_structure(rendered: RenderedDigest) -> None:
    msg = _parse(build_message(rendered, SENDER, RECIPIENTS, "example.com"))
    assert msg.get_content_type() == "multipart/alternative"
    plain, related = msg.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert _lf(plain.get_content()) == rendered.text
    assert related.get_content_type() == "multipart/related"
    html, *images = related.iter_parts()
    assert html.get_content_type() == "text/html"
    assert _lf(html.get_content()) == rendered.html
    assert [p.get_content_type() for p in images] == ["image/png"] * len(rendered.images)
    content_ids = {p["Content-ID"].strip("<>"): p.get_content() for p in images}
    assert content_ids == rendered.images
    assert set(re.findall(r'src="cid:([^"]+)"', html.get_content())) == set(content_ids)
    assert all(p.get_content_disposition() == "inline" for p in images)


def test_headers(rendered: RenderedDigest) -> None:
    when = datetime(2026, 11, 23, 6, 5, tzinfo=UTC)
    msg = _parse(
        build_message(rendered, SENDER, ["a@example.com", "b@example.com"], "example.com", date=when)
    )
    assert msg["Subject"].strip() == rendered.subject  # CPython keeps the fold's space
    assert msg["From"] == SENDER
    assert msg["To"] == "a@example.com, b@example.com"
    assert parsedate_to_datetime(msg["Date"]) == when
    assert msg["Message-ID"] == "<retention-digest.2026-W47@example.com>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Retention-Digest-Week"] == "2026-W47"


def test_message_id_is_stable_per_week(rendered: RenderedDigest) -> None:
    first = build_message(
        rendered, SENDER, RECIPIENTS, "example.com", date=datetime(2026, 11, 23, tzinfo=UTC)
    )
    again = build_message(
        rendered, SENDER, RECIPIENTS, "example.com", date=datetime(2026, 11, 24, tzinfo=UTC)
    )
    other = build_message(replace(rendered, iso_week="2026-W48"), SENDER, RECIPIENTS, "example.com")
    assert first["Message-ID"] == again["Message-ID"] == message_id_for("2026-W47", "example.com")
    assert other["Message-ID"] != first["Message-ID"]
    with pytest.raises(ValueError, match="plain domain"):
        message_id_for("2026-W47", "bad domain>")


def test_dangling_or_unreferenced_images_are_refused(rendered: RenderedDigest) -> None:
    extra = replace(rendered, images={**rendered.images, "ghost.2026-W47@retention-digest": b"png"})
    with pytest.raises(ValueError, match="attached only"):
        build_message(extra, SENDER, RECIPIENTS, "example.com")
    missing = replace(rendered, images={})
    with pytest.raises(ValueError, match="referenced only"):
        build_message(missing, SENDER, RECIPIENTS, "example.com")
    with pytest.raises(ValueError, match="not 2026-W48"):
        build_message(rendered, SENDER, RECIPIENTS, "example.com", iso_week="2026-W48")
    with pytest.raises(ValueError, match="recipient"):
        build_message(rendered, SENDER, [], "example.com")


def test_outbox(rendered: RenderedDigest, tmp_path: Path) -> None:
    message = build_message(rendered, SENDER, RECIPIENTS, "example.com")
    paths = write_outbox(rendered, message, tmp_path / "outbox", "2026-W47")
    assert {p.name for p in paths.values()} == {
        "digest_2026-W47.html",
        "digest_2026-W47.txt",
        "digest_2026-W47.eml",
    }
    html = paths["html"].read_text(encoding="utf-8")
    assert "cid:" not in html
    assert html.count('src="data:image/png;base64,') == len(rendered.images)
    assert paths["txt"].read_text(encoding="utf-8") == rendered.text
    eml = email.message_from_bytes(paths["eml"].read_bytes(), policy=email.policy.default)
    assert eml["Subject"].strip() == rendered.subject and eml.get_content_type() == "multipart/alternative"
    # idempotent: a re-run overwrites, leaving no temporary files behind
    write_outbox(rendered, message, tmp_path / "outbox", "2026-W47")
    assert sorted(p.name for p in (tmp_path / "outbox").iterdir()) == sorted(p.name for p in paths.values())
