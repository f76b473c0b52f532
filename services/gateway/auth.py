"""Passwords (argon2id, with a bound on the memory it takes at once, and a failed check
answered no sooner than a floor), access tokens and CSRF tokens: functions of a key, no I/O."""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import datetime as dt
import functools
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import eventlet
import jwt
from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import patcher

from concord_contracts.codes import Organisation, Role
from concord_kit.errors import Unauthenticated
from concord_kit.identity import Caller

TOKEN_LIFETIME = dt.timedelta(minutes=30)
ISSUER = "concord-gateway"
ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["sub", "role", "agency", "jti", "exp", "iat", "iss"]

# OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane). argon2-cffi's defaults (64 MiB, 4
# lanes) cost the gateway 64 MiB per sign-in in flight: six at once went past 450 MB.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
# At most this much memory in argon2 at once: one sign-in with the parameters above. Two
# took the gateway to 143 MB, too near the 150 MB target, and were no faster on two shared
# cores (docs/reliability.md). A hash with more (the old defaults, 64 MiB) runs alone.
ARGON2_BUDGET_KIB = ARGON2_MEMORY_KIB

# A failed sign-in is answered no sooner than this after the attempt began. Until each user
# has signed in once and been hashed again, their old 64 MiB hash takes about 0.2 s to check
# (two shared cores) where the dummy for an unknown name takes 0.02 s: without the floor the
# difference would tell an attacker which names exist. Five times that, for slower hardware.
FAILED_SIGNIN_FLOOR_SECONDS = 1.0

_hasher = PasswordHasher(
    time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM
)
_T = TypeVar("_T")


class MemoryBudget:
    """Lets argon2 work start only while the memory it takes fits in the budget.

    It waits with the interpreter's own lock, not eventlet's green one, since the gateway
    runs argon2 in eventlet's pool of OS threads (`tpool.execute`): call hash_password and
    verify_password there, never on the event loop, where a wait would block every request."""

    def __init__(self, budget_kib: int):
        self.budget_kib = budget_kib
        self.in_use_kib = 0
        self._changed = patcher.original("threading").Condition()

    def run(self, kib: int, work: Callable[[], _T]) -> _T:
        with self._changed:
            # Anything larger than the budget still runs, alone.
            self._changed.wait_for(
                lambda: self.in_use_kib == 0 or self.in_use_kib + kib <= self.budget_kib
            )
            self.in_use_kib += kib
        try:
            return work()
        finally:
            with self._changed:
                self.in_use_kib -= kib
                self._changed.notify_all()


_budget = MemoryBudget(ARGON2_BUDGET_KIB)


def _memory_of(stored_hash: str) -> int:
    """The memory (KiB) verifying this hash takes: its own parameters, not today's."""
    try:
        return extract_parameters(stored_hash).memory_cost
    except InvalidHashError:
        return ARGON2_MEMORY_KIB


def hash_password(password: str) -> str:
    return _budget.run(ARGON2_MEMORY_KIB, lambda: _hasher.hash(password))


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


# glibc's mallopt parameter for the size from which a block gets its own mapping.
_M_MMAP_THRESHOLD = -3


