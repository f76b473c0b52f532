"""Where the gateway finds its signing key and its deployment settings, and the dependency
that holds the key."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from nameko.extensions import DependencyProvider

from gateway.auth import Tokens, warm_up

SECRET_KEY_ENV = "CONCORD_SECRET_KEY"
VAR_DIR_ENV = "CONCORD_VAR_DIR"
KEY_FILE = "secret.key"
# "true": the session cookie is always `Secure` (every client must use HTTPS). "false"
# only for plain-HTTP trials. Unset: Secure when the request reached the gateway over
# HTTPS, or its outermost trusted proxy (X-Forwarded-Proto, with CONCORD_TRUSTED_PROXIES).
COOKIE_SECURE_ENV = "CONCORD_COOKIE_SECURE"
# How many proxies in front of the gateway append to X-Forwarded-For (0: none, the peer is
# the client). Only these are believed: a client can write anything before them.
TRUSTED_PROXIES_ENV = "CONCORD_TRUSTED_PROXIES"
# Failed sign-ins one client address may make before it waits (gateway.signin_limits); more
# for an office whose people all reach the gateway through one address.
SIGNIN_ADDRESS_FAILURES_ENV = "CONCORD_SIGNIN_ADDRESS_FREE_FAILURES"
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
# HS256 with a shorter key is guessable offline from any one token.
MIN_KEY_LENGTH = 32

_REPOSITORY = Path(__file__).resolve().parents[2]


def var_dir() -> Path:
    return Path(os.environ.get(VAR_DIR_ENV) or _REPOSITORY / "var")


def secret_key(directory: Path | None = None) -> str:
    """The key from the environment, else the one kept under var/ (created on first use)."""
    key = os.environ.get(SECRET_KEY_ENV)
    if key:
        if len(key) < MIN_KEY_LENGTH:
            raise RuntimeError(f"{SECRET_KEY_ENV} must be at least {MIN_KEY_LENGTH} characters")
        return key
    return _key_file(directory or var_dir())


def cookie_secure() -> bool | None:
    """True or False when set, None to follow the request's own scheme."""
    value = os.environ.get(COOKIE_SECURE_ENV, "").strip().lower()
    if not value:
        return None
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise RuntimeError(f"{COOKIE_SECURE_ENV} must be true or false")


def trusted_proxies() -> int:
    value = os.environ.get(TRUSTED_PROXIES_ENV, "").strip() or "0"
    if not value.isdigit() or int(value) > 10:
        raise RuntimeError(f"{TRUSTED_PROXIES_ENV} must be a whole number from 0 to 10")
    return int(value)


def signin_address_free_failures(default: int) -> int:
    value = os.environ.get(SIGNIN_ADDRESS_FAILURES_ENV, "").strip() or str(default)
    if not value.isdigit() or int(value) < 1:
        raise RuntimeError(f"{SIGNIN_ADDRESS_FAILURES_ENV} must be a whole number above 0")
    return int(value)


def _key_file(directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / KEY_FILE
    if not path.exists():
        # Written aside then hard-linked into place: the link fails if another process won
        # the race, so every gateway process ends up with the same key.
        spare = directory / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(spare, path)
        except FileExistsError:
            pass
        finally:
            spare.unlink()
    for _ in range(50):
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.1)  # a key file written by hand and not yet flushed
    raise RuntimeError(f"{path} is empty")


class Credentials(DependencyProvider):
    """Token handling with the key loaded once at start (a bad key fails the start), and
    password checks warmed up so the first one is not answered faster than the rest."""

    def setup(self) -> None:
        self.tokens = Tokens(secret_key())
        # Read now so that a wrong value fails the start, not a sign-in.
        cookie_secure()
        trusted_proxies()
        warm_up()

    def get_dependency(self, worker_ctx) -> Tokens:
        return self.tokens
