"""``seriatim group``: consumer groups over the Kafka protocol (any Kafka-compatible broker).

Built on confluent-kafka's AdminClient (ListGroups, DescribeGroups, OffsetFetch, ListOffsets,
OffsetCommit, DeleteGroups on the wire), so it shows what every client sees:

* ``group list``: every group and its state.
* ``group describe GROUP``: members (id, client, host, assignment) and, per partition,
  CURRENT-OFFSET (committed), LOG-END-OFFSET and LAG, like ``kafka-consumer-groups``.
* ``group reset-offsets GROUP --topic T (--to-earliest | --to-latest | --to-offset N |
  --to-datetime T | --shift-by N)``: prints BEFORE/AFTER per partition (a dry run) unless
  ``--execute``; refused while the group has members (they would overwrite it). Targets are
  clamped to [log start, log end]. ``--to-datetime`` takes ISO 8601; without a zone it is UTC.
* ``group delete GROUP``: removes an empty group and its committed offsets.

``-b/--bootstrap-server`` defaults to ``$SERIATIM_BOOTSTRAP``, else ``127.0.0.1:9092``.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any, NoReturn

import click

TIMEOUT_S = 15.0
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
_BOOTSTRAP_KEY = "seriatim.group.bootstrap"


@click.group("group")
@click.option(
    "-b",
    "--bootstrap-server",
    envvar="SERIATIM_BOOTSTRAP",
    default=DEFAULT_BOOTSTRAP,
    show_default=True,
    help="host:port of a broker (env SERIATIM_BOOTSTRAP).",
)
@click.pass_context
def group(ctx: click.Context, bootstrap_server: str) -> None:
    """Consumer groups: list, describe, reset offsets, delete."""
    ctx.meta[_BOOTSTRAP_KEY] = bootstrap_server


def _admin(ctx: click.Context) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": ctx.meta[_BOOTSTRAP_KEY]})


def _offset_spec() -> Any:
    import confluent_kafka.admin

    return getattr(confluent_kafka.admin, "OffsetSpec")  # noqa: B009 (untyped upstream)


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def _result(future: Any) -> Any:
    from confluent_kafka import KafkaException

    try:
        return future.result(TIMEOUT_S)
    except KafkaException as exc:
        _fail(str(exc.args[0]) if exc.args else str(exc))


def _state_name(state: Any) -> str:
    name = getattr(state, "name", str(state))
    return {"PREPARING_REBALANCING": "PreparingRebalance"}.get(name, name.title().replace("_", ""))


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@group.command("list")
@click.pass_context
def list_groups(ctx: click.Context) -> None:
    """List every consumer group with its state."""
    admin = _admin(ctx)  # keep the client alive until its futures resolve
    listed = _result(admin.list_consumer_groups(request_timeout=TIMEOUT_S))
    rows = [["GROUP", "STATE"]]
    for g in sorted(listed.valid, key=lambda g: g.group_id):
        rows.append([g.group_id, _state_name(g.state)])
    if len(rows) == 1:
        click.echo("no consumer groups")
        return
    _table(rows)


def _committed(admin: Any, group_id: str) -> dict[tuple[str, int], int]:
    from confluent_kafka import ConsumerGroupTopicPartitions

    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)])
    result = _result(futures[group_id])
    return {
        (tp.topic, tp.partition): tp.offset
        for tp in result.topic_partitions
        if tp.offset >= 0 and not tp.error
    }


def _log_offsets(
    admin: Any, tps: Iterable[tuple[str, int]], spec: Any
) -> dict[tuple[str, int], int]:
    from confluent_kafka import TopicPartition

    wanted = {TopicPartition(t, p): spec for t, p in tps}
    if not wanted:
        return {}
    futures = admin.list_offsets(wanted, request_timeout=TIMEOUT_S)
    return {(tp.topic, tp.partition): _result(f).offset for tp, f in futures.items()}


def _describe(admin: Any, group_id: str) -> Any:
    return _result(admin.describe_consumer_groups([group_id])[group_id])


@group.command("describe")
@click.argument("group_id", metavar="GROUP")
@click.pass_context
def describe(ctx: click.Context, group_id: str) -> None:
    """Members, assignments and per-partition lag of GROUP."""
    OffsetSpec = _offset_spec()

    admin = _admin(ctx)
    desc = _describe(admin, group_id)
    committed = _committed(admin, group_id)
    owner: dict[tuple[str, int], Any] = {}
    for m in desc.members:
        for tp in m.assignment.topic_partitions if m.assignment else ():
            owner[(tp.topic, tp.partition)] = m
    state = _state_name(desc.state)
    click.echo(f"GROUP {group_id}  STATE {state}  MEMBERS {len(desc.members)}")
    if state == "Dead" and not committed:
        _fail(f"consumer group '{group_id}' does not exist")
    tps = sorted(set(committed) | set(owner))
    ends = _log_offsets(admin, tps, OffsetSpec.latest())
    rows = [["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID",
             "HOST", "CLIENT-ID"]]  # fmt: skip
    for tp in tps:
        current = committed.get(tp)
        end = ends.get(tp, -1)
        lag = "-" if current is None or end < 0 else str(max(end - current, 0))
        m = owner.get(tp)
        rows.append([
            tp[0], str(tp[1]), "-" if current is None else str(current),
            "-" if end < 0 else str(end), lag,
            m.member_id if m else "-", m.host if m else "-", m.client_id if m else "-",
        ])  # fmt: skip
    if len(rows) > 1:
        _table(rows)
    if desc.members:
        click.echo("")
        member_rows = [["CONSUMER-ID", "INSTANCE-ID", "HOST", "CLIENT-ID", "ASSIGNMENT"]]
        for m in desc.members:
            parts = m.assignment.topic_partitions if m.assignment else []
            assignment = ",".join(f"{tp.topic}-{tp.partition}" for tp in parts) or "-"
            member_rows.append(
                [m.member_id, m.group_instance_id or "-", m.host, m.client_id, assignment]
            )
        _table(member_rows)


def _parse_datetime(text: str) -> int:
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--to-datetime: cannot parse {text!r}; use ISO 8601, e.g. 2024-05-01T12:00:00")
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return int(when.timestamp() * 1000)


@group.command("reset-offsets")
@click.argument("group_id", metavar="GROUP")
@click.option("--topic", "topics", multiple=True, required=True, help="Topic (repeatable).")
@click.option("--to-earliest", is_flag=True, help="The log start offset.")
@click.option("--to-latest", is_flag=True, help="The log end offset.")
@click.option("--to-offset", type=int, default=None, help="This offset (clamped).")
@click.option("--to-datetime", default=None, help="The first offset at or after this time.")
@click.option("--shift-by", type=int, default=None, help="The committed offset plus N.")
@click.option("--execute", is_flag=True, help="Apply (default: print the plan only).")
@click.pass_context
def reset_offsets(
    ctx: click.Context,
    group_id: str,
    topics: tuple[str, ...],
    to_earliest: bool,
    to_latest: bool,
    to_offset: int | None,
    to_datetime: str | None,
    shift_by: int | None,
    execute: bool,
) -> None:
    """Move GROUP's committed offsets on --topic (dry run unless --execute)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    OffsetSpec = _offset_spec()

    chosen = [to_earliest, to_latest, to_offset is not None, to_datetime is not None,
              shift_by is not None]  # fmt: skip
    if sum(chosen) != 1:
        _fail("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, "
              "--shift-by")  # fmt: skip
    admin = _admin(ctx)
    desc = _describe(admin, group_id)
    if desc.members:
        _fail(
            f"consumer group '{group_id}' has {len(desc.members)} active member(s) "
            f"(state {_state_name(desc.state)}); stop them before resetting its offsets"
        )
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    tps: list[tuple[str, int]] = []
    for topic in topics:
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            _fail(f"topic '{topic}' does not exist")
        tps += [(topic, p) for p in sorted(info.partitions)]
    committed = _committed(admin, group_id)
    earliest = _log_offsets(admin, tps, OffsetSpec.earliest())
    latest = _log_offsets(admin, tps, OffsetSpec.latest())
    by_time = (
        _log_offsets(admin, tps, OffsetSpec.for_timestamp(_parse_datetime(to_datetime)))
        if to_datetime is not None
        else {}
    )
    plan: list[tuple[str, int, int | None, int]] = []
    for tp in tps:
        before = committed.get(tp)
        if to_earliest:
            target = earliest[tp]
        elif to_latest:
            target = latest[tp]
        elif to_offset is not None:
            target = to_offset
        elif shift_by is not None:
            target = (before if before is not None else latest[tp]) + shift_by
        else:
            found = by_time[tp]
            target = found if found >= 0 else latest[tp]
        target = min(max(target, earliest[tp]), latest[tp])
        plan.append((tp[0], tp[1], before, target))
    rows = [["TOPIC", "PARTITION", "BEFORE", "AFTER"]]
    rows += [[t, str(p), "-" if b is None else str(b), str(a)] for t, p, b, a in plan]
    _table(rows)
    if not execute:
        click.echo("(dry run: nothing changed; add --execute to apply)")
        return
    request = ConsumerGroupTopicPartitions(
        group_id, [TopicPartition(t, p, a) for t, p, _, a in plan]
    )
    result = _result(admin.alter_consumer_group_offsets([request])[group_id])
    failed = [tp for tp in result.topic_partitions if tp.error]
    if failed:
        _fail("; ".join(f"{tp.topic}-{tp.partition}: {tp.error}" for tp in failed))
    click.echo(f"reset {len(plan)} partition(s) of group '{group_id}'")


@group.command("delete")
@click.argument("group_id", metavar="GROUP")
@click.pass_context
def delete(ctx: click.Context, group_id: str) -> None:
    """Delete GROUP (it must have no members) and its committed offsets."""
    admin = _admin(ctx)
    futures = admin.delete_consumer_groups([group_id], request_timeout=TIMEOUT_S)
    _result(futures[group_id])
    click.echo(f"deleted group '{group_id}'")
