"""LogManager: a data directory of ``<topic>-<partition>/`` partition logs and their topic configs.

Theory of operation
-------------------
The manager owns the data directory (it holds ``<data_dir>/.lock``), the topic table and every
open :class:`PartitionLog`. The topic table — name, partition count, per-topic config
overrides in Kafka names — lives in ``topics.json``, written atomically (tmp, fsync, rename,
fsync dir) with a version and a CRC-32C of its canonical body, so a torn or edited file is
refused loudly instead of silently losing overrides.

Order of operations keeps a crash harmless:

* create/add partitions: write ``topics.json`` first, then create the directories (a missing
  directory of a known topic is created on the next start);
* delete: write ``topics.json`` first, then rename each directory to ``*.<n>-delete`` and remove
  it; leftover ``-delete`` directories are removed on start;
* close: flush and close every log (each writes its clean-shutdown marker last).

Topic names follow Kafka's rule: 1-249 characters of ``[a-zA-Z0-9._-]``, not ``.`` or ``..``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import crc32c

from seriatim.clock import SYSTEM_CLOCK, Clock
from seriatim.errors import (
    ErrorCode,
    InvalidConfigError,
    KafkaError,
    LogClosedError,
    StorageError,
    UnknownTopicOrPartitionError,
)
from seriatim.storage.checkpoint import write_atomic
from seriatim.storage.cleaner import Cleaner, CleanerConfig, CleanStats
from seriatim.storage.config import LogConfig
from seriatim.storage.fileops import REAL_FILE_OPS, FileOps
from seriatim.storage.lock import DirLock
from seriatim.storage.log import PartitionLog

TOPICS_FILE = "topics.json"
TOPICS_FILE_VERSION = 1
MAX_TOPIC_NAME_LENGTH = 249
MAX_PARTITIONS = 100_000
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")
DELETE_SUFFIX = "-delete"

log = logging.getLogger("seriatim.storage")


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    overrides: dict[str, str] = field(default_factory=dict)


def validate_topic_name(name: str) -> None:
    """Kafka's Topic.validate: raise KafkaError(INVALID_TOPIC_EXCEPTION) with the reason."""
    if not name:
        reason = "the empty string is not allowed"
    elif name in (".", ".."):
        reason = f"{name!r} is not allowed"
    elif len(name) > MAX_TOPIC_NAME_LENGTH:
        reason = f"longer than {MAX_TOPIC_NAME_LENGTH} characters"
    elif not _LEGAL_TOPIC.fullmatch(name):
        reason = "only ASCII letters, digits, '.', '_' and '-' are allowed"
    else:
        return
    raise KafkaError(f"invalid topic name {name!r}: {reason}", ErrorCode.INVALID_TOPIC_EXCEPTION)


