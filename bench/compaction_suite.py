"""The compaction benchmark (bench/compaction_bench.py, owned elsewhere) as a runner suite.

Calls its :func:`run` with its ``quick`` preset in quick mode and its ``full`` preset (the
issue's case: 1 GiB, 1M keys) otherwise, and renders the rows it returns. Any failure becomes
a note, not a crash.
"""

from __future__ import annotations

import math
import time

from bench.common import Settings, Suite


def run(settings: Settings) -> Suite:
    suite = Suite("compaction", "Compaction: cleaning a log of N keys x 10 updates",
                  "python -m bench.compaction_bench " + ("--quick" if settings.quick else "--full"))
    try:
        from bench import compaction_bench as cb

        size, keys = cb.PRESETS["quick" if settings.quick else "full"]
        t0 = time.perf_counter()
        rows = cb.run(size, keys)
        print(f"  compaction: {keys:,} keys, {size >> 20} MiB in {time.perf_counter() - t0:.0f} s",
              flush=True)
    except Exception as exc:  # the suite belongs to another module: report, do not crash
        suite.notes.append(f"skipped: {type(exc).__name__}: {str(exc)[:300]}")
        return suite
    md = [f"{keys:,} keys x {cb.UPDATES} updates, {size >> 20} MiB log, one run "
          "(each phase in its own process, so peak RSS is its own).", "",
          "| phase | seconds | MiB/s | peak RSS MiB | notes |", "|---|---:|---:|---:|---|"]
    md += [f"| {r['phase']} | {r['seconds']:.2f} | {_mib_s(r['mib_s'])} | {r['rss']:.0f} | "
           f"{r['notes']} |" for r in rows]
    md.append("")
    suite.extra_md += md
    suite.notes.append("The raw write row is the baseline measured in the same run; see "
                       "`bench/compaction_bench.py` for what each phase does.")
    return suite


def _mib_s(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"  # the ratio row has no throughput
