"""The reporting week, defined once.

A reporting week is an ISO week in the business timezone (``RETENTION_TIMEZONE``),
Monday 00:00 to the next Monday 00:00. The weekly DAG's data interval *is* that week
(``CronDataIntervalTimetable("0 0 * * 1")`` in the same timezone), and the as-of moment
handed to dbt is the interval end. Everything that needs "which week" derives it here.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

WEEKLY_CRON = "0 0 * * 1"
DAILY_CRON = "0 0 * * *"
_ISO_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def parse_iso_week(label: str) -> tuple[int, int]:
    m = _ISO_WEEK.match(label.strip())
    if not m:
        raise ValueError(f"not an ISO week: {label!r} (expected e.g. 2026-W47)")
    year, week = int(m.group(1)), int(m.group(2))
    date.fromisocalendar(year, week, 1)  # raises for week 53 of a 52-week year
    return year, week


def week_interval(label: str, timezone: str = "UTC") -> tuple[datetime, datetime]:
    """[Monday 00:00, next Monday 00:00) of an ISO week, in the business timezone."""
    year, week = parse_iso_week(label)
    monday = date.fromisocalendar(year, week, 1)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=ZoneInfo(timezone))
    return start, start + timedelta(days=7)


def iso_week_of(moment: datetime, timezone: str = "UTC") -> str:
    local = moment.astimezone(ZoneInfo(timezone))
    year, week, _ = local.isocalendar()
    return f"{year}-W{week:02d}"


def week_of_interval(data_interval_start: datetime, timezone: str = "UTC") -> str:
    """The ISO week a weekly data interval covers (its start lies on that week's Monday)."""
    return iso_week_of(data_interval_start, timezone)


def previous_weeks(label: str, count: int, timezone: str = "UTC") -> list[str]:
    """``count`` consecutive ISO weeks ending with ``label``, oldest first."""
    start, _ = week_interval(label, timezone)
    return [iso_week_of(start - timedelta(days=7 * k), timezone) for k in range(count - 1, -1, -1)]


def weeks_between(first: str, last: str, timezone: str = "UTC") -> list[str]:
    """ISO weeks from ``first`` to ``last`` inclusive, oldest first."""
    start, _ = week_interval(first, timezone)
    end, _ = week_interval(last, timezone)
    if end < start:
        raise ValueError(f"{last} is before {first}")
    weeks = []
    while start <= end:
        weeks.append(iso_week_of(start, timezone))
        start += timedelta(days=7)
    return weeks


def days_of_week(label: str, timezone: str = "UTC") -> list[datetime]:
    start, _ = week_interval(label, timezone)
    return [start + timedelta(days=d) for d in range(7)]


def as_of(data_interval_end: datetime) -> str:
    """The as-of moment dbt computes "now" from: the exclusive end of the interval."""
    return data_interval_end.isoformat()


def last_complete_week(today: date, timezone: str = "UTC") -> str:
    """The ISO week that ended most recently on or before ``today``."""
    this_monday = today - timedelta(days=today.weekday())
    return iso_week_of(
        datetime.combine(this_monday - timedelta(days=7), datetime.min.time(), ZoneInfo(timezone)),
        timezone,
    )
