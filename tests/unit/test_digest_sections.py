"""The digest's later sections from hand-built numbers: churn target, stage flows, hot
spots, complaints and SLA, the last campaign, and money with its currency."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import pytest

from retention_pipeline.digest.data import (
    NEW,
    CampaignResults,
    CampaignVariant,
    CohortMatrix,
    ComplaintTheme,
    DigestData,
    HotSpot,
    StageFlow,
    cohort_hot_spot,
)
from retention_pipeline.digest.i18n import NBSP
from retention_pipeline.digest.render import RenderedDigest, render_digest
from retention_pipeline.digest.sample import sample_digest_data


def _flat(text: str) -> str:
    return re.sub(r"[ \n]+", " ", text)


@pytest.fixture(scope="module")
def data() -> DigestData:
    base = sample_digest_data("2026-W47")
    # churn 2.1% this week, 3.0% twelve weeks ago
    week = replace(base.week, churn_rate=0.021)
    first = replace(base.history[0], churn_rate=0.030)
    return replace(base, week=week, history=(first, *base.history[1:-1], week))


@pytest.fixture(scope="module")
def rendered(data: DigestData) -> RenderedDigest:
    return render_digest(data, "en", churn_target=0.02)


def test_churn_target_in_subject_headline_and_text(rendered: RenderedDigest) -> None:
    assert "churn 2.1%" in rendered.subject and ", target 2.0%," in rendered.subject
    assert "Churn 2.1% against our target of 2.0%" in rendered.html
    assert f"0.1{NBSP}pp to go" in rendered.html
    text = _flat(rendered.text)
    assert f"Churn 2.1% against our target of 2.0%: 0.1{NBSP}pp to go" in text
    assert (
        f"Our key result is a weekly churn rate of 2.0% or lower: we are 0.1{NBSP}pp above it "
        "(it was 3.0% in 2026-W36)." in text
    )


def test_churn_target_met_and_no_target(data: DigestData) -> None:
    met = render_digest(replace(data, week=replace(data.week, churn_rate=0.0196)), "en", churn_target=0.02)
    assert "target met" in met.html and "this week we met it" in _flat(met.text)
    none = render_digest(data, "en")
    assert "target" not in none.subject and "against our target" not in none.html
    assert "key result" not in none.text


def test_money_carries_its_currency(data: DigestData) -> None:
    en = render_digest(data, "en")
    assert "Revenue was €111,756 from" in _flat(en.text)
    ru = render_digest(data, "ru", currency="EUR")
    assert f"Выручка: 111{NBSP}756{NBSP}€" in _flat(ru.text)
    usd = render_digest(data, "en", currency="usd")
    assert "average check of $68.60" in _flat(usd.text)
    chf = render_digest(data, "en", currency="CHF")
    assert f"CHF{NBSP}111,756" in chf.text


def test_stage_flows_sentence_picture_and_text(rendered: RenderedDigest) -> None:
    # the sample: toward churn 62 + 48 + 29, back toward active 18 + 9 + 4, new 41
    text = _flat(rendered.text)
    assert "139 customers moved closer to churn and 31 moved back towards active; 41 ordered" in text
    assert "The biggest move toward churn: Active → Churn risk, 62." in text
    assert re.search(r"Potential churn → Churned +29", rendered.text)
    assert "Active → Active" not in rendered.text  # staying put is not a move
    assert any(cid.startswith("flows.") for cid in rendered.images)
    assert 'alt="Chart: customers moving between churn stages this week"' in rendered.html


def test_flows_with_unknown_stages_and_only_new_customers(data: DigestData) -> None:
    flows = (StageFlow(NEW, "active", 5), StageFlow("dormant", "churned", 2))
    out = render_digest(replace(data, stage_flows=flows), "en")
    text = _flat(out.text)
    assert "0 customers moved closer to churn and 0 moved back towards active; 5 ordered" in text
    assert "dormant → Churned" in text  # a stage the digest does not know is shown by name
    assert "biggest move" not in text


def test_hot_spots(rendered: RenderedDigest) -> None:
    # At risk: 36 -> 51 of 240 churned = 15.0% -> 21.25% (shown 21.2%)
    line = next(line for line in rendered.text.splitlines() if line.strip().startswith("At risk"))
    assert re.search(rf"15\.0%\s+21\.2%\s+▲6\.2{NBSP}pp\s+51 of 240", line), line
    assert "Manager M07" in rendered.html and "Manager M07" in rendered.text
    assert "Weakest cohort: customers who first ordered in" in _flat(rendered.text)


def test_hot_spot_rise_is_the_difference_of_the_shown_shares() -> None:
    spot = HotSpot("x", 3, 0, 1)  # 0.0% -> 33.3%
    out = render_digest(replace(sample_digest_data(), segment_hot_spots=(spot,)), "en")
    assert re.search(rf"0\.0%\s+33\.3%\s+▲33\.3{NBSP}pp", out.text)


def test_no_rising_group_is_said() -> None:
    out = render_digest(replace(sample_digest_data(), segment_hot_spots=(), manager_hot_spots=()), "en")
    assert out.text.count("No group's churned share rose this week.") == 2


def test_cohort_hot_spot_compares_like_months() -> None:
    matrix = CohortMatrix(
        cohort_months=(date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)),
        cohort_sizes=(100, 100, 100),
        periods=(0, 1, 2),
        retention=((1.0, 0.40, 0.30), (1.0, 0.42, 0.20), (1.0, 0.10, None)),
    )
    spot = cohort_hot_spot(matrix)
    assert spot is not None
    assert (spot.cohort_month, spot.months_since_first) == (date(2026, 3, 1), 1)
    assert spot.retention == pytest.approx(0.10) and spot.others_average == pytest.approx(0.41)
    assert cohort_hot_spot(CohortMatrix()) is None


def test_complaints_and_sla(rendered: RenderedDigest) -> None:
    text = _flat(rendered.text)
    assert "37 complaint tickets opened this week." in text
    assert "on 8.3% of tickets (SLA breach rate)" in text
    assert re.search(r"Late delivery +14", rendered.text)


def test_complaint_subjects_are_masked(data: DigestData) -> None:
    themes = (ComplaintTheme("Call me on +7 912 345 67 89 or anna@example.com", 1),)
    out = render_digest(replace(data, complaint_themes=themes, complaints=1), "en")
    assert "345 67" not in out.text and "anna@" not in out.html
    assert "1 complaint ticket opened this week." in _flat(out.text)


def test_sla_without_ticket_subjects(data: DigestData) -> None:
    out = render_digest(replace(data, complaint_themes=None, complaints=None, sla_breach_rate=0.2), "en")
    assert "on 20.0% of tickets" in _flat(out.text) and "complaint tickets opened" not in out.text


def test_campaign(rendered: RenderedDigest) -> None:
    text = _flat(rendered.text)
    assert "Last call campaign (2026-W46)" in text
    assert (
        "We called 200 customers: 145 were reached (72%), 86 agreed to come back (59%) "
        "and 26 ordered again (13% of those called)." in text
    )
    assert (
        f"Script A did best: its conversion was +6.1{NBSP}pp against customers we deliberately did not "
        f"call (likely range +1.2{NBSP}pp to +11.0{NBSP}pp)." in text
    )
    # cost per retained customer, weighted by who each variant retained: (18.4*15 + 25.1*11) / 26
    assert "Cost per customer retained: €21.23." in text
    # measures down, scripts across (fits a phone)
    assert re.search(r"Script A +Script B", rendered.text)
    assert re.search(r"Ordered again +15 +11", rendered.text)
    assert re.search(rf"Uplift vs not called +\+6\.1{NBSP}pp +\+2\.1{NBSP}pp", rendered.text)


def test_campaign_with_a_negative_uplift_and_no_interval(data: DigestData) -> None:
    campaign = CampaignResults("2026-W45", (CampaignVariant("A", 10, 5, 2, 0, 0.0, -0.03),))
    out = render_digest(replace(data, campaign=campaign), "ru")
    text = _flat(out.text)
    assert f"Лучший скрипт — A: конверсия -3,0{NBSP}п.п. к клиентам" in text
    assert "диапазон" not in text and "Стоимость удержания" not in text


def test_russian_sections(data: DigestData) -> None:
    out = render_digest(data, "ru", churn_target=0.02)
    text = _flat(out.text)
    for phrase in (
        f"Отток 2,1{NBSP}% при цели 2,0{NBSP}%: осталось 0,1{NBSP}п.п.",
        "Где вырос отток",
        "Ближе к оттоку: 139, обратно к активным: 31, впервые купили: 41.",
        "Жалоб за неделю: 37.",
        "Последняя кампания обзвона (2026-W46)",
    ):
        assert phrase in text, phrase
