"""The whole system under supervisor on the benchmark's virtual host and databases: memory of
each service idle and under load, bulk intake, urgent latency during a bulk import, and the
coordinators' filtered pipeline query on a million rows.

What the code of the day does not offer yet is reported as "not measurable yet: <what is
missing>", never as an invented figure.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any

import psutil
import sqlalchemy as sa

from benchmarks import env
from tests.http_client import Http

SERVICES = ("referral", "case_management", "justice_liaison", "cross_border", "gateway")
PASSWORD = "concord-bench-password"
SYSTEM_VAR = env.VAR / "system"
BATCH_ROUTE = "/api/v1/referrals:batch"


def not_measurable(what: str) -> str:
    return f"not measurable yet: {what}"


def environment() -> dict[str, str]:
    values = {
        **os.environ,
        "CONCORD_VAR_DIR": str(SYSTEM_VAR),
        "CONCORD_AMQP_URI": env.AMQP_URI,
        "CONCORD_HTTP_PORT": str(env.HTTP_PORT),
        "CONCORD_DEMO_PASSWORD": PASSWORD,
    }
    for service in SERVICES:
        values[f"CONCORD_{service.upper()}_DATABASE_URL"] = env.fresh_database(service)
    return values


def concord(values: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(env.BIN / "concord"), *args],
        env=values,
        cwd=env.REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )


@contextmanager
def running_system():
    values = environment()
    concord(values, "topology", "declare")
    concord(values, "migrate")
    concord(values, "seed")
    concord(values, "run", "--background")
    http = Http(f"http://127.0.0.1:{env.HTTP_PORT}", PASSWORD, timeout=120)
    try:
        env.wait_until(
            lambda: http.request("GET", "/healthz")[0] == 200, 120, "the system healthy", 0.5
        )
        yield http, values
    finally:
        subprocess.run(
            [str(env.BIN / "concord"), "stop"], env=values, cwd=env.REPO, capture_output=True
        )


def service_pids(values: dict[str, str]) -> dict[str, int]:
    result = subprocess.run(
        [str(env.BIN / "concord"), "status", "--json"],
        env=values,
        cwd=env.REPO,
        capture_output=True,
        text=True,
    )
    return {p["name"]: p["pid"] for p in json.loads(result.stdout)["processes"] if p["pid"]}


class RssSampler:
    """The largest resident set of each service process while it runs."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.peak = {name: 0.0 for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                try:
                    rss = psutil.Process(pid).memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peak[name] = max(self.peak[name], rss)
            self._stop.wait(0.25)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def rss_now(pids: dict[str, int]) -> dict[str, float]:
    return {
        name: round(psutil.Process(pid).memory_info().rss / 2**20, 1) for name, pid in pids.items()
    }


def referral_body(index: int, urgency: str = "high") -> dict:
    from tests.synthetic import make_referral

    return make_referral(index, channel="helpline", categories=["grooming"], urgency=urgency)


def platform_report(index: int, run: str) -> dict:
    return {
        "idempotency_key": f"bench-{run}-{index}",
        "channel": "platform_report",
        "categories": ["csam_distribution"],
        "platform": "example_platform",
        "incident_type": "csam",
        "external_reference": f"bench-{run}-{index}",
        "consent": {"status": "not_sought", "by": "not_applicable", "legal_basis": "child_safety"},
    }


def patient(http: Http, method: str, path: str, body: Any, user: str, tries: int = 10):
    """A request tried again while it is answered 502/503 (a service restarting: this machine
    is shared, and other runs restart its broker); the figure then includes the wait."""
    for _ in range(tries - 1):
        status, answer = http.request(method, path, body, user=user)
        if status not in (502, 503):
            return status, answer
        time.sleep(1)
    return http.request(method, path, body, user=user)


SIGN_IN_USERS = ("intake", "social", "social2", "supervisor", "supervisor2", "police")


