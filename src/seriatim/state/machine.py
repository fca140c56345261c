"""The state-machine contract: deterministic state fed by a log, with its offset inside it.

Theory of operation
-------------------
A state machine is derived state (docs/architecture.md, rule 2): it changes only by applying
records of one log partition, in offset order, and it stores the offset it reflects *in the
same atomic write* as the state. ``applied_offset`` is the next offset to apply: every record
below it is reflected, none at or above it. After a crash the machine reopens at exactly the
offset its state reflects, so a source that delivers at least once (it re-sends whatever was
not yet committed) yields exactly-once application: :meth:`StateMachine.apply_batch` skips
records below ``applied_offset``.

Offsets may have gaps (compacted topics, transaction markers); they never go backwards. After
``apply_batch(records)`` the applied offset is ``records[-1].offset + 1``.

``apply`` must be deterministic: its effect depends only on the state and the record (its
value, key, headers, offset and *timestamp*), never on the replica's clock, randomness,
locale, environment or connection history. Time comes from the log: a machine that needs
"now" uses ``record.timestamp_ms``.

A snapshot is a file holding the state and the offset it reflects; :mod:`.snapshot` names
snapshot files by offset so that a new replica starts from the newest one plus the log tail
and the log below it can be deleted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from seriatim.errors import SeriatimError
from seriatim.records import Record

__all__ = [
    "EnvelopeError",
    "NondeterministicError",
    "ReplicaBehindLogError",
    "ReplicaStorageError",
    "Snapshot",
    "SourceError",
    "StateError",
    "StateMachine",
    "UnsupportedEnvelopeError",
]


class StateError(SeriatimError):
    """Base of the state-machine errors."""


class EnvelopeError(StateError):
    """A record value is not a valid envelope. Deterministic: the replica records it."""


class NondeterministicError(StateError):
    """A statement would make replicas diverge (random(), 'localtime', a write to a
    ``_seriatim_`` table...). Deterministic to detect: the replica records it."""


class UnsupportedEnvelopeError(StateError):
    """A record written for a newer envelope version. The replica stops (skipping it would
    make this replica diverge from a newer one)."""


class ReplicaStorageError(StateError):
    """The replica's own storage failed (I/O error, disk full, database locked...). Not a
    property of the log, so nothing is recorded and the offset does not advance: the replica
    stops and retrying later resumes at the same record."""


class ReplicaBehindLogError(StateError):
    """The replica needs records the log no longer has (deleted below its start offset):
    bootstrap it from a snapshot at or above the log start."""


class SourceError(StateError):
    """The source of records failed (a client error that is not retriable)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot file and the offset it reflects (its ``applied_offset``)."""

    path: str
    offset: int


@runtime_checkable
class StateMachine(Protocol):
    """What a :class:`~seriatim.state.runner.Replica` drives."""

    @property
    def applied_offset(self) -> int:
        """The next offset to apply; stored atomically with the state."""
        ...

    def apply(self, record: Record) -> None:
        """Apply one record (``apply_batch([record])``)."""
        ...

    def apply_batch(self, records: Sequence[Record]) -> None:
        """Apply records in offset order, atomically together with the new applied offset.

        Records below ``applied_offset`` are skipped (redelivery). Either the whole batch and
        the offset ``records[-1].offset + 1`` are stored, or nothing is.
        """
        ...

    def snapshot(self, out_dir: str | os.PathLike[str]) -> Snapshot:
        """Write a consistent snapshot file into ``out_dir`` tagged with its offset."""
        ...

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the state (and applied offset) with the snapshot's."""
        ...

    def close(self) -> None:
        ...
