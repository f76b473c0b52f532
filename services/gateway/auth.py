"""Passwords, access tokens and CSRF tokens: pure functions of a key, no I/O."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from concord_contracts.codes import Organisation, Role
from concord_kit.errors import Unauthenticated
from concord_kit.identity import Caller

TOKEN_LIFETIME = dt.timedelta(minutes=30)
ISSUER = "concord-gateway"
ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["sub", "role", "agency", "jti", "exp", "iat", "iss"]

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def warm_up() -> None:
    """Compute the dummy hash now, so the first unknown username is not answered slower."""
    _dummy_hash()


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; an unknown user (`None`) costs the same as a known one."""
    try:
        _hasher.verify(stored_hash or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return stored_hash is not None


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
