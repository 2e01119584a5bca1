"""The sample-data generator: contract, determinism, file layout and realism."""

from __future__ import annotations

import csv
import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from retention_pipeline.entities import ENTITIES as ALL_ENTITIES
from retention_pipeline.sample_data import generate

# entities a deployment may not have (call outcomes) are not part of the sample data
ENTITIES = {name: e for name, e in ALL_ENTITIES.items() if not e.may_be_empty}

END = date(2026, 11, 16)  # a Monday
END_AT = datetime(2026, 11, 16, tzinfo=UTC)
DAILY_FROM = date(2026, 10, 19)
CUSTOMERS = 1500

Row = dict[str, str]
Landing = dict[str, list[tuple[str, Row]]]  # entity -> (file name, row)

TIMESTAMP_COLUMNS = {
    "customers": ("created_at", "updated_at"),
    "orders": ("ordered_at", "updated_at"),
    "tickets": ("created_at", "first_reply_at", "solved_at", "updated_at"),
    "surveys": ("submitted_at",),
}
ID_FORMATS = {"customers": r"C\d{6,}", "orders": r"O\d{7,}", "tickets": r"T\d{6,}", "surveys": r"S\d{6,}"}
BAD_ORDER_VALUES = {("amount", "abc"), ("status", "lost"), ("ordered_at", "not-a-date")}


