"""``seriatim db`` against an embedded log directory (the broker variants are in
tests/interop/test_state_broker.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from seriatim.cli.db import db
from seriatim.state import state_hash


def run(*args: str) -> str:
    result = CliRunner().invoke(db, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_exec_follow_snapshot_hash_with_an_embedded_log(tmp_path: Path) -> None:
    log, rdb = str(tmp_path / "log"), str(tmp_path / "r.sqlite")
    assert run("exec", "--log", log, "CREATE TABLE t (k PRIMARY KEY, v, at)").strip() == "0"
    assert run("exec", "--log", log, "INSERT INTO t VALUES (?, ?, CURRENT_TIMESTAMP)",
               "a", "42").strip() == "1"
    run("exec", "--log", log, "INSERT INTO t VALUES (?, ?, NULL)", "--text", "b", "42")
    run("exec", "--log", log, "INSERT INTO t VALUES (?, ?, ?)", "c", "1.5", "null")
    run("exec", "--log", log, "INSERT INTO t VALUES (random(), 1, 1)")
    out = run("follow", "--log", log, "--db", rdb, "--until-caught-up")
    assert "applied_offset=5 end_offset=5 lag=0" in out
    assert "1 record(s) rejected" in out
    conn = sqlite3.connect(rdb)
    try:
        got = conn.execute("SELECT k, v, typeof(v), at IS NOT NULL FROM t ORDER BY k").fetchall()
    finally:
        conn.close()
    assert got == [("a", 42, "integer", 1), ("b", "42", "text", 0), ("c", 1.5, "real", 0)]

    digest, offset = run("hash", rdb).split()
    assert digest == state_hash(rdb) and offset == "offset=5"
    out = run("snapshot", "--db", rdb, "--out", str(tmp_path / "s"))
    assert out.strip().endswith("snapshot-00000000000000000005.sqlite offset=5")

    # A second replica bootstraps from the snapshot and reaches the same hash.
    r2 = str(tmp_path / "r2.sqlite")
    out = run("follow", "--log", log, "--db", r2, "--snapshots", str(tmp_path / "s"),
              "--until-caught-up")
    assert "bootstrapped from" in out and "lag=0" in out
    assert run("hash", r2) == run("hash", rdb)


def test_usage_errors_are_clear(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(db, ["follow", "--db", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 2 and "either TOPIC or --log" in result.output
    result = runner.invoke(db, ["exec", "topic-only"])
    assert result.exit_code == 2 and "missing SQL" in result.output
    result = runner.invoke(db, ["hash", str(tmp_path / "nope.sqlite")])
    assert result.exit_code == 2
    (tmp_path / "plain.sqlite").touch()
    result = runner.invoke(db, ["hash", str(tmp_path / "plain.sqlite")])
    assert result.exit_code == 1 and "not a seriatim replica" in result.output
