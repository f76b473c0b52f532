"""Failed sign-ins slow down whoever repeats them (per user name at an address, per client
address, per user name across addresses it never signed in from) without locking a worker
out where they signed in before, the refusal is a 429 with Retry-After, and the session
cookie is Secure behind a TLS proxy."""

import datetime as dt
import threading

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from gateway import errors, i18n, pages, web
from gateway.auth import Tokens
from gateway.signin_limits import REMEMBER_ADDRESS_FOR, SignInLimits
from gateway.web import exchange_for

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
OFFICE = "192.0.2.10"
ELSEWHERE = "198.51.100.7"
BOTNET = [f"203.0.113.{n}" for n in range(1, 60)]
TOKENS = Tokens("k" * 64)


def seconds(n: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=n)


def fail(limits: SignInLimits, times: int, name="social", address=OFFICE, at=T0) -> None:
    for _ in range(times):
        limits.failed(name, address, at)


def test_five_failures_are_free_then_the_name_waits_longer_after_each():
    limits = SignInLimits()
    fail(limits, 4)
    assert limits.check("social", OFFICE, T0) is None
    fail(limits, 1)
    refusal = limits.check("social", OFFICE, T0)
    assert (refusal.kind, refusal.failures, refusal.retry_after_seconds) == (
        "user_at_address",
        5,
        30,
    )
    assert limits.check("social", OFFICE, seconds(29)).retry_after_seconds == 1
    assert limits.check("social", OFFICE, seconds(30)) is None
    limits.failed("social", OFFICE, seconds(30))
    assert limits.check("social", OFFICE, seconds(30)).retry_after_seconds == 60
    fail(limits, 20, at=seconds(31))
    assert limits.check("social", OFFICE, seconds(31)).retry_after_seconds == 15 * 60


def test_attempts_for_one_name_take_turns_and_a_flood_runs_out_of_time():
    limits = SignInLimits(turn_timeout=0.2)
    with limits.turn("social", OFFICE, T0) as first:
        assert first
        # The same name from elsewhere, or another name from the same address, waits ...
        with limits.turn("Social", ELSEWHERE, T0) as second:
            assert not second
        with limits.turn("police", OFFICE, T0) as third:
            assert not third
        # ... another name from another address does not.
        with limits.turn("police", ELSEWHERE, T0) as fourth:
            assert fourth
    with limits.turn("social", ELSEWHERE, T0) as after:
        assert after  # the first one's turn is over


def test_guesses_from_elsewhere_do_not_hold_up_the_turn_where_the_name_signed_in():
    limits = SignInLimits(turn_timeout=0.2)
    limits.succeeded("social", OFFICE, T0)
    with limits.turn("social", ELSEWHERE, T0) as guess:
        assert guess
        with limits.turn("social", BOTNET[0], T0) as another_guess:
            assert not another_guess, "guesses from new addresses still take turns"
        with limits.turn("social", OFFICE, T0) as worker:
            assert worker


def test_guesses_sent_at_once_are_checked_one_after_another():
    """Eight guesses side by side: each is checked, and its failure counted, before the next
    is let through, so only five are checked before the name must wait."""
    limits = SignInLimits()
    checked: list[bool] = []

    def guess() -> None:
        with limits.turn("social", OFFICE, T0) as ours:
            assert ours
            if limits.check("social", OFFICE, T0) is None:
                checked.append(True)
                limits.failed("social", OFFICE, T0)

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(checked) == 5
    limits.succeeded("social", OFFICE, T0)  # then the right password, after the wait
    assert limits.check("social", OFFICE, T0) is None


def test_the_name_waits_from_any_new_address_and_in_any_spelling():
    limits = SignInLimits()
    fail(limits, 5, name="Social ")
    refusal = limits.check("SOCIAL", ELSEWHERE, T0)
    assert refusal is not None and refusal.kind == "user"
    assert limits.check("supervisor", ELSEWHERE, T0) is None


def test_guessing_one_name_from_many_addresses_stays_slow():
    """Each guess from a new address, as soon as it is let through: twelve in the first hour
    (five, then after 30 s, 1, 2, 4, 8 minutes and every 15), as from one address."""
    limits = SignInLimits()
    guesses, now, addresses = 0, T0, iter(BOTNET)
    while now < T0 + dt.timedelta(hours=1):
        address = next(addresses)
        refusal = limits.check("social", address, now)
        if refusal is None:
            limits.failed("social", address, now)
            guesses += 1
        else:
            assert refusal.kind == "user"
            now += dt.timedelta(seconds=refusal.retry_after_seconds)
    assert guesses == 12


