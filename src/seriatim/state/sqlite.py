"""The SQLite materializer: a database rebuilt from, and kept in sync with, a log of SQL.

Theory of operation
-------------------
:class:`SqliteMachine` is a :class:`~seriatim.state.machine.StateMachine` over one SQLite
file. Each record's value is an envelope (:mod:`seriatim.state.envelope`): a statement with
parameters, a row change, or a group of them. The database holds two tables of its own:

``_seriatim_state``
    one row: ``applied_offset`` (the next offset to apply) and ``log_time_ms`` (the timestamp
    of the last applied record). It is updated in the same transaction as the batch it
    reflects, so after a crash (even ``kill -9`` mid-batch) the file is at an offset it
    reflects exactly and the replica resumes there: exactly once.
``_seriatim_errors``
    one row per record that failed (``offset``, ``kind``, ``message``), written in the same
    transaction. It is part of the replicated state and of :func:`state_hash`.

Applying a batch is one ``BEGIN IMMEDIATE ... COMMIT``; each record runs inside a
``SAVEPOINT``, so a failing record is rolled back *entirely* (never half-applied), its failure
is recorded, and the batch goes on. The decision depends only on the record and the state, so
every replica makes the same one, whatever the batch boundaries. (A statement that rolls back
the whole transaction itself, ``INSERT OR ROLLBACK`` or ``RAISE(ROLLBACK)``, makes the batch
re-run one record per transaction, so the outcome is again per record.) Consecutive records
that are the same single DML statement (a *run*, e.g. a stream of INSERTs) go through one
``executemany`` under one SAVEPOINT instead; if any of them fails, the run is rolled back and
re-applied record by record, so the outcome is always the per-record one.

Failures that are *not* properties of the log (I/O errors, a full disk, a locked database,
corruption) are :class:`ReplicaStorageError`: the transaction rolls back, nothing is recorded,
the offset does not advance, and the replica stops. A record with a newer envelope version
stops the replica too (:class:`UnsupportedEnvelopeError`).

Determinism guard (``docs/state.md`` has the full list):

* time comes from the log: ``CURRENT_TIMESTAMP``/``CURRENT_DATE``/``CURRENT_TIME`` and
  ``'now'`` in ``date``, ``time``, ``datetime``, ``julianday``, ``unixepoch`` and
  ``strftime`` are bound to the record's ``timestamp_ms`` (UTC, millisecond precision, as
  SQLite's own 'now'); the ``'localtime'`` and ``'utc'`` modifiers (the replica's time zone)
  are rejected;
* ``random()``, ``randomblob()``, ``changes()``, ``total_changes()``, ``last_insert_rowid()``,
  ``sqlite_version()``, ``sqlite_offset()``, ... are rejected, by an authorizer when a
  statement is prepared (including trigger bodies) and by overriding functions that fail when
  called (column defaults);
* transaction control, SAVEPOINT, PRAGMA, ATTACH/DETACH, ANALYZE, TEMP objects and any write
  to, or trigger or index on, a ``_seriatim_*`` object are rejected.

The connection settings are fixed and cannot be changed from the log (PRAGMA is rejected):
SQLite's defaults, so ``foreign_keys`` is OFF; WAL journal with ``synchronous=NORMAL`` (a
power cut may lose the last transactions, which the replica then re-applies from the log:
durability comes from the log, atomicity from SQLite).

The connection is used by one thread at a time (the runner's); it is opened with
``check_same_thread=False`` so a replica can be built in one thread and run in another.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
import operator
import os
import shutil
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from seriatim.errors import invariant
from seriatim.records import Record
from seriatim.records.columns import RecordColumns
from seriatim.state import envelope
from seriatim.state.machine import (
    EnvelopeError,
    NondeterministicError,
    ReplicaStorageError,
    Snapshot,
    StateError,
)
from seriatim.state.snapshot import TMP_PREFIX, fsync_dir, fsync_file, publish

__all__ = ["ERRORS_TABLE", "STATE_TABLE", "SqliteMachine", "hash_with_offset",
           "read_applied_offset", "state_hash", "write_snapshot"]

STATE_TABLE = "_seriatim_state"
ERRORS_TABLE = "_seriatim_errors"
_RESERVED = "_seriatim_"
#: Version of the replica's own schema (the two tables above).
STATE_FORMAT = 1

#: Primary SQLite result codes that describe the replica's environment, not the log.
_FATAL_CODES = frozenset({
    5,   # SQLITE_BUSY
    6,   # SQLITE_LOCKED
    7,   # SQLITE_NOMEM
    8,   # SQLITE_READONLY
    9,   # SQLITE_INTERRUPT
    10,  # SQLITE_IOERR
    11,  # SQLITE_CORRUPT
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
    22,  # SQLITE_NOLFS
    26,  # SQLITE_NOTADB
})

#: Functions whose result depends on the replica, not on the log: name -> builtin arities.
_FORBIDDEN_FUNCTIONS: dict[str, tuple[int, ...]] = {
    "random": (0,),
    "randomblob": (1,),
    "changes": (0,),
    "total_changes": (0,),
    "last_insert_rowid": (0,),
    "sqlite_version": (0,),
    "sqlite_source_id": (0,),
    "sqlite_compileoption_get": (1,),
    "sqlite_compileoption_used": (1,),
    "sqlite_offset": (1,),
    "load_extension": (1, 2),
}

#: Date/time functions: name -> index of the time-value argument ('now' when absent).
_TIME_FUNCTIONS: dict[str, int] = {
    "date": 0, "time": 0, "datetime": 0, "julianday": 0, "unixepoch": 0, "strftime": 1,
}
_CURRENT_KEYWORDS: dict[str, str] = {
    "current_timestamp": "%Y-%m-%d %H:%M:%S",
    "current_date": "%Y-%m-%d",
    "current_time": "%H:%M:%S",
}

_FORBIDDEN_ACTIONS: dict[int, str] = {
    sqlite3.SQLITE_TRANSACTION: "transaction control (BEGIN/COMMIT/ROLLBACK) is not allowed: "
    'each record is its own transaction; group statements with an "ops" envelope',
    sqlite3.SQLITE_SAVEPOINT: "SAVEPOINT/RELEASE is not allowed: each record is its own "
    "transaction",
    sqlite3.SQLITE_PRAGMA: "PRAGMA is not allowed: connection settings are fixed on every "
    "replica",
    sqlite3.SQLITE_ATTACH: "ATTACH is not allowed: other database files are not in the log",
    sqlite3.SQLITE_DETACH: "DETACH is not allowed",
    sqlite3.SQLITE_ANALYZE: "ANALYZE is not allowed: statistics change query plans",
    sqlite3.SQLITE_CREATE_TEMP_INDEX: "TEMP objects are not allowed: they vanish on restart",
    sqlite3.SQLITE_CREATE_TEMP_TABLE: "TEMP objects are not allowed: they vanish on restart",
    sqlite3.SQLITE_CREATE_TEMP_TRIGGER: "TEMP objects are not allowed: they vanish on restart",
    sqlite3.SQLITE_CREATE_TEMP_VIEW: "TEMP objects are not allowed: they vanish on restart",
    sqlite3.SQLITE_DROP_TEMP_INDEX: "TEMP objects are not allowed",
    sqlite3.SQLITE_DROP_TEMP_TABLE: "TEMP objects are not allowed",
    sqlite3.SQLITE_DROP_TEMP_TRIGGER: "TEMP objects are not allowed",
    sqlite3.SQLITE_DROP_TEMP_VIEW: "TEMP objects are not allowed",
}
#: Statements whose runs may be applied with executemany (see SqliteMachine._apply_run).
_DML = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
_MIN_RUN = 2
_SQL_CACHE = 1024
#: Runs with more stretches of equal timestamps use a generator (see _apply_run).
_MAX_TIME_STRETCHES = 8
#: _verdict's answers (compared by identity in the hot loop).
_BATCHABLE, _SINGLE, _INVALID = "batchable", "single", "invalid"
#: One record's parameters as a run binds them (from msgspec, or the reference decoder).
_Params = tuple[envelope.Value, ...] | dict[str, envelope.Value]
#: (lo, hi, sql, payload): see SqliteMachine._plan.
_Segment = tuple[int, int, str | None, list[_Params] | list[envelope.Op] | EnvelopeError]
_READ_ACTIONS = frozenset({sqlite3.SQLITE_READ, sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE})


class _TransactionLost(Exception):
    """A record's statement rolled back the whole batch transaction (OR ROLLBACK)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


