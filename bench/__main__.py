"""Run the benchmarks and rewrite docs/benchmarks.md.

    python -m bench                 # everything (< 10 min), rewrites docs/benchmarks.md
    python -m bench --quick         # smoke run (< 90 s)
    python -m bench kreps startup   # some suites: their sections are replaced, others kept
    python -m bench --no-write      # print only

Suites: ``log`` (embedded log vs raw write and sqlite3), ``kreps`` (Kreps' 2014 scenarios on
``seriatim serve`` with two C load generators, librdkafka and the raw-protocol kafkagen, each
checked against a sink, beside Redis Streams, raw disk and loopback TCP, plus the broker's CPU
per GiB and the latency floors), ``startup`` (``seriatim serve`` to first accepted connection,
RSS, 1,000 partitions), ``compaction`` (bench/compaction_bench.py).
Benchmarks are never pytest tests.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import compaction_suite, kreps_bench, log_bench, startup_bench, state_bench
from bench.common import Settings, Suite, machine_info, now_utc

SUITES: dict[str, Callable[[Settings], Suite]] = {
    "log": log_bench.run,
    "kreps": kreps_bench.run,
    "startup": startup_bench.run,
    "compaction": compaction_suite.run,
    "state": state_bench.run,
}
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN = "<!-- bench:{} begin -->"
END = "<!-- bench:{} end -->"

INTRO = """\
# Benchmarks

This file is written by `python -m bench` (`make bench`); do not edit it by hand. Every seriatim
figure stands beside baselines measured **in the same run, on the same machine**, and the
ratio column is seriatim's median divided by that baseline's median. The figures are medians
of several runs after warm-up runs (first touch of guest memory is slow on this kind of VM);
the runs column gives every run and ±half the spread (max - min) relative to the median.

Benchmarks are not tests: nothing here fails a build. Compare ratios, not absolute figures,
across machines: the virtual disk's fsync latency and the 2 cores shared by client and server
are noisy from run to run.
"""


def _sections(text: str) -> dict[str, str]:
    out = {}
    for name in SUITES:
        m = re.search(re.escape(BEGIN.format(name)) + r"\n(.*?)" + re.escape(END.format(name)),
                      text, re.S)
        if m:
            out[name] = m.group(1)
    return out


def render(suites: dict[str, str], commands: list[str], quick: bool) -> str:
    info = machine_info()
    lines = [INTRO, "## Machine and run", ""]
    lines += [f"- **{k}:** {v}" for k, v in info.items()]
    lines += [f"- **date:** {now_utc()}" + (" (quick mode: small sizes, 3 runs)" if quick
                                              else ""), ""]
    lines += ["Commands (from the repository root, in the project venv):", "", "```sh"]
    lines += commands
    lines += ["```", "",
              "Debian packages: `apt-get install -y redis-server redis-tools librdkafka-dev` "
              "(`make bench` installs them when run as root) and a C compiler (`cc`). "
              "redis-server/redis-tools give the Redis baseline; librdkafka-dev lets the bench "
              "build its C load generator (`bench/loadgen.c`) into a temp dir; the other one, "
              "`bench/kafkagen.c`, needs only the compiler. Without them the "
              "Redis rows say why they were skipped and the load generator falls back to "
              "confluent-kafka (Python), which cannot keep up with the broker.", ""]
    for name in SUITES:
        if name in suites:
            lines += [BEGIN.format(name), suites[name].rstrip("\n"), "", END.format(name), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("suites", nargs="*", choices=[*SUITES, []], metavar="suite",
                    help=f"any of {', '.join(SUITES)} (default: all)")
    ap.add_argument("--quick", action="store_true", help="smoke run: small sizes, < 90 s")
    ap.add_argument("--runs", type=int, default=None, help="measured runs per figure")
    ap.add_argument("--no-write", action="store_true", help="do not rewrite the doc")
    ap.add_argument("--output", type=Path, default=DOC, help=f"default: {DOC}")
    args = ap.parse_args(argv)
    names = args.suites or list(SUITES)
    settings = Settings.make(args.quick, args.runs)

    old = _sections(args.output.read_text()) if args.output.exists() else {}
    new: dict[str, str] = {}
    t_all = time.perf_counter()
    for name in names:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        suite = SUITES[name](settings)
        suite.seconds = time.perf_counter() - t0
        new[name] = suite.render()
        for t in suite.targets:
            print(f"  target: {t.text}: {t.cell().strip('*')} ({t.detail})")
        print(f"  ({suite.seconds:.0f} s)", flush=True)
    print(f"== done in {time.perf_counter() - t_all:.0f} s", flush=True)

    merged = {**old, **new}
    quick = " --quick" if args.quick else ""
    commands = ["python -m bench" + quick + ("" if not args.suites else " " + " ".join(names)),
                "# or one suite at a time:"]
    commands += [f"python -m bench {n}{quick}" for n in SUITES]
    doc = render(merged, commands, args.quick)
    if args.no_write:
        print(doc)
    else:
        args.output.write_text(doc)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
