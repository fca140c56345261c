"""``seriatim cluster [info]``: the cluster id, controller, brokers and topic count.

Uses DescribeCluster when the cluster serves it, else the Metadata response (which carries
the same facts), so it works against old brokers too.
"""

from __future__ import annotations

from typing import Any

import click

from seriatim.cli.options import client_options, get_settings


@click.group("cluster", invoke_without_command=True)
@client_options
@click.pass_context
def cluster(ctx: click.Context) -> None:
    """Cluster information (`seriatim cluster` is `seriatim cluster info`)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(info)


@cluster.command("info")
@client_options
def info() -> None:
    """Cluster id, controller, brokers and the number of topics and partitions."""
    from confluent_kafka import KafkaException

    from seriatim.cli.kafka import admin_client
    from seriatim.cli.output import print_json, print_kv, print_table

    settings = get_settings()
    with admin_client(settings) as (admin, metadata):
        cluster_id = metadata.cluster_id
        controller = metadata.controller_id
        brokers = sorted((b.id, b.host, b.port, None) for b in metadata.brokers.values())
        try:
            described = admin.describe_cluster(request_timeout=settings.timeout_s).result(
                timeout=settings.timeout_s + 1)
            cluster_id = described.cluster_id or cluster_id
            if described.controller is not None:
                controller = described.controller.id
            brokers = sorted((n.id, n.host, n.port, n.rack) for n in described.nodes)
        except (KafkaException, TimeoutError):
            pass  # an older broker: the metadata already says it
    topics = {name: len(t.partitions) for name, t in metadata.topics.items()}
    data: dict[str, Any] = {
        "bootstrap": settings.bootstrap,
        "cluster_id": cluster_id,
        "controller": controller,
        "brokers": [{"id": i, "host": h, "port": p, "rack": r} for i, h, p, r in brokers],
        "topics": len(topics),
        "internal_topics": sum(1 for name in topics if name.startswith("__")),
        "partitions": sum(topics.values()),
    }
    if settings.json:
        print_json(data)
        return
    print_kv([("cluster id", cluster_id), ("controller", controller),
              ("topics", f"{data['topics']} ({data['internal_topics']} internal), "
                         f"{data['partitions']} partitions"),
              ("bootstrap", settings.bootstrap)])
    print_table(["BROKER", "HOST", "PORT", "RACK", "CONTROLLER"],
                [[i, h, p, r or "", "*" if i == controller else ""]
                 for i, h, p, r in brokers])