class SqliteMachine:
    """A SQLite database fed by a log of envelopes. ``SqliteMachine(path)`` opens or creates
    it; ``applied_offset`` says where to resume."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        # Every internal statement carries a per-process tag so that the statement cache can
        # never hand an internal (unguarded) prepared statement to a log statement of the same
        # text (a logged "COMMIT" would otherwise reuse ours and end the batch transaction).
        self._tag = f" /* seriatim {os.urandom(8).hex()} */"
        self._guard = False
        self._violation: str | None = None
        self._now_ms: int | None = None
        self._sql_verdicts: dict[str, str] = {}
        self._pure = sqlite3.connect(":memory:", check_same_thread=False)
        self._conn = self._open()
        self._applied = self._load_offset()

    # --- opening ------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        conn = _connect(self.path)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} ("
                         "id INTEGER PRIMARY KEY CHECK (id = 0), "
                         "applied_offset INTEGER NOT NULL, log_time_ms INTEGER, "
                         "format INTEGER NOT NULL)")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {ERRORS_TABLE} ("
                         "offset INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
                         "message TEXT NOT NULL)")
            conn.execute(f"INSERT OR IGNORE INTO {STATE_TABLE} VALUES (0, 0, NULL, ?)",
                         (STATE_FORMAT,))
            conn.execute("COMMIT")
            fmt = conn.execute(f"SELECT format FROM {STATE_TABLE}").fetchone()[0]
            if fmt != STATE_FORMAT:
                raise StateError(f"{self.path}: replica format {fmt}, expected {STATE_FORMAT}")
        except sqlite3.Error as exc:
            conn.close()
            raise ReplicaStorageError(f"{self.path}: cannot open the replica: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._install_guard(conn)
        return conn

    def _load_offset(self) -> int:
        row = self._conn.execute(f"SELECT applied_offset FROM {STATE_TABLE}").fetchone()
        return int(row[0])

    def _install_guard(self, conn: sqlite3.Connection) -> None:
        conn.set_authorizer(self._authorize)
        for name, arities in _FORBIDDEN_FUNCTIONS.items():
            for n in arities:
                conn.create_function(name, n, self._forbidden(name), deterministic=True)
        for name, index in _TIME_FUNCTIONS.items():
            conn.create_function(name, -1, self._time_function(name, index), deterministic=True)
        for name, fmt in _CURRENT_KEYWORDS.items():
            conn.create_function(name, 0, self._current(name, fmt), deterministic=True)

    # --- the determinism guard ----------------------------------------------------------------

    def _deny(self, reason: str) -> int:
        self._violation = reason
        return sqlite3.SQLITE_DENY

    def _authorize(self, action: int, arg1: str | None, arg2: str | None,
                   dbname: str | None, trigger: str | None) -> int:
        if not self._guard:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            name = (arg2 or "").lower()
            if name in _FORBIDDEN_FUNCTIONS:
                return self._deny(f"non-deterministic function {name}() is not allowed: compute "
                                  "the value in the writer and pass it as a parameter")
            return sqlite3.SQLITE_OK
        reason = _FORBIDDEN_ACTIONS.get(action)
        if reason is not None:
            return self._deny(reason)
        if action in _READ_ACTIONS:
            return sqlite3.SQLITE_OK
        names = (arg1,) if action == sqlite3.SQLITE_UPDATE else (arg1, arg2)
        for obj in names:
            if obj is not None and obj.lower().startswith(_RESERVED):
                return self._deny(f"{obj}: objects named {_RESERVED}* belong to seriatim; "
                                  "the log cannot change them")
        return sqlite3.SQLITE_OK

    def _forbidden(self, name: str) -> Callable[..., Any]:
        def fn(*args: Any) -> Any:
            reason = f"non-deterministic function {name}() is not allowed"
            self._violation = reason
            raise NondeterministicError(reason)
        return fn

    def _now_iso(self, fmt: str = "%Y-%m-%d %H:%M:%S.%f") -> str:
        if self._now_ms is None:
            reason = "'now' is only defined while a record is applied"
            self._violation = reason
            raise NondeterministicError(reason)
        moment = _dt.datetime(1970, 1, 1) + _dt.timedelta(milliseconds=self._now_ms)
        text = moment.strftime(fmt)
        return text[:-3] if fmt.endswith("%f") else text  # milliseconds, as SQLite's 'now'

    def _current(self, name: str, fmt: str) -> Callable[[], str]:
        def fn() -> str:
            return self._now_iso(fmt)
        return fn

    def _time_function(self, name: str, index: int) -> Callable[..., Any]:
        sql_by_arity: dict[int, str] = {}

        def fn(*args: Any) -> Any:
            values = list(args)
            if len(values) <= index:
                values.append("now")  # date() is date('now'); strftime(f) is strftime(f, 'now')
            if isinstance(values[index], str) and values[index].lower() == "now":
                values[index] = self._now_iso()
            for modifier in values[index + 1:]:
                if isinstance(modifier, str) and modifier.strip().lower() in ("localtime",
                                                                               "utc"):
                    reason = (f"{name}(): the {modifier.strip()!r} modifier depends on the "
                              "replica's time zone")
                    self._violation = reason
                    raise NondeterministicError(reason)
            sql = sql_by_arity.get(len(values))
            if sql is None:
                sql = f"SELECT {name}({', '.join('?' * len(values))})"
                sql_by_arity[len(values)] = sql
            return self._pure.execute(sql, values).fetchone()[0]
        return fn

    # --- applying -----------------------------------------------------------------------------

    @property
    def applied_offset(self) -> int:
        return self._applied

    def apply(self, record: Record) -> None:
        self.apply_batch((record,))

    def apply_batch(self, records: Sequence[Record]) -> None:
        if type(records) is RecordColumns:
            # The lean path (LogSource yields these): the columns as they are, no Record.
            offsets, timestamps, values = records.offsets, records.timestamps, records.values
        else:
            offsets = [r.offset for r in records]
            timestamps = [r.timestamp_ms for r in records]
            values = [r.value for r in records]
        if not offsets:
            return
        # Redelivered records (below the applied offset) are skipped; the rest must increase.
        # Checked with C loops over the offsets column (~20 ns a record, against ~300 for a
        # per-record invariant() call).
        if offsets[0] < self._applied or not all(map(operator.lt, offsets,
                                                     itertools.islice(offsets, 1, None))):
            keep = [k for k, o in enumerate(offsets) if o >= self._applied]
            offsets = [offsets[k] for k in keep]
            timestamps = [timestamps[k] for k in keep]
            values = [values[k] for k in keep]
            for prev, nxt in itertools.pairwise(offsets):
                invariant(nxt > prev, f"records out of order: offset {nxt} after {prev}")
            if not offsets:
                return
        try:
            self._commit(offsets, timestamps, values)
        except _TransactionLost:
            for k in range(len(offsets)):  # attribute the lost transaction to one record
                one = (offsets[k:k + 1], timestamps[k:k + 1], values[k:k + 1])
                try:
                    self._commit(*one)
                except _TransactionLost as lost:
                    self._commit(*one, lost=lost)

    def _commit(self, offsets: list[int], timestamps: list[int], values: list[bytes | None],
                lost: _TransactionLost | None = None) -> None:
        conn = self._conn
        last, last_ts = offsets[-1], timestamps[-1]
        try:
            conn.execute(f"BEGIN IMMEDIATE{self._tag}")
            try:
                if lost is not None:
                    for offset in offsets:
                        self._record_error(offset, lost.kind, lost.message)
                else:
                    self._apply_records(offsets, timestamps, values)
                conn.execute(f"UPDATE {STATE_TABLE} SET applied_offset = ?, log_time_ms = ? "
                             f"WHERE id = 0{self._tag}", (last + 1, last_ts))
                conn.execute(f"COMMIT{self._tag}")
            except BaseException:
                if conn.in_transaction:
                    conn.execute(f"ROLLBACK{self._tag}")
                raise
        except sqlite3.Error as exc:
            raise ReplicaStorageError(f"{self.path}: applying offsets {offsets[0]}.."
                                      f"{last} failed: {exc}") from exc
        self._applied = last + 1

    def _apply_records(self, offsets: list[int], timestamps: list[int],
                       values: list[bytes | None]) -> None:
        """Apply records inside the batch transaction: runs of the same DML statement with
        ``executemany`` (one SAVEPOINT per run), anything else one record at a time."""
        for lo, hi, sql, payload in self._plan(values):
            if sql is None:
                self._apply_record(offsets[lo], timestamps[lo], payload)  # type: ignore[arg-type]
                continue
            params: list[_Params] = payload  # type: ignore[assignment]
            if hi - lo >= _MIN_RUN and self._apply_run(sql, timestamps[lo:hi], params):
                continue
            for k in range(lo, hi):
                op = envelope.Statement(sql, params[k - lo])
                self._apply_record(offsets[k], timestamps[k], [op])

    def _plan(self, values: list[bytes | None]) -> list[_Segment]:
        """Decode every value (before anything runs, so an unsupported envelope stops the
        batch before it changed anything) into segments ``(lo, hi, sql, payload)``:

        * ``sql`` set: records ``lo..hi-1`` are all that one DML statement (a *run*) and
          ``payload`` is their parameters, in order;
        * ``sql`` None: the one record ``lo`` (``hi == lo + 1``), ``payload`` its operations or
          its :class:`EnvelopeError`.

        Hot path, measured at ~0.2 us a record for a run of INSERTs (against ~1.9 us with
        json, per-record Statement objects and a second grouping pass): each value goes
        through ``envelope.decode_plain`` (msgspec, in C); a record joins the current run when
        its SQL text equals the run's (same version 1, same kind of parameters), with no other
        per-record work; whether a statement may start a run is decided once per distinct SQL
        text (``_verdict``). Anything else is decoded by ``envelope.decode_reference`` (the
        same result), and a one-statement envelope from there (boolean or blob parameters)
        still joins runs."""
        decode_plain = envelope.decode_plain
        plain_errors = envelope.PLAIN_ERRORS
        verdicts = self._sql_verdicts
        plan: list[_Segment] = []
        run_sql: str | None = None  # the SQL of the current run (only a batchable one)
        run_named = False
        run_lo = 0
        run_params: list[_Params] = []
        k = -1
        for k, value in enumerate(values):
            sql: str | None = None  # set: record k is the one statement sql with params
            params: _Params = ()
            try:
                plain = decode_plain(value)  # type: ignore[arg-type]
            except plain_errors:
                pass
            else:
                if (plain.sql == run_sql and plain.v == 1
                        and (type(plain.params) is dict) is run_named):
                    run_params.append(plain.params)  # type: ignore[arg-type]
                    continue
                if plain.v == 1:
                    sql, params = plain.sql, plain.params  # type: ignore[assignment]
            verdict = None if sql is None else (verdicts.get(sql) or self._verdict(sql))
            ops: list[envelope.Op] | EnvelopeError | None = None
            if verdict is None or verdict is _INVALID:
                try:
                    ops = envelope.decode_reference(value)
                except EnvelopeError as exc:
                    ops = exc
                sql = verdict = None
                if type(ops) is list and len(ops) == 1 and type(ops[0]) is envelope.Statement:
                    sql, params = ops[0].sql, ops[0].params
                    verdict = verdicts.get(sql) or self._verdict(sql)
                    if sql == run_sql and (type(params) is dict) is run_named:
                        run_params.append(params)
                        continue
            if run_sql is not None:  # record k ends the current run
                plan.append((run_lo, k, run_sql, run_params))
                run_sql = None
            if verdict is _BATCHABLE:
                assert sql is not None
                run_sql, run_lo, run_params = sql, k, [params]
                run_named = type(params) is dict
                continue
            if ops is None:
                assert sql is not None
                ops = [envelope.Statement(sql, params)]
            plan.append((k, k + 1, None, ops))
        if run_sql is not None:
            plan.append((run_lo, k + 1, run_sql, run_params))
        return plan

    def _verdict(self, sql: str) -> str:
        """How a plain statement with this SQL text is applied: ``_BATCHABLE`` (one DML
        statement: may join a run), ``_SINGLE`` (any other valid statement: alone) or
        ``_INVALID`` (blank: the reference decoder rejects it). Once per distinct text."""
        if not sql.strip():
            verdict = _INVALID
        else:
            head = sql.lstrip().split(None, 1)
            verdict = (_BATCHABLE if head[0].upper() in _DML and "returning" not in sql.lower()
                       else _SINGLE)
        if len(self._sql_verdicts) >= _SQL_CACHE:
            self._sql_verdicts.clear()
        self._sql_verdicts[sql] = verdict
        return verdict

    def _apply_run(self, sql: str, timestamps: list[int], params: list[_Params]) -> bool:
        """``params`` are the parameters of records that are all the one DML statement
        ``sql``, stamped ``timestamps``: executemany them under one SAVEPOINT. True if every
        one succeeded; otherwise the run is rolled back (False) and the caller applies its
        records one by one, so that each failure is attributed to its own record exactly as
        it would be without runs.

        Time: each record's statement sees its own timestamp. The run is cut into stretches
        of records with the same timestamp, one executemany each (a replica batch that spans
        two appends has two); when there are more than ``_MAX_TIME_STRETCHES`` (records
        stamped one by one), the parameters are handed to sqlite3 by a generator that sets
        each record's timestamp before yielding its parameters (~70 ns a record more);
        sqlite3 binds and steps each parameter set before it pulls the next one
        (tests/unit/test_state_runs.py checks that time-dependent runs equal one-by-one
        application)."""
        conn = self._conn

        def timed() -> Iterator[_Params]:
            for ts, p in zip(timestamps, params, strict=True):
                self._now_ms = ts
                yield p

        stretches: list[tuple[int, Iterable[_Params]]] = [(timestamps[0], params)]
        if timestamps.count(timestamps[0]) != len(timestamps):
            stretches = []
            lo = 0
            for ts, group in itertools.groupby(timestamps):
                if len(stretches) == _MAX_TIME_STRETCHES:
                    stretches = [(timestamps[0], timed())]
                    break
                hi = lo + len(list(group))
                stretches.append((ts, params[lo:hi]))
                lo = hi
        conn.execute(f"SAVEPOINT seriatim_run{self._tag}")
        self._violation = None
        self._guard = True
        try:
            for ts, todo in stretches:
                self._now_ms = ts
                conn.executemany(sql, todo).close()
        except (sqlite3.Error, OverflowError, ValueError) as exc:
            self._guard = False
            if not conn.in_transaction:
                raise _TransactionLost(*self._classify(exc)) from exc
            conn.execute(f"ROLLBACK TO seriatim_run{self._tag}")
            conn.execute(f"RELEASE seriatim_run{self._tag}")
            return False
        finally:
            self._guard = False
            self._now_ms = None
        conn.execute(f"RELEASE seriatim_run{self._tag}")
        return True

    def _apply_record(self, offset: int, timestamp_ms: int,
                      ops: list[envelope.Op] | EnvelopeError) -> None:
        if isinstance(ops, EnvelopeError):
            self._record_error(offset, "envelope", str(ops))
            return
        conn = self._conn
        conn.execute(f"SAVEPOINT seriatim_record{self._tag}")
        self._now_ms = timestamp_ms
        self._violation = None
        self._guard = True
        try:
            for op in ops:
                self._run(op)
        except (sqlite3.Error, OverflowError, ValueError) as exc:
            self._guard = False
            kind, message = self._classify(exc)
            if not conn.in_transaction:
                raise _TransactionLost(kind, message) from exc
            conn.execute(f"ROLLBACK TO seriatim_record{self._tag}")
            conn.execute(f"RELEASE seriatim_record{self._tag}")
            self._record_error(offset, kind, message)
        else:
            self._guard = False
            conn.execute(f"RELEASE seriatim_record{self._tag}")
        finally:
            self._guard = False
            self._now_ms = None

    def _run(self, op: envelope.Op) -> None:
        if isinstance(op, envelope.Statement):
            cur = self._conn.execute(op.sql, op.params)
        elif isinstance(op, envelope.Upsert):
            names = [k for k, _ in op.key] + [c for c, _ in op.columns]
            values = [v for _, v in op.key] + [v for _, v in op.columns]
            action = ("NOTHING" if not op.columns else "UPDATE SET " + ", ".join(
                f"{_quote(c)} = excluded.{_quote(c)}" for c, _ in op.columns))
            sql = (f"INSERT INTO {_quote(op.table)} ({', '.join(map(_quote, names))}) "
                   f"VALUES ({', '.join('?' * len(values))}) "
                   f"ON CONFLICT ({', '.join(_quote(k) for k, _ in op.key)}) DO {action}")
            cur = self._conn.execute(sql, values)
        else:
            where = " AND ".join(f"{_quote(k)} IS ?" for k, _ in op.key)
            cur = self._conn.execute(f"DELETE FROM {_quote(op.table)} WHERE {where}",
                                     [v for _, v in op.key])
        cur.close()

    def _classify(self, exc: BaseException) -> tuple[str, str]:
        if self._violation is not None:
            return "nondeterministic", self._violation
        if isinstance(exc, sqlite3.Error):
            code = getattr(exc, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _FATAL_CODES:
                raise ReplicaStorageError(f"{self.path}: {exc}") from exc
            return "sql", str(exc)
        return "params", str(exc)

    def _record_error(self, offset: int, kind: str, message: str) -> None:
        self._conn.execute(f"INSERT OR REPLACE INTO {ERRORS_TABLE} (offset, kind, message) "
                           f"VALUES (?, ?, ?){self._tag}", (offset, kind, message))

    # --- reading ------------------------------------------------------------------------------

    def errors(self) -> list[tuple[int, str, str]]:
        """The recorded failures: (offset, kind, message), by offset."""
        return [(int(o), str(k), str(m)) for o, k, m in self._conn.execute(
            f"SELECT offset, kind, message FROM {ERRORS_TABLE} ORDER BY offset{self._tag}")]

    def state_hash(self) -> str:
        """The canonical hash of what is committed (read through a connection of its own, so
        that nothing it prepares can ever be reused by a logged statement)."""
        return state_hash(self.path)

    # --- snapshots ----------------------------------------------------------------------------

    def snapshot(self, out_dir: str | os.PathLike[str]) -> Snapshot:
        """VACUUM INTO a snapshot file in ``out_dir``, named by the offset it reflects."""
        invariant(not self._conn.in_transaction, "snapshot inside a transaction")
        return _vacuum_into(self._conn, out_dir, tag=self._tag)

    def restore(self, snapshot: Snapshot) -> None:
        """Replace this database with the snapshot's (copied, fsynced, renamed into place)."""
        offset = read_applied_offset(snapshot.path)
        if offset != snapshot.offset:
            raise StateError(f"{snapshot.path} reflects offset {offset}, not {snapshot.offset}")
        check = sqlite3.connect(snapshot.path)
        try:
            verdict = check.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            check.close()
        if verdict != "ok":
            raise StateError(f"{snapshot.path}: damaged snapshot: {verdict}")
        self._close_conn()
        tmp = self.path + ".restore-tmp"
        shutil.copyfile(snapshot.path, tmp)
        fsync_file(tmp)
        for suffix in ("-wal", "-shm", "-journal"):
            try:
                os.unlink(self.path + suffix)
            except FileNotFoundError:
                pass
        os.replace(tmp, self.path)
        fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        self._conn = self._open()
        self._applied = self._load_offset()
        invariant(self._applied == snapshot.offset, "restored offset differs from the snapshot")

    # --- closing ------------------------------------------------------------------------------

    def _close_conn(self) -> None:
        # Fold the WAL into the main file so that the file alone is the whole database.
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.execute("PRAGMA journal_mode=DELETE")
        finally:
            self._conn.close()

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            self._pure.close()

    def __enter__(self) -> SqliteMachine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteMachine({self.path!r}, applied_offset={self._applied})"


