"""The gateway service: routes, and who is asking. The work is in api.py and pages.py."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
import structlog
from eventlet import tpool
from nameko.rpc import rpc
from werkzeug.wrappers import Request, Response

from concord_kit.db import Database
from concord_kit.errors import Unauthenticated
from concord_kit.identity import Identity
from concord_kit.logging import Logs
from concord_kit.rpc import ServiceCall
from gateway import api, auth, errors, openapi, pages, users
from gateway.auth import Principal
from gateway.settings import Credentials
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
        return self._api(request, lambda ex: api.intake_queue(ex, self.referral))

    @http("POST", "/api/v1/intake/<coordination_id>/accept")
    def accept_referral(self, request, coordination_id):
        return self._api(
            request,
            lambda ex: api.accept(ex, coordination_id, self._accept),
        )

    @http("GET", "/api/v1/pipeline/<coordination_id>")
    def pipeline_row(self, request, coordination_id):
        return self._api(request, lambda ex: api.pipeline_row(ex, coordination_id, self.referral))

    @http("GET", "/api/v1/reference/<name>")
    def reference_list(self, request, name):
        return self._api(request, lambda ex: api.reference_list(ex, name), public=True)

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

    def _authenticate(self, username: str, password: str) -> users.Account | None:
        """The active account these credentials open, or None."""
        with self.db.read() as session:
            account = users.find_active(session, username)
        # The hash is checked for an unknown username too (against a dummy), so both
        # answers take as long; argon2 holds the CPU for tens of milliseconds, so it runs
        # in a thread, off the event loop.
        stored = account.password_hash if account else None
        if tpool.execute(auth.verify_password, stored, password) and account is not None:
            return account
        return None

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
