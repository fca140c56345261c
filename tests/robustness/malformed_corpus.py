"""The malformed-frame corpus: a deterministic table of (name, bytes to send, expected outcome).

Generated in code (:func:`build_corpus`), so nothing binary is committed here; ``fuzz/`` writes
the request frames out as fuzzer seeds (``python fuzz/capture_seeds.py``). Each case is one
connection's worth of bytes, size prefix included. Outcomes:

* ``CLOSE``: the broker closes the connection without answering (Kafka: a bad frame size, an
  unknown api key or version, an unparseable header or body, a failed acks=0 produce);
* ``Reply(api_key, version, code, where)``: the broker answers with error ``code`` at
  ``where`` (``"top"``: the response's error_code; ``"partition"``: the first partition of a
  Produce response) and the connection stays usable.

Families (see notes/reliability.md section 9 item 2): frame sizes; truncated and malformed
headers; unknown api keys; unsupported versions of every API (ApiVersions gets its v0
UNSUPPORTED_VERSION reply); bodies of every served (api, version) cut short; hostile string,
bytes and array lengths; varint overflow; tagged fields longer than what remains; record
batches with a bad length, CRC, magic, counts or records; decompression bombs and corrupt
payloads in every codec (gzip, snappy raw + xerial, lz4, zstd).

Not covered: "non-ApiVersions request before SASL authentication": seriatim has no SASL yet,
so there is no pre-authentication state to test (add the family with SASL).
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass

import crc32c
from kio.serial import entity_writer

from seriatim.errors import ErrorCode
from seriatim.protocol import make, request_class
from seriatim.protocol._wire import uvarint_bytes as uvarint
from seriatim.records import Compression, build_batch
from seriatim.records.varint import encode_varint

#: socket.request.max.bytes of the broker the corpus is run against.
MAX_REQUEST_BYTES = 1024 * 1024
#: the topic the Produce cases write to (created by the test).
TOPIC = "corpus"
CORR = 4242


@dataclass(frozen=True)
class Reply:
    api_key: int
    version: int
    code: int
    where: str = "top"  # "top" | "partition"


CLOSE = "close"
Outcome = Reply | str


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes  # everything sent on a fresh connection, size prefixes included
    expect: Outcome



def prefixed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def header(api_key: int, version: int, corr: int = CORR, client_id: bytes = b"c") -> bytes:
    """A request header: v1 (client id) plus, for flexible requests, v2's empty tag section."""
    head = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    if _flexible(api_key, version):
        head += b"\x00"
    return head


def _flexible(api_key: int, version: int) -> bool:
    try:
        cls = request_class(api_key, version)
    except Exception:
        return False
    return bool(cls.__header_schema__.__version__ >= 2)


def body_bytes(api_key: int, version: int, fields: dict[str, object] | None = None) -> bytes:
    cls = request_class(api_key, version)
    buf = io.BytesIO()
    entity_writer(cls)(buf, make(cls, **(fields or {})))
    return buf.getvalue()


def served_versions() -> list[tuple[int, int, int]]:
    """(api_key, min served, max) from the broker's registry."""
    from seriatim.broker.handlers import load_all

    registry = load_all()
    out = []
    for key, lo, hi in registry.table():
        served = [v for v in range(lo, hi + 1) if registry.lookup(key, v) is not None]
        out.append((key, min(served), hi))
    return out


# --- record batches ------------------------------------------------------------------------------


def recrc(buf: bytearray) -> bytes:
    struct.pack_into(">I", buf, 17, crc32c.crc32c(bytes(buf[21:])))
    return bytes(buf)


def good_batch(n: int = 3, compression: Compression = Compression.NONE) -> bytearray:
    return bytearray(
        build_batch([(b"k%d" % i, b"v" * 20) for i in range(n)], compression=compression)
    )


