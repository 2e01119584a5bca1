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
    NEW,
    NO_ORDERS,
    STAGES,
    TIERS,
    CampaignResults,
    DigestData,
    HotSpot,
    StageFlow,
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
DEFAULT_CURRENCY = "EUR"
MAX_THEME_CHARS = 80
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


def format_value(value: float | None, metric: Metric, lang: Language, currency: str | None = None) -> str:
    """``currency`` labels money: a bare "110,000" leaves a reader guessing what it counts."""
    if value is None:
        return lang.text("change.na")
    if metric.kind == "rate":
        return lang.percent(value, metric.decimals)
    if metric.kind == "money" and currency:
        return lang.money(value, metric.decimals, currency)
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


def kpi_views(
    week: WeekKpis, previous: WeekKpis | None, lang: Language, currency: str | None = None
) -> list[KpiView]:
    views = []
    for metric in METRICS:
        current = getattr(week, metric.field)
        before = getattr(previous, metric.field) if previous is not None else None
        views.append(
            KpiView(
                label=lang.text(f"kpi.{metric.field}"),
                value=format_value(current, metric, lang, currency),
                change=week_change(current, before, metric, lang),
            )
        )
    return views


def make_subject(data: DigestData, lang: Language, churn_target: float | None = None) -> str:
    """'Customer digest 2026-W47: churn 2.1% (▼0.3 pp), target 2.0%, 1,234 active customers'."""
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
        if churn_target is not None:
            parts.append(lang.text("subject.target", target=format_value(churn_target, churn, lang)))
    if week.active_customers is not None:
        parts.append(
            lang.text(
                "subject.active",
                active=lang.number(week.active_customers),
                customers=lang.plural("customers", week.active_customers),
            )
        )
    return lang.text("subject", week=data.iso_week, headline=", ".join(parts))


def target_view(data: DigestData, lang: Language, churn_target: float | None) -> dict[str, str] | None:
    """Where the week's churn rate stands against the team's key result.

    The gap is taken between the *displayed* rates, like week-over-week changes, so
    "2.1% against 2.0%: 0.1 pp to go" adds up for the reader.
    """
    rate = data.week.churn_rate
    if churn_target is None or rate is None:
        return None
    churn = METRICS_BY_FIELD["churn_rate"]
    gap = _shown(rate, churn) - _shown(churn_target, churn)
    met = gap < 0.5 * 10**-churn.decimals
    target = format_value(churn_target, churn, lang)
    first = data.history[0] if data.history else None
    since = ""
    if first is not None and first.iso_week != data.iso_week and first.churn_rate is not None:
        since = lang.text(
            "sentence.target.since", first=format_value(first.churn_rate, churn, lang), week=first.iso_week
        )
    gap_text = lang.points(abs(gap), churn.decimals)
    return {
        "headline": lang.text("headline.target", rate=format_value(rate, churn, lang), target=target),
        "progress": lang.text("headline.progress.met")
        if met
        else lang.text("headline.progress.above", gap=gap_text),
        "sentence": lang.text("sentence.target.met", target=target, since=since)
        if met
        else lang.text("sentence.target.above", target=target, gap=gap_text, since=since),
        "colour": TONE_COLOURS["good" if met else "bad"],
        "background": "#dafbe1" if met else "#ffebe9",
    }


def summary_sentences(
    data: DigestData, lang: Language, currency: str | None = None, churn_target: float | None = None
) -> list[str]:
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
    target = target_view(data, lang, churn_target)
    if target is not None:
        sentences.append(target["sentence"])
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
                revenue=format_value(week.revenue, METRICS_BY_FIELD["revenue"], lang, currency),
                orders=n(week.orders),
                orders_word=lang.plural("orders", week.orders),
                check=format_value(week.average_check, METRICS_BY_FIELD["average_check"], lang, currency),
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
        # the HTML heads its columns with the bare letter (the caption says what it is),
        # so the matrix fits a phone screen in every language
        "tier_codes": tiers,
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


def _stage_label(stage: str, lang: Language) -> str:
    key = f"stage.{stage}"
    return lang.text(key) if key in lang.catalog else stage


def flow_stages(flows: tuple[StageFlow, ...]) -> tuple[list[str], list[str]]:
    """Row (from) and column (to) stages in the order a customer moves through them."""
    order = [NEW, *STAGES, NO_ORDERS]
    extra = sorted(({f.from_stage for f in flows} | {f.to_stage for f in flows}) - set(order))
    rows = [s for s in (*order, *extra) if any(f.from_stage == s for f in flows)]
    columns = [s for s in (*order, *extra) if any(f.to_stage == s for f in flows)]
    return rows, columns


