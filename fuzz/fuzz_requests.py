"""atheris target: request frames -> header parser, the structural size guard, kio's decoder.

Input: one request frame without its 4-byte size prefix (as the broker's FrameDecoder hands
it to the handler). For every input:

1. ``parse_request_header`` may only raise :class:`~seriatim.protocol.ProtocolError`;
2. for a known (api_key, version), the guard (``checker_for(request class)``) may only raise
   :class:`~seriatim.protocol.MalformedRequestError` -- anything else is a guard bug that
   ``decode_body`` would mask;
3. ``decode_request`` may only raise ProtocolError. A native abort (kio allocating from a
   hostile count), an allocation over ``-malloc_limit_mb``, RSS over ``-rss_limit_mb`` or an
   input slower than ``-timeout`` is a crash too.

Run (seeds in fuzz/seeds/requests, new inputs kept in fuzz/corpus/requests)::

    python fuzz/fuzz_requests.py -max_total_time=600 -rss_limit_mb=1024 -malloc_limit_mb=256 \\
        -timeout=1 fuzz/corpus/requests fuzz/seeds/requests

A crash file becomes a regression case: copy it to fuzz/regressions/requests-<what>.bin
(tests/robustness/test_fuzz.py replays every file there through both targets).
"""

from __future__ import annotations

import contextlib
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
    from seriatim.protocol import (
        MalformedRequestError,
        ProtocolError,
        decode_request,
        parse_request_header,
        request_class,
    )
    from seriatim.protocol._guard import checker_for


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
    try:
        decode_request(data)
    except ProtocolError:
        pass


def main(argv: list[str]) -> None:
    assert atheris is not None, "pip install atheris"
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
