"""Pure helpers of the client commands: the JSON record format, kcat-style ``--fmt`` strings,
start positions and times, and the key partitioners. No Kafka client, no I/O.

JSON records (one object per line; ``consume --format json`` writes them and ``produce
--format json`` reads them back)::

    {"topic": "t", "partition": 0, "offset": 42, "timestamp": 1767225600000,
     "timestamp_type": "create", "key": "user-1", "value": "hello",
     "headers": [{"key": "trace", "value": "abc"}, {"key": "raw", "value": "/w==",
                  "encoding": "base64"}]}

* ``key`` and ``value`` (and each header's ``value``) are the bytes decoded as UTF-8 when they
  are valid UTF-8, else base64 with ``key_encoding`` / ``value_encoding`` (``"encoding"`` in a
  header) set to ``"base64"``; an absent encoding means UTF-8. ``null`` is a null key, a null
  value (a tombstone) or a null header value. Header order and duplicate names are kept.
* ``timestamp`` is milliseconds since the epoch; produce sends it as the record's timestamp
  (a topic with ``message.timestamp.type=LogAppendTime`` replaces it, as Kafka does). One
  value does not survive: librdkafka reads a timestamp of 0 as "now".
* On input, ``topic``, ``offset``, ``size`` and ``timestamp_type`` are ignored; ``partition``
  is honoured unless ``--partition`` or ``--repartition`` is given. Every field is optional
  (a bare ``{"value": "x"}`` is a record), and ``headers`` may also be a ``{"name": "value"}``
  object.

So consume -> produce -> consume reproduces keys, values, headers and timestamps byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Headers = list[tuple[str, bytes | None]]


class FormatError(ValueError):
    """Input that cannot be parsed (a bad JSON line, time, offset or format string)."""


# --- JSON records --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A consumed record, as the commands see it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    timestamp_type: str | None  # "create" | "log_append" | None
    key: bytes | None
    value: bytes | None
    headers: Headers


@dataclass(frozen=True, slots=True)
class InRecord:
    """A record to produce."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    partition: int | None = None
    timestamp_ms: int | None = None


def _encode_bytes(data: bytes | None) -> tuple[str | None, bool]:
    """(text, is_base64)."""
    if data is None:
        return None, False
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), True


def _decode_bytes(text: Any, encoding: Any, what: str) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise FormatError(f"{what} must be a string or null, got {type(text).__name__}")
    if encoding in (None, "utf-8", "utf8", "text"):
        return text.encode("utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise FormatError(f"{what}: invalid base64: {exc}") from None
    raise FormatError(f"{what}: unknown encoding {encoding!r} (use 'utf-8' or 'base64')")


def record_to_json(rec: OutRecord) -> str:
    """One JSON line (without the newline) for a consumed record."""
    obj: dict[str, Any] = {
        "topic": rec.topic,
        "partition": rec.partition,
        "offset": rec.offset,
        "timestamp": rec.timestamp_ms,
        "timestamp_type": rec.timestamp_type,
    }
    for name, data in (("key", rec.key), ("value", rec.value)):
        text, b64 = _encode_bytes(data)
        obj[name] = text
        if b64:
            obj[f"{name}_encoding"] = "base64"
    headers = []
    for hkey, hvalue in rec.headers:
        text, b64 = _encode_bytes(hvalue)
        entry: dict[str, Any] = {"key": hkey, "value": text}
        if b64:
            entry["encoding"] = "base64"
        headers.append(entry)
    obj["headers"] = headers
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def record_from_json(line: str | bytes) -> InRecord:
    """Parse one JSON line into a record to produce; FormatError when it is not one."""
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"not a JSON object: {exc}") from None
    if not isinstance(obj, dict):
        raise FormatError("expected a JSON object per line")
    key = _decode_bytes(obj.get("key"), obj.get("key_encoding"), "key")
    value = _decode_bytes(obj.get("value"), obj.get("value_encoding"), "value")
    headers: Headers = []
    raw_headers = obj.get("headers") or []
    if isinstance(raw_headers, dict):
        raw_headers = [{"key": k, "value": v} for k, v in raw_headers.items()]
    if not isinstance(raw_headers, list):
        raise FormatError("headers must be a list of {key, value[, encoding]} objects")
    for entry in raw_headers:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise FormatError("each header must be an object with a string 'key'")
        headers.append((entry["key"], _decode_bytes(entry.get("value"), entry.get("encoding"),
                                                    f"header {entry['key']!r}")))
    partition = obj.get("partition")
    if partition is not None and (not isinstance(partition, int) or partition < 0):
        raise FormatError(f"partition must be a non-negative integer, got {partition!r}")
    timestamp = obj.get("timestamp")
    if timestamp is not None and (not isinstance(timestamp, int) or timestamp < 0):
        raise FormatError(f"timestamp must be milliseconds since the epoch, got {timestamp!r}")
    return InRecord(key, value, headers, partition, timestamp)


