"""Rendering the digest from hand-built numbers: what the reader sees must be what the data says."""

from __future__ import annotations

import re
import struct
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from retention_pipeline.digest.data import CohortMatrix, DigestData, QualityStatus, SurveyComment
from retention_pipeline.digest.i18n import CATALOGS, NBSP, get_language
from retention_pipeline.digest.render import (
    METRICS_BY_FIELD,
    TONE_COLOURS,
    RenderedDigest,
    render_digest,
    week_change,
)
from retention_pipeline.digest.sample import sample_digest_data

CUSTOMER_EMAIL = "anna.petrova@example.com"
CUSTOMER_PHONE = "+7 (912) 345-67-89"
EMAIL_PATTERN = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE_CANDIDATE = re.compile(r"\+?\d[\d\s().\-]{5,}\d")
CID_PATTERN = re.compile(r"""src="cid:([^"]+)\"""")
EN, RU = get_language("en"), get_language("ru")


def _data() -> DigestData:
    """The sample week with round, checkable numbers for this week and the one before."""
    base = sample_digest_data("2026-W47")
    previous = replace(
        base.history[-2],
        active_customers=1200,
        churn_rate=0.024,
        churned_customers=30,
        revenue=100_000.0,
        nps=40.0,
        survey_responses=120,
    )
    week = replace(
        base.week,
        active_customers=1234,
        churn_rate=0.021,
        churned_customers=33,
        new_customers=56,
        reactivated_customers=37,
        retention_rate=0.955,
        revenue=110_000.0,
        orders=1600,
        average_check=68.75,
        nps=40.0,
        survey_responses=120,
    )
    return replace(base, week=week, history=(*base.history[:-2], previous, week))


@pytest.fixture(scope="module")
def rendered() -> RenderedDigest:
    return render_digest(_data(), "en")


@pytest.fixture(scope="module")
def rendered_ru() -> RenderedDigest:
    return render_digest(_data(), "ru")


def _kpi_row(html: str, label: str) -> str:
    """The one table row of the HTML whose first cell ends with ``label``."""
    rows: list[str] = [
        r
        for r in re.findall(r"<tr>.*?</tr>", html, flags=re.S)
        if re.search(f"[>;]{re.escape(label)}</td>", r)
    ]
    assert len(rows) == 1, label
    return rows[0]


def _text_row(text: str, label: str) -> str:
    """The column-aligned line of the plain text that starts with ``label``."""
    return next(line for line in text.splitlines() if re.match(f"{re.escape(label)} {{2,}}", line))


def _flat(text: str) -> str:
    # Undo line wrapping only; no-break spaces inside numbers stay.
    return re.sub(r"[ \n]+", " ", text)


def _phone_like(text: str) -> list[str]:
    return [m for m in PHONE_CANDIDATE.findall(text) if sum(ch.isdigit() for ch in m) >= 7]


def test_subject_carries_the_headline(rendered: RenderedDigest) -> None:
    assert rendered.subject == (
        f"Customer digest 2026-W47: churn 2.1% (▼0.3{NBSP}pp), 1,234 active customers"
    )


def test_kpi_values_and_changes_appear_in_html_and_text(rendered: RenderedDigest) -> None:
    expected = {
        "Active customers": ("1,234", "▲34 (+2.8%)"),
        "Churn rate": ("2.1%", f"▼0.3{NBSP}pp"),
        "Churned this week": ("33", "▲3 (+10.0%)"),
        "Retention rate": ("95.5%", None),
        "Revenue": ("€110,000", "▲10.0%"),
        "Average check": ("€68.75", None),
        "Would recommend us (NPS)": ("40", "no change"),
    }
    for label, (value, change) in expected.items():
        row = _kpi_row(rendered.html, label)
        assert f">{value}</td>" in row
        text_line = _text_row(rendered.text, label)
        assert f" {value} " in text_line + " "
        if change is not None:
            assert change in row
            assert text_line.rstrip().endswith(change)


def test_changes_are_coloured_by_whether_they_are_good_news(rendered: RenderedDigest) -> None:
    # churn went down (good), churned customers went up (bad), active went up (good)
    assert TONE_COLOURS["good"] in _kpi_row(rendered.html, "Churn rate")
    assert TONE_COLOURS["bad"] in _kpi_row(rendered.html, "Churned this week")
    assert TONE_COLOURS["good"] in _kpi_row(rendered.html, "Active customers")
    assert TONE_COLOURS["neutral"] in _kpi_row(rendered.html, "Would recommend us (NPS)")