def test_failures_elsewhere_do_not_lock_the_worker_out_where_they_signed_in():
    limits = SignInLimits()
    limits.succeeded("social", OFFICE, T0)
    for index, address in enumerate([ELSEWHERE, *BOTNET]):
        limits.failed(" Social", address, seconds(index))
    assert limits.check("social", ELSEWHERE, seconds(60)) is not None
    assert limits.check("social", OFFICE, seconds(60)) is None
    # Their own mistypes there count there (five free), not against the name elsewhere.
    fail(limits, 4, at=seconds(60))
    assert limits.check("social", OFFICE, seconds(60)) is None
    fail(limits, 1, at=seconds(60))
    assert limits.check("social", OFFICE, seconds(60)).kind == "user_at_address"
    assert limits.check("social", ELSEWHERE, seconds(60)).failures == len(BOTNET) + 1


def test_an_address_is_remembered_for_thirty_days_after_the_last_success_there():
    limits = SignInLimits()
    limits.succeeded("social", OFFICE, T0)
    later = T0 + REMEMBER_ADDRESS_FOR
    assert limits.signed_in_from("SOCIAL", OFFICE, later - dt.timedelta(seconds=1))
    assert not limits.signed_in_from("social", OFFICE, later)
    assert not limits.signed_in_from("police", OFFICE, T0), "an address is one name's"
    for address in BOTNET[:5]:
        limits.failed("social", address, later)
    assert limits.check("social", OFFICE, later).kind == "user"


def test_one_address_trying_many_names_waits_after_twenty():
    limits = SignInLimits()
    for index in range(20):
        limits.failed(f"guess{index}", OFFICE, T0)
    refusal = limits.check("someone-new", OFFICE, T0)
    assert refusal is not None and refusal.kind == "address"
    assert limits.check("someone-new", ELSEWHERE, T0) is None


def test_a_successful_sign_in_clears_the_counts_at_its_address_only():
    limits = SignInLimits()
    fail(limits, 4)
    fail(limits, 4, address=ELSEWHERE)
    limits.succeeded("social", OFFICE, T0)
    fail(limits, 4)
    assert limits.check("social", OFFICE, T0) is None
    # The name's failures from addresses it never signed in from stay (an attacker's, maybe):
    # one more from a new address and the name waits there.
    limits.failed("social", BOTNET[0], T0)
    assert limits.check("social", BOTNET[1], T0).kind == "user"


def test_a_success_takes_only_its_own_failures_off_the_address_count():
    """Someone with an account of their own, guessing other people's names from one address,
    cannot sign in between guesses to start the address's count afresh."""
    limits = SignInLimits()
    for index in range(19):
        limits.failed(f"guess{index}", OFFICE, T0)
    limits.succeeded("insider", OFFICE, T0)
    limits.failed("guess19", OFFICE, T0)
    refusal = limits.check("someone-new", OFFICE, T0)
    assert (refusal.kind, refusal.failures) == ("address", 20)


def test_a_success_takes_its_own_mistypes_off_the_address_count():
    limits = SignInLimits()
    fail(limits, 4, name="Social")
    for index in range(15):
        limits.failed(f"guess{index}", OFFICE, T0)
    limits.succeeded(" social", OFFICE, T0)  # any spelling: the same name's failures
    for index in range(4):
        limits.failed(f"more{index}", OFFICE, T0)
    assert limits.check("someone-new", OFFICE, T0) is None, "15 + 4 of other names"
    limits.failed("more4", OFFICE, T0)
    assert limits.check("someone-new", OFFICE, T0).failures == 20


def test_a_success_takes_nothing_off_the_address_for_failures_already_forgotten():
    """The name's failures an hour ago are forgotten; the address's count started again
    since with other names' failures, which all stay."""
    limits = SignInLimits()
    fail(limits, 4)
    later = T0 + dt.timedelta(hours=2)
    for index in range(19):
        limits.failed(f"guess{index}", OFFICE, later)
    limits.succeeded("social", OFFICE, later)
    limits.failed("guess19", OFFICE, later)
    assert limits.check("someone-new", OFFICE, later).failures == 20


def test_failures_long_ago_are_forgotten():
    limits = SignInLimits()
    fail(limits, 5)
    later = T0 + dt.timedelta(hours=1)
    assert limits.check("social", OFFICE, later) is None
    limits.failed("social", OFFICE, later)
    assert limits.check("social", OFFICE, later) is None, "the count started again at one"


