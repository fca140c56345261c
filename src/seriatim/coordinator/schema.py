"""The records of ``__consumer_offsets``: Kafka's key/value schemas, byte for byte.

Theory of operation. Each record's key starts with an int16 *key version* that says what the
record is; the value starts with its own int16 version. Classic-protocol records:

====================  =================================  ===================================
key version           key fields                         value
====================  =================================  ===================================
0, 1 OffsetCommitKey  group, topic (string), partition   OffsetCommitValue v0-v4
2 GroupMetadataKey    group (string)                     GroupMetadataValue v0-v4
====================  =================================  ===================================

``OffsetCommitValue``: offset int64, leader_epoch int32 (v3+), metadata string, commit_timestamp
int64, expire_timestamp int64 (v1 only); v4 is the flexible (compact, tagged) form of v3.
``GroupMetadataValue``: protocol_type string, generation int32, protocol nullable string, leader
nullable string, current_state_timestamp int64 (v2+), members[]: member_id, group_instance_id
(nullable, v3+), client_id, client_host, rebalance_timeout int32 (v1+), session_timeout int32,
subscription bytes, assignment bytes; v4 is flexible. A null value (tombstone) deletes the key.

We write OffsetCommitKey v1 + OffsetCommitValue v3 and GroupMetadataKey v2 + GroupMetadataValue
v3, which every Kafka release since 2.3 reads, and read every version above. Bytes come from a
log we wrote, but are still checked: every length is compared with what remains before a slice
(a short or malformed record raises :class:`RecordFormatError`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

OFFSET_COMMIT_KEY_VERSION = 1
GROUP_METADATA_KEY_VERSION = 2
OFFSET_COMMIT_VALUE_VERSION = 3
GROUP_METADATA_VALUE_VERSION = 3


class RecordFormatError(ValueError):
    """A ``__consumer_offsets`` record that cannot be decoded."""


@dataclass(frozen=True, slots=True)
class OffsetKey:
    group_id: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupKey:
    group_id: str


@dataclass(frozen=True, slots=True)
class OffsetValue:
    offset: int
    leader_epoch: int  # -1: unknown
    metadata: str
    commit_timestamp_ms: int
    expire_timestamp_ms: int = -1  # only value v1 carries one


@dataclass(frozen=True, slots=True)
class StoredMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupValue:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp_ms: int
    members: tuple[StoredMember, ...]


# --- writer -----------------------------------------------------------------------------------


def _string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack(">h", len(raw)) + raw


def _nullable_string(s: str | None) -> bytes:
    return struct.pack(">h", -1) if s is None else _string(s)


def _bytes(b: bytes) -> bytes:
    return struct.pack(">i", len(b)) + b


def encode_offset_key(key: OffsetKey) -> bytes:
    return (
        struct.pack(">h", OFFSET_COMMIT_KEY_VERSION)
        + _string(key.group_id)
        + _string(key.topic)
        + struct.pack(">i", key.partition)
    )


def encode_group_key(key: GroupKey) -> bytes:
    return struct.pack(">h", GROUP_METADATA_KEY_VERSION) + _string(key.group_id)


def encode_offset_value(value: OffsetValue) -> bytes:
    return (
        struct.pack(">hqi", OFFSET_COMMIT_VALUE_VERSION, value.offset, value.leader_epoch)
        + _string(value.metadata)
        + struct.pack(">q", value.commit_timestamp_ms)
    )


def encode_group_value(value: GroupValue) -> bytes:
    parts = [
        struct.pack(">h", GROUP_METADATA_VALUE_VERSION),
        _string(value.protocol_type),
        struct.pack(">i", value.generation),
        _nullable_string(value.protocol),
        _nullable_string(value.leader),
        struct.pack(">qi", value.current_state_timestamp_ms, len(value.members)),
    ]
    for m in value.members:
        parts += [
            _string(m.member_id),
            _nullable_string(m.group_instance_id),
            _string(m.client_id),
            _string(m.client_host),
            struct.pack(">ii", m.rebalance_timeout_ms, m.session_timeout_ms),
            _bytes(m.subscription),
            _bytes(m.assignment),
        ]
    return b"".join(parts)


# --- reader -----------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("buf", "flexible", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0
        self.flexible = False

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise RecordFormatError(f"record too short: need {n} bytes at {self.pos}")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def int16(self) -> int:
        return int(struct.unpack(">h", self._take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self._take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack(">q", self._take(8))[0])

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            b = self._take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 28:
                raise RecordFormatError("varint too long")

    def _length(self, classic_width: int) -> int:
        if self.flexible:
            return self.uvarint() - 1
        return self.int16() if classic_width == 2 else self.int32()

    def nullable_string(self) -> str | None:
        n = self._length(2)
        if n < 0:
            return None
        try:
            return self._take(n).decode()
        except UnicodeDecodeError as exc:
            raise RecordFormatError(f"bad UTF-8 string: {exc}") from None

    def string(self) -> str:
        s = self.nullable_string()
        if s is None:
            raise RecordFormatError("null in a non-nullable string")
        return s

    def bytes_(self) -> bytes:
        n = self._length(4)
        if n < 0:
            raise RecordFormatError("null in a non-nullable bytes field")
        return self._take(n)

    def array_len(self) -> int:
        n = self._length(4)
        if n < 0 or n > len(self.buf):
            raise RecordFormatError(f"bad array length {n}")
        return n

    def skip_tags(self) -> None:
        if self.flexible:
            for _ in range(self.uvarint()):
                self.uvarint()
                self._take(self.uvarint())


def decode_key(key: bytes) -> OffsetKey | GroupKey | None:
    """The key's meaning, or None for record kinds the classic coordinator ignores (e.g. the
    consumer-protocol or transaction records of newer Kafka versions)."""
    r = _Reader(key)
    version = r.int16()
    if version in (0, 1):
        return OffsetKey(r.string(), r.string(), r.int32())
    if version == GROUP_METADATA_KEY_VERSION:
        return GroupKey(r.string())
    return None


def decode_offset_value(value: bytes) -> OffsetValue:
    r = _Reader(value)
    version = r.int16()
    if not 0 <= version <= 4:
        raise RecordFormatError(f"unknown OffsetCommitValue version {version}")
    r.flexible = version >= 4
    offset = r.int64()
    leader_epoch = r.int32() if version >= 3 else -1
    metadata = r.string()
    commit_ts = r.int64()
    expire_ts = r.int64() if version == 1 else -1
    r.skip_tags()
    return OffsetValue(offset, leader_epoch, metadata, commit_ts, expire_ts)


def decode_group_value(value: bytes) -> GroupValue:
    r = _Reader(value)
    version = r.int16()
    if not 0 <= version <= 4:
        raise RecordFormatError(f"unknown GroupMetadataValue version {version}")
    r.flexible = version >= 4
    protocol_type = r.string()
    generation = r.int32()
    protocol = r.nullable_string()
    leader = r.nullable_string()
    state_ts = r.int64() if version >= 2 else -1
    members = []
    for _ in range(r.array_len()):
        member_id = r.string()
        instance_id = r.nullable_string() if version >= 3 else None
        client_id = r.string()
        client_host = r.string()
        session_timeout = -1
        rebalance_timeout = r.int32() if version >= 1 else -1
        session_timeout = r.int32()
        if rebalance_timeout < 0:
            rebalance_timeout = session_timeout
        subscription = r.bytes_()
        assignment = r.bytes_()
        r.skip_tags()
        members.append(
            StoredMember(
                member_id,
                instance_id,
                client_id,
                client_host,
                rebalance_timeout,
                session_timeout,
                subscription,
                assignment,
            )
        )
    r.skip_tags()
    return GroupValue(protocol_type, generation, protocol, leader, state_ts, tuple(members))


def subscribed_topics(subscription: bytes) -> frozenset[str] | None:
    """Topics in a ``consumer`` protocol subscription (ConsumerProtocolSubscription v0+:
    int16 version, topics: array of string, ...), or None if it cannot be read."""
    try:
        r = _Reader(subscription)
        r.int16()
        return frozenset(r.string() for _ in range(r.array_len()))
    except RecordFormatError:
        return None


# --- __transaction_state (TransactionLogKey / TransactionLogValue) ------------------------------
#
# Key:   int16 key version (0), transactional_id string.
# Value: int16 value version; v0: producer_id int64, producer_epoch int16,
#        transaction_timeout_ms int32, transaction_status int8, transaction_partitions nullable
#        array of (topic string, partition_ids array of int32), last_update_timestamp_ms int64,
#        start_timestamp_ms int64. v1 is the flexible form (compact lengths, tagged fields).
#        A null value (tombstone) deletes the transactional id.

TXN_KEY_VERSION = 0
TXN_VALUE_VERSION = 0


@dataclass(frozen=True, slots=True)
class TxnValue:
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    status: int  # Kafka's TransactionState id (coordinator/transactions.py TxnState)
    partitions: tuple[tuple[str, int], ...]  # sorted
    last_update_ms: int
    start_ms: int


def encode_txn_key(transactional_id: str) -> bytes:
    return struct.pack(">h", TXN_KEY_VERSION) + _string(transactional_id)


def decode_txn_key(key: bytes) -> str | None:
    """The transactional id, or None for a key version we do not know."""
    r = _Reader(key)
    if r.int16() != TXN_KEY_VERSION:
        return None
    return r.string()


def encode_txn_value(value: TxnValue) -> bytes:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in value.partitions:
        by_topic.setdefault(topic, []).append(partition)
    parts = [
        struct.pack(">hqhib", TXN_VALUE_VERSION, value.producer_id, value.producer_epoch,
                    value.timeout_ms, value.status),
        struct.pack(">i", len(by_topic)),
    ]
    for topic in sorted(by_topic):
        ids = sorted(by_topic[topic])
        parts += [_string(topic), struct.pack(f">i{len(ids)}i", len(ids), *ids)]
    parts.append(struct.pack(">qq", value.last_update_ms, value.start_ms))
    return b"".join(parts)


def decode_txn_value(value: bytes) -> TxnValue:
    r = _Reader(value)
    version = r.int16()
    if version not in (0, 1):
        raise RecordFormatError(f"unknown TransactionLogValue version {version}")
    r.flexible = version >= 1
    pid = r.int64()
    epoch = r.int16()
    timeout_ms = r.int32()
    status = int(struct.unpack(">b", r._take(1))[0])
    partitions: list[tuple[str, int]] = []
    n = r._length(4)
    if n > len(value):
        raise RecordFormatError(f"bad array length {n}")
    for _ in range(max(n, 0)):
        topic = r.string()
        for _ in range(r.array_len()):
            partitions.append((topic, r.int32()))
        r.skip_tags()
    last_update = r.int64()
    start = r.int64()
    r.skip_tags()
    return TxnValue(pid, epoch, timeout_ms, status, tuple(sorted(partitions)), last_update,
                    start)
