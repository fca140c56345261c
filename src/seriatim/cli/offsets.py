"""``seriatim offsets TOPIC``: each partition's earliest and latest offsets, or the offset at
a point in time (``--at``), from the ListOffsets API (``kafka-get-offsets``, kcat ``-Q``).

``earliest`` is the log start (the first offset still stored), ``latest`` the high watermark
(the offset the next record gets), so ``latest - earliest`` records are stored. With
``--at TIME`` (``-15m``, ``@EPOCH_MS``, ``@2026-01-01T12:00:00Z``) each partition also shows
the first offset whose record timestamp is at or after TIME, with that record's timestamp;
when no record is that recent, the offset is ``latest`` and the timestamp empty, which is
where a consumer starting at that time begins.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from seriatim.cli.options import client_options, get_settings


@click.command("offsets")
@click.argument("topic")
@click.option("--at", "at", metavar="TIME", default=None,
              help="Also find each partition's first offset at or after TIME: -15m, -2h, "
                   "@EPOCH_MS or @ISO-8601.")
@click.option("-p", "--partition", "partitions", type=click.IntRange(min=0), multiple=True,
              help="Only this partition. Repeatable.")
@client_options
def offsets(topic: str, at: str | None, partitions: tuple[int, ...]) -> None:
    """Earliest and latest offset of each partition of TOPIC (and the offset at --at)."""
    from seriatim.cli.codec import FormatError, parse_time_ms
    from seriatim.cli.kafka import admin_client, fail, list_offsets, topic_metadata
    from seriatim.cli.output import print_json, print_table

    try:
        at_ms = parse_time_ms(at) if at is not None else None
    except FormatError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None
    settings = get_settings()
    with admin_client(settings) as (admin, metadata):
        known = sorted(topic_metadata(metadata, topic).partitions)
        for p in partitions:
            if p not in known:
                fail(f"partition {p} does not exist: {topic!r} has partitions 0-{len(known) - 1}")
        ids = sorted(set(partitions)) if partitions else known
        found = {"earliest": list_offsets(admin, topic, ids, "earliest", settings),
                 "latest": list_offsets(admin, topic, ids, "latest", settings)}
        if at_ms is not None:
            found["at"] = list_offsets(admin, topic, ids, "time", settings, at_ms)
    rows: list[dict[str, Any]] = []
    for p in ids:
        earliest, latest = found["earliest"][p][0], found["latest"][p][0]
        row: dict[str, Any] = {"partition": p, "earliest": earliest, "latest": latest,
                               "messages": max(latest - earliest, 0)}
        if at_ms is not None:
            offset, timestamp = found["at"][p]
            row["at"] = {"offset": offset if offset >= 0 else latest,
                         "timestamp": timestamp if offset >= 0 and timestamp >= 0 else None}
        rows.append(row)
    if settings.json:
        print_json({"topic": topic, "at": at_ms, "partitions": rows})
        return
    columns = ["PARTITION", "EARLIEST", "LATEST", "MESSAGES"]
    if at_ms is not None:
        when = datetime.fromtimestamp(at_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
        columns += [f"OFFSET AT {when}", "RECORD TIMESTAMP"]
    print_table(columns, [
        [r["partition"], r["earliest"], r["latest"], r["messages"]]
        + ([r["at"]["offset"], r["at"]["timestamp"]] if at_ms is not None else [])
        for r in rows
    ], title=topic)
