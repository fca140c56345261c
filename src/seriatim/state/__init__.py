"""State from the log: deterministic state machines, and SQLite databases rebuilt and kept in
sync from a log.

``gettimeofday`` is not deterministic, so time comes from the log, never from the replica.

::

    import seriatim
    from seriatim.state import LogSource, Replica, SqliteMachine, envelope, state_hash

    with seriatim.open("data/ledger") as log:
        log.append(envelope.statement("CREATE TABLE t (k TEXT PRIMARY KEY, v, at)"))
        log.append(envelope.statement("INSERT INTO t VALUES (?, ?, CURRENT_TIMESTAMP)",
                                      ["a", 1]))
        with Replica(SqliteMachine("replica.sqlite"), LogSource(log)) as replica:
            replica.run(until_caught_up=True)      # or .start() ... .stop()
    print(state_hash("replica.sqlite"))

Modules: :mod:`.machine` (the StateMachine protocol and errors), :mod:`.envelope` (the record
format, pure), :mod:`.sqlite` (the materializer, its determinism guard, ``state_hash``),
:mod:`.snapshot` (snapshot files and bootstrap), :mod:`.sources` (embedded log, Kafka
partition), :mod:`.runner` (the replica loop). The formats and rules are in docs/state.md.

Layering: this package imports ``records`` and ``storage`` (and confluent-kafka, lazily, for
:class:`KafkaSource`), never ``broker``, ``server`` or ``protocol``.
"""

from __future__ import annotations

from seriatim.state import envelope
from seriatim.state.machine import (
    EnvelopeError,
    NondeterministicError,
    ReplicaBehindLogError,
    ReplicaStorageError,
    Snapshot,
    SourceError,
    StateError,
    StateMachine,
    UnsupportedEnvelopeError,
)
from seriatim.state.runner import Progress, Replica
from seriatim.state.snapshot import bootstrap, latest_snapshot, list_snapshots, prune_snapshots
from seriatim.state.sources import KafkaSource, LogSource, Source
from seriatim.state.sqlite import (
    SqliteMachine,
    hash_with_offset,
    read_applied_offset,
    state_hash,
    write_snapshot,
)

__all__ = [
    "EnvelopeError",
    "KafkaSource",
    "LogSource",
    "NondeterministicError",
    "Progress",
    "Replica",
    "ReplicaBehindLogError",
    "ReplicaStorageError",
    "Snapshot",
    "Source",
    "SourceError",
    "SqliteMachine",
    "StateError",
    "StateMachine",
    "UnsupportedEnvelopeError",
    "bootstrap",
    "envelope",
    "hash_with_offset",
    "latest_snapshot",
    "list_snapshots",
    "prune_snapshots",
    "read_applied_offset",
    "state_hash",
    "write_snapshot",
]
