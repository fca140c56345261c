"""``seriatim produce TOPIC``: write records from stdin or a file.

Text input (the default): one record per line, the line without its ``\\n`` is the value;
``-K SEP`` splits ``key SEP value`` at the first separator (a line without it has a null key),
``-k KEY`` gives every record the same key, ``-H k=v`` adds headers to every record, and
``-Z`` turns empty values into nulls (tombstones), as kcat's ``-K``, ``-H`` and ``-Z`` do.

JSON input (``--format json``): one object per line in the format ``consume --format json``
writes (see :mod:`seriatim.cli.codec`), so ``consume --format json | produce --format json``
copies records with their keys, values, headers, timestamps and partitions byte for byte.

Partitioning is librdkafka's ``partitioner`` setting, which the CLI pins to librdkafka's
default, ``consistent_random`` (CRC-32 of the key modulo the partition count; null and empty
keys go to a random partition). Java clients use murmur2; ``-X partitioner=murmur2_random``
matches them. ``consume --key`` uses the same setting, so the two agree.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

import click

from seriatim.cli.options import client_options, get_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from confluent_kafka import KafkaError, Message, Producer

    from seriatim.cli.codec import InRecord

    DeliveryCallback = Callable[[KafkaError | None, Message], None]

COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")


def _unescape(text: str) -> bytes:
    return text.encode("utf-8").decode("unicode_escape").encode("latin-1") \
        if "\\" in text else text.encode("utf-8")


@click.command("produce")
@click.argument("topic")
@click.option("-f", "--file", "path", type=click.Path(exists=True, dir_okay=False,
                                                      allow_dash=True),
              default="-", show_default="stdin", help="Read records from this file.")
@click.option("-K", "--key-separator", metavar="SEP",
              help="Split each line into key and value at the first SEP (e.g. ':' or '\\t').")
@click.option("-k", "--key", metavar="KEY", help="The key of every record.")
@click.option("-H", "--header", "headers", multiple=True, metavar="KEY=VALUE",
              help="Add a header to every record. Repeatable.")
@click.option("-p", "--partition", type=click.IntRange(min=0), default=None,
              help="Write to this partition. [default: by key, with the partitioner]")
@click.option("--repartition", is_flag=True,
              help="JSON input: ignore each record's 'partition' and use the partitioner.")
@click.option("-z", "--compression", type=click.Choice(COMPRESSIONS), default="none",
              show_default=True, help="Compression codec of the batches.")
@click.option("--acks", type=click.Choice(["0", "1", "all", "-1"]), default="all",
              show_default=True, help="Acknowledgements to wait for.")
@click.option("-Z", "--null-empty", is_flag=True,
              help="Text input: send an empty value as null (a tombstone).")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar when reading a file. [default: when stderr is a "
                   "terminal]")
@client_options
def produce(topic: str, path: str, key_separator: str | None, key: str | None,
            headers: tuple[str, ...], partition: int | None, repartition: bool,
            compression: str, acks: str, null_empty: bool, progress: bool | None) -> None:
    """Write records to TOPIC, one per input line (text) or JSON object (--format json).

    \b
    printf 'a:1\\nb:2\\n' | seriatim produce orders -K :
    seriatim produce orders -f events.jsonl --format json
    seriatim consume src --format json -e | seriatim produce dst --format json
    """
    from confluent_kafka import KafkaError

    from seriatim.cli.codec import FormatError, InRecord, header_pairs, record_from_json
    from seriatim.cli.kafka import fail, producer_client, topic_metadata
    from seriatim.cli.output import note, print_json

    settings = get_settings()
    try:
        fixed_headers = header_pairs(headers)
    except FormatError as exc:
        raise click.BadParameter(str(exc), param_hint="--header") from None
    if settings.json and (key_separator or key is not None or null_empty):
        raise click.UsageError("-K, -k and -Z apply to text input, not --format json")
    separator = _unescape(key_separator) if key_separator else None
    fixed_key = key.encode("utf-8") if key is not None else None

    extra = {"compression.type": compression, "acks": acks,
             "partitioner": "consistent_random", "message.timeout.ms": 30_000,
             "linger.ms": 5}
    delivered = failed = 0
    first_error: list[str] = []
    partitions_used: set[int] = set()

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        nonlocal delivered, failed
        if err is not None:
            failed += 1
            if not first_error:
                hint = ("; records on a compacted topic (cleanup.policy=compact) need keys"
                        if err.code() == KafkaError.INVALID_RECORD else "")
                first_error.append(f"{err.str()} ({err.name()}){hint}")
        else:
            delivered += 1
            part = msg.partition()
            if part is not None:
                partitions_used.add(part)

    with producer_client(settings, **extra) as (producer, metadata, _errors):
        partition_count = len(topic_metadata(metadata, topic).partitions)

        def bad_partition(p: int | None) -> str | None:
            if p is not None and p >= partition_count:
                return (f"partition {p} does not exist: {topic!r} has partitions "
                        f"0-{partition_count - 1}")
            return None

        problem = bad_partition(partition)
        if problem is not None:
            fail(f"--partition: {problem}")
        stream, total_bytes = _open(path)
        line_no = 0
        bad_line: str | None = None
        try:
            for line in _lines(stream, total_bytes, path, progress):
                line_no += 1
                if settings.json:
                    if not line.strip():
                        continue
                    try:
                        rec = record_from_json(line)
                    except FormatError as exc:
                        bad_line = f"line {line_no}: {exc}"
                        break
                else:
                    rec_key, value = _split(line, separator, fixed_key)
                    rec = InRecord(rec_key, None if (null_empty and not value) else value, [])
                target = partition
                if target is None and not repartition:
                    target = rec.partition
                    problem = bad_partition(target)
                    if problem is not None:
                        bad_line = (f"line {line_no}: {problem} (use --repartition to let the "
                                    "partitioner choose, or --partition N)")
                        break
                rec_headers = rec.headers + fixed_headers
                _send(producer, topic, rec, target, rec_headers, on_delivery)
                if line_no % 1000 == 0:
                    producer.poll(0)
        finally:
            if path != "-":
                stream.close()
        # Also after a bad line: what came before it is delivered, so the outcome does not
        # depend on timing (as with kcat, input up to the bad line is produced).
        remaining = producer.flush(settings.timeout_s + 30)
        if remaining:
            fail(f"{remaining} records were not acknowledged in time")
    if bad_line is not None:
        fail(f"{bad_line}; stopped there: the {delivered} records before it were produced"
             + (f" and {failed} failed" if failed else ""))
    if failed:
        fail(f"{failed} of {failed + delivered} records failed: {first_error[0]}"
             if first_error else f"{failed} records failed")
    summary = {"topic": topic, "produced": delivered,
               "partitions": sorted(partitions_used)}
    if settings.json:
        print_json(summary)
    elif delivered or line_no:
        parts = ",".join(str(p) for p in sorted(partitions_used)) or "-"
        note(f"produced {delivered} records to {topic} (partitions {parts})")


def _split(line: bytes, separator: bytes | None,
           fixed_key: bytes | None) -> tuple[bytes | None, bytes]:
    from seriatim.cli.codec import split_key

    if separator is not None:
        key, value = split_key(line, separator)
        return (key if key is not None else fixed_key), value
    return fixed_key, line


def _send(producer: Producer, topic: str, rec: InRecord, partition: int | None,
          headers: list[tuple[str, bytes | None]], on_delivery: DeliveryCallback) -> None:
    wire_headers: list[tuple[str, str | bytes | None]] | None = list(headers) or None
    while True:
        try:
            # partition -1 and timestamp 0 mean "let librdkafka choose" / "now".
            producer.produce(topic, value=rec.value, key=rec.key,
                             partition=-1 if partition is None else partition,
                             timestamp=rec.timestamp_ms or 0, headers=wire_headers,
                             on_delivery=on_delivery)
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)


def _open(path: str) -> tuple[IO[bytes], int | None]:
    if path == "-":
        return sys.stdin.buffer, None
    return open(path, "rb"), os.path.getsize(path)


def _lines(stream: IO[bytes], total_bytes: int | None, path: str,
           progress: bool | None) -> Iterator[bytes]:
    """Lines without their trailing newline; with a rich progress bar on stderr for files."""
    show = total_bytes is not None and (progress if progress is not None
                                        else sys.stderr.isatty())
    if not show:
        for line in stream:
            yield line[:-1] if line.endswith(b"\n") else line
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from seriatim.cli.output import console

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(),
                  console=console(stderr=True), transient=False) as bar:
        task = bar.add_task(os.path.basename(path), total=total_bytes)
        for line in stream:
            bar.advance(task, len(line))
            yield line[:-1] if line.endswith(b"\n") else line