def test_memory_stays_bounded_whatever_is_sent(monkeypatch):
    monkeypatch.setattr("gateway.signin_limits.MAX_TRACKED", 100)
    limits = SignInLimits()
    for index in range(500):
        limits.failed(f"name{index}", f"10.0.{index // 250}.{index % 250}", T0)
        limits.succeeded(f"name{index}", f"10.1.{index // 250}.{index % 250}", T0)
    assert limits.tracked() <= 100
    assert limits.signed_in_from("name499", "10.1.1.249", T0)
    assert not limits.signed_in_from("name0", "10.1.0.0", T0), "the stalest was dropped"


def request(headers=None, secure=False) -> Request:
    builder = EnvironBuilder(
        path="/signin",
        base_url="https://gw.example" if secure else "http://gw.example",
        headers=headers or {},
        environ_base={"REMOTE_ADDR": "10.1.1.1"},
    )
    return Request(builder.get_environ())


def test_the_client_address_is_the_peer_unless_trusted_proxies_say_otherwise(monkeypatch):
    forwarded = {"X-Forwarded-For": "203.0.113.9, 192.0.2.44"}
    monkeypatch.delenv("CONCORD_TRUSTED_PROXIES", raising=False)
    assert web.client_address(request(forwarded)) == "10.1.1.1"
    monkeypatch.setenv("CONCORD_TRUSTED_PROXIES", "1")
    assert web.client_address(request(forwarded)) == "192.0.2.44"
    monkeypatch.setenv("CONCORD_TRUSTED_PROXIES", "2")
    assert web.client_address(request(forwarded)) == "203.0.113.9"
    assert web.client_address(request()) == "10.1.1.1", "no header: the peer"
    monkeypatch.setenv("CONCORD_TRUSTED_PROXIES", "many")
    with pytest.raises(RuntimeError):
        web.client_address(request())


@pytest.mark.parametrize(
    ("setting", "secure_request", "secure_cookie"),
    [
        (None, False, False),
        (None, True, True),
        ("true", False, True),  # behind a proxy that terminates TLS
        ("false", True, False),
    ],
)
def test_the_session_cookie_is_secure_where_configured(
    monkeypatch, setting, secure_request, secure_cookie
):
    if setting is None:
        monkeypatch.delenv("CONCORD_COOKIE_SECURE", raising=False)
    else:
        monkeypatch.setenv("CONCORD_COOKIE_SECURE", setting)
    response = Response()
    web.set_cookie(response, request(secure=secure_request), "concord_session", "t", 60)
    header = response.headers["Set-Cookie"]
    assert ("; Secure" in header) == secure_cookie
    assert "HttpOnly" in header and "SameSite=Strict" in header


def test_behind_trusted_proxies_the_cookie_is_secure_when_the_client_used_https(monkeypatch):
    monkeypatch.delenv("CONCORD_COOKIE_SECURE", raising=False)

    def cookie(headers) -> str:
        response = Response()
        web.set_cookie(response, request(headers), "concord_session", "t", 60)
        return response.headers["Set-Cookie"]

    https = {"X-Forwarded-Proto": "https"}
    monkeypatch.delenv("CONCORD_TRUSTED_PROXIES", raising=False)
    assert "; Secure" not in cookie(https), "no trusted proxy: the client's own word"
    monkeypatch.setenv("CONCORD_TRUSTED_PROXIES", "1")
    assert "; Secure" in cookie(https)
    assert "; Secure" not in cookie({"X-Forwarded-Proto": "https, http"})  # the proxy's: http
    assert "; Secure" not in cookie({})


def test_a_wrong_cookie_setting_is_refused(monkeypatch):
    monkeypatch.setenv("CONCORD_COOKIE_SECURE", "maybe")
    with pytest.raises(RuntimeError):
        web.set_cookie(Response(), request(), "concord_session", "t", 60)


def test_the_api_refusal_is_429_with_retry_after():
    ex = exchange_for(request())
    response = web.error_response(errors.too_many_attempts(42), ex)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "42"
    assert response.get_json()["error"]["code"] == "too_many_attempts"


def test_the_signin_page_says_to_wait_and_keeps_the_name_typed():
    token = TOKENS.new_csrf_token()
    builder = EnvironBuilder(
        path="/signin",
        method="POST",
        data={"username": "social", "password": "a guess", "csrf_token": token},
        headers={"Cookie": f"{pages.CSRF_COOKIE}={token}", "Accept-Language": "fr"},
    )
    ex = exchange_for(Request(builder.get_environ()))

    def refused(username, password, address):
        raise errors.too_many_attempts(30)

    response = pages.signin(ex, TOKENS, refused)
    html = response.get_data(as_text=True)
    assert response.status_code == 429 and response.headers["Retry-After"] == "30"
    message = i18n.TRANSLATIONS["fr"].gettext(errors.too_many_attempts(1).problem.message)
    assert message in html and 'value="social"' in html
    assert "a guess" not in html