class LogManager:
    """Every partition log of one data directory. Not thread-safe: one owner mutates it."""

    def __init__(self, data_dir: str | os.PathLike[str], default_config: LogConfig | None = None,
                 *, clock: Clock = SYSTEM_CLOCK, fs: FileOps | None = None,
                 group_commit: bool = False, cleaner: CleanerConfig | None = None) -> None:
        self._dir = os.path.abspath(os.fspath(data_dir))
        self.cleaner = Cleaner(cleaner)  # thread-safe: one cleaner per log at a time
        self._group_commit = group_commit  # see PartitionLog.open
        self._default = default_config or LogConfig()
        self._clock = clock
        self._fs = fs or REAL_FILE_OPS
        os.makedirs(self._dir, exist_ok=True)
        self._lock = DirLock(self._dir)
        self._topics: dict[str, TopicInfo] = {}
        self._generation = 0  # bumped whenever topics or partition counts change
        self._configs: dict[str, LogConfig] = {}
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._closed = False
        try:
            self._topics = self._read_topics()
            self._remove_deleted_dirs()
            for info in self._topics.values():
                self._configs[info.name] = self._default.with_kafka(info.overrides)
                for p in range(info.partitions):
                    self._open_partition(info.name, p)
            self._warn_unknown_dirs()
        except BaseException:
            self._close_logs(clean=False)
            self._lock.release()
            raise

    # --- the topic table -----------------------------------------------------------------------

    def _topics_path(self) -> str:
        return os.path.join(self._dir, TOPICS_FILE)

    def _read_topics(self) -> dict[str, TopicInfo]:
        path = self._topics_path()
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return {}
        try:
            doc = json.loads(raw)
            body = doc["topics"]
            ok = doc["version"] == TOPICS_FILE_VERSION and doc["crc32c"] == _crc(body)
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"{path}: unreadable topic table: {exc}") from exc
        if not ok:
            raise StorageError(f"{path}: version or CRC-32C mismatch; refusing to guess configs")
        return {
            name: TopicInfo(name, int(t["partitions"]), dict(t["overrides"]))
            for name, t in body.items()
        }

    def _write_topics(self) -> None:
        body = {
            name: {"partitions": t.partitions, "overrides": dict(sorted(t.overrides.items()))}
            for name, t in sorted(self._topics.items())
        }
        doc = {"version": TOPICS_FILE_VERSION, "crc32c": _crc(body), "topics": body}
        data = json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"
        try:
            write_atomic(self._topics_path(), data, self._fs)
        except OSError as exc:
            raise StorageError(f"{self._topics_path()}: write failed: {exc}") from exc

    def _partition_dir(self, topic: str, partition: int) -> str:
        return os.path.join(self._dir, f"{topic}-{partition}")

    def _open_partition(self, topic: str, partition: int) -> PartitionLog:
        plog = PartitionLog.open(self._partition_dir(topic, partition), self._configs[topic],
                                 clock=self._clock, fs=self._fs,
                                 group_commit=self._group_commit)
        self._logs[(topic, partition)] = plog
        return plog

    def _remove_deleted_dirs(self) -> None:
        for name in os.listdir(self._dir):
            if name.endswith(DELETE_SUFFIX):
                shutil.rmtree(os.path.join(self._dir, name), ignore_errors=True)

    def _warn_unknown_dirs(self) -> None:
        for name in os.listdir(self._dir):
            topic, dash, part = name.rpartition("-")
            if dash and part.isdigit() and topic not in self._topics and \
                    os.path.isdir(os.path.join(self._dir, name)):
                log.warning("%s: directory %s belongs to no known topic; left alone",
                            self._dir, name)

    # --- public API ---------------------------------------------------------------------------

    @property
    def data_dir(self) -> str:
        return self._dir

    @property
    def default_config(self) -> LogConfig:
        return self._default

    def topics(self) -> dict[str, TopicInfo]:
        return dict(self._topics)

    @property
    def generation(self) -> int:
        """Changes whenever a topic is created or deleted or gains partitions: a cache of
        anything derived from :meth:`topics` (e.g. Metadata responses) is valid while it holds."""
        return self._generation

    def create_topic(self, name: str, partitions: int = 1,
                     overrides: Mapping[str, str] | None = None, *,
                     validate_only: bool = False) -> TopicInfo:
        """Create a topic (Kafka's CreateTopics); ``validate_only`` checks and changes nothing."""
        self._check_open()
        validate_topic_name(name)
        if name in self._topics:
            raise KafkaError(f"topic {name!r} already exists", ErrorCode.TOPIC_ALREADY_EXISTS)
        _check_partitions(partitions)
        props = {k: str(v) for k, v in (overrides or {}).items()}
        config = self._default.with_kafka(props)  # validates before anything is written
        info = TopicInfo(name, partitions, props)
        if validate_only:
            return info
        self._topics[name] = info
        self._generation += 1
        self._configs[name] = config
        self._write_topics()
        for p in range(partitions):
            self._open_partition(name, p)
        return info

    def delete_topic(self, name: str) -> None:
        self._check_open()
        info = self._require(name)
        del self._topics[name]
        self._generation += 1
        self._write_topics()
        del self._configs[name]
        for p in range(info.partitions):
            plog = self._logs.pop((name, p), None)
            if plog is not None:
                plog.close()
            src = self._partition_dir(name, p)
            if os.path.isdir(src):
                doomed = f"{src}.{os.getpid()}{DELETE_SUFFIX}"
                os.rename(src, doomed)
                shutil.rmtree(doomed, ignore_errors=True)
        self._fs.fsync_dir(self._dir)

    def add_partitions(self, name: str, total: int) -> TopicInfo:
        self._check_open()
        info = self._require(name)
        _check_partitions(total)
        if total <= info.partitions:
            raise KafkaError(
                f"topic {name!r} has {info.partitions} partitions; the new count must be larger",
                ErrorCode.INVALID_PARTITIONS)
        new = TopicInfo(name, total, info.overrides)
        self._topics[name] = new
        self._generation += 1
        self._write_topics()
        for p in range(info.partitions, total):
            self._open_partition(name, p)
        return new

    def get(self, topic: str, partition: int) -> PartitionLog:
        plog = self._logs.get((topic, partition))
        if plog is None:
            raise UnknownTopicOrPartitionError(f"unknown topic-partition {topic}-{partition}")
        return plog

    def logs(self) -> Iterator[tuple[str, int, PartitionLog]]:
        for (topic, p), plog in sorted(self._logs.items()):
            yield topic, p, plog

    def topic_overrides(self, name: str) -> dict[str, str]:
        """The topic's own settings (Kafka names), without the defaults."""
        return dict(self._require(name).overrides)

    def topic_config(self, name: str) -> LogConfig:
        self._require(name)
        return self._configs[name]

    def alter_topic_config(self, name: str, overrides: Mapping[str, str | None], *,
                           incremental: bool = True) -> LogConfig:
        """Change a topic's overrides: merged (``None`` deletes a key) or, with
        ``incremental=False``, replaced. Applies to every partition at once."""
        self._check_open()
        info = self._require(name)
        props = dict(info.overrides) if incremental else {}
        for key, value in overrides.items():
            if value is None:
                props.pop(key, None)
            else:
                props[key] = str(value)
        try:
            config = self._default.with_kafka(props)
        except InvalidConfigError:
            raise
        self._topics[name] = TopicInfo(name, info.partitions, props)
        self._configs[name] = config
        self._write_topics()
        for p in range(info.partitions):
            self._logs[(name, p)].update_config(config)
        return config

    def flush_all(self) -> None:
        for _, _, plog in self.logs():
            if plog.offline_reason is None:
                plog.flush()

    def apply_retention(self, now_ms: int | None = None, *, topic: str | None = None) -> int:
        """Retention on every log (or ``topic``'s) whose cleanup.policy includes delete."""
        if topic is not None:
            self._require(topic)
        return sum(plog.apply_retention(now_ms) for t, _, plog in self.logs()
                   if plog.offline_reason is None and topic in (None, t))

    def expire_producers(self, now_ms: int, expiration_ms: int) -> int:
        """Forget producers idle for ``expiration_ms`` on every online log; returns how many."""
        return sum(plog.expire_producers(now_ms, expiration_ms) for _, _, plog in self.logs()
                   if plog.offline_reason is None and not plog.closed)

    def compact(self, topic: str, now_ms: int | None = None, *, force: bool = True
                ) -> CleanStats:
        """Run the cleaner on every partition of ``topic`` now (see PartitionLog.compact)."""
        info = self._require(topic)
        total = CleanStats()
        for p in range(info.partitions):
            stats = self.cleaner.clean(self._logs[(topic, p)], now_ms, force=force)
            total.add(stats)
            total.reason = total.reason or stats.reason
        return total

    @staticmethod
    def clean_logs(logs: list[PartitionLog], cleaner: Cleaner, now_ms: int | None = None
                   ) -> CleanStats:
        """The background cleaner's round over a snapshot of ``logs`` (any thread): each
        compacted log that is due. A log closed or failing meanwhile is skipped."""
        total = CleanStats()
        for plog in logs:
            if plog.closed or plog.offline_reason is not None or not plog.config.compact:
                continue
            try:
                total.add(cleaner.clean(plog, now_ms))
            except LogClosedError:
                continue  # the topic was deleted, or the broker is stopping
            except (StorageError, OSError) as exc:
                log.warning("%s: cleaning failed: %s", plog.path, exc)
            except Exception:
                log.exception("%s: cleaning failed", plog.path)
        return total

    def close(self) -> None:
        """Close every log cleanly (each writes its clean-shutdown marker), then unlock."""
        if self._closed:
            return
        self._closed = True
        try:
            self._close_logs(clean=True)
        finally:
            self._lock.release()

    def _close_logs(self, *, clean: bool) -> None:
        errors: list[BaseException] = []
        for plog in self._logs.values():
            try:
                plog.close()
            except StorageError as exc:
                errors.append(exc)
        self._logs.clear()
        if errors and clean:
            raise errors[0]

    def _require(self, name: str) -> TopicInfo:
        info = self._topics.get(name)
        if info is None:
            raise UnknownTopicOrPartitionError(f"unknown topic {name!r}")
        return info

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"{self._dir}: log manager is closed")

    def __enter__(self) -> LogManager:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _check_partitions(n: int) -> None:
    if not 1 <= n <= MAX_PARTITIONS:
        raise KafkaError(f"partition count must be between 1 and {MAX_PARTITIONS}, got {n}",
                         ErrorCode.INVALID_PARTITIONS)


def _crc(body: Any) -> int:
    return int(crc32c.crc32c(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()))