# --- kcat-style --fmt ----------------------------------------------------------------------------

_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", "0": b"\0"}
_TOKEN = re.compile(r"%(.)|\\(.)|([^%\\]+)", re.DOTALL)
FMT_HELP = ("%t topic, %p partition, %o offset, %k key, %K key size, %s value, %S value size, "
            "%T timestamp (ms), %h headers (k=v,k2=v2), %% a percent sign; \\n \\t \\r escapes")


def _headers_text(headers: Headers) -> bytes:
    return b",".join(k.encode("utf-8") + b"=" + (v if v is not None else b"") for k, v in headers)


_FIELDS: dict[str, Callable[[OutRecord], bytes]] = {
    "t": lambda r: r.topic.encode("utf-8"),
    "p": lambda r: str(r.partition).encode(),
    "o": lambda r: str(r.offset).encode(),
    "k": lambda r: r.key or b"",
    "K": lambda r: str(-1 if r.key is None else len(r.key)).encode(),
    "s": lambda r: r.value or b"",
    "S": lambda r: str(-1 if r.value is None else len(r.value)).encode(),
    "T": lambda r: str(-1 if r.timestamp_ms is None else r.timestamp_ms).encode(),
    "h": lambda r: _headers_text(r.headers),
}


def compile_fmt(fmt: str) -> Callable[[OutRecord], bytes]:
    """Compile a kcat ``-f`` style format. A newline is appended unless the format contains
    one (``\\n``), so ``--fmt '%k %s'`` prints one record per line."""
    parts: list[bytes | Callable[[OutRecord], bytes]] = []
    has_newline = False
    for match in _TOKEN.finditer(fmt):
        field, escape, literal = match.groups()
        if literal is not None:
            parts.append(literal.encode("utf-8"))
            has_newline = has_newline or "\n" in literal
        elif field is not None:
            if field == "%":
                parts.append(b"%")
            elif field in _FIELDS:
                parts.append(_FIELDS[field])
            else:
                raise FormatError(f"unknown format field %{field} (known: {FMT_HELP})")
        else:
            parts.append(_ESCAPES.get(escape, b"\\" + escape.encode("utf-8")))
            has_newline = has_newline or escape == "n"
    if fmt.endswith("%") or (fmt.endswith("\\") and not fmt.endswith("\\\\")):
        raise FormatError(f"format ends in a dangling {fmt[-1]!r}")
    if not has_newline:
        parts.append(b"\n")

    def render(rec: OutRecord) -> bytes:
        return b"".join(p if isinstance(p, bytes) else p(rec) for p in parts)

    return render


# --- start positions and times ------------------------------------------------------------------

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration_ms(text: str) -> int | None:
    """``15m``, ``2h``, ``1d``, ``1h30m``, ``500ms`` -> milliseconds; None if not a duration."""
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        return None
    return int(total)