@pytest.mark.parametrize(
    ("field", "current", "previous", "text", "tone"),
    [
        ("churn_rate", 0.021, 0.024, f"▼0.3{NBSP}pp", "good"),
        ("churn_rate", 0.030, 0.024, f"▲0.6{NBSP}pp", "bad"),
        ("retention_rate", 0.95, 0.96, f"▼1.0{NBSP}pp", "bad"),
        ("churn_rate", 0.02101, 0.02099, "no change", "neutral"),  # equal as displayed
        ("active_customers", 1100, 1000, "▲100 (+10.0%)", "good"),
        ("churned_customers", 20, 25, "▼5 (-20.0%)", "good"),
        ("survey_responses", 90, 100, "▼10 (-10.0%)", "neutral"),
        ("revenue", 90.0, 100.0, "▼10.0%", "bad"),
        ("nps", 35.0, 41.0, "▼6", "bad"),
        ("active_customers", 5, 0, "▲5", "good"),  # no share of zero
        ("active_customers", 5, None, "n/a", "neutral"),
    ],
)
def test_week_change(field: str, current: float, previous: float | None, text: str, tone: str) -> None:
    change = week_change(current, previous, METRICS_BY_FIELD[field], EN)
    assert (change.text, change.tone) == (text, tone)


def test_plain_sentences_use_the_same_numbers(rendered: RenderedDigest) -> None:
    text = _flat(rendered.text)
    assert "We have 1,234 active customers (▲34 vs last week)" in text
    assert "56 ordered for the first time and 37 came back" in text
    assert "33 customers moved to churned: 2.1%" in text
    # the sample's risk matrix: red 7+12, orange 3+21+44; tier A/B among them 7+12+3+21
    assert "87 customers are at red or orange risk level" in text
    assert "43 of them are among our most valuable" in text


def test_risk_matrix_counts(rendered: RenderedDigest) -> None:
    row = _kpi_row(rendered.html, "Orange").replace("&nbsp;", " ")
    assert re.findall(r">([\d,]+)</td>", row) == ["3", "21", "44", "0", "68"]
    assert _text_row(rendered.text, "Orange").split() == ["Orange", "3", "21", "44", "0", "68"]


def test_stage_counts_and_trend_in_text(rendered: RenderedDigest) -> None:
    assert _text_row(rendered.text, "Potential churn").split()[-2:] == ["265", "9%"]
    assert _text_row(rendered.text, "2026-W47").split() == [
        "2026-W47",
        "1,234",
        "2.1%",
    ]


def test_russian_variant(rendered_ru: RenderedDigest) -> None:
    assert rendered_ru.subject == (
        f"Дайджест по клиентам 2026-W47: отток 2,1{NBSP}% (▼0,3{NBSP}п.п.), активных клиентов: 1{NBSP}234"
    )
    for output in (rendered_ru.html, rendered_ru.text):
        assert "Неделя в цифрах" in output
        assert f"1{NBSP}234" in output
        assert "Customer digest" not in output
    assert '<html lang="ru">' in rendered_ru.html
    assert "Активных клиентов: 1\u00a0234 (▲34 к прошлой неделе)" in _flat(rendered_ru.text)


def test_catalogs_have_the_same_keys_and_shapes() -> None:
    en, ru = CATALOGS["en"], CATALOGS["ru"]
    assert set(en) == set(ru)
    for key, en_value in en.items():
        ru_value = ru[key]
        assert type(en_value) is type(ru_value), key
        if isinstance(en_value, str) and isinstance(ru_value, str):
            # Russian may leave out a placeholder (no plural noun), never invent one.
            assert set(re.findall(r"{(\w+)}", en_value)) >= set(re.findall(r"{(\w+)}", ru_value)), key
        else:
            assert len(ru_value) in {3, 12} and len(en_value) in {2, 12}, key


@pytest.mark.parametrize(
    ("n", "word"),
    [(1, "клиент"), (2, "клиента"), (5, "клиентов"), (11, "клиентов"), (21, "клиент"), (104, "клиента")],
)
def test_russian_plurals(n: int, word: str) -> None:
    assert RU.plural("customers", n) == word


def test_unsupported_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported digest language"):
        render_digest(_data(), "de")


