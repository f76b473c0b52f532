"""`concord`: the operator's command line."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from concord_cli import config, dlq, health, provision, supervisor
from concord_cli.table import format_table

F = TypeVar("F", bound=Callable[..., Any])

# `concord status` exit codes: all well / something is not / supervisord not running.
STATUS_OK, STATUS_DEGRADED, STATUS_NOT_RUNNING = 0, 1, 3


def _layout() -> supervisor.Layout:
    return supervisor.Layout(
        repo=config.repo_root(),
        var=config.export_var_dir(),
        nameko_config=config.config_path(),
        bin_dir=supervisor.default_bin_dir(),
    )


def _importing(command: F) -> F:
    """The commands call into the contracts, the kit and the services, imported late so that
    `concord --help` works without them: one that is missing is one line, no trace."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ImportError as exc:
            raise click.ClickException(f"cannot run: {exc} (is `make venv` done?)") from exc

    return wrapper  # type: ignore[return-value]


def _broker(command: F) -> F:
    """A broker that cannot be reached or refuses us is one line naming it (password hidden)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from amqp.exceptions import AMQPError
        from kombu.exceptions import OperationalError

        try:
            return command(*args, **kwargs)
        except (OSError, OperationalError, AMQPError) as exc:
            uri = config.redact_url(config.load()["AMQP_URI"])
            raise click.ClickException(f"RabbitMQ at {uri}: {type(exc).__name__}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Operate Concord: run the services, prepare the bus and the databases, inspect them.

    Configuration comes from deploy/config.yaml and the CONCORD_* environment variables
    (docs/operations.md); CONCORD_VAR_DIR chooses where the state and the logs go.
    """


@cli.command()
@click.option(
    "--foreground/--background",
    default=True,
    show_default=True,
    help="Run supervisord in this terminal (Ctrl-C stops everything), or detach once it answers.",
)
@click.option(
    "--instances",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes of each agency service (competing consumers). The gateway always has one.",
)
def run(foreground: bool, instances: int) -> None:
    """Start every service under supervisord (configuration written to VAR/supervisord.conf)."""
    layout = _layout()
    pid = supervisor.running_pid(layout)
    if pid is not None:
        raise click.ClickException(f"already running (supervisord pid {pid}); `concord stop` first")
    click.echo(f"starting services; logs in {layout.var / 'log'}", err=True)
    try:
        supervisor.start(layout, instances, foreground)
    except (OSError, TimeoutError, subprocess.CalledProcessError) as exc:
        raise click.ClickException(f"supervisord did not start: {exc}") from exc
    click.echo(f"running in the background (supervisord pid {supervisor.running_pid(layout)})")


@cli.command()
def stop() -> None:
    """Stop every service and supervisord (nothing to do when not running)."""
    try:
        pid = supervisor.stop(_layout())
    except TimeoutError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("not running" if pid is None else f"stopped (supervisord pid {pid})")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def status(as_json: bool) -> None:
    """Each process: state, pid, and whether its service answers its health RPC.

    Exits 0 when every process runs and every service answers ok, 1 otherwise, 3 when
    supervisord is not running.
    """
    layout = _layout()
    processes = supervisor.process_info(layout)
    if processes is None:
        if as_json:
            click.echo(json.dumps({"running": False, "processes": []}))
        else:
            click.echo(f"not running (no supervisord on {layout.socket})")
        sys.exit(STATUS_NOT_RUNNING)
    groups = sorted({p["group"] for p in processes}, key=_service_order)
    healths = health.check_all(config.load(), groups)
    rows = [
        {
            "name": p["name"],
            "service": p["group"],
            "state": p["statename"],
            "pid": p["pid"] or None,
            "health": healths.get(p["group"], health.UNREACHABLE),
        }
        for p in sorted(processes, key=lambda p: (_service_order(p["group"]), p["name"]))
    ]
    if as_json:
        click.echo(json.dumps({"running": True, "processes": rows}, indent=2))
    else:
        click.echo(
            format_table(
                ["NAME", "STATE", "PID", "HEALTH"],
                [[r["name"], r["state"], r["pid"], r["health"]] for r in rows],
            )
        )
    well = all(r["state"] == "RUNNING" and r["health"] == health.OK for r in rows)
    sys.exit(STATUS_OK if well else STATUS_DEGRADED)


def _service_order(service: str) -> int:
    return config.SERVICES.index(service) if service in config.SERVICES else len(config.SERVICES)


@cli.group()
def topology() -> None:
    """The exchanges, queues and bindings the services rely on."""


@topology.command("declare")
@_importing
@_broker
def topology_declare() -> None:
    """Declare every exchange, queue, binding, retry and dead-letter queue (idempotent)."""
    uri = config.load()["AMQP_URI"]
    names = provision.declare_topology(uri)
    click.echo(f"topology: {len(names)} entities declared on {config.redact_url(uri)}")


@cli.command()
@click.argument("services", nargs=-1, type=click.Choice(config.SERVICES))
@_importing
def migrate(services: tuple[str, ...]) -> None:
    """Upgrade each service's database to its newest migration (default: every service)."""
    config.ensure_var_dir()  # the SQLite files live there
    nameko_config = config.load()
    for service in provision.migrate(nameko_config, services or config.SERVICES):
        url = config.redact_url(nameko_config["DATABASE_URLS"][service])
        click.echo(f"migrated {service} ({url})")