def signin_load(http: Http, clients: int = 6, rounds: int = 5) -> dict:
    """`clients` people signing in at once, `rounds` times each: each sign-in is an argon2
    verification, the largest piece of the gateway's memory while it runs."""
    from concurrent.futures import ThreadPoolExecutor

    def one(index: int) -> None:
        http.token(SIGN_IN_USERS[index % len(SIGN_IN_USERS)])

    started = time.time()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(clients * rounds)))
    return {"signins_per_s": round(clients * rounds / (time.time() - started), 1)}


def flow_load(http: Http, count: int, clients: int = 6) -> dict:
    """The ordinary flow under load: submit and accept in both agencies, `clients` at once."""
    from concurrent.futures import ThreadPoolExecutor

    def one(index: int) -> None:
        status, receipt = patient(http, "POST", "/api/v1/referrals", referral_body(index), "intake")
        assert status == 201, receipt
        for user in ("social", "police"):
            cid = receipt["coordination_id"]
            status, answer = patient(http, "POST", f"/api/v1/intake/{cid}/accept", None, user)
            assert status in (200, 201), answer

    started = time.time()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(count)))
    return {"flow_referrals_per_s": round(count / (time.time() - started), 1)}


def bulk_and_urgent(http: Http, count: int, has_batch: bool) -> dict:
    """Platform reports through the batch intake while urgent referrals are submitted one by
    one; each urgent one timed from submission until the coordinators' pipeline shows it."""
    if not has_batch:
        missing = f"{BATCH_ROUTE} is not in /api/v1/openapi.json (issue 3)"
        return {
            "bulk_intake_reports_per_s": not_measurable(missing),
            "urgent_latency_ms": not_measurable(missing),
        }
    run = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    done = threading.Event()

    def urgent() -> None:
        index = 0
        while not done.is_set():
            started = time.perf_counter()
            status, receipt = http.request(
                "POST",
                "/api/v1/referrals",
                referral_body(10_000 + index, "immediate_danger"),
                user="intake",
            )
            if status == 201:
                cid = receipt["coordination_id"]
                while (
                    http.request("GET", f"/api/v1/pipeline/{cid}", None, user="coordinator")[0]
                    != 200
                ):
                    time.sleep(0.005)
                latencies.append((time.perf_counter() - started) * 1000)
            index += 1
            time.sleep(0.2)

    thread = threading.Thread(target=urgent, daemon=True)
    thread.start()
    started = time.time()
    created = 0
    chunk = 1000
    for offset in range(0, count, chunk):
        reports = [platform_report(i, run) for i in range(offset, min(count, offset + chunk))]
        status, result = http.request("POST", BATCH_ROUTE, reports, user="intake")
        if status != 200:
            done.set()
            return {
                "bulk_intake_reports_per_s": not_measurable(f"{BATCH_ROUTE} answered {status}"),
                "urgent_latency_ms": not_measurable("no bulk import ran"),
            }
        created += int(result.get("created", 0)) + int(result.get("replayed", 0))
    elapsed = time.time() - started
    done.set()
    thread.join()
    figures: dict[str, Any] = {
        "bulk_intake_reports_per_s": round(created / elapsed, 1),
        "bulk_reports": created,
    }
    if len(latencies) >= 2:
        ordered = sorted(latencies)
        figures["urgent_latency_ms"] = {
            "p50": round(statistics.median(ordered), 1),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
            "samples": len(ordered),
        }
    else:
        figures["urgent_latency_ms"] = not_measurable("the bulk import ended before two samples")
    return figures


