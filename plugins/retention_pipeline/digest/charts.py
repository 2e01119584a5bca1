"""The digest's pictures, as PNG bytes for a mail client: laid out 600 px wide, drawn at
twice that (``SCALE``) so they stay sharp on high-density phone screens.

Most readers open the digest on a phone, where a 600 px picture shrinks to about
330 px: text on the pictures is therefore large (11 pt and up at 600 px), and the
pictures carry no titles of their own (the section heading above each says it).

matplotlib is imported inside the functions: it is slow to import and DAG files must
parse fast. Figures are drawn with the object API on an Agg canvas, never through
pyplot, so no global backend or figure state leaks between tasks in one worker.
Text on the pictures comes from the language catalog; DejaVu Sans (matplotlib's
default font) covers Cyrillic.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from retention_pipeline.digest.data import NEW, NO_ORDERS, STAGES, CohortMatrix, StageFlow, WeekKpis
from retention_pipeline.digest.i18n import Language

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

WIDTH_PX = 600  # the width the HTML lays the picture out at
DPI = 100
SCALE = 2  # pixels per layout pixel in the PNG
LABEL_PT = 11
STAGE_COLOURS = {
    "active": "#2da44e",
    "churn risk": "#d4a72c",
    "potential churn": "#e16f24",
    "churned": "#cf222e",
    NO_ORDERS: "#8c959f",
}
INK = "#24292f"
MUTED = "#57606a"


def _figure(height_px: int) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_PX / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    fig.patch.set_facecolor("white")
    return fig


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    # No bbox_inches="tight": it would change the pixel width the HTML relies on.
    # metadata={"Software": None} keeps the bytes identical across matplotlib versions.
    fig.savefig(buffer, format="png", dpi=DPI * SCALE, metadata={"Software": None})
    return buffer.getvalue()


def _style(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=LABEL_PT)


def trend_png(history: Sequence[WeekKpis], lang: Language, churn_target: float | None = None) -> bytes:
    """Active customers (bars, left axis) and churn rate (line, right axis) by week,
    with the churn-rate target as a dashed line so progress toward it is visible."""
    from matplotlib.ticker import FuncFormatter

    fig = _figure(300)
    ax = fig.add_subplot()
    _style(ax)
    # "W47" without the year; every other week when there are many, so the labels fit a phone
    labels = [
        w.iso_week[-3:] if len(history) <= 6 or (len(history) - 1 - i) % 2 == 0 else ""
        for i, w in enumerate(history)
    ]
    x = list(range(len(history)))
    active = [w.active_customers if w.active_customers is not None else math.nan for w in history]
    ax.bar(x, active, color="#9ecbff", width=0.6, label=lang.text("chart.trend.active"))
    ax.set_xticks(x, labels)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: lang.number(v)))
    ax.set_ylabel(lang.text("chart.trend.active"), color="#0969da", fontsize=LABEL_PT)

    churn_ax = ax.twinx()
    churn = [w.churn_rate if w.churn_rate is not None else math.nan for w in history]
    churn_ax.plot(x, churn, color="#cf222e", marker="o", linewidth=2, label=lang.text("chart.trend.churn"))
    top = max([c for c in churn if not math.isnan(c)] + ([churn_target] if churn_target else []) or [0.01])
    churn_ax.set_ylim(bottom=0, top=top * 1.3)
    if churn_target is not None:
        churn_ax.axhline(churn_target, color="#cf222e", linestyle="--", linewidth=1, alpha=0.7)
        # at the left end, below the dashed line, where the bars are lowest
        churn_ax.annotate(
            lang.text("chart.trend.target", target=lang.percent(churn_target)),
            xy=(-0.4, churn_target),
            xytext=(0, -4),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize=LABEL_PT,
            color="#cf222e",
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85},
        )
    churn_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: lang.percent(v)))
    churn_ax.set_ylabel(lang.text("chart.trend.churn"), color="#cf222e", fontsize=LABEL_PT)
    churn_ax.tick_params(colors=MUTED, labelsize=LABEL_PT)
    churn_ax.spines["top"].set_visible(False)
    return _png(fig)


def stages_png(stage_counts: Mapping[str, int], lang: Language) -> bytes:
    """Customers per churn stage, in the order a customer moves through them."""
    fig = _figure(40 + 42 * 5)
    ax = fig.add_subplot()
    _style(ax)
    stages = [s for s in (*STAGES, NO_ORDERS) if s in stage_counts]
    counts = [stage_counts[s] for s in stages]
    y = list(range(len(stages)))
    ax.barh(y, counts, color=[STAGE_COLOURS.get(s, MUTED) for s in stages], height=0.6)
    ax.set_yticks(y, [lang.text(f"stage.{s}") for s in stages])
    ax.invert_yaxis()
    ax.set_xticks([])
    ax.spines["bottom"].set_visible(False)
    top = max(counts or [0]) or 1
    total = sum(counts) or 1
    for i, n in enumerate(counts):
        ax.text(
            n + top * 0.01,
            i,
            f"{lang.number(n)}  ({lang.percent(n / total, 0)})",
            va="center",
            fontsize=LABEL_PT,
            color=INK,
        )
    ax.set_xlim(0, top * 1.45)
    return _png(fig)


def cohort_heatmap_png(cohorts: CohortMatrix, lang: Language) -> bytes:
    """Customer retention per monthly cohort; empty cells are months not reached yet."""
    import numpy as np
    from matplotlib import colormaps

    rows = len(cohorts.cohort_months)
    fig = _figure(110 + 30 * rows)
    ax = fig.add_subplot()
    values = np.array([[math.nan if v is None else v for v in row] for row in cohorts.retention], dtype=float)
    masked = np.ma.masked_invalid(values)
    # Period 0 is 100% by definition and would flatten the colour scale for the rest.
    later = values[:, 1:] if values.shape[1] > 1 else values
    finite = later[np.isfinite(later)]
    vmax = float(finite.max()) if finite.size else 1.0
    cmap = colormaps["YlGn"].with_extremes(bad="white")
    ax.imshow(masked, cmap=cmap, vmin=0, vmax=max(vmax, 0.01), aspect="auto")
    ax.set_xticks(range(len(cohorts.periods)), [str(k) for k in cohorts.periods])
    ax.set_yticks(
        range(rows),
        [f"{m:%Y-%m}" for m in cohorts.cohort_months],
    )
    ax.tick_params(labelsize=10, colors=MUTED, length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    for (r, c), v in np.ndenumerate(values):
        if math.isfinite(v):
            ax.text(
                c,
                r,
                lang.number(v * 100),
                ha="center",
                va="center",
                fontsize=9,
                color="white" if v > vmax * 0.6 else INK,
            )
    ax.set_xlabel(lang.text("chart.cohort.x"), fontsize=LABEL_PT, color=MUTED)
    ax.set_ylabel(lang.text("chart.cohort.y"), fontsize=LABEL_PT, color=MUTED)
    ax.set_title(lang.text("chart.cohort.title") + ", %", fontsize=LABEL_PT + 1, color=INK, loc="left")
    return _png(fig)


def stage_flows_png(flows: Sequence[StageFlow], lang: Language) -> bytes:
    """The week's stage changes as a from x to matrix.

    Cells toward churn are red, back toward active green, staying put grey; the
    shade grows with the count (log scale: "stayed active" dwarfs every move).
    """
    from matplotlib.colors import to_rgb

    order = [NEW, *STAGES, NO_ORDERS]
    extra = sorted(({f.from_stage for f in flows} | {f.to_stage for f in flows}) - set(order))
    rows = [s for s in (*order, *extra) if any(f.from_stage == s for f in flows)]
    columns = [s for s in (*order, *extra) if any(f.to_stage == s for f in flows)]
    cells = {(f.from_stage, f.to_stage): f.customers for f in flows}
    top = max(cells.values() or [1])

    def label(stage: str) -> str:
        key = f"stage.{stage}"
        return lang.text(key) if key in lang.catalog else stage

    fig = _figure(90 + 44 * len(rows))
    ax = fig.add_subplot()
    for r, src in enumerate(rows):
        for c, dst in enumerate(columns):
            n = cells.get((src, dst), 0)
            if src in STAGES and dst in STAGES and src != dst:
                base = "#cf222e" if STAGES.index(dst) > STAGES.index(src) else "#2da44e"
            else:
                base = "#8c959f"
            strength = 0.0 if not n else 0.15 + 0.85 * math.log1p(n) / math.log1p(top)
            colour = tuple(1 - strength * (1 - ch) for ch in to_rgb(base))
            ax.add_patch(_cell(c, r, colour))
            if n:
                ax.text(
                    c,
                    r,
                    lang.number(n),
                    ha="center",
                    va="center",
                    fontsize=LABEL_PT + 1,
                    color="white" if strength > 0.6 else INK,
                    fontweight="bold" if base != "#8c959f" else "normal",
                )
    ax.set_xlim(-0.5, len(columns) - 0.5)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    # column labels wrap onto two lines: four stage names side by side must fit 600 px
    ax.set_xticks(range(len(columns)), [label(c).replace(" ", "\n", 1) for c in columns])
    ax.set_yticks(range(len(rows)), [label(r) for r in rows])
    ax.xaxis.tick_top()
    ax.tick_params(labelsize=LABEL_PT - 1, colors=MUTED, length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel(lang.text("chart.flows.x"), fontsize=LABEL_PT - 1, color=MUTED)
    ax.xaxis.set_label_position("top")
    ax.set_ylabel(lang.text("chart.flows.y"), fontsize=LABEL_PT - 1, color=MUTED)
    return _png(fig)


def _cell(x: int, y: int, colour: tuple[float, ...]) -> Rectangle:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.48, y - 0.46), 0.96, 0.92, facecolor=colour, edgecolor="white")
