"""Kafka clients for the CLI: opening, connecting, closing, and errors a person can act on.

Every client command goes through here. It builds confluent-kafka clients (librdkafka) from
:class:`~seriatim.cli.options.Settings`, so the commands work against Kafka and Redpanda as well
as seriatim, and:

* checks the cluster is reachable first (:func:`connect`), with a metadata request that gives
  up after ``--timeout`` seconds, or at once when librdkafka reports every broker down
  (connection refused, unresolvable host), and then says which address failed and how to start
  a broker;
* turns client errors into :class:`CliError` (exit status 1) with the Kafka error's name;
* silences librdkafka's own stderr logging (``log_level=0``) unless ``-X log_level=...`` or
  ``-X debug=...`` asks for it: failures are reported once, by the command;
* closes what it opens (:func:`admin_client`, :func:`producer_client`,
  :func:`consumer_client` are context managers).

Importing this module imports confluent_kafka; only client commands do, when they run.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

# confluent_kafka.admin re-exports these without __all__, which mypy --strict does not accept
# as an export; import them from where they are defined, here, once.
from confluent_kafka.admin._config import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
)
from confluent_kafka.admin._listoffsets import OffsetSpec
from confluent_kafka.admin._metadata import ClusterMetadata, TopicMetadata
from confluent_kafka.cimpl import NewPartitions, NewTopic

from seriatim.cli.options import BOOTSTRAP_ENV, Settings

__all__ = [
    "AlterConfigOpType",
    "CliError",
    "ClientErrors",
    "ClusterMetadata",
    "ConfigEntry",
    "ConfigResource",
    "ConfigSource",
    "NewPartitions",
    "NewTopic",
    "TopicMetadata",
    "admin_client",
    "connect",
    "consumer_client",
    "describe_error",
    "fail",
    "list_offsets",
    "producer_client",
    "result",
    "topic_metadata",
]

T = TypeVar("T")

#: librdkafka errors that mean "no broker at that address", reported through error_cb.
_UNREACHABLE = (KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE)


class CliError(click.ClickException):
    """A runtime failure: printed as ``Error: message`` and exit status 1."""

    exit_code = 1


class ClientErrors:
    """An ``error_cb`` target: remembers what librdkafka reported in the background."""

    def __init__(self) -> None:
        self.errors: list[KafkaError] = []
        self._pending: list[KafkaError] = []
        self._warned: set[str] = set()

    def __call__(self, error: KafkaError) -> None:
        self.errors.append(error)
        self._pending.append(error)
        del self.errors[:-100]  # a long tail against a flapping broker stays bounded
        del self._pending[:-100]

    def new(self) -> list[str]:
        """Messages of errors not warned about since the last :meth:`recovered`; librdkafka
        repeats the same error on every reconnect attempt, a person needs it once."""
        fresh = [m for m in dict.fromkeys(_short(e.str(), keep_broker=True)
                                          for e in self._pending
                                          if e.code() != KafkaError._ALL_BROKERS_DOWN)
                 if m not in self._warned]
        self._pending.clear()
        self._warned.update(fresh)
        return fresh

    def recovered(self) -> None:
        """Things work again: warn afresh next time."""
        self._warned.clear()

    def unreachable(self) -> KafkaError | None:
        if any(e.code() in _UNREACHABLE for e in self.errors):
            transport = [e for e in self.errors if e.code() not in _UNREACHABLE]
            return transport[-1] if transport else self.errors[-1]
        return None


def _base_config(settings: Settings, errors: ClientErrors, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"error_cb": errors, "client.id": "seriatim-cli"}
    keys = {k for k, _ in settings.overrides}
    if not keys & {"log_level", "debug"}:
        base["log_level"] = 0
    base.update(extra)
    return settings.client_config(**base)


def unreachable_message(settings: Settings, detail: str) -> str:
    return (
        f"cannot reach a Kafka broker at {settings.bootstrap}: {detail}\n"
        "Start one with `seriatim serve` (or `make run` in a seriatim checkout), or point at "
        f"a running cluster with -b HOST:PORT or ${BOOTSTRAP_ENV}."
    )


def _short(detail: str, *, keep_broker: bool = False) -> str:
    """'host:port/bootstrap: Connect to ipv4#... failed: Connection refused (after 0ms in
    state CONNECT)' -> 'Connection refused' (or 'host:port/bootstrap: Connection refused')."""
    match = re.search(r"^(\S+: )?.*?failed: (.+?)(?: \(after .*\))?$", detail)
    if match is None:
        return detail
    return (match.group(1) or "" if keep_broker else "") + match.group(2)