def parse_time_ms(text: str, now_ms: int | None = None) -> int:
    """A point in time: ``-15m`` (ago), ``@1767225600000`` or ``1767225600000`` (epoch ms), or
    ISO-8601 with or without ``@`` (``2026-01-01T00:00:00Z``; no zone means local time)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    spec = text.strip()
    if spec.startswith("-"):
        ago = parse_duration_ms(spec[1:])
        if ago is None:
            raise FormatError(f"bad relative time {text!r} (e.g. -30s, -15m, -2h, -1d, -1h30m)")
        return now - ago
    spec = spec.removeprefix("@")
    if spec.isdigit():
        return int(spec)
    try:
        when = datetime.fromisoformat(spec)
    except ValueError:
        raise FormatError(
            f"bad time {text!r}: use -15m (relative), @<epoch ms>, or ISO-8601 like "
            "@2026-01-01T12:00:00Z") from None
    return int(when.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class StartPosition:
    """Where consume starts, per partition."""

    kind: str  # "beginning" | "end" | "stored" | "offset" | "tail" | "time"
    value: int = 0  # offset, record count (tail) or timestamp in ms (time)

    def describe(self) -> str:
        if self.kind in ("beginning", "end", "stored"):
            return self.kind
        if self.kind == "offset":
            return f"offset {self.value}"
        if self.kind == "tail":
            return f"the last {self.value} records"
        return f"timestamp {self.value}"


def parse_start(text: str, now_ms: int | None = None) -> StartPosition:
    """``beginning|end|stored|OFFSET|-N|@TIMESTAMP|-15m`` (see ``consume --help``)."""
    spec = text.strip().lower()
    if spec in ("beginning", "earliest", "start", "oldest"):
        return StartPosition("beginning")
    if spec in ("end", "latest", "newest"):
        return StartPosition("end")
    if spec in ("stored", "committed"):
        return StartPosition("stored")
    if spec.isdigit():
        return StartPosition("offset", int(spec))
    if spec.startswith("-") and spec[1:].isdigit():
        return StartPosition("tail", int(spec[1:]))
    if spec.startswith("-") or spec.startswith("@"):
        return StartPosition("time", parse_time_ms(text, now_ms))
    raise FormatError(
        f"bad start position {text!r}: use beginning, end, stored, an offset (42), the last N "
        "records (-10), a time ago (-15m, -2h, -1d) or a time (@1767225600000, "
        "@2026-01-01T12:00:00Z)")


# --- partitioners --------------------------------------------------------------------------------


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java ``Utils.murmur2``, librdkafka ``rd_murmur2``), as unsigned 32 bit."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    whole = length & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length & 3
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def fnv1a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


#: librdkafka's ``partitioner`` values -> (hash, null/empty keys are random?)
PARTITIONERS: dict[str, tuple[Callable[[bytes], int] | None, str]] = {
    "consistent_random": (zlib.crc32, "empty"),
    "consistent": (zlib.crc32, "never"),
    "murmur2_random": (lambda k: murmur2(k) & 0x7FFFFFFF, "null"),
    "murmur2": (lambda k: murmur2(k) & 0x7FFFFFFF, "never"),
    "fnv1a_random": (fnv1a, "null"),
    "fnv1a": (fnv1a, "never"),
    "random": (None, "always"),
}
DEFAULT_PARTITIONER = "consistent_random"


def partition_for_key(key: bytes | None, partitions: int,
                      partitioner: str = DEFAULT_PARTITIONER) -> int | None:
    """The partition librdkafka's ``partitioner`` puts ``key`` in, or None when that choice is
    random (a null key; for consistent_random also an empty key; or the random partitioner)."""
    entry = PARTITIONERS.get(partitioner)
    if entry is None:
        raise FormatError(f"unknown partitioner {partitioner!r} "
                          f"(known: {', '.join(PARTITIONERS)})")
    hash_fn, random_when = entry
    if hash_fn is None or random_when == "always":
        return None
    if key is None and random_when in ("null", "empty"):
        return None
    if not key and random_when == "empty":
        return None
    return hash_fn(key or b"") % partitions


def split_key(line: bytes, separator: bytes | None) -> tuple[bytes | None, bytes]:
    """``key<sep>value`` -> (key, value); a line without the separator has a null key."""
    if separator is None:
        return None, line
    key, sep, value = line.partition(separator)
    if not sep:
        return None, line
    return key, value


def header_pairs(items: Sequence[str]) -> Headers:
    """``k=v`` strings -> headers (``k`` alone is a null-valued header)."""
    out: Headers = []
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise FormatError(f"bad header {item!r}: expected KEY=VALUE")
        out.append((key, value.encode("utf-8") if sep else None))
    return out
