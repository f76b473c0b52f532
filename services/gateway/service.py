"""The gateway service: routes, and who is asking. The work is in api.py and pages.py."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import sqlalchemy as sa
import structlog
from eventlet import tpool
from nameko.rpc import rpc
from werkzeug.wrappers import Request, Response

from concord_contracts import cases as cases_contract
from concord_contracts.codes import Organisation
from concord_kit.db import Database
from concord_kit.errors import Unauthenticated
from concord_kit.identity import Identity
from concord_kit.logging import Logs
from concord_kit.rpc import ServiceCall
from gateway import (
    api,
    auth,
    board_pages,
    case_api,
    case_pages,
    errors,
    hub_api,
    intake_pages,
    openapi,
    pages,
    users,
)
from gateway.auth import Principal
from gateway.settings import Credentials, signin_address_free_failures
from gateway.signin_limits import ADDRESS_POLICY, Policy, SignInLimits
from gateway.web import (
    CORRELATION_HEADER,
    Exchange,
    bearer_token,
    error_response,
    exchange_for,
    json_response,
)
from gateway.web import route as http

HEALTH_TIMEOUT_SECONDS = 2.0


class GatewayService:
    name = "gateway"

    db = Database(publishes=False)
    identity = Identity()
    log = Logs()
    tokens = Credentials()
    # Per process, in memory (docs/operations.md, "Sign-in"): a class attribute, as
    # nameko makes a new service instance for every request.
    signin_limits = SignInLimits(
        address_policy=Policy(signin_address_free_failures(ADDRESS_POLICY.free_failures))
    )

    referral = ServiceCall("referral")
    case_management = ServiceCall("case_management")
    justice_liaison = ServiceCall("justice_liaison")

    # Health answers fast or not at all: a probe of its own with a short timeout.
    referral_probe = ServiceCall("referral", timeout=HEALTH_TIMEOUT_SECONDS)
    case_management_probe = ServiceCall("case_management", timeout=HEALTH_TIMEOUT_SECONDS)
    justice_liaison_probe = ServiceCall("justice_liaison", timeout=HEALTH_TIMEOUT_SECONDS)
    cross_border_probe = ServiceCall("cross_border", timeout=HEALTH_TIMEOUT_SECONDS)

    @rpc
    def health(self) -> dict:
        """What `concord status` asks every service, the gateway included."""
        return api.own_health(self._database_ok())

    # -- API -------------------------------------------------------------------------

    @http("GET", "/healthz")
    def healthz(self, request):
        probes = {
            "referral": self.referral_probe,
            "case_management": self.case_management_probe,
            "justice_liaison": self.justice_liaison_probe,
            "cross_border": self.cross_border_probe,
        }
        return self._api(
            request, lambda ex: api.health(ex, probes, self._database_ok()), public=True
        )

    @http("GET", "/api/v1/openapi.json")
    def openapi_document(self, request):
        return self._api(request, lambda ex: json_response(openapi.document()), public=True)

    @http("POST", "/api/v1/auth/token")
    def issue_token(self, request):
        return self._api(
            request,
            lambda ex: api.issue_token(ex, self.tokens, self._authenticate),
            public=True,
        )

    @http("POST", "/api/v1/referrals")
    def submit_referral(self, request):
        return self._api(request, lambda ex: api.submit_referral(ex, self.referral))

    @http("GET", "/api/v1/intake")
    def intake_queue(self, request):
        return self._api(request, lambda ex: hub_api.intake_queue(ex, self.referral))

    @http("POST", "/api/v1/intake/<coordination_id>/accept")
    def accept_referral(self, request, coordination_id):
        return self._api(
            request,
            lambda ex: api.accept(ex, coordination_id, self._accept),
        )

    @http("GET", "/api/v1/pipeline/<coordination_id>")
    def pipeline_row(self, request, coordination_id):
        return self._api(request, lambda ex: api.pipeline_row(ex, coordination_id, self.referral))

    # -- the referral hub (hub_api.py; referral decides who may) -------------------------

    @http("POST", "/api/v1/referrals:batch")
    def submit_referral_batch(self, request):
        return self._api(request, lambda ex: hub_api.submit_batch(ex, self.referral))

    @http("GET", "/api/v1/referrals/<coordination_id>")
    def referral_detail(self, request, coordination_id):
        return self._api(
            request, lambda ex: hub_api.referral_detail(ex, coordination_id, self.referral)
        )

    @http("POST", "/api/v1/referrals/<coordination_id>/reroute")
    def referral_reroute(self, request, coordination_id):
        return self._decide(request, coordination_id, "reroute")

    @http("POST", "/api/v1/referrals/<coordination_id>/revoke")
    def referral_revoke(self, request, coordination_id):
        return self._decide(request, coordination_id, "revoke")

    @http("POST", "/api/v1/referrals/<coordination_id>/close")
    def referral_close(self, request, coordination_id):
        return self._decide(request, coordination_id, "close")

    @http("POST", "/api/v1/referrals/<coordination_id>/link")
    def referral_link(self, request, coordination_id):
        return self._decide(request, coordination_id, "link")

    @http("POST", "/api/v1/referrals/<coordination_id>/dismiss_duplicate")
    def referral_dismiss_duplicate(self, request, coordination_id):
        return self._decide(request, coordination_id, "dismiss_duplicate")

    def _decide(self, request, coordination_id, decision):
        return self._api(
            request, lambda ex: hub_api.decide(ex, coordination_id, decision, self.referral)
        )

    @http("POST", "/api/v1/intake/<coordination_id>/decline")
    def decline_referral(self, request, coordination_id):
        return self._api(request, lambda ex: hub_api.decline(ex, coordination_id, self.referral))

    @http("GET", "/api/v1/pipeline")
    def pipeline_page(self, request):
        return self._api(request, lambda ex: hub_api.pipeline(ex, self.referral))

    @http("GET", "/api/v1/pipeline/summary")
    def pipeline_summary(self, request):
        return self._api(request, lambda ex: hub_api.pipeline_summary(ex, self.referral))

    @http("GET", "/api/v1/pipeline/version")
    def pipeline_version(self, request):
        return self._api(request, lambda ex: hub_api.pipeline_version(ex, self.referral))

    @http("GET", "/api/v1/reference/<name>")
    def reference_list(self, request, name):
        return self._api(request, lambda ex: api.reference_list(ex, name), public=True)

    # -- social services' cases (case_api.py; case_management decides who may) ---------

    @http("GET", "/api/v1/cases")
    def api_case_list(self, request):
        return self._api(request, lambda ex: case_api.list_cases(ex, self.case_management))

    @http("POST", "/api/v1/cases")
    def api_case_register(self, request):
        return self._api(request, lambda ex: case_api.register(ex, self.case_management))

    @http("GET", "/api/v1/cases/approvals")
    def api_case_approvals(self, request):
        return self._api(request, lambda ex: case_api.approvals(ex, self.case_management))

    @http("GET", "/api/v1/cases/assignees")
    def api_case_assignees(self, request):
        return self._api(request, lambda ex: case_api.assignees(ex, self._social_workers))

    @http("GET", "/api/v1/cases/<case_id>")
    def api_case_record(self, request, case_id):
        return self._api(request, lambda ex: case_api.get_case(ex, case_id, self.case_management))

    @http("PUT", "/api/v1/cases/<case_id>/sections/<section>")
    def api_case_section(self, request, case_id, section):
        return self._api(
            request,
            lambda ex: case_api.update_section(ex, case_id, section, self.case_management),
        )

    @http("POST", "/api/v1/cases/<case_id>/assignment")
    def api_case_assignment(self, request, case_id):
        return self._api(
            request,
            lambda ex: case_api.assign(ex, case_id, self.case_management, self._social_workers),
        )

    @http("GET", "/api/v1/cases/<case_id>/assessments")
    def api_case_assessments(self, request, case_id):
        return self._api(
            request,
            lambda ex: case_api.write(
                ex, case_id, self.case_management.list_assessments, None, versioned=False
            ),
        )

    @http("POST", "/api/v1/cases/<case_id>/assessments")
    def api_case_assessment(self, request, case_id):
        return self._api(
            request,
            lambda ex: case_api.write(
                ex,
                case_id,
                self.case_management.record_assessment,
                cases_contract.AssessmentSubmissionSchema(),
                status=201,
            ),
        )

    @http("PUT", "/api/v1/cases/<case_id>/plan")
    def api_case_plan(self, request, case_id):
        return self._api(
            request,
            lambda ex: case_api.write(
                ex,
                case_id,
                self.case_management.save_plan,
                cases_contract.PlanSubmissionSchema(),
            ),
        )

    @http("POST", "/api/v1/cases/<case_id>/plan/submit")
    def api_case_plan_submit(self, request, case_id):
        return self._api(
            request,
            lambda ex: case_api.write(ex, case_id, self.case_management.submit_plan, None),
        )

    @http("POST", "/api/v1/cases/<case_id>/plan/approve")
    def api_case_plan_approve(self, request, case_id):
        return self._api(
            request,
            lambda ex: case_api.write(
                ex,
                case_id,
                self.case_management.approve_plan,
                cases_contract.CommentSchema(),
                body_optional=True,
            ),
        )

    @http("POST", "/api/v1/cases/<case_id>/plan/return")
    def api_case_plan_return(self, request, case_id):
        return self._api(
            request,
            lambda ex: case_api.write(
                ex, case_id, self.case_management.return_plan, cases_contract.ReasonSchema()
            ),
        )

    @http("PATCH", "/api/v1/cases/<case_id>/services/<service_id>")
    def api_case_service(self, request, case_id, service_id):
        return self._api(
            request,
            lambda ex: case_api.write(
                ex,
                case_id,
                self.case_management.update_service,
                cases_contract.ServiceUpdateSchema(),
                ("service_id", service_id),
            ),
        )

    @http("POST", "/api/v1/cases/<case_id>/follow-ups")
    def api_case_follow_up(self, request, case_id):
        return self._api(
            request,
            lambda ex: case_api.write(
                ex,
                case_id,
                self.case_management.schedule_follow_up,
                cases_contract.FollowUpRequestSchema(),
                status=201,
            ),
        )

    @http("POST", "/api/v1/cases/<case_id>/follow-ups/<follow_up_id>/record")
    def api_case_follow_up_record(self, request, case_id, follow_up_id):
        return self._api(
            request,
            lambda ex: case_api.write(
                ex,
                case_id,
                self.case_management.record_follow_up,
                cases_contract.FollowUpOutcomeSchema(),
                ("follow_up_id", follow_up_id),
            ),
        )

    @http("POST", "/api/v1/cases/<case_id>/follow-ups/<follow_up_id>/cancel")
    def api_case_follow_up_cancel(self, request, case_id, follow_up_id):
        return self._api(
            request,
            lambda ex: case_api.write(
                ex,
                case_id,
                self.case_management.cancel_follow_up,
                cases_contract.ReasonSchema(),
                ("follow_up_id", follow_up_id),
            ),
        )

    @http("GET", "/api/v1/cases/<case_id>/notes")
    def api_case_notes(self, request, case_id):
        return self._api(request, lambda ex: case_api.list_notes(ex, case_id, self.case_management))

    @http("POST", "/api/v1/cases/<case_id>/notes")
    def api_case_note(self, request, case_id):
        return self._api(
            request,
            lambda ex: case_api.write(
                ex,
                case_id,
                self.case_management.add_note,
                cases_contract.NoteInputSchema(),
                status=201,
                versioned=False,
            ),
        )

    @http("POST", "/api/v1/cases/<case_id>/closure")
    def api_case_closure(self, request, case_id):
        return self._api(
            request,
            lambda ex: case_api.write(
                ex,
                case_id,
                self.case_management.request_closure,
                cases_contract.ClosureRequestSchema(),
            ),
        )

    @http("POST", "/api/v1/cases/<case_id>/closure/approve")
    def api_case_closure_approve(self, request, case_id):
        return self._api(
            request,
            lambda ex: case_api.write(
                ex,
                case_id,
                self.case_management.approve_closure,
                cases_contract.CommentSchema(),
                body_optional=True,
            ),
        )

    @http("POST", "/api/v1/cases/<case_id>/closure/reject")
    def api_case_closure_reject(self, request, case_id):
        return self._api(
            request,
            lambda ex: case_api.write(
                ex, case_id, self.case_management.reject_closure, cases_contract.ReasonSchema()
            ),
        )

    @http("POST", "/api/v1/cases/<case_id>/reopen")
    def api_case_reopen(self, request, case_id):
        return self._api(
            request,
            lambda ex: case_api.write(
                ex,
                case_id,
                self.case_management.reopen_case,
                cases_contract.ReasonSchema(),
            ),
        )

    # -- pages -----------------------------------------------------------------------

    @http("GET", "/")
    def waiting_list_page(self, request):
        return self._page(request, lambda ex: pages.waiting_list(ex, self.referral.intake_queue))

    @http("GET", "/signin")
    def signin_page(self, request):
        return self._page(request, pages.signin_form, public=True)

    @http("POST", "/signin")
    def signin(self, request):
        return self._page(
            request,
            lambda ex: pages.signin(ex, self.tokens, self._authenticate),
            public=True,
        )

    @http("POST", "/signout")
    def signout(self, request):
        return self._page(
            request, lambda ex: pages.signout(ex, self.tokens, self._revoke), public=True
        )

    @http("POST", "/intake/<coordination_id>/accept")
    def accept_page(self, request, coordination_id):
        return self._page(
            request, lambda ex: pages.accept(ex, self.tokens, coordination_id, self._accept)
        )

    @http("POST", "/intake/<coordination_id>/decline")
    def decline_page(self, request, coordination_id):
        return self._page(
            request,
            lambda ex: intake_pages.decline(
                ex, self.tokens, coordination_id, self.referral.decline
            ),
        )

    # -- the intake officer's pages (intake_pages.py) ----------------------------------

    @http("GET", "/referrals/new")
    def referral_form_page(self, request):
        return self._page(request, intake_pages.new_referral_form)

    @http("POST", "/referrals/new")
    def referral_form_submit(self, request):
        return self._page(
            request,
            lambda ex: intake_pages.submit_referral_form(
                ex, self.tokens, self.referral.submit_referral
            ),
        )

    @http("GET", "/referrals")
    def referral_list_page(self, request):
        return self._page(request, lambda ex: intake_pages.worklist(ex, self.referral))

    @http("GET", "/referrals/<coordination_id>")
    def referral_detail_page(self, request, coordination_id):
        return self._page(
            request,
            lambda ex: intake_pages.detail_page(
                ex, coordination_id, self.referral.referral_detail, self._display_names
            ),
        )

    @http("POST", "/referrals/<coordination_id>/<action>")
    def referral_action(self, request, coordination_id, action):
        if action not in intake_pages.ACTION_NOTICES:
            return self._page(request, lambda ex: pages.error_page(ex, errors.not_found().problem))
        return self._page(
            request,
            lambda ex: intake_pages.act(
                ex, self.tokens, coordination_id, action, self.referral, self._display_names
            ),
        )

    @http("GET", "/referrals/<coordination_id>/receipt")
    def referral_receipt_page(self, request, coordination_id):
        return self._page(
            request,
            lambda ex: intake_pages.receipt(ex, coordination_id, self.referral.pipeline_row),
        )

    # -- the coordinators' pipeline (board_pages.py) ----------------------------------

    @http("GET", "/pipeline")
    def pipeline_board_page(self, request):
        return self._page(request, lambda ex: board_pages.board(ex, self.referral))

    @http("GET", "/pipeline/version.json")
    def pipeline_board_version(self, request):
        return self._page(
            request, lambda ex: board_pages.version(ex, self.referral.pipeline_version)
        )

    @http("GET", "/pipeline/<coordination_id>")
    def pipeline_row_page(self, request, coordination_id):
        return self._page(
            request,
            lambda ex: board_pages.pipeline_row_page(
                ex, coordination_id, self.referral.pipeline_row
            ),
        )

    # -- social services' case pages (case_pages.py) -----------------------------------

    @http("GET", "/cases")
    def my_cases_page(self, request):
        return self._page(request, lambda ex: case_pages.my_cases(ex, self._case_desk()))

    @http("GET", "/cases/new")
    def case_registration_page(self, request):
        return self._page(request, lambda ex: case_pages.registration_page(ex, self._case_desk()))

    @http("POST", "/cases/new")
    def case_registration_submit(self, request):
        return self._page(request, lambda ex: case_pages.register(ex, self._case_desk()))

    @http("GET", "/cases/<case_id>")
    def case_detail_page(self, request, case_id):
        return self._page(request, lambda ex: case_pages.case_page(ex, self._case_desk(), case_id))

    @http("GET", "/cases/<case_id>/<form>")
    def case_form_page(self, request, case_id, form):
        return self._page(
            request, lambda ex: case_pages.form_page(ex, self._case_desk(), case_id, form)
        )

    @http("POST", "/cases/<case_id>/<form>")
    def case_form_submit(self, request, case_id, form):
        return self._page(
            request, lambda ex: case_pages.form_submit(ex, self._case_desk(), case_id, form)
        )

    @http("POST", "/cases/<case_id>/plan/submit")
    def case_plan_submit(self, request, case_id):
        return self._page(
            request, lambda ex: case_pages.submit_plan(ex, self._case_desk(), case_id)
        )

    @http("GET", "/cases/<case_id>/services/<service_id>")
    def case_service_page(self, request, case_id, service_id):
        return self._page(
            request,
            lambda ex: case_pages.item_page(ex, self._case_desk(), case_id, service_id, "service"),
        )

    @http("POST", "/cases/<case_id>/services/<service_id>")
    def case_service_submit(self, request, case_id, service_id):
        return self._page(
            request,
            lambda ex: case_pages.item_submit(
                ex, self._case_desk(), case_id, service_id, "service"
            ),
        )

    @http("GET", "/cases/<case_id>/follow-ups/<follow_up_id>/<action>")
    def case_follow_up_page(self, request, case_id, follow_up_id, action):
        return self._page(
            request,
            lambda ex: case_pages.item_page(
                ex, self._case_desk(), case_id, follow_up_id, case_pages.follow_up_action(action)
            ),
        )

    @http("POST", "/cases/<case_id>/follow-ups/<follow_up_id>/<action>")
    def case_follow_up_submit(self, request, case_id, follow_up_id, action):
        return self._page(
            request,
            lambda ex: case_pages.item_submit(
                ex, self._case_desk(), case_id, follow_up_id, case_pages.follow_up_action(action)
            ),
        )

    @http("GET", "/approvals")
    def approvals_page(self, request):
        return self._page(request, lambda ex: case_pages.approvals(ex, self._case_desk()))

    @http("GET", "/approvals/<case_id>/<kind>")
    def approval_decision_page(self, request, case_id, kind):
        return self._page(
            request, lambda ex: case_pages.decision_page(ex, self._case_desk(), case_id, kind)
        )

    @http("POST", "/approvals/<case_id>/<kind>/<decision>")
    def approval_decide(self, request, case_id, kind, decision):
        return self._page(
            request,
            lambda ex: case_pages.decide(ex, self._case_desk(), case_id, kind, decision),
        )

    @http("GET", "/static/<name>")
    def static(self, request, name):
        return pages.static_file(name) or self._page(
            request, lambda ex: pages.error_page(ex, errors.not_found().problem), public=True
        )

    # -- how every request is answered -------------------------------------------------

    def _api(
        self, request: Request, handler: Callable[[Exchange], Response], public: bool = False
    ) -> Response:
        ex = self._begin(request)
        try:
            if not public:
                self._sign_in(ex, bearer_token(request))
            response = handler(ex)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON error
            response = error_response(exc, ex)
        response.headers[CORRELATION_HEADER] = ex.correlation_id
        return response

    def _page(
        self, request: Request, handler: Callable[[Exchange], Response], public: bool = False
    ) -> Response:
        ex = self._begin(request)
        try:
            pages.prepare(ex, self.tokens)
            try:
                self._sign_in(ex, request.cookies.get(pages.SESSION_COOKIE))
            except Unauthenticated:
                if not public:
                    raise
            response = handler(ex)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a page
            response = pages.failure(ex, exc)
        response.headers[CORRELATION_HEADER] = ex.correlation_id
        return pages.finish(ex, response)

    def _begin(self, request: Request) -> Exchange:
        ex = exchange_for(request)
        self.identity.follow(ex.correlation_id)
        structlog.contextvars.bind_contextvars(correlation_id=ex.correlation_id)
        return ex

    def _sign_in(self, ex: Exchange, token: str | None) -> None:
        """Make the token's person the caller of every RPC this request makes."""
        if not token:
            raise Unauthenticated("no token")
        claims = self.tokens.read(token)
        with self.db.read() as session:
            principal = users.principal_for(session, claims)
        if principal is None:
            raise Unauthenticated("signed out, or the account is inactive")
        ex.principal = principal
        self.identity.act_as(principal.caller, ex.correlation_id)

    def _accept(self, principal: Principal, coordination_id: str) -> dict:
        return api.accept_referral(
            principal, coordination_id, self.case_management, self.justice_liaison
        )

    def _social_workers(self, agency: Organisation) -> list[users.Assignee]:
        with self.db.read() as session:
            return users.assignable_social_workers(session, agency)

    def _display_names(self, user_ids: list[str]) -> dict[str, str]:
        with self.db.read() as session:
            return users.display_names(session, user_ids)

    def _case_desk(self) -> case_pages.Desk:
        return case_pages.Desk(
            cases=self.case_management,
            tokens=self.tokens,
            display_names=lambda ids: self._display_names(list(ids)),
            assignees=self._assignees,
        )

    def _assignees(self, agency: Organisation) -> list[dict]:
        """The active social workers of an agency (the signed-in supervisor's)."""
        return [
            {"user_id": a.user_id, "display_name": a.display_name, "username": a.username}
            for a in self._social_workers(agency)
        ]

    def _authenticate(self, username: str, password: str, address: str) -> users.Account | None:
        """The active account these credentials open, or None; 429 (too_many_attempts)
        without checking the password while a count this attempt falls under waits after
        failures (gateway.signin_limits)."""
        started = time.monotonic()
        limits = self.signin_limits
        with limits.turn(username, address, dt.datetime.now(dt.UTC)) as ours:
            if not ours:  # a flood of attempts under one of its counts: not its turn yet
                raise errors.too_many_attempts(1)
            refusal = limits.check(username, address, dt.datetime.now(dt.UTC))
            if refusal is not None:
                # Neither the name nor the address is logged: which count, how many, how long.
                self.log.warning(
                    "signin_refused",
                    limit=refusal.kind,
                    failures=refusal.failures,
                    retry_after_seconds=refusal.retry_after_seconds,
                )
                raise errors.too_many_attempts(refusal.retry_after_seconds)
            with self.db.read() as session:
                account = users.find_active(session, username)
            # The hash is checked for an unknown username too (against a dummy); argon2
            # holds the CPU for tens of milliseconds, so it runs in a thread, off the event
            # loop.
            stored = account.password_hash if account else None
            verified = tpool.execute(auth.verify_password, stored, password)
            if verified and account is not None:
                limits.succeeded(username, address, dt.datetime.now(dt.UTC))
            else:
                limits.failed(username, address, dt.datetime.now(dt.UTC))
        if not verified or account is None:
            # Answered no sooner than the floor, so an old, slower hash does not tell that
            # the name exists; after the turn, so the wait holds up no other attempt.
            auth.answer_failure_no_sooner(started)
            return None
        # A hash made with older parameters is replaced while the password is at hand.
        new_hash = tpool.execute(auth.rehashed, account.password_hash, password)
        if new_hash is not None:
            with self.db.unit_of_work() as uow:
                users.replace_password_hash(uow.session, account.id, new_hash)
        return account

    def _revoke(self, jti: str, expires_at) -> None:
        with self.db.unit_of_work() as uow:
            users.revoke(uow.session, jti, expires_at)

    def _database_ok(self) -> bool:
        try:
            with self.db.read() as session:
                session.execute(sa.text("SELECT 1"))
        except Exception:  # noqa: BLE001 - health reports, it does not raise
            return False
        return True
