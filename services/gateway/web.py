"""HTTP plumbing: the `route` entrypoint, one request's exchange, JSON in and out, headers.

nameko's own `@http` answers an unmatched path with werkzeug's HTML page and a worker's
exception with its text; `route` is the same entrypoint on a server of our own that
answers both in JSON, adds the security headers and logs each request (method, route
template, status, duration: never a body, a name or a token).
"""

from __future__ import annotations

import json
import re
import time
import traceback
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from eventlet import wsgi
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer, WsgiApp
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from gateway import errors, i18n, settings
from gateway.auth import Principal

MAX_JSON_BYTES = 256 * 1024
MAX_FORM_BYTES = 16 * 1024
# A client that stops sending mid-request does not hold a connection for ever.
SOCKET_TIMEOUT_SECONDS = 60
CORRELATION_HEADER = "X-Correlation-ID"
# Correlation ids travel in AMQP headers and log lines: keep them short and plain.
_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

log = structlog.get_logger("gateway")


@dataclass
class Exchange:
    """What a handler knows of the request it answers."""

    request: Request
    correlation_id: str
    language: str
    language_chosen: bool = False  # `?lang=` given: remember it in a cookie
    principal: Principal | None = None
    csrf_token: str | None = None
    csrf_is_new: bool = False  # set the CSRF cookie on the response

    @property
    def translations(self) -> i18n.Translator:
        return i18n.TRANSLATIONS[self.language]

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)


def exchange_for(request: Request) -> Exchange:
    given = request.headers.get(CORRELATION_HEADER, "")
    correlation_id = given if _CORRELATION_ID.fullmatch(given) else str(uuid.uuid4())
    language, chosen = i18n.negotiate(request)
    return Exchange(request, correlation_id, language, chosen)


def json_response(data: Any, status: int = 200, headers: dict | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status=status, headers=headers, mimetype="application/json")


def error_response(exc: BaseException, ex: Exchange) -> Response:
    problem = errors.problem_for(exc)
    log_failure(exc, problem)
    response = json_response(errors.error_body(problem, ex.translations), problem.status)
    if problem.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="concord"'
    if problem.retry_after is not None:
        response.headers["Retry-After"] = str(problem.retry_after)
    return response


def log_failure(exc: BaseException, problem: errors.Problem) -> None:
    """A fault on our side, logged by its type and frames only: its message may hold data."""
    if problem.expected:
        return
    log.error(
        "request_failed",
        error_type=type(exc).__name__,
        remote_type=getattr(exc, "exc_type", None),
        frames=traceback.format_tb(exc.__traceback__),
    )


def read_json(request: Request) -> Any:
    """The parsed body: 413 past 256 KiB, 400 when it is not JSON."""
    # One byte over the limit is read, not refused: a chunked body has no length to check
    # up front, and werkzeug cuts it at the limit silently rather than raising.
    request.max_content_length = MAX_JSON_BYTES + 1
    try:
        raw = request.get_data()
    except RequestEntityTooLarge:
        raise errors.payload_too_large() from None
    if len(raw) > MAX_JSON_BYTES:
        raise errors.payload_too_large()
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise errors.invalid_json() from None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def read_form(request: Request) -> dict[str, str]:
    request.max_content_length = MAX_FORM_BYTES
    request.max_form_memory_size = MAX_FORM_BYTES
    try:
        return request.form.to_dict()
    except RequestEntityTooLarge:
        raise errors.payload_too_large() from None


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def forwarded(request: Request, header: str) -> str | None:
    """What the outermost trusted proxy wrote in an X-Forwarded-* header (each proxy adds
    its value after the others'); None without trusted proxies or when they wrote none:
    anything before them is the client's own word."""
    hops = settings.trusted_proxies()
    if hops:
        values = [value.strip() for value in request.headers.get(header, "").split(",")]
        values = [value for value in values if value]
        if len(values) >= hops:
            return values[-hops]
    return None


def client_address(request: Request) -> str:
    """The client's address: the peer's, or the one the trusted proxies say they served."""
    return forwarded(request, "X-Forwarded-For") or request.remote_addr or "unknown"


def cookie_is_secure(request: Request) -> bool:
    """Secure as configured; unset, when the request reached the gateway over HTTPS or, behind
    trusted proxies, reached the outermost one over HTTPS (X-Forwarded-Proto)."""
    configured = settings.cookie_secure()
    if configured is not None:
        return configured
    return request.is_secure or forwarded(request, "X-Forwarded-Proto") == "https"


def set_cookie(
    response: Response,
    request: Request,
    name: str,
    value: str,
    max_age: int | None,
    samesite: str = "Strict",
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=cookie_is_secure(request),
        httponly=True,
        samesite=samesite,
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name, path="/", secure=cookie_is_secure(request), httponly=True, samesite="Strict"
    )


_PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def harden(response: Response) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", _PAGE_POLICY)
    # Pages and answers name referrals: no shared or browser cache keeps them.
    headers.setdefault("Cache-Control", "no-store")


class GatewayApp(WsgiApp):
    def __call__(self, environ, start_response):
        started = time.perf_counter()
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            # eventlet decodes chunked bodies and ends the stream itself; saying so lets
            # werkzeug read them under the size limit (else it reads them as empty).
            environ["wsgi.input_terminated"] = True
        request = Request(environ, shallow=True)
        route = "unmatched"
        try:
            provider, values = self.url_map.bind_to_environ(environ).match()
            route = provider.url
            request.path_values = values
            response = provider.handle_request(request)
        except HTTPException as exc:
            response = self._unmatched(request, exc)
        harden(response)
        log.info(
            "http_request",
            method=request.method,
            route=route,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            correlation_id=response.headers.get(CORRELATION_HEADER),
        )
        return response(environ, start_response)

    @staticmethod
    def _unmatched(request: Request, exc: HTTPException) -> Response:
        # Imported here: pages builds on this module.
        from gateway import pages

        ex = exchange_for(request)
        problem = errors.problem_for(exc)
        if request.path.startswith("/api/") or request.path == "/healthz":
            response = json_response(errors.error_body(problem, ex.translations), problem.status)
        else:
            response = pages.error_page(ex, problem)
        response.headers[CORRELATION_HEADER] = ex.correlation_id
        if exc.code == 405:
            response.headers["Allow"] = ", ".join(getattr(exc, "valid_methods", None) or [])
        return response


class GatewayServer(WebServer):
    def get_wsgi_app(self):
        return GatewayApp(self)

    def get_wsgi_server(self, sock, wsgi_app, protocol=HttpOnlyProtocol, debug=False):
        # eventlet's access log prints each path, and paths hold coordination ids: the
        # request log above says what is needed, by route template.
        return wsgi.Server(
            sock,
            sock.getsockname(),
            wsgi_app,
            protocol=protocol,
            debug=False,
            log_output=False,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
        )


class Route(HttpRequestHandler):
    server = GatewayServer()

    def response_from_exception(self, exc):
        # Only reached if a handler let an exception out; still no text of it leaves.
        log_failure(exc, errors.INTERNAL)
        return json_response(
            errors.error_body(errors.INTERNAL, i18n.TRANSLATIONS[i18n.DEFAULT_LANGUAGE]), 500
        )


route = Route.decorator
