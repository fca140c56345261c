"""Typed broker configuration with Kafka's dotted names, layered from four sources.

Theory of operation
-------------------
Every key has a raw string value and a :class:`ConfigSource`. Layers are applied in increasing
precedence, each replacing the raw value (and source) of the keys it sets:

1. ``DEFAULT``: Kafka's default (a few are seriatim's: ``listeners``, ``log.dir``, ``node.id``,
   ``log.flush.policy``);
2. ``FILE``: a Java-properties file (``seriatim serve -f server.properties``);
3. ``ENV``: environment variables ``SERIATIM_<KEY>``: the key upper-cased with dots as ``_``
   (``SERIATIM_LOG_DIRS`` -> ``log.dirs``). As in Kafka's Docker image, ``__`` stands for a
   literal ``_`` and ``___`` for ``-``;
4. ``FLAG``: ``-c key=value`` on the command line (and overrides given in code).

Then every known key is parsed and checked once, here, at the gateway; a bad value raises
:class:`~seriatim.errors.InvalidConfigError` naming the key, the value, where it came from and
what is allowed. After that the typed attributes of :class:`BrokerConfig` are trusted.

Unknown keys are kept (``get()`` returns them, DescribeConfigs may show them) with a warning, so
an existing Kafka ``server.properties`` works. Kafka keys that seriatim accepts but has no use for
(``num.network.threads``, ZooKeeper/KRaft quorum settings, ...) are kept without a warning.

Kafka's unit families (``log.retention.ms`` > ``.minutes`` > ``.hours``; ``log.roll.ms`` >
``.hours``; ``log.dirs`` > ``log.dir``): within one source Kafka's precedence applies; across
sources the higher source wins, so ``-c log.retention.hours=1`` overrides a file's
``log.retention.ms`` (Kafka, having one source, never faces that case).

Durability: ``log.flush.policy`` (seriatim's own key) is ``always`` by default: a produce request
with ``acks=all`` is acknowledged only after its data is fsynced, and consumers see records only
once they are fsynced (the high watermark is the flushed offset); ``acks=1`` is acknowledged once
the batch is in the log, and the same flush follows at once. The broker implements it as group
commit (one fsync covers every produce request pending at that moment), so ``always`` costs
latency, not a fsync per request. ``interval`` flushes by ``log.flush.interval.messages`` /
``.ms`` as Kafka does (acknowledging before fsync); ``never`` leaves flushing to the OS. The
interval keys are used only with ``interval``.

Ports: ``listeners`` may use port 0; :meth:`BrokerConfig.with_bound_ports` replaces it (and the
advertised port 0 of the same listener) with the port the server actually bound.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from pathlib import Path
from typing import Any

from seriatim.errors import InvalidConfigError

log = logging.getLogger("seriatim.config")

INT_MAX = 2**31 - 1
INT_MIN = -(2**31)
LONG_MAX = 2**63 - 1
LONG_MIN = -(2**63)

ENV_PREFIX = "SERIATIM_"
#: SERIATIM_* variables that tune the process, not the broker; never read as config keys.
RUNTIME_ENV_VARS = frozenset({"SERIATIM_UVLOOP", "SERIATIM_LOG_LEVEL"})

FLUSH_POLICIES = ("always", "interval", "never")


class ConfigSource(IntEnum):
    """Where a value came from; the order is the precedence."""

    DEFAULT = 0
    FILE = 1
    ENV = 2
    FLAG = 3

    @property
    def kafka_source(self) -> int:
        """The DescribeConfigs ``ConfigSource`` code: DEFAULT_CONFIG (5) or STATIC_BROKER (4)."""
        return 5 if self is ConfigSource.DEFAULT else 4


@dataclass(frozen=True, slots=True)
class Listener:
    """One ``NAME://host:port`` endpoint. ``host == ""`` binds every interface."""

    name: str
    host: str
    port: int

    @property
    def address(self) -> str:
        """``host:port`` as clients write it (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.name}://{self.address}"


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """A key's effective raw value (None: unset, no default) and its provenance."""

    name: str
    value: str | None
    source: ConfigSource
    origin: str  # human-readable: "default", "server.properties:12", "env SERIATIM_X", "-c"
    known: bool = True


# --- value parsers: (raw) -> value, or ValueError("what is allowed") ------------------------

_INT_RE = re.compile(r"[+-]?[0-9]+")


def _int(lo: int = INT_MIN, hi: int = INT_MAX) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not _INT_RE.fullmatch(raw):
            raise ValueError(f"expected an integer in [{lo}, {hi}]")
        value = int(raw)
        if not lo <= value <= hi:
            raise ValueError(f"expected an integer in [{lo}, {hi}]")
        return value

    return parse


