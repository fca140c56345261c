"""The CLI's pure helpers: JSON records, --fmt, start positions and times, partitioners."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime

import pytest

from seriatim.cli.codec import (
    FormatError,
    OutRecord,
    StartPosition,
    compile_fmt,
    header_pairs,
    murmur2,
    parse_duration_ms,
    parse_start,
    parse_time_ms,
    partition_for_key,
    record_from_json,
    record_to_json,
    split_key,
)

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def rec(**kw: object) -> OutRecord:
    base: dict[str, object] = dict(topic="t", partition=1, offset=7, timestamp_ms=1234,
                                   timestamp_type="create", key=b"k", value=b"v", headers=[])
    base.update(kw)
    return OutRecord(**base)  # type: ignore[arg-type]


def test_json_text_fields_stay_readable() -> None:
    line = record_to_json(rec(key="ключ".encode(), value=b'{"a": 1}',
                              headers=[("h", b"x"), ("h", None)]))
    obj = json.loads(line)
    assert obj["key"] == "ключ" and obj["value"] == '{"a": 1}'
    assert "key_encoding" not in obj and "value_encoding" not in obj
    assert obj["headers"] == [{"key": "h", "value": "x"}, {"key": "h", "value": None}]
    assert "\n" not in line


@pytest.mark.parametrize("value", [b"\xff\xfe\x00binary", b"", None, b"\xed\xa0\x80",
                                   b"line\nbreak\r\n", bytes(range(256))])
def test_json_round_trip_is_byte_identical(value: bytes | None) -> None:
    original = rec(key=b"\x80k" if value else None, value=value,
                   headers=[("bin", b"\x00\xff"), ("txt", b"t"), ("null", None), ("bin", b"")])
    back = record_from_json(record_to_json(original))
    assert back.key == original.key
    assert back.value == original.value
    assert back.headers == original.headers
    assert back.timestamp_ms == 1234 and back.partition == 1


def test_binary_is_base64_with_an_explicit_encoding() -> None:
    obj = json.loads(record_to_json(rec(value=b"\xff", headers=[("h", b"\xfe")])))
    assert obj["value"] == "/w==" and obj["value_encoding"] == "base64"
    assert obj["headers"] == [{"key": "h", "value": "/g==", "encoding": "base64"}]


def test_json_input_is_lenient_but_checked() -> None:
    r = record_from_json('{"value": "x"}')
    assert (r.key, r.value, r.headers, r.partition, r.timestamp_ms) == (None, b"x", [], None,
                                                                        None)
    assert record_from_json('{"value": "x", "headers": {"a": "1"}}').headers == [("a", b"1")]
    for bad in ("nope", "[1]", '{"value": 5}', '{"value": "!", "value_encoding": "base64"}',
                '{"partition": -1}', '{"value": "x", "value_encoding": "rot13"}',
                '{"headers": [{"value": "x"}]}'):
        with pytest.raises(FormatError):
            record_from_json(bad)


def test_fmt_fields_and_escapes() -> None:
    render = compile_fmt(r"%t|%p|%o|%k|%K|%s|%S|%T|%h|%%\t.")
    assert render(rec(headers=[("a", b"1"), ("b", None)])) == \
        b"t|1|7|k|1|v|1|1234|a=1,b=|%\t.\n"
    assert compile_fmt(r"%s\n")(rec()) == b"v\n"  # has a newline: none added
    assert compile_fmt("%k %s")(rec(key=None, value=None)) == b" \n"
    assert compile_fmt("%K %S")(rec(key=None, value=None)) == b"-1 -1\n"
    with pytest.raises(FormatError):
        compile_fmt("%q")


def test_start_positions() -> None:
    assert parse_start("beginning") == StartPosition("beginning")
    assert parse_start("latest") == StartPosition("end")
    assert parse_start("stored") == StartPosition("stored")
    assert parse_start("42") == StartPosition("offset", 42)
    assert parse_start("-10") == StartPosition("tail", 10)
    assert parse_start("-15m", NOW) == StartPosition("time", NOW - 15 * 60_000)
    assert parse_start("-1h30m", NOW) == StartPosition("time", NOW - 90 * 60_000)
    assert parse_start("-1d", NOW) == StartPosition("time", NOW - 86_400_000)
    assert parse_start("@1700000000000") == StartPosition("time", 1_700_000_000_000)
    assert parse_start("@2026-01-01T00:00:00Z") == StartPosition("time", NOW)
    assert parse_start("@2026-01-01T01:00:00+01:00") == StartPosition("time", NOW)
    for bad in ("soon", "-15x", "@yesterday", "1.5"):
        with pytest.raises(FormatError):
            parse_start(bad, NOW)


def test_times_and_durations() -> None:
    assert parse_duration_ms("500ms") == 500
    assert parse_duration_ms("2h") == 7_200_000
    assert parse_duration_ms("2x") is None and parse_duration_ms("") is None
    assert parse_time_ms("1700000000000") == 1_700_000_000_000
    naive = datetime(2026, 1, 1, 12, 0, 0)  # local time, like `date`
    assert parse_time_ms("2026-01-01T12:00:00") == int(naive.timestamp() * 1000)
    assert parse_time_ms("-2h", NOW) == NOW - 7_200_000
    assert datetime.fromtimestamp(NOW / 1000, tz=UTC).year == 2026


def test_murmur2_matches_kafka_test_vectors() -> None:
    # org.apache.kafka.common.utils.UtilsTest.testMurmur2 (signed Java ints).
    vectors = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string":
               -985981536, b"a-little-bit-longer-string": -1486304829,
               b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
               b"abc": 479470107}
    for data, signed in vectors.items():
        assert murmur2(data) == signed & 0xFFFFFFFF, data


def test_partitioners() -> None:
    assert partition_for_key(b"k0", 4) == zlib.crc32(b"k0") % 4  # consistent_random
    assert partition_for_key(None, 4) is None
    assert partition_for_key(b"", 4) is None  # consistent_random: empty keys are random too
    assert partition_for_key(b"", 4, "consistent") == 0
    assert partition_for_key(b"", 4, "murmur2_random") == (murmur2(b"") & 0x7FFFFFFF) % 4
    assert partition_for_key(b"abc", 7, "murmur2") == (479470107 & 0x7FFFFFFF) % 7
    assert partition_for_key(b"abc", 7, "random") is None
    with pytest.raises(FormatError):
        partition_for_key(b"k", 3, "nope")


def test_split_key_and_headers() -> None:
    assert split_key(b"a:b:c", b":") == (b"a", b"b:c")
    assert split_key(b"abc", b":") == (None, b"abc")
    assert split_key(b"a:b", None) == (None, b"a:b")
    assert header_pairs(["a=1", "b=", "c", "d=x=y"]) == [("a", b"1"), ("b", b""), ("c", None),
                                                         ("d", b"x=y")]
    with pytest.raises(FormatError):
        header_pairs(["=v"])
