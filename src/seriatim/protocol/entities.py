"""Helpers for building kio's frozen response dataclasses without the boilerplate.

Theory of operation
-------------------
kio entities are frozen, keyword-only dataclasses in which nearly every field is required,
``error_code`` must be kio's own ``ErrorCode`` enum, ``*_ms`` values are ``timedelta`` fields
named without the suffix, and nested classes are distinct per version (``MetadataResponseTopic``
of v1 is not that of v12). Handlers should not care. :func:`make` builds an entity from the
fields the handler knows and fills the rest with protocol defaults:

* the schema's own default when kio declares one (``field(default=...)``);
* ``None`` only where the field is nullable;
* ``()`` for arrays, a default-built struct for nested structs;
* ``ErrorCode.none``, ``timedelta(0)``, ``False``, ``0``, ``""``, ``b""``, the zero UUID.

and converts what handlers naturally have into what kio wants:

* ``error_code=3`` or a :class:`seriatim.errors.ErrorCode` -> kio's ``ErrorCode``;
* ``throttle_time_ms=5`` (an int, with the ``_ms`` suffix) -> ``throttle_time=timedelta(ms=5)``;
  a ``timedelta`` works under either name;
* an int (milliseconds) for a datetime field (``log_append_time``); -1 means None (null);
* lists -> tuples; dicts inside a struct or array field -> the right nested class for that
  version, built recursively with :func:`make`.

Per-class plans are computed once and cached. The nested element class of a field comes from
the parent class's resolved annotations (``typing.get_type_hints``), never from a class name.
"""

from __future__ import annotations

import dataclasses
import datetime
import types
import typing
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, Union

from kio.index import UnknownAPIKey, UnknownEntity, load_response_schema
from kio.schema.errors import ErrorCode as KioErrorCode
from kio.serial.readers import tz_aware_from_i64
from kio.static.constants import uuid_zero
from kio.static.primitive import i64

from seriatim.errors import ErrorCode
from seriatim.protocol.errors import UnknownApiError, UnsupportedVersionError

__all__ = ["kio_error", "make", "nested", "response_class"]

_ZERO_TIMEDELTA = datetime.timedelta(0)


def kio_error(code: int | ErrorCode | KioErrorCode) -> KioErrorCode:
    """kio's ErrorCode member for a Kafka error code value."""
    if isinstance(code, KioErrorCode):
        return code
    return KioErrorCode(int(code))


