"""Process-wide malloc tuning for ``seriatim serve``.

Why: a produce-heavy broker allocates a ~1 MiB buffer per request frame and frees it a few
milliseconds later. glibc's defaults give such a block back to the kernel when it is freed
(an ``mmap``/``munmap`` pair, or ``brk`` lowering the heap top once more than the trim
threshold is free) and fault it in again for the next frame: strace showed ~1 ``brk`` per
1 MiB frame under uvloop, and that page-fault churn was most of the broker's kernel time per
GiB produced (~1.0 s/GiB; ~0.3 s/GiB with the settings below, measured with the bench's C
load generator). Keeping up to :data:`TRIM_THRESHOLD` of free heap and serving blocks below
:data:`MMAP_THRESHOLD` from the heap lets the next frame reuse warm pages.

Cost: after a burst the process may keep up to ``TRIM_THRESHOLD`` bytes of free heap
resident. Idle RSS at start is unchanged. The environment wins: if ``MALLOC_MMAP_THRESHOLD_``
or ``MALLOC_TRIM_THRESHOLD_`` is set (glibc's own tunables), nothing is changed. Only glibc
has ``mallopt``; elsewhere this is a no-op.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

#: Blocks up to this size come from the heap (glibc's dynamic maximum on 64-bit).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free heap kept before giving memory back to the kernel.
TRIM_THRESHOLD = 64 * 1024 * 1024

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune_malloc() -> bool:
    """Apply the thresholds above; True if they were applied."""
    if any(name in os.environ for name in _ENV):
        return False
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, libc among them (no lookup)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not ok:
        log.debug("mallopt refused the thresholds; glibc defaults stay")
    return ok
