"""The gateway's passwords, access tokens and CSRF tokens: pure functions of a key."""

import datetime as dt
import time

import jwt
import pytest

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
