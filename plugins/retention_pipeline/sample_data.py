"""Deterministic, realistic sample data for the landing folder.

``generate`` writes customers, orders, tickets and surveys as the CSV files a
user would drop into the landing folder, in exactly the columns of
:mod:`retention_pipeline.entities`. It exists so that the whole pipeline (load,
quarantine, dbt marts, digest, call lists) can run end to end without anybody's
real data, and so that tests and benchmarks see the same bytes for the same seed.

The data is shaped to exercise the domain logic, not just the schema:

* sign-ups spread over the period with growth, each customer with their own
  purchase rhythm (lognormal mean gap, median ~30 days) and average check;
* many one-time buyers, a few customers who never buy, lifetimes after which a
  customer stops ordering, customers whose gaps keep growing, and "drifters"
  who stopped one to three of their own gaps before ``end`` so that the latest
  weeks show churn risk and potential churn;
* tickets (more, and angrier, for customers who leave) and surveys whose score
  follows the customer's health;
* optionally a handful of deterministic bad rows for the loader to quarantine.

Everything is vectorised with numpy (no Python loop over customers or orders)
and files are rendered in chunks with pyarrow compute: a million customers with
5.6 million orders take about 13 seconds and 0.9 GB on two cores.

Time is handled as integer seconds since the Unix epoch, in UTC, throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from io import BufferedWriter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from retention_pipeline.entities import CUSTOMERS, ORDERS, SURVEYS, TICKETS, Entity

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

MINUTE = 60
HOUR = 3_600
DAY = 86_400

# --- behaviour knobs (the shape of the customer base) -----------------------------
SIGNUP_GROWTH = 3.0  # sign-ups per day at the end of the period vs. at its start
NEVER_BUYER_SHARE = 0.04  # signed up, never ordered
ONE_TIME_SHARE = 0.30  # decided to buy once; short lifetimes add more one-timers
MEDIAN_GAP_DAYS = 30.0
GAP_SIGMA = 0.85  # lognormal spread of the personal mean gap: weekly .. quarterly
GAP_SHAPE = 2.5  # gamma shape of individual gaps: higher means a steadier rhythm
MIN_GAP = 4 * HOUR
MAX_GAP = 3_650 * DAY  # longer than any period: only bounds the arithmetic
MEAN_LIFETIME_DAYS = 300.0  # exponential: roughly 10 % of repeat buyers stop per month
GROWING_GAP_SHARE = 0.15
GAP_GROWTH = 1.12  # each gap of a "growing gaps" customer is 12 % longer than the last
DRIFTER_SHARE = 0.15  # of repeat buyers still ordering at the end
MEDIAN_CHECK_EUR = 38.0
CHECK_SIGMA = 0.65
ORDER_AMOUNT_SIGMA = 0.30  # one order around the customer's own average check
UPDATED_LATER_SHARE = 0.03

ORDER_STATUSES = ("completed", "cancelled", "refunded")
ORDER_STATUS_P = (0.90, 0.06, 0.04)

TICKETS_PER_STAYER = 0.25  # Poisson mean per buyer still ordering at the end
TICKETS_PER_LEAVER = 0.50  # ... and per buyer who has stopped
TICKET_STATUSES = ("new", "open", "pending", "solved", "closed")
TICKET_TYPES = ("question", "incident", "complaint")
TICKET_TYPE_P_STAYER = (0.55, 0.30, 0.15)
TICKET_TYPE_P_LEAVER = (0.40, 0.30, 0.30)
PRIORITIES = ("low", "normal", "high", "urgent")
PRIORITY_P_BY_TYPE = ((0.45, 0.45, 0.08, 0.02), (0.10, 0.50, 0.30, 0.10), (0.05, 0.45, 0.35, 0.15))
FIRST_REPLY_MEDIAN_H_BY_PRIORITY = (8.0, 4.0, 1.5, 0.5)
SOLVE_MEDIAN_H_BY_TYPE = (4.0, 36.0, 60.0)
AUTO_CLOSE_AFTER = 4 * DAY  # helpdesks close a solved ticket after a few quiet days
SUBJECTS_BY_TYPE = (
    (
        "How to use the loyalty card",
        "How to change my delivery address",
        "Question about payment methods",
        "How to use a promo code",
    ),
    ("Payment issue", "Damaged item", "Wrong item delivered", "Delivery late"),
    ("Delivery late", "Refund request", "Damaged item", "Rude courier", "Charged twice"),
)

SURVEYS_PER_BUYER = 0.5
SURVEY_CHANNELS = ("email", "sms", "app")
SURVEY_CHANNEL_P = (0.5, 0.2, 0.3)
SCORE_MEAN_STAYER = 9.0
SCORE_MEAN_LEAVER = 7.0
SCORE_COMPLAINT_PENALTY = 1.0
COMMENTS_DETRACTOR = (
    "Delivery was late again.",
    "The item arrived damaged.",
    "Support took days to answer.",
    "Too expensive for the quality.",
    "My refund is still not processed.",
    "Found a better offer elsewhere.",
    'The "express" delivery took a week.',
)
COMMENTS_PASSIVE = (
    "Good overall, delivery could be faster.",
    "Fine, but the choice is limited.",
    "OK service.",
    "Prices went up a bit.",
)
COMMENTS_PROMOTER = (
    "Great service, will order again.",
    "Fast delivery and friendly support.",
    "Everything arrived on time.",
    "My manager always helps, thank you!",
    "Good prices and a nice app.",
)

# Invented people: common given names and surnames combined at random, reserved
# example domains (RFC 2606) and phone numbers from fictional ranges.
FIRST_NAMES = (
    "Anna", "Ben", "Clara", "David", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas",
    "Katrin", "Leon", "Maria", "Nils", "Olga", "Paul", "Rosa", "Simon", "Tina", "Umar",
    "Vera", "Walter", "Yara", "Zoe", "Adam", "Bianca", "Carlos", "Dana", "Emil", "Fatima",
    "Georg", "Hanna", "Ivan", "Julia", "Karl", "Lina", "Marco", "Nora", "Oskar", "Petra",
)  # fmt: skip
LAST_NAMES = (
    "Adler", "Becker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen",
    "Ivanova", "Jensen", "Keller", "Lehmann", "Moreau", "Novak", "Olsen", "Peters",
    "Quinn", "Rossi", "Schmidt", "Torres", "Ulrich", "Vogel", "Weber", "Young",
    "Zimmer", "Bauer", "Conti", "Dietrich", "Engel", "Franke",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
# Ranges set aside for fiction: +44 7700 900000-900999, +1 NXX-555-0100..0199.
PHONE_PREFIXES = ("+44 7700 900", "+1 202-555-0")
EMAIL_NULL_SHARE = 0.02
PHONE_NULL_SHARE = 0.12
DO_NOT_CALL_SHARE = 0.05
MARKETING_OPT_OUT_SHARE = 0.10

CHUNK_ROWS = 250_000  # rows rendered per step when writing files


def generate(
    landing_dir: Path,
    *,
    end: date,
    seed: int = 7,
    customers: int = 3000,
    years: float = 2.0,
    daily_from: date | None = None,
    bad_rows: bool = True,
    managers: int = 8,
    ticket_rate: float = 1.0,
) -> dict[str, int]:
    """Write sample customers, orders, tickets and surveys under ``landing_dir``.

    Data covers ``[end - years, end)``; ``end`` is exclusive (usually the Monday
    that starts an ISO week). Each entity goes to ``<landing_dir>/<entity>/``:
    rows whose availability day (the date of ``updated_at``; of ``submitted_at``
    for surveys) is before ``daily_from`` go into ``<entity>_history_<day before
    daily_from>.csv``, later rows into one ``<entity>_<YYYY-MM-DD>.csv`` per day
    that has rows. Without ``daily_from`` everything is history, named after the
    day before ``end``. Existing files of the same names are overwritten.

    ``bad_rows`` appends a fixed set of invalid but well-formed rows (see
    :func:`_bad_order_rows`) to the latest orders and surveys files. ``ticket_rate``
    multiplies how many support tickets a customer opens (about 0.3 each at 1.0; the
    benchmark raises it to reach a helpdesk-sized ticket volume).

    The same arguments give byte-identical files. Returns rows written per entity.
    """
    if isinstance(end, datetime) or (daily_from is not None and isinstance(daily_from, datetime)):
        raise TypeError("end and daily_from are dates, not datetimes")
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if ticket_rate <= 0:
        raise ValueError("ticket_rate must be positive")
    if not 1 <= managers <= 99:
        raise ValueError("managers must be between 1 and 99")
    period_days = round(years * 365.25)
    if period_days < 1:
        raise ValueError("years must cover at least one day")

    end_s = _epoch_seconds(end)
    start_s = end_s - period_days * DAY
    rng = np.random.default_rng(seed)

    people = _make_customers(rng, customers, start_s, end_s, managers)
    orders = _make_orders(rng, people, end_s)
    tickets = _make_tickets(rng, people, orders, end_s, managers, ticket_rate)
    surveys = _make_surveys(rng, people, orders, tickets, end_s)
    _settle_customer_updates(rng, people, orders, tickets, surveys, end_s)

    layout = _Layout(
        landing_dir=landing_dir,
        daily_from_day=None if daily_from is None else _epoch_seconds(daily_from) // DAY,
        history_day=(end if daily_from is None else daily_from) - timedelta(days=1),
    )
    written: dict[str, int] = {}
    for table in (
        _customers_table(people),
        _orders_table(orders, people),
        _tickets_table(tickets, people),
        _surveys_table(surveys, people),
    ):
        rows, latest = _write_table(table, layout)
        if bad_rows and table.entity in (ORDERS, SURVEYS):
            rows += _append_bad_rows(table, latest)
        written[table.entity.name] = rows
    return written


# --- the model --------------------------------------------------------------------


@dataclass
class _People:
    """One entry per customer, index i is customer ``C{i+1}`` (ids follow sign-up)."""

    created: I64
    updated: I64  # settled last, once all activity is known
    manager: I64  # 1-based
    do_not_call: Mask
    opt_out: Mask
    first_name: I64
    last_name: I64
    email_number: I64  # 0: no number in the address
    email_domain: I64
    email_null: Mask
    phone_prefix: I64
    phone_number: I64
    phone_null: Mask
    # behaviour, used to generate activity; never written
    first_order: I64  # second of the first order, or -1
    stop: I64  # no orders at or after this second (<= end)
    leaves: Mask  # has ordered and stopped before the end
    mood: F64  # personal offset of survey scores


@dataclass
class _Orders:
    """Sorted by ``ordered_at``; index i is order ``O{i+1}``."""

    customer: I64
    ordered_at: I64
    status: I64  # index into ORDER_STATUSES
    cents: I64
    updated_at: I64


@dataclass
class _Tickets:
    """Sorted by ``created_at``; index i is ticket ``T{i+1}``. -1 means null."""

    customer: I64
    created_at: I64
    first_reply_at: I64
    solved_at: I64
    status: I64  # index into TICKET_STATUSES
    priority: I64
    type: I64
    assignee: I64
    subject: I64  # index into the subjects of its type
    updated_at: I64


@dataclass
class _Surveys:
    """Sorted by ``submitted_at``; index i is response ``S{i+1}``."""

    customer: I64
    submitted_at: I64
    score: I64
    comment: I64  # index into the comments of the score's band, -1 for none
    channel: I64


def _make_customers(rng: np.random.Generator, n: int, start_s: int, end_s: int, managers: int) -> _People:
    # Exponential growth of the daily sign-up rate, sampled by inverting its CDF.
    k = np.log(SIGNUP_GROWTH)
    u = rng.random(n)
    signup = start_s + (end_s - start_s) * np.log1p(u * (SIGNUP_GROWTH - 1.0)) / k
    created = np.sort(_at_daytime(rng, signup.astype(np.int64)))

    # What kind of buyer, and when the first order comes: most buy right after
    # signing up, some come back days later.
    kind = rng.choice(
        3, size=n, p=(NEVER_BUYER_SHARE, ONE_TIME_SHARE, 1 - NEVER_BUYER_SHARE - ONE_TIME_SHARE)
    )
    later = rng.random(n) < 0.25
    delay = np.where(later, rng.exponential(5 * DAY, n), rng.exponential(15 * MINUTE, n))
    first_order = created + MINUTE + delay.astype(np.int64)
    first_order = np.where((kind == 0) | (first_order >= end_s), -1, first_order)

    lifetime = rng.exponential(MEAN_LIFETIME_DAYS * DAY, n).astype(np.int64)
    stop = np.where(kind == 2, np.minimum(first_order + lifetime, end_s), first_order + 1)
    stop = np.where(first_order < 0, created, stop)

    phone_prefix = rng.integers(0, len(PHONE_PREFIXES), n)
    return _People(
        created=created,
        updated=created.copy(),
        manager=rng.integers(1, managers + 1, n),
        do_not_call=rng.random(n) < DO_NOT_CALL_SHARE,
        opt_out=rng.random(n) < MARKETING_OPT_OUT_SHARE,
        first_name=rng.integers(0, len(FIRST_NAMES), n),
        last_name=rng.integers(0, len(LAST_NAMES), n),
        email_number=np.where(rng.random(n) < 0.6, rng.integers(1, 100, n), 0),
        email_domain=rng.integers(0, len(EMAIL_DOMAINS), n),
        email_null=rng.random(n) < EMAIL_NULL_SHARE,
        phone_prefix=phone_prefix,
        # three digits after the prefix; the US range only has 100-199
        phone_number=np.where(phone_prefix == 0, rng.integers(0, 1000, n), rng.integers(100, 200, n)),
        phone_null=rng.random(n) < PHONE_NULL_SHARE,
        first_order=first_order,
        stop=stop,
        leaves=np.zeros(n, dtype=np.bool_),  # known once orders exist
        mood=rng.normal(0.0, 0.8, n),
    )


def _make_orders(rng: np.random.Generator, people: _People, end_s: int) -> _Orders:
    n = people.created.size
    buyers = np.flatnonzero(people.first_order >= 0)
    repeat = buyers[people.stop[buyers] > people.first_order[buyers] + 1]

    gap = np.exp(rng.normal(np.log(MEDIAN_GAP_DAYS * DAY), GAP_SIGMA, repeat.size))
    gap = np.clip(gap, 2 * DAY, 400 * DAY)
    growth = np.where(rng.random(repeat.size) < GROWING_GAP_SHARE, GAP_GROWTH, 1.0)

    # Drifters: still-ordering customers who went quiet one to three of their own
    # gaps ago, so the last weeks show churn risk and potential churn.
    first = people.first_order[repeat]
    can_drift = (people.stop[repeat] >= end_s) & (first <= end_s - 4 * gap)
    drifts = can_drift & (rng.random(repeat.size) < DRIFTER_SHARE)
    quiet_for = (rng.uniform(1.0, 3.0, repeat.size) * gap).astype(np.int64)
    people.stop[repeat] = np.where(drifts, end_s - quiet_for, people.stop[repeat])

    owner_local, times = _repeat_order_times(rng, first, people.stop[repeat], gap, growth)
    later_owner = repeat[owner_local]
    later_at = _at_daytime(rng, times)
    # Moving an order to a daytime hour must not put it before the first order.
    later_at = np.where(later_at > people.first_order[later_owner], later_at, times)

    customer = np.concatenate([buyers, later_owner])
    ordered_at = np.concatenate([people.first_order[buyers], later_at])
    order = np.lexsort((customer, ordered_at))
    customer, ordered_at = customer[order], ordered_at[order]
    m = customer.size

    check = np.exp(rng.normal(np.log(MEDIAN_CHECK_EUR), CHECK_SIGMA, n))
    euros = check[customer] * np.exp(rng.normal(0.0, ORDER_AMOUNT_SIGMA, m))
    cents = np.maximum(np.round(euros * 100), 100).astype(np.int64)

    status = rng.choice(len(ORDER_STATUSES), size=m, p=ORDER_STATUS_P)
    settled = ordered_at + MINUTE + rng.exponential(30 * MINUTE, m).astype(np.int64)
    cancelled = ordered_at + MINUTE + rng.exponential(6 * HOUR, m).astype(np.int64)
    refunded = ordered_at + rng.integers(2 * DAY, 14 * DAY, m)
    updated_at = np.choose(status, (settled, cancelled, refunded))
    # A refund that would happen after the end has not happened yet.
    pending_refund = (status == 2) & (updated_at >= end_s)
    status = np.where(pending_refund, 0, status)
    updated_at = np.where(pending_refund, settled, updated_at)
    updated_at = np.minimum(updated_at, end_s - 1)

    last_order = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_order, customer, ordered_at)
    people.leaves = (last_order >= 0) & (people.stop < end_s)
    return _Orders(customer, ordered_at, status, cents, updated_at)


def _repeat_order_times(
    rng: np.random.Generator, first: I64, stop: I64, gap: F64, growth: F64
) -> tuple[I64, I64]:
    """Order times after the first one, for each repeat customer, before ``stop``.

    Gaps are gamma distributed around the customer's mean gap (times
    ``growth ** k`` for the k-th gap). Every customer gets a batch of gaps sized
    from the expected count; the few whose batch ran out before ``stop`` get
    another batch, so the loop runs a handful of times regardless of size.

    One cumulative sum runs across all customers' gaps, so it is taken in whole
    seconds (int64, exact): in floating point, the huge gaps of a "growing gaps"
    customer would wipe out the precision of every customer after them.
    """
    owners: list[I64] = []
    times: list[I64] = []
    active = np.arange(first.size)
    last = first.copy()
    done = np.zeros(first.size, dtype=np.int64)
    while active.size:
        expected = (stop[active] - last[active]) / gap[active]
        batch = np.clip(np.ceil(expected * 1.25) + 2, 1, 512).astype(np.int64)
        owner = np.repeat(np.arange(active.size), batch)
        starts = np.cumsum(batch) - batch
        k = np.arange(owner.size) - starts[owner] + done[active][owner]
        gaps = rng.gamma(GAP_SHAPE, 1.0 / GAP_SHAPE, owner.size) * gap[active][owner]
        gaps = np.clip(gaps * growth[active][owner] ** k, MIN_GAP, MAX_GAP).astype(np.int64)
        cumulative = np.cumsum(gaps)
        before = cumulative[starts] - gaps[starts]
        at = cumulative - before[owner] + last[active][owner]
        keep = at < stop[active][owner]
        owners.append(active[owner[keep]])
        times.append(at[keep])
        tail = starts + batch - 1
        more = keep[tail]
        last[active[more]] = at[tail[more]]
        done[active] += batch
        active = active[more]
    if not owners:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(owners), np.concatenate(times)


def _make_tickets(
    rng: np.random.Generator, people: _People, orders: _Orders, end_s: int, managers: int, rate: float = 1.0
) -> _Tickets:
    per_customer = np.bincount(orders.customer, minlength=people.created.size)
    lam = np.where(people.leaves, TICKETS_PER_LEAVER, TICKETS_PER_STAYER) * rate
    count = np.where(per_customer > 0, rng.poisson(lam), 0)
    customer = np.repeat(np.arange(count.size), count)
    t = customer.size
    leaves = people.leaves[customer]

    # A ticket follows one of the customer's orders; leavers' tickets cluster
    # toward their last orders (what went wrong before they left).
    u = rng.random(t)
    u = np.where(leaves, u**0.3, u)
    anchor = _nth_order(orders, customer, u)
    created = orders.ordered_at[anchor] + 10 * MINUTE + rng.exponential(3 * DAY, t).astype(np.int64)

    kind = np.where(
        leaves, rng.choice(3, size=t, p=TICKET_TYPE_P_LEAVER), rng.choice(3, size=t, p=TICKET_TYPE_P_STAYER)
    )
    priority = _choice_by_row(rng, np.asarray(PRIORITY_P_BY_TYPE)[kind])
    reply_median = np.asarray(FIRST_REPLY_MEDIAN_H_BY_PRIORITY)[priority] * HOUR
    solve_median = np.asarray(SOLVE_MEDIAN_H_BY_TYPE)[kind] * HOUR
    first_reply = created + MINUTE + (reply_median * rng.lognormal(0.0, 0.9, t)).astype(np.int64)
    solved = first_reply + MINUTE + (solve_median * rng.lognormal(0.0, 1.0, t)).astype(np.int64)

    keep = created < end_s
    replied = first_reply < end_s
    is_solved = solved < end_s
    code = TICKET_STATUSES.index
    status = np.select(
        [~replied, ~is_solved, solved + AUTO_CLOSE_AFTER < end_s],
        [code("new"), np.where(rng.random(t) < 0.6, code("open"), code("pending")), code("closed")],
        default=code("solved"),
    )
    first_reply = np.where(replied, first_reply, -1)
    solved = np.where(is_solved, solved, -1)
    updated = np.maximum(created, np.maximum(first_reply, solved))
    own_manager = rng.random(t) < 0.8
    assignee = np.where(own_manager, people.manager[customer], rng.integers(1, managers + 1, t))
    assignee = np.where(replied, assignee, -1)  # new tickets are not assigned yet
    subject_counts = np.asarray([len(s) for s in SUBJECTS_BY_TYPE])
    subject = (rng.random(t) * subject_counts[kind]).astype(np.int64)

    rows = _kept_in_time_order(keep, created)
    return _Tickets(
        customer=customer[rows],
        created_at=created[rows],
        first_reply_at=first_reply[rows],
        solved_at=solved[rows],
        status=status[rows],
        priority=priority[rows],
        type=kind[rows],
        assignee=assignee[rows],
        subject=subject[rows],
        updated_at=updated[rows],
    )


def _make_surveys(
    rng: np.random.Generator, people: _People, orders: _Orders, tickets: _Tickets, end_s: int
) -> _Surveys:
    per_customer = np.bincount(orders.customer, minlength=people.created.size)
    count = np.where(per_customer > 0, rng.poisson(SURVEYS_PER_BUYER, per_customer.size), 0)
    customer = np.repeat(np.arange(count.size), count)
    s = customer.size
    anchor = _nth_order(orders, customer, rng.random(s))
    submitted = orders.ordered_at[anchor] + HOUR + rng.exponential(2 * DAY, s).astype(np.int64)

    complained = np.zeros(people.created.size, dtype=np.bool_)
    complained[tickets.customer[tickets.type == TICKET_TYPES.index("complaint")]] = True
    mean = np.where(people.leaves[customer], SCORE_MEAN_LEAVER, SCORE_MEAN_STAYER)
    mean = mean - SCORE_COMPLAINT_PENALTY * complained[customer] + people.mood[customer]
    score = np.clip(np.round(rng.normal(mean, 1.4)), 0, 10).astype(np.int64)

    band_sizes = np.asarray([len(COMMENTS_DETRACTOR), len(COMMENTS_PASSIVE), len(COMMENTS_PROMOTER)])
    band = _score_band(score)
    silent = rng.random(s) < np.where(band == 2, 0.55, 0.35)
    comment = np.where(silent, -1, (rng.random(s) * band_sizes[band]).astype(np.int64))
    channel = rng.choice(len(SURVEY_CHANNELS), size=s, p=SURVEY_CHANNEL_P)

    rows = _kept_in_time_order(submitted < end_s, submitted)
    return _Surveys(
        customer=customer[rows],
        submitted_at=submitted[rows],
        score=score[rows],
        comment=comment[rows],
        channel=channel[rows],
    )


def _settle_customer_updates(
    rng: np.random.Generator,
    people: _People,
    orders: _Orders,
    tickets: _Tickets,
    surveys: _Surveys,
    end_s: int,
) -> None:
    """Give a few customers a later ``updated_at`` that still precedes their activity.

    The loader publishes a customer row as of its ``updated_at``; an order that
    arrives before its customer would look orphaned, so any update falls between
    sign-up and the first order, ticket or survey (or the end, for non-buyers).
    """
    first_activity = np.full(people.created.size, end_s - 1, dtype=np.int64)
    for who, when in (
        (orders.customer, orders.ordered_at),
        (tickets.customer, tickets.created_at),
        (surveys.customer, surveys.submitted_at),
    ):
        np.minimum.at(first_activity, who, when)
    room = first_activity - people.created
    n = people.created.size
    later = (room > 2 * HOUR) & (rng.random(n) < UPDATED_LATER_SHARE)
    shift = (room * rng.uniform(0.1, 0.9, n)).astype(np.int64)
    people.updated = np.where(later, people.created + shift, people.created)


def _kept_in_time_order(keep: Mask, at: I64) -> I64:
    """Indexes of the kept rows, ordered by ``at`` (ties keep generation order)."""
    kept = np.flatnonzero(keep)
    ordered: I64 = kept[np.argsort(at[kept], kind="stable")]
    return ordered


def _nth_order(orders: _Orders, customer: I64, u: F64) -> I64:
    """Index of the order at fraction ``u`` (in [0, 1)) through each customer's orders."""
    per_customer = np.bincount(orders.customer, minlength=int(customer.max(initial=0)) + 1)
    # Orders are sorted by time, so a stable sort by customer keeps each
    # customer's orders in time order.
    by_customer = np.argsort(orders.customer, kind="stable")
    offsets = np.cumsum(per_customer) - per_customer
    count = per_customer[customer]
    # min(): u**0.3 can round up to exactly 1.0
    nth = offsets[customer] + np.minimum((u * count).astype(np.int64), count - 1)
    picked: I64 = by_customer[nth]
    return picked


