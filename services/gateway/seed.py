"""Demo accounts, one per role, for the embedded default and the tests (synthetic people)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from concord_contracts.codes import Organisation, Role
from concord_kit.migrations import upgrade
from gateway import users
from gateway.auth import hash_password

DEMO_USERS: tuple[tuple[str, Role, Organisation, str], ...] = (
    ("intake", Role.intake_officer, Organisation.referral_hub, "Demo intake officer"),
    ("social", Role.social_worker, Organisation.social_services, "Demo social worker"),
    ("supervisor", Role.supervisor, Organisation.social_services, "Demo supervisor"),
    # A second social worker (cases are assigned between them) and a second supervisor:
    # a supervisor never approves a plan or a closure they wrote or requested themselves.
    ("social2", Role.social_worker, Organisation.social_services, "Demo social worker 2"),
    ("supervisor2", Role.supervisor, Organisation.social_services, "Demo supervisor 2"),
    ("police", Role.police_liaison_officer, Organisation.justice, "Demo police liaison officer"),
    (
        "central",
        Role.central_authority_officer,
        Organisation.cross_border,
        "Demo central authority officer",
    ),
    ("coordinator", Role.coordinator, Organisation.coordination_body, "Demo coordinator"),
    ("admin", Role.administrator, Organisation.system, "Demo administrator"),
)


def seed_demo_users(database_url: str, password: str) -> list[str]:
    """Create the demo accounts that do not exist yet; returns the usernames created.

    Existing accounts are left as they are (their password too), so running it twice
    changes nothing. The database is migrated first, so this works on a fresh one.
    """
    if not password:
        raise ValueError("a demo password is required")
    upgrade("gateway", database_url)
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    created: list[str] = []
    try:
        with Session(engine) as session, session.begin():
            for username, role, agency, display_name in DEMO_USERS:
                if users.exists(session, username):
                    continue
                users.add(
                    session,
                    username=username,
                    password_hash=hash_password(password),
                    role=role,
                    agency=agency,
                    display_name=display_name,
                )
                created.append(username)
    finally:
        engine.dispose()
    return created
