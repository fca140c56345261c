"""``seriatim consume TOPIC``: read records, from any offset or point in time, as text or JSON.

Without ``--group`` the command assigns the partitions itself (all of them, ``--partition``
ones, or the one ``--key`` hashes to) and commits nothing: reading leaves no trace in the
cluster. With ``--group`` it joins the consumer group, gets partitions from the group's
assignment and commits what it has printed when it stops.

Start positions (``--from``, kcat's ``-o``): ``beginning`` (the default without a group),
``end``, ``stored`` (the group's committed offsets; the default with a group, falling back to
the beginning), an offset (``42``), the last N records of each partition (``-10``), a time ago
(``-15m``, ``-2h``, ``-1d``, ``-1h30m``) or a point in time (``@1767225600000`` in epoch
milliseconds, ``@2026-01-01T12:00:00Z`` in ISO-8601; no zone means local time). A time starts
each partition at its first record with a timestamp at or after it (ListOffsets by time), or at
its end when there is none.

``--key K`` reads only the partition K hashes to with the partitioner ``produce`` uses
(librdkafka's ``consistent_random``, CRC-32; ``-X partitioner=murmur2_random`` for Java's), and
prints only the records whose key is K.

Output: ``--fmt`` takes a kcat ``-f`` style format (``%t %p %o %k %s %S %T %h``, ``\\n``
``\\t`` escapes; a newline is added when the format has none); the default is the value alone.
``--format json`` writes one JSON object per record that ``produce --format json`` reads back
(see :mod:`seriatim.cli.codec`). Status lines go to stderr; stdout carries only records.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import IO, TYPE_CHECKING, Any

import click

from seriatim.cli.options import client_options, get_settings

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    from confluent_kafka import Consumer, Message, TopicPartition

    from seriatim.cli.codec import OutRecord, StartPosition
    from seriatim.cli.kafka import ClientErrors
    from seriatim.cli.options import Settings

#: librdkafka's logical offsets.
OFFSET_BEGINNING, OFFSET_END, OFFSET_STORED = -2, -1, -1000


@click.command("consume")
@click.argument("topic")
@click.option("-o", "--from", "start", metavar="POSITION", default=None,
              help="Where to start: beginning, end, stored, OFFSET, -N (last N records), "
                   "-15m/-2h/-1d (time ago), @EPOCH_MS or @ISO-8601. [default: beginning; "
                   "with --group: stored]")
@click.option("-g", "--group", default=None, help="Consume as a member of this group and "
              "commit offsets.")
@click.option("-c", "--count", type=click.IntRange(min=1), default=None,
              help="Exit after printing this many records.")
@click.option("-e", "--exit-at-end", is_flag=True,
              help="Exit when every partition has been read to its end.")
@click.option("-p", "--partition", "partitions", type=click.IntRange(min=0), multiple=True,
              help="Read only this partition. Repeatable.")
@click.option("-k", "--key", default=None,
              help="Read only the partition this key hashes to (with produce's partitioner: "
                   "librdkafka's consistent_random, CRC-32, unless -X partitioner=...), and "
                   "only the records with this key.")
@click.option("-f", "--fmt", default=None, metavar="FORMAT",
              help="kcat-style output format: %t topic, %p partition, %o offset, %k key, "
                   "%K key size, %s value, %S value size, %T timestamp, %h headers; "
                   "\\n \\t escapes. [default: '%s']")
@client_options
def consume(topic: str, start: str | None, group: str | None, count: int | None,
            exit_at_end: bool, partitions: tuple[int, ...], key: str | None,
            fmt: str | None) -> None:
    """Print records of TOPIC, one per line (text) or JSON object (--format json).

    \b
    seriatim consume orders -e                         # everything, then exit
    seriatim consume orders --from -15m -f '%T %k %s'  # the last 15 minutes
    seriatim consume orders --key user-42 -e           # one key's records
    seriatim consume orders --format json -e > orders.jsonl
    """
    from seriatim.cli.codec import FormatError, compile_fmt, parse_start, record_to_json

    settings = get_settings()
    try:
        position = parse_start(start) if start is not None else None
    except FormatError as exc:
        raise click.BadParameter(str(exc), param_hint="--from") from None
    if group is not None and (partitions or key is not None):
        raise click.UsageError("--partition and --key pick partitions themselves; they cannot "
                               "be combined with --group, whose members are assigned "
                               "partitions by the group")
    if partitions and key is not None:
        raise click.UsageError("give --partition or --key, not both")
    if position is not None and position.kind == "stored" and group is None:
        raise click.UsageError("--from stored needs --group (offsets are stored per group)")
    if settings.json and fmt is not None:
        raise click.UsageError("--fmt is for text output; it cannot be combined with "
                               "--format json")
    render: Callable[[OutRecord], bytes]
    if settings.json:
        def render(rec: OutRecord) -> bytes:
            return record_to_json(rec).encode("utf-8") + b"\n"
    else:
        try:
            render = compile_fmt(fmt if fmt is not None else "%s")
        except FormatError as exc:
            raise click.BadParameter(str(exc), param_hint="--fmt") from None
    key_bytes = key.encode("utf-8") if key is not None else None
    _Consume(settings, topic, position, group, count, exit_at_end, partitions, key_bytes,
             render).run()


class _Consume:
    def __init__(self, settings: Settings, topic: str, position: StartPosition | None,
                 group: str | None, count: int | None, exit_at_end: bool,
                 partitions: tuple[int, ...], key: bytes | None,
                 render: Callable[[OutRecord], bytes]) -> None:
        self.settings = settings
        self.topic = topic
        self.position = position
        self.group = group
        self.count = count
        self.exit_at_end = exit_at_end
        self.partitions = partitions
        self.key = key
        self.render = render
        self.printed = 0
        self.stop_requested = False
        self.assigned: set[int] = set()
        self.at_end: set[int] = set()
        self.out: IO[bytes] = sys.stdout.buffer

    def run(self) -> None:
        from seriatim.cli.kafka import consumer_client

        extra = {"enable.partition.eof": self.exit_at_end,
                 "auto.offset.reset": "earliest"}
        # Ctrl-C or SIGTERM ends a tail cleanly: the loop stops, the consumer closes (and with
        # a group commits). A KeyboardInterrupt raised inside librdkafka's consume() would
        # surface as a SystemError instead, so the signals only set a flag.
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._request_stop)
        try:
            with consumer_client(self.settings, self.group, **extra) as (consumer, metadata,
                                                                         errors):
                from seriatim.cli.kafka import topic_metadata

                partition_count = len(topic_metadata(metadata, self.topic).partitions)
                if self.group is None:
                    self._assign(consumer, partition_count)
                else:
                    self._subscribe(consumer)
                self._loop(consumer, errors)
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, as cat does.
            sys.stderr.close()
            raise SystemExit(0) from None
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _request_stop(self, _signum: int, _frame: FrameType | None) -> None:
        self.stop_requested = True

    # --- which partitions, from where ----------------------------------------------------------

    def _assign(self, consumer: Consumer, partition_count: int) -> None:
        from seriatim.cli.codec import DEFAULT_PARTITIONER, FormatError, partition_for_key
        from seriatim.cli.kafka import fail

        if self.key is not None:
            partitioner = dict(self.settings.overrides).get("partitioner", DEFAULT_PARTITIONER)
            try:
                chosen = partition_for_key(self.key, partition_count, partitioner)
            except FormatError as exc:
                fail(str(exc))
            if chosen is None:
                fail(f"the {partitioner} partitioner puts key {self.key!r} in a random "
                     "partition, so there is no one partition to read; use --partition or "
                     "read them all")
            targets = [chosen]
        elif self.partitions:
            for p in self.partitions:
                if p >= partition_count:
                    fail(f"partition {p} does not exist: {self.topic!r} has partitions "
                         f"0-{partition_count - 1}")
            targets = sorted(set(self.partitions))
        else:
            targets = list(range(partition_count))
        assignment = self._start_offsets(consumer, targets)
        self.assigned = set(targets)
        consumer.assign(assignment)

    def _subscribe(self, consumer: Consumer) -> None:
        def on_assign(c: Consumer, tps: list[TopicPartition]) -> None:
            self.assigned |= {tp.partition for tp in tps}
            if self.position is not None and self.position.kind != "stored":
                c.assign(self._start_offsets(c, [tp.partition for tp in tps]))

        def on_revoke(_c: Consumer, tps: list[TopicPartition]) -> None:
            self.assigned -= {tp.partition for tp in tps}
            self.at_end -= {tp.partition for tp in tps}

        consumer.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke)

    def _start_offsets(self, consumer: Consumer, targets: list[int]) -> list[TopicPartition]:
        from confluent_kafka import KafkaException, TopicPartition

        from seriatim.cli.kafka import describe_error, fail
        from seriatim.cli.output import note

        position = self.position
        kind = position.kind if position is not None else (
            "stored" if self.group is not None else "beginning")
        timeout = self.settings.timeout_s
        if kind in ("beginning", "end", "stored"):
            logical = {"beginning": OFFSET_BEGINNING, "end": OFFSET_END,
                       "stored": OFFSET_STORED}[kind]
            return [TopicPartition(self.topic, p, logical) for p in targets]
        assert position is not None
        try:
            if kind == "time":
                found = consumer.offsets_for_times(
                    [TopicPartition(self.topic, p, position.value) for p in targets],
                    timeout=timeout)
                return [TopicPartition(self.topic, tp.partition,
                                       tp.offset if tp.offset >= 0 else OFFSET_END)
                        for tp in found]
            result = []
            for p in targets:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, p), timeout=timeout)
                if kind == "tail":
                    offset = max(low, high - position.value)
                else:
                    offset = position.value
                    if offset > high:
                        fail(f"offset {offset} is past the end of {self.topic}[{p}] "
                             f"(offsets {low}..{high - 1}; {high} is the next to be written)")
                    if offset < low:
                        note(f"{self.topic}[{p}]: offset {offset} is before the log start "
                             f"({low}, older records were deleted); starting at {low}")
                        offset = low
                result.append(TopicPartition(self.topic, p, offset))
            return result
        except KafkaException as exc:
            fail(f"cannot find start offsets of {self.topic!r}: {describe_error(exc)}")

    # --- the loop ------------------------------------------------------------------------------

    def _loop(self, consumer: Consumer, errors: ClientErrors) -> None:
        from confluent_kafka import KafkaError

        from seriatim.cli.kafka import describe_error, fail
        from seriatim.cli.output import note

        out = self.out
        while True:
            if self.count is not None and self.printed >= self.count:
                return
            if self.exit_at_end and self.assigned and self.at_end >= self.assigned:
                return
            want = 500 if self.count is None else min(500, self.count - self.printed)
            messages = consumer.consume(num_messages=want, timeout=0.2)
            for problem in errors.new():  # e.g. the broker went away; librdkafka retries
                note(f"warning: {problem}")
            if self.stop_requested:
                return
            if messages:
                errors.recovered()
            for msg in messages:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        part = msg.partition()
                        if part is not None:
                            self.at_end.add(part)
                        continue
                    if err.fatal() or err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART,
                                                     KafkaError._UNKNOWN_TOPIC,
                                                     KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                                     KafkaError.GROUP_AUTHORIZATION_FAILED):
                        fail(f"consuming {self.topic!r}: {describe_error(err)}")
                    note(f"warning: {describe_error(err)}")
                    continue
                part = msg.partition()
                if part is not None:
                    self.at_end.discard(part)
                if self.key is None or msg.key() == self.key:
                    out.write(self.render(_to_record(msg)))
                    self.printed += 1
                if self.group is not None:
                    consumer.store_offsets(message=msg)
                if self.count is not None and self.printed >= self.count:
                    break
            if messages:
                out.flush()  # records appear as they arrive, also when piped


def _to_record(msg: Message) -> OutRecord:
    from seriatim.cli.codec import OutRecord

    ts_type, ts = msg.timestamp()  # (type, ms); type 0 = not available
    key = msg.key()
    value = msg.value()
    return OutRecord(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        timestamp_ms=ts if ts_type else None,
        timestamp_type={1: "create", 2: "log_append"}.get(ts_type),
        key=key.encode("utf-8") if isinstance(key, str) else key,
        value=value.encode("utf-8") if isinstance(value, str) else value,
        headers=_headers(msg),
    )


def _headers(msg: Message) -> list[tuple[str, bytes | None]]:
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(k, v.encode("utf-8") if isinstance(v, str) else v) for k, v in pairs]
