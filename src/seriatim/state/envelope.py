"""The SQL envelope, version 1: what a record's value says to a SQLite replica.

Theory of operation
-------------------
A record's value is one UTF-8 JSON object, the *envelope*. It is pure data: this module
encodes and decodes it and does no I/O. :mod:`seriatim.state.sqlite` executes it. The full
format, with examples, is in ``docs/state.md``; in short::

    {"v": 1, "sql": "INSERT INTO t (a, b) VALUES (?, ?)", "params": [1, "x"]}
    {"v": 1, "sql": "UPDATE t SET b = :b WHERE a = :a", "params": {"a": 1, "b": "y"}}
    {"v": 1, "op": "upsert", "table": "t", "key": {"a": 1}, "columns": {"b": "z"}}
    {"v": 1, "op": "delete", "table": "t", "key": {"a": 1}}
    {"v": 1, "ops": [<statement or row change without "v">, ...]}    # all or nothing

Values (``params``, ``key``, ``columns``) are JSON null, booleans (bound as 0/1), numbers
(integers stay integers; a fraction or exponent makes a REAL) and strings; a BLOB is
``{"$blob": "<base64>"}``. Nothing else: no arrays, no other objects, no NaN.

Rules: ``"v"`` is required. A *malformed* envelope (bad JSON, unknown field, wrong type) is an
:class:`EnvelopeError`: deterministic, since it depends only on the record's bytes, so the
replica records it and moves on. A ``"v"`` greater than :data:`ENVELOPE_VERSION` is an
:class:`UnsupportedEnvelopeError`: a newer writer produced it, and a replica that skipped it
would diverge from a newer replica that applied it, so the replica stops instead.

Decoding is strict (unknown fields are errors) so that the meaning of a v1 envelope can never
silently change: a writer that needs new fields bumps ``"v"``.

Two decoders, one meaning. :func:`decode_reference` is the definition: ``json`` plus checks in
Python. :func:`decode` first tries :data:`decode_plain`, a ``msgspec`` decoder into
:class:`PlainStatement` that parses and type-checks the common envelope (one statement whose
parameters are null, numbers or strings) in C, ~0.17 us against ~1.6 us; anything it does not
take (another shape, a boolean or blob parameter, an unknown field, malformed JSON, a version
other than 1, a blank statement) goes to :func:`decode_reference`, so results and errors are
always the reference's (tests/property/test_envelope_fast.py checks both on arbitrary input).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from seriatim.state.machine import EnvelopeError, UnsupportedEnvelopeError

__all__ = [
    "ENVELOPE_VERSION",
    "MAX_OPS",
    "Delete",
    "Op",
    "PlainParams",
    "PlainStatement",
    "Statement",
    "Upsert",
    "Value",
    "decode",
    "decode_plain",
    "decode_reference",
    "delete",
    "statement",
    "transaction",
    "upsert",
]

#: The envelope version this code writes and the newest it reads.
ENVELOPE_VERSION = 1
#: Bound on the operations in one ``"ops"`` envelope.
MAX_OPS = 10_000

#: A value as bound to SQLite.
Value = None | int | float | str | bytes

_BLOB = "$blob"


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement with positional (tuple) or named (dict) parameters."""

    sql: str
    params: tuple[Value, ...] | dict[str, Value]