# --- snapshots of a database file ---------------------------------------------------------------


def read_applied_offset(path: str | os.PathLike[str]) -> int:
    """The applied offset stored in a replica (or snapshot) file."""
    conn = _connect(os.fspath(path), readonly=True)
    try:
        row = conn.execute(f"SELECT applied_offset FROM {STATE_TABLE}").fetchone()
    except sqlite3.Error as exc:
        raise StateError(f"{path}: not a seriatim replica ({exc})") from exc
    finally:
        conn.close()
    return int(row[0])


_tmp_lock = threading.Lock()
_tmp_counter = 0


def _vacuum_into(conn: sqlite3.Connection, out_dir: str | os.PathLike[str], *, tag: str = ""
                 ) -> Snapshot:
    global _tmp_counter
    os.makedirs(out_dir, exist_ok=True)
    with _tmp_lock:
        _tmp_counter += 1
        n = _tmp_counter
    tmp = os.path.join(os.fspath(out_dir), f"{TMP_PREFIX}{os.getpid()}-{n}.sqlite")
    if os.path.exists(tmp):
        os.unlink(tmp)
    try:
        conn.execute(f"VACUUM INTO ?{tag}", (tmp,))
        offset = read_applied_offset(tmp)  # the tag comes from the file itself
        return publish(tmp, out_dir, offset)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_snapshot(db_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]
                   ) -> Snapshot:
    """Snapshot a replica file from outside (e.g. while another process follows it): a
    read-only connection, VACUUM INTO, named by the offset found in the copy."""
    if not os.path.exists(db_path):
        raise StateError(f"{db_path}: no such replica")
    conn = _connect(os.fspath(db_path), readonly=True)
    try:
        return _vacuum_into(conn, out_dir)
    finally:
        conn.close()


