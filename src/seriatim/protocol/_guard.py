"""A structural pre-check of request bodies, run before kio's native reader sees them.

Why this exists
---------------
kio 0.6.5's Rust reader sizes an array's ``Vec`` from the declared element count *before*
checking that the bytes are there. A 6-byte Metadata v12 body declaring 2^32-2 topics makes it
ask for 34 GB, and Rust aborts the whole process on allocation failure (``memory allocation of
34359738352 bytes failed``), which no ``except`` can catch: one malformed frame would kill the
broker. Smaller counts "succeed" only thanks to lazy overcommit. Apache Kafka rejects an array
whose count exceeds the bytes remaining (the generated ``read`` methods), and so do we, here.

Theory of operation
-------------------
For each kio entity class we compile, once, a checker ``(buf, pos, end) -> pos`` from the
dataclass fields (the same metadata kio's own writer uses): fixed-size runs become one bounds
check, strings and bytes check their length, arrays check their count against the remaining
bytes (then walk the elements, or multiply for fixed-size elements), nullable structs read their
marker byte, and flexible structs walk their tagged-field section, checking known tags inside
their declared length. The checker allocates nothing but Python ints and raises
:class:`MalformedRequestError` at the first inconsistency. It validates *sizes*, not values:
kio still decodes and rejects bad values (nulls where forbidden, invalid UTF-8, ...).
"""

from __future__ import annotations

import dataclasses
import struct
import types
import typing
from collections.abc import Callable
from typing import Any, Union

from seriatim.protocol._wire import read_uvarint
from seriatim.protocol.errors import MalformedRequestError

__all__ = ["Checker", "checker_for"]

Checker = Callable[[Any, int, int], int]

_FIXED_SIZES = {
    "int8": 1,
    "uint8": 1,
    "bool": 1,
    "int16": 2,
    "uint16": 2,
    "error_code": 2,
    "int32": 4,
    "uint32": 4,
    "timedelta_i32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
    "timedelta_i64": 8,
    "datetime_i64": 8,
    "uuid": 16,
}

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


def _short(what: str, need: int, pos: int, end: int) -> MalformedRequestError:
    return MalformedRequestError(f"{what} needs {need} bytes, {end - pos} remain")


def _skip(n: int) -> Checker:
    def check(buf: Any, pos: int, end: int) -> int:
        if end - pos < n:
            raise _short("field", n, pos, end)
        return pos + n

    return check


def _legacy_length(fmt: struct.Struct, what: str) -> Checker:
    size = fmt.size

    def check(buf: Any, pos: int, end: int) -> int:
        if end - pos < size:
            raise _short(f"{what} length", size, pos, end)
        n: int = fmt.unpack_from(buf, pos)[0]
        pos += size
        if n == -1:
            return pos
        if n < 0 or n > end - pos:
            raise MalformedRequestError(f"{what} length {n} with {end - pos} bytes remaining")
        return pos + n

    return check


def _compact_length(buf: Any, pos: int, end: int) -> int:
    n, pos = read_uvarint(buf, pos, end)
    if n == 0:  # null
        return pos
    n -= 1
    if n > end - pos:
        raise MalformedRequestError(f"compact length {n} with {end - pos} bytes remaining")
    return pos + n


def _array(flexible: bool, element: Checker | None, element_size: int) -> Checker:
    """An array of ``element`` (or of fixed ``element_size``-byte items when element is None)."""

    def check(buf: Any, pos: int, end: int) -> int:
        if flexible:
            n, pos = read_uvarint(buf, pos, end)
            if n == 0:
                return pos
            count = n - 1
        else:
            if end - pos < 4:
                raise _short("array length", 4, pos, end)
            (count,) = _I32.unpack_from(buf, pos)
            pos += 4
            if count == -1:
                return pos
            if count < 0:
                raise MalformedRequestError(f"negative array length {count}")
        # Kafka's rule: a count can never exceed the bytes left (the guard against kio's
        # up-front Vec allocation).
        if count > end - pos:
            raise MalformedRequestError(f"array of {count} items with {end - pos} bytes left")
        if element is None:
            total = count * element_size
            if total > end - pos:
                raise _short("array", total, pos, end)
            return pos + total
        for _ in range(count):
            pos = element(buf, pos, end)
        return pos

    return check


