"""Snapshot files: named by the offset they reflect, published atomically, newest wins.

Theory of operation
-------------------
A snapshot directory holds ``snapshot-<offset, 20 digits>.sqlite`` files. A file is written
under a temporary name (``.tmp-...``), fsynced, renamed into place, and the directory fsynced
(docs/architecture.md, rule 9), so a name in the directory always means a complete file; a
crash leaves at most a temporary file, which :func:`list_snapshots` ignores and
:func:`prune_snapshots` removes. The offset in the name is read back *from the written file*
(its ``_seriatim_state`` row), never from the live database, so the tag cannot disagree with
the contents even while a writer keeps applying.

Bootstrap (:func:`bootstrap`): a replica whose applied offset is below the newest snapshot's
restores that snapshot and then follows the log from the snapshot's offset. Once a snapshot
at offset N exists, the log below N is no longer needed by new replicas and may be deleted
(``Log.delete_records_before(N)``) or compacted.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from seriatim.state.machine import Snapshot, StateMachine

__all__ = ["bootstrap", "fsync_dir", "latest_snapshot", "list_snapshots", "prune_snapshots",
           "snapshot_name"]

_NAME = re.compile(r"^snapshot-(\d{20})\.sqlite$")
TMP_PREFIX = ".tmp-"


def snapshot_name(offset: int) -> str:
    return f"snapshot-{offset:020d}.sqlite"


def list_snapshots(directory: str | os.PathLike[str]) -> list[Snapshot]:
    """The published snapshots in ``directory``, oldest first (none if it does not exist)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        m = _NAME.match(name)
        if m:
            found.append(Snapshot(os.path.join(os.fspath(directory), name), int(m.group(1))))
    return sorted(found, key=lambda s: s.offset)


def latest_snapshot(directory: str | os.PathLike[str]) -> Snapshot | None:
    snaps = list_snapshots(directory)
    return snaps[-1] if snaps else None


def prune_snapshots(directory: str | os.PathLike[str], keep: int) -> list[Snapshot]:
    """Delete all but the newest ``keep`` (>= 1) snapshots and stale temporary files;
    return the deleted snapshots."""
    if keep < 1:
        raise ValueError("keep must be >= 1")
    doomed = list_snapshots(directory)[:-keep]
    for snap in doomed:
        os.unlink(snap.path)
    for name in os.listdir(directory):
        if name.startswith(TMP_PREFIX):
            os.unlink(os.path.join(directory, name))
    fsync_dir(directory)
    return doomed


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp_path: str, directory: str | os.PathLike[str], offset: int) -> Snapshot:
    """fsync ``tmp_path``, rename it to the snapshot name for ``offset``, fsync the dir."""
    fsync_file(tmp_path)
    final = str(Path(directory) / snapshot_name(offset))
    os.replace(tmp_path, final)
    fsync_dir(directory)
    return Snapshot(final, offset)


def bootstrap(machine: StateMachine, directory: str | os.PathLike[str]) -> Snapshot | None:
    """Restore the newest snapshot in ``directory`` if it is ahead of ``machine``; return it
    (None when the machine is already at or past every snapshot)."""
    snap = latest_snapshot(directory)
    if snap is None or snap.offset <= machine.applied_offset:
        return None
    machine.restore(snap)
    return snap
