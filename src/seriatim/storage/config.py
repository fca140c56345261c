"""Per-log configuration, named as Kafka names its topic configs.

Theory of operation: :class:`LogConfig` is an immutable value. ``from_kafka`` accepts Kafka's
topic-config names (``segment.bytes``, ``retention.ms`` ...) as strings, validates every value
and refuses unknown names (as Kafka does with ``InvalidConfigurationException``), raising
:class:`~seriatim.errors.InvalidConfigError` with a message saying what to fix. ``to_kafka``
is the inverse, so a config survives a round trip through a file or the wire.

One name is seriatim's own: ``flush.policy``:

* ``always``   -- every append is fdatasync'ed before it returns (durable acknowledgement);
* ``interval`` -- appends never fsync; the owner calls ``flush()`` (group commit) and
  :meth:`PartitionLog.flush_due` says when ``flush.messages`` or ``flush.ms`` is reached;
* ``never``    -- only ``flush()``, roll-over bookkeeping and ``close()`` fsync (Kafka's default,
  relying on replication).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from seriatim import limits
from seriatim.errors import InvalidConfigError

LONG_MAX = 9_223_372_036_854_775_807
FLUSH_POLICIES = ("always", "interval", "never")
TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")
CLEANUP_POLICIES = ("delete", "compact", "compact,delete", "delete,compact")


@dataclass(frozen=True, slots=True)
class LogConfig:
    segment_bytes: int = limits.SEGMENT_BYTES_DEFAULT
    segment_ms: int = limits.SEGMENT_MS_DEFAULT
    segment_index_bytes: int = limits.SEGMENT_INDEX_BYTES_DEFAULT
    index_interval_bytes: int = limits.INDEX_INTERVAL_BYTES_DEFAULT
    retention_ms: int = limits.RETENTION_MS_DEFAULT
    retention_bytes: int = limits.RETENTION_BYTES_DEFAULT
    max_message_bytes: int = limits.MAX_MESSAGE_BYTES_DEFAULT
    message_timestamp_type: str = "CreateTime"
    flush_policy: str = "always"
    flush_messages: int = LONG_MAX
    flush_ms: int = LONG_MAX
    cleanup_policy: str = "delete"
    # Compaction (seriatim.storage.cleaner); Kafka's names and defaults.
    delete_retention_ms: int = limits.DELETE_RETENTION_MS_DEFAULT
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = LONG_MAX
    min_cleanable_dirty_ratio: float = limits.MIN_CLEANABLE_DIRTY_RATIO_DEFAULT

    def __post_init__(self) -> None:
        for f in fields(self):
            _, _, check = _KAFKA_NAMES[_ATTR_TO_NAME[f.name]]
            check(_ATTR_TO_NAME[f.name], getattr(self, f.name))

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    @property
    def compact(self) -> bool:
        """cleanup.policy includes ``compact``: the log cleaner keeps the latest value per key."""
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        """cleanup.policy includes ``delete``: retention.ms / retention.bytes apply."""
        return "delete" in self.cleanup_policy

    @property
    def flush_interval_ms(self) -> int:
        """flush.ms, or seriatim's default interval when 'interval' is chosen without one."""
        if self.flush_policy == "interval" and self.flush_ms == LONG_MAX:
            return limits.FLUSH_INTERVAL_MS_DEFAULT
        return self.flush_ms

    @classmethod
    def from_kafka(cls, props: Mapping[str, str], base: LogConfig | None = None) -> LogConfig:
        """A config from Kafka topic-config names (string values) on top of ``base``."""
        changes: dict[str, Any] = {}
        for name, raw in props.items():
            entry = _KAFKA_NAMES.get(name)
            if entry is None:
                accepted = ACCEPTED_KAFKA_NAMES.get(name)
                if accepted is None:
                    raise InvalidConfigError(f"Unknown topic config name: {name}")
                accepted(name, raw)  # valid, kept by the caller, not used by the log engine
                continue
            attr, parse, _ = entry
            changes[attr] = parse(name, raw)
        return replace(base or cls(), **changes)

    def to_kafka(self) -> dict[str, str]:
        return {name: str(getattr(self, attr)) for name, (attr, _, _) in _KAFKA_NAMES.items()}

    def with_kafka(self, props: Mapping[str, str]) -> LogConfig:
        return LogConfig.from_kafka(props, base=self)


def _parse_int(name: str, raw: str | int) -> int:
    if isinstance(raw, int):
        return raw
    try:
        return int(str(raw).strip())
    except ValueError:
        raise InvalidConfigError(f"{name} must be an integer, got {raw!r}") from None


def _parse_float(name: str, raw: str | float) -> float:
    if isinstance(raw, float):
        return raw
    try:
        return float(str(raw).strip())
    except ValueError:
        raise InvalidConfigError(f"{name} must be a number, got {raw!r}") from None


