"""The broker's mutable state, owned by the event-loop thread.

Theory of operation. :class:`BrokerState` wraps the storage engine's :class:`LogManager` (the
truth on disk) with what the request handlers need on top of it: automatic topic creation,
the high watermark rule, waking long-polling fetches when data arrives, durability (group
commit), and producer-id allocation. Everything here runs on the event-loop thread; the only
work sent to another thread is fsync (see commit.py), which storage makes safe against
concurrent appends.

Durability, per partition from its topic's ``flush.policy`` (broker default
``log.flush.policy``):

* ``always``: appends go to the page cache; group commit fsyncs them (commit.py). Produce with
  acks=all waits for that fsync; acks=0/1 only schedule it. The high watermark is the flushed
  offset, so a consumer never reads a record that a crash could still take back.
* ``interval``: flushed when ``flush.messages`` or ``flush.ms`` is reached (checked on append
  and by a ticker); the high watermark is the log end offset, as in Kafka.
* ``never``: the OS flushes; the high watermark is the log end offset.

The last stable offset (LSO) of a partition is ``min(high watermark, first offset of its oldest
open transaction)`` (storage's producer state); read_committed fetches and ListOffsets stop
there. Without an open transaction it equals the high watermark.

The storage engine opens logs in group-commit mode, so its own per-append fsync for ``always``
is left to this class.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seriatim.broker.commit import GroupCommitter
from seriatim.clock import Clock
from seriatim.errors import ErrorCode, KafkaError, UnknownTopicOrPartitionError

if TYPE_CHECKING:
    from seriatim.broker.groups import GroupDriver
    from seriatim.broker.transactions import TransactionDriver
    from seriatim.config import BrokerConfig  # type only: broker never imports server
    from seriatim.storage import AppendInfo, LogManager, PartitionLog
    from seriatim.storage.log import FlushTicket

log = logging.getLogger(__name__)

PRODUCER_ID_BLOCK = 1000


@dataclass(frozen=True, slots=True)
class ConfigDescription:
    value: str | None
    source: int  # Kafka's DescribeConfigs ConfigSource code
    synonyms: tuple[tuple[str, str | None, int], ...]  # (name, value, source)


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int


class BrokerState:
    def __init__(self, config: BrokerConfig, clock: Clock, advertised: Endpoint) -> None:
        self.config = config
        self.clock = clock
        self.node_id: int = config.node_id
        # One node leads every partition forever: its leader epoch is 0. Batches are stamped
        # with it and the epoch cache starts it at offset 0 (replication will bump it).
        self.leader_epoch = 0
        self.advertised = advertised
        #: Per-handler caches of encoded responses, by handler name; each handler keys its
        #: entries with whatever makes them stale (e.g. the log manager's topic generation).
        self.handler_caches: dict[str, object] = {}
        self.data_dir = Path(config.log_dirs[0])
        self.committer = GroupCommitter(use_syncfs=config.log_flush_syncfs)
        self._waiters: dict[tuple[str, int], list[asyncio.Future[None]]] = {}
        self._flushers: dict[tuple[str, int], _NotifyingFlush] = {}
        self._interval_dirty: dict[tuple[str, int], PartitionLog] = {}
        self.logs: LogManager | None = None
        self.cluster_id = ""
        self._next_producer_id = 0
        self._producer_id_limit = 0
        # The group coordinator's driver (broker/groups.py), set by the app once open.
        self.groups: GroupDriver | None = None
        # The transaction coordinator's driver (broker/transactions.py), set by the app.
        self.transactions: TransactionDriver | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def open(self) -> None:
        from seriatim.storage import LogConfig, LogManager

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.cluster_id = self._load_meta()
        defaults = LogConfig.from_kafka(self.config.topic_defaults())
        self.logs = LogManager(self.data_dir, defaults, clock=self.clock, group_commit=True)

    async def close(self) -> None:
        try:
            await self.committer.drain()
            if self.logs is not None:
                self.logs.close()
        finally:
            self.committer.close()

    def _load_meta(self) -> str:
        """Kafka's meta.properties: the cluster id survives restarts (clients compare it)."""
        path = self.data_dir / "meta.properties"
        props: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                if "=" in line and not line.startswith("#"):
                    k, v = line.split("=", 1)
                    props[k.strip()] = v.strip()
        if "cluster.id" not in props:
            props = {"version": "1", "cluster.id": _new_cluster_id(), "node.id": str(self.node_id)}
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
            _fsync_dir(self.data_dir)
        return props["cluster.id"]

    # --- topics -----------------------------------------------------------------------------
    @property
    def manager(self) -> LogManager:
        assert self.logs is not None, "broker state used before open()"
        return self.logs

    def topics(self) -> dict[str, int]:
        """Topic name -> partition count."""
        return {name: info.partitions for name, info in self.manager.topics().items()}

    def partition(self, topic: str, partition: int) -> PartitionLog | None:
        try:
            return self.manager.get(topic, partition)
        except (KeyError, UnknownTopicOrPartitionError):  # manager.get raises the latter
            return None

    def create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str] | None = None,
        *,
        validate_only: bool = False,
    ) -> None:
        """Create a topic or raise KafkaError with the code Kafka returns."""
        if name in self.manager.topics():
            raise KafkaError(f"Topic '{name}' already exists.", ErrorCode.TOPIC_ALREADY_EXISTS)
        if partitions <= 0:
            raise KafkaError(
                "Number of partitions must be larger than 0.", ErrorCode.INVALID_PARTITIONS
            )
        self.manager.create_topic(
            name, partitions, dict(configs or {}), validate_only=validate_only
        )

    def auto_create(self, name: str) -> bool:
        """Create ``name`` with num.partitions if auto creation is on; True if it exists now."""
        if name in self.manager.topics():
            return True
        if not self.config.auto_create_topics_enable:
            return False
        self.manager.create_topic(name, self.config.num_partitions, {})
        log.info("auto-created topic %s with %d partition(s)", name, self.config.num_partitions)
        return True

    def alter_topic_config(
        self, name: str, changes: Mapping[str, str | None], *, validate_only: bool = False
    ) -> None:
        """Merge ``changes`` (None = back to the default) into the topic's overrides."""
        if validate_only:
            merged = {**self.manager.topic_overrides(name), **changes}
            self.manager.default_config.with_kafka(
                {k: v for k, v in merged.items() if v is not None}
            )
            return
        self.manager.alter_topic_config(name, changes)

    def delete_topic(self, name: str) -> None:
        self.manager.delete_topic(name)
        for key in [k for k in self._flushers if k[0] == name]:
            del self._flushers[key]
        for key in [k for k in self._waiters if k[0] == name]:
            self.notify(*key)

    def describe_topic_config(self, name: str) -> dict[str, ConfigDescription]:
        """Every topic config of ``name``: value, Kafka ConfigSource code and synonyms.

        Sources (Kafka's codes): 1 DYNAMIC_TOPIC_CONFIG (the topic's own override),
        4 STATIC_BROKER_CONFIG (the broker's file/env/flags), 5 DEFAULT_CONFIG. Synonyms list
        the override first, then the broker keys behind the topic key, as Kafka orders them.
        """
        overrides = self.manager.topic_overrides(name)
        effective = dict(self.config.topic_defaults(include_all=True))
        effective.update(self.manager.topic_config(name).to_kafka())
        effective.update(overrides)
        out: dict[str, ConfigDescription] = {}
        for key in sorted(effective):
            synonyms: list[tuple[str, str | None, int]] = []
            if key in overrides:
                synonyms.append((key, overrides[key], 1))
            for entry in self.config.broker_synonyms(key):
                synonyms.append((entry.name, entry.value, entry.source.kafka_source))
            source = synonyms[0][2] if synonyms else 5
            out[key] = ConfigDescription(effective[key], source, tuple(synonyms))
        return out

    # --- produce / fetch support -------------------------------------------------------------
    @staticmethod
    def _always(plog: PartitionLog) -> bool:
        return plog.config.flush_policy == "always"

    def high_watermark(self, plog: PartitionLog) -> int:
        if self._always(plog):
            return plog.flushed_offset
        return plog.end_offset

    def last_stable_offset(self, plog: PartitionLog) -> int:
        hw = self.high_watermark(plog)
        unstable = plog.first_unstable_offset()
        return hw if unstable is None else min(hw, unstable)

    def verify_transaction(self, transactional_id: str, producer_id: int, epoch: int,
                           topic: str, partition: int) -> ErrorCode:
        """May this producer write transactional data to this partition now?"""
        if self.transactions is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        code: ErrorCode = self.transactions.verify(transactional_id, producer_id, epoch, topic,
                                                   partition)
        return code

    def appended(self, topic: str, partition: int, plog: PartitionLog, info: AppendInfo) -> None:
        """After an append: schedule durability and wake fetches that can now see data."""
        if self._always(plog):
            self.committer.mark_dirty(self._flusher(topic, partition, plog))
            return
        if plog.config.flush_policy == "interval":
            self._interval_dirty[(topic, partition)] = plog
            if plog.flush_due():
                self.committer.mark_dirty(self._flusher(topic, partition, plog))
        self.notify(topic, partition)

    async def wait_durable(self, topic: str, partition: int, plog: PartitionLog) -> None:
        if self._always(plog):
            await self.committer.sync(self._flusher(topic, partition, plog))

    def _flusher(self, topic: str, partition: int, plog: PartitionLog) -> _NotifyingFlush:
        flusher = self._flushers.get((topic, partition))
        if flusher is None or flusher.plog is not plog:
            flusher = self._flushers[(topic, partition)] = _NotifyingFlush(
                self, topic, partition, plog
            )
        return flusher

    def flush_interval_logs(self) -> None:
        """The 'interval' policy's clock: flush logs whose flush.ms has passed."""
        for key, plog in list(self._interval_dirty.items()):
            if plog.closed:
                del self._interval_dirty[key]
            elif plog.flush_due():
                del self._interval_dirty[key]
                self.committer.mark_dirty(self._flusher(key[0], key[1], plog))
        self.committer.flush_dirty_soon()

    def apply_retention(self) -> int:
        return self.manager.apply_retention(self.clock.wall_ms())

    def schedule_flush(self) -> None:
        self.committer.flush_dirty_soon()

    def waiter(self, topic: str, partition: int) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault((topic, partition), []).append(fut)
        return fut

    def notify(self, topic: str, partition: int) -> None:
        for fut in self._waiters.pop((topic, partition), ()):
            if not fut.done():
                fut.set_result(None)

    def notify_threadsafe(
        self, loop: asyncio.AbstractEventLoop, topic: str, partition: int
    ) -> None:
        loop.call_soon_threadsafe(self.notify, topic, partition)

    # --- producer ids -------------------------------------------------------------------------
    def next_producer_id(self) -> int:
        """Allocate a producer id unique across restarts (blocks persisted ahead of use)."""
        if self._next_producer_id >= self._producer_id_limit:
            self._reserve_producer_ids()
        pid = self._next_producer_id
        self._next_producer_id += 1
        return pid

    def _reserve_producer_ids(self) -> None:
        path = self.data_dir / "producer-ids"
        start = int(path.read_text().strip() or 0) if path.exists() else 0
        limit = start + PRODUCER_ID_BLOCK
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(f"{limit}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.data_dir)
        self._next_producer_id, self._producer_id_limit = start, limit


class _NotifyingFlush:
    """Flushes one partition in the fsync thread, then wakes its fetchers on the loop.

    One per partition (cached by BrokerState) so the committer coalesces repeated marks.
    """

    __slots__ = ("_loop", "partition", "plog", "state", "topic")

    def __init__(self, state: BrokerState, topic: str, partition: int, plog: PartitionLog) -> None:
        self.state, self.topic, self.partition, self.plog = state, topic, partition, plog
        self._loop = asyncio.get_running_loop()

    def flush(self) -> None:
        self.plog.flush()
        self.state.notify_threadsafe(self._loop, self.topic, self.partition)

    # The two phases of a flush shared with other logs (GroupCommitter with syncfs).
    @property
    def directory(self) -> str:
        return self.plog.path

    def flush_begin(self) -> FlushTicket | None:
        return self.plog.flush_begin()

    def flush_end(self, ticket: FlushTicket, *, data_synced: bool) -> None:
        self.plog.flush_end(ticket, data_synced=data_synced)
        self.state.notify_threadsafe(self._loop, self.topic, self.partition)


def _new_cluster_id() -> str:
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
