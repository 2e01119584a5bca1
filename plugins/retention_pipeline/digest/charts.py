"""The digest's pictures, as PNG bytes sized for a mail client (600 px wide).

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

from retention_pipeline.digest.data import NO_ORDERS, STAGES, CohortMatrix, WeekKpis
from retention_pipeline.digest.i18n import Language

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH_PX = 600
DPI = 100
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
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _style(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=8)


def trend_png(history: Sequence[WeekKpis], lang: Language) -> bytes:
    """Active customers (bars, left axis) and churn rate (line, right axis) by week."""
    from matplotlib.ticker import FuncFormatter

    fig = _figure(280)
    ax = fig.add_subplot()
    _style(ax)
    labels = [w.iso_week[-3:] for w in history]  # "W47": the year adds nothing here
    x = list(range(len(history)))
    active = [w.active_customers if w.active_customers is not None else math.nan for w in history]
    ax.bar(x, active, color="#9ecbff", width=0.6, label=lang.text("chart.trend.active"))
    ax.set_xticks(x, labels)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: lang.number(v)))
    ax.set_ylabel(lang.text("chart.trend.active"), color="#0969da", fontsize=8)

    churn_ax = ax.twinx()
    churn = [w.churn_rate if w.churn_rate is not None else math.nan for w in history]
    churn_ax.plot(x, churn, color="#cf222e", marker="o", linewidth=2, label=lang.text("chart.trend.churn"))
    churn_ax.set_ylim(bottom=0, top=max([c for c in churn if not math.isnan(c)] or [0.01]) * 1.3)
    churn_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: lang.percent(v)))
    churn_ax.set_ylabel(lang.text("chart.trend.churn"), color="#cf222e", fontsize=8)
    churn_ax.tick_params(colors=MUTED, labelsize=8)
    churn_ax.spines["top"].set_visible(False)
    ax.set_title(lang.text("chart.trend.title"), fontsize=10, color=INK, loc="left")
    return _png(fig)


def stages_png(stage_counts: Mapping[str, int], lang: Language) -> bytes:
    """Customers per churn stage, in the order a customer moves through them."""
    fig = _figure(230)
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
            fontsize=8,
            color=INK,
        )
    ax.set_xlim(0, top * 1.3)
    ax.set_title(lang.text("chart.stages.title"), fontsize=10, color=INK, loc="left")
    return _png(fig)


def cohort_heatmap_png(cohorts: CohortMatrix, lang: Language) -> bytes:
    """Customer retention per monthly cohort; empty cells are months not reached yet."""
    import numpy as np
    from matplotlib import colormaps

    rows = len(cohorts.cohort_months)
    fig = _figure(150 + 24 * rows)
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
        [
            f"{m:%Y-%m} ({lang.number(n)})"
            for m, n in zip(cohorts.cohort_months, cohorts.cohort_sizes, strict=True)
        ],
    )
    ax.tick_params(labelsize=7, colors=MUTED, length=0)
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
                fontsize=6.5,
                color="white" if v > vmax * 0.6 else INK,
            )
    ax.set_xlabel(lang.text("chart.cohort.x"), fontsize=8, color=MUTED)
    ax.set_ylabel(lang.text("chart.cohort.y"), fontsize=8, color=MUTED)
    ax.set_title(lang.text("chart.cohort.title") + ", %", fontsize=10, color=INK, loc="left")
    return _png(fig)
