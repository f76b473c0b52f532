"""Reads and writes of the gateway's tables."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from concord_contracts.codes import Organisation, Role
from gateway.auth import Claims, Principal
from gateway.models import revoked_tokens, users


@dataclass(frozen=True)
class Account:
    id: str
    username: str
    password_hash: str
    role: Role
    agency: Organisation
    display_name: str


def normalise_username(username: str) -> str:
    return username.strip().lower()


def _account(row) -> Account | None:
    try:
        return Account(
            id=str(row.id),
            username=row.username,
            password_hash=row.password_hash,
            role=Role(row.role),
            agency=Organisation(row.agency),
            display_name=row.display_name,
        )
    except ValueError:
        # A role or agency this version does not know: the account cannot act.
        return None


def find_active(session: Session, username: str) -> Account | None:
    row = session.execute(
        sa.select(users).where(
            users.c.username == normalise_username(username), users.c.active.is_(True)
        )
    ).first()
    return _account(row) if row else None


def principal_for(session: Session, claims: Claims) -> Principal | None:
    """The person behind a valid token, unless they were deactivated or signed out since."""
    try:
        user_id = uuid.UUID(claims.user_id)
    except ValueError:
        return None
    revoked = session.execute(
        sa.select(revoked_tokens.c.jti).where(revoked_tokens.c.jti == claims.jti)
    ).first()
    if revoked:
        return None
    row = session.execute(
        sa.select(users).where(users.c.id == user_id, users.c.active.is_(True))
    ).first()
    account = _account(row) if row else None
    if account is None:
        return None
    # Role and agency come from the account, not the token: a change applies at once.
    return Principal(
        user_id=account.id,
        username=account.username,
        display_name=account.display_name,
        role=account.role,
        agency=account.agency,
        jti=claims.jti,
        expires_at=claims.expires_at,
    )


def revoke(session: Session, jti: str, expires_at: dt.datetime) -> None:
    now = dt.datetime.now(dt.UTC)
    # Tokens past their expiry are refused anyway: their rows can go.
    session.execute(sa.delete(revoked_tokens).where(revoked_tokens.c.expires_at < now))
    exists = session.execute(
        sa.select(revoked_tokens.c.jti).where(revoked_tokens.c.jti == jti)
    ).first()
    if not exists:
        session.execute(revoked_tokens.insert().values(jti=jti, expires_at=expires_at))


def add(
    session: Session,
    *,
    username: str,
    password_hash: str,
    role: Role,
    agency: Organisation,
    display_name: str,
) -> str:
    user_id = uuid.uuid4()
    session.execute(
        users.insert().values(
            id=user_id,
            username=normalise_username(username),
            password_hash=password_hash,
            role=str(role),
            agency=str(agency),
            display_name=display_name,
            active=True,
            created_at=dt.datetime.now(dt.UTC),
        )
    )
    return str(user_id)


def replace_password_hash(session: Session, user_id: str, password_hash: str) -> None:
    session.execute(
        sa.update(users).where(users.c.id == uuid.UUID(user_id)).values(password_hash=password_hash)
    )


def exists(session: Session, username: str) -> bool:
    row = session.execute(
        sa.select(users.c.id).where(users.c.username == normalise_username(username))
    ).first()
    return row is not None


def display_names(session: Session, user_ids: list[str]) -> dict[str, str]:
    """The display names of these accounts (active or not), by id; ids not found are left
    out, so a page shows the id itself (a service acting on its own, a removed account)."""
    wanted = []
    for value in user_ids:
        try:
            wanted.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    if not wanted:
        return {}
    rows = session.execute(
        sa.select(users.c.id, users.c.display_name).where(users.c.id.in_(wanted))
    ).all()
    return {str(row.id): row.display_name for row in rows}


@dataclass(frozen=True)
class Assignee:
    """A person a supervisor can assign a case to."""

    user_id: str
    username: str
    display_name: str


def assignable_social_workers(session: Session, agency: Organisation) -> list[Assignee]:
    """The active social workers of `agency`, by display name: who a supervisor of that
    agency assigns cases to."""
    rows = session.execute(
        sa.select(users.c.id, users.c.username, users.c.display_name)
        .where(
            users.c.agency == str(agency),
            users.c.role == str(Role.social_worker),
            users.c.active.is_(True),
        )
        .order_by(users.c.display_name, users.c.username)
    ).all()
    return [Assignee(str(row.id), row.username, row.display_name) for row in rows]