def _return_argon2_memory_to_the_system() -> None:
    """glibc raises that size to a freed block's (up to 32 MiB), so after the first sign-in
    argon2's 19 MiB blocks stayed in the malloc arena of each pool thread that ran one (the
    gateway held 400 MB after six sign-ins at once). A fixed size keeps every block over
    1 MiB mapped on its own and unmapped when freed. Elsewhere than glibc: left as it is."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(_M_MMAP_THRESHOLD, 1024 * 1024)
    except (OSError, AttributeError):
        pass


def warm_up() -> None:
    """Compute the dummy hash now, so the first unknown username is not answered slower;
    and make argon2's memory go back to the system after each use."""
    _return_argon2_memory_to_the_system()
    _dummy_hash()


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; an unknown user (`None`) costs the same as a known one."""
    checked = stored_hash or _dummy_hash()
    try:
        _budget.run(_memory_of(checked), lambda: _hasher.verify(checked, password))
    except (VerificationError, InvalidHashError):
        return False
    return stored_hash is not None


def answer_failure_no_sooner(
    started: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = eventlet.sleep,
) -> None:
    """Wait until FAILED_SIGNIN_FLOOR_SECONDS after `started` (a `clock` reading), so every
    failed sign-in takes as long whoever's name it was. On the event loop (a green sleep,
    other requests go on), never in the thread pool."""
    left = started + FAILED_SIGNIN_FLOOR_SECONDS - clock()
    if left > 0:
        sleep(left)


def rehashed(stored_hash: str, password: str) -> str | None:
    """A new hash of a password just verified, when its stored hash was made with other
    parameters (older defaults); None when it is up to date."""
    if not _hasher.check_needs_rehash(stored_hash):
        return None
    return hash_password(password)


@dataclass(frozen=True)
class Claims:
    user_id: str
    role: Role
    agency: Organisation
    jti: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    jti: str
    expires_at: dt.datetime

    @property
    def expires_in(self) -> int:
        return int(TOKEN_LIFETIME.total_seconds())


@dataclass(frozen=True)
class Principal:
    """The signed-in person, as the gateway knows them for one request."""

    user_id: str
    username: str
    display_name: str
    role: Role
    agency: Organisation
    jti: str
    expires_at: dt.datetime

    @property
    def caller(self) -> Caller:
        return Caller(self.user_id, self.role, self.agency)


class Tokens:
    """Issues and reads access tokens (JWT HS256) and CSRF tokens with one key."""

    def __init__(self, key: str):
        self._key = key
        # A separate key for CSRF tokens, so neither kind of token can stand for the other.
        self._csrf_key = hmac.new(key.encode(), b"concord-csrf", hashlib.sha256).digest()

    def issue(
        self, user_id: str, role: Role, agency: Organisation, now: dt.datetime | None = None
    ) -> IssuedToken:
        now = now or dt.datetime.now(dt.UTC)
        expires_at = now + TOKEN_LIFETIME
        jti = uuid.uuid4().hex
        claims = {
            "sub": str(user_id),
            "role": str(role),
            "agency": str(agency),
            "jti": jti,
            "iat": now,
            "exp": expires_at,
            "iss": ISSUER,
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM)
        return IssuedToken(token, jti, expires_at.replace(microsecond=0))

    def read(self, token: str, now: dt.datetime | None = None) -> Claims:
        """The token's claims; Unauthenticated when it is forged, expired or malformed."""
        try:
            data = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                # pyjwt checks `exp` against the clock; a given `now` (tests) is checked below.
                options={"require": _REQUIRED_CLAIMS, "verify_exp": now is None},
            )
            expires_at = dt.datetime.fromtimestamp(int(data["exp"]), dt.UTC)
            if now is not None and expires_at <= now:
                raise jwt.ExpiredSignatureError("expired")
            return Claims(
                user_id=str(data["sub"]),
                role=Role(data["role"]),
                agency=Organisation(data["agency"]),
                jti=str(data["jti"]),
                expires_at=expires_at,
            )
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            raise Unauthenticated("invalid or expired token") from None

    def new_csrf_token(self) -> str:
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self._csrf_signature(nonce)}"

    def csrf_token_valid(self, token: str | None) -> bool:
        """A token this gateway made (a cookie planted by another site does not pass)."""
        if not token or token.count(".") != 1:
            return False
        nonce, signature = token.split(".")
        return hmac.compare_digest(signature, self._csrf_signature(nonce))

    def csrf_matches(self, cookie: str | None, submitted: str | None) -> bool:
        """Double submit: the form's token equals the cookie's, and we made it."""
        if not cookie or not submitted:
            return False
        return hmac.compare_digest(cookie, submitted) and self.csrf_token_valid(cookie)

    def _csrf_signature(self, nonce: str) -> str:
        digest = hmac.new(self._csrf_key, nonce.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
