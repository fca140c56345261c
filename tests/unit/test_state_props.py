"""Property: applying row changes in one batch, in random batch splits, or one by one gives the
same state hash, and the state a simple model predicts."""

from __future__ import annotations

import itertools
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from seriatim.records import Record
from seriatim.state import SqliteMachine, envelope, state_hash

SCHEMA = [
    envelope.statement("CREATE TABLE kv (k INTEGER PRIMARY KEY, v)"),
    envelope.statement("CREATE TABLE pair (a TEXT, b INTEGER, v, PRIMARY KEY (a, b))"),
]
values = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=5),
                   st.binary(max_size=5), st.floats(allow_nan=False, allow_infinity=False))
kv_change = st.tuples(st.just("kv"), st.booleans(), st.integers(0, 5), values)
pair_change = st.tuples(st.just("pair"), st.booleans(),
                        st.tuples(st.sampled_from("abc"), st.integers(0, 2)), values)
changes = st.lists(st.one_of(kv_change, pair_change), max_size=40)


def to_envelope(change: tuple[object, ...]) -> bytes:
    table, is_upsert, key, value = change
    key_cols = {"k": key} if table == "kv" else dict(zip(("a", "b"), key, strict=True))  # type: ignore[arg-type]
    if is_upsert:
        return envelope.upsert(str(table), key_cols, {"v": value})
    return envelope.delete(str(table), key_cols)


def model(changes_: list[tuple[object, ...]]) -> dict[tuple[str, object], object]:
    state: dict[tuple[str, object], object] = {}
    for table, is_upsert, key, value in changes_:
        if is_upsert:
            state[(str(table), key)] = value
        else:
            state.pop((str(table), key), None)
    return state


@settings(max_examples=60, deadline=None)
@given(changes=changes, cuts=st.lists(st.integers(0, 42), max_size=6))
def test_batch_boundaries_do_not_change_the_state(changes: list[tuple[object, ...]],
                                                  cuts: list[int]) -> None:
    values_ = SCHEMA + [to_envelope(c) for c in changes]
    records = [Record(i, 1_700_000_000_000 + i, None, v, ()) for i, v in enumerate(values_)]
    bounds = sorted({0, len(records), *(c for c in cuts if c <= len(records))})
    with tempfile.TemporaryDirectory() as tmp:
        one, split = Path(tmp) / "one.sqlite", Path(tmp) / "split.sqlite"
        with SqliteMachine(one) as m:
            m.apply_batch(records)
            assert m.errors() == []
        with SqliteMachine(split) as m:
            for lo, hi in itertools.pairwise(bounds):
                m.apply_batch(records[lo:hi])
            assert m.applied_offset == len(records)
        assert state_hash(one) == state_hash(split)
        conn = sqlite3.connect(one)
        try:
            got = {("kv", k): v for k, v in conn.execute("SELECT k, v FROM kv")}
            pairs = conn.execute("SELECT a, b, v FROM pair")
            got.update({("pair", (a, b)): v for a, b, v in pairs})
        finally:
            conn.close()
        assert got == model(changes)
