"""``seriatim db``: SQLite databases replicated through a log.

``exec`` appends one SQL statement (an envelope, docs/state.md) to a topic partition on a
broker (confluent-kafka Producer, ``acks=all``, idempotent) or, with ``--log DIR``, to an
embedded log directory, and prints the offset it got. ``follow`` keeps a replica file in sync
with a topic partition (or an embedded log): it prints its progress and lag, stops cleanly on
Ctrl-C (the replica thread finishes its batch, then the client and the database close), and
with ``--until-caught-up`` exits once the lag is 0. ``snapshot`` writes a consistent snapshot
of a replica file (safe while ``follow`` runs) named by its offset; ``hash`` prints the
canonical state hash and offset, to compare replicas.

``exec`` and ``follow`` take the shared client options (:mod:`seriatim.cli.options`), before or
after the subcommand: ``-b`` (else ``SERIATIM_BOOTSTRAP``, else 127.0.0.1:9092), ``-X key=value``
(librdkafka properties for the producer or the replica's consumer), ``--timeout`` (how long
``exec`` waits for the acknowledgement) and ``--format json`` (``exec`` prints
``{"offset": N}``, ``follow`` prints its progress as JSON lines). ``follow`` stops cleanly on
SIGTERM as on Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from seriatim.cli.options import Settings, client_options, get_settings

_partition_option = click.option("-p", "--partition", default=0, show_default=True,
                                 type=click.IntRange(min=0), help="Topic partition.")
_log_option = click.option("--log", "log_dir", type=click.Path(file_okay=False),
                           help="Use an embedded log directory instead of a broker topic.")


@click.group("db")
def db() -> None:
    """SQLite databases rebuilt and kept in sync from a log."""


def _param(text: str, as_text: bool) -> Any:
    if as_text:
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, list | dict):
        return text
    return value


def _split_target(args: tuple[str, ...], log_dir: str | None, *, need_sql: bool
                  ) -> tuple[str | None, tuple[str, ...]]:
    """(topic, the rest): with --log there is no topic argument."""
    if log_dir is not None:
        return None, args
    if not args:
        raise click.UsageError("missing TOPIC (or use --log DIR)")
    if need_sql and len(args) < 2:
        raise click.UsageError("missing SQL")
    return args[0], args[1:]


@db.command("exec")
@click.argument("args", nargs=-1, required=True, metavar="[TOPIC] SQL [PARAMS]...")
@client_options
@_partition_option
@_log_option
@click.option("--text", "as_text", is_flag=True,
              help="Bind every PARAM as text (default: JSON scalars such as 42, 1.5, null, "
                   'true, "quoted" are typed; anything else is text).')
def exec_(args: tuple[str, ...], partition: int, log_dir: str | None, as_text: bool) -> None:
    """Append one SQL statement with its parameters; print the offset it got."""
    from seriatim.state import envelope

    settings = get_settings()

    topic, rest = _split_target(args, log_dir, need_sql=True)
    if not rest:
        raise click.UsageError("missing SQL")
    sql, params = rest[0], [_param(p, as_text) for p in rest[1:]]
    value = envelope.statement(sql, params)
    if log_dir is not None:
        import seriatim

        with seriatim.open(log_dir) as log:
            offset = log.append(value)
    else:
        assert topic is not None
        offset = _produce(settings, topic, partition, value)
    click.echo(json.dumps({"offset": offset}) if settings.json else offset)


def _produce(settings: Settings, topic: str, partition: int, value: bytes) -> int:
    from confluent_kafka import Producer

    bootstrap, timeout_s = settings.bootstrap, settings.timeout_s
    producer = Producer(settings.client_config(
        **{"acks": "all", "enable.idempotence": True,
           "message.timeout.ms": int(timeout_s * 1000)}))
    outcome: dict[str, Any] = {}

    def delivered(err: Any, msg: Any) -> None:
        outcome["error"] = err
        outcome["offset"] = None if err is not None else msg.offset()

    producer.produce(topic, value=value, partition=partition, on_delivery=delivered)
    remaining = producer.flush(timeout_s)
    if remaining or "error" not in outcome:
        raise click.ClickException(f"no acknowledgement from {bootstrap} within {timeout_s} s")
    if outcome["error"] is not None:
        raise click.ClickException(f"{topic}/{partition}: {outcome['error']}")
    return int(outcome["offset"])


@db.command("follow")
@click.argument("topic", required=False)
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False),
              help="The replica's SQLite file (created if missing).")
@client_options
@_partition_option
@_log_option
@click.option("--snapshots", "snapshot_dir", type=click.Path(file_okay=False),
              help="Bootstrap from the newest snapshot here when it is ahead of the replica.")
@click.option("--snapshot-every", default=0, show_default=True, type=click.IntRange(min=0),
              help="Write a snapshot to --snapshots every N applied records (0: never).")
@click.option("--until-caught-up", is_flag=True, help="Exit once the lag is 0.")
@click.option("--max-batch", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Records applied per SQLite transaction, at most.")
@click.option("--progress-interval", default=1.0, show_default=True,
              help="Seconds between progress lines.")
def follow(topic: str | None, db_path: str, partition: int,
           log_dir: str | None, snapshot_dir: str | None, snapshot_every: int,
           until_caught_up: bool, max_batch: int, progress_interval: float) -> None:
    """Keep the replica --db in sync with TOPIC (or --log DIR); Ctrl-C or SIGTERM stops
    cleanly."""
    from seriatim.state import KafkaSource, LogSource, Progress, Replica, Source, SqliteMachine

    settings = get_settings()

    if (topic is None) == (log_dir is None):
        raise click.UsageError("give either TOPIC or --log DIR")
    if snapshot_every and snapshot_dir is None:
        raise click.UsageError("--snapshot-every needs --snapshots DIR")
    source: Source
    if log_dir is not None:
        import seriatim

        source = LogSource(seriatim.open(log_dir, readonly=True, create=False),
                           max_batch_records=max_batch, owns=True)
    else:
        assert topic is not None
        source = KafkaSource(settings.bootstrap, topic, partition,
                             config=dict(settings.overrides), max_batch_records=max_batch)
    machine = SqliteMachine(db_path)
    last_print = [0.0]
    last_seen: list[Progress | None] = [None]
    lock = threading.Lock()

    def show(p: Progress, force: bool = False) -> None:
        now = time.monotonic()
        with lock:
            if not force and now - last_print[0] < progress_interval:
                return
            if force and p == last_seen[0]:
                return  # the final line would repeat the last one
            last_print[0] = now
            last_seen[0] = Progress(p.applied_offset, p.end_offset, p.lag,
                                    p.records_applied)
        if settings.json:
            fields: dict[str, Any] = {"applied_offset": p.applied_offset,
                                      "end_offset": p.end_offset, "lag": p.lag}
            if p.snapshot is not None:
                fields["snapshot"] = p.snapshot.path
            click.echo(json.dumps(fields))
            return
        line = f"applied_offset={p.applied_offset} end_offset={p.end_offset} lag={p.lag}"
        if p.snapshot is not None:
            line += f" snapshot={p.snapshot.path}"
        click.echo(line)

    replica = Replica(machine, source, snapshot_dir=snapshot_dir,
                      snapshot_every_records=snapshot_every, on_progress=show)
    try:
        try:
            with _sigterm_as_interrupt():
                replica.start(until_caught_up=until_caught_up)
                while not replica.wait(0.2):
                    pass
        except KeyboardInterrupt:
            click.echo("stopping...", err=True)
            replica.stop()
        if replica.bootstrapped_from is not None:
            click.echo(f"bootstrapped from {replica.bootstrapped_from.path}")
        show(Progress(replica.applied_offset, source.end_offset(), replica.lag,
                      replica.records_applied), force=True)
        errors = machine.errors()
        if errors:
            click.echo(f"{len(errors)} record(s) rejected; see the _seriatim_errors table")
    except Exception as exc:
        from seriatim.state import StateError

        if isinstance(exc, StateError):
            raise click.ClickException(str(exc)) from exc
        raise
    finally:
        try:
            source.close()
        finally:
            machine.close()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """In the main thread, SIGTERM raises KeyboardInterrupt (a clean stop, as Ctrl-C)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@db.command("snapshot")
@click.option("--db", "db_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The replica's SQLite file (may be followed meanwhile).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="The snapshot directory.")
@click.option("--keep", default=0, show_default=True, type=click.IntRange(min=0),
              help="Then delete all but the newest N snapshots (0: keep all).")
def snapshot(db_path: str, out_dir: str, keep: int) -> None:
    """Write a snapshot of the replica, named by the offset it reflects; print its path."""
    from seriatim.state import StateError, prune_snapshots, write_snapshot

    try:
        snap = write_snapshot(db_path, out_dir)
    except StateError as exc:
        raise click.ClickException(str(exc)) from exc
    if keep:
        prune_snapshots(out_dir, keep)
    click.echo(f"{snap.path} offset={snap.offset}")


@db.command("hash")
@click.argument("db_path", metavar="DB", type=click.Path(exists=True, dir_okay=False))
def hash_(db_path: str) -> None:
    """Print the canonical state hash and the applied offset of a replica."""
    from seriatim.state import StateError, hash_with_offset

    try:
        digest, offset = hash_with_offset(db_path)
    except StateError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{digest} offset={offset}")
