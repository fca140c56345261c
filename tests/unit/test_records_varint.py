"""Zigzag varints against known encodings (Kafka's ByteUtils), bounds and overflow."""

from __future__ import annotations

import pytest

from seriatim.errors import CorruptRecordError
from seriatim.records.varint import (
    ZIGZAG_1,
    ZIGZAG_2,
    decode_varint,
    decode_varlong,
    encode_varint,
    encode_varlong,
    varint_size,
)

KNOWN = [
    (0, "00"),
    (-1, "01"),
    (1, "02"),
    (63, "7e"),
    (-64, "7f"),
    (64, "8001"),
    (300, "d804"),
    (-8192, "ff7f"),
    (8192, "808001"),
    (2**31 - 1, "feffffff0f"),
    (-(2**31), "ffffffff0f"),
]


@pytest.mark.parametrize(("value", "hex_"), KNOWN)
def test_known_encodings(value: int, hex_: str) -> None:
    assert encode_varint(value).hex() == hex_
    assert encode_varlong(value).hex() == hex_
    assert decode_varint(bytes.fromhex(hex_)) == (value, len(hex_) // 2)
    assert varint_size(value) == len(hex_) // 2


def test_varlong_extremes() -> None:
    assert encode_varlong(2**63 - 1).hex() == "feffffffffffffffff01"
    assert encode_varlong(-(2**63)).hex() == "ffffffffffffffffff01"
    assert decode_varlong(bytes.fromhex("ffffffffffffffffff01")) == (-(2**63), 10)


def test_out_of_range_values_are_refused_on_encode() -> None:
    with pytest.raises(ValueError):
        encode_varint(2**31)
    with pytest.raises(ValueError):
        encode_varlong(-(2**63) - 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "past the end"),
        (b"\x80", "past the end"),
        (b"\xff\xff\xff\xff\xff\x00", "longer than 5"),
        (b"\xff\xff\xff\xff\x1f", "overflows"),  # 33 bits
    ],
)
def test_bad_varints(data: bytes, message: str) -> None:
    with pytest.raises(CorruptRecordError, match=message):
        decode_varint(data)


def test_varlong_overflow_and_length() -> None:
    with pytest.raises(CorruptRecordError, match="overflows"):
        decode_varlong(b"\xff" * 9 + b"\x03")  # 65 bits
    with pytest.raises(CorruptRecordError, match="longer than 10"):
        decode_varlong(b"\xff" * 10 + b"\x00")


def test_decode_respects_end() -> None:
    with pytest.raises(CorruptRecordError):
        decode_varint(b"\x80\x01", 0, 1)
    assert decode_varint(b"\x00\x80\x01", 1) == (64, 3)


def test_fast_path_tables_agree_with_the_decoder() -> None:
    for b in range(128):
        assert ZIGZAG_1[b] == decode_varint(bytes([b]))[0]
    for value in range(-8192, 8192):
        enc = encode_varint(value)
        if len(enc) == 2:
            assert ZIGZAG_2[enc[0] + (enc[1] << 7)] == value
