"""kill -9 of a replica mid-apply: after restarts it has applied every record exactly once.

The log holds N counter increments (each one an "ops" envelope: bump the counter and insert
the record's sequence number into ``seen``, whose primary key would reject a second
application as a recorded error). A child process follows the log into a SQLite replica with
small random batches and prints its progress after each commit; the parent kills it with
SIGKILL after a random number of progress lines, so the kill lands while a batch is being
applied, and checks the file: the counter equals the number of increments at or below the
stored offset, ``seen`` holds each of them once, and no error was recorded. Then it restarts
the child, until the replica has caught up.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import seriatim
from seriatim.state import envelope

N = 4000
HEADER = 2  # CREATE TABLE statements before the increments

CHILD = r"""
import random, sys
import seriatim
from seriatim.state import LogSource, Replica, SqliteMachine
rng = random.Random(int(sys.argv[3]))
log = seriatim.open(sys.argv[1], readonly=True, create=False)
def show(p):
    print(p.applied_offset, flush=True)
with Replica(SqliteMachine(sys.argv[2]), LogSource(log, owns=True,
             max_batch_records=rng.randint(1, 40)), on_progress=show) as r:
    r.run(until_caught_up=True)
print("done", flush=True)
"""


def check(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        applied = conn.execute("SELECT applied_offset FROM _seriatim_state").fetchone()[0]
        (n,) = conn.execute("SELECT n FROM counter").fetchone()
        seen = [s for (s,) in conn.execute("SELECT s FROM seen ORDER BY s")]
        errors = conn.execute("SELECT * FROM _seriatim_errors").fetchall()
    finally:
        conn.close()
    increments = max(0, applied - HEADER - 1)
    assert errors == []
    assert n == increments, f"counter {n} != {increments} increments below offset {applied}"
    assert seen == list(range(increments))
    return int(applied)


def test_a_replica_killed_mid_apply_resumes_exactly_once(tmp_path: Path) -> None:
    log_dir, db = tmp_path / "log", tmp_path / "replica.sqlite"
    with seriatim.open(log_dir, flush_policy="never") as log:
        log.append_many([
            (None, envelope.statement("CREATE TABLE counter (n INTEGER NOT NULL)")),
            (None, envelope.statement("CREATE TABLE seen (s INTEGER PRIMARY KEY)")),
            (None, envelope.statement("INSERT INTO counter VALUES (0)")),
        ])
        log.append_many([(None, envelope.transaction([
            envelope.statement("UPDATE counter SET n = n + 1"),
            envelope.statement("INSERT INTO seen VALUES (?)", [i])])) for i in range(N)])
        log.flush()
        total = log.end_offset
    rng = random.Random(int(os.environ.get("SERIATIM_SEED", "4242")))
    kills_mid_way = 0
    for _round in range(50):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(log_dir), str(db), str(rng.randrange(2**32))],
            stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            lines_before_kill = rng.randint(1, 30)
            finished = False
            for i, line in enumerate(proc.stdout):
                if line.strip() == "done":
                    finished = True
                    break
                if i + 1 >= lines_before_kill:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
        finally:
            if proc.poll() is None and not finished:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()
        applied = check(db)
        if finished:
            assert proc.returncode == 0
            break
        assert proc.returncode == -signal.SIGKILL
        if 0 < applied < total:
            kills_mid_way += 1
    assert check(db) == total, "the replica never caught up"
    assert kills_mid_way >= 2, "the kills did not land mid-way; the test proved nothing"