def run(quick: bool) -> dict:
    env.ensure_vhost()
    env.delete_queues()
    results: dict[str, Any] = {}
    with running_system() as (http, values):
        status, spec = http.request("GET", "/api/v1/openapi.json")
        has_batch = BATCH_ROUTE in spec.get("paths", {})
        pids = service_pids(values)
        time.sleep(3)
        idle = rss_now(pids)
        with RssSampler(pids) as sampler:
            results.update(signin_load(http))
            results.update(flow_load(http, 24 if quick else 200))
            results.update(bulk_and_urgent(http, 1_000 if quick else 20_000, has_batch))
        results["rss_mb"] = {
            name: {"idle": idle[name], "under_load": round(sampler.peak[name], 1)} for name in pids
        }
        results.update(
            pipeline_query(http, values, 50_000 if quick else 1_000_000, 3 if quick else 10)
        )
        results.update(intake_queue(http, values, 3 if quick else 10))
    return results


# --- the coordinators' pipeline query on a large table ------------------------------------

SKIP_TABLES = {"inbox", "outbox", "outbox_sequence", "audit_trail", "alembic_version"}


def grow_referral_tables(url: str, rows: int) -> int:
    """Copy the hub's rows (every table keyed by coordination id) under new coordination ids,
    doubling until the pipeline holds `rows`; returns how many it holds. Foreign keys are
    consistent by construction (each copy maps old ids to the same new ids)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        tables = [
            name
            for (name,) in conn.execute(
                sa.text(
                    "SELECT table_name FROM information_schema.columns "
                    "WHERE column_name = 'coordination_id' AND table_schema = 'public'"
                )
            )
            if name not in SKIP_TABLES
        ]
        order = sorted(tables, key=lambda t: (t != "referrals", t != "pipeline", t))
        columns = {
            t: [
                c
                for (c,) in conn.execute(
                    sa.text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = :t AND table_schema = 'public' "
                        "AND (is_generated = 'NEVER') AND column_default IS NULL "
                        "ORDER BY ordinal_position"
                    ),
                    {"t": t},
                )
            ]
            for t in order
        }
        conn.execute(sa.text("SET session_replication_role = replica"))
        while True:
            count = conn.execute(sa.text("SELECT count(*) FROM pipeline")).scalar_one()
            if count >= rows or count == 0:
                break
            take = min(count, rows - count)
            conn.execute(sa.text("DROP TABLE IF EXISTS bench_map"))
            conn.execute(
                sa.text(
                    "CREATE TEMP TABLE bench_map AS SELECT coordination_id AS old, "
                    "md5(random()::text || clock_timestamp()::text)::uuid::text AS new, "
                    "random() * interval '90 days' AS shift "
                    "FROM pipeline LIMIT :n"
                ),
                {"n": take},
            )
            for table in order:
                names = columns[table]
                select = ", ".join(
                    "m.new" if c == "coordination_id" else _copied(table, c) for c in names
                )
                quoted = ", ".join(f'"{c}"' for c in names)
                conn.execute(
                    sa.text(
                        f'INSERT INTO "{table}" ({quoted}) '
                        f'SELECT {select} FROM "{table}" t JOIN bench_map m '
                        "ON t.coordination_id = m.old ON CONFLICT DO NOTHING"
                    )
                )
        conn.execute(sa.text("ANALYZE"))
        count = conn.execute(sa.text("SELECT count(*) FROM pipeline")).scalar_one()
    # The copies went around the hub: its counts per stage are counted again from the rows.
    from sqlalchemy.orm import Session

    from referral.repository import ReferralRepository

    with Session(engine) as session, session.begin():
        ReferralRepository(session).recount()
    engine.dispose()
    return int(count)


def _copied(table: str, column: str) -> str:
    """A copied column; keys that must stay unique get the new id appended."""
    if column in ("idempotency_key", "external_reference"):
        return f'CASE WHEN t."{column}" IS NULL THEN NULL ELSE left(m.new, 36) END'
    if column in ("received_at", "updated_at"):
        # One shift per copied referral: every table holding its time agrees on it, and
        # the copies are older referrals, not a million changes in the last seconds (what
        # the board's `pipeline_version` counts).
        return f't."{column}" - m.shift'
    return f't."{column}"'


QUERIES = (
    {"limit": 50},
    {"stage": ["routed"], "limit": 50},
    {"urgency": ["high", "immediate_danger"], "sort": "priority", "limit": 50},
    {"agency": ["social_services"], "agency_status": ["pending_acceptance"], "limit": 50},
    {"category": ["grooming"], "sort": "oldest", "limit": 50},
    {"flag": ["awaiting_acceptance_overdue"], "limit": 50},
)


def pipeline_query(http: Http, values: dict[str, str], rows: int, rounds: int = 10) -> dict:
    status, page = http.request("GET", "/api/v1/pipeline?limit=1", None, user="coordinator")
    if status != 200:
        return {"pipeline_query_ms": not_measurable(f"GET /api/v1/pipeline answered {status}")}
    url = values["CONCORD_REFERRAL_DATABASE_URL"]
    held = grow_referral_tables(url, rows)
    timings = []
    for round_ in range(rounds):
        for query in QUERIES:
            text = "&".join(
                f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in query.items()
            )
            started = time.perf_counter()
            status, page = http.request("GET", f"/api/v1/pipeline?{text}", None, user="coordinator")
            timings.append((time.perf_counter() - started) * 1000)
            if status != 200:
                return {"pipeline_query_ms": not_measurable(f"the query answered {status}: {page}")}
            if round_ == 0 and page.get("next_cursor"):
                cursor = page["next_cursor"]
                started = time.perf_counter()
                http.request(
                    "GET", f"/api/v1/pipeline?{text}&cursor={cursor}", None, user="coordinator"
                )
                timings.append((time.perf_counter() - started) * 1000)
    ordered = sorted(timings)
    return {
        "pipeline_query_ms": {
            "p50": round(statistics.median(ordered), 1),
            "p95": p95(timings),
            "rows": held,
            "samples": len(ordered),
        }
    }


def p95(timings: list[float]) -> float:
    ordered = sorted(timings)
    return round(ordered[int(len(ordered) * 0.95) - 1], 1)


# --- an agency's waiting list on the same rows --------------------------------------------

# Who reads each agency's waiting list (the seeded demo accounts).
AGENCY_READERS = {"social_services": "social", "justice": "police"}
LATER_PAGE = 20


def intake_queue(http: Http, values: dict[str, str], rounds: int = 10) -> dict:
    """`GET /api/v1/intake` of the agency most of the grown rows are routed to: its first
    page and its 20th (the cursor found once beforehand), `rounds` times each, through the
    gateway as that agency's worker asks. Reported only: there is no target yet."""
    engine = sa.create_engine(values["CONCORD_REFERRAL_DATABASE_URL"], poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        agency, routed = conn.execute(
            sa.text(
                "SELECT agency, count(*) FROM agency_statuses WHERE routed "
                "GROUP BY agency ORDER BY count(*) DESC LIMIT 1"
            )
        ).one()
    engine.dispose()
    user = AGENCY_READERS[agency]
    pages = ["/api/v1/intake?limit=50"]
    while len(pages) < LATER_PAGE:
        status, page = http.request("GET", pages[-1], None, user=user)
        if status != 200 or not page.get("next_cursor"):
            return {"intake_queue_ms": not_measurable(f"page {len(pages)} answered {status}")}
        pages.append(f"/api/v1/intake?limit=50&cursor={page['next_cursor']}")
    timings: dict[str, list[float]] = {"first_page": [], "later_page": []}
    for _ in range(rounds):
        for which, path in (("first_page", pages[0]), ("later_page", pages[-1])):
            started = time.perf_counter()
            status, page = http.request("GET", path, None, user=user)
            timings[which].append((time.perf_counter() - started) * 1000)
            if status != 200:
                return {"intake_queue_ms": not_measurable(f"the queue answered {status}")}
    return {
        "intake_queue_ms": {
            "first_page_p95": p95(timings["first_page"]),
            "later_page_p95": p95(timings["later_page"]),
            "later_page": LATER_PAGE,
            "agency": agency,
            "routed": int(routed),
            "samples": rounds,
        }
    }
