"""atheris target: request frames -> header parser, the structural size guard, kio's decoder.

Input: one request frame without its 4-byte size prefix (as the broker's FrameDecoder hands
it to the handler). For every input:

1. ``parse_request_header`` may only raise :class:`~seriatim.protocol.ProtocolError`;
2. for a known (api_key, version), the guard (``checker_for(request class)``) may only raise
   :class:`~seriatim.protocol.MalformedRequestError` -- anything else is a guard bug that
   ``decode_body`` would mask;
3. ``decode_request`` may only raise ProtocolError. A native abort (kio allocating from a
   hostile count), an allocation over ``-malloc_limit_mb``, RSS over ``-rss_limit_mb`` or an
   input slower than ``-timeout`` is a crash too;
4. a Produce v3..v11 frame goes through both decoders, kio's (3.) and the broker's copy-free
   ``decode_produce_request``, which may only raise MalformedRequestError; they must agree
   (same values, every ``records`` a view of the input) or both fail. Two refusals are the
   hand-written decoder's alone, by design (see ``protocol/produce.py``): a null
   ``topic_data`` / ``partition_data``, which kio returns as ``None``, counts as kio failing
   too; and where kio fails only on an unknown tagged field (kio 0.6.5 raises KeyError for
   any tag; Kafka skips them), the values must survive a round trip through kio's writer
   and reader instead.

Run (seeds in fuzz/seeds/requests, new inputs kept in fuzz/corpus/requests)::

    python fuzz/fuzz_requests.py -max_total_time=600 -rss_limit_mb=1024 -malloc_limit_mb=256 \\
        -timeout=1 fuzz/corpus/requests fuzz/seeds/requests

A crash file becomes a regression case: copy it to fuzz/regressions/requests-<what>.bin
(tests/robustness/test_fuzz.py replays every file there through both targets).
"""

from __future__ import annotations

import contextlib
import io
import sys
from datetime import timedelta
from typing import Any

from kio.serial import entity_reader, entity_writer

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
    from seriatim.protocol import (
        PRODUCE_KEY,
        PRODUCE_VERSIONS,
        MalformedRequestError,
        ProduceRequestView,
        ProtocolError,
        decode_produce_request,
        decode_request,
        make,
        parse_request_header,
        request_class,
    )
    from seriatim.protocol._guard import checker_for

_MS = timedelta(milliseconds=1)


def one_input(data: bytes) -> None:
    try:
        header, offset = parse_request_header(data)
    except ProtocolError:
        return
    try:
        cls = request_class(header.api_key, header.api_version)
    except ProtocolError:
        cls = None
    if cls is not None:
        try:
            checker_for(cls)(data, offset, len(data))
        except MalformedRequestError:
            pass
    kio_error: ProtocolError | None = None
    entity: Any = None
    try:
        entity = decode_request(data)[1]
    except ProtocolError as exc:
        kio_error = exc
    if header.api_key == PRODUCE_KEY and header.api_version in PRODUCE_VERSIONS:
        _compare_produce(data, offset, header.api_version, entity, kio_error)


def _values(request: Any) -> tuple[Any, ...] | None:
    """A Produce request (kio entity or ProduceRequestView) as plain values; None when an
    array is null (kio's reading of a null non-nullable array)."""
    if request.topic_data is None:
        return None
    topics = []
    for t in request.topic_data:
        if t.partition_data is None:
            return None
        parts = tuple((p.index, None if p.records is None else bytes(p.records))
                      for p in t.partition_data)
        topics.append((t.name, parts))
    timeout = getattr(request, "timeout_ms", None)
    if timeout is None:
        timeout = request.timeout // _MS
    return (request.transactional_id, request.acks, timeout, tuple(topics))


def _compare_produce(data: bytes, offset: int, version: int, entity: Any,
                     kio_error: ProtocolError | None) -> None:
    try:
        view = decode_produce_request(data, offset, version)
    except MalformedRequestError:
        assert kio_error is not None or _values(entity) is None, "only the hand decoder failed"
        return
    assert isinstance(view, ProduceRequestView)
    for t in view.topic_data:
        for p in t.partition_data:
            assert p.records is None or (type(p.records) is memoryview and p.records.obj is data)
    mine = _values(view)
    if kio_error is None:
        assert mine == _values(entity), "the decoders disagree"
        return
    cause = kio_error.__cause__
    assert isinstance(cause, KeyError) and "tagged field" in str(cause), (
        f"only kio failed: {kio_error}")
    # kio refused a tagged field we skip: the values must be what kio itself reads back.
    cls = request_class(PRODUCE_KEY, version)
    assert mine is not None
    txn, acks, timeout_ms, topics = mine
    body = make(cls, transactional_id=txn, acks=acks, timeout_ms=timeout_ms,
                topic_data=[{"name": name, "partition_data": [{"index": i, "records": r}
                                                              for i, r in parts]}
                            for name, parts in topics])
    buf = io.BytesIO()
    entity_writer(cls)(buf, body)
    again, _ = entity_reader(cls)(buf.getvalue(), 0)
    assert _values(again) == mine, "the decoded values do not survive kio's writer"


def main(argv: list[str]) -> None:
    assert atheris is not None, "pip install atheris"
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