def read_landing(landing: Path) -> Landing:
    rows: Landing = {}
    for name, entity in ENTITIES.items():
        rows[name] = []
        for path in sorted((landing / name).glob("*.csv")):
            with path.open(newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                assert next(reader) == entity.column_names, path.name
                for record in reader:
                    assert len(record) == len(entity.columns), (path.name, record)
                    rows[name].append((path.name, dict(zip(entity.column_names, record, strict=True))))
    return rows


def ts(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.utcoffset() == timedelta(0), text
    return value


def is_bad_order(row: Row) -> bool:
    return row["order_id"] == "" or any(row[column] == value for column, value in BAD_ORDER_VALUES)


def good_orders(landing: Landing) -> list[Row]:
    """Orders without the injected bad rows; of a duplicated id the first version."""
    seen: set[str] = set()
    result = []
    for _, row in landing["orders"]:
        if not is_bad_order(row) and row["order_id"] not in seen:
            seen.add(row["order_id"])
            result.append(row)
    return result


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.csv"))}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    landing = tmp_path_factory.mktemp("landing")
    counts = generate(landing, end=END, customers=CUSTOMERS, daily_from=DAILY_FROM)
    return landing, counts


@pytest.fixture(scope="module")
def landing(generated: tuple[Path, dict[str, int]]) -> Landing:
    return read_landing(generated[0])


def test_every_file_has_the_contract_header_and_counts_match(
    generated: tuple[Path, dict[str, int]], landing: Landing
) -> None:
    _, counts = generated
    assert set(counts) == set(ENTITIES)
    for name, rows in landing.items():
        assert counts[name] == len(rows) > 0, name


def test_files_are_plain_utf8_csv_with_unix_newlines(generated: tuple[Path, dict[str, int]]) -> None:
    for path in generated[0].rglob("*.csv"):
        data = path.read_bytes()
        data.decode("utf-8")
        assert b"\r" not in data and data.endswith(b"\n"), path.name
    # a comment with a comma or a quote is quoted, CSV style
    surveys = b"".join(p.read_bytes() for p in (generated[0] / "surveys").glob("*.csv"))
    assert (
        b'"Great service, will order again."' in surveys or b'"Fine, but the choice is limited."' in surveys
    )


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    for folder, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate(tmp_path / folder, end=END, seed=seed, customers=300, daily_from=DAILY_FROM)
    a, b, c = (tree_bytes(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() & c.keys()
    assert all(a[k] != c[k] for k in a.keys() & c.keys() if "history" in k)


def test_timestamps_are_iso_utc_and_before_end(landing: Landing) -> None:
    for name, columns in TIMESTAMP_COLUMNS.items():
        for _, row in landing[name]:
            for column in columns:
                if row[column] in ("", "not-a-date"):
                    assert row[column] == "" or name == "orders"
                    continue
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", row[column])
                assert END_AT - timedelta(days=732) <= ts(row[column]) < END_AT, (name, row)


def test_ids_are_unique_except_the_injected_duplicate(landing: Landing) -> None:
    for name, entity in ENTITIES.items():
        ids = [row[entity.key] for _, row in landing[name]]
        real = [i for i in ids if i != ""]
        assert all(re.fullmatch(ID_FORMATS[name], i) for i in real), name
        duplicated = {i: n for i, n in Counter(real).items() if n > 1}
        if name == "orders":
            assert ids.count("") == 1
            assert list(duplicated.values()) == [2]
        else:
            assert duplicated == {}, name


def test_values_are_allowed_except_the_injected_bad_rows(landing: Landing) -> None:
    for name, entity in ENTITIES.items():
        for column in entity.columns:
            values = Counter(row[column.name] for _, row in landing[name])
            if column.allowed:
                outside = {v: n for v, n in values.items() if v not in column.allowed}
                assert outside == ({"lost": 1} if (name, column.name) == ("orders", "status") else {})
            if not column.nullable and column.name != entity.key:
                assert "" not in values, (name, column.name)
    amounts = [row["amount"] for _, row in landing["orders"]]
    assert [a for a in amounts if not re.fullmatch(r"\d+\.\d\d", a)] == ["abc"]
    assert all(float(a) >= 1 for a in amounts if a != "abc")
    assert {row["currency"] for _, row in landing["orders"]} == {"EUR"}
    scores = Counter(row["score"] for _, row in landing["surveys"])
    assert {s for s in scores if not 0 <= int(s) <= 10} == {"11"} and scores["11"] == 1
    for _, row in landing["customers"]:
        assert {row["do_not_call"], row["marketing_opt_out"]} <= {"true", "false"}
        assert re.fullmatch(r"M0[1-8]", row["manager_id"])
        assert row["email"] == "" or re.fullmatch(r"[a-z]+\.[a-z]+\d*@example\.(com|org|net)", row["email"])


def test_bad_rows_are_appended_to_the_latest_daily_files(landing: Landing) -> None:
    latest = max(f for f, _ in landing["orders"] if "history" not in f)
    assert latest == "orders_2026-11-15.csv"  # with this many customers, someone orders every day
    assert sum(is_bad_order(row) for _, row in landing["orders"]) == 4
    orders = [row for f, row in landing["orders"] if f == latest]
    assert [is_bad_order(row) for row in orders[-5:]] == [True] * 4 + [False]
    duplicate = orders[-1]
    original = next(row for row in orders[:-5] if row["order_id"] == duplicate["order_id"])
    assert original["updated_at"] == duplicate["updated_at"]
    assert original["amount"] != duplicate["amount"]
    latest = max(f for f, _ in landing["surveys"] if "history" not in f)
    assert [f for f, row in landing["surveys"] if row["score"] == "11"] == [latest]
    assert [row for f, row in landing["surveys"] if f == latest][-1]["score"] == "11"


def test_without_bad_rows_everything_is_valid(tmp_path: Path) -> None:
    counts = generate(tmp_path, end=END, customers=200, bad_rows=False)
    rows = read_landing(tmp_path)
    assert counts == {name: len(r) for name, r in rows.items()}
    assert not any(is_bad_order(row) for _, row in rows["orders"])
    assert len({row["order_id"] for _, row in rows["orders"]}) == counts["orders"]
    assert all(0 <= int(row["score"]) <= 10 for _, row in rows["surveys"])


def test_rows_land_in_the_file_of_their_availability_day(landing: Landing) -> None:
    for name, rows in landing.items():
        column = "submitted_at" if name == "surveys" else "updated_at"
        for file_name, row in rows:
            day = ts(row[column]).date()
            if day < DAILY_FROM:
                assert file_name == f"{name}_history_2026-10-18.csv"
            else:
                assert file_name == f"{name}_{day.isoformat()}.csv"
        names = {f for f, _ in rows}
        assert len(names) > 10, name  # a daily file for most days of the last four weeks


def test_without_daily_from_everything_is_one_history_file(tmp_path: Path) -> None:
    generate(tmp_path, end=END, customers=200)
    for name in ENTITIES:
        assert [p.name for p in (tmp_path / name).iterdir()] == [f"{name}_history_2026-11-15.csv"]


def test_customer_rows_are_available_before_their_activity(landing: Landing) -> None:
    available = {row["customer_id"]: ts(row["updated_at"]) for _, row in landing["customers"]}
    for _, row in landing["customers"]:
        assert ts(row["created_at"]) <= ts(row["updated_at"])
    assert sum(r["created_at"] != r["updated_at"] for _, r in landing["customers"]) > 0
    activity = [(r["customer_id"], r["ordered_at"]) for r in good_orders(landing)]
    activity += [(r["customer_id"], r["created_at"]) for _, r in landing["tickets"]]
    activity += [(r["customer_id"], r["submitted_at"]) for _, r in landing["surveys"]]
    for customer, at in activity:
        assert available[customer] <= ts(at), customer


def test_orders_look_like_a_b2c_shop(landing: Landing) -> None:
    orders = good_orders(landing)
    status = Counter(r["status"] for r in orders)
    assert 0.86 < status["completed"] / len(orders) < 0.94
    assert 0.03 < status["cancelled"] / len(orders) < 0.09
    assert 0.02 < status["refunded"] / len(orders) < 0.06
    for r in orders:
        delay = ts(r["updated_at"]) - ts(r["ordered_at"])
        assert delay >= timedelta(0)
        if r["status"] == "refunded":
            assert timedelta(days=2) <= delay <= timedelta(days=14)
    buyers = {r["customer_id"] for r in orders}
    assert 0.85 < len(buyers) / CUSTOMERS < 1
    check = statistics.median(float(r["amount"]) for r in orders)
    assert 20 < check < 80


def test_one_time_buyers_and_recent_drifters_are_plausible(landing: Landing) -> None:
    times: dict[str, list[datetime]] = defaultdict(list)
    for r in good_orders(landing):
        if r["status"] == "completed":
            times[r["customer_id"]].append(ts(r["ordered_at"]))
    one_time = sum(len(t) == 1 for t in times.values()) / len(times)
    assert 0.3 < one_time < 0.55

    # days since the last order in units of the customer's own median gap
    ratios = []
    for t in times.values():
        if len(t) >= 3:
            t.sort()
            gap = statistics.median((b - a).total_seconds() for a, b in pairwise(t))
            ratios.append((END_AT - t[-1]).total_seconds() / gap)
    drifting = sum(1.5 <= r < 4 for r in ratios) / len(ratios)
    active = sum(r < 1.5 for r in ratios) / len(ratios)
    assert 0.08 < drifting < 0.35
    assert 0.2 < active < 0.7


def test_tickets_are_consistent(landing: Landing) -> None:
    tickets = [row for _, row in landing["tickets"]]
    assert 0.25 < len(tickets) / CUSTOMERS < 0.6
    types = Counter(r["type"] for r in tickets)
    assert types["question"] == max(types.values()) and min(types.values()) > 0.1 * len(tickets)
    for r in tickets:
        created = ts(r["created_at"])
        if r["status"] == "new":
            assert r["first_reply_at"] == r["solved_at"] == r["assignee_id"] == ""
        else:
            assert ts(r["first_reply_at"]) > created and re.fullmatch(r"M0[1-8]", r["assignee_id"])
        if r["status"] in ("solved", "closed"):
            assert ts(r["solved_at"]) > ts(r["first_reply_at"])
        else:
            assert r["solved_at"] == ""
        latest = max(ts(r[c]) for c in ("created_at", "first_reply_at", "solved_at") if r[c])
        assert ts(r["updated_at"]) == latest
        assert r["subject"]
    assert {r["status"] for r in tickets} >= {"closed", "solved"}


def test_survey_scores_follow_customer_health(landing: Landing) -> None:
    last_order: dict[str, datetime] = {}
    for r in good_orders(landing):
        at = ts(r["ordered_at"])
        last_order[r["customer_id"]] = max(at, last_order.get(r["customer_id"], at))
    recent, gone = [], []
    for _, r in landing["surveys"]:
        if r["score"] == "11":
            continue
        idle = END_AT - last_order[r["customer_id"]]
        if idle < timedelta(days=45):
            recent.append(int(r["score"]))
        elif idle > timedelta(days=180):
            gone.append(int(r["score"]))
    assert statistics.mean(recent) > statistics.mean(gone) + 0.5
    manager = {row["customer_id"]: row["manager_id"] for _, row in landing["customers"]}
    assert all(r["manager_id"] == manager[r["customer_id"]] for _, r in landing["surveys"])
    assert {r["channel"] for _, r in landing["surveys"]} == {"email", "sms", "app"}
    assert any(r["comment"] == "" for _, r in landing["surveys"])
