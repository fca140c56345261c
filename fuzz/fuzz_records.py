"""atheris target: record batches and codecs (validate_batch, iter_records, decompress).

Input: a mode byte, then data.

* mode % 4 == 0: ``validate_batch`` then ``iter_records`` to the end, on the bytes as given;
* mode % 4 == 1: the same after fixing up the CRC-32C (and, when short, nothing), so that
  mutations get past the checksum and reach the record and codec decoders;
* mode % 4 == 2: ``decompress(codec, payload)`` directly, codec = next byte % 8;
* mode % 4 == 3: the broker's produce-time framing walk for uncompressed batches.

Only :class:`~seriatim.errors.KafkaError` subclasses (CorruptRecordError, InvalidRecordError,
RecordTooLargeError, UnsupportedCompressionError) may escape. The decompression cap is set to
1 MiB here (the broker's is 64 MiB: same code path, faster fuzzing); an output larger than the
cap that is *not* refused is a crash.

Run::

    python fuzz/fuzz_records.py -max_total_time=600 -rss_limit_mb=1024 -malloc_limit_mb=256 \\
        -timeout=1 fuzz/corpus/records fuzz/seeds/records
"""

from __future__ import annotations

import contextlib
import struct
import sys

try:
    import atheris
except ImportError:  # the targets still run (regression replay) without atheris
    atheris = None

# Instrument only seriatim (instrument_all would also walk kio and hypothesis: ~25 s).
_instrument: contextlib.AbstractContextManager[object] = (
    atheris.instrument_imports(include=["seriatim"])
    if atheris is not None and __name__ == "__main__"
    else contextlib.nullcontext()
)
with _instrument:
    import crc32c

    from seriatim.errors import KafkaError
    from seriatim.records import Compression, iter_records, validate_batch
    from seriatim.records.codecs import decompress

    try:  # the broker's own walk (a private helper: skip the mode if it moves)
        from seriatim.broker.handlers.produce import _check_record_framing
    except ImportError:  # pragma: no cover
        _check_record_framing = None

CAP = 1024 * 1024
_HEADER = 61


def _fix_crc(buf: bytearray) -> None:
    if len(buf) >= _HEADER:
        struct.pack_into(">I", buf, 17, crc32c.crc32c(bytes(buf[21:])))


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 4, data[1:]
    try:
        if mode in (0, 1):
            buf = bytearray(rest)
            if mode == 1:
                _fix_crc(buf)
            batch = bytes(buf)
            header = validate_batch(batch, 0)
            n = 0
            for _record in iter_records(batch, max_decompressed_bytes=CAP):
                n += 1
            assert n <= max(header.record_count, 0) + len(batch), "more records than bytes"
        elif mode == 2:
            if not rest:
                return
            codec = rest[0] % 8
            try:
                comp = Compression(codec)
            except ValueError:
                return
            out = decompress(comp, rest[1:], max_bytes=CAP)
            assert len(out) <= CAP, f"{comp.name}: {len(out)} bytes out, cap {CAP}"
        elif _check_record_framing is not None:
            buf = bytearray(rest)
            _fix_crc(buf)
            header = validate_batch(bytes(buf), 0)
            if header.compression == Compression.NONE:
                _check_record_framing(bytes(buf[: header.size]), header.record_count)
    except KafkaError:
        pass


def main(argv: list[str]) -> None:
    assert atheris is not None, "pip install atheris"
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