def describe_error(error: KafkaError | KafkaException | BaseException) -> str:
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        error = error.args[0]
    if isinstance(error, KafkaError):
        return f"{error.str()} ({error.name()})"
    return str(error)


def fail(message: str) -> NoReturn:
    raise CliError(message)


def connect(client: AdminClient | Producer | Consumer, settings: Settings,
            errors: ClientErrors) -> ClusterMetadata:
    """Fetch cluster metadata (every topic, never auto-creating one), or fail with a message
    naming the address: fast when every broker refuses, after ``--timeout`` otherwise."""
    deadline = time.monotonic() + settings.timeout_s
    last: BaseException | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            return client.list_topics(timeout=min(remaining, 0.25))
        except KafkaException as exc:
            last = exc
        client.poll(0)  # serve error_cb
        down = errors.unreachable()
        if down is not None:
            fail(unreachable_message(settings, _short(down.str())))
    detail = f"no answer within {settings.timeout_s:g} s"
    if errors.errors:
        detail += f" ({errors.errors[-1].str()})"
    elif last is not None:
        detail += f" ({describe_error(last)})"
    fail(unreachable_message(settings, detail))


def topic_metadata(metadata: ClusterMetadata, topic: str) -> TopicMetadata:
    """The topic's metadata, or a clear 'unknown topic' failure."""
    info = metadata.topics.get(topic)
    if info is None or (info.error is not None
                        and info.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        fail(f"unknown topic {topic!r} (create it with `seriatim topic create {topic}`; "
             "`seriatim topic list` shows the topics)")
    if info.error is not None:
        fail(f"topic {topic!r}: {describe_error(info.error)}")
    return info


def result(future: Future[T], what: str, timeout_s: float) -> T:
    """Wait for an admin future; a Kafka error becomes a CliError naming ``what``."""
    try:
        return future.result(timeout=timeout_s)
    except KafkaException as exc:
        fail(f"{what}: {describe_error(exc)}")
    except TimeoutError:
        fail(f"{what}: no answer within {timeout_s:g} s")


def list_offsets(admin: AdminClient, topic: str, partitions: list[int], spec: str,
                 settings: Settings, timestamp_ms: int = 0) -> dict[int, tuple[int, int]]:
    """ListOffsets for ``partitions``: ``spec`` is earliest, latest or time (``timestamp_ms``).
    Returns partition -> (offset, timestamp); offset -1 when no record is that recent."""
    if not partitions:
        return {}
    offset_spec: OffsetSpec
    if spec == "earliest":
        offset_spec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
    elif spec == "latest":
        offset_spec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    else:
        offset_spec = OffsetSpec.for_timestamp(timestamp_ms)
    futures = admin.list_offsets({TopicPartition(topic, p): offset_spec for p in partitions},
                                 request_timeout=settings.timeout_s)
    found = {}
    for tp, future in futures.items():
        info = result(future, f"offsets of {topic}[{tp.partition}]", settings.timeout_s + 1)
        found[tp.partition] = (info.offset, info.timestamp)
    return found


@contextmanager
def admin_client(settings: Settings) -> Iterator[tuple[AdminClient, ClusterMetadata]]:
    """A connected AdminClient and the cluster metadata."""
    errors = ClientErrors()
    admin = AdminClient(_base_config(settings, errors))
    try:
        metadata = connect(admin, settings, errors)
        yield admin, metadata
    finally:
        # AdminClient has no close(); dropping the last reference destroys the handle.
        del admin


@contextmanager
def producer_client(settings: Settings, **extra: Any) -> Iterator[
        tuple[Producer, ClusterMetadata, ClientErrors]]:
    errors = ClientErrors()
    producer = Producer(_base_config(settings, errors, **extra))
    try:
        metadata = connect(producer, settings, errors)
        yield producer, metadata, errors
    finally:
        producer.close()


@contextmanager
def consumer_client(settings: Settings, group: str | None = None, **extra: Any) -> Iterator[
        tuple[Consumer, ClusterMetadata, ClientErrors]]:
    """A consumer; without ``group`` it gets a throwaway group id and never commits (librdkafka
    requires a group id even for assign()), so reading leaves no trace in the cluster."""
    errors = ClientErrors()
    base: dict[str, Any] = {
        "group.id": group or f"seriatim-cli-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": group is not None,
        # Offsets are stored explicitly, for the records actually handled (store_offsets),
        # so a record fetched but not printed (--count reached) is not committed.
        "enable.auto.offset.store": False,
        "fetch.wait.max.ms": 100,
    }
    base.update(extra)
    consumer = Consumer(_base_config(settings, errors, **base))
    try:
        metadata = connect(consumer, settings, errors)
        errors.new()  # what connecting saw is not news
        yield consumer, metadata, errors
    finally:
        consumer.close()
