"""A hand-built week of digest data, for previews and tests without a warehouse.

``python -m retention_pipeline.digest.sample OUTDIR [en|ru]`` writes a preview
(HTML, text, .eml) of this data, which is the quickest way to see a template change
in a browser or a mail client.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from retention_pipeline.digest.data import (
    NEW,
    NO_ORDERS,
    CampaignResults,
    CampaignVariant,
    CohortMatrix,
    ComplaintTheme,
    DigestData,
    HotSpot,
    QualityStatus,
    StageFlow,
    SurveyComment,
    WeekKpis,
    cohort_hot_spot,
)
from retention_pipeline.weeks import previous_weeks, week_interval


def _week(iso_week: str, k: int) -> WeekKpis:
    start, end = week_interval(iso_week)
    active = 1180 + 6 * k
    churned = 31 - k // 2
    at_start = 1500 + 8 * k
    return WeekKpis(
        iso_week=iso_week,
        week_start=start.date(),
        week_end=end.date(),
        customers_at_start=at_start,
        customers_at_end=at_start + 40 - churned,
        active_customers=active,
        new_customers=40 + k % 3,
        churned_customers=churned,
        reactivated_customers=12 + k % 4,
        potential_or_churned_at_start=420 - k,
        churn_rate=churned / at_start,
        retention_rate=0.962 + k / 1000,
        reactivation_rate=(12 + k % 4) / (420 - k),
        revenue=98_000.0 + 1_250.5 * k,
        orders=1530 + 9 * k,
        arpu=(98_000.0 + 1_250.5 * k) / active,
        average_check=(98_000.0 + 1_250.5 * k) / (1530 + 9 * k),
        survey_responses=118 + k,
        nps=38.0 + k / 2,
        csi=3.4 + k / 20,
    )


def sample_digest_data(iso_week: str = "2026-W47") -> DigestData:
    weeks = previous_weeks(iso_week, 12)
    history = tuple(_week(w, k) for k, w in enumerate(weeks))
    first_month = date(2025, 12, 1)
    months = []
    for i in range(12):
        year, month = divmod(first_month.month - 1 + i, 12)
        months.append(date(first_month.year + year, month + 1, 1))
    retention = tuple(
        tuple(
            (1.0 if k == 0 else max(0.05, 0.42 - 0.03 * k + 0.01 * (i % 3))) if k < len(months) - i else None
            for k in range(12)
        )
        for i in range(len(months))
    )
    cohorts = CohortMatrix(
        cohort_months=tuple(months),
        cohort_sizes=tuple(150 + 10 * i for i in range(len(months))),
        periods=tuple(range(12)),
        retention=retention,
    )
    end = history[-1].week_end
    moment = datetime(end.year, end.month, end.day, tzinfo=UTC) - timedelta(days=2, hours=5)
    return DigestData(
        iso_week=iso_week,
        week=history[-1],
        history=history,
        stage_counts={
            "active": 1240,
            "churn risk": 310,
            "potential churn": 265,
            "churned": 930,
            NO_ORDERS: 55,
        },
        risk_counts={
            ("red", "A"): 7,
            ("red", "B"): 12,
            ("orange", "A"): 3,
            ("orange", "B"): 21,
            ("orange", "C"): 44,
            ("amber", "C"): 60,
            ("amber", "D"): 90,
            ("yellow", "D"): 120,
            ("green", "A"): 80,
            ("green", "B"): 240,
            ("green", "C"): 400,
            ("green", "D"): 520,
        },
        cohorts=cohorts,
        detractor_comments=(
            SurveyComment(moment, 1, "detractor", "Delivery was late twice, nobody called back.", "email"),
            SurveyComment(
                moment - timedelta(hours=3),
                3,
                "detractor",
                "Call me at +7 (912) 345-67-89 or write to anna.petrova@example.com, the refund is stuck.",
                "phone",
            ),
            SurveyComment(moment - timedelta(days=1), 5, "detractor", "Prices went up.", None),
        ),
        promoter_comments=(
            SurveyComment(moment, 10, "promoter", "Great manager, always helps.", "chat"),
            SurveyComment(moment - timedelta(days=2), 9, "promoter", "Fast & friendly <3", "email"),
        ),
        quality=QualityStatus(checks_passed=True, freshness=moment, checks=142, warnings=2),
        urgent_with_open_complaint=5,
        customers_as_of=end,
        stage_flows=(
            StageFlow(NEW, "active", 41),
            StageFlow("active", "active", 1150),
            StageFlow("active", "churn risk", 62),
            StageFlow("churn risk", "churn risk", 230),
            StageFlow("churn risk", "active", 18),
            StageFlow("churn risk", "potential churn", 48),
            StageFlow("potential churn", "potential churn", 210),
            StageFlow("potential churn", "active", 9),
            StageFlow("potential churn", "churned", 29),
            StageFlow("churned", "churned", 898),
            StageFlow("churned", "active", 4),
        ),
        segment_hot_spots=(
            HotSpot("At risk", 240, 36, 51),
            HotSpot("Can't lose them", 90, 9, 14),
            HotSpot("Need attention", 310, 31, 38),
        ),
        manager_hot_spots=(HotSpot("M07", 420, 80, 95), HotSpot("M02", 380, 70, 77)),
        cohort_hot_spot=cohort_hot_spot(cohorts),
        complaint_themes=(
            ComplaintTheme("Late delivery", 14),
            ComplaintTheme("Refund not received", 9),
            ComplaintTheme("Damaged item", 6),
            ComplaintTheme("Rude courier", 3),
        ),
        complaints=37,
        sla_breach_rate=0.083,
        campaign=CampaignResults(
            campaign=previous_weeks(iso_week, 2)[0],
            variants=(
                CampaignVariant("A", 100, 74, 46, 15, 0.15, 0.061, 0.012, 0.110, 18.4),
                CampaignVariant("B", 100, 71, 40, 11, 0.11, 0.021, -0.027, 0.069, 25.1),
            ),
        ),
    )


def main(argv: list[str]) -> int:
    from retention_pipeline.digest.delivery import write_outbox
    from retention_pipeline.digest.message import build_message
    from retention_pipeline.digest.render import render_digest

    if not argv:
        print(__doc__)
        return 2
    language = argv[1] if len(argv) > 1 else "en"
    data = sample_digest_data()
    rendered = render_digest(data, language, churn_target=0.02)
    message = build_message(rendered, "digest@example.com", ["everyone@example.com"], "example.com")
    for kind, path in write_outbox(rendered, message, Path(argv[0]), data.iso_week).items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
