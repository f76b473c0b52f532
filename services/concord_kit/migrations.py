"""Alembic, driven from code: every service keeps its revisions in `<package>/migrations/`.

A service's `migrations/env.py` is two lines: import its metadata and call `run_env`.
Migrations run on start (under a lock, so two instances never migrate at once) and by
`concord migrate`.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config

# Any fixed 64-bit number: the PostgreSQL advisory lock that serialises migrations.
_PG_MIGRATION_LOCK = 7_150_231_001


def script_location(service: str) -> Path:
    package = importlib.import_module(service)
    return Path(str(package.__file__)).resolve().parent / "migrations"


def alembic_config(service: str, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("script_location", str(script_location(service)))
    cfg.set_main_option("version_locations", str(script_location(service) / "versions"))
    cfg.attributes["database_url"] = database_url
    return cfg


@contextlib.contextmanager
def _migration_lock(database_url: str):
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{path}.migrate.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        return
    if url.get_backend_name() == "postgresql":
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
        engine.dispose()
        return
    yield


def upgrade(service: str, database_url: str) -> None:
    """Bring `service`'s database to its latest revision."""
    with _migration_lock(database_url):
        command.upgrade(alembic_config(service, database_url), "head")


def run_env(target_metadata: sa.MetaData) -> None:
    """The body of every service's `migrations/env.py`."""
    url = context.config.attributes.get("database_url") or os.environ["CONCORD_DATABASE_URL"]
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