def batch_with_payload(codec: Compression, payload: bytes, count: int = 1) -> bytes:
    """A batch header for ``codec`` with ``count`` records, followed by ``payload`` verbatim."""
    buf = bytearray(good_batch(1, codec)[:61]) + payload
    struct.pack_into(">i", buf, 8, len(buf) - 12)
    struct.pack_into(">i", buf, 23, count - 1)
    struct.pack_into(">i", buf, 57, count)
    return recrc(buf)


def one_record_of_zeros(value_bytes: int) -> tuple[bytes, bytes]:
    """(record prefix, tail) of one record whose value is ``value_bytes`` zeros."""
    body = b"\x00" + encode_varint(0) + encode_varint(0) + encode_varint(-1)
    body += encode_varint(value_bytes)
    tail = encode_varint(0)
    length = len(body) + value_bytes + len(tail)
    return encode_varint(length) + body, tail


BOMB_BYTES = 80 * 1024 * 1024  # above the 64 MiB decompression cap


@functools.lru_cache(maxsize=1)
def bombs() -> dict[str, bytes]:
    """Compressed payloads (not batches) that inflate beyond the cap, and declared-size lies."""
    import lz4.frame
    import zstandard

    head, tail = one_record_of_zeros(BOMB_BYTES)
    zeros = bytes(1024 * 1024)
    out: dict[str, bytes] = {}
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [gz.compress(head)] + [gz.compress(zeros) for _ in range(80)]
    out["gzip-80MiB"] = b"".join([*parts, gz.compress(tail), gz.flush()])
    # zstd without a content size: only the streaming cap can stop it (~2.5 KiB on the wire).
    cctx = zstandard.ZstdCompressor(level=3, write_content_size=False)
    zobj = cctx.compressobj()
    zparts = [zobj.compress(head)] + [zobj.compress(zeros) for _ in range(80)]
    out["zstd-80MiB-streamed"] = b"".join([*zparts, zobj.compress(tail), zobj.flush()])
    zsmall = zstandard.ZstdCompressor(write_content_size=True).compress(head + bytes(1000) + tail)
    out["zstd-declares-huge-size"] = _zstd_with_content_size(zsmall, 2**40)
    out["zstd-declares-small-size-inflates-80MiB"] = _zstd_fcs_lie(cctx, head, tail)
    lz = lz4.frame.LZ4FrameCompressor(content_checksum=False)
    lparts = [lz.begin(), lz.compress(head)] + [lz.compress(zeros) for _ in range(80)]
    out["lz4-80MiB"] = b"".join([*lparts, lz.compress(tail), lz.flush()])
    lsmall = lz4.frame.compress(head + tail, store_size=True)
    out["lz4-declares-huge-size"] = lsmall[:6] + struct.pack("<Q", 2**62) + lsmall[14:]
    # snappy: the ratio is at most ~21x, so a bomb is a lie about the size.
    out["snappy-raw-declares-4GiB"] = uvarint(2**32 - 1) + b"\x00" * 16
    out["snappy-raw-declares-2^63"] = uvarint(2**63) + b"\x00" * 16
    xerial = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    out["snappy-xerial-chunk-declares-4GiB"] = (
        xerial + struct.pack(">i", 20) + uvarint(2**32 - 1) + b"\x00" * 15
    )
    out["snappy-xerial-chunk-longer-than-payload"] = xerial + struct.pack(">i", 2**31 - 1) + b"x"
    out["snappy-xerial-negative-chunk"] = xerial + struct.pack(">i", -5) + b"x" * 8
    out["snappy-xerial-truncated-header"] = xerial[:10]
    # (A snappy payload cannot inflate beyond the 64 MiB cap inside a 1 MiB frame: ~21x max.)
    return out


