"""The outreach push end to end on a real PostgreSQL and real local HTTP servers.

Each API sink talks to a ThreadingHTTPServer on 127.0.0.1 that answers in the tool's
documented shapes (HubSpot CRM v3 batch endpoints with 207 multi-status, Bitrix24
inbound-webhook methods with ``error``/``error_description``, our webhook contract),
and misbehaves on purpose: 429 with Retry-After, 5xx, answers slower than the timeout,
per-record rejections, answers lost after the work was done.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from retention_pipeline.outreach import selection
from retention_pipeline.outreach.push import OutreachPushIncomplete, push_campaign, push_weekly_call_list

pytestmark = pytest.mark.integration

WEEK = "2026-W47"
PREVIOUS = "2026-W46"

# --- a tool on loopback ----------------------------------------------------------------


class FakeTool:
    """Routes POSTs to ``handle(path, body) -> (status, json, headers)``; records them.
    ``faults`` is a queue of answers served before the real handler (429, 5xx, "slow")."""

    def __init__(self, handle: Callable[[str, Any, dict[str, str]], tuple[int, Any, dict[str, str]]]) -> None:
        self.handle = handle
        self.requests: list[tuple[str, Any, dict[str, str], bytes]] = []
        self.faults: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        tool = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw or b"null")
                headers = {k: v for k, v in self.headers.items()}
                with tool.lock:
                    tool.requests.append((self.path, body, headers, raw))
                    fault = tool.faults.pop(0) if tool.faults else None
                if fault is not None:
                    kind, arg = fault
                    if kind == "slow":  # do the work, then answer too late: the answer is lost
                        tool.handle(self.path, body, headers)
                        time.sleep(arg)
                        return
                    if kind == "slow_only":
                        time.sleep(arg)
                        return
                    status, payload, extra = arg
                else:
                    with tool.lock:
                        status, payload, extra = tool.handle(self.path, body, headers)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        return [p for p, *_ in self.requests]


# --- HubSpot, as documented: /crm/v3/objects/contacts/batch/upsert, tasks/batch/create ---


class HubSpot:
    TOKEN = "pat-test-token"

    def __init__(self) -> None:
        self.contacts: dict[str, str] = {}  # email -> id
        self.tasks: dict[str, dict[str, Any]] = {}
        self.tool = FakeTool(self.handle)

    def handle(self, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if headers.get("Authorization") != f"Bearer {self.TOKEN}":
            return 401, {"status": "error", "category": "INVALID_AUTHENTICATION", "message": "bad token"}, {}
        if path == "/crm/v3/objects/contacts/batch/upsert":
            results, errors = [], []
            for item in body["inputs"]:
                assert item["idProperty"] == "email"
                email = item["id"]
                if "invalid" in email:
                    errors.append(
                        {
                            "status": "error",
                            "category": "VALIDATION_ERROR",
                            "message": f"Property values were not valid: email {email}",
                            "context": {"objectWriteTraceId": [item["objectWriteTraceId"]]},
                            "errors": [{"message": "INVALID_EMAIL", "code": "INVALID_EMAIL"}],
                        }
                    )
                    continue
                new = email not in self.contacts
                self.contacts.setdefault(email, str(1000 + len(self.contacts)))
                results.append(
                    {
                        "id": self.contacts[email],
                        "new": new,
                        "properties": {"email": email},
                        "objectWriteTraceId": item["objectWriteTraceId"],
                    }
                )
            answer: dict[str, Any] = {"status": "COMPLETE", "results": results}
            if errors:
                answer.update(errors=errors, numErrors=len(errors))
            return (207 if errors else 200), answer, {}
        if path == "/crm/v3/objects/tasks/batch/create":
            results = []
            for item in body["inputs"]:
                (assoc,) = item["associations"]
                assert assoc["types"] == [
                    {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}
                ]
                assert assoc["to"]["id"] in self.contacts.values()
                task_id = str(5000 + len(self.tasks))
                self.tasks[task_id] = {**item["properties"], "contact": assoc["to"]["id"]}
                results.append(
                    {"id": task_id, "objectWriteTraceId": item["objectWriteTraceId"], "properties": {}}
                )
            return 201, {"status": "COMPLETE", "results": results}, {}
        if path == "/crm/v3/objects/tasks/search":
            (flt,) = body["filterGroups"][0]["filters"]
            hits = [{"id": i} for i, t in self.tasks.items() if t["hs_task_subject"] == flt["value"]]
            return 200, {"total": len(hits), "results": hits}, {}
        return 404, {"message": "not found"}, {}


# --- Bitrix24, as documented: /rest/<user>/<secret>/<method>.json --------------------------


class Bitrix24:
    PREFIX = "/rest/1/webhooksecret/"

    def __init__(self) -> None:
        self.contacts: dict[int, dict[str, Any]] = {
            7: {"PHONE": [{"VALUE": "+7 900 000-0003"}], "NAME": "Existing"}
        }
        self.activities: dict[int, dict[str, Any]] = {}
        self.tool = FakeTool(self.handle)

    def handle(self, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if not path.startswith(self.PREFIX):
            return 401, {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"}, {}
        method = path[len(self.PREFIX) :].removesuffix(".json")
        if method == "crm.duplicate.findbycomm":
            key = body["type"]
            ids = [
                cid
                for cid, c in self.contacts.items()
                if any(v["VALUE"] in body["values"] for v in c.get(key, []))
            ]
            return 200, {"result": {"CONTACT": ids} if ids else []}, {}
        if method == "crm.contact.add":
            fields = body["fields"]
            phones = [p["VALUE"] for p in fields.get("PHONE", [])]
            if any("bad" in p for p in phones):
                return 400, {"error": "ERROR_CORE", "error_description": "Invalid phone number format"}, {}
            cid = 100 + len(self.contacts)
            self.contacts[cid] = fields
            return 200, {"result": cid}, {}
        if method == "crm.activity.list":
            flt = body["filter"]
            hits = [
                {"ID": str(aid)}
                for aid, a in self.activities.items()
                if str(a["OWNER_ID"]) == str(flt["OWNER_ID"]) and a["SUBJECT"] == flt["SUBJECT"]
            ]
            return 200, {"result": hits, "total": len(hits)}, {}
        if method == "crm.activity.add":
            fields = body["fields"]
            assert fields["OWNER_TYPE_ID"] == 3 and fields["TYPE_ID"] == 2
            aid = 900 + len(self.activities)
            self.activities[aid] = fields
            return 200, {"result": aid}, {}
        return 404, {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}, {}


# --- the generic webhook's receiver -------------------------------------------------------


class Receiver:
    SECRET = "whsec-test-123456"

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, Any]] = {}
        self.deliveries = 0
        self.tool = FakeTool(self.handle)

    def handle(self, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        raw = self.tool.requests[-1][3]
        expected = "sha256=" + hmac.new(self.SECRET.encode(), raw, hashlib.sha256).hexdigest()
        if headers.get("X-Retention-Signature") != expected:
            return 401, {"error": "bad signature"}, {}
        self.deliveries += 1
        rejected = []
        for row in body["rows"]:
            if not row["phone"]:
                rejected.append({"idempotency_key": row["idempotency_key"], "reason": "no phone to dial"})
            else:
                self.seen.setdefault(row["idempotency_key"], row)
        return 200, {"accepted": len(body["rows"]) - len(rejected), "rejected": rejected}, {}


# --- the warehouse side -----------------------------------------------------------------

MARTS_DDL = """
create schema if not exists marts;
create table marts.dim_customers (customer_id text primary key, do_not_call boolean not null);
create table marts.rpt_call_list (
    customer_id text, full_name text, phone text, email text, manager_id text,
    intervention_level text, intervention_priority integer, churn_stage text, value_tier text,
    rfm_segment text, rfm_cell text, recency_days integer, expected_gap_days numeric(10, 1),
    gap_ratio numeric(12, 4), open_complaints integer, last_survey_score integer,
    net_revenue numeric(18, 2), trailing_12m_revenue numeric(18, 2), call_reason text, call_rank integer
);
insert into marts.dim_customers select 'C' || lpad(g::text, 3, '0'), g = 2 from generate_series(1, 60) g;
insert into marts.rpt_call_list
select 'C' || lpad(g::text, 3, '0'), 'Name' || g || ' Surname' || g,
       case when g = 12 then '' when g = 11 then '+7 bad' else '+7 900 000-' || lpad(g::text, 4, '0') end,
       case when g = 5 then 'invalid' || g || '@mail.example.org' else 'customer' || g || '@mail.example.org' end,
       'M1', (array['red', 'orange', 'amber', 'yellow'])[1 + (g - 1) / 15], 1 + (g - 1) / 15, 'potential churn',
       (array['A', 'B', 'C', 'D'])[1 + g % 4], (array['At risk', 'Can''t lose them', 'Lost'])[1 + g % 3], '155',
       90 + g, 30.0, 3.0, g % 2, 5, 100 + g, 50 + g, 'why ' || g, g
