"""The fast envelope decoder (msgspec) and the reference (json + Python checks) agree: on
arbitrary valid and invalid values, ``decode`` returns what ``decode_reference`` returns or
raises the same error with the same message; and whenever ``decode_plain`` accepts a value
as a plain statement, the reference decodes it to exactly that statement."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seriatim.state import envelope
from seriatim.state.machine import EnvelopeError, UnsupportedEnvelopeError

KEYS = ["v", "sql", "params", "op", "ops", "table", "key", "columns", "x", "V", "$blob"]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["", " ", "INSERT INTO t VALUES (?)", "\x00", "\ud800", "é€𝄞"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), inner, max_size=4),
        st.builds(lambda b: {"$blob": b}, st.sampled_from(["AAE=", "", "!!", "YQ"])),
    ),
    max_leaves=12,
)
versions = st.sampled_from([1, 1, 1, 0, 2, -1, 1.0, True, "1", None, 2**64])
sqls = st.sampled_from(["INSERT INTO t (a, b) VALUES (?, ?)", "UPDATE t SET b = :b",
                        "", "   ", "\n", "CREATE TABLE t (a)", "é"]) | st.text(max_size=10)
params = st.one_of(st.lists(scalars, max_size=4),
                   st.dictionaries(st.text(max_size=3), scalars, max_size=3),
                   json_values)


@st.composite
def envelope_objects(draw: st.DrawFn) -> Any:
    """Mostly statement-shaped objects, some with extra, missing or odd fields."""
    obj: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        obj["v"] = draw(versions)
    shape = draw(st.integers(0, 9))
    if shape < 7:
        obj["sql"] = draw(sqls)
        if draw(st.booleans()):
            obj["params"] = draw(params)
    elif shape == 7:
        obj.update({"op": draw(st.sampled_from(["upsert", "delete", "x"])),
                    "table": draw(st.text(max_size=3)),
                    "key": draw(json_values), "columns": draw(json_values)})
    elif shape == 8:
        obj["ops"] = draw(st.lists(json_values, max_size=3))
    else:
        obj = draw(json_values)
    if isinstance(obj, dict) and draw(st.integers(0, 5)) == 0:
        obj[draw(st.sampled_from(KEYS) | st.text(max_size=3))] = draw(json_values)
    return obj


def dumps(obj: Any, rnd: random.Random) -> bytes:
    """JSON text with varied spacing, escaping and key order."""
    if isinstance(obj, dict) and rnd.random() < 0.3:
        items = list(obj.items())
        rnd.shuffle(items)
        obj = dict(items)
    seps = rnd.choice([(",", ":"), (", ", ": "), (" ,", " :\t")])
    text = json.dumps(obj, separators=seps, ensure_ascii=rnd.random() < 0.5)
    if rnd.random() < 0.2:
        text = rnd.choice([" ", "\n", "\r\n\t"]) + text + rnd.choice(["", " ", "\n", " x"])
    return text.encode("utf-8", "surrogatepass")


def mutate(data: bytes, rnd: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 3)):
        op = rnd.randrange(4)
        i = rnd.randrange(len(b) + 1)
        if op == 0 and b:
            del b[min(i, len(b) - 1)]
        elif op == 1:
            b.insert(i, rnd.choice(b'{}[]",:0123456789eE.-+ tfnul\\\x00\xff\xc3'))
        elif op == 2 and b:
            b[min(i, len(b) - 1)] = rnd.randrange(256)
        else:
            b[i:i] = rnd.choice([b'"v":1,', b',"v":2', b'"sql":"x",', b',"params":[1]',
                                 b"NaN", b"1e400", b"-0", b"\\ud800"])
    return bytes(b)


def outcome(fn: Any, value: bytes | None) -> tuple[str, Any]:
    try:
        return "ok", fn(value)
    except (EnvelopeError, UnsupportedEnvelopeError) as exc:
        return type(exc).__name__, str(exc)


def check(value: bytes | None) -> None:
    ref = outcome(envelope.decode_reference, value)
    assert outcome(envelope.decode, value) == ref, value
    try:
        plain = envelope.decode_plain(value)  # type: ignore[arg-type]
    except envelope.PLAIN_ERRORS:
        return
    if plain.v == envelope.ENVELOPE_VERSION and plain.sql.strip():
        assert ref == ("ok", [plain.op()]), value
        assert type(plain.params) is type(ref[1][0].params)  # tuple or dict, as the reference


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=envelope_objects(), seed=st.integers(0, 2**32))
def test_fast_and_reference_agree_on_json(obj: Any, seed: int) -> None:
    rnd = random.Random(seed)
    data = dumps(obj, rnd)
    check(data)
    check(mutate(data, rnd))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_fast_and_reference_agree_on_arbitrary_bytes(data: bytes) -> None:
    check(data)
    check(b'{"v":1,"sql":"s","params":[' + data + b"]}")


@settings(max_examples=800, deadline=None)
@given(st.from_regex(r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,3})?",
                     fullmatch=True))
def test_numbers_parse_the_same(number: str) -> None:
    """Integers of any size and floats near the edges (subnormal, overflow, long mantissas)."""
    check(b'{"v":1,"sql":"INSERT INTO t VALUES (?)","params":[' + number.encode() + b"]}")


def test_known_corners() -> None:
    stmt = b'"sql":"INSERT INTO t VALUES (?)"'
    for value in [
        None, b"", b"{}", b"[]", b"null", b'{"v":1}',
        b'{"v":1,' + stmt + b"}",
        b'{"v":1,' + stmt + b',"params":[1,"a",1.5,null,-0,1E2]}',
        b'{"v":1,' + stmt + b',"params":[true,false]}',           # booleans: reference path
        b'{"v":1,' + stmt + b',"params":[{"$blob":"AAE="}]}',      # blob: reference path
        b'{"v":1,' + stmt + b',"params":{"a":1,"a":2}}',           # duplicate: last wins
        b'{"v":2,"v":1,' + stmt + b"}",                            # duplicate version
        b'{"v":1,"sql":"a","sql":"  "}',
        b'{"\\u0076":1,"sq\\u006c":"x"}',                          # escaped keys
        b'{"v":1,' + stmt + b',"params":[1e400]}',                 # overflows to inf in json
        b'{"v":1,' + stmt + b',"params":[NaN]}',
        b'{"v":1,' + stmt + b',"params":["\\ud800"]}',             # lone surrogate
        b'{"v":1,' + stmt + b',"params":["\xed\xa0\x80"]}',        # surrogate in UTF-8
        b'{"v":1,' + stmt + b',"params":null}',
        b'{"v":1.0,' + stmt + b"}", b'{"v":true,' + stmt + b"}", b'{"v":3,' + stmt + b"}",
        b'\xef\xbb\xbf{"v":1,' + stmt + b"}",
        b' {"v":1,' + stmt + b"} ", b'{"v":1,' + stmt + b"}\x00",
        envelope.upsert("t", {"k": 1}, {"v": True}), envelope.delete("t", {"k": None}),
        envelope.transaction([envelope.statement("DELETE FROM t")]),
    ]:
        check(value)