def _zstd_with_content_size(frame: bytes, size: int) -> bytes:
    """Rewrite a zstd frame header to declare ``size`` (8-byte Frame_Content_Size)."""
    import zstandard

    params = zstandard.get_frame_parameters(frame)
    assert params.content_size > 0
    # Rebuild: magic, FHD with FCS flag 3 (8 bytes), window descriptor, FCS, then the blocks.
    fhd = frame[4]
    single = fhd & 0x20
    pos = 5 if single else 6
    fcs_len = (1 if single else 0, 2, 4, 8)[fhd >> 6]
    blocks = frame[pos + fcs_len :]
    window = b"" if single else frame[5:6]
    new_fhd = (3 << 6) | (fhd & 0x20) | (fhd & 0x04)  # keep single-segment and checksum flags
    return frame[:4] + bytes([new_fhd]) + window + struct.pack("<Q", size) + blocks


def _zstd_fcs_lie(cctx: object, head: bytes, tail: bytes) -> bytes:
    import zstandard

    del cctx
    streamed = zstandard.ZstdCompressor(level=3, write_content_size=False).compressobj()
    zeros = bytes(1024 * 1024)
    data = b"".join(
        [
            streamed.compress(head),
            *[streamed.compress(zeros) for _ in range(80)],
            streamed.compress(tail),
            streamed.flush(),
        ]
    )
    # Declare 1 000 bytes: a decoder trusting the header would size its buffer from it.
    fhd = data[4]
    assert fhd >> 6 == 0 and not fhd & 0x20
    new_fhd = (1 << 6) | (fhd & 0x3F)  # FCS flag 1: 2 bytes, value + 256
    return data[:4] + bytes([new_fhd]) + data[5:6] + struct.pack("<H", 1000 - 256) + data[6:]


# --- the corpus ----------------------------------------------------------------------------------


def produce_frame(records: bytes | None, *, version: int = 9, acks: int = -1) -> bytes:
    body = {
        "acks": acks,
        "timeout_ms": 5000,
        "topic_data": [{"name": TOPIC, "partition_data": [{"index": 0, "records": records}]}],
    }
    return prefixed(header(0, version) + body_bytes(0, version, body))


def _produce_case(name: str, records: bytes | None, code: int, version: int = 9) -> Case:
    return Case(
        f"batch/{name}",
        produce_frame(records, version=version),
        Reply(0, version, code, "partition"),
    )


def frame_cases() -> list[Case]:
    cases = []
    for size in (-1, -(2**31), 0, 1, 7, 2**31 - 1, MAX_REQUEST_BYTES + 1, 150 * 1024 * 1024):
        cases.append(Case(f"frame/size={size}", struct.pack(">i", size), CLOSE))
    # A good ApiVersions followed by a bad size: the first is answered, then the close.
    good = prefixed(
        header(18, 3)
        + body_bytes(18, 3, {"client_software_name": "a", "client_software_version": "1"})
    )
    cases.append(Case("frame/bad-size-after-a-good-frame", good + struct.pack(">i", -1), CLOSE))
    return cases


def header_cases() -> list[Case]:
    cases = []
    # A frame of 8..11 bytes: room for key/version/corr but not the client id length.
    for key, version in ((3, 12), (0, 9), (1, 12), (19, 7), (18, 3)):
        base = struct.pack(">hhi", key, version, CORR)
        cases.append(Case(f"header/no-client-id/{key}v{version}", prefixed(base), CLOSE))
        cases.append(
            Case(f"header/half-client-id-length/{key}v{version}", prefixed(base + b"\x00"), CLOSE)
        )
        cases.append(
            Case(
                f"header/client-id-longer-than-frame/{key}v{version}",
                prefixed(base + struct.pack(">h", 1000) + b"ab"),
                CLOSE,
            )
        )
        cases.append(
            Case(
                f"header/client-id-length=-2/{key}v{version}",
                prefixed(base + struct.pack(">h", -2) + b"\x00" * 8),
                CLOSE,
            )
        )
    for key, version in ((3, 12), (1, 12), (19, 7), (18, 3), (60, 1)):
        base = struct.pack(">hhih", key, version, CORR, 1) + b"c"
        cases.append(
            Case(
                f"header/tag-count-varint-overflow/{key}v{version}",
                prefixed(base + b"\xff" * 10 + b"\x01"),
                CLOSE,
            )
        )
        cases.append(
            Case(
                f"header/tag-count-2^31/{key}v{version}",
                prefixed(base + uvarint(2**31) + b"\x00" * 4),
                CLOSE,
            )
        )
        cases.append(
            Case(
                f"header/tagged-field-longer-than-frame/{key}v{version}",
                prefixed(base + b"\x01\x00" + uvarint(10_000) + b"xy"),
                CLOSE,
            )
        )
        cases.append(Case(f"header/no-tag-section/{key}v{version}", prefixed(base), CLOSE))
    for key in (-1, 7, 17, 36, 999, 32767, -32768, 67, 68):
        cases.append(
            Case(
                f"header/unknown-api-key={key}",
                prefixed(struct.pack(">hhih", key, 0, CORR, -1) + b"\x00" * 8),
                CLOSE,
            )
        )
    return cases