# --- the canonical hash ------------------------------------------------------------------------

_HASH_MAGIC = b"seriatim-state-hash-v1\x00"


def _canonical(value: Any) -> bytes:
    if value is None:
        return b"N"
    if isinstance(value, int):
        return b"I" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"F" + struct.pack(">d", 0.0 if value == 0 else value)
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        return b"T" + struct.pack(">I", len(data)) + data
    if isinstance(value, bytes):
        return b"B" + struct.pack(">I", len(value)) + value
    raise TypeError(f"unexpected SQLite value {type(value).__name__}")


def _row(values: Sequence[Any]) -> bytes:
    return b"R" + struct.pack(">I", len(values)) + b"".join(_canonical(v) for v in values)


def _table_rows(conn: sqlite3.Connection, table: str) -> Iterator[bytes]:
    q = _quote(table)
    pk = sorted((int(r[5]), str(r[1])) for r in conn.execute(f"PRAGMA table_info({q})")
                if int(r[5]) > 0)
    if pk:  # a primary key orders the rows totally
        order = ", ".join(_quote(name) for _, name in pk)
        for row in conn.execute(f"SELECT * FROM {q} ORDER BY {order}"):
            yield _row(row)
    else:  # no key: rows are a multiset; sort their canonical encodings
        yield from sorted(_row(row) for row in conn.execute(f"SELECT * FROM {q}"))