def _choice_by_row(rng: np.random.Generator, p: F64) -> I64:
    """One category per row, row i drawn with probabilities ``p[i]``."""
    cumulative = np.cumsum(p, axis=1)
    u = rng.random(p.shape[0]) * cumulative[:, -1]
    passed: npt.NDArray[np.bool_] = u[:, None] >= cumulative
    chosen: I64 = passed.sum(axis=1, dtype=np.int64)
    return chosen


def _score_band(score: I64) -> I64:
    """0 detractor (0-6), 1 passive (7-8), 2 promoter (9-10)."""
    band: I64 = np.searchsorted(np.asarray([7, 9]), score, side="right").astype(np.int64)
    return band


def _at_daytime(rng: np.random.Generator, seconds: I64) -> I64:
    """Keep the day, redraw the time of day: activity peaks in the afternoon."""
    time_of_day = rng.normal(14.5 * HOUR, 3.5 * HOUR, seconds.size).astype(np.int64) % DAY
    return seconds - seconds % DAY + time_of_day


def _epoch_seconds(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


# --- rendering --------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    entity: Entity
    available: I64  # availability second of each row, ascending
    render: Callable[[slice], list[Any]]  # the CSV fields (pyarrow strings) of rows


def _customers_table(people: _People) -> _Table:
    rows = np.lexsort((people.created, people.updated))  # ids follow created
    width = max(6, len(str(people.created.size)))

    def render(part: slice) -> list[Any]:
        i = rows[part]
        first = _pick(FIRST_NAMES, people.first_name[i])
        last = _pick(LAST_NAMES, people.last_name[i])
        number = pc.cast(pa.array(people.email_number[i]), pa.string())
        number = pc.if_else(pa.array(people.email_number[i] > 0), number, "")
        local = pc.utf8_lower(pc.binary_join_element_wise(first, ".", last, number, ""))
        email = pc.binary_join_element_wise(local, "@", _pick(EMAIL_DOMAINS, people.email_domain[i]), "")
        phone = pc.binary_join_element_wise(
            _pick(PHONE_PREFIXES, people.phone_prefix[i]),
            pc.utf8_lpad(pc.cast(pa.array(people.phone_number[i]), pa.string()), width=3, padding="0"),
            "",
        )
        return [
            _ids("C", i + 1, width),
            _or_empty(email, people.email_null[i]),
            _or_empty(phone, people.phone_null[i]),
            pc.binary_join_element_wise(first, last, " "),
            _timestamps(people.created[i]),
            _ids("M", people.manager[i], 2),
            _booleans(people.do_not_call[i]),
            _booleans(people.opt_out[i]),
            _timestamps(people.updated[i]),
        ]

    return _Table(CUSTOMERS, people.updated[rows], render)


def _orders_table(orders: _Orders, people: _People) -> _Table:
    ids = np.arange(1, orders.customer.size + 1)
    rows = np.lexsort((ids, orders.updated_at))
    width = max(7, len(str(orders.customer.size)))
    customer_width = max(6, len(str(people.created.size)))

    def render(part: slice) -> list[Any]:
        i = rows[part]
        return [
            _ids("O", ids[i], width),
            _ids("C", orders.customer[i] + 1, customer_width),
            _timestamps(orders.ordered_at[i]),
            _pick(ORDER_STATUSES, orders.status[i]),
            _money(orders.cents[i]),
            _pick(("EUR",), np.zeros(i.size, dtype=np.int64)),
            _timestamps(orders.updated_at[i]),
        ]

    return _Table(ORDERS, orders.updated_at[rows], render)


def _tickets_table(tickets: _Tickets, people: _People) -> _Table:
    ids = np.arange(1, tickets.customer.size + 1)
    rows = np.lexsort((ids, tickets.updated_at))
    width = max(6, len(str(tickets.customer.size)))
    customer_width = max(6, len(str(people.created.size)))
    # Subjects as one flat list: type t's subjects start at offset[t].
    flat_subjects = tuple(s for subjects in SUBJECTS_BY_TYPE for s in subjects)
    offset = np.cumsum([0, *(len(s) for s in SUBJECTS_BY_TYPE)])[:-1]

    def render(part: slice) -> list[Any]:
        i = rows[part]
        assignee = tickets.assignee[i]
        return [
            _ids("T", ids[i], width),
            _ids("C", tickets.customer[i] + 1, customer_width),
            _timestamps(tickets.created_at[i]),
            _timestamps(tickets.first_reply_at[i]),
            _timestamps(tickets.solved_at[i]),
            _pick(TICKET_STATUSES, tickets.status[i]),
            _pick(PRIORITIES, tickets.priority[i]),
            _pick(TICKET_TYPES, tickets.type[i]),
            _or_empty(_ids("M", np.maximum(assignee, 0), 2), assignee < 0),
            _pick(flat_subjects, offset[tickets.type[i]] + tickets.subject[i]),
            _timestamps(tickets.updated_at[i]),
        ]

    return _Table(TICKETS, tickets.updated_at[rows], render)


def _surveys_table(surveys: _Surveys, people: _People) -> _Table:
    width = max(6, len(str(surveys.customer.size)))
    customer_width = max(6, len(str(people.created.size)))
    bands = (COMMENTS_DETRACTOR, COMMENTS_PASSIVE, COMMENTS_PROMOTER)
    flat_comments = tuple(c for band in bands for c in band)
    offset = np.cumsum([0, *(len(b) for b in bands)])[:-1]

    def render(part: slice) -> list[Any]:
        i = np.arange(surveys.customer.size)[part]  # already in submitted_at order
        comment = surveys.comment[i]
        flat = offset[_score_band(surveys.score[i])] + np.maximum(comment, 0)
        return [
            _ids("S", i + 1, width),
            _ids("C", surveys.customer[i] + 1, customer_width),
            _timestamps(surveys.submitted_at[i]),
            pc.cast(pa.array(surveys.score[i]), pa.string()),
            _or_empty(_pick(flat_comments, flat), comment < 0),
            _pick(SURVEY_CHANNELS, surveys.channel[i]),
            _ids("M", people.manager[surveys.customer[i]], 2),
        ]

    return _Table(SURVEYS, surveys.submitted_at, render)


def _ids(prefix: str, numbers: I64, width: int) -> Any:
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _timestamps(seconds: I64) -> Any:
    """ISO 8601 with an explicit UTC offset; -1 renders as empty (null).

    Assembled from a table of dates and a table of times of day: pyarrow's
    ``strftime`` is several times slower and dominated the run time.
    """
    null = seconds < 0
    days = np.where(null, 0, seconds // DAY)
    first = int(days[~null].min(initial=0))
    last = int(days.max(initial=0))
    dates = pa.array(np.datetime_as_string(np.arange(first, last + 1).astype("datetime64[D]")))
    date_part = dates.take(pa.array(days - first, mask=null))
    text = pc.binary_join_element_wise(date_part, _times_of_day().take(pa.array(seconds % DAY)), "")
    return pc.fill_null(text, "")


@cache
def _times_of_day() -> Any:
    """``T00:00:00+00:00`` .. ``T23:59:59+00:00``, indexed by second of the day."""
    clock = pa.array(np.datetime_as_string(np.arange(DAY).astype("datetime64[s]")))
    return pc.binary_join_element_wise(pc.utf8_slice_codeunits(clock, 10), "+00:00", "")


def _money(cents: I64) -> Any:
    whole = pc.cast(pa.array(cents // 100), pa.string())
    fraction = pc.utf8_lpad(pc.cast(pa.array(cents % 100), pa.string()), width=2, padding="0")
    return pc.binary_join_element_wise(whole, fraction, ".")


def _booleans(values: Mask) -> Any:
    return pc.if_else(pa.array(values), "true", "false")


def _pick(values: Sequence[str], index: I64) -> Any:
    return pa.array(values, type=pa.string()).take(pa.array(index))


def _or_empty(text: Any, empty: Mask) -> Any:
    return pc.if_else(pa.array(empty), "", text)


def _csv_field(text: Any) -> Any:
    """Quote a field only when it needs it (RFC 4180), doubling inner quotes."""
    needs = pc.match_substring_regex(text, '[",\r\n]')
    if not pc.any(needs).as_py():
        return text
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, text)


def _csv_lines(fields: list[Any]) -> tuple[memoryview, npt.NDArray[np.int64]]:
    """The rows as one UTF-8 buffer plus the byte offset where each row starts."""
    lines = pc.binary_join_element_wise(*(_csv_field(f) for f in fields), ",")
    lines = pc.binary_join_element_wise(lines, "\n", "").cast(pa.large_string())
    _, offsets_buffer, data = lines.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    return memoryview(data), offsets


# --- files ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    landing_dir: Path
    daily_from_day: int | None  # days since the epoch
    history_day: date

    def path(self, entity: Entity, day: int) -> Path:
        """The file of rows available on ``day`` (days since the epoch)."""
        if self.daily_from_day is None or day < self.daily_from_day:
            name = f"{entity.name}_history_{self.history_day.isoformat()}.csv"
        else:
            name = f"{entity.name}_{(date(1970, 1, 1) + timedelta(days=int(day))).isoformat()}.csv"
        return self.landing_dir / entity.name / name

    def file_key(self, days: I64) -> I64:
        """Days mapped to one key per file: every history day becomes -1."""
        if self.daily_from_day is None:
            return np.full(days.size, -1, dtype=np.int64)
        return np.where(days < self.daily_from_day, -1, days)


def _write_table(table: _Table, layout: _Layout) -> tuple[int, Path | None]:
    """Write all rows of ``table``; returns the row count and the latest file."""
    total = table.available.size
    header = (",".join(table.entity.column_names) + "\n").encode()
    (layout.landing_dir / table.entity.name).mkdir(parents=True, exist_ok=True)
    current: Path | None = None
    handle: BufferedWriter | None = None
    try:
        for a in range(0, total, CHUNK_ROWS):
            part = slice(a, min(a + CHUNK_ROWS, total))
            data, offsets = _csv_lines(table.render(part))
            days = table.available[part] // DAY
            keys = layout.file_key(days)
            # Rows are sorted by availability, so each file is one contiguous run.
            cuts = np.flatnonzero(np.diff(keys)) + 1
            for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, keys.size], strict=True):
                path = layout.path(table.entity, int(days[lo]))
                if path != current:
                    if handle is not None:
                        handle.close()
                    handle = path.open("wb")
                    handle.write(header)
                    current = path
                assert handle is not None
                handle.write(data[offsets[lo] : offsets[hi]])
    finally:
        if handle is not None:
            handle.close()
    return total, current


def _append_bad_rows(table: _Table, latest: Path | None) -> int:
    """Append the deterministic bad rows to the latest file of ``table``.

    Each bad row is the last good row of the file with one thing broken, so the
    rest of it is plausible and the loader has exactly one reason to reject it.
    """
    if table.available.size == 0 or latest is None:
        return 0  # nothing to imitate: no real rows were written
    template = [f[0].as_py() for f in table.render(slice(table.available.size - 1, None))]
    if table.entity is ORDERS:
        rows = _bad_order_rows(template, table.available.size)
    else:
        rows = _bad_survey_rows(template, table.available.size)
    with latest.open("ab") as handle:
        data, _ = _csv_lines([pa.array(column) for column in zip(*rows, strict=True)])
        handle.write(data)
    return len(rows)


def _bad_order_rows(template: list[str], count: int) -> list[list[str]]:
    """Five invalid orders: each still a well-formed CSV row of the contract."""
    names = ORDERS.column_names
    width = len(template[0]) - 1

    def variant(order_number: int | None, **changes: str) -> list[str]:
        row = dict(zip(names, template, strict=True))
        row["order_id"] = "" if order_number is None else f"O{order_number:0{width}d}"
        row.update(changes)
        return [row[n] for n in names]

    same_id = int(template[0][1:])
    different_amount = f"{float(template[names.index('amount')]) + 10:.2f}"
    return [
        variant(None),  # missing key
        variant(count + 1, amount="abc"),  # not a number
        variant(count + 2, status="lost"),  # not an allowed status
        variant(count + 3, ordered_at="not-a-date"),  # unparseable timestamp
        # the same key and version as a real row, with different content
        variant(same_id, amount=different_amount),
    ]


def _bad_survey_rows(template: list[str], count: int) -> list[list[str]]:
    row = dict(zip(SURVEYS.column_names, template, strict=True))
    row["response_id"] = f"S{count + 1:0{len(template[0]) - 1}d}"
    row["score"] = "11"  # out of the 0-10 range
    return [[row[n] for n in SURVEYS.column_names]]