def version_cases(served: list[tuple[int, int, int]]) -> list[Case]:
    cases = []
    for key, lo, hi in served:
        bad = sorted({lo - 1, hi + 1, 32767, -1} - set(range(lo, hi + 1)))
        for version in bad:
            payload = struct.pack(">hhih", key, version, CORR, 1) + b"c" + b"\x00" * 16
            if key == 18:  # Kafka answers any unsupported ApiVersions with the v0-form error
                expect: Outcome = Reply(18, 0, ErrorCode.UNSUPPORTED_VERSION)
            else:
                expect = CLOSE
            cases.append(Case(f"version/{key}v{version}", prefixed(payload), expect))
    return cases


def _leading_field_is_variable(api_key: int, version: int) -> bool:
    """True when the request body starts with an array, string or bytes field."""
    import dataclasses
    import typing

    cls = request_class(api_key, version)
    fields = [f for f in dataclasses.fields(cls) if f.metadata.get("tag") is None]
    if not fields:
        return False
    first = fields[0]
    kind = first.metadata.get("kafka_type")
    hint = typing.get_type_hints(cls)[first.name]
    return kind in ("string", "bytes", "records") or "tuple" in str(hint)


def body_cases(served: list[tuple[int, int, int]]) -> list[Case]:
    cases = []
    for key, lo, hi in served:
        for version in sorted({lo, hi}):
            body = body_bytes(key, version)
            head = header(key, version)
            if len(body) >= 2:
                for cut in sorted({1, len(body) // 2, len(body) - 1} - {0}):
                    cases.append(
                        Case(
                            f"body/truncated/{key}v{version}/-{cut}",
                            prefixed(head + body[:-cut]),
                            CLOSE,
                        )
                    )
            if not _leading_field_is_variable(key, version):
                continue
            if _flexible(key, version):
                # A leading compact array/string: a varint that never ends, and a huge count.
                cases.append(
                    Case(
                        f"body/varint-overflow/{key}v{version}",
                        prefixed(head + b"\xff" * 12),
                        CLOSE,
                    )
                )
                cases.append(
                    Case(
                        f"body/compact-count-2^31/{key}v{version}",
                        prefixed(head + uvarint(2**31) + b"\x00" * 16),
                        CLOSE,
                    )
                )
            else:
                cases.append(
                    Case(
                        f"body/count-2^31-1/{key}v{version}",
                        prefixed(head + b"\x7f\xff\xff\xff" + b"\x00" * 16),
                        CLOSE,
                    )
                )
    # Targeted hostile lengths in requests with a leading string or array.
    meta = header(3, 12)
    cases += [
        Case(
            "body/metadata-v12-topics-2^31-1", prefixed(meta + uvarint(2**31) + b"\x00" * 16), CLOSE
        ),
        Case(
            "body/metadata-v12-topic-name-longer-than-body",
            prefixed(meta + uvarint(2) + b"\x00" * 16 + uvarint(5000) + b"ab"),
            CLOSE,
        ),
        Case(
            "body/metadata-v12-trailing-tag-longer-than-body",
            prefixed(meta + b"\x01\x00\x00\x01" + b"\x01\x00" + uvarint(9999) + b"z"),
            CLOSE,
        ),
        Case(
            "body/metadata-v4-topic-string-length=-2",
            prefixed(header(3, 4) + struct.pack(">ih", 1, -2) + b"\x00"),
            CLOSE,
        ),
        Case(
            "body/metadata-v4-topic-string-longer-than-body",
            prefixed(header(3, 4) + struct.pack(">ih", 1, 30000) + b"ab\x00"),
            CLOSE,
        ),
        Case(
            "body/produce-v3-transactional-id-length=-2",
            prefixed(header(0, 3) + struct.pack(">hhi", -2, -1, 1000) + b"\x00" * 8),
            CLOSE,
        ),
        Case(
            "body/produce-v9-records-longer-than-body",
            prefixed(
                header(0, 9)
                + b"\x00"
                + struct.pack(">hi", -1, 1000)
                + uvarint(2)
                + uvarint(len(TOPIC) + 1)
                + TOPIC.encode()
                + uvarint(2)
                + struct.pack(">i", 0)
                + uvarint(2**20)
                + b"abc"
            ),
            CLOSE,
        ),
        Case(
            "body/produce-v7-records-bytes=2^31-1",
            prefixed(
                header(0, 7)
                + struct.pack(">hhi", -1, -1, 1000)
                + struct.pack(">i", 1)
                + struct.pack(">h", len(TOPIC))
                + TOPIC.encode()
                + struct.pack(">ii", 1, 0)
                + struct.pack(">i", 2**31 - 1)
                + b"abc"
            ),
            CLOSE,
        ),
        Case(
            "body/fetch-v12-topics-2^31",
            prefixed(
                header(1, 12)
                + struct.pack(">iiiibii", -1, 0, 1, 1000, 0, 0, -1)
                + uvarint(2**31)
                + b"\x00" * 8
            ),
            CLOSE,
        ),
        Case(
            "body/api-versions-v3-name-longer-than-body",
            prefixed(header(18, 3) + uvarint(400) + b"abc"),
            CLOSE,
        ),
    ]
    return cases


def batch_cases() -> list[Case]:
    C, INV = ErrorCode.CORRUPT_MESSAGE, ErrorCode.INVALID_RECORD
    cases = [_produce_case("good", bytes(good_batch()), ErrorCode.NONE)]
    for length in (-1, 0, 48, 2**31 - 1):
        buf = good_batch()
        struct.pack_into(">i", buf, 8, length)
        # A length above max.message.bytes is reported as such (checked first).
        code = ErrorCode.MESSAGE_TOO_LARGE if length > MAX_REQUEST_BYTES else C
        cases.append(_produce_case(f"batch-length={length}", bytes(buf), code))
    buf = good_batch()
    struct.pack_into(">i", buf, 8, len(buf) - 12 + 1)
    cases.append(_produce_case("batch-length-one-past-the-end", bytes(buf), C))
    cases.append(_produce_case("shorter-than-a-header", bytes(good_batch()[:40]), C))
    cases.append(_produce_case("empty-records", b"", INV))
    cases.append(_produce_case("null-records", None, INV))
    for at in (17, 21, 40, 57, 61, -1):  # the CRC itself, attributes, ..., the last byte
        buf = good_batch()
        buf[at] ^= 0x01
        cases.append(_produce_case(f"flipped-bit-at-{at}", bytes(buf), C))
    for magic in (0, 1, 3, 255):
        buf = good_batch()
        buf[16] = magic
        cases.append(_produce_case(f"magic={magic}", recrc(buf), C))
    for count, delta, code in (
        (4, 2, INV),
        (2, 2, INV),
        (0, -1, INV),
        (-1, -2, INV),
        (2**31 - 1, 2**31 - 2, INV),
        (4, 3, INV),
        (2, 1, INV),
    ):
        buf = good_batch(3)
        struct.pack_into(">i", buf, 23, delta)
        struct.pack_into(">i", buf, 57, count)
        cases.append(_produce_case(f"count={count}-delta={delta}", recrc(buf), code))
    cases.append(_produce_case("two-batches", bytes(good_batch(2)) + bytes(good_batch(2)), INV))
    buf = good_batch(1)
    recs = bytes(buf[61:])
    for name, payload, code in (
        ("record-length-varint-overflow", b"\xff" * 11, C),  # not even a varint: corrupt
        ("record-length-past-end", uvarint(2000) + recs[1:], INV),
        ("record-length-negative", encode_varint(-5) + recs[1:], INV),
        ("record-length-zero", b"\x00" + recs[1:], INV),
    ):
        cases.append(_produce_case(name, batch_with_payload(Compression.NONE, payload), code))
    for codec in (Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD):
        cname = codec.name.lower()
        cases.append(_produce_case(f"{cname}/good", bytes(good_batch(3, codec)), ErrorCode.NONE))
        cases.append(_produce_case(f"{cname}/garbage", batch_with_payload(codec, b"\x17" * 64), C))
        good = good_batch(3, codec)
        cases.append(
            _produce_case(f"{cname}/truncated", batch_with_payload(codec, bytes(good[61:-8]), 3), C)
        )
        cases.append(_produce_case(f"{cname}/empty-payload", batch_with_payload(codec, b"", 1), C))
        from seriatim.records import compress

        hostile_records = {
            "header-count-2^31": encode_varint(30)
            + b"\x00\x00\x00"
            + encode_varint(-1)
            + encode_varint(-1)
            + encode_varint(2**31 - 1)
            + b"\x00" * 24,
            "key-length-past-end": encode_varint(10)
            + b"\x00\x00\x00"
            + encode_varint(10**6)
            + b"\x00" * 6,
            "record-length-past-end": encode_varint(10**6) + b"\x00" * 10,
        }
        for hname, raw in hostile_records.items():
            cases.append(
                _produce_case(
                    f"{cname}/{hname}", batch_with_payload(codec, compress(codec, raw)), C
                )
            )
    # Codec ids 5-7 do not exist: the batch is corrupt (Kafka: an unknown compression type id).
    cases.append(_produce_case("codec=5", _with_attributes(5), C))
    cases.append(_produce_case("codec=7", _with_attributes(7), C))
    cases.append(
        _produce_case(
            "zstd-before-produce-v7",
            bytes(good_batch(2, Compression.ZSTD)),
            ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
            version=6,
        )
    )
    codec_of = {
        "gzip": Compression.GZIP,
        "zstd": Compression.ZSTD,
        "lz4": Compression.LZ4,
        "snappy": Compression.SNAPPY,
    }
    for name, payload in bombs().items():
        codec = codec_of[name.split("-", 1)[0]]
        cases.append(_produce_case(f"bomb/{name}", batch_with_payload(codec, payload), C))
    # acks=0 with a bad batch: no response is owed, so the connection is closed to say so.
    buf = good_batch()
    buf[-1] ^= 1
    cases.append(Case("batch/acks=0-bad-crc-closes", produce_frame(bytes(buf), acks=0), CLOSE))
    cases.append(
        Case(
            "batch/acks=2",
            produce_frame(bytes(good_batch()), acks=2),
            Reply(0, 9, ErrorCode.INVALID_REQUIRED_ACKS, "partition"),
        )
    )
    return cases


def _with_attributes(codec: int) -> bytes:
    buf = good_batch()
    struct.pack_into(">h", buf, 21, codec)
    return recrc(buf)


@functools.lru_cache(maxsize=1)
def build_corpus() -> tuple[Case, ...]:
    served = served_versions()
    cases = frame_cases() + header_cases() + version_cases(served) + body_cases(served)
    cases += batch_cases()
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return tuple(cases)
