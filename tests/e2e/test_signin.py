"""Signing in against the running system: repeated failures are refused for a while (429
with Retry-After, the password not even checked), a success clears the count, an attacker
failing on purpose elsewhere does not lock the worker out where they signed in before, a
failure is answered no sooner than a floor, and a password hashed with argon2-cffi's old
defaults still opens the account and is hashed again with today's parameters."""

import datetime as dt
import json
import time
import urllib.error
import urllib.request
import uuid
from email.message import Message
from pathlib import Path

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher, extract_parameters

from gateway import auth, models
from tests.conftest import database_url

pytestmark = pytest.mark.e2e

TOKEN = "/api/v1/auth/token"


def sign_in(http, username, password):
    return http.request("POST", TOKEN, {"username": username, "password": password})


def sign_in_from(http, address, username, password) -> tuple[int, Message]:
    """The status and headers of a sign-in from `address` as the one proxy the system
    trusts says (tests/e2e/conftest.py sets CONCORD_TRUSTED_PROXIES=1); None: the peer's."""
    headers = {"Content-Type": "application/json"}
    if address is not None:
        headers["X-Forwarded-For"] = address
    request = urllib.request.Request(
        http.base_url + TOKEN,
        data=json.dumps({"username": username, "password": password}).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.headers


@pytest.fixture
def add_account():
    """Accounts of this test's own, straight into the gateway's database: the limits it
    trips must not hold up the seeded users the other tests sign in as."""
    engine = sa.create_engine(database_url("gateway"))
    added = []

    def add(password_hash: str) -> str:
        username = f"signin-{uuid.uuid4().hex[:8]}"
        with engine.begin() as connection:
            connection.execute(
                models.users.insert().values(
                    id=uuid.uuid4(),
                    username=username,
                    password_hash=password_hash,
                    role="social_worker",
                    agency="social_services",
                    display_name="Synthetic Sign-in",
                    active=True,
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
        added.append(username)
        return username

    add.engine = engine
    yield add
    with engine.begin() as connection:
        connection.execute(sa.delete(models.users).where(models.users.c.username.in_(added)))
    engine.dispose()


def test_failed_sign_ins_are_refused_for_a_while_and_a_success_clears_them(
    running_system, add_account
):
    http = running_system.http
    password = "a synthetic password"
    name = add_account(auth.hash_password(password))
    for _ in range(4):
        assert sign_in(http, name, "not the password")[0] == 401
    # A success clears the count: five more failures are answered as failures.
    assert sign_in(http, name, password)[0] == 200
    for _ in range(5):
        assert sign_in(http, name, "not the password")[0] == 401
    status, body = sign_in(http, name, password)
    assert status == 429, "the right password too waits: it is not even checked"
    assert body["error"]["code"] == "too_many_attempts"
    assert name not in str(body)
    # Another person at the same address is not held up by it.
    assert sign_in(http, "police", running_system.password)[0] == 200
    log = Path(running_system.environment["CONCORD_VAR_DIR"]) / "log" / "gateway.log"
    refused = [line for line in log.read_text().splitlines() if "signin_refused" in line]
    assert refused and all(name not in line for line in refused)


def test_the_refusal_says_when_to_come_back(running_system):
    http = running_system.http
    nobody = f"nobody-{uuid.uuid4().hex[:8]}"  # an unknown name is limited the same way
    # From an address of its own: another name's success would not clear these failures
    # from the address's count, and the tests that follow sign in from the peer's.
    address = "192.0.2.23"
    statuses = [sign_in_from(http, address, nobody, "a guess")[0] for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    status, headers = sign_in_from(http, address, nobody, "a guess")
    assert status == 429
    assert 0 < int(headers["Retry-After"]) <= 30


def test_an_attacker_elsewhere_cannot_lock_the_worker_out_where_they_signed_in(
    running_system, add_account
):
    http = running_system.http
    password = "a synthetic password"
    name = add_account(auth.hash_password(password))
    desk = "192.0.2.21"
    assert sign_in_from(http, desk, name, password)[0] == 200
    # Someone fails on purpose with the worker's name, from one address and from many.
    attacker = [sign_in_from(http, "198.51.100.9", name, "a guess")[0] for _ in range(6)]
    assert attacker == [401] * 5 + [429]
    botnet = [sign_in_from(http, f"203.0.113.{n}", name, "a guess")[0] for n in range(1, 4)]
    assert botnet == [429] * 3, "new addresses wait: guessing the name stays slow"
    # The worker, at the desk they signed in from before, is not held up.
    assert sign_in_from(http, desk, name, password)[0] == 200


def test_a_failure_is_answered_no_sooner_than_the_floor(running_system, add_account):
    old = add_account(PasswordHasher().hash("an older password"))  # slow to check
    for name in (old, f"nobody-{uuid.uuid4().hex[:8]}"):
        started = time.monotonic()
        assert sign_in_from(running_system.http, "192.0.2.22", name, "a guess")[0] == 401
        assert time.monotonic() - started >= auth.FAILED_SIGNIN_FLOOR_SECONDS


def test_a_password_hashed_with_the_old_defaults_opens_the_account_and_is_rehashed(
    running_system, add_account
):
    old_hash = PasswordHasher().hash("an older password")  # 64 MiB, 3 passes, 4 lanes
    name = add_account(old_hash)
    assert running_system.http.token(name, "an older password")

    def stored():
        with add_account.engine.connect() as connection:
            return connection.execute(
                sa.select(models.users.c.password_hash).where(models.users.c.username == name)
            ).scalar_one()

    new_hash = stored()
    assert new_hash != old_hash
    assert extract_parameters(new_hash).memory_cost == auth.ARGON2_MEMORY_KIB
    assert running_system.http.token(name, "an older password")
    assert stored() == new_hash, "hashed again once, not at every sign-in"