@dataclass(frozen=True, slots=True)
class Upsert:
    """Insert the row, or update ``columns`` of the row whose ``key`` columns match."""

    table: str
    key: tuple[tuple[str, Value], ...]
    columns: tuple[tuple[str, Value], ...]


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete the rows whose ``key`` columns match (``IS``, so a NULL key matches NULL)."""

    table: str
    key: tuple[tuple[str, Value], ...]


Op = Statement | Upsert | Delete


# --- encoding ---------------------------------------------------------------------------------


def _encode_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {_BLOB: base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"cannot encode {type(value).__name__} as an envelope value")


def _dumps(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _statement_obj(sql: str, params: Sequence[Any] | Mapping[str, Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"sql": sql}
    if isinstance(params, Mapping):
        obj["params"] = {str(k): _encode_value(v) for k, v in params.items()}
    elif params is not None:
        if isinstance(params, str | bytes):
            raise TypeError("params must be a sequence or a mapping of values, not a string")
        obj["params"] = [_encode_value(v) for v in params]
    return obj


def statement(sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> bytes:
    """The envelope for one SQL statement (``?``/``?NNN`` with a sequence, ``:name`` with a
    mapping)."""
    return _dumps({"v": ENVELOPE_VERSION, **_statement_obj(sql, params)})


def upsert(table: str, key: Mapping[str, Any], columns: Mapping[str, Any] | None = None
           ) -> bytes:
    """The envelope for a row upsert (the key columns need a PRIMARY KEY or UNIQUE index)."""
    return _dumps({"v": ENVELOPE_VERSION, "op": "upsert", "table": table,
                   "key": {k: _encode_value(v) for k, v in key.items()},
                   "columns": {k: _encode_value(v) for k, v in (columns or {}).items()}})


def delete(table: str, key: Mapping[str, Any]) -> bytes:
    """The envelope for a row delete."""
    return _dumps({"v": ENVELOPE_VERSION, "op": "delete", "table": table,
                   "key": {k: _encode_value(v) for k, v in key.items()}})


def transaction(envelopes: Sequence[bytes]) -> bytes:
    """One envelope applying the given single-operation envelopes all or nothing."""
    ops = []
    for env in envelopes:
        obj = json.loads(env)
        if not isinstance(obj, dict) or obj.pop("v", None) != ENVELOPE_VERSION or "ops" in obj:
            raise ValueError("transaction() takes envelopes made by statement/upsert/delete")
        ops.append(obj)
    return _dumps({"v": ENVELOPE_VERSION, "ops": ops})


# --- decoding ---------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise EnvelopeError(f"{name} is not a valid value")


# One decoder for every record (json.loads with parse_constant builds a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_raw_decode = _DECODER.raw_decode
_JSON_WS = " \t\n\r"


#: Parameters as :data:`decode_plain` leaves them (the scalars that need no conversion).
PlainParams = tuple[int | float | str | None, ...] | dict[str, int | float | str | None]


class PlainStatement(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """What :data:`decode_plain` returns: the fields of a one-statement envelope whose
    parameters are all null, numbers or strings. It means ``[Statement(sql, params)]``
    exactly when ``v == 1`` and ``sql.strip()``; anything else is for
    :func:`decode_reference`. Only C-validated fields, no checks in Python: a replica
    checks ``v`` per record and the ``sql`` once per distinct statement.

    Positional parameters are decoded as a tuple, not a list: the garbage collector stops
    tracking a tuple of scalars, while a list stays tracked and every collection walks the
    thousand of them a batch holds (measured: 160 against ~240 ns a record)."""

    v: int
    sql: str
    params: PlainParams = ()

    def op(self) -> Statement:
        """The :class:`Statement` this means (when ``v == 1`` and ``sql.strip()``)."""
        return Statement(self.sql, self.params)  # type: ignore[arg-type]  # dict invariance


#: ``decode_plain(value) -> PlainStatement``; raises one of :data:`PLAIN_ERRORS` for any value
#: that is not such an envelope (which :func:`decode_reference` then decodes or rejects).
#: msgspec is strict: a boolean is not an int, 1.0 is not an int, and duplicate keys keep the
#: last value, as ``json`` does.
decode_plain = msgspec.json.Decoder(PlainStatement).decode
#: What :data:`decode_plain` raises (TypeError: ``None`` or a non-buffer value; ValueError:
#: invalid UTF-8 inside a string, which msgspec reports as a UnicodeDecodeError).
PLAIN_ERRORS: tuple[type[Exception], ...] = (msgspec.DecodeError, TypeError, ValueError)


def decode(value: bytes | None) -> list[Op]:
    """The operations of one record value, in order. Raises :class:`EnvelopeError` (malformed;
    the replica records it) or :class:`UnsupportedEnvelopeError` (too new; the replica stops).
    Same results and errors as :func:`decode_reference`, faster for plain statements.
    """
    try:
        plain = decode_plain(value)  # type: ignore[arg-type]
    except PLAIN_ERRORS:
        return decode_reference(value)
    if plain.v == ENVELOPE_VERSION and plain.sql.strip():
        return [plain.op()]
    return decode_reference(value)


def decode_reference(value: bytes | None) -> list[Op]:
    """The definition of :func:`decode`: ``json`` and checks in Python."""
    if value is None:
        raise EnvelopeError("the record has no value (a tombstone is not an envelope)")
    try:
        text = value.decode("utf-8")
        if text[:1] == "{":  # the usual shape: skip json.loads's whitespace handling
            obj, end = _raw_decode(text)
            if end != len(text) and text[end:].strip(_JSON_WS):
                obj = _DECODER.decode(text)  # raises "Extra data" as json.loads would
        else:
            obj = _DECODER.decode(text)
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"not UTF-8: {exc}") from None
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise EnvelopeError(f"not JSON: {exc}") from None
    if type(obj) is dict and type(version := obj.get("v")) is int and version == ENVELOPE_VERSION:
        # The common case, one statement as statement() writes it: no copies, no per-value
        # calls when every parameter is a plain JSON scalar.
        n = len(obj)
        sql = obj.get("sql")
        if type(sql) is str and sql.strip():
            if n == 2:
                return [Statement(sql, ())]
            raw = obj.get("params")
            if n == 3 and type(raw) is list and _PLAIN.issuperset(map(type, raw)):
                return [Statement(sql, tuple(raw))]
    return _decode_slow(obj)


def _decode_slow(obj: Any) -> list[Op]:
    if not isinstance(obj, dict):
        raise EnvelopeError("an envelope is a JSON object")
    version = obj.get("v")
    if type(version) is not int:
        raise EnvelopeError('"v" (the envelope version, an integer) is required')
    if version > ENVELOPE_VERSION:
        raise UnsupportedEnvelopeError(
            f"envelope version {version} is newer than this replica understands "
            f"({ENVELOPE_VERSION}); upgrade seriatim to apply this log")
    if version < 1:
        raise EnvelopeError(f"unknown envelope version {version}")
    body = {k: v for k, v in obj.items() if k != "v"}
    if "ops" in body:
        _only(body, {"ops"}, "a transaction")
        ops = body["ops"]
        if not isinstance(ops, list) or not ops:
            raise EnvelopeError('"ops" must be a non-empty list')
        if len(ops) > MAX_OPS:
            raise EnvelopeError(f'"ops" has {len(ops)} operations; at most {MAX_OPS}')
        out: list[Op] = []
        for i, op in enumerate(ops):
            if not isinstance(op, dict) or "ops" in op or "v" in op:
                raise EnvelopeError(f'"ops"[{i}] must be a statement or a row change')
            out.append(_decode_op(op))
        return out
    return [_decode_op(body)]


def _only(obj: Mapping[str, Any], allowed: set[str], what: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise EnvelopeError(f"unknown field(s) in {what}: {', '.join(extra)}")


def _decode_op(obj: dict[str, Any]) -> Op:
    if "sql" in obj:
        _only(obj, {"sql", "params"}, "a statement")
        sql = obj["sql"]
        if not isinstance(sql, str) or not sql.strip():
            raise EnvelopeError('"sql" must be a non-empty string')
        raw = obj.get("params", [])
        params: tuple[Value, ...] | dict[str, Value]
        if isinstance(raw, list):
            params = tuple(_decode_value(v) for v in raw)
        elif isinstance(raw, dict):
            params = {str(k): _decode_value(v) for k, v in raw.items()}
        else:
            raise EnvelopeError('"params" must be a list or an object')
        return Statement(sql, params)
    op = obj.get("op")
    if op == "upsert":
        _only(obj, {"op", "table", "key", "columns"}, "an upsert")
        key = _columns(obj.get("key"), "key")
        columns = _columns(obj.get("columns", {}), "columns")
        if not key:
            raise EnvelopeError('"key" must name at least one column')
        overlap = {k for k, _ in key} & {c for c, _ in columns}
        if overlap:
            raise EnvelopeError(f"columns in both key and columns: {sorted(overlap)}")
        return Upsert(_table(obj.get("table")), key, columns)
    if op == "delete":
        _only(obj, {"op", "table", "key"}, "a delete")
        key = _columns(obj.get("key"), "key")
        if not key:
            raise EnvelopeError('"key" must name at least one column')
        return Delete(_table(obj.get("table")), key)
    raise EnvelopeError('an envelope needs "sql", "ops", or "op": "upsert"|"delete"')


def _table(name: Any) -> str:
    if not isinstance(name, str) or not name or "\x00" in name:
        raise EnvelopeError('"table" must be a non-empty string')
    return name


def _columns(obj: Any, field: str) -> tuple[tuple[str, Value], ...]:
    if not isinstance(obj, dict):
        raise EnvelopeError(f'"{field}" must be an object of column: value')
    for name in obj:
        if not name or "\x00" in name:
            raise EnvelopeError(f'"{field}" has an empty or invalid column name')
    return tuple((name, _decode_value(v)) for name, v in obj.items())


#: JSON values bound as they are (bool is not among them: it becomes 0/1).
_PLAIN = frozenset({str, int, float, type(None)})


def _decode_value(v: Any) -> Value:
    if v is None or isinstance(v, str | float):
        return v
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, dict) and set(v) == {_BLOB} and isinstance(v[_BLOB], str):
        try:
            return base64.b64decode(v[_BLOB], validate=True)
        except (binascii.Error, ValueError):
            raise EnvelopeError("a $blob value is not valid base64") from None
    raise EnvelopeError(f"unsupported value {json.dumps(v)[:60]} (null, boolean, number, "
                        'string or {"$blob": base64})')