def _ratio(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) \
            or not 0.0 <= value <= 1.0:
        raise InvalidConfigError(f"{name} must be a number between 0 and 1, got {value!r}")


def _parse_str(name: str, raw: str) -> str:
    return str(raw).strip()


def _at_least(minimum: int) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, int) or value < minimum:
            raise InvalidConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")

    return check


def _one_of(choices: tuple[str, ...]) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if value not in choices:
            raise InvalidConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")

    return check


def _retention(name: str, value: Any) -> None:
    if not isinstance(value, int) or value < -1:
        raise InvalidConfigError(f"{name} must be -1 (unlimited) or >= 0, got {value!r}")


def _segment_bytes(name: str, value: Any) -> None:
    # Kafka's minimum is 14 bytes; the upper bound keeps positions inside an index's int32.
    if not isinstance(value, int) or not 14 <= value <= 2**31 - 1:
        raise InvalidConfigError(f"{name} must be between 14 and 2147483647, got {value!r}")


# Kafka name -> (attribute, parser, validator)
_KAFKA_NAMES: dict[str, tuple[str, Callable[[str, Any], Any], Callable[[str, Any], None]]] = {
    "segment.bytes": ("segment_bytes", _parse_int, _segment_bytes),
    "segment.ms": ("segment_ms", _parse_int, _at_least(1)),
    "segment.index.bytes": ("segment_index_bytes", _parse_int, _at_least(8)),
    "index.interval.bytes": ("index_interval_bytes", _parse_int, _at_least(0)),
    "retention.ms": ("retention_ms", _parse_int, _retention),
    "retention.bytes": ("retention_bytes", _parse_int, _retention),
    "max.message.bytes": ("max_message_bytes", _parse_int, _at_least(0)),
    "message.timestamp.type": ("message_timestamp_type", _parse_str, _one_of(TIMESTAMP_TYPES)),
    "flush.policy": ("flush_policy", _parse_str, _one_of(FLUSH_POLICIES)),
    "flush.messages": ("flush_messages", _parse_int, _at_least(1)),
    "flush.ms": ("flush_ms", _parse_int, _at_least(0)),
    "cleanup.policy": ("cleanup_policy", _parse_str, _one_of(CLEANUP_POLICIES)),
    "delete.retention.ms": ("delete_retention_ms", _parse_int, _at_least(0)),
    "min.compaction.lag.ms": ("min_compaction_lag_ms", _parse_int, _at_least(0)),
    "max.compaction.lag.ms": ("max_compaction_lag_ms", _parse_int, _at_least(1)),
    "min.cleanable.dirty.ratio": ("min_cleanable_dirty_ratio", _parse_float, _ratio),
}
_ATTR_TO_NAME = {attr: name for name, (attr, _, _) in _KAFKA_NAMES.items()}


def _check_int(minimum: int) -> Callable[[str, Any], None]:
    def check(name: str, raw: Any) -> None:
        _at_least(minimum)(name, _parse_int(name, raw))

    return check


def _check_bool(name: str, raw: Any) -> None:
    if str(raw).strip().lower() not in ("true", "false"):
        raise InvalidConfigError(f"{name} must be true or false, got {raw!r}")


def _check_any(name: str, raw: Any) -> None:
    return None


# Kafka topic configs the log engine does not act on (yet): accepted and validated so that Kafka
# tooling and client code that sets them works; the manager stores them with the topic.
ACCEPTED_KAFKA_NAMES: dict[str, Callable[[str, Any], None]] = {
    "compression.type": lambda n, v: _one_of(
        ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"))(n, str(v).strip()),
    "compression.gzip.level": _check_int(-1),
    "compression.lz4.level": _check_int(1),
    "compression.zstd.level": _check_int(-131072),
    "file.delete.delay.ms": _check_int(0),
    "follower.replication.throttled.replicas": _check_any,
    "leader.replication.throttled.replicas": _check_any,
    "local.retention.bytes": _check_int(-2),
    "local.retention.ms": _check_int(-2),
    "message.downconversion.enable": _check_bool,
    "message.format.version": _check_any,
    "message.timestamp.after.max.ms": _check_int(0),
    "message.timestamp.before.max.ms": _check_int(0),
    "message.timestamp.difference.max.ms": _check_int(0),
    "min.insync.replicas": _check_int(1),
    "preallocate": _check_bool,
    "remote.storage.enable": _check_bool,
    "remote.log.copy.disable": _check_bool,
    "remote.log.delete.on.disable": _check_bool,
    "segment.jitter.ms": _check_int(0),
    "unclean.leader.election.enable": _check_bool,
}
KAFKA_CONFIG_NAMES = tuple(_KAFKA_NAMES)
