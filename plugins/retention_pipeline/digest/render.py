"""Turn ``DigestData`` into the subject, HTML, plain text and pictures of one digest.

All numbers are formatted once, here, into a view model that both templates read:
that is what guarantees the plain-text alternative says exactly what the HTML says.
Week-over-week changes are computed from the *displayed* (rounded) values, so a
reader who subtracts the two numbers they see gets the change printed next to them.

Customer-written comments are masked for contact data before they enter the view
model; nothing else that reaches the templates can hold contact data.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jinja2

from retention_pipeline.digest import charts
from retention_pipeline.digest.data import (
    LEVELS,
    NO_ORDERS,
    STAGES,
    TIERS,
    DigestData,
    SurveyComment,
    WeekKpis,
)
from retention_pipeline.digest.i18n import ARROW_DOWN, ARROW_UP, Language, get_language
from retention_pipeline.digest.redaction import redact_contacts, shorten

TEMPLATES_DIR = Path(__file__).parent / "templates"
CID_DOMAIN = "retention-digest"
TONE_COLOURS = {"good": "#1a7f37", "bad": "#cf222e", "neutral": "#57606a"}
LEVEL_COLOURS = {
    "red": "#cf222e",
    "orange": "#e16f24",
    "amber": "#d4a72c",
    "yellow": "#eac54f",
    "green": "#2da44e",
}
URGENT_LEVELS = ("red", "orange")
VALUABLE_TIERS = ("A", "B")

Kind = Literal["count", "rate", "money", "score", "ratio"]
Tone = Literal["good", "bad", "neutral"]


@dataclass(frozen=True)
class RenderedDigest:
    iso_week: str
    language: str
    subject: str
    html: str
    text: str
    images: dict[str, bytes]  # Content-ID (without <>) -> PNG, referenced as cid: in html


@dataclass(frozen=True)
class Metric:
    field: str
    kind: Kind
    decimals: int
    better: int  # +1 higher is better, -1 lower is better, 0 neither


# The KPI table, in reading order: customers first, then money, then satisfaction.
METRICS = (
    Metric("active_customers", "count", 0, +1),
    Metric("churn_rate", "rate", 1, -1),
    Metric("retention_rate", "rate", 1, +1),
    Metric("reactivation_rate", "rate", 1, +1),
    Metric("new_customers", "count", 0, +1),
    Metric("churned_customers", "count", 0, -1),
    Metric("reactivated_customers", "count", 0, +1),
    Metric("revenue", "money", 0, +1),
    Metric("orders", "count", 0, +1),
    Metric("arpu", "money", 2, +1),
    Metric("average_check", "money", 2, +1),
    Metric("nps", "score", 0, +1),
    Metric("csi", "ratio", 2, +1),
    Metric("survey_responses", "count", 0, 0),
)
METRICS_BY_FIELD = {m.field: m for m in METRICS}


@dataclass(frozen=True)
class Change:
    arrow: str
    text: str  # includes the arrow: "▲56 (+4.8%)"
    tone: Tone
    short: str = ""  # for running text, without the parenthesised share: "▲56"

    def __post_init__(self) -> None:
        if not self.short:
            object.__setattr__(self, "short", self.text)

    @property
    def colour(self) -> str:
        return TONE_COLOURS[self.tone]


@dataclass(frozen=True)
class KpiView:
    label: str
    value: str
    change: Change


def _shown(value: float, metric: Metric) -> float:
    # The value as the reader sees it (rates in percent), rounded like the formatter.
    scaled = value * 100 if metric.kind == "rate" else value
    return float(f"{scaled:.{metric.decimals}f}")


def format_value(value: float | None, metric: Metric, lang: Language) -> str:
    if value is None:
        return lang.text("change.na")
    if metric.kind == "rate":
        return lang.percent(value, metric.decimals)
    return lang.number(value, metric.decimals)


def week_change(current: float | None, previous: float | None, metric: Metric, lang: Language) -> Change:
    """The week-over-week change as shown: arrow, amount, and whether it is good news."""
    if current is None or previous is None:
        return Change("", lang.text("change.na"), "neutral")
    delta = _shown(current, metric) - _shown(previous, metric)
    if abs(delta) < 0.5 * 10**-metric.decimals:
        return Change("", lang.text("change.none"), "neutral")
    arrow = ARROW_UP if delta > 0 else ARROW_DOWN
    tone: Tone = "neutral" if metric.better == 0 else "good" if delta * metric.better > 0 else "bad"
    if metric.kind == "rate":
        amount = lang.points(abs(delta), metric.decimals)
    elif metric.kind == "money" and previous:
        # Money moves in proportion; "+4.8%" says more than "+1,234.56".
        amount = lang.percent(abs(current - previous) / abs(previous), 1)
    else:
        amount = lang.number(abs(delta), metric.decimals)
        if metric.kind == "count" and previous:
            share = lang.percent((current - previous) / abs(previous), 1, signed=True)
            return Change(arrow, f"{arrow}{amount} ({share})", tone, short=f"{arrow}{amount}")
    return Change(arrow, f"{arrow}{amount}", tone)


def kpi_views(week: WeekKpis, previous: WeekKpis | None, lang: Language) -> list[KpiView]:
    views = []
    for metric in METRICS:
        current = getattr(week, metric.field)
        before = getattr(previous, metric.field) if previous is not None else None
        views.append(
            KpiView(
                label=lang.text(f"kpi.{metric.field}"),
                value=format_value(current, metric, lang),
                change=week_change(current, before, metric, lang),
            )
        )
    return views


def make_subject(data: DigestData, lang: Language) -> str:
    """'Customer digest 2026-W47: churn 2.1% (▼0.3 pp), 1,234 active customers'."""
    week, previous = data.week, data.previous
    parts = []
    churn = METRICS_BY_FIELD["churn_rate"]
    if week.churn_rate is not None:
        rate = format_value(week.churn_rate, churn, lang)
        prev_rate = previous.churn_rate if previous is not None else None
        if prev_rate is None:
            parts.append(lang.text("subject.churn", rate=rate))
        else:
            change = week_change(week.churn_rate, prev_rate, churn, lang)
            parts.append(lang.text("subject.churn_change", rate=rate, change=change.text))
    if week.active_customers is not None:
        parts.append(
            lang.text(
                "subject.active",
                active=lang.number(week.active_customers),
                customers=lang.plural("customers", week.active_customers),
            )
        )
    return lang.text("subject", week=data.iso_week, headline=", ".join(parts))


def summary_sentences(data: DigestData, lang: Language) -> list[str]:
    """A few plain sentences for readers who will not read a table."""
    week, previous = data.week, data.previous
    n = lang.number
    sentences = []

    def change_of(field: str) -> str:
        before = getattr(previous, field) if previous is not None else None
        return week_change(getattr(week, field), before, METRICS_BY_FIELD[field], lang).short

    if week.active_customers is not None:
        sentences.append(
            lang.text(
                "sentence.active",
                active=n(week.active_customers),
                customers=lang.plural("customers", week.active_customers),
                change=change_of("active_customers"),
                new=n(week.new_customers or 0),
                reactivated=n(week.reactivated_customers or 0),
            )
        )
    if week.churned_customers is not None and week.churn_rate is not None:
        sentences.append(
            lang.text(
                "sentence.churn",
                churned=n(week.churned_customers),
                customers=lang.plural("customers", week.churned_customers),
                rate=lang.percent(week.churn_rate),
                change=change_of("churn_rate"),
            )
        )
    if week.retention_rate is not None:
        sentences.append(lang.text("sentence.retention", rate=lang.percent(week.retention_rate)))
    urgent = data.risk_count(URGENT_LEVELS)
    if urgent:
        sentences.append(
            lang.text(
                "sentence.risk",
                count=n(urgent),
                customers=lang.plural("customers", urgent),
                valuable=n(data.risk_count(URGENT_LEVELS, VALUABLE_TIERS)),
            )
        )
        if data.urgent_with_open_complaint:
            sentences.append(lang.text("sentence.complaints", count=n(data.urgent_with_open_complaint)))
    elif data.risk_counts:
        sentences.append(lang.text("sentence.risk_none"))
    if week.revenue is not None and week.orders is not None and week.average_check is not None:
        sentences.append(
            lang.text(
                "sentence.revenue",
                revenue=format_value(week.revenue, METRICS_BY_FIELD["revenue"], lang),
                orders=n(week.orders),
                orders_word=lang.plural("orders", week.orders),
                check=format_value(week.average_check, METRICS_BY_FIELD["average_check"], lang),
            )
        )
    if week.nps is not None and week.survey_responses:
        sentences.append(
            lang.text(
                "sentence.nps",
                nps=format_value(week.nps, METRICS_BY_FIELD["nps"], lang),
                responses=n(week.survey_responses),
                responses_word=lang.plural("responses", week.survey_responses),
            )
        )
    return sentences


def _risk_view(data: DigestData, lang: Language) -> dict[str, Any]:
    # Show the tiers the business configured (3 or 4), not a fixed A..D.
    present_tiers = {tier for _, tier in data.risk_counts}
    tiers = sorted(present_tiers) if present_tiers else list(TIERS)
    extra_levels = sorted({lvl for lvl, _ in data.risk_counts} - set(LEVELS))
    rows = []
    for level in (*LEVELS, *extra_levels):
        counts = [data.risk_counts.get((level, tier), 0) for tier in tiers]
        label_key = f"level.{level}"
        rows.append(
            {
                "level": level,
                "label": lang.text(label_key) if label_key in lang.catalog else level,
                "colour": LEVEL_COLOURS.get(level, "#8c959f"),
                "cells": [
                    {"value": lang.number(c), "valuable": tier in VALUABLE_TIERS}
                    for c, tier in zip(counts, tiers, strict=True)
                ],
                "total": lang.number(sum(counts)),
                "urgent": level in URGENT_LEVELS,
            }
        )
    return {
        "tiers": [lang.text("tier", tier=t) for t in tiers],
        "rows": rows,
        "urgent": lang.number(data.risk_count(URGENT_LEVELS)),
        "urgent_valuable": lang.number(data.risk_count(URGENT_LEVELS, VALUABLE_TIERS)),
    }


def _stage_view(data: DigestData, lang: Language) -> list[dict[str, str]]:
    total = sum(data.stage_counts.values()) or 1
    order = [s for s in (*STAGES, NO_ORDERS) if s in data.stage_counts]
    return [
        {
            "label": lang.text(f"stage.{s}"),
            "count": lang.number(data.stage_counts[s]),
            "share": lang.percent(data.stage_counts[s] / total, 0),
        }
        for s in order
    ]


def _trend_view(data: DigestData, lang: Language) -> list[dict[str, str]]:
    active, churn = METRICS_BY_FIELD["active_customers"], METRICS_BY_FIELD["churn_rate"]
    return [
        {
            "week": w.iso_week,
            "active": format_value(w.active_customers, active, lang),
            "churn": format_value(w.churn_rate, churn, lang),
        }
        for w in data.history
    ]


def _cohort_view(data: DigestData, lang: Language) -> dict[str, Any]:
    matrix = data.cohorts
    return {
        "periods": [f"M{k}" for k in matrix.periods],
        "rows": [
            {
                "label": f"{month:%Y-%m} ({lang.number(size)})",
                "cells": ["" if v is None else lang.number(v * 100) for v in row],
            }
            for month, size, row in zip(
                matrix.cohort_months, matrix.cohort_sizes, matrix.retention, strict=True
            )
        ],
    }


def _comment_view(comment: SurveyComment, lang: Language) -> dict[str, str]:
    return {
        "meta": lang.text(
            "voice.meta",
            score=comment.score,
            channel=comment.channel or lang.text("channel.unknown"),
            date=lang.date(comment.submitted_at.date()),
        ),
        "text": shorten(redact_contacts(comment.comment)),
    }


def _footer(data: DigestData, lang: Language) -> list[str]:
    quality = data.quality
    freshness = quality.get("freshness")
    lines = [
        lang.text("footer.freshness", when=lang.moment(freshness))
        if freshness is not None
        else lang.text("footer.freshness_unknown")
    ]
    if data.customers_as_of is not None:
        lines.append(lang.text("footer.as_of", date=lang.date(data.customers_as_of)))
    passed = quality.get("checks_passed")
    if passed is None:
        lines.append(lang.text("footer.checks_unknown"))
    elif not passed:
        lines.append(lang.text("footer.checks_failed"))
    elif "checks" in quality:
        lines.append(
            lang.text(
                "footer.checks_passed_detail",
                checks=lang.number(quality["checks"]),
                warnings=lang.number(quality.get("warnings", 0)),
            )
        )
    else:
        lines.append(lang.text("footer.checks_passed"))
    return lines


def content_id(name: str, iso_week: str) -> str:
    """A Content-ID in msg-id form, unique per picture and week."""
    return f"{name}.{iso_week}@{CID_DOMAIN}"


def _images(data: DigestData, lang: Language) -> tuple[dict[str, str], dict[str, bytes]]:
    cids: dict[str, str] = {}
    images: dict[str, bytes] = {}

    def add(name: str, png: bytes) -> None:
        cids[name] = content_id(name, data.iso_week)
        images[cids[name]] = png

    if sum(data.stage_counts.values()):
        add("stages", charts.stages_png(data.stage_counts, lang))
    if data.history:
        add("trend", charts.trend_png(data.history, lang))
    if not data.cohorts.is_empty:
        add("cohort", charts.cohort_heatmap_png(data.cohorts, lang))
    return cids, images


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = lambda text, width=76, indent="": textwrap.fill(
        text, width=width, initial_indent=indent, subsequent_indent=indent
    )
    return env


def render_digest(data: DigestData, language: str = "en") -> RenderedDigest:
    """Render one week's digest in ``language`` ('en' or 'ru')."""
    lang = get_language(language)
    week = data.week
    cids, images = _images(data, lang)
    subject = make_subject(data, lang)
    sentences = summary_sentences(data, lang)
    context = {
        "lang": lang.code,
        "t": lambda key, **kw: lang.text(key, **kw),
        "subject": subject,
        "preheader": sentences[0] if sentences else subject,
        "week_range": lang.text(
            "week_range",
            week=data.iso_week,
            start=lang.date(week.week_start),
            end=lang.date(week.week_end - timedelta(days=1)),  # week_end is exclusive
        ),
        "checks_failed": data.quality.get("checks_passed") is False,
        "sentences": sentences,
        "kpis": kpi_views(week, data.previous, lang),
        "risk": _risk_view(data, lang),
        "stages": _stage_view(data, lang),
        "trend": _trend_view(data, lang),
        "cohorts": _cohort_view(data, lang),
        "detractors": [_comment_view(c, lang) for c in data.detractor_comments],
        "promoters": [_comment_view(c, lang) for c in data.promoter_comments],
        "cids": cids,
        "footer": _footer(data, lang),
    }
    env = _environment()
    html = env.get_template("digest.html.j2").render(context)
    text = env.get_template("digest.txt.j2").render(context)
    return RenderedDigest(
        iso_week=data.iso_week,
        language=lang.code,
        subject=subject,
        html=html,
        text=text,
        images=images,
    )
