"""Referrals through the whole flow while everything that can fail does.

Each referral is submitted at the hub, routed to social services and justice, accepted by
both (a case and an investigation opened), and its statuses come back to the pipeline,
with two instances of every agency service competing for the work. Meanwhile, in the
middle of the traffic: every service process is killed with SIGKILL (supervisor restarts
it), RabbitMQ and PostgreSQL are restarted, events are delivered twice and, held back for
a while, out of order, poison messages are published into every consumer's queue, and one
referral's status is refused by its database until an operator fixes the cause and
replays the parked event with `concord dlq replay`.

Then every answer comes from the services that own the data, not from this test's notes:
the referrals the hub holds (and nothing the driver was told was created is missing), one
case and one investigation per referral (`records_by_referral` of case_management and
justice_liaison), pipeline rows equal to what the owners hold (`pipeline_row`), every
outbox empty (`health`), nothing unacknowledged and nothing waiting in any queue
(RabbitMQ's management API), and the parking queues holding exactly the poison, each with
its reason (`concord dlq list`). One summary line says how it went.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from nameko.standalone.rpc import ClusterRpcClient

from concord_contracts.codes import Organisation, Role
from concord_kit.identity import Caller
from tests.conftest import AMQP_URI, database_url
from tests.fault import chaos
from tests.fault.conftest import SUMMARIES, referrals_to_run
from tests.synthetic import make_referral

# The flow's own pace (about ten requests a second through one gateway on two cores, three
# requests a referral) plus the faults and the settling: well past the default 300 s at 2,000.
pytestmark = [
    pytest.mark.fault,
    pytest.mark.e2e,
    pytest.mark.timeout(600 + 2 * referrals_to_run()),
]

CLIENTS = 8
RETRY_FOR_SECONDS = 240
SETTLE_SECONDS = 300
AMBIGUOUS = {502, 503, 504}
HOLD_CONSTRAINT = "fault_suite_hold"

COORDINATOR = Caller("fault-coordinator", Role.coordinator, Organisation.coordination_body)
SOCIAL = Caller("fault-social", Role.social_worker, Organisation.social_services)


@dataclass
class Referral:
    index: int
    body: dict
    cid: str | None = None
    unknown: bool = False  # the hub's answer was lost: it may or may not hold it
    case_id: str | None = None
    investigation_id: str | None = None
    errors: list[str] = field(default_factory=list)


class Client:
    """The gateway as API users see it, with the patience of a real client: a request
    whose answer was lost (connection refused or reset, 502/503 while a service restarts)
    is tried again, but only where trying again cannot create anything twice."""

    def __init__(self, system):
        self.system = system
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def token(self, username: str, fresh: bool = False) -> str:
        with self._lock:
            if fresh or username not in self._tokens:
                self._tokens[username] = self._retry(
                    lambda: self.system.http.token(username), "token"
                )
            return self._tokens[username]

    def _retry(self, call: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + RETRY_FOR_SECONDS
        delay = 0.2
        while True:
            try:
                return call()
            except (OSError, urllib.error.URLError, AssertionError) as error:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{what}: still failing: {error!r}") from None
            time.sleep(delay)
            delay = min(delay * 2, 3)

    def call(self, method: str, path: str, username: str, body=None, idempotent=True):
        """(status, body); None as status when the answer was lost and trying again is not
        safe (`idempotent` false)."""
        deadline = time.monotonic() + RETRY_FOR_SECONDS
        delay = 0.2
        while True:
            try:
                status, answer = self.system.http.request(
                    method, path, body, token=self.token(username)
                )
            except (OSError, urllib.error.URLError):
                status, answer = None, None
            if status == 401:
                self.token(username, fresh=True)
                continue
            if status not in AMBIGUOUS and status is not None:
                return status, answer
            if not idempotent:
                return None, answer
            if time.monotonic() > deadline:
                return status, answer
            time.sleep(delay)
            delay = min(delay * 2, 3)


def idempotency_supported(system) -> bool:
    """Whether the hub takes an idempotency key with a submission (docs/interfaces/
    referral.md): then a submission whose answer was lost can safely be sent again."""
    status, spec = system.http.request("GET", "/api/v1/openapi.json")
    assert status == 200
    return "idempotency_key" in json.dumps(spec.get("components", {}).get("schemas", {}))


class Flow:
    def __init__(self, system, idempotent_submissions: bool):
        self.client = Client(system)
        self.idempotent = idempotent_submissions
        self.run_id = uuid.uuid4().hex[:8]
        self.done = 0
        self._lock = threading.Lock()

    def referral(self, index: int) -> Referral:
        rng = random.Random(index)
        body = make_referral(
            rng,
            channel="helpline",
            categories=rng.sample(["sextortion", "grooming", "csam_production"], k=2),
            urgency=rng.choice(["high", "normal"]),
        )
        if self.idempotent:
            body["idempotency_key"] = f"fault-{self.run_id}-{index}"
        return Referral(index, body)

    def submit(self, referral: Referral) -> None:
        status, answer = self.client.call(
            "POST", "/api/v1/referrals", "intake", referral.body, idempotent=self.idempotent
        )
        if status is None:
            referral.unknown = True
        elif status in (200, 201):
            referral.cid = answer["coordination_id"]
        else:
            referral.errors.append(f"submit {status}: {answer}")

    def accept(self, referral: Referral, username: str) -> None:
        if referral.cid is None:
            return
        status, answer = self.client.call("POST", f"/api/v1/intake/{referral.cid}/accept", username)
        if status not in (200, 201):
            referral.errors.append(f"accept as {username}: {status}: {answer}")
        elif username == "social":
            referral.case_id = answer["case_id"]
        else:
            referral.investigation_id = answer["investigation_id"]

    def run_one(self, referral: Referral) -> Referral:
        self.submit(referral)
        self.accept(referral, "social")
        self.accept(referral, "police")
        with self._lock:
            self.done += 1
        return referral


def rpc(caller: Caller) -> ClusterRpcClient:
    return ClusterRpcClient(context_data=caller.as_context(), uri=AMQP_URI, timeout=60)


def all_referrals(hub) -> list[str]:
    """Every referral the hub holds, asked of the hub: its paginated pipeline query."""
    cids, cursor = [], None
    while True:
        query: dict[str, Any] = {"limit": 200, "counts": False}
        if cursor:
            query["cursor"] = cursor
        page = hub.pipeline(query)
        cids += [item["coordination_id"] for item in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            return cids


def owners(service, cids: list[str]) -> dict[str, list[dict]]:
    held: dict[str, list[dict]] = {}
    for start in range(0, len(cids), 500):
        held.update(service.records_by_referral(cids[start : start + 500]))
    return held


def expected_status(agency: str, owner_status: str) -> str:
    """The pipeline status an owner's record stands for (referral.domain's mapping)."""
    if owner_status == "closed":
        return "closed"
    return {"social_services": "case_opened", "justice": "investigation_opened"}[agency]


def divergence(row: dict, agency: str, records: list[dict]) -> str | None:
    """Why the pipeline's word on `agency` differs from its owner's record, or None."""
    state = row["agencies"].get(agency)
    if not records:
        return (
            f"{agency}: no record at the owner"
            if state
            and state.get("status")
            in (
                "case_opened",
                "investigation_opened",
            )
            else None
        )
    owner_status = records[0]["status"]
    if state is None:
        return f"{agency}: missing from the pipeline (owner: {owner_status})"
    if "detail" in state and state["detail"] is not None and state["detail"] != owner_status:
        return f"{agency}: pipeline detail {state['detail']} != owner {owner_status}"
    if state["status"] != expected_status(agency, owner_status):
        return f"{agency}: pipeline {state['status']} != owner {owner_status}"
    return None


@dataclass
class Faults:
    kills: list[str] = field(default_factory=list)
    broker_restarts: int = 0
    database_restarts: int = 0
    delivered_twice: int = 0
    held_and_reordered: int = 0
    poison: dict[str, str] = field(default_factory=dict)  # message id -> service


def hold_referral_status(cid: str) -> None:
    """The hub's database refuses this referral's move to `in_care` until told otherwise:
    its `case.opened` fails on every attempt and is parked (a cause an operator fixes)."""
    engine = sa.create_engine(database_url("referral"), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"ALTER TABLE pipeline ADD CONSTRAINT {HOLD_CONSTRAINT} "
                f"CHECK (coordination_id <> '{uuid.UUID(cid)}' OR stage <> 'in_care') NOT VALID"
            )
        )
    engine.dispose()


def fix_referral_status() -> None:
    engine = sa.create_engine(database_url("referral"), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE pipeline DROP CONSTRAINT {HOLD_CONSTRAINT}"))
    engine.dispose()


def parked(system) -> list[dict]:
    result = system.concord("dlq", "list", "--json")
    return json.loads(result.stdout)


def test_no_referral_lost_duplicated_or_diverged_under_faults(fault_system):
    system = fault_system
    count = referrals_to_run()
    flow = Flow(system, idempotency_supported(system))
    tap = chaos.Tap()
    faults = Faults()

    # The referral whose status the database will refuse: submitted and held first.
    fixed_one = flow.referral(-1)
    flow.submit(fixed_one)
    assert fixed_one.cid, fixed_one.errors
    hold_referral_status(fixed_one.cid)
    flow.accept(fixed_one, "social")
    assert fixed_one.case_id, fixed_one.errors

    holds: list[chaos.Hold] = []

    def kill(*names: str) -> Callable[[], None]:
        def action() -> None:
            for name in names:
                chaos.kill_9(system, name)
                faults.kills.append(name)

        return action

    def broker() -> None:
        chaos.restart_rabbitmq()
        faults.broker_restarts += 1

    def database() -> None:
        chaos.restart_postgresql()
        faults.database_restarts += 1

    def hold() -> None:
        holds.extend(chaos.Hold(s).start() for s in ("case_management", "justice_liaison"))

    def release() -> None:
        for held in holds:
            faults.held_and_reordered += held.release()
        holds.clear()

    def poison() -> None:
        for service in ("referral", "case_management", "justice_liaison", "cross_border"):
            for message_id in chaos.publish_poison(service):
                faults.poison[message_id] = service

    def twice() -> None:
        faults.delivered_twice += chaos.deliver_again(tap.take(max(20, count // 4)))

    schedule: list[list[Callable[[], None]]] = [
        [kill("referral-0")],
        [kill("case_management-0"), hold],
        [broker],
        [kill("justice_liaison-0"), poison, twice],
        [database, release],
        [kill("cross_border-0", "gateway")],
        [kill("referral-1", "case_management-1"), twice],
        [kill("justice_liaison-1", "cross_border-1"), twice],
    ]
    chunk = max(1, count // len(schedule))
    results: list[Referral] = []
    index = 0
    with ThreadPoolExecutor(CLIENTS) as pool:
        for step, actions in enumerate(schedule):
            size = chunk if step < len(schedule) - 1 else count - index
            futures: list[Future] = [
                pool.submit(flow.run_one, flow.referral(i)) for i in range(index, index + size)
            ]
            index += size
            started = flow.done
            # Mid-flow: once a part of this chunk has gone through, and while the rest is in
            # flight, the faults strike.
            chaos.wait_until(
                lambda s=started, n=size: flow.done - s >= max(1, n // 4) or flow.done >= count,
                RETRY_FOR_SECONDS,
                "traffic in flight",
                interval=0.05,
            )
            for action in actions:
                action()
            results += [f.result() for f in futures]
    if holds:
        release()

    # An operator finds the parked status, fixes its cause, and replays it.
    fixed_event = chaos.wait_until(
        lambda: next(
            (
                p
                for p in parked(system)
                if p["service"] == "referral"
                and p["event_type"] == "case.opened"
                and (p["reason"] or "").startswith("IntegrityError")
            ),
            None,
        ),
        120,
        "the refused status parked with its reason",
    )
    fix_referral_status()
    replay = system.concord(
        "dlq", "replay", "--service", "referral", "--event-id", fixed_event["event_id"]
    )
    # Delivered twice (the duplicates above), it was parked twice: both copies go back, and
    # the hub's inbox applies it once.
    replayed = int(replay.stderr.split()[0])
    assert replayed >= 1 and replay.stdout.count(fixed_event["event_id"]) == replayed, replay
    flow.accept(fixed_one, "police")
    results.append(fixed_one)

    # Answers lost on the way (a submission that cannot be retried safely): the hub holds
    # the referral or not; the ones it holds are found and accepted like the others.
    with rpc(COORDINATOR) as coordination:
        referral_ids = set(all_referrals(coordination.referral))
    known = {r.cid for r in results if r.cid}
    for cid in sorted(referral_ids - known):
        found = Referral(-2, {}, cid=cid)
        flow.accept(found, "social")
        flow.accept(found, "police")
        results.append(found)

    errors = [(r.index, r.errors) for r in results if r.errors]
    assert not errors, errors[:10]

    def check() -> dict[str, Any]:
        with rpc(COORDINATOR) as services:
            held = set(all_referrals(services.referral))
            cids = sorted(held)
            cases = owners(services.case_management, cids)
            investigations = owners(services.justice_liaison, cids)
            diverged = {}
            for cid in cids:
                row = services.referral.pipeline_row(cid)
                reasons = [
                    reason
                    for agency, records in (
                        ("social_services", cases[cid]),
                        ("justice", investigations[cid]),
                    )
                    if (reason := divergence(row, agency, records))
                ]
                if reasons:
                    diverged[cid] = reasons
            health = {
                name: getattr(services, name).health()
                for name in ("referral", "case_management", "justice_liaison", "cross_border")
            }
        confirmed = {r.cid for r in results if r.cid}
        lost = sorted(confirmed - held)
        lost += [cid for cid in cids if len(cases[cid]) == 0 or len(investigations[cid]) == 0]
        lost += [r.cid for r in results if r.case_id and r.cid and r.cid not in cases]
        duplicated = [cid for cid in cids if len(cases[cid]) > 1 or len(investigations[cid]) > 1]
        return {
            "referrals": len(cids),
            "lost": lost,
            "duplicated": duplicated,
            "diverged": diverged,
            "outbox_pending": {n: h["outbox_pending"] for n, h in health.items()},
            "bus": chaos.settled(chaos.concord_queues()),
        }

    def converged(state: dict[str, Any]) -> bool:
        return (
            not state["lost"]
            and not state["duplicated"]
            and not state["diverged"]
            and not any(state["outbox_pending"].values())
            and not state["bus"]
        )

    state: dict[str, Any] = {}
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        state = check()
        if converged(state):
            # RabbitMQ's counts lag a few seconds: settled twice, some seconds apart.
            time.sleep(6)
            state = check()
            if converged(state):
                break
        time.sleep(3)

    parked_now = parked(system)
    parked_ids = {p["event_id"]: p for p in parked_now}
    poison_parked = {mid for mid in faults.poison if mid in parked_ids}
    unexplained = sorted(set(parked_ids) - set(faults.poison))
    tap.delete()

    summary = (
        f"fault: {state.get('referrals', 0)} referrals, {len(faults.kills)} kills, "
        f"{faults.broker_restarts} broker restart, {faults.database_restarts} database restart, "
        f"{faults.delivered_twice} delivered twice, {faults.held_and_reordered} held and "
        f"delivered in reverse: lost {len(state.get('lost', []))}, duplicated "
        f"{len(state.get('duplicated', []))}, diverged {len(state.get('diverged', {}))}, "
        f"parked {len(poison_parked)} of {len(faults.poison)} poison, replayed {replayed} fixed"
    )
    SUMMARIES.append(summary)
    chaos.write_artifact(
        "fault-summary.json",
        {
            "summary": summary,
            "requested": count,
            "kills": faults.kills,
            "state": {k: v if not isinstance(v, dict) else v for k, v in state.items()},
            "parked": parked_now,
        },
    )

    assert len(state["lost"]) == 0, state["lost"][:10]
    assert len(state["duplicated"]) == 0, state["duplicated"][:10]
    assert not state["diverged"], list(state["diverged"].items())[:10]
    assert not any(state["outbox_pending"].values()), state["outbox_pending"]
    assert not state["bus"], state["bus"]
    assert state["referrals"] >= count + 1
    assert poison_parked == set(faults.poison), "poison not parked"
    assert not unexplained, [parked_ids[i] for i in unexplained]
    for message_id in faults.poison:
        assert parked_ids[message_id]["reason"].startswith("InvalidEvent"), parked_ids[message_id]
    assert len(faults.kills) >= 9 and faults.broker_restarts and faults.database_restarts