def _flow_direction(flow: StageFlow) -> int:
    """+1 toward churn, -1 back toward active, 0 stayed or not comparable."""
    if flow.from_stage not in STAGES or flow.to_stage not in STAGES:
        return 0
    step = STAGES.index(flow.to_stage) - STAGES.index(flow.from_stage)
    return (step > 0) - (step < 0)


def _flows_view(data: DigestData, lang: Language) -> dict[str, Any] | None:
    flows = data.stage_flows
    if not flows:
        return None
    n = lang.number
    rows, columns = flow_stages(flows)
    cells = {(f.from_stage, f.to_stage): f.customers for f in flows}
    worse = sum(f.customers for f in flows if _flow_direction(f) > 0)
    better = sum(f.customers for f in flows if _flow_direction(f) < 0)
    new = sum(f.customers for f in flows if f.from_stage == NEW)
    sentences = [
        lang.text(
            "flows.worse",
            worse=n(worse),
            customers=lang.plural("customers", worse),
            better=n(better),
            new=n(new),
        )
    ]
    toward_churn = sorted(
        (f for f in flows if _flow_direction(f) > 0), key=lambda f: (-f.customers, f.from_stage)
    )
    if toward_churn:
        top = toward_churn[0]
        sentences.append(
            lang.text(
                "flows.biggest",
                from_stage=_stage_label(top.from_stage, lang),
                to_stage=_stage_label(top.to_stage, lang),
                count=n(top.customers),
            )
        )
    moves = sorted(
        (f for f in flows if f.from_stage != f.to_stage), key=lambda f: (-f.customers, f.from_stage)
    )
    return {
        "sentences": sentences,
        # the plain text lists the moves: a wide matrix does not survive a mail client's wrapping
        "moves": [
            {
                "from": _stage_label(f.from_stage, lang),
                "to": _stage_label(f.to_stage, lang),
                "count": n(f.customers),
            }
            for f in moves
        ],
        "columns": [_stage_label(c, lang) for c in columns],
        "rows": [
            {
                "label": _stage_label(r, lang),
                "cells": [n(cells[(r, c)]) if (r, c) in cells else "\u00b7" for c in columns],
            }
            for r in rows
        ],
    }


def _hot_spot_rows(
    spots: tuple[HotSpot, ...], lang: Language, label: str | None = None
) -> list[dict[str, str]]:
    return [
        {
            "group": lang.text(label, manager=s.group) if label else s.group,
            "before": lang.percent(s.share_before),
            "now": lang.percent(s.share_now),
            "rise": f"{ARROW_UP}{lang.points(_shown(s.share_now, _RATE) - _shown(s.share_before, _RATE))}",
            "count": lang.text(
                "hot.count", now=lang.number(s.churned_now), customers=lang.number(s.customers)
            ),
        }
        for s in spots
    ]


_RATE = Metric("share", "rate", 1, -1)


def _hot_spots_view(data: DigestData, lang: Language) -> dict[str, Any] | None:
    groups = []
    if data.segment_hot_spots is not None:
        groups.append(
            {"title": lang.text("hot.segments"), "rows": _hot_spot_rows(data.segment_hot_spots, lang)}
        )
    if data.manager_hot_spots is not None:
        groups.append(
            {
                "title": lang.text("hot.managers"),
                "rows": _hot_spot_rows(data.manager_hot_spots, lang, "hot.manager"),
            }
        )
    cohort = None
    spot = data.cohort_hot_spot
    if spot is not None:
        cohort = lang.text(
            "hot.cohort",
            month=f"{spot.cohort_month:%Y-%m}",
            k=spot.months_since_first,
            retention=lang.percent(spot.retention, 0),
            average=lang.percent(spot.others_average, 0),
        )
    if not groups and cohort is None:
        return None
    return {"groups": groups, "cohort": cohort}


def _complaints_view(data: DigestData, lang: Language) -> dict[str, Any] | None:
    if data.complaint_themes is None and data.sla_breach_rate is None:
        return None
    lines = []
    if data.complaints is not None:
        lines.append(
            lang.text(
                "complaints.total",
                count=lang.number(data.complaints),
                tickets=lang.plural("tickets", data.complaints),
            )
            if data.complaints
            else lang.text("complaints.none")
        )
    if data.sla_breach_rate is not None:
        lines.append(lang.text("complaints.sla", rate=lang.percent(data.sla_breach_rate)))
    # Subjects are typed by customers or agents: masked like survey comments.
    themes = [
        {"subject": shorten(redact_contacts(t.subject), MAX_THEME_CHARS), "tickets": lang.number(t.tickets)}
        for t in data.complaint_themes or ()
    ]
    return {"lines": lines, "themes": themes}


