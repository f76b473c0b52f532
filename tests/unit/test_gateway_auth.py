"""The gateway's passwords, access tokens and CSRF tokens: pure functions of a key."""

import datetime as dt
import time

import eventlet
import jwt
import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from eventlet import tpool

from concord_contracts.codes import Organisation, Role
from concord_kit.errors import Unauthenticated
from concord_kit.identity import Caller
from gateway import auth, settings
from gateway.auth import Principal, Tokens

pytestmark = pytest.mark.unit

KEY = "k" * 64
USER_ID = "6f1c8a0e-2b7d-4c1e-9a53-0d2f6b8e4a17"


@pytest.fixture(scope="module")
def stored_hash():
    return auth.hash_password("correct horse battery staple")


def test_a_password_verifies_against_its_hash_only(stored_hash):
    assert stored_hash.startswith("$argon2id$")
    assert auth.verify_password(stored_hash, "correct horse battery staple")
    assert not auth.verify_password(stored_hash, "correct horse battery stapler")
    assert not auth.verify_password("not-a-hash", "anything")


def test_an_unknown_user_is_refused_after_the_same_work_as_a_known_one(stored_hash):
    def slowest_of_fastest(stored):
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            auth.verify_password(stored, "a guess")
            timings.append(time.perf_counter() - started)
        return min(timings)

    auth.warm_up()
    assert not auth.verify_password(None, "a guess")
    known, unknown = slowest_of_fastest(stored_hash), slowest_of_fastest(None)
    # Without the dummy hash an unknown name is answered about a thousand times faster.
    assert unknown > known * 0.3


def test_a_failed_sign_in_is_answered_no_sooner_than_the_floor():
    """However long the check took (an old 64 MiB hash, or the quick dummy), the answer
    waits until the floor after the attempt's start; a check slower than it waits no more."""
    slept: list[float] = []
    floor = auth.FAILED_SIGNIN_FLOOR_SECONDS
    auth.answer_failure_no_sooner(100.0, clock=lambda: 100.02, sleep=slept.append)
    auth.answer_failure_no_sooner(100.0, clock=lambda: 100.2, sleep=slept.append)
    auth.answer_failure_no_sooner(100.0, clock=lambda: 100.0 + floor, sleep=slept.append)
    assert slept == pytest.approx([floor - 0.02, floor - 0.2])


def test_the_floor_is_well_above_the_slowest_hash_still_stored():
    """argon2-cffi's old defaults (64 MiB, 3 passes, 4 lanes): the fastest of three checks
    takes less than half the floor here, so the floor hides it with room to spare."""
    old_hash = PasswordHasher().hash("an older password")
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        assert not auth.verify_password(old_hash, "a guess")
        timings.append(time.perf_counter() - started)
    assert min(timings) < auth.FAILED_SIGNIN_FLOOR_SECONDS / 2


def test_a_token_carries_who_and_expires_in_thirty_minutes():
    tokens = Tokens(KEY)
    issued = tokens.issue(USER_ID, Role.social_worker, Organisation.social_services)
    assert issued.expires_in == 1800

    raw = jwt.decode(issued.access_token, KEY, algorithms=["HS256"], issuer=auth.ISSUER)
    assert raw["exp"] - raw["iat"] == 1800
    assert {"sub", "role", "agency", "jti", "exp", "iat", "iss"} <= raw.keys()
    assert jwt.get_unverified_header(issued.access_token)["alg"] == "HS256"

    claims = tokens.read(issued.access_token)
    assert claims.user_id == USER_ID
    assert claims.role is Role.social_worker
    assert claims.agency is Organisation.social_services
    assert claims.jti == issued.jti
    assert claims.expires_at == issued.expires_at


def test_each_token_has_its_own_jti():
    tokens = Tokens(KEY)
    first = tokens.issue(USER_ID, Role.intake_officer, Organisation.referral_hub)
    second = tokens.issue(USER_ID, Role.intake_officer, Organisation.referral_hub)
    assert first.jti != second.jti


def test_an_expired_token_is_refused():
    tokens = Tokens(KEY)
    issued_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    token = tokens.issue(USER_ID, Role.police_liaison_officer, Organisation.justice, issued_at)
    assert tokens.read(token.access_token, now=issued_at + dt.timedelta(minutes=29))
    with pytest.raises(Unauthenticated):
        tokens.read(token.access_token, now=issued_at + dt.timedelta(minutes=31))
    old = tokens.issue(
        USER_ID,
        Role.police_liaison_officer,
        Organisation.justice,
        dt.datetime.now(dt.UTC) - dt.timedelta(minutes=31),
    )
    with pytest.raises(Unauthenticated):
        tokens.read(old.access_token)


