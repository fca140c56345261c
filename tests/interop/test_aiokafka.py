"""aiokafka 0.14 (asyncio, ApiVersions v0, non-flexible versions only) against a real broker:
the interop round trip (see interop_support.run_roundtrip).

Each operation runs in its own ``asyncio.run`` with the client stopped in ``finally``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]
from interop_support import (
    DEADLINE_S,
    AppendTimes,
    Delivered,
    Driver,
    Got,
    Sent,
    normalise_headers,
    run_roundtrip,
)

pytestmark = pytest.mark.interop

T = TypeVar("T")


def _run(coro: Awaitable[T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout=DEADLINE_S * 2)

    return asyncio.run(bounded())


class AioKafkaDriver(Driver):
    name = "aiokafka"

    def _with_admin(self, bootstrap: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        async def go() -> T:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
            await admin.start()
            try:
                return await fn(admin)
            finally:
                await admin.close()

        return _run(go())

    def create_topic(
        self, bootstrap: str, name: str, partitions: int, configs: Mapping[str, str]
    ) -> None:
        async def create(admin: Any) -> None:
            resp = await admin.create_topics(
                [NewTopic(name, partitions, 1, topic_configs=dict(configs))]
            )
            errors = [err for _, err, *_ in resp.topic_errors]
            assert errors == [0], resp

        self._with_admin(bootstrap, create)

    def delete_topic(self, bootstrap: str, name: str) -> None:
        async def delete(admin: Any) -> None:
            resp = await admin.delete_topics([name])
            assert [err for _, err, *_ in resp.topic_error_codes] == [0], resp

        self._with_admin(bootstrap, delete)

    def list_topics(self, bootstrap: str) -> set[str]:
        async def names(admin: Any) -> set[str]:
            return set(await admin.list_topics())

        return self._with_admin(bootstrap, names)

    def produce(
        self, bootstrap: str, topic: str, msgs: list[Sent], codec: str, acks: int
    ) -> tuple[Delivered, AppendTimes]:
        async def go() -> tuple[Delivered, AppendTimes]:
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap,
                acks="all" if acks == -1 else acks,
                enable_idempotence=acks == -1,
                compression_type=None if codec == "none" else codec,
                linger_ms=5,
            )
            await producer.start()
            delivered: Delivered = {}
            times: AppendTimes = {}
            try:
                futures = [
                    await producer.send(
                        topic,
                        key=m.key,
                        value=m.value,
                        headers=list(m.headers),
                        timestamp_ms=m.timestamp_ms,
                    )
                    for m in msgs
                ]
                for m, md in zip(msgs, await asyncio.gather(*futures), strict=True):
                    delivered[(md.partition, md.offset)] = m
                    if md.timestamp_type == 1:
                        times[(md.partition, md.offset)] = md.timestamp
            finally:
                await producer.stop()
            return delivered, times

        return _run(go())

    def _consumer(self, bootstrap: str, read_committed: bool = True) -> Any:
        return AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="none",
            isolation_level="read_committed" if read_committed else "read_uncommitted",
            check_crcs=True,
        )

    def _with_consumer(
        self, bootstrap: str, fn: Callable[[Any], Awaitable[T]], read_committed: bool = True
    ) -> T:
        async def go() -> T:
            consumer = self._consumer(bootstrap, read_committed)
            await consumer.start()
            try:
                return await fn(consumer)
            finally:
                await consumer.stop()

        return _run(go())

    def consume(self, bootstrap: str, topic: str, total: int, read_committed: bool) -> list[Got]:
        async def read(consumer: Any) -> list[Got]:
            parts = sorted(consumer.partitions_for_topic(topic) or ())
            if not parts:
                await consumer._client.force_metadata_update()
                parts = sorted(consumer.partitions_for_topic(topic) or ())
            tps = [TopicPartition(topic, p) for p in parts]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            out: list[Got] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE_S
            while len(out) < total and loop.time() < deadline:
                batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
                for tp in sorted(batches, key=lambda t: t.partition):
                    for r in batches[tp]:
                        out.append(
                            Got(
                                r.partition,
                                r.offset,
                                r.key,
                                r.value,
                                normalise_headers(r.headers),
                                r.timestamp,
                                r.timestamp_type == 1,
                            )
                        )
            return out

        return self._with_consumer(bootstrap, read, read_committed)

    def offsets_for_times(
        self, bootstrap: str, topic: str, queries: list[tuple[int, int]]
    ) -> dict[tuple[int, int], int | None]:
        async def lookup(consumer: Any) -> dict[tuple[int, int], int | None]:
            out: dict[tuple[int, int], int | None] = {}
            for p, ts in queries:
                tp = TopicPartition(topic, p)
                hit = (await consumer.offsets_for_times({tp: ts}))[tp]
                out[(p, ts)] = None if hit is None else hit.offset
            return out

        return self._with_consumer(bootstrap, lookup)

    def watermarks(self, bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
        async def marks(consumer: Any) -> dict[int, tuple[int, int]]:
            await consumer._client.force_metadata_update()
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            low = await consumer.beginning_offsets(tps)
            high = await consumer.end_offsets(tps)
            return {tp.partition: (low[tp], high[tp]) for tp in tps}

        return self._with_consumer(bootstrap, marks)


def test_aiokafka_round_trip(tmp_path):  # type: ignore[no-untyped-def]
    import seriatim.testing

    with seriatim.testing.broker(tmp_path / "data") as broker:
        run_roundtrip(AioKafkaDriver(), broker)