from generate_series(1, 60) g;
-- an earlier campaign pushed C004, held out C006; C007's push is still failing; C008 was
-- called recently according to the call center
insert into ops.outreach_assignments values
    ('2026-W46', 'C004', 4, 'treatment', null, 'A', null, 'red', '2026-11-16 00:00+00', '{}', now()),
    ('2026-W46', 'C006', 6, 'holdout', null, 'B', null, 'red', '2026-11-16 00:00+00', '{}', now()),
    ('2026-W46', 'C007', 7, 'treatment', null, 'A', null, 'red', '2026-11-16 00:00+00', '{}', now());
insert into ops.outreach_pushes (iso_week, sink, customer_id, status, started_at) values
    ('2026-W46', 'csv', 'C004', 'pushed', now()), ('2026-W46', 'hubspot', 'C007', 'failed', now()),
    ('2026-W40', 'csv', 'C010', 'pushed', now());
insert into raw.call_outcomes (attempt_id, customer_id, campaign, called_at, reached, agreed_to_return, reason,
    agent_id, updated_at, _batch_id, _loaded_at)
values ('A1', 'C008', '2026-W44', '2026-11-10 10:00+00', true, false, 'price', 'AG1', now(), 0, now());
"""


def _sql(address: Any, query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(**address.libpq_kwargs()) as conn:
        return conn.execute(query, params).fetchall()


@pytest.fixture
def campaign_db(warehouse_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with psycopg.connect(**warehouse_db.libpq_kwargs()) as conn:
        conn.execute(MARTS_DDL)
    monkeypatch.setenv("RETENTION_CALL_LIST_CAPACITY", "20")
    monkeypatch.setenv("RETENTION_HOLDOUT_SHARE", "0.2")
    monkeypatch.setenv("RETENTION_SUPPRESSION_DAYS", "28")
    monkeypatch.setenv("RETENTION_OUTREACH_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("RETENTION_OUTREACH_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("RETENTION_OUTREACH_MAX_BACKOFF_SECONDS", "2")
    monkeypatch.setenv("RETENTION_OUTREACH_BATCH_SIZE", "7")
    yield warehouse_db


@pytest.fixture
def hubspot(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpot]:
    tool = HubSpot()
    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", f"http://:{HubSpot.TOKEN}@127.0.0.1:{tool.tool.port}")
    yield tool
    tool.tool.close()


@pytest.fixture
def bitrix(monkeypatch: pytest.MonkeyPatch) -> Iterator[Bitrix24]:
    tool = Bitrix24()
    monkeypatch.setenv(
        "AIRFLOW_CONN_BITRIX24_DEFAULT", f"http://127.0.0.1:{tool.tool.port}/rest/1/webhooksecret"
    )
    yield tool
    tool.tool.close()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    tool = Receiver()
    conn = {
        "conn_type": "http",
        "host": f"http://127.0.0.1:{tool.tool.port}/hooks/calls",
        "password": Receiver.SECRET,
    }
    monkeypatch.setenv("AIRFLOW_CONN_OUTREACH_WEBHOOK", json.dumps(conn))
    yield tool
    tool.tool.close()


def _arms(address: Any) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for cid, arm in _sql(
        address, "select customer_id, arm from ops.outreach_assignments where iso_week = %s", (WEEK,)
    ):
        out.setdefault(arm, set()).add(cid)
    return out


# the call list is read block by block until the campaign is full: blocks of 3 put the
# excluded customers and the capacity's edge in different blocks
@pytest.mark.parametrize("block", [selection.CANDIDATE_BLOCK, 3], ids=["one-block", "blocks-of-3"])
def test_selection_files_and_a_rerun_that_pushes_nothing_new(
    campaign_db: Any, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(selection, "CANDIDATE_BLOCK", block)
    monkeypatch.setenv("RETENTION_OUTREACH_SINKS", "csv,xlsx")
    result = push_weekly_call_list(WEEK)

    reasons = dict(
        _sql(
            campaign_db,
            "select customer_id, exclusion_reason from ops.outreach_assignments where arm = 'excluded' and iso_week = %s",
            (WEEK,),
        )
    )
    assert reasons == {
        "C002": "do_not_call",  # the mart let it through: the defensive check did not
        "C004": "suppressed",  # pushed last week
        "C006": "recent_holdout",
        "C007": "open_campaign",
        "C008": "suppressed",  # called per raw.call_outcomes
    }
    arms = _arms(campaign_db)
    assert len(arms["treatment"]) == 20 and arms["holdout"]
    assert "C010" in arms["treatment"] | arms["holdout"]  # pushed 7 weeks ago: outside the window

    path = Path(result["path"])
    with path.open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    listed = {r["customer_id"] for r in rows}
    assert listed == arms["treatment"] and result["customers"] == "20"
    assert not listed & (arms["holdout"] | arms["excluded"])
    assert [int(r["call_rank"]) for r in rows] == sorted(int(r["call_rank"]) for r in rows)
    assert {r["script_variant"] for r in rows} == {"A", "B"}
    assert all(r["offer_code"] and r["campaign"] == WEEK for r in rows)
    assert oct(path.stat().st_mode)[-3:] == "600"
    xlsx = path.with_suffix(".xlsx")
    assert oct(xlsx.stat().st_mode)[-3:] == "600"
    from openpyxl import load_workbook

    sheet = load_workbook(xlsx).active
    assert sheet is not None and sheet.max_row == 21

    # marts move on (someone new at the top): the re-run still pushes the same customers
    before = path.read_bytes()
    with psycopg.connect(**campaign_db.libpq_kwargs()) as conn:
        conn.execute("update marts.rpt_call_list set call_rank = call_rank + 1")
        conn.execute(
            "insert into marts.rpt_call_list (customer_id, full_name, phone, email, intervention_level, call_rank) values ('C999', 'New', '+1', 'n@x', 'red', 1)"
        )
    push_weekly_call_list(WEEK)
    assert path.read_bytes() == before
    assert _sql(
        campaign_db,
        "select count(*), count(*) filter (where status = 'pushed') from ops.outreach_pushes where iso_week = %s",
        (WEEK,),
    ) == [(40, 40)]


def test_dry_run_shows_what_would_be_sent_and_writes_nothing(campaign_db: Any, hubspot: HubSpot) -> None:
    report = push_campaign(WEEK, dry_run=True, sinks=("csv", "hubspot"))
    upsert = report.would_send["hubspot"][0]["body"]
    assert isinstance(upsert, dict) and len(upsert["inputs"]) == 20
    assert report.arms["treatment"] == 20 and report.exclusions["do_not_call"] == 1
    assert hubspot.tool.requests == []
    assert _sql(
        campaign_db, "select count(*) from ops.outreach_assignments where iso_week = %s", (WEEK,)
    ) == [(0,)]
    assert _sql(campaign_db, "select count(*) from ops.outreach_pushes where iso_week = %s", (WEEK,)) == [
        (0,)
    ]
    assert not Path(report.path).exists()


def test_hubspot_throttling_5xx_timeouts_and_rejections(
    campaign_db: Any, hubspot: HubSpot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_OUTREACH_SINKS", "hubspot")
    hubspot.tool.faults = [
        (
            "status",
            (
                429,
                {
                    "status": "error",
                    "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT",
                    "policyName": "TEN_SECONDLY_ROLLING",
                },
                {"Retry-After": "1"},
            ),
        ),
        ("status", (502, {"message": "bad gateway"}, {})),
        ("slow_only", 1.5),
    ]
    started = time.monotonic()
    result = push_weekly_call_list(WEEK)
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured

    arms = _arms(campaign_db)
    ledger = dict(
        (cid, (status, detail))
        for cid, status, detail in _sql(
            campaign_db,
            "select customer_id, status, detail from ops.outreach_pushes where iso_week = %s and sink = 'hubspot'",
            (WEEK,),
        )
    )
    assert set(ledger) == arms["treatment"]
    # the 207 error, recorded with HubSpot's reason
    assert ledger["C005"][0] == "rejected" and "INVALID_EMAIL" in ledger["C005"][1]
    assert ledger["C012"][0] == "pushed"  # no phone is fine for HubSpot
    pushed = {c for c, (s, _) in ledger.items() if s == "pushed"}
    assert result["hubspot_pushed"] == str(len(pushed)) and len(pushed) == len(arms["treatment"]) - 1
    assert len(hubspot.tasks) == len(pushed)
    task_contacts = {t["contact"] for t in hubspot.tasks.values()}
    assert len(task_contacts) == len(pushed)  # one task per customer, each on its contact
    sent_emails = {
        item["id"]
        for path, body, *_ in hubspot.tool.requests
        if path.endswith("upsert")
        for item in body["inputs"]
    }
    excluded_or_holdout = {
        f"customer{c[1:].lstrip('0')}@mail.example.org" for c in arms["holdout"] | arms["excluded"]
    }
    assert not sent_emails & excluded_or_holdout

    # a re-run sends nothing at all
    count = len(hubspot.tool.requests)
    push_weekly_call_list(WEEK)
    assert len(hubspot.tool.requests) == count


def test_a_lost_answer_is_resumed_without_duplicate_tasks(
    campaign_db: Any, hubspot: HubSpot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_OUTREACH_SINKS", "csv,hubspot")
    monkeypatch.setenv("RETENTION_OUTREACH_MAX_ATTEMPTS", "1")
    # contacts go through, then the first task batch is created but its answer never comes
    original = hubspot.handle
    state = {"lost": False}

    def contacts_then_lose(path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        answer = original(path, body, headers)
        if path.endswith("contacts/batch/upsert") and not state["lost"]:
            state["lost"] = True
            hubspot.tool.faults.append(("slow", 1.5))  # served to the next request: the task batch
        return answer

    hubspot.tool.handle = contacts_then_lose
    with pytest.raises(OutreachPushIncomplete, match="hubspot"):
        push_weekly_call_list(WEEK)
    assert hubspot.tasks  # HubSpot did create the first batch's tasks; we never heard back
    assert _sql(
        campaign_db,
        "select status, count(*) from ops.outreach_pushes where iso_week = %s and sink = 'hubspot' group by 1",
        (WEEK,),
    ) == [("failed", 20)]
    assert _sql(
        campaign_db,
        "select count(*) from ops.outreach_pushes where iso_week = %s and sink = 'csv' and status = 'pushed'",
        (WEEK,),
    ) == [(20,)]

    # the task's retry: the tool behaves again
    hubspot.tool.handle = original
    push_weekly_call_list(WEEK)
    expected = len(_arms(campaign_db)["treatment"]) - 1  # C005's e-mail is invalid
    subjects = [t["hs_task_subject"] for t in hubspot.tasks.values()]
    assert len(subjects) == len(set(subjects)) == expected  # no duplicates
    assert any(p.endswith("tasks/search") for p in hubspot.tool.paths())


def test_bitrix24_dedups_contacts_rejects_bad_records_and_retries_limits(
    campaign_db: Any, bitrix: Bitrix24, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_OUTREACH_SINKS", "bitrix24")
    bitrix.tool.faults = [
        ("status", (503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}, {})),
        (
            "status",
            (500, {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}, {}),
        ),
    ]
    push_weekly_call_list(WEEK)
    arms = _arms(campaign_db)
    ledger = {
        cid: (status, detail, ext)
        for cid, status, detail, ext in _sql(
            campaign_db,
            "select customer_id, status, detail, external_id from ops.outreach_pushes where iso_week = %s and sink = 'bitrix24'",
            (WEEK,),
        )
    }
    assert set(ledger) == arms["treatment"]
    assert ledger["C011"][0] == "rejected"  # with Bitrix24's code and description
    assert "ERROR_CORE" in ledger["C011"][1] and "Invalid phone" in ledger["C011"][1]
    # the portal already knew C003's phone: reused, not duplicated
    assert ledger["C003"][2].startswith("contact:7/")
    pushed = [c for c, v in ledger.items() if v[0] == "pushed"]
    assert len(bitrix.activities) == len(pushed)
    owners = [a["OWNER_ID"] for a in bitrix.activities.values()]
    assert len(set(owners)) == len(owners)
    phones_sent = {
        v["VALUE"]
        for path, body, *_ in bitrix.tool.requests
        if path.endswith("crm.contact.add.json")
        for v in body["fields"].get("PHONE", [])
    }
    blocked = {f"+7 900 000-{c[1:].rjust(4, '0')}" for c in arms["holdout"] | arms["excluded"]}
    assert not phones_sent & blocked

    count, contacts = len(bitrix.tool.requests), len(bitrix.contacts)
    push_weekly_call_list(WEEK)
    assert len(bitrix.tool.requests) == count and len(bitrix.contacts) == contacts


def test_webhook_signed_batches_with_row_rejections_and_a_failing_then_recovering_receiver(
    campaign_db: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_OUTREACH_SINKS", "webhook")
    monkeypatch.setenv("RETENTION_OUTREACH_MAX_ATTEMPTS", "2")
    # the receiver is down for the whole first run: 503 twice for the first batch
    receiver.tool.faults = [
        ("status", (503, {"error": "down"}, {"Retry-After": "0"})),
        ("status", (503, {"error": "down"}, {"Retry-After": "0"})),
    ]
    with pytest.raises(OutreachPushIncomplete, match="webhook"):
        push_weekly_call_list(WEEK)
    assert receiver.deliveries == 0
    push_weekly_call_list(WEEK)  # the retry
    arms = _arms(campaign_db)
    ledger = dict(
        _sql(
            campaign_db,
            "select customer_id, status from ops.outreach_pushes where iso_week = %s and sink = 'webhook'",
            (WEEK,),
        )
    )
    accepted = {row["customer_id"] for row in receiver.seen.values()}
    assert accepted == {c for c, s in ledger.items() if s == "pushed"}
    assert set(ledger) == arms["treatment"]
    assert ledger["C012"] == "rejected"  # the receiver's own reason: no phone
    assert not accepted & (arms["holdout"] | arms["excluded"])
    for _path, body, headers, raw in receiver.tool.requests:
        assert (
            headers["X-Retention-Signature"]
            == "sha256=" + hmac.new(Receiver.SECRET.encode(), raw, hashlib.sha256).hexdigest()
        )
        assert all(r["idempotency_key"] == f"retention-{WEEK}-{r['customer_id']}" for r in body["rows"])
    deliveries = receiver.deliveries
    push_weekly_call_list(WEEK)
    assert receiver.deliveries == deliveries


def test_cli_dry_run_prints_the_requests_and_sends_nothing(
    campaign_db: Any, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    from retention_pipeline.cli import main

    main(["outreach", "push", "--week", WEEK, "--dry-run", "--sinks", "csv,webhook"])
    out = capsys.readouterr().out
    shown = json.loads(out[out.index("{\n") :])  # after whatever airflow printed on import
    assert shown["dry_run"] is True and shown["arms"]["treatment"] == 20
    (batch, *_rest) = shown["would_send"]["webhook"]
    assert batch["POST"].endswith("/hooks/calls") and batch["body"]["campaign"] == WEEK
    assert receiver.tool.requests == []
    assert _sql(campaign_db, "select count(*) from ops.outreach_pushes where iso_week = %s", (WEEK,)) == [
        (0,)
    ]