def _campaign_view(campaign: CampaignResults | None, lang: Language, currency: str) -> dict[str, Any] | None:
    if campaign is None or not campaign.variants:
        return None
    n = lang.number
    pushed, reached = campaign.total("pushed"), campaign.total("reached")
    agreed, converted = campaign.total("agreed_to_return"), campaign.total("converted")

    def share(part: int, whole: int) -> str:
        return lang.percent(part / whole, 0) if whole else lang.text("change.na")

    def pp(value: float | None) -> str:
        return lang.text("change.na") if value is None else lang.points(value * 100, 1, signed=True)

    lines = [
        lang.text(
            "campaign.summary",
            pushed=n(pushed),
            customers=lang.plural("customers", pushed),
            reached=n(reached),
            reached_share=share(reached, pushed),
            agreed=n(agreed),
            agreed_share=share(agreed, reached),
            converted=n(converted),
            conversion=share(converted, pushed),
        )
    ]
    with_uplift = [v for v in campaign.variants if v.uplift is not None]
    if with_uplift:
        best = max(with_uplift, key=lambda v: (v.uplift or 0.0, v.variant))
        if best.uplift_ci_low is not None and best.uplift_ci_high is not None:
            lines.append(
                lang.text(
                    "campaign.uplift",
                    variant=best.variant,
                    uplift=pp(best.uplift),
                    low=pp(best.uplift_ci_low),
                    high=pp(best.uplift_ci_high),
                )
            )
        else:
            lines.append(lang.text("campaign.uplift_plain", variant=best.variant, uplift=pp(best.uplift)))
    costs = [(v.retention_cost, v.converted) for v in campaign.variants if v.retention_cost is not None]
    if costs:
        # The campaign's cost per retained customer: variants weighted by who they retained.
        weight = sum(c for _, c in costs)
        cost = (
            sum((r or 0.0) * c for r, c in costs) / weight
            if weight
            else sum(r or 0.0 for r, _ in costs) / len(costs)
        )
        lines.append(lang.text("campaign.cost", cost=lang.money(cost, 2, currency)))
    return {
        "campaign": campaign.campaign,
        "lines": lines,
        # Measures down, scripts across: two or three scripts fit a phone, six measures do not.
        "variants": [lang.text("campaign.variant", variant=v.variant) for v in campaign.variants],
        "rows": [
            {"label": lang.text("col.pushed"), "cells": [n(v.pushed) for v in campaign.variants]},
            {"label": lang.text("col.reached"), "cells": [n(v.reached) for v in campaign.variants]},
            {"label": lang.text("col.agreed"), "cells": [n(v.agreed_to_return) for v in campaign.variants]},
            {"label": lang.text("col.converted"), "cells": [n(v.converted) for v in campaign.variants]},
            {"label": lang.text("col.uplift"), "cells": [pp(v.uplift) for v in campaign.variants]},
        ],
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


def _images(
    data: DigestData, lang: Language, churn_target: float | None = None
) -> tuple[dict[str, str], dict[str, bytes]]:
    cids: dict[str, str] = {}
    images: dict[str, bytes] = {}

    def add(name: str, png: bytes) -> None:
        cids[name] = content_id(name, data.iso_week)
        images[cids[name]] = png

    if sum(data.stage_counts.values()):
        add("stages", charts.stages_png(data.stage_counts, lang))
    if data.history:
        add("trend", charts.trend_png(data.history, lang, churn_target))
    if not data.cohorts.is_empty:
        add("cohort", charts.cohort_heatmap_png(data.cohorts, lang))
    if data.stage_flows:
        add("flows", charts.stage_flows_png(data.stage_flows, lang))
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


def render_digest(
    data: DigestData,
    language: str = "en",
    *,
    churn_target: float | None = None,
    currency: str = DEFAULT_CURRENCY,
) -> RenderedDigest:
    """Render one week's digest in ``language`` ('en' or 'ru').

    ``churn_target`` is the team's key result for the weekly churn rate (a fraction),
    shown in the subject, the headline and the trend; ``currency`` labels money.
    """
    lang = get_language(language)
    week = data.week
    cids, images = _images(data, lang, churn_target)
    subject = make_subject(data, lang, churn_target)
    sentences = summary_sentences(data, lang, currency, churn_target)
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
        "kpis": kpi_views(week, data.previous, lang, currency),
        "target": target_view(data, lang, churn_target),
        "flows": _flows_view(data, lang),
        "hot_spots": _hot_spots_view(data, lang),
        "complaints": _complaints_view(data, lang),
        "campaign": _campaign_view(data.campaign, lang, currency),
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
