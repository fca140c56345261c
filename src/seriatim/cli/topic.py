"""``seriatim topic``: create, list, describe, delete, alter-config, add-partitions.

The vocabulary is ``kafka-topics``' (``--partitions``, ``--replication-factor``,
``--config k=v``, ``--if-not-exists``) in rpk's shape (``topic create NAME``). ``describe``
shows what ``kafka-topics --describe`` does (partitions, leader, replicas, ISR, the topic's
config overrides) plus each partition's low and high watermarks, as the web consoles do.
Everything goes through the Kafka admin API, so it works against any Kafka-compatible cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from seriatim.cli.options import client_options, get_settings, parse_key_value

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

    from seriatim.cli.kafka import ClusterMetadata, TopicMetadata
    from seriatim.cli.options import Settings


@click.group("topic")
@client_options
def topic() -> None:
    """Create, list, describe, delete and configure topics."""


@topic.command("list")
@click.option("--internal/--no-internal", default=True, show_default=True,
              help="Include internal topics (names starting with '__').")
@client_options
def list_topics(internal: bool) -> None:
    """List topics with their partition counts and replication factors."""
    from seriatim.cli.kafka import admin_client
    from seriatim.cli.output import print_json, print_table

    settings = get_settings()
    with admin_client(settings) as (_admin, metadata):
        rows = []
        for name in sorted(metadata.topics):
            if not internal and name.startswith("__"):
                continue
            info = metadata.topics[name]
            rows.append({"name": name, "partitions": len(info.partitions),
                         "replication_factor": _replication_factor(info)})
    if settings.json:
        print_json(rows)
    elif not rows:
        click.echo("no topics (create one with `seriatim topic create NAME`)", err=True)
    else:
        print_table(["TOPIC", "PARTITIONS", "REPLICAS"],
                    [[r["name"], r["partitions"], r["replication_factor"]] for r in rows])


@topic.command("create")
@click.argument("names", metavar="TOPIC...", nargs=-1, required=True)
@click.option("-p", "--partitions", type=click.IntRange(min=1), default=None,
              help="Number of partitions. [default: the broker's num.partitions]")
@click.option("-r", "--replication-factor", type=click.IntRange(min=1), default=None,
              help="Replicas per partition. [default: the broker's "
                   "default.replication.factor]")
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE",
              help="A topic config, e.g. -c cleanup.policy=compact -c retention.ms=3600000. "
                   "Repeatable.")
@click.option("--if-not-exists", is_flag=True, help="Succeed if the topic already exists.")
@client_options
def create(names: tuple[str, ...], partitions: int | None, replication_factor: int | None,
           configs: tuple[str, ...], if_not_exists: bool) -> None:
    """Create one or more topics."""
    from confluent_kafka import KafkaError, KafkaException

    from seriatim.cli.kafka import NewTopic, admin_client, describe_error, fail
    from seriatim.cli.output import note, print_json

    config = dict(parse_key_value(c) for c in configs)
    settings = get_settings()
    created, existing = [], []
    with admin_client(settings) as (admin, _metadata):
        new = [NewTopic(name, num_partitions=partitions or -1,
                        replication_factor=replication_factor or -1, config=config)
               for name in names]
        futures = admin.create_topics(new, operation_timeout=settings.timeout_s,
                                      request_timeout=settings.timeout_s)
        for name, future in futures.items():
            try:
                future.result(timeout=settings.timeout_s + 1)
                created.append(name)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if if_not_exists and isinstance(err, KafkaError) \
                        and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    existing.append(name)
                    continue
                fail(f"cannot create topic {name!r}: {describe_error(exc)}")
    if settings.json:
        print_json({"created": created, "already_existed": existing})
        return
    for name in created:
        note(f"created topic {name}")
    for name in existing:
        note(f"topic {name} already exists")


@topic.command("delete")
@click.argument("names", metavar="TOPIC...", nargs=-1, required=True)
@click.option("--if-exists", is_flag=True, help="Succeed if a topic does not exist.")
@client_options
def delete(names: tuple[str, ...], if_exists: bool) -> None:
    """Delete topics and all their data."""
    from seriatim.cli.kafka import admin_client, fail, result, topic_metadata
    from seriatim.cli.output import note, print_json

    settings = get_settings()
    deleted, missing = [], []
    with admin_client(settings) as (admin, metadata):
        targets = []
        for name in names:
            if name in metadata.topics:
                targets.append(name)
            elif if_exists:
                missing.append(name)
            else:
                topic_metadata(metadata, name)  # fails with the unknown-topic message
        if targets:
            futures = admin.delete_topics(targets, operation_timeout=settings.timeout_s,
                                          request_timeout=settings.timeout_s)
            for name, future in futures.items():
                result(future, f"cannot delete topic {name!r}", settings.timeout_s + 1)
                deleted.append(name)
    if not deleted and not missing:
        fail("nothing to delete")
    if settings.json:
        print_json({"deleted": deleted, "did_not_exist": missing})
        return
    for name in deleted:
        note(f"deleted topic {name}")
    for name in missing:
        note(f"topic {name} does not exist")


@topic.command("describe")
@click.argument("names", metavar="[TOPIC]...", nargs=-1)
@click.option("-a", "--all-configs", is_flag=True,
              help="Show every config with its source, not only the topic's overrides.")
@client_options
def describe(names: tuple[str, ...], all_configs: bool) -> None:
    """Partitions (leader, replicas, ISR, low/high watermarks) and configs of topics.

    Without TOPIC, every topic. Configs shown are the topic's overrides (what differs from
    the broker's defaults), or all of them with --all-configs.
    """
    from seriatim.cli.kafka import admin_client, topic_metadata

    settings = get_settings()
    with admin_client(settings) as (admin, metadata):
        targets = list(names) or sorted(metadata.topics)
        infos = [topic_metadata(metadata, name) for name in targets]
        described = [_describe_one(admin, metadata, name, info, settings, all_configs)
                     for name, info in zip(targets, infos, strict=True)]
    _print_described(described, settings)


def _describe_one(admin: AdminClient, metadata: ClusterMetadata, name: str,
                  info: TopicMetadata, settings: Settings, all_configs: bool) -> dict[str, Any]:
    from seriatim.cli.kafka import ConfigResource, ConfigSource, list_offsets, result

    ids = sorted(info.partitions)
    earliest = list_offsets(admin, name, ids, "earliest", settings)
    latest = list_offsets(admin, name, ids, "latest", settings)
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    entries = result(admin.describe_configs([resource], request_timeout=settings.timeout_s)[
        resource], f"configs of {name}", settings.timeout_s + 1)
    configs: dict[str, dict[str, Any]] = {}
    for entry in sorted(entries.values(), key=lambda e: e.name):
        source = ConfigSource(entry.source).name if entry.source is not None else "UNKNOWN"
        if all_configs or entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value:
            configs[entry.name] = {"value": None if entry.is_sensitive else entry.value,
                                   "source": source, "is_default": entry.is_default}
    partitions = []
    for p in ids:
        part = info.partitions[p]
        low, high = earliest[p][0], latest[p][0]
        partitions.append({
            "partition": p, "leader": part.leader, "replicas": list(part.replicas),
            "isr": list(part.isrs), "low": low, "high": high,
            "messages": max(high - low, 0) if low >= 0 and high >= 0 else None,
        })
    return {"name": name, "partition_count": len(ids),
            "replication_factor": _replication_factor(info),
            "internal": name.startswith("__"), "partitions": partitions, "configs": configs,
            "cluster_id": metadata.cluster_id}


def _print_described(described: list[dict[str, Any]], settings: Settings) -> None:
    from seriatim.cli.output import console, print_json, print_table

    if settings.json:
        print_json([{k: v for k, v in d.items() if k != "cluster_id"} for d in described])
        return
    out = console()
    for i, d in enumerate(described):
        if i:
            out.print()
        out.print(f"[bold]{d['name']}[/bold]  partitions: {d['partition_count']}  "
                  f"replication factor: {d['replication_factor']}")
        print_table(["PARTITION", "LEADER", "REPLICAS", "ISR", "LOW", "HIGH", "MESSAGES"],
                    [[p["partition"], p["leader"], _ids(p["replicas"]), _ids(p["isr"]),
                      p["low"], p["high"], p["messages"]] for p in d["partitions"]])
        if d["configs"]:
            print_table(["CONFIG", "VALUE", "SOURCE"],
                        [[k, "(sensitive)" if v["value"] is None else v["value"], v["source"]]
                         for k, v in d["configs"].items()])
        else:
            out.print("configs: all defaults")


@topic.command("alter-config")
@click.argument("name", metavar="TOPIC")
@click.option("-s", "--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Set a topic config. Repeatable.")
@click.option("-d", "--delete", "deletes", multiple=True, metavar="KEY",
              help="Remove an override, restoring the default. Repeatable.")
@client_options
def alter_config(name: str, sets: tuple[str, ...], deletes: tuple[str, ...]) -> None:
    """Set or remove topic config overrides (incrementally; others are left alone)."""
    from seriatim.cli.kafka import (
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        admin_client,
        result,
        topic_metadata,
    )
    from seriatim.cli.output import note, print_json

    if not sets and not deletes:
        raise click.UsageError("give at least one --set KEY=VALUE or --delete KEY")
    pairs = [parse_key_value(s) for s in sets]
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in pairs]
    entries += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE)
                for k in deletes]
    settings = get_settings()
    with admin_client(settings) as (admin, metadata):
        topic_metadata(metadata, name)
        resource = ConfigResource(ConfigResource.Type.TOPIC, name,
                                  incremental_configs=entries)
        futures = admin.incremental_alter_configs([resource],
                                                  request_timeout=settings.timeout_s)
        for future in futures.values():
            result(future, f"cannot alter configs of {name!r}", settings.timeout_s + 1)
    if settings.json:
        print_json({"topic": name, "set": dict(pairs), "deleted": list(deletes)})
        return
    for key, value in pairs:
        note(f"{name}: set {key}={value}")
    for key in deletes:
        note(f"{name}: removed override {key}")


@topic.command("add-partitions")
@click.argument("name", metavar="TOPIC")
@click.option("--total", type=click.IntRange(min=1), default=None,
              help="The new total number of partitions (kafka-topics --alter --partitions).")
@click.option("--add", "add", type=click.IntRange(min=1), default=None,
              help="How many partitions to add.")
@client_options
def add_partitions(name: str, total: int | None, add: int | None) -> None:
    """Add partitions to a topic (partitions can never be removed).

    Keys hash to partitions modulo the count, so adding partitions moves where new records
    with an existing key go.
    """
    from seriatim.cli.kafka import NewPartitions, admin_client, fail, result, topic_metadata
    from seriatim.cli.output import note, print_json

    if (total is None) == (add is None):
        raise click.UsageError("give exactly one of --total N or --add N")
    settings = get_settings()
    with admin_client(settings) as (admin, metadata):
        current = len(topic_metadata(metadata, name).partitions)
        new_total = total if total is not None else current + (add or 0)
        if new_total <= current:
            fail(f"topic {name!r} already has {current} partitions; --total must be more")
        futures = admin.create_partitions([NewPartitions(name, new_total)],
                                          operation_timeout=settings.timeout_s,
                                          request_timeout=settings.timeout_s)
        for future in futures.values():
            result(future, f"cannot add partitions to {name!r}", settings.timeout_s + 1)
    if settings.json:
        print_json({"topic": name, "partitions_before": current, "partitions": new_total})
    else:
        note(f"{name}: {current} -> {new_total} partitions")


def _replication_factor(info: TopicMetadata) -> int:
    return max((len(p.replicas) for p in info.partitions.values()), default=0)


def _ids(ids: list[int]) -> str:
    return ",".join(str(i) for i in ids)