def _nullable_struct(inner: Checker) -> Checker:
    def check(buf: Any, pos: int, end: int) -> int:
        if end - pos < 1:
            raise _short("struct marker", 1, pos, end)
        (marker,) = _I8.unpack_from(buf, pos)
        if marker < 0:  # kio's NullableEntityMarker.null (-1)
            return pos + 1
        return inner(buf, pos + 1, end)

    return check


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (types.UnionType, Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _field_checker(
    entity: type[Any], f: dataclasses.Field[Any], tagged: bool
) -> tuple[Checker | None, int]:
    """(checker, 0) for a variable-size field, or (None, size) for a fixed-size one."""
    flexible = bool(entity.__flexible__)
    tp = f.type
    if isinstance(tp, str):  # a kio module with postponed annotations: resolve them
        tp = typing.get_type_hints(entity)[f.name]
    tp, optional = _unwrap_optional(tp)
    if tagged:
        optional = False  # kio reads tagged fields as non-nullable (see its get_field_writer)
    if typing.get_origin(tp) is tuple:
        (inner, _ellipsis) = typing.get_args(tp)
        inner, _ = _unwrap_optional(inner)
        if dataclasses.is_dataclass(inner):
            return _array(flexible, checker_for(typing.cast(type[Any], inner)), 0), 0
        kind = f.metadata["kafka_type"]
        if kind in _FIXED_SIZES:
            return _array(flexible, None, _FIXED_SIZES[kind]), 0
        return _array(flexible, _scalar_checker(kind, flexible), 0), 0
    if dataclasses.is_dataclass(tp):
        inner_check = checker_for(typing.cast(type[Any], tp))
        return (_nullable_struct(inner_check) if optional else inner_check), 0
    kind = f.metadata["kafka_type"]
    if kind in _FIXED_SIZES:
        return None, _FIXED_SIZES[kind]
    return _scalar_checker(kind, flexible), 0


def _scalar_checker(kind: str, flexible: bool) -> Checker:
    if kind not in ("string", "bytes", "records"):
        raise TypeError(f"unknown kafka_type {kind!r}")
    if flexible:
        return _compact_length
    if kind == "string":
        return _legacy_length(_I16, "string")
    return _legacy_length(_I32, "bytes")


def _tagged_section(tags: dict[int, Checker | int]) -> Checker:
    def check(buf: Any, pos: int, end: int) -> int:
        count, pos = read_uvarint(buf, pos, end)
        for _ in range(count):  # each iteration consumes >= 2 bytes or raises
            tag, pos = read_uvarint(buf, pos, end)
            size, pos = read_uvarint(buf, pos, end)
            if size > end - pos:
                raise MalformedRequestError(f"tagged field of {size} bytes, {end - pos} left")
            known = tags.get(tag)
            if known is not None and not isinstance(known, int):
                known(buf, pos, pos + size)  # the value must fit inside its declared size
            pos += size
        return pos

    return check


_CHECKERS: dict[type[Any], Checker] = {}


def checker_for(entity: type[Any]) -> Checker:
    """The compiled size checker for a kio entity class (cached per class)."""
    check = _CHECKERS.get(entity)
    if check is None:
        check = _CHECKERS[entity] = _compile(entity)
    return check


def _compile(entity: type[Any]) -> Checker:
    steps: list[Checker] = []
    run = 0  # consecutive fixed-size bytes, merged into one bounds check
    tags: dict[int, Checker | int] = {}
    for f in dataclasses.fields(entity):
        tag = f.metadata.get("tag")
        check, size = _field_checker(entity, f, tagged=tag is not None)
        if tag is not None:
            tags[int(tag)] = check if check is not None else size
            continue
        if check is None:
            run += size
            continue
        if run:
            steps.append(_skip(run))
            run = 0
        steps.append(check)
    if run:
        steps.append(_skip(run))
    if entity.__flexible__:
        steps.append(_tagged_section(tags))
    if len(steps) == 1:
        return steps[0]
    frozen = tuple(steps)

    def check_entity(buf: Any, pos: int, end: int) -> int:
        for step in frozen:
            pos = step(buf, pos, end)
        return pos

    return check_entity
