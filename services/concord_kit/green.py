"""psycopg2 made cooperative under eventlet.

eventlet's monkey patching reaches Python's sockets, not libpq's: without a wait callback
every PostgreSQL round trip blocks the whole service process (its other workers, its
consumers' heartbeats, the outbox relay) until the database answers. With this callback
libpq runs in non-blocking mode and each wait yields to eventlet's hub, so a process's
workers really do run side by side (what psycogreen does, in a dozen lines).
"""

from __future__ import annotations

import eventlet.patcher
from eventlet.hubs import trampoline

_installed = False


def _wait(connection, timeout=None) -> None:
    import psycopg2
    from psycopg2 import extensions

    while True:
        state = connection.poll()
        if state == extensions.POLL_OK:
            return
        if state == extensions.POLL_READ:
            trampoline(connection.fileno(), read=True)
        elif state == extensions.POLL_WRITE:
            trampoline(connection.fileno(), write=True)
        else:
            raise psycopg2.OperationalError(f"unexpected poll state {state!r}")


def make_psycopg2_green() -> bool:
    """Install the callback once, in a process eventlet has monkey-patched (every service
    under `nameko run`); True when it is in place. A plain, threaded process (the command
    line) keeps psycopg2's ordinary blocking calls."""
    global _installed
    if _installed:
        return True
    if not eventlet.patcher.is_monkey_patched("socket"):
        return False
    from psycopg2 import extensions

    extensions.set_wait_callback(_wait)
    _installed = True
    return True
