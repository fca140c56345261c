"""Property: the replica's fast path (msgspec decoding, runs grouped by SQL text, executemany,
RecordColumns) ends in exactly the state and the recorded failures of the reference path
(json decoding, every record alone in its own transaction), for random mixes of statements,
row changes, malformed envelopes, failing and time-dependent records, and batch cuts."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seriatim.records import Record
from seriatim.records.columns import RecordColumns
from seriatim.state import SqliteMachine, envelope, state_hash

T0 = 1_700_000_000_000
SCHEMA = envelope.statement("CREATE TABLE t (k INTEGER PRIMARY KEY, v, n DEFAULT 0, "
                            "at DEFAULT CURRENT_TIMESTAMP)")
INSERT = "INSERT INTO t (k, v) VALUES (?, ?)"

keys = st.integers(0, 8)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.just(2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=3),
                    st.binary(max_size=3))


def _raw(text: str) -> bytes:
    return text.encode()


envelopes = st.one_of(
    st.builds(lambda k, v: envelope.statement(INSERT, [k, v]), keys, scalars),
    st.builds(lambda k, v: envelope.statement(INSERT, [k, v]), keys, scalars),
    st.builds(lambda k, v: envelope.statement("INSERT INTO t (k, v) VALUES (:k, :v)",
                                              {"k": k, "v": v}), keys, scalars),
    st.builds(lambda k: envelope.statement("INSERT OR ROLLBACK INTO t (k) VALUES (?)", [k]),
              keys),
    st.builds(lambda k: envelope.statement("INSERT OR FAIL INTO t (k) VALUES (?)", [k]), keys),
    st.builds(lambda k: envelope.statement(INSERT, [k]), keys),  # wrong parameter count
    st.builds(lambda v, k: envelope.statement("UPDATE t SET v = ?, n = n + 1 WHERE k = ?",
                                              [v, k]), scalars, keys),
    st.builds(lambda k: envelope.statement("UPDATE t SET at = datetime('now') WHERE k = ?",
                                           [k]), keys),
    st.builds(lambda k: envelope.statement("DELETE FROM t WHERE k = ?", [k]), keys),
    st.builds(lambda k: envelope.statement("INSERT INTO t (k, v) VALUES (?, random())", [k]),
              keys),
    st.builds(lambda k, v: envelope.upsert("t", {"k": k}, {"v": v}), keys, scalars),
    st.builds(lambda k: envelope.delete("t", {"k": k}), keys),
    st.sampled_from([b"{", b"null", envelope.statement("  "),
                     _raw('{"v":1,"sql":"DELETE FROM t","x":1}'),
                     _raw('{"v": 1, "sql": "INSERT INTO t (k) VALUES (?)", "params": [7]}'),
                     envelope.transaction([envelope.statement(INSERT, [8, 8]),
                                           envelope.statement(INSERT, [8, 9])])]),
)


# Runs: consecutive records with the same SQL text (applied with executemany), time-dependent
# ones among them (the `at` column defaults to CURRENT_TIMESTAMP).
insert_runs = st.lists(st.tuples(keys, scalars), min_size=2, max_size=12).map(
    lambda kvs: [envelope.statement(INSERT, [k, v]) for k, v in kvs])
time_runs = st.lists(keys, min_size=2, max_size=12).map(
    lambda ks: [envelope.statement("UPDATE t SET at = datetime('now') WHERE k = ?", [k])
                for k in ks])
mixes = st.lists(st.one_of(envelopes.map(lambda e: [e]), insert_runs, time_runs),
                 max_size=12).map(lambda parts: [e for part in parts for e in part])


def reference_state(tmp: Path, records: list[Record]) -> tuple[str, Any]:
    """Every record alone, decoded by decode_reference only (no plain fast path: no runs)."""
    def no_fast_path(value: object) -> envelope.PlainStatement:
        raise TypeError("fast path disabled")

    with mock.patch.object(envelope, "decode_plain", no_fast_path), \
            SqliteMachine(tmp / "reference.sqlite") as m:
        for rec in records:
            m.apply(rec)
        return state_hash(m.path), m.errors()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=mixes,
       block=st.sampled_from([0, 1, 5, 13]),
       cuts=st.lists(st.integers(0, 150), max_size=4))
def test_fast_path_equals_reference(values: list[bytes], block: int,
                                    cuts: list[int]) -> None:
    """``block``: records share a timestamp in blocks of that many (0: all the same), so runs
    are applied in one piece, in stretches of equal time, or record by record."""
    values = [SCHEMA, *values]
    records = [Record(i, T0 + 1777 * (i // block if block else 0), None, v, ())
               for i, v in enumerate(values)]
    bounds = sorted({0, len(records), *(c for c in cuts if c <= len(records))})
    with tempfile.TemporaryDirectory() as tmp:
        want = reference_state(Path(tmp), records)
        with SqliteMachine(Path(tmp) / "fast.sqlite") as m:
            for lo, hi in itertools.pairwise(bounds):
                m.apply_batch(RecordColumns.from_records(records[lo:hi]))
            assert m.applied_offset == len(records)
            assert (state_hash(m.path), m.errors()) == want