def _long(lo: int = LONG_MIN, hi: int = LONG_MAX) -> Callable[[str], int]:
    return _int(lo, hi)


def _double(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected a number in [{lo}, {hi}]") from None
        if not lo <= value <= hi:
            raise ValueError(f"expected a number in [{lo}, {hi}]")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ValueError("expected true or false")


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return raw

    return parse


def _choice_list(*allowed: str) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        items = tuple(item.strip() for item in raw.split(",") if item.strip())
        if not items or any(item not in allowed for item in items):
            raise ValueError(f"expected a comma-separated list of {', '.join(allowed)}")
        return items

    return parse


def _dirs(raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    if not items:
        raise ValueError("expected a comma-separated list of directories")
    return items


_LISTENER_RE = re.compile(r"([A-Za-z0-9_]+)://(\[[0-9A-Fa-f:.%a-z]*\]|[^:\[\]/]*):([0-9]{1,5})")


def _listeners(raw: str) -> tuple[Listener, ...]:
    """``NAME://host:port,...``; host may be empty (all interfaces) or ``[ipv6]``."""
    result: list[Listener] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        m = _LISTENER_RE.fullmatch(item)
        if m is None:
            raise ValueError(
                f"{item!r} is not NAME://host:port (e.g. PLAINTEXT://127.0.0.1:9092, "
                "PLAINTEXT://[::1]:9092, PLAINTEXT://:9092 for every interface)"
            )
        name, host, port = m.group(1).upper(), m.group(2), int(m.group(3))
        if host.startswith("["):
            host = host[1:-1]
        if port > 65535:
            raise ValueError(f"port {port} in {item!r} is not in [0, 65535]")
        if any(other.name == name for other in result):
            raise ValueError(f"listener name {name} appears twice")
        result.append(Listener(name, host, port))
    if not result:
        raise ValueError("expected at least one NAME://host:port")
    return tuple(result)


def _protocol_map(raw: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, sep, proto = item.partition(":")
        if not sep or not name.strip() or not proto.strip():
            raise ValueError("expected NAME:PROTOCOL pairs separated by commas")
        result[name.strip().upper()] = proto.strip().upper()
    return result


def _ip_overrides(raw: str) -> dict[str, int]:
    """``max.connections.per.ip.overrides``: ``host:count`` pairs, comma separated (an IPv6
    host keeps its colons: the count is after the last one)."""
    result: dict[str, int] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        host, sep, count = item.rpartition(":")
        host = host.strip().strip("[]")
        if not sep or not host:
            raise ValueError(f"expected host:count, got {item!r}")
        result[host] = _int(0)(count.strip())
    return result


def _names(raw: str) -> tuple[str, ...]:
    return tuple(item.strip().upper() for item in raw.split(",") if item.strip())


@dataclass(frozen=True, slots=True)
class _Key:
    default: str | None
    parse: Callable[[str], Any]


_K = _Key
# Every key seriatim reads or validates, with Kafka's default (seriatim's where noted).
_KEYS: dict[str, _Key] = {
    # network
    "listeners": _K("PLAINTEXT://127.0.0.1:9092", _listeners),  # Kafka: PLAINTEXT://:9092
    "advertised.listeners": _K(None, _listeners),
    "listener.security.protocol.map": _K(
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,"
        "SASL_SSL:SASL_SSL",
        _protocol_map,
    ),
    "controller.listener.names": _K(None, _names),
    "socket.request.max.bytes": _K("104857600", _int(1)),
    "connections.max.idle.ms": _K("600000", _long()),
    "max.connections": _K(str(INT_MAX), _int(0)),
    "max.connections.per.ip": _K(str(INT_MAX), _int(0)),
    "max.connections.per.ip.overrides": _K("", _ip_overrides),
    # seriatim's own: a request frame must complete this long after its first byte (slowloris)
    "connections.request.read.timeout.ms": _K("30000", _long()),
    # identity and storage
    "node.id": _K(None, _int(0)),  # seriatim's default is 1, see _build
    "broker.id": _K(None, _int(-1)),  # Kafka's pre-KRaft name for node.id
    "log.dirs": _K(None, _dirs),
    "log.dir": _K("./data", _dirs),  # Kafka: /tmp/kafka-logs
    # topics
    "num.partitions": _K("1", _int(1)),
    "auto.create.topics.enable": _K("true", _bool),
    "default.replication.factor": _K("1", _int(1)),
    "delete.topic.enable": _K("true", _bool),
    "min.insync.replicas": _K("1", _int(1)),
    "unclean.leader.election.enable": _K("false", _bool),
    # log defaults for topics (see topic_defaults())
    "message.max.bytes": _K("1048588", _int(0)),
    "log.segment.bytes": _K("1073741824", _int(14)),
    "log.roll.ms": _K(None, _long(1)),
    "log.roll.hours": _K("168", _int(1)),
    "log.roll.jitter.ms": _K(None, _long(0)),
    "log.roll.jitter.hours": _K("0", _int(0)),
    "log.retention.ms": _K(None, _long()),
    "log.retention.minutes": _K(None, _int()),
    "log.retention.hours": _K("168", _int()),
    "log.retention.bytes": _K("-1", _long()),
    "log.retention.check.interval.ms": _K("300000", _long(1)),
    "log.index.interval.bytes": _K("4096", _int(0)),
    "log.index.size.max.bytes": _K("10485760", _int(4)),
    "log.flush.interval.messages": _K(str(LONG_MAX), _long(1)),
    "log.flush.interval.ms": _K(None, _long(0)),
    "log.flush.policy": _K("always", _choice(*FLUSH_POLICIES)),  # seriatim's own
    # seriatim's own: group-commit rounds over several logs use one syncfs(2) of the data
    # file system instead of an fdatasync per log (for a data directory on its own disk).
    "log.flush.syncfs": _K("false", _bool),
    "log.message.timestamp.type": _K("CreateTime", _choice("CreateTime", "LogAppendTime")),
    "log.message.timestamp.before.max.ms": _K(str(LONG_MAX), _long(0)),
    "log.message.timestamp.after.max.ms": _K(str(LONG_MAX), _long(0)),
    "log.cleanup.policy": _K("delete", _choice_list("delete", "compact")),
    "log.segment.delete.delay.ms": _K("60000", _long(0)),
    "log.preallocate": _K("false", _bool),
    "log.cleaner.min.compaction.lag.ms": _K("0", _long(0)),
    "log.cleaner.max.compaction.lag.ms": _K(str(LONG_MAX), _long(1)),
    "log.cleaner.delete.retention.ms": _K("86400000", _long(0)),
    "log.cleaner.min.cleanable.ratio": _K("0.5", _double(0.0, 1.0)),
    "compression.type": _K(
        "producer", _choice("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
    ),
    # groups and internal topics
    "group.initial.rebalance.delay.ms": _K("3000", _int(0)),
    "group.min.session.timeout.ms": _K("6000", _int(0)),
    "group.max.session.timeout.ms": _K("1800000", _int(0)),
    "group.max.size": _K(str(INT_MAX), _int(1)),
    "offsets.topic.num.partitions": _K("50", _int(1)),
    "offsets.topic.replication.factor": _K("3", _int(1)),
    "offsets.topic.segment.bytes": _K("104857600", _int(1)),
    "offsets.retention.minutes": _K("10080", _int(1)),
    "offsets.commit.timeout.ms": _K("5000", _int(1)),
    "transaction.state.log.num.partitions": _K("50", _int(1)),
    "transaction.state.log.replication.factor": _K("3", _int(1)),
    "transaction.state.log.min.isr": _K("2", _int(1)),
    "transaction.state.log.segment.bytes": _K("104857600", _int(1)),
    "transactional.id.expiration.ms": _K("604800000", _int(1)),
    "producer.id.expiration.ms": _K("86400000", _int(1)),
    "producer.id.expiration.check.interval.ms": _K("600000", _int(1)),
    "transaction.max.timeout.ms": _K("900000", _int(1)),
}

# Kafka keys accepted without a warning although seriatim has no use for them (so a stock
# server.properties loads quietly). Their values are kept but not validated.
_ACCEPTED_KEYS = frozenset(
    {
        "num.network.threads",
        "num.io.threads",
        "num.replica.fetchers",
        "num.recovery.threads.per.data.dir",
        "socket.send.buffer.bytes",
        "socket.receive.buffer.bytes",
        "queued.max.requests",
        "log.retention.check.interval.ms",
        "log.flush.scheduler.interval.ms",
        "log.flush.offset.checkpoint.interval.ms",
        "log.message.downconversion.enable",
        "log.message.format.version",
        "inter.broker.listener.name",
        "inter.broker.protocol.version",
        "process.roles",
        "controller.quorum.voters",
        "controller.quorum.bootstrap.servers",
        "auto.leader.rebalance.enable",
        "replica.lag.time.max.ms",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
        "metadata.log.dir",
        "cluster.id",
    }
)
_ACCEPTED_PREFIXES = (
    "zookeeper.",
    "log.cleaner.",
    "transaction.state.log.",
    "listener.name.",
    "controller.quorum.",
    "group.coordinator.",
    "group.consumer.",
    "metric.",
    "metrics.",
    "confluent.",
)

# topic-level key -> broker keys that supply its default, in Kafka's precedence order.
_TOPIC_SYNONYMS: dict[str, tuple[str, ...]] = {
    "segment.bytes": ("log.segment.bytes",),
    "segment.ms": ("log.roll.ms", "log.roll.hours"),
    "segment.jitter.ms": ("log.roll.jitter.ms", "log.roll.jitter.hours"),
    "segment.index.bytes": ("log.index.size.max.bytes",),
    "index.interval.bytes": ("log.index.interval.bytes",),
    "retention.ms": ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
    "retention.bytes": ("log.retention.bytes",),
    "max.message.bytes": ("message.max.bytes",),
    "message.timestamp.type": ("log.message.timestamp.type",),
    "message.timestamp.before.max.ms": ("log.message.timestamp.before.max.ms",),
    "message.timestamp.after.max.ms": ("log.message.timestamp.after.max.ms",),
    "cleanup.policy": ("log.cleanup.policy",),
    "compression.type": ("compression.type",),
    "flush.messages": ("log.flush.interval.messages",),
    "flush.ms": ("log.flush.interval.ms",),
    "flush.policy": ("log.flush.policy",),  # seriatim's own topic key
    "min.insync.replicas": ("min.insync.replicas",),
    "unclean.leader.election.enable": ("unclean.leader.election.enable",),
    "file.delete.delay.ms": ("log.segment.delete.delay.ms",),
    "preallocate": ("log.preallocate",),
    "min.compaction.lag.ms": ("log.cleaner.min.compaction.lag.ms",),
    "max.compaction.lag.ms": ("log.cleaner.max.compaction.lag.ms",),
    "delete.retention.ms": ("log.cleaner.delete.retention.ms",),
    "min.cleanable.dirty.ratio": ("log.cleaner.min.cleanable.ratio",),
}

#: The topic keys the log engine reads; what topic_defaults() returns by default.
LOG_TOPIC_KEYS = (
    "segment.bytes",
    "segment.ms",
    "segment.index.bytes",
    "index.interval.bytes",
    "retention.ms",
    "retention.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "cleanup.policy",
    "flush.policy",
    "flush.messages",
    "flush.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "delete.retention.ms",
    "min.cleanable.dirty.ratio",
)

# Unit families: (key, milliseconds per unit), in Kafka's precedence order.
_MS_FAMILIES: dict[str, tuple[tuple[str, int], ...]] = {
    "segment.ms": (("log.roll.ms", 1), ("log.roll.hours", 3_600_000)),
    "segment.jitter.ms": (("log.roll.jitter.ms", 1), ("log.roll.jitter.hours", 3_600_000)),
    "retention.ms": (
        ("log.retention.ms", 1),
        ("log.retention.minutes", 60_000),
        ("log.retention.hours", 3_600_000),
    ),
}


def is_known_key(name: str) -> bool:
    """True for keys seriatim reads or knowingly accepts (no 'unknown key' warning)."""
    return name in _KEYS or name in _ACCEPTED_KEYS or name.startswith(_ACCEPTED_PREFIXES)


# --- sources ------------------------------------------------------------------------------------


def parse_properties(text: str) -> list[tuple[str, str, int]]:
    """Parse Java-properties text into ``(key, value, line_number)`` triples.

    Follows ``java.util.Properties.load``: ``#``/``!`` comment lines; ``key=value``,
    ``key: value`` or ``key value``; a line ending in an odd number of backslashes continues;
    escapes ``\\t \\n \\r \\f \\uXXXX`` and ``\\x`` for a literal ``x``.
    """
    out: list[tuple[str, str, int]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i
        line = lines[i].lstrip(" \t\f")
        i += 1
        if not line or line[0] in "#!":
            continue
        # Join continuation lines (odd count of trailing backslashes).
        while (len(line) - len(line.rstrip("\\"))) % 2 == 1:
            line = line[:-1]
            if i >= len(lines):
                break
            line += lines[i].lstrip(" \t\f")
            i += 1
        key_end = _key_end(line)
        key = line[:key_end]
        rest = line[key_end:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        out.append((_unescape(key), _unescape(rest), start + 1))
    return out


def _key_end(line: str) -> int:
    j = 0
    while j < len(line):
        ch = line[j]
        if ch == "\\":
            j += 2
            continue
        if ch in "=: \t\f":
            return j
        j += 1
    return len(line)


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(s: str) -> str:
    if "\\" not in s:
        return s
    out: list[str] = []
    j = 0
    while j < len(s):
        ch = s[j]
        if ch != "\\" or j + 1 >= len(s):
            out.append(ch)
            j += 1
            continue
        nxt = s[j + 1]
        if nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", s[j + 2 : j + 6]):
            out.append(chr(int(s[j + 2 : j + 6], 16)))
            j += 6
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        j += 2
    return "".join(out)


def env_key(var: str) -> str | None:
    """``SERIATIM_LOG_DIRS`` -> ``log.dirs`` (``__`` -> ``_``, ``___`` -> ``-``), else None."""
    if not var.startswith(ENV_PREFIX) or var in RUNTIME_ENV_VARS:
        return None
    suffix = var[len(ENV_PREFIX) :].lower()
    if not suffix:
        return None

    def repl(m: re.Match[str]) -> str:
        return {1: ".", 2: "_", 3: "-"}.get(len(m.group(0)), m.group(0))

    return re.sub(r"_+", repl, suffix)


def parse_flag(flag: str) -> tuple[str, str]:
    """``key=value`` -> ``(key, value)``; raises InvalidConfigError if malformed."""
    key, sep, value = flag.partition("=")
    if not sep or not key.strip():
        raise InvalidConfigError(f"-c expects key=value, got {flag!r}")
    return key.strip(), value.strip()


# --- the config ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BrokerConfig:
    """The broker's effective configuration: typed fields plus every raw entry.

    Build it with :meth:`load` (file, env, flags) or :meth:`from_props` (code and tests). The
    typed fields are the parsed values of the keys in their comments; :meth:`get`,
    :meth:`entry` and :meth:`entries` give raw strings and provenance for any key, known or not.
    """

    listeners: tuple[Listener, ...]  # listeners, minus controller.listener.names
    advertised_listeners: tuple[Listener, ...]  # advertised.listeners, one per listener
    node_id: int  # node.id (or broker.id), default 1
    log_dirs: tuple[str, ...]  # log.dirs, else log.dir; only the first is used
    num_partitions: int  # num.partitions
    auto_create_topics_enable: bool  # auto.create.topics.enable
    default_replication_factor: int  # default.replication.factor
    delete_topic_enable: bool  # delete.topic.enable
    message_max_bytes: int  # message.max.bytes
    socket_request_max_bytes: int  # socket.request.max.bytes
    connections_max_idle_ms: int  # connections.max.idle.ms (< 0: never)
    log_segment_bytes: int  # log.segment.bytes
    log_roll_ms: int  # log.roll.ms, else log.roll.hours
    log_retention_ms: int  # log.retention.ms/.minutes/.hours resolved; -1 = unlimited
    log_retention_bytes: int  # log.retention.bytes; -1 = unlimited
    log_index_interval_bytes: int  # log.index.interval.bytes
    log_flush_interval_messages: int  # log.flush.interval.messages
    log_flush_interval_ms: int | None  # log.flush.interval.ms; None = unset
    retention_check_interval_ms: int  # log.retention.check.interval.ms
    producer_id_expiration_ms: int  # producer.id.expiration.ms
    producer_id_expiration_check_interval_ms: int  # producer.id.expiration.check.interval.ms
    flush_policy: str  # log.flush.policy: always | interval | never
    log_flush_syncfs: bool  # log.flush.syncfs
    log_message_timestamp_type: str  # log.message.timestamp.type
    log_cleanup_policy: tuple[str, ...]  # log.cleanup.policy
    compression_type: str  # compression.type
    group_initial_rebalance_delay_ms: int  # group.initial.rebalance.delay.ms
    group_min_session_timeout_ms: int  # group.min.session.timeout.ms
    group_max_session_timeout_ms: int  # group.max.session.timeout.ms
    offsets_topic_num_partitions: int  # offsets.topic.num.partitions
    offsets_retention_minutes: int  # offsets.retention.minutes
    max_connections: int = INT_MAX  # max.connections (all listeners together)
    max_connections_per_ip: int = INT_MAX  # max.connections.per.ip
    # max.connections.per.ip.overrides: host -> limit
    max_connections_per_ip_overrides: Mapping[str, int] = field(default_factory=dict)
    # connections.request.read.timeout.ms (seriatim's own; <= 0: never)
    connections_request_read_timeout_ms: int = 30_000
    warnings: tuple[str, ...] = ()  # what was logged while building (unknown keys ...)
    _entries: Mapping[str, ConfigEntry] = field(default_factory=dict, repr=False)

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        *,
        config_file: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        flags: Iterable[str] = (),
        overrides: Mapping[str, str] | None = None,
    ) -> BrokerConfig:
        """Defaults < ``config_file`` < ``env`` (default: ``os.environ``) < ``flags``
        (``"key=value"`` strings) < ``overrides`` (also recorded as FLAG)."""
        entries = _defaults()
        if config_file is not None:
            path = Path(config_file)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise InvalidConfigError(f"cannot read config file {path}: {exc}") from None
            for key, value, line in parse_properties(text):
                _set(entries, key, value, ConfigSource.FILE, f"{path.name}:{line}")
        for var, value in sorted((os.environ if env is None else env).items()):
            name = env_key(var)
            if name is not None:
                _set(entries, name, value, ConfigSource.ENV, f"env {var}")
        for flag in flags:
            key, value = parse_flag(flag)
            _set(entries, key, value, ConfigSource.FLAG, f"-c {key}")
        for key, value in (overrides or {}).items():
            _set(entries, key, value, ConfigSource.FLAG, "override")
        return _build(entries)

    @classmethod
    def from_props(cls, props: Mapping[str, str] | None = None, **kwargs: Any) -> BrokerConfig:
        """Defaults plus ``props`` (dotted keys) plus ``kwargs`` (``log_dirs`` -> ``log.dirs``);
        no file, no environment. Values may be str, int or bool."""
        merged = {key: _to_str(value) for key, value in (props or {}).items()}
        merged.update({key.replace("_", "."): _to_str(value) for key, value in kwargs.items()})
        return cls.load(env={}, overrides=merged)

    def with_overrides(self, props: Mapping[str, Any]) -> BrokerConfig:
        """A new config with ``props`` applied on top (source FLAG), re-validated."""
        entries = dict(self._entries)
        for key, value in props.items():
            _set(entries, key, _to_str(value), ConfigSource.FLAG, "override")
        return _build(entries)

    def with_bound_ports(self, bound: Mapping[str, int]) -> BrokerConfig:
        """Replace port 0 of listener ``name`` (and of its advertised form) by ``bound[name]``.

        Called by the server once it has bound, so the broker advertises the real port and a
        restart reuses it. Raw entries are updated too, so ``get("listeners")`` agrees.
        """

        def fix(listeners: tuple[Listener, ...]) -> tuple[Listener, ...]:
            return tuple(
                replace(lis, port=bound[lis.name]) if lis.port == 0 and lis.name in bound else lis
                for lis in listeners
            )

        listeners = fix(self.listeners)
        advertised = fix(self.advertised_listeners)
        entries = dict(self._entries)
        for key, value in (("listeners", listeners), ("advertised.listeners", advertised)):
            old = entries[key]
            if self.get(key) is not None or key == "listeners":
                entries[key] = replace(old, value=",".join(str(lis) for lis in value))
        return replace(self, listeners=listeners, advertised_listeners=advertised, _entries=entries)

    # --- raw access ----------------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        """The raw effective value of any key (None if unset and without default)."""
        entry = self._entries.get(name)
        return None if entry is None else entry.value

    def source(self, name: str) -> ConfigSource:
        entry = self._entries.get(name)
        return ConfigSource.DEFAULT if entry is None else entry.source

    def entry(self, name: str) -> ConfigEntry | None:
        return self._entries.get(name)

    def entries(self) -> list[ConfigEntry]:
        """Every key with a value (known, accepted or unknown), sorted by name."""
        return [e for _, e in sorted(self._entries.items()) if e.value is not None]

    def unknown_keys(self) -> list[str]:
        return sorted(name for name, e in self._entries.items() if not e.known)

    # --- derived -------------------------------------------------------------------------------

    @property
    def log_dir(self) -> str:
        """The data directory in use (the first of ``log.dirs``)."""
        return self.log_dirs[0]

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the first advertised listener (what clients should be given)."""
        return self.advertised_listeners[0].address

    def advertised_for(self, listener_name: str) -> Listener:
        """The endpoint to advertise to a client that connected through ``listener_name``."""
        for lis in self.advertised_listeners:
            if lis.name == listener_name:
                return lis
        return self.advertised_listeners[0]

    def topic_defaults(self, *, include_all: bool = False) -> dict[str, str]:
        """Topic-level defaults from the broker's ``log.*`` keys, unit families resolved.

        By default only the keys the log engine reads (``storage.LogConfig.from_kafka``
        accepts exactly these): ``segment.bytes``, ``segment.ms``, ``segment.index.bytes``,
        ``index.interval.bytes``, ``retention.ms``, ``retention.bytes``,
        ``max.message.bytes``, ``message.timestamp.type``, ``cleanup.policy``,
        ``flush.policy``, ``flush.messages``, ``flush.ms``. With ``include_all``, every topic
        key that has a broker default (``compression.type``, ``min.insync.replicas`` ...), as
        DescribeConfigs shows them. Keys without a value (``flush.ms`` unset) are left out.
        """
        out: dict[str, str] = {}
        for topic_key in _TOPIC_SYNONYMS if include_all else LOG_TOPIC_KEYS:
            value = self._topic_value(topic_key)
            if value is not None:
                out[topic_key] = value
        return out

    def broker_synonyms(self, topic_key: str) -> list[ConfigEntry]:
        """The broker entries behind a topic key that have a value, in Kafka's precedence
        order, for DescribeConfigs ``synonyms``. Empty for keys with no broker synonym."""
        result = []
        for name in _TOPIC_SYNONYMS.get(topic_key, ()):
            entry = self._entries.get(name)
            if entry is not None and entry.value is not None:
                result.append(entry)
        return result

    def _topic_value(self, topic_key: str) -> str | None:
        family = _MS_FAMILIES.get(topic_key)
        if family is not None:
            return str(_resolve_ms(self._entries, family))
        (name,) = _TOPIC_SYNONYMS[topic_key]
        value = self.get(name)
        if value is None:
            return None
        parsed = _KEYS[name].parse(value)
        if isinstance(parsed, bool):
            return "true" if parsed else "false"
        if isinstance(parsed, tuple):
            return ",".join(parsed)
        return str(parsed)


# --- building -----------------------------------------------------------------------------------


def _to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _defaults() -> dict[str, ConfigEntry]:
    return {
        name: ConfigEntry(name, key.default, ConfigSource.DEFAULT, "default")
        for name, key in _KEYS.items()
    }


def _set(
    entries: dict[str, ConfigEntry], key: str, value: str, source: ConfigSource, origin: str
) -> None:
    key = key.strip()
    entries[key] = ConfigEntry(key, value.strip(), source, origin, is_known_key(key))


def _parse(entries: Mapping[str, ConfigEntry], name: str) -> Any:
    entry = entries[name]
    if entry.value is None:
        return None
    try:
        return _KEYS[name].parse(entry.value)
    except ValueError as exc:
        raise InvalidConfigError(
            f"Invalid value {entry.value!r} for configuration {name} ({entry.origin}): {exc}"
        ) from None


def _pick(entries: Mapping[str, ConfigEntry], names: Iterable[str]) -> str | None:
    """The key of a family that wins: highest source, then Kafka's order within a source."""
    best: tuple[int, int, str] | None = None
    for rank, name in enumerate(names):
        entry = entries[name]
        if entry.value is None:
            continue
        candidate = (int(entry.source), -rank, name)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return None if best is None else best[2]


def _resolve_ms(entries: Mapping[str, ConfigEntry], family: tuple[tuple[str, int], ...]) -> int:
    factors = dict(family)
    name = _pick(entries, factors)
    if name is None:  # unreachable with the table above: the coarsest unit has a default
        return -1
    millis = int(_parse(entries, name)) * factors[name]
    # Kafka: a negative retention means unlimited (-1); clamp overflow to a long.
    return -1 if millis < 0 else min(millis, LONG_MAX)


def _build(entries: dict[str, ConfigEntry]) -> BrokerConfig:
    warnings: list[str] = []
    for name, entry in sorted(entries.items()):
        if not entry.known:
            msg = (
                f"unknown configuration key {name!r} ({entry.origin}): kept, "
                "but seriatim does not use it"
            )
            log.warning("%s", msg)
            warnings.append(msg)
    # Validate every known key once, even the ones without a typed field.
    parsed = {name: _parse(entries, name) for name in _KEYS}

    listeners, advertised = _resolve_listeners(entries, parsed)
    dirs_key = _pick(entries, ("log.dirs", "log.dir"))
    log_dirs: tuple[str, ...] = parsed[dirs_key] if dirs_key else ("./data",)
    if len(log_dirs) > 1:
        msg = f"log.dirs lists {len(log_dirs)} directories; seriatim uses only {log_dirs[0]!r}"
        log.warning("%s", msg)
        warnings.append(msg)
    node_key = _pick(entries, ("node.id", "broker.id"))
    node_id = parsed[node_key] if node_key else 1
    if node_id < 0:  # broker.id=-1 is Kafka's "generate one"; a single node is simply 1
        node_id = 1
    if parsed["group.min.session.timeout.ms"] > parsed["group.max.session.timeout.ms"]:
        raise InvalidConfigError(
            "group.min.session.timeout.ms must not exceed group.max.session.timeout.ms"
        )

    return BrokerConfig(
        listeners=listeners,
        advertised_listeners=advertised,
        node_id=node_id,
        log_dirs=log_dirs,
        num_partitions=parsed["num.partitions"],
        auto_create_topics_enable=parsed["auto.create.topics.enable"],
        default_replication_factor=parsed["default.replication.factor"],
        delete_topic_enable=parsed["delete.topic.enable"],
        message_max_bytes=parsed["message.max.bytes"],
        socket_request_max_bytes=parsed["socket.request.max.bytes"],
        connections_max_idle_ms=parsed["connections.max.idle.ms"],
        log_segment_bytes=parsed["log.segment.bytes"],
        log_roll_ms=_resolve_ms(entries, _MS_FAMILIES["segment.ms"]),
        log_retention_ms=_resolve_ms(entries, _MS_FAMILIES["retention.ms"]),
        log_retention_bytes=parsed["log.retention.bytes"],
        log_index_interval_bytes=parsed["log.index.interval.bytes"],
        log_flush_interval_messages=parsed["log.flush.interval.messages"],
        log_flush_interval_ms=parsed["log.flush.interval.ms"],
        retention_check_interval_ms=parsed["log.retention.check.interval.ms"],
        producer_id_expiration_ms=parsed["producer.id.expiration.ms"],
        producer_id_expiration_check_interval_ms=parsed[
            "producer.id.expiration.check.interval.ms"],
        flush_policy=parsed["log.flush.policy"],
        log_flush_syncfs=parsed["log.flush.syncfs"],
        log_message_timestamp_type=parsed["log.message.timestamp.type"],
        log_cleanup_policy=parsed["log.cleanup.policy"],
        compression_type=parsed["compression.type"],
        group_initial_rebalance_delay_ms=parsed["group.initial.rebalance.delay.ms"],
        group_min_session_timeout_ms=parsed["group.min.session.timeout.ms"],
        group_max_session_timeout_ms=parsed["group.max.session.timeout.ms"],
        offsets_topic_num_partitions=parsed["offsets.topic.num.partitions"],
        offsets_retention_minutes=parsed["offsets.retention.minutes"],
        max_connections=parsed["max.connections"],
        max_connections_per_ip=parsed["max.connections.per.ip"],
        max_connections_per_ip_overrides=parsed["max.connections.per.ip.overrides"],
        connections_request_read_timeout_ms=parsed["connections.request.read.timeout.ms"],
        warnings=tuple(warnings),
        _entries=entries,
    )


_UNROUTABLE = ("0.0.0.0", "::")


def _resolve_listeners(
    entries: Mapping[str, ConfigEntry], parsed: Mapping[str, Any]
) -> tuple[tuple[Listener, ...], tuple[Listener, ...]]:
    protocols: dict[str, str] = parsed["listener.security.protocol.map"]
    controller_names: tuple[str, ...] = parsed["controller.listener.names"] or ()
    served: list[Listener] = []
    for lis in parsed["listeners"]:
        if lis.name in controller_names:
            # A KRaft server.properties names a controller listener; a single seriatim node
            # has no controller quorum, so it is not served.
            log.info("not serving controller listener %s", lis)
            continue
        protocol = protocols.get(lis.name, lis.name)
        if protocol != "PLAINTEXT":
            raise InvalidConfigError(
                f"Invalid value {entries['listeners'].value!r} for configuration listeners: "
                f"listener {lis.name} uses security protocol {protocol}; seriatim serves "
                "PLAINTEXT only"
            )
        served.append(lis)
    if not served:
        raise InvalidConfigError(
            f"Invalid value {entries['listeners'].value!r} for configuration listeners: "
            "no broker listener is left once controller.listener.names are removed"
        )
    by_name: dict[str, Listener] = {}
    for lis in parsed["advertised.listeners"] or ():
        if not any(s.name == lis.name for s in served):
            raise InvalidConfigError(
                f"Invalid value {entries['advertised.listeners'].value!r} for configuration "
                f"advertised.listeners: listener name {lis.name} is not in listeners "
                f"({', '.join(s.name for s in served)})"
            )
        by_name[lis.name] = lis
    advertised: list[Listener] = []
    for lis in served:
        adv = by_name.get(lis.name, lis)
        if adv.host in _UNROUTABLE:
            key = "advertised.listeners" if lis.name in by_name else "listeners"
            raise InvalidConfigError(
                f"Invalid value {entries[key].value!r} for configuration {key}: "
                f"{adv.host} is not an address clients can connect to; set "
                "advertised.listeners to a routable host, e.g. PLAINTEXT://myhost:9092"
            )
        if adv.host == "":
            # Kafka advertises the canonical host name for an empty host.
            adv = replace(adv, host=socket.gethostname())
        advertised.append(adv)
    return tuple(served), tuple(advertised)
