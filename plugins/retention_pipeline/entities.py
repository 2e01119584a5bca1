"""The landing-folder contract: which entities exist, their columns, keys and hard rules.

This module is the single definition of the raw layer. The loader builds its COPY
targets, its quarantine rules and the ``raw.*`` DDL from it; the sample-data
generator writes exactly these columns; the README documents them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str  # the type in raw.<entity>
    required: bool = True  # a file without this column fails the whole batch
    nullable: bool = True  # a row with an empty value here is quarantined when False
    allowed: tuple[str, ...] = ()  # allowed values (text columns)
    min_value: float | None = None
    max_value: float | None = None


@dataclass(frozen=True)
class Entity:
    name: str
    key: str
    columns: tuple[Column, ...]
    # the column that orders versions of one key (latest wins); None means the
    # first version of a key is final (survey answers are never edited)
    version_column: str | None
    # the event-time column checked against the future-timestamp tolerance
    event_column: str
    pii_columns: tuple[str, ...] = field(default=())
    # True for a source a deployment may not have (no files, no configured system):
    # the ingest accepts it empty and the weekly source check does not stop on it
    may_be_empty: bool = False

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


TS = "timestamptz"

CUSTOMERS = Entity(
    name="customers",
    key="customer_id",
    columns=(
        Column("customer_id", "text", nullable=False),
        Column("email", "text"),
        Column("phone", "text"),
        Column("full_name", "text"),
        Column("created_at", TS, nullable=False),
        Column("manager_id", "text"),
        Column("do_not_call", "boolean", nullable=False),
        Column("marketing_opt_out", "boolean", nullable=False),
        Column("updated_at", TS, nullable=False),
    ),
    version_column="updated_at",
    event_column="created_at",
    pii_columns=("email", "phone", "full_name"),
)

ORDERS = Entity(
    name="orders",
    key="order_id",
    columns=(
        Column("order_id", "text", nullable=False),
        Column("customer_id", "text", nullable=False),
        Column("ordered_at", TS, nullable=False),
        Column("status", "text", nullable=False, allowed=("completed", "cancelled", "refunded")),
        Column("amount", "numeric(14,2)", nullable=False, min_value=0),
        Column("currency", "text"),
        Column("updated_at", TS, nullable=False),
    ),
    version_column="updated_at",
    event_column="ordered_at",
)

TICKETS = Entity(
    name="tickets",
    key="ticket_id",
    columns=(
        Column("ticket_id", "text", nullable=False),
        Column("customer_id", "text", nullable=False),
        Column("created_at", TS, nullable=False),
        Column("first_reply_at", TS),
        Column("solved_at", TS),
        Column("status", "text", nullable=False, allowed=("new", "open", "pending", "solved", "closed")),
        Column("priority", "text", nullable=False, allowed=("low", "normal", "high", "urgent")),
        Column("type", "text", nullable=False, allowed=("question", "incident", "complaint")),
        Column("assignee_id", "text"),
        Column("subject", "text"),
        Column("updated_at", TS, nullable=False),
    ),
    version_column="updated_at",
    event_column="created_at",
)

SURVEYS = Entity(
    name="surveys",
    key="response_id",
    columns=(
        Column("response_id", "text", nullable=False),
        Column("customer_id", "text", nullable=False),
        Column("submitted_at", TS, nullable=False),
        Column("score", "integer", nullable=False, min_value=0, max_value=10),
        Column("comment", "text"),
        Column("channel", "text"),
        Column("manager_id", "text"),
    ),
    version_column=None,
    event_column="submitted_at",
)

# Outreach results from the call center / CRM: one row per call attempt. The campaign is
# the ISO week the customer was pushed in (e.g. 2026-W47), as the call list names it.
CALL_OUTCOMES = Entity(
    name="call_outcomes",
    key="attempt_id",
    columns=(
        Column("attempt_id", "text", nullable=False),
        Column("customer_id", "text", nullable=False),
        Column("campaign", "text", nullable=False),
        Column("called_at", TS, nullable=False),
        Column("reached", "boolean", nullable=False),
        Column("agreed_to_return", "boolean"),
        Column("reason", "text"),
        Column("agent_id", "text"),
        Column("updated_at", TS, nullable=False),
    ),
    version_column="updated_at",
    event_column="called_at",
    may_be_empty=True,
)

ENTITIES: dict[str, Entity] = {e.name: e for e in (CUSTOMERS, ORDERS, TICKETS, SURVEYS, CALL_OUTCOMES)}
