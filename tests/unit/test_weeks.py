"""The reporting week is defined once: these are its rules."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from retention_pipeline.weeks import (
    days_of_week,
    last_complete_week,
    parse_iso_week,
    previous_weeks,
    week_interval,
    week_of_interval,
    weeks_between,
)


def test_week_interval_is_monday_to_monday_in_the_business_timezone():
    start, end = week_interval("2026-W47", "Europe/Berlin")
    assert start.isoformat() == "2026-11-16T00:00:00+01:00"
    assert end.isoformat() == "2026-11-23T00:00:00+01:00"
    assert week_of_interval(start, "Europe/Berlin") == "2026-W47"


def test_iso_years_roll_over_correctly():
    # 2026-12-28 is in 2026-W53; 2027-01-01 still belongs to it
    assert previous_weeks("2027-W01", 3) == ["2026-W52", "2026-W53", "2027-W01"]
    assert weeks_between("2026-W52", "2027-W02") == ["2026-W52", "2026-W53", "2027-W01", "2027-W02"]


def test_last_complete_week_on_a_monday_and_midweek():
    assert last_complete_week(date(2026, 11, 23)) == "2026-W47"  # Monday: the week just ended
    assert last_complete_week(date(2026, 11, 26)) == "2026-W47"
    assert last_complete_week(date(2026, 11, 22)) == "2026-W46"  # Sunday: W47 is not over


def test_days_of_week_are_the_seven_ingest_intervals():
    days = days_of_week("2026-W47")
    assert days[0] == datetime(2026, 11, 16, tzinfo=UTC)
    assert len(days) == 7 and days[-1].day == 22


@pytest.mark.parametrize("bad", ["2026-47", "2026-W54", "2025-W53", "W47"])
def test_malformed_weeks_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_iso_week(bad)


def test_a_range_backwards_is_an_error():
    with pytest.raises(ValueError, match="before"):
        weeks_between("2026-W47", "2026-W40")