@cli.command()
@_importing
def seed() -> None:
    """Create the demo users (password: CONCORD_DEMO_PASSWORD, default concord-demo)."""
    config.ensure_var_dir()
    password = os.environ.get("CONCORD_DEMO_PASSWORD") or config.DEFAULT_DEMO_PASSWORD
    created = provision.seed(config.load(), password)
    if isinstance(created, list | tuple) and not created:
        click.echo("demo users already present")
    elif isinstance(created, list | tuple):
        click.echo(f"demo users created: {', '.join(map(str, created))}")
    else:
        click.echo("demo users seeded")


@cli.group("audit")
def audit_group() -> None:
    """Each service's append-only, hash-chained audit trail."""


@audit_group.command("verify")
@click.argument("services", nargs=-1, type=click.Choice(config.AGENCY_SERVICES))
@_importing
def audit_verify(services: tuple[str, ...]) -> None:
    """Recompute each trail's hash chain; exits 1 naming the first entry that was altered."""
    import sqlalchemy as sa

    from concord_kit import audit

    urls = config.load()["DATABASE_URLS"]
    broken = False
    for service in services or config.AGENCY_SERVICES:
        engine = sa.create_engine(urls[service])
        with sa.orm.Session(engine) as session:
            first_broken = audit.verify(session)
        engine.dispose()
        if first_broken is None:
            click.echo(f"{service}: intact")
        else:
            broken = True
            click.echo(f"{service}: BROKEN from entry {first_broken}")
    sys.exit(1 if broken else 0)


@cli.group("dlq")
def dlq_group() -> None:
    """Events parked after their handler failed for good (concord.<service>.events.dead)."""


_service_option = click.option(
    "--service",
    "services",
    multiple=True,
    type=click.Choice(config.AGENCY_SERVICES),
    help="Only this service's parking queue (repeatable; default: all).",
)
_limit_option = click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=dlq.DEFAULT_LIMIT,
    show_default=True,
    help="Read at most this many messages per queue.",
)


def _print_parked(parked: list[dlq.Parked], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([dlq.as_dict(p) for p in parked], indent=2))
        return
    headers = ["SERVICE", "LANE", "EVENT_ID", "EVENT_TYPE", "ATTEMPT", "FAILED_AT", "REASON"]
    rows = [
        [p.service, p.lane, p.event_id, p.event_type, p.attempt, p.failed_at, p.reason]
        for p in parked
    ]
    click.echo(format_table(headers, rows))


@dlq_group.command("list")
@_service_option
@_limit_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_importing
@_broker
def dlq_list(services: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List parked events (they stay parked)."""
    uri = config.load()["AMQP_URI"]
    parked = dlq.list_parked(uri, services or config.AGENCY_SERVICES, limit)
    _print_parked(parked, as_json)
    if not as_json:
        click.echo(f"{len(parked)} parked", err=True)


@dlq_group.command("replay")
@_service_option
@_limit_option
@click.option("--event-id", help="Replay the parked event with this event_id.")
@click.option("--all", "replay_all", is_flag=True, help="Replay every parked event.")
@_importing
@_broker
def dlq_replay(
    services: tuple[str, ...], limit: int, event_id: str | None, replay_all: bool
) -> None:
    """Move parked events back to their service's queue (the urgent lane's for an event
    parked from it), attempt count reset."""
    if bool(event_id) == replay_all:
        raise click.UsageError("give exactly one of --event-id ID or --all")
    uri = config.load()["AMQP_URI"]
    replayed = dlq.replay(uri, services or config.AGENCY_SERVICES, event_id, limit)
    if event_id and not replayed:
        raise click.ClickException(f"no parked event {event_id}")
    _print_parked(replayed, as_json=False)
    click.echo(f"{len(replayed)} replayed", err=True)


@cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--chunk",
    type=click.IntRange(min=1, max=500),
    default=200,
    show_default=True,
    help="Reports per call to the referral hub (one transaction each).",
)
@click.option(
    "--as",
    "user",
    default=None,
    help="Whom the audit trail names as the importer (default: this system user).",
)
@_importing
@_broker
def import_referrals(path: str, chunk: int, user: str | None) -> None:
    """Import a JSON-lines file of referrals (one per line, each with an idempotency_key).

    Each report is accepted or refused on its own; importing the same file again creates
    nothing twice. Refused lines are listed by number with the fields at fault. Exits 1
    when any line was refused.
    """
    import getpass

    from nameko import config as nameko_config
    from nameko.standalone.rpc import ClusterRpcClient

    from concord_cli import importer

    with click.open_file(path, "rb") as handle:
        total = sum(1 for raw in handle if raw.strip())
    context = importer.importer_identity(user or getpass.getuser())
    with (
        nameko_config.patch(dict(config.load()), clear=True),
        ClusterRpcClient(context_data=context, timeout=importer.IMPORT_TIMEOUT_SECONDS) as rpc,
        click.open_file(path, "rb") as handle,
        click.progressbar(length=total, label="importing", file=sys.stderr) as bar,
    ):
        tally = importer.import_reports(
            importer.read_lines(handle), rpc.referral.submit_batch, chunk, bar.update
        )
    for line, errors in tally.rejections:
        names = ", ".join(importer.field_names(errors)) or "refused"
        click.echo(f"line {line}: rejected ({names})", err=True)
    click.echo(
        f"{tally.total} reports: {tally.created} created, {tally.replayed} already there, "
        f"{tally.rejected} rejected"
    )
    if tally.rejected:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    cli()