@cache
def response_class(api_key: int, version: int) -> type[Any]:
    """kio's response entity class for (api_key, version)."""
    try:
        return load_response_schema(api_key, version)
    except UnknownAPIKey:
        raise UnknownApiError(api_key) from None
    except UnknownEntity:
        raise UnsupportedVersionError(api_key, version) from None


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (types.UnionType, Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def nested(cls: type[Any], field_name: str) -> type[Any]:
    """The entity class of a struct field, or the element class of an array-of-structs field."""
    try:
        tp = _hints(cls)[field_name]
    except KeyError:
        raise AttributeError(f"{cls.__qualname__} has no field {field_name!r}") from None
    tp, _ = _unwrap_optional(tp)
    if typing.get_origin(tp) is tuple:
        tp, _ = _unwrap_optional(typing.get_args(tp)[0])
    if not dataclasses.is_dataclass(tp):
        raise TypeError(f"{cls.__qualname__}.{field_name} is not a struct or array of structs")
    return typing.cast(type[Any], tp)


# --- per-field plans ---------------------------------------------------------------------

_Convert = Callable[[Any], Any]
_Default = Callable[[], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class _FieldPlan:
    name: str
    convert: _Convert
    default: _Default | None  # None: the dataclass default applies (omit the keyword)


def _identity(value: Any) -> Any:
    return value


def _to_timedelta(value: Any) -> Any:
    if isinstance(value, datetime.timedelta):
        return value
    return datetime.timedelta(milliseconds=int(value))


def _datetime_converter(nullable: bool) -> _Convert:
    def convert(value: Any) -> Any:
        if value is None or isinstance(value, datetime.datetime):
            return value
        ms = int(value)
        if ms == -1 and nullable:
            return None  # kio writes None as -1
        return tz_aware_from_i64(i64(ms))

    return convert


def _struct_converter(cls: type[Any]) -> _Convert:
    def convert(value: Any) -> Any:
        if isinstance(value, Mapping):
            return make(cls, **value)
        return value

    return convert


def _array_converter(element: _Convert) -> _Convert:
    def convert(value: Any) -> Any:
        if value is None:
            return None
        return tuple(element(v) for v in value)

    return convert


def _scalar_default(kind: str) -> Any:
    if kind == "error_code":
        return KioErrorCode.none
    if kind in ("timedelta_i32", "timedelta_i64"):
        return _ZERO_TIMEDELTA
    if kind == "bool":
        return False
    if kind == "string":
        return ""
    if kind in ("bytes", "records"):
        return b""
    if kind == "uuid":
        return uuid_zero
    if kind == "float64":
        return 0.0
    if kind == "datetime_i64":
        return tz_aware_from_i64(i64(0))
    return 0


def _scalar_converter(kind: str, nullable: bool) -> _Convert:
    if kind == "error_code":
        return kio_error
    if kind in ("timedelta_i32", "timedelta_i64"):
        return _to_timedelta
    if kind == "datetime_i64":
        return _datetime_converter(nullable)
    return _identity


def _plan_field(cls: type[Any], f: dataclasses.Field[Any]) -> _FieldPlan:
    tp, nullable = _unwrap_optional(_hints(cls)[f.name])
    has_default = f.default is not dataclasses.MISSING or (
        f.default_factory is not dataclasses.MISSING
    )
    convert: _Convert
    default: Any
    if typing.get_origin(tp) is tuple:
        inner, _ = _unwrap_optional(typing.get_args(tp)[0])
        element = (
            _struct_converter(typing.cast(type[Any], inner))
            if dataclasses.is_dataclass(inner)
            else _identity
        )
        convert = _array_converter(element)
        default = None if nullable else ()
    elif dataclasses.is_dataclass(tp):
        struct_cls = typing.cast(type[Any], tp)
        convert = _struct_converter(struct_cls)
        if nullable:
            default = None
        else:
            return _FieldPlan(f.name, convert, None if has_default else lambda: make(struct_cls))
    else:
        kind = f.metadata.get("kafka_type", "")
        convert = _scalar_converter(kind, nullable)
        default = None if nullable else _scalar_default(kind)
    if has_default:
        return _FieldPlan(f.name, convert, None)
    return _FieldPlan(f.name, convert, lambda: default)


@dataclasses.dataclass(frozen=True, slots=True)
class _ClassPlan:
    fields: tuple[_FieldPlan, ...]
    by_name: dict[str, _FieldPlan]
    aliases: dict[str, str]  # "throttle_time_ms" -> "throttle_time"


_PLANS: dict[type[Any], _ClassPlan] = {}


def _plan(cls: type[Any]) -> _ClassPlan:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _build_plan(cls)
    return plan


def _build_plan(cls: type[Any]) -> _ClassPlan:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a kio entity class")
    plans = tuple(_plan_field(cls, f) for f in dataclasses.fields(cls))
    by_name = {p.name: p for p in plans}
    aliases = {}
    for f in dataclasses.fields(cls):
        kind = f.metadata.get("kafka_type", "")
        if kind.startswith(("timedelta_", "datetime_")) and f"{f.name}_ms" not in by_name:
            aliases[f"{f.name}_ms"] = f.name
    return _ClassPlan(plans, by_name, aliases)


def make(cls: type[Any], /, **fields: Any) -> Any:
    """Build ``cls`` from ``fields``, converting values and defaulting the rest (see module)."""
    plan = _plan(cls)
    kwargs: dict[str, Any] = {}
    for key, value in fields.items():
        name = plan.aliases.get(key, key)
        field_plan = plan.by_name.get(name)
        if field_plan is None:
            known = ", ".join(sorted([*plan.by_name, *plan.aliases]))
            raise TypeError(
                f"{cls.__qualname__} v{cls.__version__} has no field {key!r} (fields: {known})"
            )
        if name in kwargs:
            raise TypeError(f"{cls.__qualname__}: {name!r} given twice")
        kwargs[name] = field_plan.convert(value)
    for field_plan in plan.fields:
        if field_plan.name not in kwargs and field_plan.default is not None:
            kwargs[field_plan.name] = field_plan.default()
    return cls(**kwargs)