def test_no_customer_contact_data(rendered: RenderedDigest, rendered_ru: RenderedDigest) -> None:
    assert CUSTOMER_EMAIL in _data().detractor_comments[1].comment  # the sample tries to leak it
    for output in (rendered.html, rendered.text, rendered.subject, rendered_ru.html, rendered_ru.text):
        assert CUSTOMER_EMAIL not in output
        assert CUSTOMER_PHONE not in output
        without_cids = CID_PATTERN.sub("", output)
        assert EMAIL_PATTERN.findall(without_cids) == []
        assert "@" not in without_cids
        assert "345-67-89" not in output
    for output in (rendered.html, rendered.text, rendered_ru.html, rendered_ru.text):
        quotes = re.findall(r"(?:«|&laquo;)(.*?)(?:»|&raquo;)", _flat(output))
        assert len(quotes) == 5
        assert [q for q in quotes if _phone_like(q)] == []
    assert "[phone hidden]" in rendered.text and "[email hidden]" in rendered.text


def test_cid_references_match_the_images(rendered: RenderedDigest) -> None:
    referenced = CID_PATTERN.findall(rendered.html)
    assert sorted(referenced) == sorted(rendered.images)
    assert len(referenced) == 4  # stages, flows, trend, cohort
    for png in rendered.images.values():
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])
        # drawn at twice the 600 px layout width, for high-density screens
        assert width == 1200 and 300 <= height <= 1200


def test_html_is_mail_client_safe(rendered: RenderedDigest) -> None:
    html = rendered.html.lower()
    for banned in ("<style", "<link", "<script", "@import", "url(", "class="):
        assert banned not in html
    assert "max-width:640px" in html
    assert all(src.startswith("cid:") for src in re.findall(r'src="([^"]+)"', html))
    assert "http://" not in html and "https://" not in html


def test_customer_text_is_escaped_in_html(rendered: RenderedDigest) -> None:
    assert "Fast &amp; friendly &lt;3" in rendered.html
    assert "Fast & friendly <3" in rendered.text


def test_footer_reports_freshness_and_checks(rendered: RenderedDigest) -> None:
    for output in (rendered.html, rendered.text):
        assert "Data loaded up to 20\u00a0Nov\u00a02026 19:00 UTC." in output
        assert "Quality checks: passed (142 checks, 2 warnings)." in output


def test_failed_or_unknown_checks_are_said_out_loud() -> None:
    failed = render_digest(replace(_data(), quality=QualityStatus(checks_passed=False, freshness=None)), "en")
    for output in (failed.html, failed.text):
        assert "Data quality checks failed for this week" in output
        assert "Quality checks: FAILED." in output
        assert "Data load time unknown." in output
    unknown = render_digest(replace(_data(), quality=QualityStatus(checks_passed=None, freshness=None)), "en")
    assert "Quality checks: not reported." in unknown.text
    assert "Data quality checks failed" not in unknown.html


def test_first_week_and_missing_pictures() -> None:
    data = _data()
    lonely = replace(
        data,
        history=(data.week,),
        cohorts=CohortMatrix(),
        detractor_comments=(),
        promoter_comments=(),
        # the marts other parts of the pipeline add later are not there yet
        stage_flows=None,
        segment_hot_spots=None,
        manager_hot_spots=None,
        cohort_hot_spot=None,
        complaint_themes=None,
        complaints=None,
        sla_breach_rate=None,
        campaign=None,
    )
    out = render_digest(lonely, "en")
    assert out.subject == "Customer digest 2026-W47: churn 2.1%, 1,234 active customers"
    assert "n/a" in _kpi_row(out.html, "Churn rate")
    assert len(out.images) == 2 and not any(cid.startswith("cohort.") for cid in out.images)
    assert "Do customers come back?" not in out.html and "Do customers come back?" not in out.text
    for omitted in ("How customers moved", "Where churn grew", "complain about", "Last call campaign"):
        assert omitted not in out.html and omitted not in out.text
    assert out.text.count("No comments this week.") == 2


def test_long_comments_are_shortened() -> None:
    comment = SurveyComment(datetime(2026, 11, 18, tzinfo=UTC), 2, "detractor", "word " * 200, "email")
    out = render_digest(replace(_data(), detractor_comments=(comment,)), "en")
    quoted = re.search(r"«(.*?)»", _flat(out.text))
    assert quoted is not None and len(quoted.group(1)) <= 300 and quoted.group(1).endswith("…")
