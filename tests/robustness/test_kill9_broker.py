"""kill -9 of a broker SUBPROCESS under idempotent acks=all load (reliability.md §9 item 5).

10 SIGKILL/restart rounds at seeded random moments (``SEED=`` reproduces a run; the seed is
printed): 0 acknowledged messages lost, no offset acknowledged twice, offsets contiguous,
restart-to-ready < 3 s, and 0 duplicates: retries of batches that were stored just before a kill
are answered from the producer state rebuilt on recovery.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from kill_loop import run_kill_loop

pytest.importorskip("confluent_kafka")


def test_no_acknowledged_message_is_lost_across_kill_9(tmp_path: Path) -> None:
    seed = int(os.environ.get("SEED", random.randrange(2**32)))
    print(f"SEED={seed}")
    result = run_kill_loop(tmp_path, seed=seed, rounds=10, min_gap_s=0.5, max_gap_s=2.0)
    print(result.summary())
    assert result.acked > 1000, result.summary()
    assert result.lost == [], f"{result.summary()}; first lost: {result.lost[:5]}"
    assert result.inconsistent == 0, result.summary()
    assert result.duplicates == 0, result.summary()
    assert result.gaps == [], result.gaps
    assert max(result.restart_s) < 3.0, result.restart_s
    assert not [e for e in result.errors if "undelivered" in e], result.errors