def _claims(**overrides):
    now = dt.datetime.now(dt.UTC)
    claims = {
        "sub": USER_ID,
        "role": "social_worker",
        "agency": "social_services",
        "jti": "abc",
        "iat": now,
        "exp": now + dt.timedelta(minutes=5),
        "iss": auth.ISSUER,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(jwt.encode(_claims(), "x" * 48, algorithm="HS256"), id="another key"),
        pytest.param(jwt.encode(_claims(), KEY, algorithm="HS512"), id="another algorithm"),
        pytest.param(jwt.encode(_claims(), None, algorithm="none"), id="unsigned"),
        pytest.param(jwt.encode(_claims(jti=None), KEY, algorithm="HS256"), id="no jti"),
        pytest.param(jwt.encode(_claims(iss="elsewhere"), KEY, algorithm="HS256"), id="issuer"),
        pytest.param(jwt.encode(_claims(role="superuser"), KEY, algorithm="HS256"), id="role"),
        pytest.param(jwt.encode(_claims(agency="mars"), KEY, algorithm="HS256"), id="agency"),
        pytest.param("not.a.token", id="garbage"),
        pytest.param("", id="empty"),
    ],
)
def test_a_token_not_made_by_this_gateway_is_refused(token):
    with pytest.raises(Unauthenticated):
        Tokens(KEY).read(token)


def test_a_tampered_token_is_refused():
    tokens = Tokens(KEY)
    issued = tokens.issue(USER_ID, Role.social_worker, Organisation.social_services)
    header, payload, signature = issued.access_token.split(".")
    forged = jwt.encode(_claims(role="administrator", agency="system"), "guess" * 10)
    with pytest.raises(Unauthenticated):
        tokens.read(".".join([header, forged.split(".")[1], signature]))


def test_csrf_tokens_are_ours_and_must_match_the_cookie():
    tokens = Tokens(KEY)
    token = tokens.new_csrf_token()
    assert tokens.csrf_token_valid(token)
    assert tokens.csrf_matches(token, token)
    assert not tokens.csrf_matches(token, tokens.new_csrf_token())
    assert not tokens.csrf_matches(token, None)
    assert not tokens.csrf_matches(None, token)
    # A cookie planted by someone else passes the equality check but not the signature.
    planted = "chosen-by-attacker.c2lnbmF0dXJl"
    assert not tokens.csrf_matches(planted, planted)
    assert not Tokens("o" * 48).csrf_token_valid(token)
    assert not tokens.csrf_token_valid("no-dot")


def test_a_csrf_token_cannot_stand_for_an_access_token():
    tokens = Tokens(KEY)
    with pytest.raises(Unauthenticated):
        tokens.read(tokens.new_csrf_token())


def test_the_principal_becomes_the_rpc_caller():
    principal = Principal(
        user_id=USER_ID,
        username="social",
        display_name="Demo social worker",
        role=Role.social_worker,
        agency=Organisation.social_services,
        jti="abc",
        expires_at=dt.datetime.now(dt.UTC),
    )
    assert principal.caller == Caller(USER_ID, Role.social_worker, Organisation.social_services)


def test_the_signing_key_from_the_environment_must_be_long_enough(monkeypatch):
    monkeypatch.setenv(settings.SECRET_KEY_ENV, "s" * 40)
    assert settings.secret_key() == "s" * 40
    monkeypatch.setenv(settings.SECRET_KEY_ENV, "short")
    with pytest.raises(RuntimeError, match="at least 32"):
        settings.secret_key()


def test_passwords_are_hashed_with_owasps_argon2id_minimum(stored_hash):
    parameters = extract_parameters(stored_hash)
    assert parameters.type is Type.ID
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (
        19 * 1024,
        2,
        1,
    )
    assert auth.rehashed(stored_hash, "correct horse battery staple") is None


def test_a_hash_made_with_the_old_defaults_verifies_and_is_rehashed():
    old = PasswordHasher().hash("an older password")  # argon2-cffi's defaults: 64 MiB
    assert extract_parameters(old).memory_cost == 64 * 1024
    assert auth.verify_password(old, "an older password")
    new = auth.rehashed(old, "an older password")
    assert new is not None and new != old
    assert extract_parameters(new).memory_cost == auth.ARGON2_MEMORY_KIB
    assert auth.verify_password(new, "an older password")


def test_argon2_work_waits_while_its_memory_would_exceed_the_budget():
    budget = auth.MemoryBudget(40)
    peak = []
    lock = eventlet.patcher.original("threading").Lock()

    def work(kib):
        def run():
            with lock:
                peak.append(budget.in_use_kib)
            time.sleep(0.05)
            return kib

        return budget.run(kib, run)

    # As the gateway runs it: green threads handing the work to eventlet's OS threads.
    done = list(
        eventlet.GreenPool(8).imap(lambda kib: tpool.execute(work, kib), [19] * 6 + [64, 64])
    )
    assert done == [19] * 6 + [64, 64]
    # Two of 19 fit in 40; a 64 (an old hash) runs alone; nothing is left reserved.
    assert max(peak) == 64 and all(p in (19, 38, 64) for p in peak)
    assert budget.in_use_kib == 0