def state_hash(db: str | os.PathLike[str] | sqlite3.Connection) -> str:
    """The canonical hash of a replica's contents (see :func:`hash_with_offset`)."""
    return hash_with_offset(db)[0]


def hash_with_offset(db: str | os.PathLike[str] | sqlite3.Connection) -> tuple[str, int]:
    """(state hash, applied offset), read in one transaction.

    The hash is a canonical SHA-256 (hex) of a replica's contents: the schema (tables,
    indexes, views, triggers, by type and name), then every table's columns and rows (tables
    by name; rows by primary key, or sorted when there is none; values typed: NULL, INTEGER,
    REAL, TEXT, BLOB), ``_seriatim_errors`` included and ``_seriatim_state`` (the offset)
    excluded. Equal hashes at the same applied offset mean equal replicas. Hidden rowids are
    not hashed (VACUUM, and so a snapshot, may renumber them)."""
    own = not isinstance(db, sqlite3.Connection)
    conn = _connect(os.fspath(db), readonly=True) if not isinstance(db, sqlite3.Connection) \
        else db
    began = False
    try:
        if not conn.in_transaction:
            conn.execute("BEGIN")  # one read snapshot for the whole walk
            began = True
        offset = int(conn.execute(f"SELECT applied_offset FROM {STATE_TABLE}").fetchone()[0])
        h = hashlib.sha256(_HASH_MAGIC)
        schema = [tuple(r) for r in conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema "
            "WHERE (name NOT LIKE 'sqlite\\_%' ESCAPE '\\' OR name = 'sqlite_sequence') "
            "AND name != ? ORDER BY type, name", (STATE_TABLE,))]
        for entry in schema:
            h.update(_row(entry))
        for type_, name, _tbl, sql in schema:
            if type_ != "table" or (sql or "").upper().startswith("CREATE VIRTUAL"):
                continue  # a virtual table's rows live in its shadow tables, hashed as tables
            cur = conn.execute(f"SELECT * FROM {_quote(name)} LIMIT 0")
            columns = [d[0] for d in cur.description]
            cur.close()
            h.update(b"TABLE" + _row([name, *columns]))
            count = 0
            for encoded in _table_rows(conn, name):
                h.update(encoded)
                count += 1
            h.update(b"COUNT" + struct.pack(">Q", count))
        return h.hexdigest(), offset
    except sqlite3.Error as exc:
        raise StateError(f"{db}: not a seriatim replica ({exc})") from exc
    finally:
        if began:
            conn.execute("COMMIT")
        if own:
            conn.close()
